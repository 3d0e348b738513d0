//! The MPD check: connect with the configured address and password, and
//! ask what plays, as the daemon will.

use std::time::Duration;

use super::Verdict;
use crate::config::Config;
use crate::model::PlayState;
use crate::mpd;

pub(super) async fn check_mpd(config: &Config) -> Verdict {
    let address = config.mpd.address.to_string();
    let file = config.path.display();
    let mut client = match mpd::connect(&config.mpd).await {
        Ok(connected) => connected,
        Err(mpd::ConnectError::Io { source, .. }) => {
            return Verdict::fail(
                "mpd",
                format!("cannot connect to {address}: {source}"),
                format!(
                    "start mpd (systemctl start mpd), or point [mpd] host/port in {file} \
                     (or MPD_HOST/MPD_PORT) at it"
                ),
            );
        }
        Err(mpd::ConnectError::BadPassword(_)) => {
            return Verdict::fail(
                "mpd",
                format!("{address} rejected the password"),
                password_fix(config),
            );
        }
        Err(mpd::ConnectError::Protocol { message, .. }) => {
            return Verdict::fail(
                "mpd",
                format!("{address} does not answer like MPD: {message}"),
                format!("check that [mpd] host/port in {file} is MPD's address"),
            );
        }
    };
    let version = client.protocol_version().to_owned();
    match client.snapshot().await {
        Ok(snapshot) => {
            let playing = match (snapshot.state, &snapshot.song) {
                (PlayState::Stopped, _) | (_, None) => "stopped".to_owned(),
                (PlayState::Playing, Some(song)) => {
                    format!("playing {} – {}", song.track.artist, song.track.title)
                }
                (PlayState::Paused, Some(song)) => {
                    format!("paused at {} – {}", song.track.artist, song.track.title)
                }
            };
            Verdict::ok(
                "mpd",
                format!("{address} answers (protocol {version}); {playing}"),
            )
        }
        Err(mpd::ReadError::Refused { code, message }) if code == ACK_PERMISSION => {
            permission_denied(config, &address, &message)
        }
        Err(e @ mpd::ReadError::Closed) => {
            // Why it closed arrives as an event.
            match tokio::time::timeout(Duration::from_secs(1), client.next_event()).await {
                Ok(mpd::Event::Closed(mpd::Closed::NoReadPermission)) => {
                    permission_denied(config, &address, "idle")
                }
                Ok(mpd::Event::Closed(closed)) => Verdict::fail(
                    "mpd",
                    format!("{address}: {closed}"),
                    "look at mpd's log; then run check again".into(),
                ),
                _ => Verdict::fail(
                    "mpd",
                    format!("{address} connected but failed: {e}"),
                    "look at mpd's log; then run check again".into(),
                ),
            }
        }
        Err(e) => Verdict::fail(
            "mpd",
            format!("{address} connected but failed: {e}"),
            "look at mpd's log; then run check again".into(),
        ),
    }
}

/// MPD's ACK code for a command the client has no permission for.
const ACK_PERMISSION: u64 = 4;

fn permission_denied(config: &Config, address: &str, what: &str) -> Verdict {
    Verdict::fail(
        "mpd",
        format!("{address} refuses to say what plays (no permission for {what})"),
        if config.mpd.password.is_some() {
            "the password lacks the \"read\" permission in mpd.conf; give one that has it"
                .to_owned()
        } else {
            password_fix(config)
        },
    )
}

fn password_fix(config: &Config) -> String {
    format!(
        "set the password mpd.conf gives in [mpd] password or password_file ({}), \
         in MPD_HOST=password@host, or in the systemd credential \"mpd.password\"",
        config.path.display()
    )
}
