//! The calls of the Last.fm client: signed POSTs for writes and the
//! authentication flows, and the reading of replies into [`Error`]s.

use std::fmt;
use std::time::SystemTime;

use serde::de::{DeserializeOwned, IgnoredAny};

use super::sign::{self, Params};
use super::{Error, MAX_BATCH, Session, wire};
use crate::http::percent_encode;
use crate::model::{Listen, Track};
use crate::targets::ItemOutcome;

/// Where Last.fm users approve a desktop token. Other servers host the page
/// themselves (see [`Client::auth_page_url`]).
const LASTFM_AUTH_PAGE: &str = "https://www.last.fm/api/auth/";

/// A client for one Audioscrobbler 2.0 server and API account.
///
/// Cheap to clone: the HTTP client inside is shared.
#[derive(Clone)]
pub(crate) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) api_url: String,
    pub(super) api_key: String,
    api_secret: String,
}

impl Client {
    /// A client for the server at `api_url` (for example
    /// [`LASTFM_API_URL`](super::LASTFM_API_URL) or `https://libre.fm/2.0/`), using the API
    /// account's key and shared secret.
    ///
    /// An unusable `api_url` surfaces on the first call, as an error of kind
    /// [`ErrorKind::Config`](crate::targets::ErrorKind::Config).
    pub(crate) fn new(
        http: reqwest::Client,
        api_url: &str,
        api_key: &str,
        api_secret: &str,
    ) -> Client {
        Client {
            http,
            api_url: api_url.to_owned(),
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
        }
    }

    /// The API URL.
    pub(crate) fn url(&self) -> &str {
        &self.api_url
    }

    /// Tells the server that `track` started playing (`track.updateNowPlaying`).
    ///
    /// Last.fm asks that a failed now-playing call is not retried; a
    /// now-playing notice the server ignores is only logged at debug level.
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`].
    pub(crate) async fn now_playing(&self, session_key: &str, track: &Track) -> Result<(), Error> {
        let params = wire::now_playing_params(track);
        let reply = self
            .call("track.updateNowPlaying", Some(session_key), params)
            .await?;
        if let Some((code, message)) = wire::now_playing_ignored(reply) {
            tracing::debug!(code, message, "server ignored the now-playing notice");
        }
        Ok(())
    }

    /// Sends one `track.scrobble` request for up to [`MAX_BATCH`] listens and
    /// returns one outcome per listen, in order. An empty slice sends nothing.
    ///
    /// A successful reply does not mean every listen was stored: check each
    /// outcome.
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`]. On error, no outcome is
    /// known for any listen.
    ///
    /// # Panics
    ///
    /// If `listens` holds more than [`MAX_BATCH`] listens.
    pub(crate) async fn scrobble(
        &self,
        session_key: &str,
        listens: &[Listen],
    ) -> Result<Vec<ItemOutcome>, Error> {
        assert!(
            listens.len() <= MAX_BATCH,
            "a track.scrobble batch holds at most {MAX_BATCH} listens, got {}",
            listens.len()
        );
        if listens.is_empty() {
            return Ok(Vec::new());
        }
        let params = wire::scrobble_params(listens);
        let reply = self
            .call("track.scrobble", Some(session_key), params)
            .await?;
        wire::scrobble_outcomes(reply, listens.len())
    }

    /// Starts the desktop flow: requests a token (`auth.getToken`) for the
    /// user to approve at [`auth_page_url`](Self::auth_page_url). Tokens are
    /// valid for 60 minutes and are used up by
    /// [`get_session`](Self::get_session).
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`].
    pub(crate) async fn get_token(&self) -> Result<String, Error> {
        let reply = self.call("auth.getToken", None, Params::new()).await?;
        wire::token(reply)
    }

    /// Finishes the desktop flow: exchanges an approved token for a session
    /// (`auth.getSession`).
    ///
    /// # Errors
    ///
    /// [`Error::Api`] with code 14 while the user has not approved the token
    /// yet (poll again after a few seconds), 15 when it expired and 4 when it
    /// is invalid (start over with [`get_token`](Self::get_token)); otherwise
    /// any failure of the call.
    pub(crate) async fn get_session(&self, token: &str) -> Result<Session, Error> {
        let params = Params::from([("token".to_owned(), token.to_owned())]);
        let reply = self.call("auth.getSession", None, params).await?;
        wire::session(reply)
    }
    /// Love or unlove a track (`track.love` / `track.unlove`).
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`].
    pub(crate) async fn love(
        &self,
        session_key: &str,
        track: &Track,
        love: bool,
    ) -> Result<(), Error> {
        let method = if love { "track.love" } else { "track.unlove" };
        let params = Params::from([
            ("artist".to_owned(), track.artist.clone()),
            ("track".to_owned(), track.title.clone()),
        ]);
        self.call::<IgnoredAny>(method, Some(session_key), params)
            .await
            .map(drop)
    }
    /// The mobile flow: gets a session from a user name and password
    /// (`auth.getMobileSession`).
    ///
    /// Last.fm (API host `ws.audioscrobbler.com` or `*.last.fm`) receives the
    /// password itself, as it documents. Every other server (Libre.fm,
    /// Maloja) receives the legacy
    /// `authToken = md5(lowercase(username) + md5_hex(password))` with the
    /// lowercased user name instead, which is what GNU FM checks (docs/protocols.md, "Libre.fm").
    ///
    /// # Errors
    ///
    /// Any failure of the call; wrong credentials give an [`Error::Api`]
    /// (Last.fm and Maloja: code 4).
    pub(crate) async fn get_mobile_session(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Session, Error> {
        let params = self.mobile_session_params(username, password);
        let reply = self.call("auth.getMobileSession", None, params).await?;
        wire::session(reply)
    }

    /// The page where the user approves a desktop token:
    /// `https://www.last.fm/api/auth/?api_key=..&token=..` for Last.fm, and
    /// the API URL's scheme, host and port followed by
    /// `/api/auth/?api_key=..&token=..` for any other server (Libre.fm's
    /// rule).
    pub(crate) fn auth_page_url(&self, token: &str) -> String {
        let page = if self.is_lastfm() {
            LASTFM_AUTH_PAGE.to_owned()
        } else {
            let (scheme, authority) = split_authority(&self.api_url);
            format!("{scheme}://{authority}/api/auth/")
        };
        format!(
            "{page}?api_key={}&token={}",
            percent_encode(&self.api_key),
            percent_encode(token)
        )
    }

    fn mobile_session_params(&self, username: &str, password: &str) -> Params {
        let credentials = if self.is_lastfm() {
            [
                ("username", username.to_owned()),
                ("password", password.to_owned()),
            ]
        } else {
            [
                ("username", username.to_lowercase()),
                ("authToken", sign::auth_token(username, password)),
            ]
        };
        credentials
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// Whether the API URL points at Last.fm itself rather than another
    /// server speaking its protocol.
    fn is_lastfm(&self) -> bool {
        let (_, authority) = split_authority(&self.api_url);
        let host = match authority.strip_prefix('[') {
            Some(ipv6) => ipv6.split(']').next(),
            None => authority.split(':').next(),
        }
        .unwrap_or_default()
        .to_ascii_lowercase();
        host == "ws.audioscrobbler.com" || host == "last.fm" || host.ends_with(".last.fm")
    }

    /// Signs and POSTs a call, and returns its successful reply read as `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        session_key: Option<&str>,
        params: Params,
    ) -> Result<T, Error> {
        // Only the method name: the body holds the session key or password.
        tracing::debug!(method, "Audioscrobbler request");
        let response = self.request(method, session_key, params).send().await?;
        wire::parse(&reply_body(response).await?)
    }

    /// The signed form POST for a call. Every call is a POST: writes and
    /// `auth.getMobileSession` must be, and the rest may be.
    fn request(
        &self,
        method: &str,
        session_key: Option<&str>,
        mut params: Params,
    ) -> reqwest::RequestBuilder {
        sign::sign_request(
            &mut params,
            method,
            &self.api_key,
            session_key,
            &self.api_secret,
        );
        self.http.post(&self.api_url).form(&params)
    }
}
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.api_url)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}
/// The body of a successful reply (a JSON object, see
/// [`wire::check_reply`]), or the error it reports; the body is read up to
/// [`crate::http::MAX_BODY`].
pub(super) async fn reply_body(response: reqwest::Response) -> Result<Vec<u8>, Error> {
    let status = response.status().as_u16();
    let retry_after = crate::http::retry_after(response.headers(), SystemTime::now());
    let body = crate::http::read_body(response).await?;
    wire::check_reply(status, &body).map_err(|e| match e {
        Error::Http { status, body, .. } => Error::Http {
            status,
            body,
            retry_after,
        },
        e => e,
    })?;
    Ok(body)
}

/// Splits `https://user@host:port/path?query` into `("https", "host:port")`.
/// A URL without a scheme is taken as HTTPS.
fn split_authority(url: &str) -> (&str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (scheme, authority)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::http::test_server::serve_once;
    use crate::targets::ErrorKind;
    use crate::targets::lastfm::LASTFM_API_URL;
    use crate::targets::lastfm::sign::api_sig;

    const API_KEY: &str = "0123456789abcdef0123456789abcdef";
    const SECRET: &str = "fedcba9876543210fedcba9876543210";
    const SK: &str = "5f2b1c6d8e9a0b1c2d3e4f5a6b7c8d9e";

    fn client(api_url: &str) -> Client {
        let http = crate::http::client(Duration::from_secs(5)).unwrap();
        Client::new(http, api_url, API_KEY, SECRET)
    }

    /// Decodes an `application/x-www-form-urlencoded` body.
    fn decode_form(body: &str) -> BTreeMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{body}"))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    fn body_of(request: reqwest::RequestBuilder) -> String {
        let request = request.build().unwrap();
        let bytes = request.body().unwrap().as_bytes().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The two listens of the worked example in docs/protocols.md, "Signing".
    fn worked_example_listens() -> [Listen; 2] {
        [
            Listen {
                track: Track {
                    artist: "Sigur Rós".into(),
                    title: "Hoppípolla".into(),
                    album: Some("Takk...".into()),
                    track_number: Some(3),
                    duration_secs: Some(268),
                    ..Track::default()
                },
                started_at: 1_700_000_000,
            },
            Listen {
                track: Track {
                    artist: "AC/DC".into(),
                    title: "T.N.T.".into(),
                    album_artist: Some("AC/DC".into()),
                    ..Track::default()
                },
                started_at: 1_700_000_300,
            },
        ]
    }

    const WORKED_EXAMPLE_BODY: &str = "albumArtist%5B1%5D=AC%2FDC&album%5B0%5D=Takk...&api_key=0123456789abcdef0123456789abcdef&api_sig=2ce114d60038545e95cb52175894ba1a&artist%5B0%5D=Sigur+R%C3%B3s&artist%5B1%5D=AC%2FDC&duration%5B0%5D=268&format=json&method=track.scrobble&sk=5f2b1c6d8e9a0b1c2d3e4f5a6b7c8d9e&timestamp%5B0%5D=1700000000&timestamp%5B1%5D=1700000300&trackNumber%5B0%5D=3&track%5B0%5D=Hopp%C3%ADpolla&track%5B1%5D=T.N.T.";

    #[test]
    fn worked_example_batch_signature_and_body() {
        let client = client(LASTFM_API_URL);
        let mut expected = decode_form(WORKED_EXAMPLE_BODY);

        // The example sends albumArtist[1] although it equals artist[1]; the
        // builder leaves such an album artist out, as the API asks.
        let mut params = wire::scrobble_params(&worked_example_listens());
        let album_artist = expected.remove("albumArtist[1]").unwrap();
        let mut without_envelope = expected.clone();
        for name in ["api_key", "api_sig", "format", "method", "sk"] {
            without_envelope.remove(name);
        }
        assert_eq!(params, without_envelope);

        params.insert("albumArtist[1]".into(), album_artist);
        let body = body_of(client.request("track.scrobble", Some(SK), params));
        assert_eq!(decode_form(&body), decode_form(WORKED_EXAMPLE_BODY));
        assert_eq!(
            decode_form(&body)["api_sig"],
            "2ce114d60038545e95cb52175894ba1a"
        );
    }

    #[test]
    fn worked_example_as_actually_sent() {
        let client = client(LASTFM_API_URL);
        let params = wire::scrobble_params(&worked_example_listens());
        let sent = decode_form(&body_of(client.request("track.scrobble", Some(SK), params)));
        assert!(!sent.contains_key("albumArtist[1]"));
        // Computed independently with python3 hashlib from the "Signing" string
        // without "albumArtist[1]AC/DC".
        assert_eq!(sent["api_sig"], "dc9c35af243e3bbf802790f480b52d48");
    }

    #[test]
    fn mobile_session_sends_password_to_lastfm_only() {
        let lastfm = client(LASTFM_API_URL).mobile_session_params("Alice", "s3cret pässword");
        assert_eq!(lastfm["username"], "Alice");
        assert_eq!(lastfm["password"], "s3cret pässword");
        assert!(!lastfm.contains_key("authToken"));

        for url in [
            "https://libre.fm/2.0/",
            "https://maloja.example/apis/audioscrobbler/2.0/",
        ] {
            let other = client(url).mobile_session_params("Alice", "s3cret pässword");
            assert_eq!(other["username"], "alice");
            assert_eq!(other["authToken"], "ce8f8aeac66d2efad4835830bc1c0bd4");
            assert!(!other.contains_key("password"), "{url}");
        }
    }

    #[test]
    fn lastfm_hosts_are_recognised() {
        for url in [
            LASTFM_API_URL,
            "http://ws.audioscrobbler.com/2.0/",
            "https://WS.AudioScrobbler.com:443/2.0/",
            "https://api.last.fm/2.0/",
        ] {
            assert!(client(url).is_lastfm(), "{url}");
        }
        for url in [
            "https://libre.fm/2.0/",
            "https://notlast.fm/2.0/",
            "http://127.0.0.1:8080/2.0/",
            "http://[::1]:8080/2.0/",
        ] {
            assert!(!client(url).is_lastfm(), "{url}");
        }
    }

    #[test]
    fn auth_page_url_for_lastfm_librefm_and_loopback() {
        assert_eq!(
            client(LASTFM_API_URL).auth_page_url("abc123"),
            format!("https://www.last.fm/api/auth/?api_key={API_KEY}&token=abc123")
        );
        assert_eq!(
            client("https://libre.fm/2.0/").auth_page_url("abc123"),
            format!("https://libre.fm/api/auth/?api_key={API_KEY}&token=abc123")
        );
        assert_eq!(
            client("http://127.0.0.1:18080/2.0/").auth_page_url("abc123"),
            format!("http://127.0.0.1:18080/api/auth/?api_key={API_KEY}&token=abc123")
        );
    }

    #[test]
    fn auth_page_url_escapes_its_values() {
        assert_eq!(
            client("https://user@gnufm.example:8443/2.0/").auth_page_url("a b&c"),
            format!("https://gnufm.example:8443/api/auth/?api_key={API_KEY}&token=a%20b%26c")
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let client = Client::new(
            reqwest::Client::new(),
            LASTFM_API_URL,
            API_KEY,
            "s3cr3t-value",
        );
        let shown = format!("{client:?}");
        assert!(
            shown.contains(API_KEY) && !shown.contains("s3cr3t-value"),
            "{shown}"
        );

        let session = Session {
            name: "alice".into(),
            key: "sk-value-9".into(),
        };
        let shown = format!("{session:?}");
        assert!(
            shown.contains("alice") && !shown.contains("sk-value-9"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn invalid_api_url_is_a_config_error() {
        let err = client("not a url").get_token().await.unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[tokio::test]
    async fn refused_connection_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/2.0/", listener.local_addr().unwrap());
        drop(listener);
        let err = client(&url).get_token().await.unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Transient);
    }

    #[tokio::test]
    async fn a_scrobble_without_an_answer_has_an_unknown_outcome() {
        // Reads the request, then closes without answering.
        let (url, server) = crate::http::test_server::serve_raw(|_| String::new()).await;
        let err = client(&url)
            .scrobble(SK, &worked_example_listens())
            .await
            .unwrap_err();
        server.await.unwrap();
        assert_eq!(err.kind(), ErrorKind::Unknown, "{err:?}");
    }

    #[tokio::test]
    async fn scrobble_posts_a_signed_form_and_reads_outcomes() {
        let reply = r##"{"scrobbles":{"scrobble":[
            {"ignoredMessage":{"code":"0","#text":""}},
            {"ignoredMessage":{"code":"3","#text":"Timestamp was too old"}}],
            "@attr":{"accepted":1,"ignored":1}}}"##;
        let (url, server) = serve_once(200, reply).await;
        let outcomes = client(&url)
            .scrobble(SK, &worked_example_listens())
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                ItemOutcome::Accepted,
                ItemOutcome::Ignored {
                    code: 3,
                    message: "Timestamp was too old".into()
                }
            ]
        );

        let received = server.await.unwrap();
        assert!(received.head.starts_with("POST /2.0/ HTTP/1.1\r\n"));
        assert!(
            received
                .head
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{}",
            received.head
        );
        let form = decode_form(&received.body);
        assert_eq!(form["method"], "track.scrobble");
        assert_eq!(form["sk"], SK);
        assert_eq!(form["format"], "json");
        assert_eq!(form["api_sig"], "dc9c35af243e3bbf802790f480b52d48");
    }

    #[tokio::test]
    async fn empty_batch_sends_nothing() {
        // Nothing listens at this URL: a request would fail.
        let outcomes = client("http://127.0.0.1:9/2.0/").scrobble(SK, &[]).await;
        assert_eq!(outcomes.unwrap(), []);
    }

    #[tokio::test]
    async fn now_playing_sends_unindexed_fields() {
        let reply = r##"{"nowplaying":{"artist":{"corrected":"0","#text":"Cher"},
            "ignoredMessage":{"code":"0","#text":""}}}"##;
        let (url, server) = serve_once(200, reply).await;
        let track = Track {
            artist: "Cher".into(),
            title: "Believe".into(),
            duration_secs: Some(239),
            ..Track::default()
        };
        client(&url).now_playing(SK, &track).await.unwrap();
        let form = decode_form(&server.await.unwrap().body);
        assert_eq!(form["method"], "track.updateNowPlaying");
        assert_eq!(form["artist"], "Cher");
        assert_eq!(form["track"], "Believe");
        assert_eq!(form["duration"], "239");
        let mut expected = form.clone();
        expected.remove("api_sig");
        expected.remove("format");
        assert_eq!(form["api_sig"], api_sig(&expected, SECRET));
    }

    #[tokio::test]
    async fn invalid_session_with_http_403_is_an_auth_error() {
        let (url, _server) = serve_once(
            403,
            r#"{"error":9,"message":"Invalid session key - Please re-authenticate"}"#,
        )
        .await;
        let err = client(&url)
            .now_playing(SK, &Track::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Api { code: 9, .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Auth);
    }

    #[tokio::test]
    async fn rate_limit_without_body_and_outage_page() {
        let (url, _server) = serve_once(429, "").await;
        let err = client(&url).get_token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);

        let (url, _server) = serve_once(503, "<html>Service Unavailable</html>").await;
        let err = client(&url).get_token().await.unwrap_err();
        assert!(
            matches!(err, Error::Http { status: 503, ref body, .. } if body.contains("Unavailable")),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Transient);
    }

    async fn scrobble_answered_with(response: String) -> Error {
        let (url, _server) = crate::http::test_server::serve_raw(|_| response).await;
        client(&url)
            .scrobble(SK, &worked_example_listens())
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn misdirected_answers_are_config_and_oversized_ones_transient() {
        for (status, body) in [
            (404, "Not Found"),
            (200, "<html>Sign in to the hotel Wi-Fi</html>"),
            (405, ""),
            (410, "Gone"),
            (407, "Proxy Authentication Required"),
            (401, "<html>401</html>"),
        ] {
            let err = scrobble_answered_with(format!(
                "HTTP/1.1 {status} X\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            ))
            .await;
            assert_eq!(err.kind(), ErrorKind::Config, "{status} {body:?}: {err:?}");
            assert_eq!(err.setting(), "url");
            assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
        }
        let err = scrobble_answered_with(
            "HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\nConnection: close\r\n\r\n".into(),
        )
        .await;
        assert!(
            matches!(err, Error::Malformed(ref m) if m.contains("larger than")),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Transient);
    }

    #[tokio::test]
    async fn retry_after_is_read_and_left_uncapped_for_the_flusher() {
        let err = scrobble_answered_with(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 18446744073709551615\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
                .into(),
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(u64::MAX)));
        let err = scrobble_answered_with(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: -30\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
                .into(),
        )
        .await;
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert_eq!(err.retry_after(), None);
    }

    #[tokio::test]
    async fn desktop_flow_token_pending_then_session() {
        let (url, server) = serve_once(200, r#"{"token":"cafe0123"}"#).await;
        assert_eq!(client(&url).get_token().await.unwrap(), "cafe0123");
        let form = decode_form(&server.await.unwrap().body);
        assert_eq!(form["method"], "auth.getToken");
        assert_eq!(form["api_sig"], "122db8efff0100fb11599a7629ab9106");

        let (url, _server) = serve_once(
            200,
            r#"{"error":14,"message":"This token has not been authorized"}"#,
        )
        .await;
        let err = client(&url).get_session("cafe0123").await.unwrap_err();
        assert!(matches!(err, Error::Api { code: 14, .. }), "{err:?}");

        let (url, server) = serve_once(
            200,
            r#"{"session":{"name":"alice","key":"d580d57f32848f5dcf574d1ce18d78b2","subscriber":0}}"#,
        )
        .await;
        let session = client(&url).get_session("cafe0123").await.unwrap();
        assert_eq!(
            session,
            Session {
                name: "alice".into(),
                key: "d580d57f32848f5dcf574d1ce18d78b2".into()
            }
        );
        let form = decode_form(&server.await.unwrap().body);
        assert_eq!(form["method"], "auth.getSession");
        assert_eq!(form["token"], "cafe0123");
    }

    #[tokio::test]
    async fn mobile_session_against_another_server_sends_auth_token() {
        let (url, server) = serve_once(
            200,
            r#"{"session":{"name":"alice","key":"k","subscriber":"0"}}"#,
        )
        .await;
        let session = client(&url)
            .get_mobile_session("Alice", "s3cret pässword")
            .await
            .unwrap();
        assert_eq!(session.key, "k");
        let form = decode_form(&server.await.unwrap().body);
        assert_eq!(form["method"], "auth.getMobileSession");
        assert_eq!(form["username"], "alice");
        assert_eq!(form["authToken"], "ce8f8aeac66d2efad4835830bc1c0bd4");
        assert!(!form.contains_key("password"));
    }
}
