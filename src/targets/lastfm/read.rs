//! The Last.fm client's read methods: unsigned reads of metadata (used by
//! `info` and `query`), the recent tracks of a user (to check what arrived)
//! and the account behind a session.

use serde_json::Value;

use super::client::reply;
use super::recent::{self, PAGE_SIZE, RecentPage};
use super::sign::Params;
use super::{Client, Error, MAX_RECENT_PAGES, wire};
use crate::http::percent_encode;
use crate::targets::Heard;

impl Client {
    /// Checks a session without changing anything: a signed `user.getInfo`
    /// without a `user` parameter, which the server answers for the
    /// session's own account. Returns that account's name.
    ///
    /// A wrong key (10), a secret that does not match it (13) and a revoked
    /// session (9) fail exactly as a scrobble would.
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`].
    pub(crate) async fn session_user(&self, session_key: &str) -> Result<String, Error> {
        let reply = self
            .call("user.getInfo", Some(session_key), Params::new())
            .await?;
        reply
            .get("user")
            .and_then(|u| u.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Malformed("no user name in the user.getInfo reply".into()))
    }
    /// An unsigned read call (`artist.getInfo`, `user.getTopArtists`, ...)
    /// by GET, returning the reply's JSON (docs/protocols.md, "Read methods").
    ///
    /// # Errors
    ///
    /// Any failure of the call; "not found" is [`Error::Api`] code 6.
    pub(crate) async fn read(
        &self,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<Value, Error> {
        let response = self.get(method, params).send().await?;
        reply(response).await
    }

    /// The GET of an unsigned read call. The API key is no secret (it is
    /// in every Last.fm page's scripts); reqwest's errors do not quote the
    /// URL anyway (see `crate::http::describe_error`).
    fn get(&self, method: &str, params: &[(&str, String)]) -> reqwest::RequestBuilder {
        tracing::debug!(method, "Audioscrobbler read");
        let mut query: Vec<(&str, &str)> = vec![
            ("method", method),
            ("api_key", &self.api_key),
            ("format", "json"),
        ];
        query.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
        let url = format!(
            "{}?{}",
            self.api_url,
            query
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        );
        self.http.get(url)
    }

    /// One page (1-based) of the scrobbles of `user` that started after
    /// `after` and before `before` (Unix seconds, both excluded as the
    /// server documents it), newest first, [`PAGE_SIZE`] to a page.
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`]. An unknown user is
    /// [`Error::Api`] code 6, a private profile code 17.
    pub(crate) async fn recent_page(
        &self,
        user: &str,
        after: Option<u64>,
        before: u64,
        page: u32,
    ) -> Result<RecentPage, Error> {
        let mut params = vec![
            ("user", user.to_owned()),
            ("to", before.to_string()),
            ("limit", PAGE_SIZE.to_string()),
            ("page", page.to_string()),
        ];
        if let Some(after) = after {
            params.push(("from", after.to_string()));
        }
        let response = self.get("user.getRecentTracks", &params).send().await?;
        let status = response.status().as_u16();
        let retry_after =
            crate::http::retry_after(response.headers(), std::time::SystemTime::now());
        let body = crate::http::read_body(response).await?;
        // The envelope first: an API error, or whatever is not the API.
        wire::read_reply(status, &body).map_err(|e| match e {
            Error::Http { status, body, .. } => Error::Http {
                status,
                body,
                retry_after,
            },
            e => e,
        })?;
        recent::recent_page(&body)
    }

    /// The scrobbles of `user` that started from `first` to `last` (Unix
    /// seconds, both included), read with `user.getRecentTracks` page by page
    /// (at most [`MAX_RECENT_PAGES`] pages of 200).
    ///
    /// # Errors
    ///
    /// Any failure of the call; see [`Error::kind`].
    pub(crate) async fn recent_tracks(
        &self,
        user: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<Heard>, Error> {
        let mut heard = Vec::new();
        for page in 1..=MAX_RECENT_PAGES {
            // Whether `from` and `to` are inclusive is not documented: a
            // second of margin on each side works either way.
            let params = [
                ("user", user.to_owned()),
                ("from", first.saturating_sub(1).to_string()),
                ("to", last.saturating_add(1).to_string()),
                ("limit", "200".to_owned()),
                ("page", page.to_string()),
            ];
            let reply = self.read("user.getRecentTracks", &params).await?;
            let (items, pages) = wire::recent_tracks(&reply)?;
            heard.extend(items);
            if page >= pages {
                break;
            }
        }
        Ok(heard)
    }
}
