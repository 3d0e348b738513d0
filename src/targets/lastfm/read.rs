//! The Last.fm client's read methods: unsigned reads of metadata (used by
//! `info` and `query`), the recent tracks of a user (to check what arrived)
//! and the account behind a session.

use serde_json::Value;

use super::client::reply;
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
        let response = self.http.get(url).send().await?;
        reply(response).await
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
