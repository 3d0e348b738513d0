//! The `[[rule]]` sections between the tracker and the targets: each target
//! gets its own version of a play, or nothing.

use std::sync::Arc;

use super::spool::{Store, WriteError};
use crate::delivery::{Standing, TargetHandle, describe};
use crate::history::PlayInfo;
use crate::queue::Queue;
use crate::rules::{Outcome, RuleSet};
use crate::scrobble::{Listen, Track};

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
/// "now playing" got).
pub(super) struct RoutedQueue {
    pub(super) queue: Queue,
    pub(super) rules: RuleSet,
    /// The idle flushers' next steps, taken once a play is queued.
    pub(super) standing: Arc<Standing>,
}

impl Store for RoutedQueue {
    fn write(&self, play: &Listen, info: &PlayInfo) -> Result<(), WriteError> {
        if let (true, Some(secs)) = (info.ended, info.played_secs) {
            return self
                .queue
                .record_played_blocking(play, secs)
                .map_err(|e| WriteError::from(&e));
        }
        let routed: Vec<(&str, Listen)> = self
            .queue
            .names()
            .iter()
            .filter_map(|name| match self.rules.apply(&play.track, name) {
                Outcome::Send(track) => Some((
                    name.as_str(),
                    Listen {
                        track,
                        started_at: play.started_at,
                    },
                )),
                Outcome::Ignored(_) => None,
            })
            .collect();
        self.queue
            .enqueue_each_blocking(play, &routed, info)
            .map_err(|e| WriteError::from(&e))?;
        self.standing.serve();
        Ok(())
    }

    fn reopen(&self) {
        let _ = self.queue.reopen_blocking();
    }
}
