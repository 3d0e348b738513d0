//! The HTTP client shared by every target: one identifiable, time-bounded
//! `reqwest::Client` for the whole program.

use std::time::Duration;

/// The `User-Agent` sent on every request. Last.fm asks clients to identify
/// themselves and says it lowers the risk of a ban; ListenBrainz blocks
/// bot-like requests without one.
pub const USER_AGENT: &str = concat!(
    "mpd-scrobbler/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/mpd-scrobbler/mpd-scrobbler)"
);

/// Upper bound for establishing a connection, so a dead host fails fast even
/// when the total timeout is long.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the program's HTTP client: [`USER_AGENT`], a total deadline of
/// `timeout` per request, a connect timeout of at most 10 s, a small
/// connection pool (the daemon keeps at most one request in flight per
/// target), and no redirects.
///
/// Following a 301, 302 or 303 turns a POST into a GET without its body
/// (Maloja's alias paths answer 303, protocols.md §4.1), so a submission
/// would fail in a confusing way or look like a rejected item. The services
/// never redirect their canonical URLs, so a redirect is returned as is: it
/// means the configured URL needs fixing.
///
/// The client is internally reference-counted; clone it rather than
/// building another.
///
/// # Errors
///
/// Fails if the TLS backend cannot be initialised.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    // reqwest uses the process-wide provider; installing it again is a no-op
    // that reports the one already there.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .pool_max_idle_per_host(2)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A one-shot HTTP server on loopback for unit tests of the HTTP clients.
#[cfg(test)]
pub(crate) mod test_server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// A request as the server received it.
    #[derive(Debug)]
    pub(crate) struct Received {
        /// Request line and headers, as sent.
        pub(crate) head: String,
        /// The body, decoded as UTF-8.
        pub(crate) body: String,
    }

    /// Serves one request with `status` and a JSON `body`, then closes.
    /// Returns the server's base URL and a handle that yields the request it
    /// received.
    pub(crate) async fn serve_once(status: u16, body: &str) -> (String, JoinHandle<Received>) {
        serve_raw(|_| {
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        })
        .await
    }

    /// Like [`serve_once`], with the whole response given by `response`
    /// from the server's base URL.
    pub(crate) async fn serve_raw(
        response: impl FnOnce(&str) -> String,
    ) -> (String, JoinHandle<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/2.0/", listener.local_addr().unwrap());
        let response = response(&url);
        let handle = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0; 4096];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed before sending headers");
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let mut chunk = [0; 4096];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed before sending the body");
                buf.extend_from_slice(&chunk[..n]);
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            Received {
                head,
                body: String::from_utf8(buf[head_end..].to_vec()).unwrap(),
            }
        });
        (url, handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_program_and_version() {
        assert_eq!(
            USER_AGENT,
            format!(
                "mpd-scrobbler/{} (+https://github.com/mpd-scrobbler/mpd-scrobbler)",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[tokio::test]
    async fn client_sends_the_user_agent() {
        let (url, server) = test_server::serve_once(200, "{}").await;
        let http = client(Duration::from_secs(5)).unwrap();
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let received = server.await.unwrap();
        let expected = format!("user-agent: {USER_AGENT}\r\n");
        assert!(
            received
                .head
                .to_ascii_lowercase()
                .contains(&expected.to_ascii_lowercase()),
            "{}",
            received.head
        );
    }

    #[tokio::test]
    async fn client_does_not_follow_redirects() {
        let (url, server) = test_server::serve_raw(|url| {
            format!(
                "HTTP/1.1 303 See Other\r\nLocation: {url}elsewhere\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
        })
        .await;
        let http = client(Duration::from_secs(5)).unwrap();
        let response = http.post(&url).body("x=1").send().await.unwrap();
        assert_eq!(response.status(), 303);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn client_gives_up_after_the_total_timeout() {
        // Accepts but never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let http = client(Duration::from_millis(200)).unwrap();
        let err = http.get(&url).send().await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(outcome_unknown(&err), "the server may have acted on it");
    }

    #[tokio::test]
    async fn a_refused_connection_proves_nothing_was_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let http = client(Duration::from_secs(5)).unwrap();
        let err = http.post(&url).body("x=1").send().await.unwrap_err();
        assert!(!outcome_unknown(&err), "{err:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_is_an_unknown_outcome() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf).await.unwrap();
            // Closed without an answer, as a server that crashed mid-request.
        });
        let http = client(Duration::from_secs(5)).unwrap();
        let err = http.post(&url).body("x=1").send().await.unwrap_err();
        server.await.unwrap();
        assert!(outcome_unknown(&err), "{err:?}");
    }
}

/// reqwest's message with its causes ("connection refused" sits two levels
/// down); a log line is useless without them.
pub fn describe_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a failed request may still have been received and acted on: a
/// timeout, a connection reset or closed once the request was on its way,
/// or a body that could not be read. Only a failure to connect, or a request
/// that could not even be built, proves that nothing reached the server.
pub fn outcome_unknown(e: &reqwest::Error) -> bool {
    !(e.is_connect() || e.is_builder())
}
