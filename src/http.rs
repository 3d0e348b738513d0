//! The HTTP client shared by every target: one identifiable, time-bounded
//! `reqwest::Client` for the whole program, and the guards every client puts
//! between a server's answer and the program: a bounded body read, and
//! range-checked waits taken from headers.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

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
/// (Maloja's alias paths answer 303, docs/protocols.md, "Maloja"), so a submission
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
        // No idle timeout: with one, hyper's pool wakes every interval while
        // a connection is idle, three wake-ups a minute of the daemon's
        // budget of ten. An idle connection ends when the server closes it
        // or the kernel's keepalive (reqwest's default, 15 s) finds it dead,
        // and a request that meets a connection closing before it is sent is
        // retried by hyper.
        .pool_idle_timeout(None)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Largest response body read. Every answer the program expects is a few
/// KiB at most; anything larger is refused before it is held in memory.
pub const MAX_BODY: usize = 1 << 20;

/// Longest wait a server can impose (Retry-After, X-RateLimit-Reset-In).
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(3600);

/// Why a response body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The server sent, or announced, more than [`MAX_BODY`] bytes.
    #[error("the reply is larger than {} KiB; it was not read", MAX_BODY / 1024)]
    TooLarge,
    /// The connection failed or the request's deadline passed while reading.
    #[error("reading the reply failed: {}", describe_error(.0))]
    Transport(#[from] reqwest::Error),
}

/// Read the body of `response`, at most [`MAX_BODY`] bytes of it.
///
/// Reads chunk by chunk, so a huge or endless answer costs at most the cap;
/// the client's total timeout also bounds the read, so a reply dripped a
/// byte at a time ends with the request's deadline.
///
/// # Errors
///
/// [`BodyError::TooLarge`] for a longer body (announced or sent), and
/// [`BodyError::Transport`] when reading fails.
pub async fn read_body(response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    read_body_limited(response, MAX_BODY).await
}

/// Like [`read_body`], up to `limit` bytes (for replies known to be larger).
pub async fn read_body_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if response.content_length().is_some_and(|n| n > limit_u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A header holding a whole number of seconds (X-RateLimit-Reset-In,
/// X-RateLimit-Remaining). Anything else (negative, fractional, too large
/// for 64 bits, text) is `None`: the caller falls back to its own policy.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok()
}

/// The wait a `Retry-After` header asks for: delta-seconds, or an HTTP-date
/// taken relative to `now` (a date in the past means no wait). Garbage and
/// negative values are `None`. The result is not capped; see [`cap_wait`].
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let now = jiff::Timestamp::try_from(now).ok()?;
    let secs = date.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// A server-requested wait, capped at [`MAX_SERVER_WAIT`]; the flag says
/// whether it was capped, so the caller can say so in the log.
pub fn cap_wait(asked: Duration) -> (Duration, bool) {
    if asked > MAX_SERVER_WAIT {
        (MAX_SERVER_WAIT, true)
    } else {
        (asked, false)
    }
}

/// A one-shot HTTP server on loopback for unit tests of the HTTP clients.
/// Percent-encodes everything but RFC 3986 unreserved characters, for a
/// query value or a path segment.
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

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
    /// Issue 23, item 15: one line, without the URL (and its api_key).
    #[tokio::test]
    async fn transport_errors_are_one_line_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let http = client(Duration::from_secs(5)).unwrap();
        let url = format!("http://127.0.0.1:{port}/2.0/?method=artist.getInfo&api_key=0123abcd");
        let err = http.get(&url).send().await.unwrap_err();
        let text = describe_error(&err);
        assert!(text.starts_with("cannot connect: "), "{text}");
        assert!(
            !text.contains("api_key") && !text.contains("0123abcd"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(body_note(""), " (empty body)");
        assert_eq!(body_note(" Not Found\n"), ": Not Found");
    }

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

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Accepts one connection, reads the request head, writes `head` and
    /// then `body_chunks` of `chunk` bytes each (chunked encoding when
    /// `chunked`), `pause` apart. Returns the URL.
    async fn serve_stream(
        head: &'static str,
        chunk: usize,
        body_chunks: usize,
        chunked: bool,
        pause: Duration,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0; 4096];
            let _ = stream.read(&mut buf).await;
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let data = vec![b' '; chunk];
            for _ in 0..body_chunks {
                let sent = if chunked {
                    let mut framed = format!("{chunk:x}\r\n").into_bytes();
                    framed.extend_from_slice(&data);
                    framed.extend_from_slice(b"\r\n");
                    stream.write_all(&framed).await
                } else {
                    stream.write_all(&data).await
                };
                if sent.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
            if chunked {
                let _ = stream.write_all(b"0\r\n\r\n").await;
            }
        });
        url
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                           Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_while_reading() {
        // 50 MiB sent without a Content-Length: reading stops past the cap.
        let url = serve_stream(CHUNKED, 64 << 10, 800, true, Duration::ZERO).await;
        let response = client(Duration::from_secs(30))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        let err = read_body(response).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
        assert!(err.to_string().contains("larger than 1024 KiB"), "{err}");
    }

    #[tokio::test]
    async fn an_announced_body_over_the_cap_is_refused_before_reading() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\nConnection: close\r\n\r\n";
        // Nothing of the body is ever sent: only the announcement can refuse it.
        let url = serve_stream(head, 1, 0, false, Duration::ZERO).await;
        let response = client(Duration::from_secs(30))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        let err = read_body(response).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
    }

    #[tokio::test]
    async fn a_body_up_to_the_cap_is_read_whole() {
        let url = serve_stream(CHUNKED, 64 << 10, 16, true, Duration::ZERO).await;
        let response = client(Duration::from_secs(30))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(read_body(response).await.unwrap().len(), MAX_BODY);
        let url = serve_stream(CHUNKED, 100, 3, true, Duration::ZERO).await;
        let response = client(Duration::from_secs(30))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        assert!(matches!(
            read_body_limited(response, 299).await,
            Err(BodyError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn a_drip_fed_body_ends_with_the_request_deadline() {
        let url = serve_stream(CHUNKED, 1, 1000, true, Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let response = client(Duration::from_millis(700))
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        let err = read_body(response).await.unwrap_err();
        match err {
            BodyError::Transport(e) => assert!(e.is_timeout(), "{e:?}"),
            BodyError::TooLarge => panic!("the drip was read as too large"),
        }
        // The whole drip would take 100 s.
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn numeric_headers_accept_only_whole_non_negative_numbers() {
        let name = "x-ratelimit-reset-in";
        for (value, expected) in [
            ("7", Some(7)),
            (" 30 ", Some(30)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("-1", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(
                header_u64(&headers(&[(name, value)]), name),
                expected,
                "{value:?}"
            );
        }
        assert_eq!(header_u64(&HeaderMap::new(), name), None);
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_nothing_else() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |v: &str| retry_after(&headers(&[("retry-after", v)]), now);
        assert_eq!(at("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            at("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        for garbage in ["-5", "99999999999999999999999", "1e9", "later", ""] {
            assert_eq!(at(garbage), None, "{garbage:?}");
        }
        // 2023-11-14T22:13:20Z is 1_700_000_000.
        assert_eq!(
            at("Tue, 14 Nov 2023 22:15:20 GMT"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(at("Mon, 13 Nov 2023 22:13:20 GMT"), Some(Duration::ZERO));
        assert_eq!(
            at("Fri, 31 Dec 9999 23:59:59 GMT"),
            None,
            "beyond the date range"
        );
        let far = at("Wed, 01 Jan 3000 00:00:00 GMT").unwrap();
        assert!(far > Duration::from_secs(200 * 365 * 86400), "{far:?}");
        assert_eq!(cap_wait(far), (MAX_SERVER_WAIT, true));
    }

    #[test]
    fn waits_over_an_hour_are_capped() {
        assert_eq!(
            cap_wait(Duration::from_secs(59)),
            (Duration::from_secs(59), false)
        );
        assert_eq!(cap_wait(MAX_SERVER_WAIT), (MAX_SERVER_WAIT, false));
        assert_eq!(
            cap_wait(MAX_SERVER_WAIT + Duration::from_nanos(1)),
            (MAX_SERVER_WAIT, true)
        );
        assert_eq!(cap_wait(Duration::MAX), (MAX_SERVER_WAIT, true));
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

/// How long a command a person waits on (`check`, `auth`, `artist`, ...)
/// gives a server: the daemon's own `request_timeout` may be long, as it
/// waits for nobody.
pub const INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client for a command a person waits on: the config's timeout, but
/// never more than [`INTERACTIVE_TIMEOUT`].
///
/// # Errors
///
/// As [`client`].
pub fn interactive_client(request_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    client(request_timeout.min(INTERACTIVE_TIMEOUT))
}

/// One line a person can act on: what kind of failure, and its innermost
/// cause ("Connection refused" sits two levels down). reqwest's own words
/// around it name the request's URL, which carries the `api_key` of a
/// Last.fm read, so they are left out.
pub fn describe_error(e: &reqwest::Error) -> String {
    let mut root: Option<&dyn std::error::Error> = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        root = Some(s);
        source = s.source();
    }
    let cause = root.map(|r| r.to_string()).unwrap_or_default();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "cannot read the reply"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_builder() {
        "cannot make the request"
    } else {
        "the request failed"
    };
    if cause.is_empty() || kind == "timed out" {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// The start of a reply's body for a message, or a note that it was empty
/// ("HTTP 404 (empty body)" reads better than "HTTP 404: ").
pub fn body_note(body: &str) -> String {
    match body.trim() {
        "" => " (empty body)".to_owned(),
        b => format!(": {b}"),
    }
}

/// Whether a failed request may still have been received and acted on: a
/// timeout, a connection reset or closed once the request was on its way,
/// or a body that could not be read. Only a failure to connect, or a request
/// that could not even be built, proves that nothing reached the server.
pub fn outcome_unknown(e: &reqwest::Error) -> bool {
    !(e.is_connect() || e.is_builder())
}
