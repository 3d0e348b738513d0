//! The targets' checks: the stored or configured credential of each, tried
//! against its server without changing anything.

use super::Verdict;
use crate::config::{Config, LastFmTarget, ListenBrainzTarget};
use crate::session;
use crate::targets::ErrorKind;
use crate::targets::{lastfm, listenbrainz};

pub(super) async fn check_lastfm(
    config: &Config,
    t: &LastFmTarget,
    http: reqwest::Client,
) -> Verdict {
    let auth = config.auth_command(&t.name);
    let key = match session::credential(&config.state_dir, &t.name, t.session_key.as_ref()) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Verdict::fail(
                &t.name,
                "not authorised yet: no session key".into(),
                format!("run `{auth}`"),
            );
        }
        Err(e) => return unreadable_credential(&t.name, &auth, e),
    };
    let client = lastfm::Client::new(http, &t.url, &t.api_key, t.api_secret.expose());
    let section = if config.lastfm.len() > 1 {
        "its [[lastfm]] section"
    } else {
        "[lastfm]"
    };
    let file = config.path.display();
    match client.session_user(key.expose()).await {
        Ok(user) => Verdict::ok(
            &t.name,
            format!("{} accepts the session of {user:?}", t.url),
        ),
        Err(lastfm::Error::Api { code, message }) => {
            let detail = lastfm::Error::meaning(code)
                .map_or_else(|| format!("server error {code}"), str::to_owned);
            let fix = match code {
                4 | 9 => format!("run `{auth}`"),
                10 => format!("set api_key in {section} of {file}"),
                13 => format!("set the api_secret of this API account in {section} of {file}"),
                26 => "ask Last.fm, or create another API account".to_owned(),
                _ => "try again later; if it persists, check the url".to_owned(),
            };
            Verdict::fail(&t.name, format!("{}: {detail} ({message})", t.url), fix)
        }
        Err(e) => Verdict::fail(
            &t.name,
            format!("{}: {e}", t.url),
            match e.kind() {
                ErrorKind::Config => format!("check url in {section} of {file}"),
                _ => format!("check the network and url in {section} of {file}"),
            },
        ),
    }
}

pub(super) async fn check_listenbrainz(
    config: &Config,
    t: &ListenBrainzTarget,
    http: reqwest::Client,
) -> Verdict {
    let auth = config.auth_command(&t.name);
    let token = match session::credential(&config.state_dir, &t.name, t.token.as_ref()) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Verdict::fail(
                &t.name,
                "no token".into(),
                format!(
                    "run `{auth}` (or set token_file in {})",
                    config.path.display()
                ),
            );
        }
        Err(e) => return unreadable_credential(&t.name, &auth, e),
    };
    let client = listenbrainz::Client::new(http, &t.url, t.flavor);
    match client.validate_token(token.expose()).await {
        Ok(Some(user)) => Verdict::ok(&t.name, format!("{} accepts the token of {user:?}", t.url)),
        Ok(None) => Verdict::fail(
            &t.name,
            format!("{} refuses the token", t.url),
            format!("run `{auth}` with a current token"),
        ),
        Err(e) => Verdict::fail(
            &t.name,
            format!("{}: {e}", t.url),
            format!(
                "check the network and url in the [listenbrainz] section of {}",
                config.path.display()
            ),
        ),
    }
}

fn unreadable_credential(name: &str, auth: &str, e: session::LoadError) -> Verdict {
    let fix = match e {
        session::LoadError::Unreadable { .. } => {
            format!("make it readable by the user that runs the daemon, or run `{auth}` again")
        }
        session::LoadError::Damaged { .. } => format!("run `{auth}` again to replace it"),
    };
    Verdict::fail(name, e.to_string(), fix)
}
