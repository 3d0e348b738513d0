//! The play-time tracker: a pure state machine that turns what MPD reports
//! into "now playing" and "scrobble this play" decisions.
//!
//! It owns the scrobble semantics (design.md): play time counts only while
//! MPD plays, measured on a monotonic clock passed in by the caller, so pauses
//! stop it and seeks neither add nor subtract; a song played again (repeat,
//! single, or seeking back to the start after it qualified) is a new play;
//! a play qualifies once, at the moment it crosses the threshold. No I/O and no
//! timers: the caller asks [`Tracker::next_deadline`] when to call
//! [`Tracker::tick`] next.

use std::time::{Duration, Instant};

use crate::scrobble::{Listen, Track};

/// When a play counts as a listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The track must be strictly longer than this (Last.fm: 30 s).
    pub min_track: Duration,
    /// Share of the duration that must be played, in percent (Last.fm: 50).
    pub played_percent: u8,
    /// Play time that always suffices, whatever the length (Last.fm: 4 min).
    pub max_required: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            min_track: Duration::from_secs(30),
            played_percent: 50,
            max_required: Duration::from_secs(240),
        }
    }
}

impl Rules {
    /// Play time needed for a track of this length, or why it can never qualify.
    pub fn required(&self, duration: Option<Duration>) -> Result<Duration, Unscrobblable> {
        let duration = duration.ok_or(Unscrobblable::UnknownDuration)?;
        if duration <= self.min_track {
            return Err(Unscrobblable::TooShort(duration));
        }
        let share = f64::from(self.played_percent) / 100.0;
        Ok(Duration::try_from_secs_f64(duration.as_secs_f64() * share)
            .map_or(self.max_required, |d| d.min(self.max_required)))
    }
}

/// Playback state as MPD reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    /// Nothing is playing.
    Stopped,
    /// The current song is playing.
    Playing,
    /// The current song is paused.
    Paused,
}

/// The current song as MPD reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    /// MPD's song id: the same queue entry keeps it across repeats.
    pub id: u64,
    /// File or stream URI, to tell songs apart when ids are reused after a queue edit.
    pub uri: String,
    /// Tags. `artist` or `title` may be empty when the file lacks them.
    pub track: Track,
    /// Length, when known (streams have none).
    pub duration: Option<Duration>,
}

/// One reading of MPD's `status` and `currentsong`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Playback state.
    pub state: PlayState,
    /// The current song, if any.
    pub song: Option<Song>,
    /// Position in the current song.
    pub elapsed: Duration,
}

/// Why a play will never be scrobbled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unscrobblable {
    /// The song has no artist or no title tag.
    MissingTags,
    /// The track is not longer than the minimum length.
    TooShort(Duration),
    /// The length is unknown (a stream).
    UnknownDuration,
}

impl std::fmt::Display for Unscrobblable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unscrobblable::MissingTags => f.write_str("it has no artist or no title tag"),
            Unscrobblable::TooShort(d) => write!(f, "it is too short ({} s)", d.as_secs()),
            Unscrobblable::UnknownDuration => f.write_str("its length is unknown"),
        }
    }
}

/// What the caller should do after feeding the tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Tell the targets what is playing now (never queued).
    NowPlaying(Track),
    /// This play qualified: queue it durably.
    Scrobble(Listen),
    /// This play will never qualify; say so once.
    Skip {
        /// The song's URI, for the log line.
        uri: String,
        /// Why.
        reason: Unscrobblable,
    },
}

/// How far the elapsed time may differ from the clock's account before a
/// jump counts as a seek (MPD reports elapsed with millisecond precision but
/// status is read a little after the change).
const SEEK_TOLERANCE: Duration = Duration::from_millis(1500);

/// Elapsed time below which a song is considered "at its start".
const START_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Play {
    song: Song,
    started_at: u64,
    /// Play time banked before the current stretch of playing.
    banked: Duration,
    /// When the current stretch of playing began, if playing.
    resumed_at: Option<Instant>,
    /// Last elapsed reading and when it was taken, to spot seeks and replays.
    elapsed: Duration,
    observed_at: Instant,
    required: Option<Duration>,
    qualified: bool,
}

impl Play {
    fn played(&self, now: Instant) -> Duration {
        self.banked.saturating_add(
            self.resumed_at
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
        )
    }

    /// Where playback should be now if nobody touched it.
    fn expected_elapsed(&self, now: Instant) -> Duration {
        match self.resumed_at {
            Some(_) => self
                .elapsed
                .saturating_add(now.saturating_duration_since(self.observed_at)),
            None => self.elapsed,
        }
    }

    fn pause(&mut self, now: Instant) {
        self.banked = self.played(now);
        self.resumed_at = None;
    }
}

/// The state machine. Feed it every snapshot with [`Tracker::observe`] and
/// call [`Tracker::tick`] at [`Tracker::next_deadline`].
#[derive(Debug)]
pub struct Tracker {
    rules: Rules,
    play: Option<Play>,
}

impl Tracker {
    /// A tracker with no play in progress.
    pub fn new(rules: Rules) -> Tracker {
        Tracker { rules, play: None }
    }

    /// Feed a fresh reading of MPD. `now` is a monotonic clock value and
    /// `unix_now` the wall clock in Unix seconds, both taken when the
    /// snapshot was read.
    pub fn observe(&mut self, snap: Snapshot, now: Instant, unix_now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(song) = snap.song.filter(|_| snap.state != PlayState::Stopped) else {
            self.play = None;
            return actions;
        };

        let same_song = self
            .play
            .as_ref()
            .is_some_and(|p| p.song.id == song.id && p.song.uri == song.uri);
        if !same_song || self.is_replay(&snap.elapsed, now) {
            self.play = None;
        }

        match &mut self.play {
            Some(play) => {
                match (play.resumed_at.is_some(), snap.state) {
                    (false, PlayState::Playing) => {
                        play.resumed_at = Some(now);
                        actions.extend(now_playing(&play.song));
                    }
                    (true, PlayState::Paused) => play.pause(now),
                    _ => {}
                }
                play.elapsed = snap.elapsed;
                play.observed_at = now;
            }
            None => {
                let playing = snap.state == PlayState::Playing;
                let required = match self.check(&song) {
                    Ok(required) => Some(required),
                    Err(reason) => {
                        actions.push(Action::Skip {
                            uri: song.uri.clone(),
                            reason,
                        });
                        None
                    }
                };
                if playing {
                    actions.extend(now_playing(&song));
                }
                let started_at = unix_now.saturating_sub(snap.elapsed.as_secs());
                self.play = Some(Play {
                    song,
                    started_at,
                    banked: Duration::ZERO,
                    resumed_at: playing.then_some(now),
                    elapsed: snap.elapsed,
                    observed_at: now,
                    required,
                    qualified: false,
                });
            }
        }
        actions.extend(self.tick(now));
        actions
    }

    /// Check whether the play has qualified by `now`; call it at
    /// [`Tracker::next_deadline`].
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        let play = self.play.as_mut()?;
        let required = play.required?;
        if play.qualified || play.played(now) < required {
            return None;
        }
        play.qualified = true;
        Some(Action::Scrobble(Listen {
            track: play.song.track.clone(),
            started_at: play.started_at,
        }))
    }

    /// The instant at which the current play would qualify if it keeps
    /// playing, so the caller can sleep exactly until then. `None` when
    /// nothing can happen without a new snapshot.
    pub fn next_deadline(&self) -> Option<Instant> {
        let play = self.play.as_ref()?;
        let resumed_at = play.resumed_at?;
        let required = play.required?;
        if play.qualified {
            return None;
        }
        // Beyond the clock's range means never; a new snapshot will come first.
        resumed_at.checked_add(required.saturating_sub(play.banked))
    }

    /// MPD became unreachable: stop the clock until a snapshot says otherwise,
    /// since whether it kept playing is unknown.
    pub fn suspend(&mut self, now: Instant) {
        if let Some(play) = &mut self.play {
            play.pause(now);
        }
    }

    /// The song of the current play, and whether that play has qualified.
    pub fn current(&self) -> Option<(&Track, bool)> {
        self.play.as_ref().map(|p| (&p.song.track, p.qualified))
    }

    /// The file or stream URI and start time of the current play.
    pub fn current_play(&self) -> Option<(&str, u64)> {
        self.play
            .as_ref()
            .map(|p| (p.song.uri.as_str(), p.started_at))
    }

    /// Play time so far and the play time needed, for the current play.
    pub fn progress(&self, now: Instant) -> Option<(Duration, Option<Duration>)> {
        let play = self.play.as_ref()?;
        Some((play.played(now), play.required))
    }

    /// Whether the same song's new position means it started over: it ran to
    /// its end and began again (repeat, single), or it was sought back to its
    /// start after this play had already qualified.
    fn is_replay(&self, elapsed: &Duration, now: Instant) -> bool {
        let Some(play) = &self.play else {
            return false;
        };
        if *elapsed >= START_WINDOW {
            return false;
        }
        let expected = play.expected_elapsed(now);
        if expected < elapsed.saturating_add(SEEK_TOLERANCE) {
            return false;
        }
        let ran_to_end = play
            .song
            .duration
            .is_some_and(|d| expected.saturating_add(SEEK_TOLERANCE) >= d);
        ran_to_end || play.qualified
    }

    fn check(&self, song: &Song) -> Result<Duration, Unscrobblable> {
        if song.track.artist.trim().is_empty() || song.track.title.trim().is_empty() {
            return Err(Unscrobblable::MissingTags);
        }
        self.rules.required(song.duration)
    }
}

fn now_playing(song: &Song) -> Option<Action> {
    let t = &song.track;
    (!t.artist.trim().is_empty() && !t.title.trim().is_empty())
        .then(|| Action::NowPlaying(t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn song(id: u64, len: Option<u64>) -> Song {
        Song {
            id,
            uri: format!("song{id}.flac"),
            track: Track {
                artist: "Sigur Rós".into(),
                title: format!("Track {id}"),
                duration_secs: len,
                ..Track::default()
            },
            duration: len.map(secs),
        }
    }

    fn snap(state: PlayState, song: &Song, elapsed: u64) -> Snapshot {
        Snapshot {
            state,
            song: Some(song.clone()),
            elapsed: secs(elapsed),
        }
    }

    #[test]
    fn extreme_lengths_and_positions_never_overflow() {
        let rules = Rules {
            min_track: secs(1),
            played_percent: 100,
            max_required: Duration::MAX,
        };
        assert_eq!(rules.required(Some(Duration::MAX)), Ok(Duration::MAX));
        let mut t = Tracker::new(rules);
        let t0 = Instant::now();
        let huge = song(1, Some(u64::MAX));
        let snapshot = Snapshot {
            state: PlayState::Playing,
            song: Some(huge.clone()),
            elapsed: Duration::MAX,
        };
        t.observe(snapshot.clone(), t0, T0);
        // Far beyond the clock's range: no deadline rather than an overflow.
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.tick(t0 + secs(10)), None);
        // The same song near its start again: the replay check adds to the
        // huge expected position.
        let again = Snapshot {
            elapsed: secs(0),
            ..snapshot
        };
        t.observe(again, t0 + secs(20), T0 + 20);
        assert!(t.progress(t0 + secs(30)).is_some());
    }

    /// Drives a tracker with a fake clock: `at(t)` is t seconds after the start.
    struct Harness {
        tracker: Tracker,
        base: Instant,
        scrobbles: Vec<Listen>,
        now_playing: usize,
        skips: Vec<Unscrobblable>,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                tracker: Tracker::new(Rules::default()),
                base: Instant::now(),
                scrobbles: Vec::new(),
                now_playing: 0,
                skips: Vec::new(),
            }
        }

        fn record(&mut self, actions: impl IntoIterator<Item = Action>) {
            for a in actions {
                match a {
                    Action::NowPlaying(_) => self.now_playing += 1,
                    Action::Scrobble(l) => self.scrobbles.push(l),
                    Action::Skip { reason, .. } => self.skips.push(reason),
                }
            }
        }

        /// MPD reports `s` at t seconds.
        fn see(&mut self, t: u64, s: Snapshot) {
            let now = self.base + secs(t);
            let actions = self.tracker.observe(s, now, T0 + t);
            self.record(actions);
        }

        /// The caller's timer fires at the tracker's deadline, if it is due by t.
        fn run_until(&mut self, t: u64) {
            let limit = self.base + secs(t);
            while let Some(deadline) = self.tracker.next_deadline() {
                if deadline > limit {
                    break;
                }
                let action = self.tracker.tick(deadline);
                assert!(action.is_some(), "a deadline must produce a scrobble");
                self.record(action);
            }
        }
    }

    #[test]
    fn full_play_scrobbles_once_with_start_timestamp() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        assert_eq!(h.now_playing, 1);
        assert_eq!(h.tracker.next_deadline(), Some(h.base + secs(100)));
        h.run_until(99);
        assert!(h.scrobbles.is_empty());
        h.run_until(200);
        assert_eq!(h.scrobbles.len(), 1);
        assert_eq!(h.scrobbles[0].started_at, T0);
        assert_eq!(h.scrobbles[0].track.title, "Track 1");
        // The song ends and MPD stops: nothing more.
        h.see(
            200,
            Snapshot {
                state: PlayState::Stopped,
                song: None,
                elapsed: Duration::ZERO,
            },
        );
        h.run_until(1000);
        assert_eq!(h.scrobbles.len(), 1);
    }

    #[test]
    fn skip_before_threshold_never_scrobbles() {
        let mut h = Harness::new();
        let (a, b) = (song(1, Some(200)), song(2, Some(200)));
        h.see(0, snap(PlayState::Playing, &a, 0));
        h.run_until(60);
        h.see(60, snap(PlayState::Playing, &b, 0));
        h.run_until(99);
        assert!(h.scrobbles.is_empty());
        h.run_until(160);
        assert_eq!(h.scrobbles.len(), 1);
        assert_eq!(h.scrobbles[0].track.title, "Track 2");
        assert_eq!(h.scrobbles[0].started_at, T0 + 60);
    }

    #[test]
    fn pause_stops_the_clock_and_keeps_the_start_timestamp() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(60, snap(PlayState::Paused, &s, 60));
        assert_eq!(h.tracker.next_deadline(), None, "no timer while paused");
        h.run_until(1000);
        assert!(h.scrobbles.is_empty());
        h.see(1000, snap(PlayState::Playing, &s, 60));
        assert_eq!(h.now_playing, 2, "resume sends now playing again");
        assert_eq!(h.tracker.next_deadline(), Some(h.base + secs(1040)));
        h.run_until(1039);
        assert!(h.scrobbles.is_empty());
        h.run_until(1040);
        assert_eq!(h.scrobbles.len(), 1);
        assert_eq!(h.scrobbles[0].started_at, T0);
    }

    #[test]
    fn seeking_forward_earns_nothing() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(10, snap(PlayState::Playing, &s, 150));
        h.run_until(99);
        assert!(h.scrobbles.is_empty(), "the jump to 150 s must not count");
        // The song ends at t=60 and the next one starts: still only 60 s played.
        h.see(60, snap(PlayState::Playing, &song(2, Some(200)), 0));
        h.run_until(61);
        assert!(h.scrobbles.is_empty());
    }

    #[test]
    fn seeking_back_before_qualifying_continues_the_play() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(50, snap(PlayState::Playing, &s, 0));
        h.run_until(100);
        assert_eq!(h.scrobbles.len(), 1);
        assert_eq!(h.scrobbles[0].started_at, T0);
    }

    #[test]
    fn seeking_back_to_start_after_qualifying_is_a_new_play() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.run_until(120);
        h.see(120, snap(PlayState::Playing, &s, 0));
        assert_eq!(h.now_playing, 2);
        h.run_until(219);
        assert_eq!(h.scrobbles.len(), 1);
        h.run_until(220);
        assert_eq!(h.scrobbles.len(), 2);
        assert_eq!(h.scrobbles[1].started_at, T0 + 120);
    }

    #[test]
    fn repeat_single_gives_two_plays() {
        let mut h = Harness::new();
        let s = song(7, Some(60));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.run_until(60);
        // MPD restarts the same queue entry when it ends.
        h.see(60, snap(PlayState::Playing, &s, 0));
        h.run_until(120);
        assert_eq!(h.scrobbles.len(), 2);
        assert_eq!(h.scrobbles[0].started_at, T0);
        assert_eq!(h.scrobbles[1].started_at, T0 + 60);
        assert_eq!(h.now_playing, 2);
    }

    #[test]
    fn replay_of_an_unqualified_play_that_ran_to_its_end_is_new() {
        let mut h = Harness::new();
        let s = song(7, Some(60));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(5, snap(PlayState::Playing, &s, 55));
        h.see(10, snap(PlayState::Playing, &s, 0));
        h.run_until(39);
        assert!(h.scrobbles.is_empty());
        h.run_until(40);
        assert_eq!(h.scrobbles.len(), 1);
        assert_eq!(h.scrobbles[0].started_at, T0 + 10);
    }

    #[test]
    fn too_short_track_is_skipped_once() {
        let mut h = Harness::new();
        let s = song(1, Some(30));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(5, snap(PlayState::Paused, &s, 5));
        h.see(6, snap(PlayState::Playing, &s, 5));
        h.run_until(1000);
        assert!(h.scrobbles.is_empty());
        assert_eq!(h.skips, vec![Unscrobblable::TooShort(secs(30))]);
        assert_eq!(h.tracker.next_deadline(), None);
        assert_eq!(h.now_playing, 2, "now playing is still useful");
    }

    #[test]
    fn long_track_qualifies_at_four_minutes() {
        let mut h = Harness::new();
        let s = song(1, Some(3600));
        h.see(0, snap(PlayState::Playing, &s, 0));
        assert_eq!(h.tracker.next_deadline(), Some(h.base + secs(240)));
        h.run_until(239);
        assert!(h.scrobbles.is_empty());
        h.run_until(240);
        assert_eq!(h.scrobbles.len(), 1);
    }

    #[test]
    fn unknown_duration_is_not_scrobbled() {
        let mut h = Harness::new();
        let s = song(1, None);
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.run_until(10_000);
        assert!(h.scrobbles.is_empty());
        assert_eq!(h.skips, vec![Unscrobblable::UnknownDuration]);
    }

    #[test]
    fn missing_tags_skip_without_now_playing() {
        let mut h = Harness::new();
        let mut s = song(1, Some(200));
        s.track.artist.clear();
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.run_until(10_000);
        assert!(h.scrobbles.is_empty());
        assert_eq!(h.now_playing, 0);
        assert_eq!(h.skips, vec![Unscrobblable::MissingTags]);
    }

    #[test]
    fn joining_mid_song_credits_only_observed_time() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 90));
        h.run_until(99);
        assert!(h.scrobbles.is_empty());
        h.run_until(100);
        assert_eq!(h.scrobbles[0].started_at, T0 - 90);
    }

    #[test]
    fn stop_then_play_again_is_a_new_play() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(50, snap(PlayState::Stopped, &s, 0));
        h.see(60, snap(PlayState::Playing, &s, 0));
        h.run_until(159);
        assert!(h.scrobbles.is_empty());
        h.run_until(160);
        assert_eq!(h.scrobbles[0].started_at, T0 + 60);
    }

    #[test]
    fn repeated_identical_snapshots_change_nothing() {
        let mut h = Harness::new();
        let s = song(1, Some(200));
        h.see(0, snap(PlayState::Playing, &s, 0));
        h.see(30, snap(PlayState::Playing, &s, 30));
        h.see(31, snap(PlayState::Playing, &s, 31));
        assert_eq!(h.now_playing, 1);
        h.run_until(100);
        assert_eq!(h.scrobbles.len(), 1);
    }

    #[test]
    fn rules_thresholds() {
        let r = Rules::default();
        assert_eq!(
            r.required(Some(secs(31))),
            Ok(Duration::from_millis(15_500))
        );
        assert_eq!(
            r.required(Some(secs(30))),
            Err(Unscrobblable::TooShort(secs(30)))
        );
        assert_eq!(r.required(Some(secs(480))), Ok(secs(240)));
        assert_eq!(r.required(Some(secs(1000))), Ok(secs(240)));
    }
}
