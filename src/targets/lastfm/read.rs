//! The Last.fm client's read methods: unsigned reads of metadata (used by
//! `info` and `query`), the recent tracks of a user (to check what arrived)
//! and the account behind a session.

use serde::Deserialize;

use super::client::reply_body;
use super::recent::{self, PAGE_SIZE, RecentPage};
use super::sign::Params;
use super::{Client, Error, MAX_RECENT_PAGES, wire};
use crate::http::percent_encode;
use crate::json::{Obj, Str};
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
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Reply {
            user: Obj<User>,
        }
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct User {
            name: Str,
        }
        let reply: Reply = self
            .call("user.getInfo", Some(session_key), Params::new())
            .await?;
        reply
            .user
            .or_default()
            .name
            .0
            .ok_or_else(|| Error::Malformed("no user name in the user.getInfo reply".into()))
    }
    /// An unsigned read call (`artist.getInfo`, `user.getTopArtists`, ...)
    /// by GET, returning the body of the reply, a JSON object
    /// (docs/protocols.md, "Read methods"); the caller reads it into the
    /// reply's type, or keeps it as it came (the metadata cache).
    ///
    /// # Errors
    ///
    /// Any failure of the call; "not found" is [`Error::Api`] code 6.
    pub(crate) async fn read(
        &self,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<u8>, Error> {
        let response = self.get(method, params).send().await?;
        reply_body(response).await
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
        // The envelope first: an API error, or whatever is not the API.
        let body = reply_body(response).await?;
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
            let body = self.read("user.getRecentTracks", &params).await?;
            let (items, pages) = wire::recent_tracks(wire::parse(&body)?)?;
            heard.extend(items);
            if page >= pages {
                break;
            }
        }
        Ok(heard)
    }
}
