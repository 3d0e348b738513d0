//! A stand-in Last.fm 2.0 server on loopback that behaves like the real one
//! where a client can tell (protocols.md §1): form-encoded POSTs for writes,
//! the `api_key` check (error 10), the `api_sig` check (error 13), session
//! keys (error 9 with HTTP 403), the 50-item batch limit and contiguous
//! indices (error 6), per-item `ignoredMessage` codes, JSON replies in
//! Last.fm's shape (a single scrobble comes back as a bare object), XML when
//! `format=json` is missing, the desktop and mobile auth flows, and stored
//! replies for the read methods. It fails on demand and can go down
//! (connection refused) and come back on the same port.
//!
//! Self-contained (the benchmark includes this file on its own): the server
//! runs on its own thread with its own tokio runtime, so sync tests, async
//! tests and the benchmark can all use it. The signature check is written
//! here, independently of the crate's client code.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub const API_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const API_SECRET: &str = "fedcba9876543210fedcba9876543210";

/// Last.fm ignores scrobbles more than 14 days old (code 3) and, like GNU FM,
/// more than 300 s in the future (code 4). At most 50 scrobbles per request.
const MAX_AGE_SECS: u64 = 14 * 24 * 3600;
const MAX_AHEAD_SECS: u64 = 300;
const MAX_BATCH: usize = 50;
/// Desktop-flow tokens are valid for 60 minutes unless a test says otherwise.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// One accepted scrobble, with the values as decoded from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scrobbled {
    pub artist: String,
    pub track: String,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub track_number: Option<String>,
    pub duration: Option<String>,
    pub mbid: Option<String>,
    pub timestamp: u64,
    /// The user the session key belongs to.
    pub user: String,
}

/// One accepted `track.updateNowPlaying`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NowPlaying {
    pub artist: String,
    pub track: String,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub track_number: Option<String>,
    pub duration: Option<String>,
    pub mbid: Option<String>,
    pub user: String,
}

/// A failure to inflict on requests (see `set_failure` and `fail_next`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This HTTP status with an HTML body, like a proxy in front of an outage.
    Http(u16),
    /// `{"error":N,"message":..}` with the HTTP status Last.fm uses for N:
    /// 11/16 -> 503, 29 -> 429, 4/9/10/13/26 -> 403, anything else -> 400.
    Api(u32),
    /// Wait this long, then handle the request normally. If the client hangs
    /// up meanwhile (say it timed out), the request is dropped unhandled.
    Hang(Duration),
}

#[derive(Default)]
struct State {
    /// User name -> password.
    users: HashMap<String, String>,
    /// Session key -> user name.
    sessions: HashMap<String, String>,
    tokens: HashMap<String, Token>,
    token_lifetime: Duration,
    /// The server's "now" for the timestamp rules; the system clock if None.
    clock: Option<u64>,
    scrobbles: Vec<Scrobbled>,
    now_playing: Vec<NowPlaying>,
    batches: Vec<usize>,
    /// track.love / track.unlove calls: artist, track, love.
    loves: Vec<(String, String, bool)>,
    /// Requests received, by lower-case method name.
    requests: HashMap<String, usize>,
    failure: Option<Failure>,
    fail_next: Option<(usize, Failure)>,
    poison: Option<String>,
    /// Replies of read methods, by (lower-case method, lower-case subject).
    reads: HashMap<(String, String), Value>,
    keys_issued: u64,
}

struct Token {
    issued: Instant,
    approved_by: Option<String>,
}

type Shared = Mutex<State>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The listening half while the server is up.
struct Listening {
    stop: oneshot::Sender<()>,
    /// Signalled once the listener and every connection are closed.
    stopped: std::sync::mpsc::Receiver<()>,
}

/// The server. Dropping it shuts it down.
pub struct FakeLastFm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    listening: Mutex<Option<Listening>>,
    stop_runtime: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeLastFm {
    /// Listen on 127.0.0.1, on a free port.
    pub fn start() -> FakeLastFm {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("stand-in Last.fm runtime");
        let handle = runtime.handle().clone();
        let (stop_runtime, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-lastfm".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                })
            })
            .expect("stand-in Last.fm thread");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in Last.fm");
        let server = FakeLastFm {
            addr: listener.local_addr().expect("local addr"),
            shared: Arc::new(Mutex::new(State {
                token_lifetime: TOKEN_LIFETIME,
                ..State::default()
            })),
            runtime: handle,
            listening: Mutex::new(None),
            stop_runtime: Some(stop_runtime),
            thread: Some(thread),
        };
        *lock(&server.listening) = Some(server.listen(listener));
        server
    }

    /// The API root, `http://127.0.0.1:PORT/2.0/`.
    pub fn url(&self) -> String {
        format!("http://{}/2.0/", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// A user for `auth.getMobileSession` (by `password`, or by Libre.fm's
    /// `authToken` = md5(lowercase(user) + md5hex(password))).
    pub fn add_user(&self, name: &str, password: &str) {
        self.state()
            .users
            .insert(name.to_string(), password.to_string());
    }

    /// A new valid session key (32 hex) for `user`.
    pub fn issue_session(&self, user: &str) -> String {
        let mut st = self.state();
        let key = new_key(&mut st, "session");
        st.sessions.insert(key.clone(), user.to_string());
        key
    }

    /// Make a given session key valid for `user` (for example the one in
    /// protocols.md §1.4's worked example).
    pub fn add_session(&self, user: &str, key: &str) {
        self.state()
            .sessions
            .insert(key.to_string(), user.to_string());
    }

    /// The user revoked the application: their keys now get error 9.
    pub fn revoke_sessions(&self, user: &str) {
        self.state().sessions.retain(|_, u| u != user);
    }

    /// The user approved `token` in the browser (desktop flow). Panics if the
    /// server never issued it.
    pub fn approve_token(&self, token: &str, user: &str) {
        let mut st = self.state();
        let t = st
            .tokens
            .get_mut(token)
            .unwrap_or_else(|| panic!("the stand-in Last.fm never issued token {token:?}"));
        t.approved_by = Some(user.to_string());
    }

    /// How long an `auth.getToken` token stays valid (60 minutes by default);
    /// after that `auth.getSession` gives error 15.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().token_lifetime = lifetime;
    }

    /// Issued tokens not yet approved nor used, oldest first.
    pub fn pending_tokens(&self) -> Vec<String> {
        let st = self.state();
        let mut pending: Vec<_> = st
            .tokens
            .iter()
            .filter(|(_, t)| t.approved_by.is_none())
            .collect();
        pending.sort_by_key(|(_, t)| t.issued);
        pending.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// Pin the server's clock (Unix seconds) for the timestamp rules, or
    /// follow the system clock again with None.
    pub fn set_clock(&self, now: Option<u64>) {
        self.state().clock = now;
    }

    /// Every accepted scrobble, in arrival order.
    pub fn scrobbles(&self) -> Vec<Scrobbled> {
        self.state().scrobbles.clone()
    }

    /// Every accepted now-playing notice, in arrival order.
    pub fn now_playing(&self) -> Vec<NowPlaying> {
        self.state().now_playing.clone()
    }

    /// The number of items in each successful `track.scrobble` request.
    pub fn scrobble_batches(&self) -> Vec<usize> {
        self.state().batches.clone()
    }

    /// Accepted track.love (`true`) and track.unlove calls: artist, track, love.
    pub fn loves(&self) -> Vec<(String, String, bool)> {
        self.state().loves.clone()
    }

    /// Requests received for `method` (any case), failed ones included.
    pub fn request_count(&self, method: &str) -> usize {
        let st = self.state();
        st.requests
            .get(&method.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Fail every request with `f` until cleared with None.
    pub fn set_failure(&self, f: Option<Failure>) {
        self.state().failure = f;
    }

    /// Fail only the next `n` requests (this takes precedence over `set_failure`).
    pub fn fail_next(&self, n: usize, f: Failure) {
        self.state().fail_next = Some((n, f));
    }

    /// Refuse as a whole, with error 6 (HTTP 400), any `track.scrobble`
    /// request that contains this artist.
    pub fn set_poison_artist(&self, artist: Option<&str>) {
        self.state().poison = artist.map(str::to_string);
    }

    /// Serve `reply` for a read `method` (e.g. "artist.getInfo") about
    /// `subject`: the artist, "artist/album", or the user, in any case.
    /// Unknown subjects get error 6 with HTTP 404 (artist.search: no matches).
    pub fn set_read(&self, method: &str, subject: &str, reply: Value) {
        self.state()
            .reads
            .insert((method.to_lowercase(), subject.to_lowercase()), reply);
    }

    /// Stop listening and close open connections: clients get "connection
    /// refused" until `come_up`. Returns once that is so.
    pub fn go_down(&self) {
        let Some(listening) = lock(&self.listening).take() else {
            return;
        };
        let _ = listening.stop.send(());
        let _ = listening.stopped.recv_timeout(Duration::from_secs(10));
    }

    /// Listen again on the same port.
    pub fn come_up(&self) {
        let mut listening = lock(&self.listening);
        if listening.is_some() {
            return;
        }
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if start.elapsed() > Duration::from_secs(5) => {
                    panic!("cannot listen on {} again: {e}", self.addr)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        *listening = Some(self.listen(listener));
    }

    /// Wait until at least `n` scrobbles were accepted or `timeout` passed;
    /// returns what there is.
    pub fn wait_for_scrobbles(&self, n: usize, timeout: Duration) -> Vec<Scrobbled> {
        let start = Instant::now();
        loop {
            {
                let st = self.state();
                if st.scrobbles.len() >= n || start.elapsed() >= timeout {
                    return st.scrobbles.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn listen(&self, listener: TcpListener) -> Listening {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let (stop, stop_rx) = oneshot::channel();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        self.runtime.spawn(accept_loop(
            listener,
            Arc::clone(&self.shared),
            stop_rx,
            stopped_tx,
        ));
        Listening { stop, stopped }
    }
}

impl Drop for FakeLastFm {
    fn drop(&mut self) {
        self.go_down();
        if let Some(stop) = self.stop_runtime.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP plumbing

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
    stopped: std::sync::mpsc::Sender<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register listener");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Aborts the connections (and any request in flight) and waits for them.
    connections.shutdown().await;
    let _ = stopped.send(());
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to notice a client hanging up while a
    // request hangs (hyper does not look while the handler runs).
    let Ok(peer) = stream.as_fd().try_clone_to_owned() else {
        return;
    };
    let peer = Arc::new(std::net::TcpStream::from(peer));
    let service =
        hyper::service::service_fn(move |req| respond(req, Arc::clone(&shared), Arc::clone(&peer)));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// What the handlers need from a request.
struct Call {
    post: bool,
    path: String,
    /// A POST with a body that is not `application/x-www-form-urlencoded`.
    not_a_form: bool,
    /// Query parameters, then body parameters (those win), decoded.
    params: BTreeMap<String, String>,
    /// Some name or value was not UTF-8 once percent-decoded.
    not_utf8: bool,
}

impl Call {
    fn method(&self) -> String {
        self.param("method")
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

async fn respond(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
    peer: Arc<std::net::TcpStream>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (head, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let content_type = head
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let post = head.method == hyper::Method::POST;
    let mut not_utf8 = false;
    let mut params = parse_form(head.uri.query().unwrap_or("").as_bytes(), &mut not_utf8);
    if post {
        params.extend(parse_form(&body, &mut not_utf8));
    }
    let call = Call {
        post,
        path: head.uri.path().to_string(),
        not_a_form: post
            && !body.is_empty()
            && !content_type.starts_with("application/x-www-form-urlencoded"),
        params,
        not_utf8,
    };

    let failure = {
        let mut st = lock(&shared);
        *st.requests.entry(call.method()).or_default() += 1;
        match st.fail_next.as_mut() {
            Some((n, f)) if *n > 0 => {
                *n -= 1;
                Some(*f)
            }
            _ => st.failure,
        }
    };
    let reply = match failure {
        Some(Failure::Http(status)) => Reply::Html(status),
        Some(Failure::Api(code)) => Reply::error(code, standard_message(code)),
        Some(Failure::Hang(delay)) => {
            if client_left_during(delay, &peer).await {
                // Nobody to answer: the request is dropped unhandled.
                Reply::Html(503)
            } else {
                handle(&call, &shared)
            }
        }
        None => handle(&call, &shared),
    };
    Ok(reply.render(call.param("format") == Some("json")))
}

/// Sleep for `delay`, or less if the client hangs up first (then true).
async fn client_left_during(delay: Duration, peer: &std::net::TcpStream) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        // The socket is non-blocking: no data yet is WouldBlock, EOF is 0.
        match peer.peek(&mut [0u8]) {
            Ok(0) => return true,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return true,
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(left.min(Duration::from_millis(10))).await;
    }
}

/// Decode `application/x-www-form-urlencoded` (also used for query strings).
fn parse_form(s: &[u8], not_utf8: &mut bool) -> BTreeMap<String, String> {
    let mut decode = |raw: &[u8]| {
        String::from_utf8(percent_decode(raw)).unwrap_or_else(|e| {
            *not_utf8 = true;
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })
    };
    s.split(|&b| b == b'&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.iter().position(|&b| b == b'=') {
            Some(eq) => (decode(&kv[..eq]), decode(&kv[eq + 1..])),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// `+` is a space, `%XX` a byte; a malformed escape stays as it is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Replies

enum Reply {
    Ok(Value),
    Error {
        status: u16,
        code: u32,
        message: String,
    },
    /// An error page from a proxy, not from the API.
    Html(u16),
}

impl Reply {
    /// An API error with the HTTP status Last.fm uses for it.
    fn error(code: u32, message: &str) -> Reply {
        let status = match code {
            11 | 16 => 503,
            29 => 429,
            4 | 9 | 10 | 13 | 26 => 403,
            _ => 400,
        };
        Reply::Error {
            status,
            code,
            message: message.to_string(),
        }
    }

    fn render(self, json: bool) -> hyper::Response<Full<Bytes>> {
        let (status, content_type, body) = match self {
            Reply::Html(status) => (
                status,
                "text/html",
                format!(
                    "<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
                ),
            ),
            Reply::Ok(v) if json => (200, "application/json", v.to_string()),
            Reply::Ok(v) => {
                let mut xml = String::new();
                if let Value::Object(members) = &v {
                    for (name, value) in members {
                        xml_element(name, value, &mut xml);
                    }
                }
                (200, "text/xml; charset=utf-8", lfm("ok", &xml))
            }
            Reply::Error {
                status,
                code,
                message,
            } if json => (
                status,
                "application/json",
                json!({"error": code, "message": message}).to_string(),
            ),
            Reply::Error {
                status,
                code,
                message,
            } => (
                status,
                "text/xml; charset=utf-8",
                lfm(
                    "failed",
                    &format!("<error code=\"{code}\">{}</error>", xml_escape(&message)),
                ),
            ),
        };
        hyper::Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid HTTP status")
    }
}

/// The messages Last.fm sends with its error codes.
fn standard_message(code: u32) -> &'static str {
    match code {
        2 => "Invalid service - This service does not exist",
        3 => "Invalid Method - No method with that name in this package",
        4 => "Authentication Failed - You do not have permissions to access the service",
        5 => "Invalid format - This service doesn't exist in that format",
        6 => "Invalid parameters - Your request is missing a required parameter",
        7 => "Invalid resource specified",
        8 => "Operation failed - Most likely the backend service failed. Please try again.",
        9 => "Invalid session key - Please re-authenticate",
        10 => "Invalid API key - You must be granted a valid key by last.fm",
        11 => "Service Offline - This service is temporarily offline. Try again later.",
        13 => "Invalid method signature supplied",
        14 => "Unauthorized Token - This token has not been authorized",
        15 => "Token has expired",
        16 => "There was a temporary error processing your request. Please try again",
        26 => {
            "Suspended API key - Access for your account has been suspended, please contact Last.fm"
        }
        29 => "Rate limit exceeded - Your IP has made too many requests in a short period",
        _ => "Operation failed",
    }
}

fn lfm(status: &str, inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<lfm status=\"{status}\">{inner}</lfm>\n")
}

/// The inverse of Last.fm's XML-to-JSON translation (protocols.md §1.3),
/// minimal: `@attr` members, `corrected`, and the string members next to a
/// `#text` become attributes; arrays become repeated elements.
fn xml_element(name: &str, value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            for item in items {
                xml_element(name, item, out);
            }
        }
        Value::Object(members) => {
            let has_text = members.contains_key("#text");
            let mut children = Vec::new();
            out.push('<');
            out.push_str(name);
            for (k, v) in members {
                match (k.as_str(), v) {
                    ("@attr", Value::Object(attrs)) => {
                        for (a, av) in attrs {
                            push_attribute(a, av, out);
                        }
                    }
                    ("#text", _) => {}
                    ("corrected", _) => push_attribute(k, v, out),
                    (_, Value::String(_)) if has_text => push_attribute(k, v, out),
                    _ => children.push((k, v)),
                }
            }
            out.push('>');
            if let Some(text) = members.get("#text") {
                out.push_str(&xml_escape(&scalar_text(text)));
            }
            for (k, v) in children {
                xml_element(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        scalar => out.push_str(&format!(
            "<{name}>{}</{name}>",
            xml_escape(&scalar_text(scalar))
        )),
    }
}

fn push_attribute(name: &str, value: &Value, out: &mut String) {
    out.push_str(&format!(" {name}=\"{}\"", xml_escape(&scalar_text(value))));
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------
// The API

/// Methods that must be POSTed; all but the mobile session need `sk`.
const WRITES: &[&str] = &[
    "track.scrobble",
    "track.updatenowplaying",
    "track.love",
    "track.unlove",
    "auth.getmobilesession",
];

/// Unsigned read methods, served from `set_read`.
const READS: &[&str] = &[
    "artist.getinfo",
    "album.getinfo",
    "artist.search",
    "user.gettopartists",
    "user.gettoptracks",
    "user.getrecenttracks",
];

fn handle(call: &Call, shared: &Shared) -> Reply {
    if call.path != "/2.0/" && call.path != "/2.0" {
        return Reply::Html(404);
    }
    if call.not_a_form {
        return Reply::error(5, standard_message(5));
    }
    if call.not_utf8 {
        return Reply::error(6, "Invalid parameters - Parameters must be UTF-8");
    }
    if call.param("api_key") != Some(API_KEY) {
        return Reply::error(10, standard_message(10));
    }
    let method = call.method();
    let method = method.as_str();
    if READS.contains(&method) {
        return read(method, call, shared);
    }
    let write = WRITES.contains(&method);
    if !write && method != "auth.gettoken" && method != "auth.getsession" {
        return Reply::error(3, standard_message(3));
    }
    if write && !call.post {
        return Reply::error(
            3,
            "Invalid Method - This method must be called with HTTP POST",
        );
    }
    let signed = call
        .param("api_sig")
        .is_some_and(|sig| sig.eq_ignore_ascii_case(&signature(&call.params)));
    if !signed {
        return Reply::error(13, standard_message(13));
    }

    let mut st = lock(shared);
    match method {
        "auth.gettoken" => {
            let token = new_key(&mut st, "token");
            st.tokens.insert(
                token.clone(),
                Token {
                    issued: Instant::now(),
                    approved_by: None,
                },
            );
            Reply::Ok(json!({ "token": token }))
        }
        "auth.getsession" => get_session(&mut st, call),
        "auth.getmobilesession" => get_mobile_session(&mut st, call),
        _ => {
            let Some(user) = call.param("sk").and_then(|sk| st.sessions.get(sk)).cloned() else {
                return Reply::error(9, standard_message(9));
            };
            match method {
                "track.scrobble" => scrobble(&mut st, call, &user),
                "track.updatenowplaying" => now_playing(&mut st, call, &user),
                _ => love(&mut st, call, method == "track.love"),
            }
        }
    }
}

/// api_sig as Last.fm computes it (protocols.md §1.4): every parameter but
/// `format`, `callback` and `api_sig`, sorted byte-wise by name, name and
/// value concatenated, the secret appended, MD5 in hex.
fn signature(params: &BTreeMap<String, String>) -> String {
    let mut base = String::new();
    for (name, value) in params {
        if !matches!(name.as_str(), "format" | "callback" | "api_sig") {
            base.push_str(name);
            base.push_str(value);
        }
    }
    base.push_str(API_SECRET);
    md5_hex(&base)
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn new_key(st: &mut State, kind: &str) -> String {
    st.keys_issued += 1;
    md5_hex(&format!("{kind}{}{:?}", st.keys_issued, SystemTime::now()))
}

fn session_reply(st: &mut State, user: &str) -> Reply {
    let key = new_key(st, "session");
    st.sessions.insert(key.clone(), user.to_string());
    Reply::Ok(json!({"session": {"name": user, "key": key, "subscriber": 0}}))
}

/// Desktop flow: 4 for an unknown (or used) token, 15 once expired, 14
/// until approved; a token makes one session only.
fn get_session(st: &mut State, call: &Call) -> Reply {
    let Some(token) = call.param("token") else {
        return Reply::error(6, "Invalid parameters - token is required");
    };
    let Some(t) = st.tokens.get(token) else {
        return Reply::error(4, "Invalid authentication token supplied");
    };
    if t.issued.elapsed() >= st.token_lifetime {
        return Reply::error(15, standard_message(15));
    }
    let Some(user) = t.approved_by.clone() else {
        return Reply::error(14, standard_message(14));
    };
    st.tokens.remove(token);
    session_reply(st, &user)
}

/// Mobile flow: `username` (any case) with `password`, or with Libre.fm's
/// `authToken`.
fn get_mobile_session(st: &mut State, call: &Call) -> Reply {
    let username = call.param("username").unwrap_or_default();
    let user = st
        .users
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(username))
        .map(|(name, password)| (name.clone(), password.clone()));
    let good = match (&user, call.param("password"), call.param("authToken")) {
        (_, None, None) => {
            return Reply::error(6, "Invalid parameters - password is required");
        }
        (None, ..) => false,
        (Some((_, password)), Some(sent), _) => sent == password,
        (Some((name, password)), None, Some(token)) => {
            let expected = md5_hex(&format!("{}{}", name.to_lowercase(), md5_hex(password)));
            token.eq_ignore_ascii_case(&expected)
        }
    };
    match user {
        Some((name, _)) if good => session_reply(st, &name),
        _ => Reply::error(4, "Authentication Failed - Invalid username or password"),
    }
}

fn corrected(text: &str) -> Value {
    json!({"corrected": "0", "#text": text})
}

/// The value of a required parameter: present and not empty.
fn required<'a>(call: &'a Call, name: &str) -> Option<&'a str> {
    call.param(name).filter(|v| !v.is_empty())
}

fn now_playing(st: &mut State, call: &Call, user: &str) -> Reply {
    let (Some(artist), Some(track)) = (required(call, "artist"), required(call, "track")) else {
        return Reply::error(6, standard_message(6));
    };
    let field = |name: &str| call.param(name).map(str::to_string);
    let np = NowPlaying {
        artist: artist.to_string(),
        track: track.to_string(),
        album: field("album"),
        album_artist: field("albumArtist"),
        track_number: field("trackNumber"),
        duration: field("duration"),
        mbid: field("mbid"),
        user: user.to_string(),
    };
    let reply = json!({"nowplaying": {
        "artist": corrected(&np.artist),
        "track": corrected(&np.track),
        "album": corrected(np.album.as_deref().unwrap_or("")),
        "albumArtist": corrected(np.album_artist.as_deref().unwrap_or("")),
        "ignoredMessage": {"code": "0", "#text": ""},
    }});
    st.now_playing.push(np);
    Reply::Ok(reply)
}

/// track.love / track.unlove: an empty `lfm ok`, `{}` in JSON.
fn love(st: &mut State, call: &Call, love: bool) -> Reply {
    let (Some(artist), Some(track)) = (required(call, "artist"), required(call, "track")) else {
        return Reply::error(6, standard_message(6));
    };
    st.loves.push((artist.to_string(), track.to_string(), love));
    Reply::Ok(json!({}))
}

/// The per-item parameters of `track.scrobble`.
const ITEM_FIELDS: &[&str] = &[
    "artist",
    "track",
    "timestamp",
    "album",
    "albumArtist",
    "trackNumber",
    "mbid",
    "duration",
    "chosenByUser",
    "streamId",
    "context",
];

/// The `[i]` suffixes of the items in a `track.scrobble` request: `[0]` to
/// `[n-1]`, or a single empty suffix for the unindexed form.
fn item_suffixes(call: &Call) -> Result<Vec<String>, Reply> {
    let mut count = None;
    for name in call.params.keys() {
        let Some((field, rest)) = name.split_once('[') else {
            continue;
        };
        if !ITEM_FIELDS.contains(&field) {
            continue;
        }
        let index = rest
            .strip_suffix(']')
            .and_then(|i| i.parse::<usize>().ok().filter(|n| n.to_string() == i));
        let Some(index) = index else {
            return Err(Reply::error(
                6,
                &format!("Invalid parameters - bad index in {name}"),
            ));
        };
        count = count.max(Some(index + 1));
    }
    match count {
        None => Ok(vec![String::new()]),
        Some(n) if n > MAX_BATCH => Err(Reply::error(
            6,
            "Invalid parameters - At most 50 scrobbles per request",
        )),
        Some(n) => Ok((0..n).map(|i| format!("[{i}]")).collect()),
    }
}

fn scrobble(st: &mut State, call: &Call, user: &str) -> Reply {
    let suffixes = match item_suffixes(call) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let mut items = Vec::new();
    for suffix in &suffixes {
        let name = |field: &str| format!("{field}{suffix}");
        let (Some(artist), Some(track), Some(timestamp)) = (
            required(call, &name("artist")),
            required(call, &name("track")),
            required(call, &name("timestamp")),
        ) else {
            return Reply::error(
                6,
                &format!(
                    "Invalid parameters - artist{suffix}, track{suffix} and timestamp{suffix} are required"
                ),
            );
        };
        let Ok(timestamp) = timestamp.parse::<u64>() else {
            return Reply::error(
                6,
                &format!("Invalid parameters - timestamp{suffix} is not a number"),
            );
        };
        let field = |field: &str| call.param(&name(field)).map(str::to_string);
        items.push(Scrobbled {
            artist: artist.to_string(),
            track: track.to_string(),
            album: field("album"),
            album_artist: field("albumArtist"),
            track_number: field("trackNumber"),
            duration: field("duration"),
            mbid: field("mbid"),
            timestamp,
            user: user.to_string(),
        });
    }
    if let Some(poison) = &st.poison {
        if items.iter().any(|s| &s.artist == poison) {
            return Reply::error(6, "Invalid parameters");
        }
    }

    let now = st.clock.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    });
    let mut echoed = Vec::new();
    let (mut accepted, mut ignored) = (0, 0);
    for s in items {
        let (code, message) = if s.artist.eq_ignore_ascii_case("Unknown Artist") {
            ("1", "Artist was ignored")
        } else if s.timestamp + MAX_AGE_SECS < now {
            ("3", "Timestamp was too old")
        } else if s.timestamp > now + MAX_AHEAD_SECS {
            ("4", "Timestamp was too new")
        } else {
            ("0", "")
        };
        echoed.push(json!({
            "artist": corrected(&s.artist),
            "album": match s.album.as_deref() {
                Some(album) if !album.is_empty() => corrected(album),
                _ => json!({"corrected": "0"}),
            },
            "track": corrected(&s.track),
            "albumArtist": corrected(s.album_artist.as_deref().unwrap_or("")),
            "timestamp": s.timestamp.to_string(),
            "ignoredMessage": {"code": code, "#text": message},
        }));
        if code == "0" {
            accepted += 1;
            st.scrobbles.push(s);
        } else {
            ignored += 1;
        }
    }
    st.batches.push(echoed.len());
    // Last.fm's XML-to-JSON translation: one child stays a bare object.
    let scrobble = if echoed.len() == 1 {
        echoed.remove(0)
    } else {
        Value::Array(echoed)
    };
    Reply::Ok(json!({"scrobbles": {
        "scrobble": scrobble,
        "@attr": {"accepted": accepted, "ignored": ignored},
    }}))
}

/// The parameter a read method is about; Last.fm matches names without
/// regard to case.
fn read_subject(method: &str, call: &Call) -> String {
    let get = |k: &str| call.param(k).unwrap_or_default();
    match method {
        "album.getinfo" => format!("{}/{}", get("artist"), get("album")),
        m if m.starts_with("user.") => get("user").to_string(),
        _ => get("artist").to_string(),
    }
    .to_lowercase()
}

/// Unsigned reads: the stored reply, or error 6 "not found" with HTTP 404
/// like Last.fm (artist.search: an empty result).
fn read(method: &str, call: &Call, shared: &Shared) -> Reply {
    let st = lock(shared);
    match st
        .reads
        .get(&(method.to_string(), read_subject(method, call)))
    {
        Some(reply) => Reply::Ok(reply.clone()),
        None if method == "artist.search" => Reply::Ok(json!({"results": {
            "opensearch:totalResults": "0",
            "artistmatches": {"artist": []},
            "@attr": {"for": call.param("artist").unwrap_or_default()},
        }})),
        None => {
            let what = match method {
                "album.getinfo" => "Album not found",
                m if m.starts_with("user.") => "User not found",
                _ => "The artist you supplied could not be found",
            };
            Reply::Error {
                status: 404,
                code: 6,
                message: what.to_string(),
            }
        }
    }
}
