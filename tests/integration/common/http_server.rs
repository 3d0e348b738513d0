//! The HTTP/1.1 plumbing of the stand-in servers: a loopback listener with
//! keep-alive connections, a thread per connection, and an outage switch
//! (`go_down` refuses connections, `come_up` listens again on the same port).
//!
//! Self-contained (std only): the benchmark includes it next to the fakes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the handler sees it.
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A reply: status, extra headers, content type and body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    down: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
}

/// A running server; dropping it takes it down.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Server {
    /// Listen on 127.0.0.1, on a free port.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in server");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            down: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        spawn_acceptor(listener, Arc::clone(&shared));
        Server { addr, shared }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop listening and drop open connections: clients get "connection refused".
    pub fn go_down(&self) {
        if self.shared.down.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the acceptor so it drops the listening socket.
        let _ = TcpStream::connect(self.addr);
        for c in self.shared.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Until the acceptor has closed the socket, connects still succeed.
        let start = Instant::now();
        while TcpStream::connect(self.addr).is_ok() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Listen again on the same port.
    pub fn come_up(&self) {
        if !self.shared.down.load(Ordering::SeqCst) {
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
        self.shared.down.store(false, Ordering::SeqCst);
        spawn_acceptor(listener, Arc::clone(&self.shared));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.go_down();
    }
}

fn spawn_acceptor(listener: TcpListener, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if shared.down.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            if let Ok(c) = stream.try_clone() {
                shared.connections.lock().unwrap().push(c);
            }
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || serve_connection(stream, &shared));
        }
    });
}

pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let _ = stream.set_nodelay(true);
    let mut writer = stream;
    while let Some(req) = read_request(&mut reader) {
        if shared.down.load(Ordering::SeqCst) {
            return;
        }
        let resp = (shared.handler)(&req);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n",
            resp.status,
            reason(resp.status),
            resp.content_type,
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // One write: a separate small body write would wait on the client's
        // delayed ACK (Nagle), 40 ms a request.
        if writer.write_all((head + &resp.body).as_bytes()).is_err() {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
