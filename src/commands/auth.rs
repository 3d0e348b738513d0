//! `mpd-scrobbler auth`: obtains credentials and stores them in the state
//! directory, then tells a running daemon to pick them up. For Last.fm (or
//! Libre.fm, ...) a session key by the desktop token flow or, with a
//! username, the mobile flow; for ListenBrainz (or Maloja) a token the user
//! pastes, checked with the server first.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::control::{self, Request};
use crate::output::outln;
use crate::targets::{lastfm, listenbrainz};
use crate::{http, session};

/// How often the desktop flow asks whether the user has approved the token.
const POLL_EVERY: Duration = Duration::from_secs(3);

/// Last.fm tokens live 60 minutes (docs/protocols.md, "Authorisation").
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Options of `auth lastfm`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Which `[[lastfm]]` target, when several are configured.
    pub name: Option<String>,
    /// Use the mobile flow for this account.
    pub username: Option<String>,
}

/// Run the command; prints progress on stdout.
pub(crate) async fn lastfm(config: &Config, opts: Options) -> anyhow::Result<()> {
    let target = config.lastfm_target(opts.name.as_deref())?;
    let http = http::interactive_client(config.delivery.request_timeout)?;
    let client = lastfm::Client::new(
        http,
        &target.url,
        &target.api_key,
        target.api_secret.expose(),
    );

    let fix = Fix {
        section: if config.lastfm.len() > 1 {
            "its [[lastfm]] section"
        } else {
            "[lastfm]"
        },
        file: config.path.display().to_string(),
    };
    let session = match &opts.username {
        Some(user) => {
            let password = read_secret(&format!("Password for {user}"))?;
            client
                .get_mobile_session(user, &password)
                .await
                .map_err(|e| match e {
                    lastfm::Error::Api { code: 4, .. } => {
                        anyhow::anyhow!("{}: wrong username or password for {user}", target.url)
                    }
                    e => fix.explain(e, &format!("{}: login failed", target.url)),
                })?
        }
        None => desktop_flow(&client, &target.url, &fix).await?,
    };

    store_and_notify(config, &target.name, &session.name, &session.key).await
}

/// `auth listenbrainz`: read a token, check it, store it.
pub(crate) async fn listenbrainz(config: &Config, name: Option<&str>) -> anyhow::Result<()> {
    let target = config.listenbrainz_target(name)?;
    let http = http::interactive_client(config.delivery.request_timeout)?;
    let client = listenbrainz::Client::new(http, &target.url, target.flavor);
    let token =
        read_secret("Token (from https://listenbrainz.org/settings/, or a Maloja API key)")?;
    let user = client
        .validate_token(token.trim())
        .await
        .with_context(|| format!("{}: cannot check the token", target.url))?
        .ok_or_else(|| anyhow::anyhow!("{} does not accept this token", target.url))?;
    store_and_notify(config, &target.name, &user, token.trim()).await
}

async fn store_and_notify(
    config: &Config,
    target: &str,
    user: &str,
    credential: &str,
) -> anyhow::Result<()> {
    let path = session::store(&config.state_dir, target, user, credential).with_context(|| {
        format!(
            "cannot store the credentials in {}",
            config.state_dir.display()
        )
    })?;
    let who = if user.is_empty() {
        "(no user name given by the server)"
    } else {
        user
    };
    outln!(
        "Authorised as {who} for {target}; stored in {}",
        path.display()
    );
    match control::request(&config.state_dir, Request::Reload).await {
        Ok(Some(control::Reply::Reloaded)) => outln!("The running daemon now uses it."),
        Ok(Some(reply)) => outln!("The running daemon answered: {reply:?}"),
        Ok(None) => {}
        Err(control::RequestError::Io(e)) => outln!(
            "Could not reach the running daemon ({e}); restart it to use the new credentials."
        ),
        Err(e) => outln!("{e}; restart the daemon to use the new credentials."),
    }
    Ok(())
}

/// Where the settings a Last.fm error points at are, to say what to fix
/// (as `check` does).
struct Fix {
    section: &'static str,
    file: String,
}

impl Fix {
    /// `e` with `what` before it and, for an error the config can fix,
    /// the key to check.
    fn explain(&self, e: lastfm::Error, what: &str) -> anyhow::Error {
        let key = match &e {
            lastfm::Error::Api { code: 10, .. } => Some("api_key"),
            lastfm::Error::Api { code: 13, .. } => Some("api_secret"),
            lastfm::Error::Api { code: 26, .. } => Some("api_key (this API account is suspended)"),
            lastfm::Error::NotJson { .. } => Some("url"),
            _ => None,
        };
        match key {
            Some(key) => anyhow::anyhow!(
                "{what}: {e}; check {key} in {} of {}",
                self.section,
                self.file
            ),
            None => anyhow::Error::new(e).context(what.to_owned()),
        }
    }
}

async fn desktop_flow(
    client: &lastfm::Client,
    url: &str,
    fix: &Fix,
) -> anyhow::Result<lastfm::Session> {
    let token = client
        .get_token()
        .await
        .map_err(|e| fix.explain(e, &format!("{url}: could not get an authorisation token")))?;
    outln!(
        "Open this page, log in and allow access for mpd-scrobbler:\n\n  {}\n",
        client.auth_page_url(&token)
    );
    outln!("Waiting for approval (Ctrl-C to give up)...");
    let _ = std::io::stdout().flush();
    let started = Instant::now();
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        match client.get_session(&token).await {
            Ok(s) => return Ok(s),
            Err(lastfm::Error::Api { code: 14, .. }) if started.elapsed() < TOKEN_LIFETIME => {
                continue;
            }
            Err(lastfm::Error::Api { code: 14 | 15, .. }) => {
                bail!("the token expired before access was allowed; run the command again")
            }
            Err(lastfm::Error::Api { code: 4, .. }) => {
                bail!("the server no longer knows the token; run the command again")
            }
            Err(e)
                if matches!(
                    e.kind(),
                    crate::targets::ErrorKind::Transient | crate::targets::ErrorKind::Unknown
                ) =>
            {
                tracing::debug!("polling for the session: {e}");
                continue;
            }
            Err(e) => return Err(fix.explain(e, &format!("{url}: authorisation failed"))),
        }
    }
}

/// Read a password or token from the terminal without echo, or as one line
/// of stdin when it is not a terminal. Never from argv: that would show in `ps`.
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    let secret = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{prompt}: "))
            .context("cannot read from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if secret.is_empty() {
        bail!("nothing given (type it at the prompt or pipe it on stdin)");
    }
    Ok(secret)
}
