//! What is news for one sink, without I/O: fed the daemon's events and the
//! clock, it keeps each problem that holds and says when one becomes worth
//! a message (at once, or once it has lasted longer than its `after`) and
//! when a problem that was told ends. One message per change of state:
//! a retry after a retry, or an event that changes nothing, says nothing.
//! [`Gate`] then spaces a sink's messages by its minimum interval.

use std::collections::BTreeMap;

use crate::config::{NotifySink, Problem};
use crate::events::Event;
use crate::target_state::TargetState;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A problem began (or lasted long enough).
    Problem(Problem),
    /// A problem that was told ended.
    Recovered(Problem),
    /// `notify test`.
    Test,
}

impl Kind {
    /// The `event` field of a message.
    pub(crate) fn event(self) -> &'static str {
        match self {
            Kind::Problem(p) => p.name(),
            Kind::Recovered(_) => "recovered",
            Kind::Test => "test",
        }
    }
}

/// One message for a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// What it is.
    pub kind: Kind,
    /// The target concerned, when one is.
    pub target: Option<String>,
    /// What happened.
    pub message: String,
    /// What to do, when there is something to do.
    pub fix: Option<String>,
    /// When the problem began (Unix seconds).
    pub since: u64,
}

/// A problem that holds.
#[derive(Debug, Clone)]
struct Held {
    /// When it began; for a stale queue, when the oldest play started.
    since: u64,
    /// Seconds it must last before it is news.
    after: u64,
    why: String,
    fix: Option<String>,
    /// Whether its message was made.
    told: bool,
}

/// The problems that hold for one sink, by problem and target ("" for
/// MPD and the state directory).
#[derive(Debug)]
pub(crate) struct Monitor {
    events: Vec<Problem>,
    retrying_after: u64,
    mpd_after: u64,
    queued_after: u64,
    held: BTreeMap<(Problem, String), Held>,
}

/// The fix of a target that keeps retrying: nothing is wrong on this side
/// that the daemon can tell.
const RETRY_FIX: &str = "nothing, if the server is down: the daemon keeps retrying; \
     otherwise check the network and the target's `url`";
/// The fix of a stale queue: why delivery is stuck is in `status`.
const STALE_FIX: &str = "run `mpd-scrobbler status` to see why delivery does not go on";

impl Monitor {
    /// A monitor for `sink`'s events and thresholds.
    pub(crate) fn new(sink: &NotifySink) -> Monitor {
        Monitor {
            events: sink.events.clone(),
            retrying_after: sink.retrying_after.as_secs(),
            mpd_after: sink.mpd_after.as_secs(),
            queued_after: sink.queued_after.as_secs(),
            held: BTreeMap::new(),
        }
    }

    /// Take in `event` seen at `now`; the messages due at once.
    pub(crate) fn observe(&mut self, event: &Event, now: u64) -> Vec<Notice> {
        let mut out = Vec::new();
        match event {
            Event::Target { name, state } => match state {
                TargetState::Ok => {
                    self.end(Problem::Paused, name, now, &mut out);
                    self.end(Problem::Retrying, name, now, &mut out);
                }
                TargetState::Retrying { why, .. } => {
                    self.end(Problem::Paused, name, now, &mut out);
                    self.begin(Problem::Retrying, name, now, why, Some(RETRY_FIX));
                }
                TargetState::Paused { why, fix } => {
                    // The pause says more than the retries before it did.
                    self.forget(Problem::Retrying, name);
                    if self
                        .held
                        .get(&(Problem::Paused, name.clone()))
                        .is_some_and(|h| &h.why != why)
                    {
                        self.forget(Problem::Paused, name);
                    }
                    self.begin(Problem::Paused, name, now, why, Some(fix));
                }
            },
            Event::Storage(Some(p)) => self.begin(Problem::Held, "", now, &p.why, Some(&p.fix)),
            Event::Storage(None) => self.end(Problem::Held, "", now, &mut out),
            Event::Mpd {
                connected: true, ..
            } => {
                self.end(Problem::MpdUnreachable, "", now, &mut out);
            }
            Event::Mpd {
                connected: false,
                address,
            } => self.begin(
                Problem::MpdUnreachable,
                "",
                now,
                &format!("MPD at {address} cannot be reached"),
                Some("start MPD, or correct `host` and `port` in [mpd]"),
            ),
            Event::Oldest {
                target,
                started: None,
            } => self.end(Problem::QueueStale, target, now, &mut out),
            Event::Oldest {
                target,
                started: Some(started),
            } => {
                let key = (Problem::QueueStale, target.clone());
                // A newer oldest play: the stale ones were delivered or dropped.
                let moved = self.held.get(&key).is_some_and(|h| h.since != *started);
                if moved && started.saturating_add(self.queued_after) > now {
                    self.end(Problem::QueueStale, target, now, &mut out);
                } else if moved {
                    if let Some(h) = self.held.get_mut(&key) {
                        h.since = *started;
                    }
                }
                self.begin(Problem::QueueStale, target, *started, "", Some(STALE_FIX));
            }
        }
        out.extend(self.due(now));
        out
    }

    /// The messages of problems that have now lasted long enough.
    pub(crate) fn due(&mut self, now: u64) -> Vec<Notice> {
        let mut out = Vec::new();
        for ((problem, target), h) in &mut self.held {
            if !h.told && now >= h.since.saturating_add(h.after) {
                h.told = true;
                out.push(Notice {
                    kind: Kind::Problem(*problem),
                    target: (!target.is_empty()).then(|| target.clone()),
                    message: problem_text(*problem, target, h, now),
                    fix: h.fix.clone(),
                    since: h.since,
                });
            }
        }
        out
    }

    /// When the next problem that holds becomes news (Unix seconds);
    /// `None` when nothing is waiting, so nothing needs to wake.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.held
            .values()
            .filter(|h| !h.told)
            .map(|h| h.since.saturating_add(h.after))
            .min()
    }

    fn after(&self, problem: Problem) -> u64 {
        match problem {
            Problem::Paused | Problem::Held => 0,
            Problem::Retrying => self.retrying_after,
            Problem::MpdUnreachable => self.mpd_after,
            Problem::QueueStale => self.queued_after,
        }
    }

    /// `problem` holds from `since`, unless it already did.
    fn begin(&mut self, problem: Problem, target: &str, since: u64, why: &str, fix: Option<&str>) {
        if !self.events.contains(&problem) {
            return;
        }
        let after = self.after(problem);
        let h = self
            .held
            .entry((problem, target.to_owned()))
            .or_insert_with(|| Held {
                since,
                after,
                why: String::new(),
                fix: None,
                told: false,
            });
        if !h.told {
            why.clone_into(&mut h.why);
            h.fix = fix.map(str::to_owned);
        }
    }

    /// `problem` ended: a message if it was told.
    fn end(&mut self, problem: Problem, target: &str, now: u64, out: &mut Vec<Notice>) {
        let Some(h) = self.held.remove(&(problem, target.to_owned())) else {
            return;
        };
        if h.told {
            out.push(Notice {
                kind: Kind::Recovered(problem),
                target: (!target.is_empty()).then(|| target.to_owned()),
                message: recovered_text(problem, target, &h, now),
                fix: None,
                since: h.since,
            });
        }
    }

    /// `problem` ended without a message of its own.
    fn forget(&mut self, problem: Problem, target: &str) {
        self.held.remove(&(problem, target.to_owned()));
    }
}

fn problem_text(problem: Problem, target: &str, h: &Held, now: u64) -> String {
    let lasted = span(now.saturating_sub(h.since));
    match problem {
        Problem::Paused => format!("{target}: delivery is paused: {}", h.why),
        Problem::Retrying => format!(
            "{target}: delivery has been failing for {lasted} ({}); scrobbles stay queued",
            h.why
        ),
        Problem::Held => format!(
            "plays are held in memory because the queue cannot be written: {}",
            h.why
        ),
        Problem::MpdUnreachable => format!("{} for {lasted}; no play is recorded", h.why),
        Problem::QueueStale => format!(
            "{target}: the oldest queued scrobble has waited {lasted} (since {})",
            crate::time::local_time(h.since)
        ),
    }
}

fn recovered_text(problem: Problem, target: &str, h: &Held, now: u64) -> String {
    let lasted = span(now.saturating_sub(h.since));
    match problem {
        Problem::Paused => format!("{target}: delivering again (was paused: {})", h.why),
        Problem::Retrying => format!("{target}: delivering again after {lasted} of failures"),
        Problem::Held => "the queue can be written again; held plays are written".into(),
        Problem::MpdUnreachable => format!("MPD is reachable again after {lasted}"),
        Problem::QueueStale => format!("{target}: the queue is moving again"),
    }
}

/// "45 s", "12 min", "3 h", "2 days".
fn span(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86400),
    }
}

/// A sink's minimum interval: a message due sooner than `interval` after
/// the last one waits; waiting messages about the same problem replace
/// each other, and a problem that ends before its message went out is not
/// told at all.
#[derive(Debug)]
pub(crate) struct Gate {
    interval: u64,
    last: Option<u64>,
    waiting: Vec<Notice>,
}

impl Gate {
    /// A gate of `interval` seconds.
    pub(crate) fn new(interval: u64) -> Gate {
        Gate {
            interval,
            last: None,
            waiting: Vec::new(),
        }
    }

    /// Offer `notices` at `now`; those to send now.
    pub(crate) fn offer(&mut self, notices: Vec<Notice>, now: u64) -> Vec<Notice> {
        for n in notices {
            let problem = match n.kind {
                Kind::Problem(p) | Kind::Recovered(p) => Some(p),
                Kind::Test => None,
            };
            let same = self.waiting.iter().position(|w| {
                w.target == n.target
                    && matches!(w.kind, Kind::Problem(p) | Kind::Recovered(p) if Some(p) == problem)
            });
            match same.map(|i| self.waiting.remove(i)) {
                // It came and went between two messages: nothing changed.
                Some(w) if matches!((w.kind, n.kind), (Kind::Problem(_), Kind::Recovered(_))) => {}
                _ => self.waiting.push(n),
            }
        }
        self.due(now)
    }

    /// The waiting messages, once the interval has passed.
    pub(crate) fn due(&mut self, now: u64) -> Vec<Notice> {
        if self.waiting.is_empty() || self.deadline().is_some_and(|d| d > now) {
            return Vec::new();
        }
        self.last = Some(now);
        std::mem::take(&mut self.waiting)
    }

    /// When the waiting messages may go; `None` when none waits.
    pub(crate) fn deadline(&self) -> Option<u64> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(self.last.map_or(0, |l| l.saturating_add(self.interval)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SinkKind;
    use crate::events::StorageProblem;

    fn sink(events: &[Problem]) -> NotifySink {
        NotifySink {
            name: "n".into(),
            kind: SinkKind::Command {
                argv: vec!["true".into()],
            },
            events: events.to_vec(),
            min_interval: Duration::ZERO,
            retrying_after: Duration::from_secs(3600),
            mpd_after: Duration::from_secs(600),
            queued_after: Duration::from_secs(86400),
        }
    }

    fn target(state: TargetState) -> Event {
        Event::Target {
            name: "lastfm".into(),
            state,
        }
    }

    fn paused() -> TargetState {
        TargetState::Paused {
            why: "the server refused the credentials".into(),
            fix: "run `mpd-scrobbler auth lastfm`".into(),
        }
    }

    fn retrying(at: u64) -> TargetState {
        TargetState::Retrying {
            at,
            why: "HTTP 503".into(),
        }
    }

    fn kinds(notices: &[Notice]) -> Vec<Kind> {
        notices.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn a_pause_is_told_once_and_its_end_once() {
        let mut m = Monitor::new(&sink(&Problem::ALL));
        let told = m.observe(&target(paused()), 100);
        assert_eq!(kinds(&told), [Kind::Problem(Problem::Paused)]);
        assert_eq!(told[0].target.as_deref(), Some("lastfm"));
        assert_eq!(
            told[0].fix.as_deref(),
            Some("run `mpd-scrobbler auth lastfm`")
        );
        assert!(
            told[0].message.contains("refused the credentials"),
            "{told:?}"
        );
        assert_eq!(m.observe(&target(paused()), 200), []);
        assert_eq!(m.deadline(), None, "nothing to wake for");
        let told = m.observe(&target(TargetState::Ok), 300);
        assert_eq!(kinds(&told), [Kind::Recovered(Problem::Paused)]);
        assert_eq!(told[0].since, 100);
        assert_eq!(m.observe(&target(TargetState::Ok), 400), []);
    }

    #[test]
    fn retries_are_news_only_after_their_threshold_and_never_per_retry() {
        let mut m = Monitor::new(&sink(&Problem::ALL));
        assert_eq!(m.observe(&target(retrying(130)), 100), []);
        assert_eq!(m.deadline(), Some(3700));
        for t in (200..3600).step_by(300) {
            assert_eq!(m.observe(&target(retrying(t + 60)), t), [], "retry at {t}");
        }
        assert_eq!(m.due(3699), []);
        let told = m.due(3700);
        assert_eq!(kinds(&told), [Kind::Problem(Problem::Retrying)]);
        assert!(
            told[0].message.contains("failing for 60 min (HTTP 503)"),
            "{told:?}"
        );
        assert_eq!(m.deadline(), None);
        assert_eq!(m.observe(&target(retrying(5000)), 4000), []);
        let told = m.observe(&target(TargetState::Ok), 5000);
        assert_eq!(kinds(&told), [Kind::Recovered(Problem::Retrying)]);
    }

    #[test]
    fn a_short_outage_says_nothing() {
        let mut m = Monitor::new(&sink(&Problem::ALL));
        assert_eq!(m.observe(&target(retrying(1)), 100), []);
        assert_eq!(m.observe(&target(TargetState::Ok), 200), []);
        assert_eq!(m.deadline(), None);
        let mpd = |connected| Event::Mpd {
            connected,
            address: "localhost:6600".into(),
        };
        assert_eq!(m.observe(&mpd(false), 100), []);
        assert_eq!(m.deadline(), Some(700));
        assert_eq!(m.observe(&mpd(true), 500), []);
        assert_eq!(m.deadline(), None);
        assert_eq!(m.observe(&mpd(false), 1000), []);
        let told = m.due(1600);
        assert_eq!(kinds(&told), [Kind::Problem(Problem::MpdUnreachable)]);
        assert!(told[0].message.contains("localhost:6600"), "{told:?}");
        assert_eq!(m.observe(&mpd(false), 1700), [], "still down");
        assert_eq!(
            kinds(&m.observe(&mpd(true), 1800)),
            [Kind::Recovered(Problem::MpdUnreachable)]
        );
    }

    #[test]
    fn a_pause_after_retries_replaces_them() {
        let mut m = Monitor::new(&sink(&Problem::ALL));
        m.observe(&target(retrying(1)), 0);
        assert_eq!(kinds(&m.due(4000)), [Kind::Problem(Problem::Retrying)]);
        let told = m.observe(&target(paused()), 4100);
        assert_eq!(kinds(&told), [Kind::Problem(Problem::Paused)]);
        let told = m.observe(&target(TargetState::Ok), 4200);
        assert_eq!(
            kinds(&told),
            [Kind::Recovered(Problem::Paused)],
            "one recovery"
        );
    }

    #[test]
    fn a_stale_queue_is_news_a_day_after_its_oldest_play() {
        let mut m = Monitor::new(&sink(&Problem::ALL));
        let oldest = |started| Event::Oldest {
            target: "lastfm".into(),
            started,
        };
        assert_eq!(m.observe(&oldest(Some(1000)), 1010), []);
        assert_eq!(m.deadline(), Some(1000 + 86400));
        // Delivered, then a new play queued: the clock starts again.
        assert_eq!(m.observe(&oldest(None), 1020), []);
        assert_eq!(m.observe(&oldest(Some(2000)), 2010), []);
        assert_eq!(m.deadline(), Some(2000 + 86400));
        let told = m.due(2000 + 86400);
        assert_eq!(kinds(&told), [Kind::Problem(Problem::QueueStale)]);
        // One stale play delivered, a still-stale one left: no news.
        assert_eq!(m.observe(&oldest(Some(2500)), 2000 + 90000), []);
        let told = m.observe(&oldest(Some(200_000)), 200_010);
        assert_eq!(kinds(&told), [Kind::Recovered(Problem::QueueStale)]);
    }

    #[test]
    fn held_plays_and_unchosen_events() {
        let mut m = Monitor::new(&sink(&[Problem::Held]));
        let full = Event::Storage(Some(StorageProblem {
            why: "No space left on device".into(),
            fix: "free some space".into(),
        }));
        assert_eq!(kinds(&m.observe(&full, 1)), [Kind::Problem(Problem::Held)]);
        assert_eq!(m.observe(&target(paused()), 2), [], "not chosen");
        assert_eq!(m.observe(&full, 3), []);
        assert_eq!(
            kinds(&m.observe(&Event::Storage(None), 4)),
            [Kind::Recovered(Problem::Held)]
        );
    }

    fn notice(kind: Kind) -> Notice {
        Notice {
            kind,
            target: Some("lastfm".into()),
            message: String::new(),
            fix: None,
            since: 0,
        }
    }

    #[test]
    fn the_gate_spaces_messages_and_drops_what_came_and_went() {
        let mut g = Gate::new(60);
        let p = notice(Kind::Problem(Problem::Paused));
        let r = notice(Kind::Recovered(Problem::Paused));
        assert_eq!(g.offer(vec![p.clone()], 100), vec![p.clone()]);
        assert_eq!(g.deadline(), None);
        assert_eq!(g.offer(vec![r.clone()], 110), []);
        assert_eq!(g.deadline(), Some(160));
        assert_eq!(g.due(159), []);
        assert_eq!(g.due(160), vec![r.clone()]);
        // Paused and resumed within the interval: nothing to tell.
        assert_eq!(g.offer(vec![p.clone()], 170), []);
        assert_eq!(g.offer(vec![r], 180), []);
        assert_eq!(g.deadline(), None);
        let mut open = Gate::new(0);
        assert_eq!(open.offer(vec![p.clone()], 1), vec![p.clone()]);
        assert_eq!(open.offer(vec![p.clone()], 1), [p]);
    }
}
