//! The play-time tracker: a pure state machine that turns what MPD reports
//! into "now playing" and "scrobble this play" decisions.
//!
//! It owns the scrobble semantics (docs/design.md, "Invariants"): play time counts only while
//! MPD plays, measured on a monotonic clock passed in by the caller, so pauses
//! stop it and seeks neither add nor subtract; a song played again (repeat,
//! single, or seeking back to the start after it qualified) is a new play;
//! a play qualifies once, at the moment it crosses the threshold. No I/O and no
//! timers: the caller asks [`Tracker::next_deadline`] when to call
//! [`Tracker::tick`] next.
//!
//! On a live stream each title is a play: a new title (same song id, new
//! `Title`) ends the previous play and starts one. A title's length is
//! unknown, so it qualifies when it ends after at least `min_track` of play,
//! or as soon as it reaches `max_required`; its timestamp is when it began,
//! or when it was first seen.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::model::{Listen, PlayState, Snapshot, Song, Thresholds, Track, Unscrobblable};
use crate::rules::stream::{self, Streams};

/// What the caller should do after feeding the tracker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
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

/// Stream titles remembered so each is reported once, not at every change.
const REPORTED_TITLES: usize = 64;

#[derive(Debug)]
struct Play {
    /// As MPD reported it.
    song: Song,
    /// What gets scrobbled: the song's tags, or a stream title split.
    track: Track,
    /// A title of a live stream.
    stream: bool,
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
pub(crate) struct Tracker {
    thresholds: Thresholds,
    streams: Streams,
    play: Option<Play>,
    /// Stream skips already reported (station and reason).
    reported: VecDeque<String>,
}

impl Tracker {
    /// A tracker with no play in progress and the default stream settings.
    #[cfg(test)]
    pub(crate) fn new(thresholds: Thresholds) -> Tracker {
        Tracker::with_streams(thresholds, Streams::default())
    }

    /// A tracker with these `[streams]` settings.
    pub(crate) fn with_streams(thresholds: Thresholds, streams: Streams) -> Tracker {
        Tracker {
            thresholds,
            streams,
            play: None,
            reported: VecDeque::new(),
        }
    }

    /// Feed a fresh reading of MPD. `now` is a monotonic clock value and
    /// `unix_now` the wall clock in Unix seconds, both taken when the
    /// snapshot was read.
    pub(crate) fn observe(&mut self, snap: Snapshot, now: Instant, unix_now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(song) = snap.song.filter(|_| snap.state != PlayState::Stopped) else {
            actions.extend(self.end(now));
            return actions;
        };

        let same_song = self.play.as_ref().is_some_and(|p| {
            p.song.id == song.id
                && p.song.uri == song.uri
                && (!p.stream
                    || (p.song.track.artist == song.track.artist
                        && p.song.track.title == song.track.title))
        });
        if !same_song || self.is_replay(&snap.elapsed, now) {
            actions.extend(self.end(now));
        }

        match &mut self.play {
            Some(play) => {
                match (play.resumed_at.is_some(), snap.state) {
                    (false, PlayState::Playing) => {
                        play.resumed_at = Some(now);
                        actions.extend(now_playing(play));
                    }
                    (true, PlayState::Paused) => play.pause(now),
                    _ => {}
                }
                play.elapsed = snap.elapsed;
                play.observed_at = now;
            }
            None => {
                let playing = snap.state == PlayState::Playing;
                let is_stream = stream::is_stream(&song);
                let (track, required) = match self.check(&song, is_stream) {
                    Ok((track, required)) => (track, Some(required)),
                    Err(reason) => {
                        // A stream has no title for a moment after tuning in:
                        // no line for that.
                        let report = !is_stream
                            || (reason != Unscrobblable::MissingTags
                                && self.first_report(&song, &reason));
                        if report {
                            actions.push(Action::Skip {
                                uri: song.uri.clone(),
                                reason,
                            });
                        }
                        (song.track.clone(), None)
                    }
                };
                // A stream's elapsed time counts from when it was tuned in,
                // not from the start of the title.
                let started_at = if is_stream {
                    unix_now
                } else {
                    unix_now.saturating_sub(snap.elapsed.as_secs())
                };
                let play = Play {
                    song,
                    track,
                    stream: is_stream,
                    started_at,
                    banked: Duration::ZERO,
                    resumed_at: playing.then_some(now),
                    elapsed: snap.elapsed,
                    observed_at: now,
                    required,
                    qualified: false,
                };
                if playing {
                    actions.extend(now_playing(&play));
                }
                self.play = Some(play);
            }
        }
        actions.extend(self.tick(now));
        actions
    }

    /// Check whether the play has qualified by `now`; call it at
    /// [`Tracker::next_deadline`].
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Action> {
        let play = self.play.as_mut()?;
        let required = play.required?;
        if play.qualified || play.played(now) < required {
            return None;
        }
        play.qualified = true;
        Some(Action::Scrobble(Listen {
            track: play.track.clone(),
            started_at: play.started_at,
        }))
    }

    /// The current play ends (another song or title, a stop, a replay). A
    /// stream title that has not reached `max_required` qualifies now if it
    /// played at least `min_track`.
    fn end(&mut self, now: Instant) -> Option<Action> {
        let play = self.play.take()?;
        let played_enough = play.played(now) >= self.thresholds.min_track;
        (play.stream && play.required.is_some() && !play.qualified && played_enough).then_some(
            Action::Scrobble(Listen {
                track: play.track,
                started_at: play.started_at,
            }),
        )
    }

    /// Whether this stream skip is new: one line per station and reason (so
    /// per distinct title), not one at every title change.
    fn first_report(&mut self, song: &Song, reason: &Unscrobblable) -> bool {
        let key = format!("{}\n{reason}", song.uri);
        if self.reported.contains(&key) {
            return false;
        }
        if self.reported.len() == REPORTED_TITLES {
            self.reported.pop_front();
        }
        self.reported.push_back(key);
        true
    }

    /// The instant at which the current play would qualify if it keeps
    /// playing, so the caller can sleep exactly until then. `None` when
    /// nothing can happen without a new snapshot.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
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
    pub(crate) fn suspend(&mut self, now: Instant) {
        if let Some(play) = &mut self.play {
            play.pause(now);
        }
    }

    /// The song of the current play, and whether that play has qualified.
    pub(crate) fn current(&self) -> Option<(&Track, bool)> {
        self.play.as_ref().map(|p| (&p.track, p.qualified))
    }

    /// The thresholds a play is judged by.
    pub(crate) fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// The file or stream URI and start time of the current play.
    pub(crate) fn current_play(&self) -> Option<(&str, u64)> {
        self.play
            .as_ref()
            .map(|p| (p.song.uri.as_str(), p.started_at))
    }

    /// Play time so far and the play time needed, for the current play.
    pub(crate) fn progress(&self, now: Instant) -> Option<(Duration, Option<Duration>)> {
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

    /// The track to scrobble and the play time it needs, or why it never
    /// will be scrobbled.
    fn check(&self, song: &Song, is_stream: bool) -> Result<(Track, Duration), Unscrobblable> {
        if is_stream {
            return Ok((self.streams.read(song)?, self.thresholds.max_required));
        }
        if song.track.artist.trim().is_empty() || song.track.title.trim().is_empty() {
            return Err(Unscrobblable::MissingTags);
        }
        Ok((song.track.clone(), self.thresholds.required(song.duration)?))
    }
}

/// "Now playing" for a play with an artist and a title; never for a stream
/// title that will not be scrobbled (an ignored station, a station ID).
fn now_playing(play: &Play) -> Option<Action> {
    let t = &play.track;
    (!t.artist.trim().is_empty()
        && !t.title.trim().is_empty()
        && (!play.stream || play.required.is_some()))
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
            station: None,
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
        let thresholds = Thresholds {
            min_track: secs(1),
            played_percent: 100,
            max_required: Duration::MAX,
        };
        assert_eq!(thresholds.required(Some(Duration::MAX)), Ok(Duration::MAX));
        let mut t = Tracker::new(thresholds);
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
                tracker: Tracker::new(Thresholds::default()),
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

    const STATION: &str = "http://radio.example/live";

    /// The stream as MPD reports it while it plays `title`.
    fn on_air(title: &str) -> Song {
        Song {
            id: 9,
            uri: STATION.into(),
            track: Track {
                title: title.into(),
                file: Some(STATION.into()),
                ..Track::default()
            },
            duration: None,
            station: Some("Test FM".into()),
        }
    }

    fn titles(h: &Harness) -> Vec<(String, String, u64)> {
        h.scrobbles
            .iter()
            .map(|l| (l.track.artist.clone(), l.track.title.clone(), l.started_at))
            .collect()
    }

    fn stopped() -> Snapshot {
        Snapshot {
            state: PlayState::Stopped,
            song: None,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn stream_titles_are_plays_split_with_their_start_times() {
        let mut h = Harness::new();
        // Tuned in mid-stream: the first title counts from when it was seen.
        h.see(0, snap(PlayState::Playing, &on_air(""), 499));
        h.see(
            0,
            snap(PlayState::Playing, &on_air("Sigur Rós - Hoppípolla"), 500),
        );
        assert_eq!(h.now_playing, 1);
        assert_eq!(h.tracker.next_deadline(), Some(h.base + secs(240)));
        h.run_until(40);
        assert!(h.scrobbles.is_empty(), "a title qualifies when it ends");
        // A station ID: ends the first title, is itself skipped, once.
        h.see(40, snap(PlayState::Playing, &on_air("Test FM jingle"), 540));
        assert_eq!(titles(&h), [("Sigur Rós".into(), "Hoppípolla".into(), T0)]);
        assert_eq!(h.now_playing, 1, "no now playing for a station ID");
        h.see(50, snap(PlayState::Playing, &on_air("Björk — Jóga"), 550));
        assert_eq!(h.scrobbles.len(), 1, "the 10 s jingle is no play");
        assert_eq!(h.now_playing, 2);
        h.see(90, snap(PlayState::Playing, &on_air("Test FM jingle"), 590));
        h.see(95, snap(PlayState::Playing, &on_air("Ad - "), 595));
        assert_eq!(titles(&h)[1], ("Björk".into(), "Jóga".into(), T0 + 50));
        assert_eq!(
            h.skips,
            [
                Unscrobblable::Unsplittable("Test FM jingle".into()),
                Unscrobblable::Unsplittable("Ad -".into())
            ],
            "one report per distinct title"
        );
        assert!(
            h.scrobbles
                .iter()
                .all(|l| l.track.stream_url.as_deref() == Some(STATION))
        );
    }

    #[test]
    fn stream_title_shorter_than_the_minimum_is_not_scrobbled() {
        let mut h = Harness::new();
        h.see(0, snap(PlayState::Playing, &on_air("A - One"), 0));
        h.see(29, snap(PlayState::Playing, &on_air("B - Two"), 29));
        assert!(h.scrobbles.is_empty());
        h.see(59, snap(PlayState::Playing, &on_air("C - Three"), 59));
        assert_eq!(titles(&h), [("B".into(), "Two".into(), T0 + 29)]);
    }

    #[test]
    fn long_stream_title_qualifies_at_max_required_once() {
        let mut h = Harness::new();
        h.see(0, snap(PlayState::Playing, &on_air("A - Long Mix"), 0));
        h.run_until(239);
        assert!(h.scrobbles.is_empty());
        h.run_until(240);
        assert_eq!(h.scrobbles.len(), 1);
        h.see(600, snap(PlayState::Playing, &on_air("B - Next"), 600));
        assert_eq!(h.scrobbles.len(), 1, "not again when it ends");
    }

    #[test]
    fn stream_pause_stops_the_clock() {
        let mut h = Harness::new();
        h.see(0, snap(PlayState::Playing, &on_air("A - One"), 0));
        h.see(20, snap(PlayState::Paused, &on_air("A - One"), 20));
        h.see(500, snap(PlayState::Playing, &on_air("A - One"), 20));
        assert_eq!(h.now_playing, 2, "resume sends now playing again");
        h.see(505, snap(PlayState::Playing, &on_air("B - Two"), 25));
        assert!(h.scrobbles.is_empty(), "25 s of play, not 505");
        h.see(520, snap(PlayState::Paused, &on_air("B - Two"), 40));
        h.see(900, snap(PlayState::Playing, &on_air("B - Two"), 40));
        h.see(920, snap(PlayState::Playing, &on_air("C - Three"), 60));
        assert_eq!(titles(&h), [("B".into(), "Two".into(), T0 + 505)]);
    }

    #[test]
    fn stopping_a_stream_ends_its_title() {
        let mut h = Harness::new();
        h.see(0, snap(PlayState::Playing, &on_air("A - One"), 0));
        h.see(31, stopped());
        assert_eq!(titles(&h), [("A".into(), "One".into(), T0)]);
        h.see(40, snap(PlayState::Playing, &on_air("B - Two"), 0));
        h.see(45, stopped());
        assert_eq!(h.scrobbles.len(), 1, "5 s is below the minimum");
        // Another song ends a title too.
        h.see(50, snap(PlayState::Playing, &on_air("C - Three"), 0));
        h.see(90, snap(PlayState::Playing, &song(1, Some(200)), 0));
        assert_eq!(titles(&h)[1], ("C".into(), "Three".into(), T0 + 50));
    }

    #[test]
    fn streams_switched_off_or_ignored_are_reported_once_per_station() {
        let streams: Streams = {
            #[derive(serde::Deserialize)]
            struct Doc {
                streams: crate::rules::stream::RawStreams,
            }
            let doc: Doc = toml::from_str("[streams]\nenabled = false\n").unwrap();
            Streams::compile(doc.streams).unwrap()
        };
        let mut h = Harness::new();
        h.tracker = Tracker::with_streams(Thresholds::default(), streams);
        h.see(0, snap(PlayState::Playing, &on_air("A - One"), 0));
        h.see(100, snap(PlayState::Playing, &on_air("B - Two"), 100));
        h.see(200, snap(PlayState::Playing, &on_air("C - Three"), 200));
        h.run_until(10_000);
        assert!(h.scrobbles.is_empty());
        assert_eq!(h.now_playing, 0);
        assert_eq!(h.skips, [Unscrobblable::StreamsOff]);
    }

    #[test]
    fn rules_thresholds() {
        let r = Thresholds::default();
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
