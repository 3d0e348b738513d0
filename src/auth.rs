//! `mpd-scrobbler auth lastfm`: obtains a Last.fm (or Libre.fm, ...) session
//! key by the desktop token flow or, with a username, the mobile flow, stores
//! it in the state directory and tells a running daemon to pick it up.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::control::{self, Request};
use crate::{http, lastfm, session};

/// How often the desktop flow asks whether the user has approved the token.
const POLL_EVERY: Duration = Duration::from_secs(3);

/// Last.fm tokens live 60 minutes (protocols.md §1.5).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Options of `auth lastfm`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Which `[[lastfm]]` target, when several are configured.
    pub name: Option<String>,
    /// Use the mobile flow for this account.
    pub username: Option<String>,
}

/// Run the command; prints progress on stdout.
pub async fn lastfm(config: &Config, opts: Options) -> anyhow::Result<()> {
    let target = config
        .lastfm_target(opts.name.as_deref())
        .map_err(anyhow::Error::msg)?;
    let http = http::client(config.delivery.request_timeout)?;
    let client = lastfm::Client::new(
        http,
        &target.url,
        &target.api_key,
        target.api_secret.expose(),
    );

    let session = match &opts.username {
        Some(user) => {
            let password = read_password(user)?;
            client
                .get_mobile_session(user, &password)
                .await
                .map_err(|e| match e {
                    lastfm::Error::Api { code: 4, .. } => {
                        anyhow::anyhow!("{}: wrong username or password for {user}", target.url)
                    }
                    e => anyhow::Error::new(e).context(format!("{}: login failed", target.url)),
                })?
        }
        None => desktop_flow(&client, &target.url).await?,
    };

    let path = session::store(&config.state_dir, &target.name, &session.name, &session.key)
        .with_context(|| format!("cannot store the session in {}", config.state_dir.display()))?;
    println!(
        "Authorised as {} for {}; session stored in {}",
        session.name,
        target.name,
        path.display()
    );
    match control::request(&config.state_dir, Request::Reload).await {
        Ok(Some(reply)) if reply == "ok" => println!("The running daemon now uses it."),
        Ok(Some(reply)) => println!("The running daemon answered: {reply}"),
        Ok(None) => {}
        Err(e) => {
            println!("Could not reach the running daemon ({e}); restart it to use the new session.")
        }
    }
    Ok(())
}

async fn desktop_flow(client: &lastfm::Client, url: &str) -> anyhow::Result<lastfm::Session> {
    let token = client
        .get_token()
        .await
        .with_context(|| format!("{url}: could not get an authorisation token"))?;
    println!(
        "Open this page, log in and allow access for mpd-scrobbler:\n\n  {}\n",
        client.auth_page_url(&token)
    );
    println!("Waiting for approval (Ctrl-C to give up)...");
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
            Err(e) if e.kind() == lastfm::ErrorKind::Transient => {
                tracing::debug!("polling for the session: {e}");
                continue;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("{url}: authorisation failed")));
            }
        }
    }
}

/// Read the password from the terminal without echo, or as one line of stdin
/// when it is not a terminal. Never from argv: that would show in `ps`.
fn read_password(user: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {user}: "))
            .context("cannot read the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("no password given (type it at the prompt or pipe it on stdin)");
    }
    Ok(password)
}
