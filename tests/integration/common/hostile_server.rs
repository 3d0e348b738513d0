//! A hostile stand-in server: whatever URL the daemon is pointed at, it
//! answers what a broken or malicious server, a proxy or a captive portal
//! would (absurd rate-limit headers, a 50 MiB body, HTML with HTTP 200, a
//! reply dripped a byte a second, a plain 404), until told to behave: then
//! it relays every request to a well-behaved stand-in (`FakeLastFm`,
//! `FakeListenBrainz`) and back.
//!
//! One request per connection (`Connection: close`), so a reply that is cut
//! short never poisons the next one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http_server::{Request, read_request};

/// What the server answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A fixed reply.
    Fixed {
        status: u16,
        headers: Vec<(String, String)>,
        content_type: String,
        body: String,
    },
    /// HTTP 200 with `bytes` of body in chunked encoding, announced by no
    /// Content-Length, generated as it is sent (the test holds none of it).
    Huge { bytes: usize },
    /// HTTP 200 with a JSON body sent one byte per `every`.
    Drip { every: Duration },
    /// Relay to a well-behaved server at this address.
    Relay(SocketAddr),
}

impl Answer {
    pub fn fixed(status: u16, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        Answer::Fixed {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            content_type: content_type.to_string(),
            body: body.to_string(),
        }
    }
}

struct Shared {
    answer: Mutex<Answer>,
    /// Requests answered with something other than `Relay`.
    hostile: AtomicUsize,
    /// Requests relayed.
    relayed: AtomicUsize,
}

/// A running server on 127.0.0.1. Its threads end with the test process.
pub struct HostileServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HostileServer {
    pub fn start(answer: Answer) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile server");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            answer: Mutex::new(answer),
            hostile: AtomicUsize::new(0),
            relayed: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        HostileServer { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (a stand-in's URL) with this server's address in its place.
    pub fn url_for(&self, url: &str, upstream: SocketAddr) -> String {
        url.replace(&upstream.to_string(), &self.addr.to_string())
    }

    pub fn set(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = answer;
    }

    /// Requests answered with a hostile answer so far.
    pub fn hostile_count(&self) -> usize {
        self.shared.hostile.load(Ordering::SeqCst)
    }

    pub fn relayed_count(&self) -> usize {
        self.shared.relayed.load(Ordering::SeqCst)
    }

    /// Wait until `n` hostile answers have been given; false after `timeout`.
    pub fn wait_hostile(&self, n: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.hostile_count() < n {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

/// The stand-in's address in a URL such as `http://127.0.0.1:1234/2.0/`.
pub fn addr_of(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("http://").expect("http URL");
    rest.split('/').next().unwrap().parse().expect("an address")
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let answer = shared.answer.lock().unwrap().clone();
    match answer {
        Answer::Relay(upstream) => {
            shared.relayed.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = relay(&req, upstream) {
                let _ = writer.write_all(&reply);
            }
        }
        answer => {
            shared.hostile.fetch_add(1, Ordering::SeqCst);
            answer_with(&mut writer, answer);
        }
    }
}

fn answer_with(writer: &mut TcpStream, answer: Answer) {
    match answer {
        Answer::Fixed {
            status,
            headers,
            content_type,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Status\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = writer.write_all((head + &body).as_bytes());
        }
        Answer::Huge { bytes } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            const CHUNK: usize = 64 << 10;
            let data = vec![b' '; CHUNK];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK);
                let mut framed = format!("{n:x}\r\n").into_bytes();
                framed.extend_from_slice(&data[..n]);
                framed.extend_from_slice(b"\r\n");
                // The client hanging up is the expected end.
                if writer.write_all(&framed).is_err() {
                    return;
                }
                left -= n;
            }
            let _ = writer.write_all(b"0\r\n\r\n");
        }
        Answer::Drip { every } => {
            let body = format!("{}{{\"status\":\"ok\"}}", " ".repeat(100));
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            for b in body.bytes() {
                std::thread::sleep(every);
                if writer.write_all(&[b]).is_err() {
                    return;
                }
            }
        }
        Answer::Relay(_) => unreachable!("handled by the caller"),
    }
}

/// Send `req` to `upstream` and return its whole reply, made to close the
/// connection.
fn relay(req: &Request, upstream: SocketAddr) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if k != "connection" && k != "content-length" {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", req.body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(&req.body);
    up.write_all(&out).ok()?;
    // The stand-ins keep connections alive: read exactly one reply.
    let mut reader = BufReader::new(up);
    let mut reply_head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        reply_head.push_str(&line);
    }
    reply_head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut reply = reply_head.into_bytes();
    reply.extend_from_slice(&body);
    Some(reply)
}
