//! The `[[rule]]` sections between the tracker and the targets: each target
//! gets its own version of a play, or nothing.

use std::sync::Arc;

use super::spool::{Sink, WriteError};
use crate::delivery::TargetHandle;
use crate::history::PlayInfo;
use crate::model::describe;
use crate::model::{Listen, Track};
use crate::rules::{Outcome, RuleSet};
use crate::store::{Play, Store};

/// Routes the watch loop's plays (now playing, scrobbles) to the targets.
pub(super) struct Router<'a> {
    rules: &'a RuleSet,
    /// The last track reported as ignored, so that a play gets one line
    /// rather than one per event (now playing, resume, queueing).
    reported: Option<Track>,
}

impl<'a> Router<'a> {
    pub(super) fn new(rules: &'a RuleSet) -> Router<'a> {
        Router {
            rules,
            reported: None,
        }
    }

    /// The targets `track` goes to, each with its version of it.
    pub(super) fn route<'t>(
        &mut self,
        track: &Track,
        targets: &'t [Arc<TargetHandle>],
    ) -> Vec<(&'t Arc<TargetHandle>, Track)> {
        let mut send = Vec::new();
        let mut ignored = Vec::new();
        for t in targets {
            match self.rules.apply(track, &t.name) {
                Outcome::Send(track) => send.push((t, track)),
                Outcome::Ignored(rule) => {
                    ignored.push(format!("{} (rule {})", t.name, rule + 1));
                }
            }
        }
        if !ignored.is_empty() && self.reported.as_ref() != Some(track) {
            tracing::debug!("ignoring {} for {}", describe(track), ignored.join(", "));
            self.reported = Some(track.clone());
        }
        send
    }

    /// Whether no target takes `track` (with no target: whether a global
    /// rule ignores it).
    pub(super) fn ignores_everywhere(
        &mut self,
        track: &Track,
        targets: &[Arc<TargetHandle>],
    ) -> bool {
        if targets.is_empty() {
            matches!(self.rules.apply(track, ""), Outcome::Ignored(_))
        } else {
            self.route(track, targets).is_empty()
        }
    }
}

/// The queue as the spool's writer sees it: each play goes to each target
/// as the rules make it for that target (rules are pure, so this is what
/// "now playing" got), through the storage thread.
pub(super) struct RoutedQueue {
    pub(super) store: Store,
    pub(super) rules: RuleSet,
}

impl RoutedQueue {
    /// Each target's version of `play`.
    fn route(&self, play: &Listen) -> Vec<(String, Listen)> {
        self.store
            .names()
            .iter()
            .filter_map(|name| match self.rules.apply(&play.track, name) {
                Outcome::Send(track) => Some((
                    name.clone(),
                    Listen {
                        track,
                        started_at: play.started_at,
                    },
                )),
                Outcome::Ignored(_) => None,
            })
            .collect()
    }
}

impl Sink for RoutedQueue {
    async fn write(&self, plays: Vec<(Listen, PlayInfo)>) -> (usize, Option<WriteError>) {
        let plays = plays
            .into_iter()
            .map(|(listen, info)| Play {
                routed: self.route(&listen),
                listen,
                info,
            })
            .collect();
        let written = self.store.enqueue(plays).await;
        (written.count, written.failed.as_ref().map(WriteError::from))
    }

    async fn reopen(&self) {
        // A failure is the next write's to report.
        let _ = self.store.reopen().await;
    }
}
