//! A stand-in Last.fm 2.0 server on loopback that behaves like the real one
//! where the daemon can tell: form-encoded POSTs for writes, the `api_sig`
//! check (error 13), session keys (error 9 with HTTP 403), the 50-item batch
//! limit and contiguous indices (error 6), per-item `ignoredMessage` codes,
//! JSON replies in Last.fm's shape (a single scrobble comes back as a bare
//! object), and the desktop and mobile auth flows. `user.getRecentTracks`
//! reads back what it stored (newest first, paged, the track playing now
//! first and without a date). It fails on demand, can be slow (store, then
//! answer after the client gave up, as a real slow server does), can go down
//! (connection refused) and come back on the same port, and counts the
//! duplicates it stored (same user, track and timestamp), as Last.fm keeps
//! a resent scrobble.
//!
//! Runs on its own threads (see `http_server`), so sync tests, async tests
//! and the benchmark can all use it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::http_server::{Request, Response, Server};

pub const API_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const API_SECRET: &str = "fedcba9876543210fedcba9876543210";

/// Last.fm refuses scrobbles older than 14 days (code 3) and, like GNU FM,
/// more than 300 s in the future (code 4).
const MAX_AGE: u64 = 14 * 24 * 3600;
const MAX_AHEAD: u64 = 300;

/// One accepted scrobble (or a now-playing notice, with timestamp 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scrobbled {
    pub artist: String,
    pub track: String,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub track_number: Option<String>,
    pub duration: Option<String>,
    pub mbid: Option<String>,
    /// `chosenByUser`: "0" for radio; absent means the default, "1".
    pub chosen_by_user: Option<String>,
    pub timestamp: u64,
    pub user: String,
}

/// A failure to inflict on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This HTTP status with an HTML body, as a proxy in front of an outage.
    Http(u16),
    /// A JSON API error with the HTTP status Last.fm uses for it.
    Api(u32),
    /// Answer only after this long (and only then handle the request).
    Hang(Duration),
    /// Handle the request (store what it carries) after `store_after`, and
    /// answer only after `answer_after`: a slow server the client gave up on.
    Slow {
        store_after: Duration,
        answer_after: Duration,
    },
    /// Answer 503 after this long without storing anything: the request was
    /// lost behind a client that already gave up.
    Lost(Duration),
}

#[derive(Default)]
struct State {
    users: HashMap<String, String>,
    sessions: HashMap<String, String>,
    tokens: HashMap<String, Token>,
    token_lifetime: Option<Duration>,
    scrobbles: Vec<Scrobbled>,
    now_playing: Vec<Scrobbled>,
    batches: Vec<usize>,
    requests: HashMap<String, usize>,
    failure: Option<Failure>,
    fail_next: Option<(usize, Failure)>,
    /// Every n-th track.scrobble request suffers this.
    every_nth_scrobble: Option<(usize, Failure)>,
    scrobble_requests: usize,
    poison: Option<String>,
    counter: u64,
    /// track.love / track.unlove calls: artist, track, love.
    loves: Vec<(String, String, bool)>,
    /// Replies of read methods, by (lower-case method, lower-case subject).
    reads: HashMap<(String, String), Value>,
    /// The parameters of each `user.getRecentTracks` request, in order.
    recent_requests: Vec<BTreeMap<String, String>>,
    /// How long each `user.getRecentTracks` request takes to answer.
    recent_delay: Option<Duration>,
    /// Answer `user.getRecentTracks` as GNU FM (Libre.fm) does.
    gnu_fm: bool,
}

struct Token {
    issued: Instant,
    approved_by: Option<String>,
}

struct Shared {
    state: Mutex<State>,
}

/// The server. Dropping it stops it.
pub struct FakeLastFm {
    server: Server,
    shared: Arc<Shared>,
}

impl FakeLastFm {
    /// Listen on 127.0.0.1 on a free port.
    pub fn start() -> FakeLastFm {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                token_lifetime: Some(Duration::from_secs(3600)),
                ..State::default()
            }),
        });
        let handler_state = Arc::clone(&shared);
        let server = Server::start(move |req| {
            let (status, content_type, body) = handle(req, &handler_state);
            Response {
                status,
                content_type,
                headers: Vec::new(),
                body,
            }
        });
        FakeLastFm { server, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/2.0/", self.server.addr())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    pub fn add_user(&self, name: &str, password: &str) {
        self.state()
            .users
            .insert(name.to_string(), password.to_string());
    }

    /// A new valid session key for `user`.
    pub fn issue_session(&self, user: &str) -> String {
        let mut st = self.state();
        let key = new_key(&mut st, "session");
        st.sessions.insert(key.clone(), user.to_string());
        key
    }

    /// Invalidate every session of `user` (the user revoked the application).
    pub fn revoke_sessions(&self, user: &str) {
        self.state().sessions.retain(|_, u| u != user);
    }

    pub fn approve_token(&self, token: &str, user: &str) {
        if let Some(t) = self.state().tokens.get_mut(token) {
            t.approved_by = Some(user.to_string());
        }
    }

    pub fn set_token_lifetime(&self, d: Duration) {
        self.state().token_lifetime = Some(d);
    }

    pub fn pending_tokens(&self) -> Vec<String> {
        self.state()
            .tokens
            .iter()
            .filter(|(_, t)| t.approved_by.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn scrobbles(&self) -> Vec<Scrobbled> {
        self.state().scrobbles.clone()
    }

    pub fn now_playing(&self) -> Vec<Scrobbled> {
        self.state().now_playing.clone()
    }

    /// Size of each accepted track.scrobble request.
    pub fn scrobble_batches(&self) -> Vec<usize> {
        self.state().batches.clone()
    }

    /// Requests received for `method`, failed ones included.
    pub fn request_count(&self, method: &str) -> usize {
        self.state().requests.get(method).copied().unwrap_or(0)
    }

    pub fn set_failure(&self, f: Option<Failure>) {
        self.state().failure = f;
    }

    pub fn fail_next(&self, n: usize, f: Failure) {
        self.state().fail_next = Some((n, f));
    }

    /// Inflict `f` on every `n`-th track.scrobble request (`None`: stop).
    pub fn fail_every_nth_scrobble(&self, every: Option<(usize, Failure)>) {
        self.state().every_nth_scrobble = every;
    }

    /// How many stored scrobbles repeat an earlier one: same user, artist,
    /// title and timestamp.
    pub fn duplicates(&self) -> usize {
        let st = self.state();
        let mut seen = std::collections::HashSet::new();
        st.scrobbles
            .iter()
            .filter(|s| !seen.insert((&s.user, &s.artist, &s.track, s.timestamp)))
            .count()
    }

    /// Accepted track.love (`true`) and track.unlove calls.
    pub fn loves(&self) -> Vec<(String, String, bool)> {
        self.state().loves.clone()
    }

    /// Serve `reply` for a read `method` about `subject` (artist, "artist/album" or user).
    pub fn set_read(&self, method: &str, subject: &str, reply: Value) {
        self.state()
            .reads
            .insert((method.to_lowercase(), subject.to_lowercase()), reply);
    }

    /// Scrobbles of `user` made long ago (by another client): (timestamp,
    /// artist, track) each; `user.getRecentTracks` reads them back.
    pub fn add_history(&self, user: &str, plays: impl IntoIterator<Item = (u64, String, String)>) {
        let mut st = self.state();
        st.users.entry(user.to_string()).or_default();
        for (timestamp, artist, track) in plays {
            st.scrobbles.push(Scrobbled {
                artist,
                track,
                album: Some("Album".into()),
                album_artist: None,
                track_number: None,
                duration: None,
                mbid: None,
                chosen_by_user: None,
                timestamp,
                user: user.to_string(),
            });
        }
    }

    /// `user` is playing this track now (as another client told the server).
    pub fn add_now_playing(&self, user: &str, artist: &str, track: &str) {
        self.state().now_playing.push(Scrobbled {
            artist: artist.to_string(),
            track: track.to_string(),
            album: None,
            album_artist: None,
            track_number: None,
            duration: None,
            mbid: None,
            chosen_by_user: None,
            timestamp: 0,
            user: user.to_string(),
        });
    }

    /// The parameters of each `user.getRecentTracks` request so far
    /// (`api_key` included), in order of arrival.
    pub fn recent_requests(&self) -> Vec<BTreeMap<String, String>> {
        self.state().recent_requests.clone()
    }

    /// Answer `user.getRecentTracks` as GNU FM (Libre.fm) does: `from` and
    /// `to` ignored, pages counted over the whole record, and a page past
    /// the end is error 7 (gnu-fm `nixtape/api/UserXML.php`).
    pub fn set_gnu_fm(&self, on: bool) {
        self.state().gnu_fm = on;
    }

    /// Answer each `user.getRecentTracks` request only after `d`.
    pub fn set_recent_delay(&self, d: Option<Duration>) {
        self.state().recent_delay = d;
    }

    /// Refuse any track.scrobble batch containing this artist with error 6.
    pub fn set_poison_artist(&self, artist: Option<&str>) {
        self.state().poison = artist.map(str::to_string);
    }

    /// Stop listening: clients get "connection refused".
    pub fn go_down(&self) {
        self.server.go_down();
    }

    /// Listen again on the same port.
    pub fn come_up(&self) {
        self.server.come_up();
    }

    /// Wait until at least `n` scrobbles were accepted; returns what there is.
    pub fn wait_for_scrobbles(&self, n: usize, timeout: Duration) -> Vec<Scrobbled> {
        let start = Instant::now();
        loop {
            let got = self.scrobbles();
            if got.len() >= n || start.elapsed() > timeout {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

type Reply = (u16, &'static str, String);

fn api_error(code: u32, message: &str) -> Reply {
    let status = match code {
        11 | 16 => 503,
        29 => 429,
        4 | 9 | 10 | 13 | 26 => 403,
        _ => 400,
    };
    (
        status,
        "application/json",
        json!({"error": code, "message": message}).to_string(),
    )
}

fn handle(req: &Request, shared: &Shared) -> Reply {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    if path != "/2.0/" && path != "/2.0" {
        return (404, "text/html", "<html>not found</html>".into());
    }
    let mut params = parse_form(query);
    if req.method == "POST" {
        let content_type = req.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/x-www-form-urlencoded") {
            return api_error(
                5,
                "Invalid format - This service doesn't exist in that format",
            );
        }
        let Ok(body) = std::str::from_utf8(&req.body) else {
            return api_error(6, "Invalid parameters - body is not UTF-8");
        };
        params.extend(parse_form(body));
    }
    let method = params.get("method").cloned().unwrap_or_default();

    let (failure, delay) = {
        let mut st = shared.state.lock().unwrap();
        *st.requests.entry(method.clone()).or_default() += 1;
        let delay = if method.eq_ignore_ascii_case("user.getRecentTracks") {
            st.recent_requests.push(params.clone());
            st.recent_delay
        } else {
            None
        };
        let scrobble = method.eq_ignore_ascii_case("track.scrobble");
        if scrobble {
            st.scrobble_requests += 1;
        }
        let nth = match st.every_nth_scrobble {
            Some((n, f)) if scrobble && n > 0 && st.scrobble_requests % n == 0 => Some(f),
            _ => None,
        };
        let failure = match st.fail_next.as_mut() {
            Some((n, f)) if *n > 0 => {
                *n -= 1;
                Some(*f)
            }
            _ => nth.or(st.failure),
        };
        (failure, delay)
    };
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    match failure {
        Some(Failure::Http(status)) => {
            return (
                status,
                "text/html",
                format!("<html><body>{status}</body></html>"),
            );
        }
        Some(Failure::Api(code)) => return api_error(code, "Failure requested by the test"),
        Some(Failure::Hang(d)) => std::thread::sleep(d),
        Some(Failure::Lost(d)) => {
            std::thread::sleep(d);
            return (503, "text/html", "<html><body>503</body></html>".into());
        }
        Some(Failure::Slow { store_after, .. }) => std::thread::sleep(store_after),
        None => {}
    }

    let reply = dispatch(&req.method, &method, &params, shared);
    if let Some(Failure::Slow {
        store_after,
        answer_after,
    }) = failure
    {
        std::thread::sleep(answer_after.saturating_sub(store_after));
    }
    if params.get("format").map(String::as_str) == Some("json") {
        reply
    } else {
        // Without format=json Last.fm answers XML; the daemon must never rely on that.
        let (status, _, body) = reply;
        let ok = if status == 200 { "ok" } else { "failed" };
        (
            status,
            "text/xml",
            format!("<lfm status=\"{ok}\"><!-- {body} --></lfm>"),
        )
    }
}

const WRITES: &[&str] = &[
    "track.scrobble",
    "track.updatenowplaying",
    "track.love",
    "track.unlove",
    "auth.getmobilesession",
];

fn dispatch(
    http_method: &str,
    method: &str,
    p: &BTreeMap<String, String>,
    shared: &Shared,
) -> Reply {
    let lower = method.to_ascii_lowercase();
    if READS.contains(&lower.as_str()) {
        return read(&lower, p, shared);
    }
    // Without `sk`, user.getInfo is a plain read of a named user, which
    // these tests never need; with it, it is about the session's user.
    if lower == "user.getinfo" && !p.contains_key("sk") {
        return api_error(6, "Invalid parameters - user is required");
    }
    let known = WRITES.contains(&lower.as_str())
        || matches!(
            lower.as_str(),
            "auth.gettoken" | "auth.getsession" | "user.getinfo"
        );
    if !known {
        return api_error(
            3,
            "Invalid Method - No method with that name in this package",
        );
    }
    if WRITES.contains(&lower.as_str()) && http_method != "POST" {
        return api_error(3, "Invalid Method - write methods must be POSTed");
    }
    if p.get("api_key").map(String::as_str) != Some(API_KEY) {
        return api_error(
            10,
            "Invalid API key - You must be granted a valid key by last.fm",
        );
    }
    if p.get("api_sig") != Some(&signature(p)) {
        return api_error(13, "Invalid method signature supplied");
    }
    let mut st = shared.state.lock().unwrap();
    match lower.as_str() {
        "auth.gettoken" => {
            let token = new_key(&mut st, "token");
            st.tokens.insert(
                token.clone(),
                Token {
                    issued: Instant::now(),
                    approved_by: None,
                },
            );
            ok(json!({ "token": token }))
        }
        "auth.getsession" => {
            let Some(token) = p.get("token") else {
                return api_error(6, "Invalid parameters - token missing");
            };
            let lifetime = st.token_lifetime.unwrap_or(Duration::from_secs(3600));
            let Some(t) = st.tokens.get(token) else {
                return api_error(4, "Invalid authentication token supplied");
            };
            if t.issued.elapsed() > lifetime {
                return api_error(15, "This token has expired");
            }
            let Some(user) = t.approved_by.clone() else {
                return api_error(14, "This token has not been authorized");
            };
            st.tokens.remove(token);
            session_reply(&mut st, &user)
        }
        "auth.getmobilesession" => {
            let user = p.get("username").cloned().unwrap_or_default();
            let Some((name, password)) = st
                .users
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&user))
                .map(|(n, pw)| (n.clone(), pw.clone()))
            else {
                return api_error(
                    4,
                    "Authentication Failed - You do not have permissions to access the service",
                );
            };
            let good = match (p.get("password"), p.get("authToken")) {
                (Some(pw), _) => *pw == password,
                (None, Some(token)) => *token == auth_token(&name, &password),
                (None, None) => return api_error(6, "Invalid parameters - password missing"),
            };
            if !good {
                return api_error(
                    4,
                    "Authentication Failed - You do not have permissions to access the service",
                );
            }
            session_reply(&mut st, &name)
        }
        _ => {
            let Some(user) = p.get("sk").and_then(|sk| st.sessions.get(sk)).cloned() else {
                return api_error(9, "Invalid session key - Please re-authenticate");
            };
            match lower.as_str() {
                "track.scrobble" => scrobble(&mut st, p, &user),
                "track.updatenowplaying" => now_playing(&mut st, p, &user),
                "user.getinfo" => ok(json!({"user": {
                    "name": user,
                    "realname": "",
                    "playcount": st.scrobbles.len().to_string(),
                    "url": format!("https://www.last.fm/user/{user}"),
                    "registered": {"unixtime": "1200000000", "#text": 1200000000},
                }})),
                _ => {
                    let (Some(artist), Some(track)) = (p.get("artist"), p.get("track")) else {
                        return api_error(6, "Invalid parameters - artist and track are required");
                    };
                    let love = (artist.clone(), track.clone(), lower == "track.love");
                    st.loves.push(love);
                    ok(json!({}))
                }
            }
        }
    }
}

const READS: &[&str] = &[
    "artist.getinfo",
    "album.getinfo",
    "artist.search",
    "user.gettopartists",
    "user.gettoptracks",
    "user.getrecenttracks",
];

/// The parameter a read method is about; Last.fm matches names without
/// regard to case.
fn subject(method: &str, p: &BTreeMap<String, String>) -> String {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    match method {
        "album.getinfo" => format!("{}/{}", get("artist"), get("album")),
        m if m.starts_with("user.") => get("user"),
        _ => get("artist"),
    }
    .to_lowercase()
}

/// Unsigned reads: the API key must be valid; the reply is the stored one,
/// or error 6 "not found" with HTTP 404 like Last.fm.
fn read(method: &str, p: &BTreeMap<String, String>, shared: &Shared) -> Reply {
    if p.get("api_key").map(String::as_str) != Some(API_KEY) {
        return api_error(
            10,
            "Invalid API key - You must be granted a valid key by last.fm",
        );
    }
    let st = shared.state.lock().unwrap();
    let fixture = st.reads.get(&(method.to_string(), subject(method, p)));
    // A fixture serves the metadata tests; a window (`from`/`to`) or the
    // absence of a fixture means what was stored.
    if method == "user.getrecenttracks"
        && (fixture.is_none() || p.contains_key("from") || p.contains_key("to"))
    {
        return recent_tracks(&st, p);
    }
    match fixture {
        Some(reply) => ok(reply.clone()),
        None if method == "artist.search" => ok(json!({"results": {
            "opensearch:totalResults": "0", "artistmatches": {"artist": []},
            "@attr": {"for": p.get("artist").cloned().unwrap_or_default()}}})),
        None => {
            let (_, ct, body) = api_error(6, "The artist you supplied could not be found");
            (404, ct, body)
        }
    }
}

/// `user.getRecentTracks` from the stored scrobbles, in Last.fm's shape
/// (docs/protocols.md, "Reading listens back"): newest first; `from`/`to`
/// exclude their bounds; `limit` (default 50, at most 200) and 1-based `page`;
/// the track playing now (the user's last notice, when any) comes first on page
/// 1 with no `date`; one item is a bare object; numbers are strings.
fn recent_tracks(st: &State, p: &BTreeMap<String, String>) -> Reply {
    let user = p.get("user").cloned().unwrap_or_default();
    let Some(user) = st
        .users
        .keys()
        .chain(st.sessions.values())
        .find(|u| u.eq_ignore_ascii_case(&user))
        .cloned()
    else {
        let (_, ct, body) = api_error(6, "User not found");
        return (404, ct, body);
    };
    let number = |k: &str| p.get(k).and_then(|v| v.parse::<u64>().ok());
    let (from, to) = if st.gnu_fm {
        (None, None)
    } else {
        (number("from"), number("to"))
    };
    let limit = number("limit").unwrap_or(50).clamp(1, 200) as usize;
    let page = number("page").unwrap_or(1).max(1) as usize;
    let mut mine: Vec<&Scrobbled> = st
        .scrobbles
        .iter()
        .filter(|s| s.user == user)
        .filter(|s| from.is_none_or(|f| s.timestamp > f) && to.is_none_or(|t| s.timestamp < t))
        .collect();
    mine.sort_by_key(|s| std::cmp::Reverse(s.timestamp));
    let total = mine.len();
    let pages = total.div_ceil(limit).max(1);
    if st.gnu_fm && (page - 1) * limit >= total {
        return api_error(7, "Invalid resource specified");
    }
    let mut tracks: Vec<Value> = Vec::new();
    if page == 1 {
        if let Some(np) = st.now_playing.iter().rev().find(|s| s.user == user) {
            tracks.push(json!({
                "@attr": {"nowplaying": "true"},
                "artist": {"#text": np.artist, "mbid": ""},
                "album": {"#text": np.album.clone().unwrap_or_default(), "mbid": ""},
                "name": np.track, "mbid": "", "url": "", "streamable": "0",
            }));
        }
    }
    tracks.extend(mine.iter().skip((page - 1) * limit).take(limit).map(|s| {
        json!({
            "artist": {"#text": s.artist, "mbid": ""},
            "album": {"#text": s.album.clone().unwrap_or_default(), "mbid": ""},
            "name": s.track, "mbid": "", "url": "", "streamable": "0",
            "date": {"uts": s.timestamp.to_string(), "#text": "01 Jan 2024, 00:00"},
        })
    }));
    let track = match tracks.len() {
        1 => tracks.pop().unwrap(),
        _ => Value::Array(tracks),
    };
    ok(json!({"recenttracks": {
        "@attr": {"user": user, "page": page.to_string(), "perPage": limit.to_string(),
                  "totalPages": pages.to_string(), "total": total.to_string()},
        "track": track,
    }}))
}

fn ok(v: Value) -> Reply {
    (200, "application/json", v.to_string())
}

fn session_reply(st: &mut State, user: &str) -> Reply {
    let key = new_key(st, "session");
    st.sessions.insert(key.clone(), user.to_string());
    ok(json!({"session": {"name": user, "key": key, "subscriber": 0}}))
}

fn corrected(text: &str) -> Value {
    json!({"corrected": "0", "#text": text})
}

fn item(p: &BTreeMap<String, String>, name: &str, suffix: &str) -> Option<String> {
    p.get(&format!("{name}{suffix}")).cloned()
}

fn now_playing(st: &mut State, p: &BTreeMap<String, String>, user: &str) -> Reply {
    let (Some(artist), Some(track)) = (item(p, "artist", ""), item(p, "track", "")) else {
        return api_error(6, "Invalid parameters - artist and track are required");
    };
    let s = Scrobbled {
        artist: artist.clone(),
        track: track.clone(),
        album: item(p, "album", ""),
        album_artist: item(p, "albumArtist", ""),
        track_number: item(p, "trackNumber", ""),
        duration: item(p, "duration", ""),
        mbid: item(p, "mbid", ""),
        chosen_by_user: item(p, "chosenByUser", ""),
        timestamp: 0,
        user: user.to_string(),
    };
    let reply = json!({"nowplaying": {
        "artist": corrected(&artist),
        "track": corrected(&track),
        "album": corrected(s.album.as_deref().unwrap_or("")),
        "albumArtist": corrected(s.album_artist.as_deref().unwrap_or("")),
        "ignoredMessage": {"code": "0", "#text": ""},
    }});
    st.now_playing.push(s);
    ok(reply)
}

fn scrobble(st: &mut State, p: &BTreeMap<String, String>, user: &str) -> Reply {
    // Items are `name[i]`, contiguous from 0; a lone item may omit the index.
    let indexed = p.contains_key("artist[0]");
    let mut items = Vec::new();
    if indexed {
        let max_index = p
            .keys()
            .filter_map(|k| k.split_once('[').and_then(|(_, r)| r.strip_suffix(']')))
            .filter_map(|i| i.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        for i in 0..=max_index {
            let suffix = format!("[{i}]");
            let (Some(artist), Some(track), Some(ts)) = (
                item(p, "artist", &suffix),
                item(p, "track", &suffix),
                item(p, "timestamp", &suffix),
            ) else {
                return api_error(
                    6,
                    "Invalid parameters - artist, track and timestamp are required for every item",
                );
            };
            items.push((artist, track, ts, suffix));
        }
    } else {
        let (Some(artist), Some(track), Some(ts)) = (
            item(p, "artist", ""),
            item(p, "track", ""),
            item(p, "timestamp", ""),
        ) else {
            return api_error(
                6,
                "Invalid parameters - artist, track and timestamp are required",
            );
        };
        items.push((artist, track, ts, String::new()));
    }
    if items.len() > 50 {
        return api_error(6, "Invalid parameters - at most 50 scrobbles per request");
    }
    if let Some(poison) = &st.poison {
        if items.iter().any(|(a, ..)| a == poison) {
            return api_error(6, "Invalid parameters");
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut echoed = Vec::new();
    let (mut accepted, mut ignored) = (0, 0);
    for (artist, track, ts, suffix) in items {
        let Ok(timestamp) = ts.parse::<u64>() else {
            return api_error(6, "Invalid parameters - timestamp is not a number");
        };
        let (code, message) = if artist == "Unknown Artist" {
            ("1", "Artist was ignored")
        } else if timestamp + MAX_AGE < now {
            ("3", "Timestamp was too old")
        } else if timestamp > now + MAX_AHEAD {
            ("4", "Timestamp was too new")
        } else {
            ("0", "")
        };
        let album = item(p, "album", &suffix);
        let album_artist = item(p, "albumArtist", &suffix);
        echoed.push(json!({
            "artist": corrected(&artist),
            "track": corrected(&track),
            "album": album.as_deref().map_or(json!({"corrected": "0"}), corrected),
            "albumArtist": corrected(album_artist.as_deref().unwrap_or("")),
            "timestamp": ts,
            "ignoredMessage": {"code": code, "#text": message},
        }));
        if code == "0" {
            accepted += 1;
            st.scrobbles.push(Scrobbled {
                artist,
                track,
                album,
                album_artist,
                track_number: item(p, "trackNumber", &suffix),
                duration: item(p, "duration", &suffix),
                mbid: item(p, "mbid", &suffix),
                chosen_by_user: item(p, "chosenByUser", &suffix),
                timestamp,
                user: user.to_string(),
            });
        } else {
            ignored += 1;
        }
    }
    st.batches.push(echoed.len());
    let scrobble = if echoed.len() == 1 {
        echoed.pop().unwrap()
    } else {
        Value::Array(echoed)
    };
    ok(json!({"scrobbles": {
        "scrobble": scrobble,
        "@attr": {"accepted": accepted, "ignored": ignored},
    }}))
}

/// api_sig as Last.fm computes it (docs/protocols.md, "Signing"), independently of the
/// client's code.
fn signature(p: &BTreeMap<String, String>) -> String {
    let mut base = String::new();
    for (k, v) in p {
        if k != "format" && k != "callback" && k != "api_sig" {
            base.push_str(k);
            base.push_str(v);
        }
    }
    base.push_str(API_SECRET);
    md5_hex(&base)
}

fn auth_token(user: &str, password: &str) -> String {
    md5_hex(&format!("{}{}", user.to_lowercase(), md5_hex(password)))
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn new_key(st: &mut State, kind: &str) -> String {
    st.counter += 1;
    md5_hex(&format!("{kind}{}{:?}", st.counter, SystemTime::now()))
}

/// Decode `application/x-www-form-urlencoded` (also used for query strings).
fn parse_form(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
