//! A stand-in ListenBrainz server on loopback that validates requests like
//! listenbrainz-server (docs/protocols.md, "ListenBrainz"): the `Authorization:
//! Token` header (401), the document schema and listen types, the per-request
//! count and size limits, timestamps, MBIDs and durations (400), rate-limit
//! headers on every answer and 429 on demand. The Maloja flavour reproduces
//! Maloja's endpoint instead (docs/protocols.md, "Maloja"): no limits,
//! playing_now discarded, listens keyed by timestamp, and an import that stops
//! at the first duplicate or conflict.
//! `GET /1/user/{user}/listens` reads back what was stored (newest first,
//! exclusive `min_ts`/`max_ts`, `count` capped at 1000; Maloja has no such
//! method). It can be slow (store, then answer after the client gave up) and
//! counts the duplicates it stored (same user, track and timestamp).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::http_server::{Request, Response, Server};

pub const TOKEN: &str = "01234567-89ab-cdef-0123-456789abcdef";

const MAX_LISTENS_PER_REQUEST: usize = 1000;
const MAX_LISTEN_SIZE: usize = 10_240;
const MAX_PAYLOAD_SIZE: usize = 10_240_000;
const LISTEN_MINIMUM_TS: u64 = 1_033_430_400;
const ALLOWED_SKEW: u64 = 3600;
const MAX_DURATION_SECS: u64 = 24 * 24 * 3600;

/// Which server to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    ListenBrainz,
    Maloja,
}

/// One listen the server stored (or a playing_now it saw).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub listen_type: String,
    pub listened_at: Option<u64>,
    pub artist_name: String,
    pub track_name: String,
    pub release_name: Option<String>,
    pub additional_info: Value,
    pub user: String,
}

/// A failure to inflict on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This status with a JSON error body.
    Status(u16),
    /// 429 with X-RateLimit-Reset-In.
    RateLimited { reset_in: u64 },
    /// Answer only after this long (and only then handle the request).
    Hang(Duration),
    /// Handle the request (store what it carries) after `store_after`, and
    /// answer only after `answer_after`: a slow server the client gave up on.
    Slow {
        store_after: Duration,
        answer_after: Duration,
    },
    /// Answer 503 after this long without storing anything.
    Lost(Duration),
}

/// Most listens one read returns (`MAX_ITEMS_PER_GET`); 25 when not asked.
const MAX_ITEMS_PER_GET: usize = 1000;
const DEFAULT_ITEMS_PER_GET: usize = 25;

#[derive(Default)]
struct State {
    tokens: HashMap<String, String>,
    listens: Vec<Received>,
    playing_now: Vec<Received>,
    submissions: Vec<(String, usize)>,
    requests: usize,
    failure: Option<Failure>,
    fail_next: Option<(usize, Failure)>,
    /// Every n-th submission of listens (not playing_now) suffers this.
    every_nth_submission: Option<(usize, Failure)>,
    listen_submissions: usize,
    /// When each submission of listens arrived, and whether it was answered
    /// with a rate-limit 429.
    submission_times: Vec<(Instant, bool)>,
    poison: Option<String>,
    feedback: Vec<(String, i64)>,
    /// The query of each `/1/user/{user}/listens` request, in order.
    listens_requests: Vec<String>,
    /// How long each `/1/user/{user}/listens` request takes to answer.
    listens_delay: Option<Duration>,
}

pub struct FakeListenBrainz {
    server: Server,
    flavor: Flavor,
    state: Arc<Mutex<State>>,
}

impl FakeListenBrainz {
    pub fn start() -> FakeListenBrainz {
        FakeListenBrainz::start_flavor(Flavor::ListenBrainz)
    }

    pub fn start_flavor(flavor: Flavor) -> FakeListenBrainz {
        let state = Arc::new(Mutex::new(State::default()));
        state
            .lock()
            .unwrap()
            .tokens
            .insert(TOKEN.to_string(), "alice".to_string());
        let handler_state = Arc::clone(&state);
        let server = Server::start(move |req| handle(req, flavor, &handler_state));
        FakeListenBrainz {
            server,
            flavor,
            state,
        }
    }

    /// The API root: the part before `/1/`.
    pub fn url(&self) -> String {
        match self.flavor {
            Flavor::ListenBrainz => format!("http://{}", self.server.addr()),
            Flavor::Maloja => format!("http://{}/apis/listenbrainz", self.server.addr()),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn add_token(&self, token: &str, user: &str) {
        self.st().tokens.insert(token.to_string(), user.to_string());
    }

    pub fn revoke_token(&self, token: &str) {
        self.st().tokens.remove(token);
    }

    /// Stored listens (single and import), in arrival order.
    pub fn listens(&self) -> Vec<Received> {
        self.st().listens.clone()
    }

    pub fn playing_now(&self) -> Vec<Received> {
        self.st().playing_now.clone()
    }

    /// (listen_type, number of listens) of each accepted submission.
    pub fn submissions(&self) -> Vec<(String, usize)> {
        self.st().submissions.clone()
    }

    /// Recording feedback received: (recording MBID, score).
    pub fn feedback(&self) -> Vec<(String, i64)> {
        self.st().feedback.clone()
    }

    /// When each submission of listens (not playing_now) arrived, failed
    /// ones included, and whether it was answered with a rate-limit 429.
    pub fn submission_times(&self) -> Vec<(Instant, bool)> {
        self.st().submission_times.clone()
    }

    /// All requests, failed ones included.
    pub fn request_count(&self) -> usize {
        self.st().requests
    }

    pub fn set_failure(&self, f: Option<Failure>) {
        self.st().failure = f;
    }

    pub fn fail_next(&self, n: usize, f: Failure) {
        self.st().fail_next = Some((n, f));
    }

    /// Inflict `f` on every `n`-th submission of listens (`None`: stop).
    pub fn fail_every_nth_submission(&self, every: Option<(usize, Failure)>) {
        self.st().every_nth_submission = every;
    }

    /// How many stored listens repeat an earlier one: same user, artist,
    /// title and `listened_at`.
    pub fn duplicates(&self) -> usize {
        let st = self.st();
        let mut seen = std::collections::HashSet::new();
        st.listens
            .iter()
            .filter(|l| !seen.insert((&l.user, &l.artist_name, &l.track_name, l.listened_at)))
            .count()
    }

    /// Refuse any submission containing this artist with a 400.
    /// Listens of `user` made long ago (by another client): (listened_at,
    /// artist, track) each; `/1/user/{user}/listens` reads them back.
    pub fn add_history(&self, user: &str, plays: impl IntoIterator<Item = (u64, String, String)>) {
        let mut st = self.st();
        for (at, artist, track) in plays {
            st.listens.push(Received {
                listen_type: "import".into(),
                listened_at: Some(at),
                artist_name: artist,
                track_name: track,
                release_name: Some("Album".into()),
                additional_info: json!({"duration_ms": 200_000}),
                user: user.to_string(),
            });
        }
    }

    /// The query string of each `/1/user/{user}/listens` request so far.
    pub fn listens_requests(&self) -> Vec<String> {
        self.st().listens_requests.clone()
    }

    /// Answer each `/1/user/{user}/listens` request only after `d`.
    pub fn set_listens_delay(&self, d: Option<Duration>) {
        self.st().listens_delay = d;
    }

    pub fn set_poison_artist(&self, artist: Option<&str>) {
        self.st().poison = artist.map(str::to_string);
    }

    pub fn go_down(&self) {
        self.server.go_down();
    }

    pub fn come_up(&self) {
        self.server.come_up();
    }

    pub fn wait_for_listens(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.listens();
            if got.len() >= n || start.elapsed() > timeout {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn reply(flavor: Flavor, status: u16, body: Value) -> Response {
    // Maloja sends no rate-limit headers; ListenBrainz sends them on every answer.
    let headers = match flavor {
        Flavor::ListenBrainz => vec![
            ("X-RateLimit-Limit".to_string(), "1000".to_string()),
            ("X-RateLimit-Remaining".to_string(), "999".to_string()),
            ("X-RateLimit-Reset-In".to_string(), "10".to_string()),
            ("X-RateLimit-Reset".to_string(), (now() + 10).to_string()),
        ],
        Flavor::Maloja => Vec::new(),
    };
    Response {
        status,
        content_type: "application/json",
        headers,
        body: body.to_string(),
    }
}

fn error(flavor: Flavor, status: u16, message: &str) -> Response {
    reply(flavor, status, json!({"code": status, "error": message}))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn handle(req: &Request, flavor: Flavor, state: &Mutex<State>) -> Response {
    let prefix = match flavor {
        Flavor::ListenBrainz => "/1/",
        Flavor::Maloja => "/apis/listenbrainz/1/",
    };
    let path = req.path.split('?').next().unwrap_or_default();
    let Some(endpoint) = path.strip_prefix(prefix) else {
        return error(flavor, 404, "Not found");
    };
    let reads_listens = endpoint.starts_with("user/") && endpoint.ends_with("/listens");
    let (failure, delay) = {
        let mut st = state.lock().unwrap();
        st.requests += 1;
        let delay = if reads_listens {
            let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
            st.listens_requests.push(query.to_string());
            st.listens_delay
        } else {
            None
        };
        // Listens, not playing_now notices (the body says which).
        let listens = endpoint == "submit-listens"
            && !String::from_utf8_lossy(&req.body).contains("\"playing_now\"");
        if listens {
            st.listen_submissions += 1;
        }
        let nth = match st.every_nth_submission {
            Some((n, f)) if listens && n > 0 && st.listen_submissions % n == 0 => Some(f),
            _ => None,
        };
        let failure = match st.fail_next.as_mut() {
            Some((n, f)) if *n > 0 => {
                *n -= 1;
                Some(*f)
            }
            _ => nth.or(st.failure),
        };
        if listens {
            let limited = matches!(failure, Some(Failure::RateLimited { .. }));
            st.submission_times.push((Instant::now(), limited));
        }
        (failure, delay)
    };
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    match failure {
        Some(Failure::Status(status)) => {
            return error(flavor, status, "Failure requested by the test");
        }
        Some(Failure::RateLimited { reset_in }) => {
            let mut r = error(flavor, 429, "Too many requests. Please wait and try again.");
            r.headers = vec![
                ("X-RateLimit-Limit".to_string(), "30".to_string()),
                ("X-RateLimit-Remaining".to_string(), "0".to_string()),
                ("X-RateLimit-Reset-In".to_string(), reset_in.to_string()),
            ];
            return r;
        }
        Some(Failure::Hang(d)) => std::thread::sleep(d),
        Some(Failure::Lost(d)) => {
            std::thread::sleep(d);
            return error(
                flavor,
                503,
                "Cannot submit listens to queue, please try again later.",
            );
        }
        Some(Failure::Slow {
            store_after,
            answer_after,
        }) => {
            std::thread::sleep(store_after);
            let r = route(req, flavor, endpoint, state);
            std::thread::sleep(answer_after.saturating_sub(store_after));
            return r;
        }
        None => {}
    }
    route(req, flavor, endpoint, state)
}

fn route(req: &Request, flavor: Flavor, endpoint: &str, state: &Mutex<State>) -> Response {
    // The server takes the second word of the header, whatever the first.
    let token = req
        .header("authorization")
        .and_then(|h| h.split_whitespace().nth(1))
        .map(str::to_string);
    let user = token
        .as_ref()
        .and_then(|t| state.lock().unwrap().tokens.get(t).cloned());
    match (req.method.as_str(), endpoint) {
        ("GET", "validate-token") => match (token, user, flavor) {
            (None, _, _) => error(flavor, 400, "You need to provide an Authorization token."),
            (Some(_), Some(user), _) => reply(
                flavor,
                200,
                json!({"code": 200, "message": "Token valid.", "valid": true, "user_name": user}),
            ),
            (Some(_), None, Flavor::Maloja) => error(flavor, 401, "Incorrect Authorization"),
            (Some(_), None, Flavor::ListenBrainz) => reply(
                flavor,
                200,
                json!({"code": 200, "message": "Token invalid.", "valid": false}),
            ),
        },
        ("POST", "feedback/recording-feedback") => {
            if user.is_none() {
                return error(flavor, 401, "Invalid authorization token.");
            }
            let Ok(doc) = serde_json::from_slice::<Value>(&req.body) else {
                return error(flavor, 400, "Cannot parse JSON document");
            };
            let mbid = doc["recording_mbid"].as_str().unwrap_or_default();
            let score = doc["score"].as_i64();
            if !is_uuid(mbid) || !matches!(score, Some(-1..=1)) {
                return error(flavor, 400, "Invalid recording_mbid or score");
            }
            state
                .lock()
                .unwrap()
                .feedback
                .push((mbid.to_string(), score.unwrap_or(0)));
            reply(flavor, 200, json!({"status": "ok"}))
        }
        ("POST", "submit-listens") => {
            let Some(user) = user else {
                return match (token, flavor) {
                    (None, _) => error(flavor, 401, "You need to provide an Authorization header."),
                    (Some(_), Flavor::Maloja) => error(flavor, 401, "Incorrect Authorization"),
                    (Some(_), Flavor::ListenBrainz) => {
                        error(flavor, 401, "Invalid authorization token.")
                    }
                };
            };
            submit(req, flavor, &user, state)
        }
        ("GET", e) if flavor == Flavor::ListenBrainz && e.starts_with("user/") => {
            match e
                .strip_prefix("user/")
                .and_then(|r| r.strip_suffix("/listens"))
            {
                Some(name) => user_listens(req, flavor, &percent_decode(name), state),
                None => error(flavor, 404, "Not found"),
            }
        }
        _ => error(flavor, 404, "Not found"),
    }
}

/// `GET /1/user/{user}/listens` (docs/protocols.md, "Reading listens back"): newest first, both
/// bounds exclusive, `count` silently capped.
fn user_listens(req: &Request, flavor: Flavor, user: &str, state: &Mutex<State>) -> Response {
    let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.parse::<u64>())
    };
    let (min_ts, max_ts, count) = match (param("min_ts"), param("max_ts"), param("count")) {
        (Some(Err(_)), ..) | (_, Some(Err(_)), _) | (.., Some(Err(_))) => {
            return error(flavor, 400, "Invalid parameter value.");
        }
        (min, max, count) => (
            min.and_then(Result::ok),
            max.and_then(Result::ok),
            count.and_then(Result::ok),
        ),
    };
    if let (Some(min), Some(max)) = (min_ts, max_ts) {
        if max < min {
            return error(flavor, 400, "max_ts should be greater than min_ts");
        }
    }
    let count = count
        .map_or(DEFAULT_ITEMS_PER_GET, |c| c as usize)
        .min(MAX_ITEMS_PER_GET);
    let st = state.lock().unwrap();
    if !st.tokens.values().any(|u| u == user) && !st.listens.iter().any(|l| l.user == user) {
        return error(flavor, 404, &format!("Cannot find user: {user}"));
    }
    let mut mine: Vec<&Received> = st
        .listens
        .iter()
        .filter(|l| l.user == user)
        .filter(|l| {
            let at = l.listened_at.unwrap_or(0);
            min_ts.is_none_or(|m| at > m) && max_ts.is_none_or(|m| at < m)
        })
        .collect();
    mine.sort_by_key(|l| std::cmp::Reverse(l.listened_at));
    mine.truncate(count);
    let own = || {
        st.listens
            .iter()
            .filter(|l| l.user == user)
            .filter_map(|l| l.listened_at)
    };
    let listens: Vec<Value> = mine
        .iter()
        .map(|l| {
            json!({
                "listened_at": l.listened_at,
                "inserted_at": l.listened_at,
                "recording_msid": "00000000-0000-0000-0000-000000000000",
                "user_name": l.user,
                "track_metadata": {
                    "artist_name": l.artist_name,
                    "track_name": l.track_name,
                    "release_name": l.release_name,
                    "additional_info": l.additional_info,
                },
            })
        })
        .collect();
    reply(
        flavor,
        200,
        json!({"payload": {
            "count": listens.len(),
            "user_id": user,
            "latest_listen_ts": own().max(),
            "oldest_listen_ts": own().min(),
            "listens": listens,
        }}),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn submit(req: &Request, flavor: Flavor, user: &str, state: &Mutex<State>) -> Response {
    let content_type = req.header("content-type").unwrap_or_default();
    if flavor == Flavor::ListenBrainz && !content_type.starts_with("application/json") {
        return error(flavor, 400, "Content-Type must be application/json.");
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&req.body) else {
        return error(flavor, 400, "Cannot parse JSON document");
    };
    let listen_type = doc["listen_type"].as_str().unwrap_or_default().to_string();
    let Some(payload) = doc["payload"].as_array().filter(|p| !p.is_empty()) else {
        return error(flavor, 400, "JSON document does not contain any listens");
    };
    if flavor == Flavor::Maloja {
        return maloja_submit(flavor, &listen_type, payload, user, state);
    }
    if !matches!(listen_type.as_str(), "single" | "playing_now" | "import") {
        return error(
            flavor,
            400,
            "JSON document requires a valid listen_type key.",
        );
    }
    if listen_type != "import" && payload.len() != 1 {
        return error(
            flavor,
            400,
            "JSON document contains more than listen for a single/playing_now.",
        );
    }
    if payload.len() > MAX_LISTENS_PER_REQUEST {
        return error(
            flavor,
            400,
            "Too many listens. You may not submit more than 1000.",
        );
    }
    if req.body.len() > MAX_PAYLOAD_SIZE {
        return error(flavor, 400, "Payload too large.");
    }
    if req.body.len() > payload.len() * MAX_LISTEN_SIZE {
        return error(flavor, 400, "JSON document is too large.");
    }
    let mut received = Vec::new();
    for listen in payload {
        match validate(listen, &listen_type, user) {
            Ok(r) => received.push(r),
            Err(message) => return error(flavor, 400, &message),
        }
    }
    let mut st = state.lock().unwrap();
    if let Some(poison) = &st.poison {
        if received.iter().any(|r| &r.artist_name == poison) {
            return error(flavor, 400, "Listen rejected by the test");
        }
    }
    st.submissions.push((listen_type.clone(), received.len()));
    if listen_type == "playing_now" {
        st.playing_now.extend(received);
    } else {
        st.listens.extend(received);
    }
    reply(flavor, 200, json!({"status": "ok"}))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// listenbrainz-server's checks of one listen (api_tools.py).
fn validate(listen: &Value, listen_type: &str, user: &str) -> Result<Received, String> {
    let Some(obj) = listen.as_object() else {
        return Err("Listen must be a JSON object.".into());
    };
    let allowed: &[&str] = if listen_type == "playing_now" {
        &["track_metadata"]
    } else {
        &["listened_at", "track_metadata"]
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("Unexpected key {k} in listen."));
    }
    if has_nul(listen) {
        return Err("String contains a unicode null.".into());
    }
    let listened_at = match (listen_type, obj.get("listened_at")) {
        ("playing_now", _) => None,
        (_, None) => return Err("JSON document must contain the key listened_at.".into()),
        (_, Some(ts)) => {
            let ts = ts
                .as_u64()
                .ok_or("Value for key listened_at must be an integer.")?;
            if ts < LISTEN_MINIMUM_TS {
                return Err("Value for key listened_at is too low.".into());
            }
            if ts >= now() + ALLOWED_SKEW {
                return Err("Value for key listened_at is too high.".into());
            }
            Some(ts)
        }
    };
    let meta = obj
        .get("track_metadata")
        .and_then(Value::as_object)
        .ok_or("JSON document must contain the key track_metadata.")?;
    let text = |key: &str| -> Result<String, String> {
        match meta.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(format!("field track_metadata.{key} is empty.")),
            _ => Err(format!("{key} must be a string.")),
        }
    };
    let artist_name = text("artist_name")?;
    let track_name = text("track_name")?;
    let release_name = match meta.get("release_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err("release_name must be a string.".into()),
    };
    let info = meta.get("additional_info").cloned().unwrap_or(Value::Null);
    if let Some(info) = info.as_object() {
        for key in [
            "recording_mbid",
            "release_mbid",
            "release_group_mbid",
            "track_mbid",
        ] {
            if let Some(v) = info.get(key).and_then(Value::as_str) {
                if !v.is_empty() && !is_uuid(v) {
                    return Err(format!("{key} MBID format invalid."));
                }
            }
        }
        for key in ["artist_mbids", "work_mbids"] {
            if let Some(list) = info.get(key).filter(|v| !v.is_null()) {
                // The server drops null and "" entries before checking the rest.
                let ok = list.as_array().is_some_and(|a| {
                    a.iter().all(|m| {
                        m.is_null() || m.as_str().is_some_and(|m| m.is_empty() || is_uuid(m))
                    })
                });
                if !ok {
                    return Err(format!("{key} MBID format invalid."));
                }
            }
        }
        if info.contains_key("duration") && info.contains_key("duration_ms") {
            return Err("JSON document should not contain both duration and duration_ms.".into());
        }
        for (key, max) in [
            ("duration", MAX_DURATION_SECS),
            ("duration_ms", MAX_DURATION_SECS * 1000),
        ] {
            if let Some(v) = info.get(key) {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
                if !n.is_some_and(|n| n > 0 && n <= max) {
                    return Err(format!("Value for {key} is invalid."));
                }
            }
        }
        if let Some(tags) = info.get("tags").and_then(Value::as_array) {
            if tags.len() > 50
                || tags
                    .iter()
                    .any(|t| t.as_str().is_none_or(|t| t.chars().count() > 64))
            {
                return Err("Too many tags, or a tag too long.".into());
            }
        }
    }
    Ok(Received {
        listen_type: listen_type.to_string(),
        listened_at,
        artist_name,
        track_name,
        release_name,
        additional_info: info,
        user: user.to_string(),
    })
}

/// Maloja's ListenBrainz endpoint (docs/protocols.md, "Maloja"): playing_now discarded; listens
/// keyed by timestamp; the first duplicate or conflict ends an import.
fn maloja_submit(
    flavor: Flavor,
    listen_type: &str,
    payload: &[Value],
    user: &str,
    state: &Mutex<State>,
) -> Response {
    if listen_type == "playing_now" {
        return reply(flavor, 200, json!({"status": "ok"}));
    }
    if !matches!(listen_type, "single" | "import") {
        return error(flavor, 400, "Invalid JSON document submitted.");
    }
    let mut st = state.lock().unwrap();
    if let Some(poison) = &st.poison {
        if payload
            .iter()
            .any(|l| l["track_metadata"]["artist_name"].as_str() == Some(poison))
        {
            return error(flavor, 400, "Listen rejected by the test");
        }
    }
    for listen in payload {
        let meta = &listen["track_metadata"];
        let (Some(artist), Some(track)) =
            (meta["artist_name"].as_str(), meta["track_name"].as_str())
        else {
            return error(flavor, 400, "Invalid JSON document submitted.");
        };
        let at = listen["listened_at"].as_u64().unwrap_or_else(now);
        if let Some(existing) = st.listens.iter().find(|l| l.listened_at == Some(at)) {
            if existing.artist_name == artist && existing.track_name == track {
                break;
            }
            return reply(
                flavor,
                409,
                json!({"error": "Scrobble with the same timestamp already exists."}),
            );
        }
        st.listens.push(Received {
            listen_type: listen_type.to_string(),
            listened_at: Some(at),
            artist_name: artist.to_string(),
            track_name: track.to_string(),
            release_name: meta["release_name"].as_str().map(str::to_string),
            additional_info: meta.get("additional_info").cloned().unwrap_or(Value::Null),
            user: user.to_string(),
        });
    }
    st.submissions
        .push((listen_type.to_string(), payload.len()));
    reply(flavor, 200, json!({"status": "ok"}))
}
