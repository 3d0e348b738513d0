//! A stand-in for the notification services: one HTTP server that takes
//! ntfy topics (`POST /TOPIC`, the message as the body, `Title` and
//! `Authorization: Bearer` headers), Gotify (`POST /message` with
//! `X-Gotify-Key` and a JSON body) and webhooks (`POST /hook/...`, JSON), and
//! records each request. Its mode makes it answer 500 or hang instead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http_server::{Response, Server};

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As the real services do: 200, or 401 for a wrong token.
    Ok,
    /// HTTP 500 to everything.
    Fail,
    /// Never answers (holds each request for a minute).
    Hang,
}

/// One message received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// ntfy's `Title` header, or Gotify's `title`.
    pub title: Option<String>,
    /// The token given (ntfy's bearer token, Gotify's key).
    pub token: Option<String>,
    /// The body as text (ntfy: the message; others: JSON).
    pub body: String,
}

pub struct FakeNotify {
    server: Server,
    received: Arc<Mutex<Vec<Received>>>,
}

/// The token the stand-in Gotify accepts.
pub const GOTIFY_TOKEN: &str = "AppTokenGotify1";

impl FakeNotify {
    pub fn start(mode: Mode) -> FakeNotify {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = Arc::clone(&received);
        let server = Server::start(move |req| {
            if mode == Mode::Hang {
                std::thread::sleep(Duration::from_secs(60));
            }
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let json = |k: &str| {
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v[k].as_str().map(str::to_owned))
            };
            let (title, token) = if req.path == "/message" {
                (json("title"), req.header("x-gotify-key").map(str::to_owned))
            } else {
                (
                    req.header("title").map(str::to_owned),
                    req.header("authorization")
                        .and_then(|a| a.strip_prefix("Bearer "))
                        .map(str::to_owned),
                )
            };
            let refused = req.path == "/message" && token.as_deref() != Some(GOTIFY_TOKEN);
            log.lock().unwrap().push(Received {
                path: req.path.clone(),
                title,
                token,
                body,
            });
            let status = match mode {
                Mode::Fail => 500,
                _ if req.method != "POST" => 405,
                _ if refused => 401,
                _ => 200,
            };
            Response {
                status,
                content_type: "application/json",
                headers: Vec::new(),
                body: "{}".into(),
            }
        });
        FakeNotify { server, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The messages of `event` ("paused", "recovered", "test", ...) sent to
    /// `path`: ntfy's and Gotify's title ends with it, a webhook's JSON
    /// names it.
    pub fn count(&self, path: &str, event: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| {
                r.path == path
                    && (r
                        .title
                        .as_deref()
                        .is_some_and(|t| t.ends_with(&format!(": {event}")))
                        || serde_json::from_str::<serde_json::Value>(&r.body)
                            .is_ok_and(|v| v["event"] == event))
            })
            .count()
    }
}
