//! `mpd-scrobbler check`: everything the daemon needs, tested without
//! changing anything — the config, MPD, the state directory and each
//! target's credentials — with one verdict per item and, for each failure,
//! what to do about it.
//!
//! The probes live here; the verdicts are plain data so the rules that turn
//! a file mode or a server error into advice are tested without sockets.

use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, LastFmTarget, ListenBrainzTarget};
use crate::targets::ErrorKind;
use crate::targets::{lastfm, listenbrainz};
use crate::tracker::PlayState;
use crate::{http, mpd as watcher, queue, session};

/// Below this much free space the queue may not be able to grow.
const FAIL_BELOW_BYTES: u64 = 16 << 20;
/// Below this much free space a long outage could fill the disk.
const WARN_BELOW_BYTES: u64 = 128 << 20;
/// A check gives up on a server sooner than the daemon does.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How an item fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Works.
    Ok,
    /// Works, but deserves attention.
    Warn,
    /// Will not work until fixed.
    Fail,
}

/// The verdict on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What was checked: `config`, `mpd`, `state dir`, or a target's name.
    pub item: String,
    /// How it fared.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do, for a warning or a failure.
    pub fix: Option<String>,
}

impl Verdict {
    fn ok(item: &str, detail: String) -> Verdict {
        Verdict {
            item: item.to_owned(),
            level: Level::Ok,
            detail,
            fix: None,
        }
    }

    fn warn(item: &str, detail: String, fix: String) -> Verdict {
        Verdict {
            item: item.to_owned(),
            level: Level::Warn,
            detail,
            fix: Some(fix),
        }
    }

    fn fail(item: &str, detail: String, fix: String) -> Verdict {
        Verdict {
            item: item.to_owned(),
            level: Level::Fail,
            detail,
            fix: Some(fix),
        }
    }

    /// The verdict for a config that does not load.
    pub fn bad_config(error: &dyn fmt::Display, path: &Path) -> Verdict {
        Verdict::fail(
            "config",
            error.to_string(),
            format!(
                "edit {} (config.toml.example documents every key)",
                path.display()
            ),
        )
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

/// The verdicts as aligned lines with the fixes under them, and a summary.
pub fn render(verdicts: &[Verdict]) -> String {
    let width = verdicts.iter().map(|v| v.item.len()).max().unwrap_or(0);
    let mut out = String::new();
    let indent = " ".repeat(4 + 2 + width + 2);
    for v in verdicts {
        // A parser's message spans lines; keep them in the detail column.
        let mut lines = v.detail.lines();
        out.push_str(&format!(
            "{:<4}  {:<width$}  {}\n",
            v.level.to_string(),
            v.item,
            lines.next().unwrap_or_default()
        ));
        for line in lines {
            out.push_str(&format!("{indent}{line}\n"));
        }
        if let Some(fix) = &v.fix {
            out.push_str(&format!("{indent}fix: {fix}\n"));
        }
    }
    let failed = verdicts.iter().filter(|v| v.level == Level::Fail).count();
    if failed == 0 {
        out.push_str(&format!("All {} checks passed.\n", verdicts.len()));
    } else {
        out.push_str(&format!("{failed} of {} checks failed.\n", verdicts.len()));
    }
    out
}

/// Run every check for a config that loaded. The servers are asked at the
/// same time, so a check of several targets takes as long as the slowest.
pub async fn run(config: &Config) -> Vec<Verdict> {
    let mut verdicts = vec![Verdict::ok(
        "config",
        format!(
            "{} is valid; targets: {}",
            config.path.display(),
            match config.target_names() {
                names if names.is_empty() => "none".to_owned(),
                names => names.join(", "),
            }
        ),
    )];
    if config.is_zero_config() {
        verdicts[0] = Verdict::warn(
            "config",
            format!(
                "no config file at {}: running with no online target, plays are kept in the \
                 local history only",
                config.path.display()
            ),
            format!(
                "to scrobble, create {} with a [lastfm] or [listenbrainz] section \
                 (see config.toml.example), run `mpd-scrobbler auth lastfm` or \
                 `auth listenbrainz`, then `mpd-scrobbler backfill NAME`",
                config.path.display()
            ),
        );
    } else if config.target_names().is_empty() {
        verdicts[0] = Verdict::warn(
            "config",
            format!(
                "{} is valid but has no [lastfm] or [listenbrainz] section",
                config.path.display()
            ),
            "add a target; until then plays are kept in the local history only".into(),
        );
    }

    verdicts.push(rules_verdict(config));

    let http = match http::client(config.delivery.request_timeout.min(MAX_REQUEST_TIMEOUT)) {
        Ok(h) => Some(h),
        Err(e) => {
            verdicts.push(Verdict::fail(
                "http",
                format!("cannot set up HTTPS: {}", http::describe_error(&e)),
                "check the system's CA certificates (package ca-certificates)".into(),
            ));
            None
        }
    };
    let mut targets = tokio::task::JoinSet::new();
    if let Some(http) = http {
        for (i, t) in config.lastfm.iter().enumerate() {
            let (t, http, config) = (t.clone(), http.clone(), config.clone());
            targets.spawn(async move { (i, check_lastfm(&config, &t, http).await) });
        }
        let offset = config.lastfm.len();
        for (i, t) in config.listenbrainz.iter().enumerate() {
            let (t, http, config) = (t.clone(), http.clone(), config.clone());
            targets.spawn(async move { (offset + i, check_listenbrainz(&config, &t, http).await) });
        }
    }
    verdicts.push(check_mpd(config).await);
    verdicts.push(check_state_dir(config));
    let mut answers: Vec<(usize, Verdict)> = targets.join_all().await;
    answers.sort_by_key(|(i, _)| *i);
    verdicts.extend(answers.into_iter().map(|(_, v)| v));
    verdicts
}

/// The rules and stream settings compiled when the config loaded (a bad
/// one fails the config check); this says what is in force.
fn rules_verdict(config: &Config) -> Verdict {
    let (ignore, rewrite) = config.rule_set.counts();
    let streams = if config.streams.enabled {
        match config.streams.stations() {
            0 => "streams are scrobbled".to_owned(),
            n => format!("streams are scrobbled, {n} station settings"),
        }
    } else {
        "streams are not scrobbled".to_owned()
    };
    Verdict::ok(
        "rules",
        format!("{ignore} ignore and {rewrite} rewrite rules are valid; {streams}"),
    )
}

async fn check_mpd(config: &Config) -> Verdict {
    let address = config.mpd.address.to_string();
    let file = config.path.display();
    let mut client = match watcher::connect(&config.mpd).await {
        Ok(connected) => connected,
        Err(watcher::ConnectError::Io { source, .. }) => {
            return Verdict::fail(
                "mpd",
                format!("cannot connect to {address}: {source}"),
                format!(
                    "start mpd (systemctl start mpd), or point [mpd] host/port in {file} \
                     (or MPD_HOST/MPD_PORT) at it"
                ),
            );
        }
        Err(watcher::ConnectError::BadPassword(_)) => {
            return Verdict::fail(
                "mpd",
                format!("{address} rejected the password"),
                password_fix(config),
            );
        }
        Err(watcher::ConnectError::Protocol { message, .. }) => {
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
        Err(watcher::ReadError::Refused { code, message }) if code == ACK_PERMISSION => {
            permission_denied(config, &address, &message)
        }
        Err(e @ watcher::ReadError::Closed) => {
            // Why it closed arrives as an event.
            match tokio::time::timeout(Duration::from_secs(1), client.next_event()).await {
                Ok(watcher::Event::Closed(watcher::Closed::NoReadPermission)) => {
                    permission_denied(config, &address, "idle")
                }
                Ok(watcher::Event::Closed(closed)) => Verdict::fail(
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

/// Facts about the state directory, gathered from the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirFacts {
    /// The directory is missing; this is its nearest existing ancestor and
    /// whether we may create entries in it.
    missing: Option<(PathBuf, bool)>,
    /// It exists but is not a directory.
    not_a_directory: bool,
    /// Creating, syncing and removing a file in it failed with this.
    write_error: Option<String>,
    /// The kind of that error.
    write_error_kind: Option<std::io::ErrorKind>,
    /// Permission bits.
    mode: u32,
    /// Owner of the directory.
    owner: u32,
    /// Who runs the check.
    euid: u32,
    /// Files holding secrets: path, mode, owner.
    secrets: Vec<(PathBuf, u32, u32)>,
    /// Bytes available to unprivileged users on its file system.
    free: Option<u64>,
}

fn check_state_dir(config: &Config) -> Verdict {
    let facts = dir_facts(&config.state_dir, &config.target_names());
    let verdict = judge_dir(&config.state_dir, &config.path, &facts);
    if verdict.level != Level::Ok {
        return verdict;
    }
    judge_queue_db(
        verdict,
        &queue::damaged_copies(&config.state_dir),
        queue::open_died(&config.state_dir),
    )
}

/// The queue database's part of the state dir verdict. sled reports little
/// about damage (it takes a bad record for a torn tail and drops what
/// follows), so this shows what the daemon found when it last opened the
/// database: copies it set aside, or a start that died inside sled.
fn judge_queue_db(ok: Verdict, damaged: &[(PathBuf, Option<String>)], open_died: bool) -> Verdict {
    if let Some((path, report)) = damaged.last() {
        let what = report
            .as_deref()
            .and_then(|r| r.lines().next())
            .unwrap_or("no report was written");
        return Verdict::warn(
            &ok.item,
            format!(
                "{}; but {} damaged queue database(s) were set aside, the last at {}: {what}",
                ok.detail,
                damaged.len(),
                path.display()
            ),
            format!(
                "what sled could still read was queued again; see the daemon's log and {}, \
                 then delete {}",
                path.join(queue::REPORT_FILE).display(),
                path.display()
            ),
        );
    }
    if open_died {
        return Verdict::warn(
            &ok.item,
            format!(
                "{}; but a start of the daemon died while opening the queue database",
                ok.detail
            ),
            "start the daemon: it sets the database aside and carries over what it can read; \
             see its log"
                .into(),
        );
    }
    Verdict::ok(
        &ok.item,
        format!("{}; no damaged queue database found", ok.detail),
    )
}

fn dir_facts(dir: &Path, targets: &[&str]) -> DirFacts {
    let euid = rustix::process::geteuid().as_raw();
    let mut facts = DirFacts {
        missing: None,
        not_a_directory: false,
        write_error: None,
        write_error_kind: None,
        mode: 0,
        owner: euid,
        euid,
        secrets: Vec::new(),
        free: None,
    };
    match std::fs::metadata(dir) {
        Err(_) => {
            let ancestor = dir
                .ancestors()
                .skip(1)
                .find(|a| a.is_dir())
                .unwrap_or(Path::new("/"))
                .to_owned();
            let writable = access_writable(&ancestor);
            facts.free = free_bytes(&ancestor);
            facts.missing = Some((ancestor, writable));
        }
        Ok(meta) if !meta.is_dir() => facts.not_a_directory = true,
        Ok(meta) => {
            facts.mode = meta.permissions().mode() & 0o7777;
            facts.owner = meta.uid();
            if let Err(e) = probe_write(dir) {
                facts.write_error_kind = Some(e.kind());
                facts.write_error = Some(e.to_string());
            }
            facts.free = free_bytes(dir);
            for name in targets {
                let path = session::path(dir, name);
                if let Ok(m) = std::fs::metadata(&path) {
                    facts
                        .secrets
                        .push((path, m.permissions().mode() & 0o7777, m.uid()));
                }
            }
        }
    }
    facts
}

/// Create, sync and remove a file, as the queue will.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(format!(".check-{}", std::process::id()));
    let result = std::fs::File::create_new(&path).and_then(|mut f| {
        f.write_all(b"check")?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}

fn access_writable(dir: &Path) -> bool {
    use rustix::fs::Access;
    rustix::fs::access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

fn judge_dir(dir: &Path, config_path: &Path, f: &DirFacts) -> Verdict {
    const ITEM: &str = "state dir";
    let shown = dir.display();
    let elsewhere = format!("or set state_dir in {}", config_path.display());
    if f.not_a_directory {
        return Verdict::fail(
            ITEM,
            format!("{shown} exists but is not a directory"),
            format!("move it away, {elsewhere}"),
        );
    }
    if let Some((ancestor, writable)) = &f.missing {
        return if *writable {
            Verdict::ok(
                ITEM,
                format!(
                    "{shown} does not exist yet and will be created (mode 0700){}",
                    free_note(f.free)
                ),
            )
        } else {
            Verdict::fail(
                ITEM,
                format!(
                    "{shown} does not exist and cannot be created: {} is not writable",
                    ancestor.display()
                ),
                format!("create it for the user that runs the daemon, {elsewhere}"),
            )
        };
    }
    if let Some(kind) = f
        .write_error_kind
        .filter(|k| *k == std::io::ErrorKind::StorageFull)
    {
        return Verdict::fail(
            ITEM,
            format!("{shown} is full ({kind}): plays cannot be queued until there is room"),
            format!(
                "free some space on its file system (`df -h {shown}`); the daemon holds plays \
                 in memory meanwhile and writes them when there is room, {elsewhere}"
            ),
        );
    }
    if f.write_error_kind == Some(std::io::ErrorKind::ReadOnlyFilesystem) {
        return Verdict::fail(
            ITEM,
            format!("{shown} is on a read-only file system"),
            format!("remount it read-write, {elsewhere}"),
        );
    }
    if let Some(e) = &f.write_error {
        return Verdict::fail(
            ITEM,
            format!("{shown} is not writable: {e}"),
            if f.owner != f.euid {
                format!(
                    "it belongs to uid {}; run as that user, `chown -R {} {shown}`, {elsewhere}",
                    f.owner, f.euid
                )
            } else {
                format!("`chmod u+rwx {shown}`, {elsewhere}")
            },
        );
    }
    if let Some(free) = f.free.filter(|b| *b < FAIL_BELOW_BYTES) {
        return Verdict::fail(
            ITEM,
            format!("only {} free on the file system of {shown}", mib(free)),
            format!("free some space, {elsewhere}"),
        );
    }
    for (path, mode, owner) in &f.secrets {
        if mode & 0o077 != 0 {
            return Verdict::fail(
                ITEM,
                format!(
                    "{} holds a secret but other users may read it (mode {mode:04o})",
                    path.display()
                ),
                format!("`chmod 600 {}`", path.display()),
            );
        }
        if owner != &f.owner {
            // Typically `sudo mpd-scrobbler auth` into a service's directory.
            return Verdict::fail(
                ITEM,
                format!(
                    "{} belongs to uid {owner}, but the directory to uid {}: the daemon cannot read it",
                    path.display(),
                    f.owner
                ),
                format!("`chown {} {}`", f.owner, path.display()),
            );
        }
    }
    if f.mode & 0o077 != 0 {
        return Verdict::warn(
            ITEM,
            format!(
                "{shown} is writable{}, but open to other users (mode {:04o})",
                free_note(f.free),
                f.mode
            ),
            format!("`chmod 700 {shown}`"),
        );
    }
    if let Some(free) = f.free.filter(|b| *b < WARN_BELOW_BYTES) {
        return Verdict::warn(
            ITEM,
            format!("{shown} is writable, but only {} free", mib(free)),
            "free some space before a long outage fills it".into(),
        );
    }
    Verdict::ok(
        ITEM,
        format!(
            "{shown} is writable and private (mode {:04o}){}",
            f.mode,
            free_note(f.free)
        ),
    )
}

fn free_note(free: Option<u64>) -> String {
    free.map(|b| format!("; {} free", mib(b)))
        .unwrap_or_default()
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

async fn check_lastfm(config: &Config, t: &LastFmTarget, http: reqwest::Client) -> Verdict {
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

async fn check_listenbrainz(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> DirFacts {
        DirFacts {
            missing: None,
            not_a_directory: false,
            write_error: None,
            write_error_kind: None,
            mode: 0o700,
            owner: 1000,
            euid: 1000,
            secrets: vec![(PathBuf::from("/s/lastfm.session"), 0o600, 1000)],
            free: Some(20 << 30),
        }
    }

    fn judge(f: &DirFacts) -> Verdict {
        judge_dir(Path::new("/s"), Path::new("/c/config.toml"), f)
    }

    #[test]
    fn a_private_writable_directory_passes() {
        let v = judge(&facts());
        assert_eq!(v.level, Level::Ok, "{v:?}");
        assert!(v.detail.contains("20 GiB free"), "{v:?}");
    }

    #[test]
    fn each_problem_has_its_own_verdict_and_fix() {
        let cases: Vec<(DirFacts, Level, &str, &str)> = vec![
            (
                DirFacts {
                    write_error: Some("Permission denied (os error 13)".into()),
                    owner: 0,
                    ..facts()
                },
                Level::Fail,
                "not writable",
                "chown -R 1000 /s",
            ),
            (
                DirFacts {
                    write_error: Some("Read-only file system (os error 30)".into()),
                    ..facts()
                },
                Level::Fail,
                "Read-only",
                "chmod u+rwx /s",
            ),
            (
                DirFacts {
                    write_error: Some("No space left on device (os error 28)".into()),
                    write_error_kind: Some(std::io::ErrorKind::StorageFull),
                    ..facts()
                },
                Level::Fail,
                "is full",
                "free some space",
            ),
            (
                DirFacts {
                    write_error: Some("Read-only file system (os error 30)".into()),
                    write_error_kind: Some(std::io::ErrorKind::ReadOnlyFilesystem),
                    ..facts()
                },
                Level::Fail,
                "read-only file system",
                "remount it read-write",
            ),
            (
                DirFacts {
                    not_a_directory: true,
                    ..facts()
                },
                Level::Fail,
                "not a directory",
                "state_dir in /c/config.toml",
            ),
            (
                DirFacts {
                    missing: Some((PathBuf::from("/"), false)),
                    ..facts()
                },
                Level::Fail,
                "cannot be created",
                "create it",
            ),
            (
                DirFacts {
                    free: Some(1 << 20),
                    ..facts()
                },
                Level::Fail,
                "only 1 MiB free",
                "free some space",
            ),
            (
                DirFacts {
                    secrets: vec![(PathBuf::from("/s/lastfm.session"), 0o644, 1000)],
                    ..facts()
                },
                Level::Fail,
                "mode 0644",
                "chmod 600 /s/lastfm.session",
            ),
            (
                DirFacts {
                    secrets: vec![(PathBuf::from("/s/lastfm.session"), 0o600, 0)],
                    ..facts()
                },
                Level::Fail,
                "belongs to uid 0",
                "chown 1000 /s/lastfm.session",
            ),
            (
                DirFacts {
                    mode: 0o755,
                    ..facts()
                },
                Level::Warn,
                "mode 0755",
                "chmod 700 /s",
            ),
            (
                DirFacts {
                    free: Some(50 << 20),
                    ..facts()
                },
                Level::Warn,
                "only 50 MiB free",
                "free some space",
            ),
        ];
        for (f, level, detail, fix) in cases {
            let v = judge(&f);
            assert_eq!(v.level, level, "{f:?} → {v:?}");
            assert!(v.detail.contains(detail), "{f:?} → {v:?}");
            assert!(
                v.fix.as_deref().unwrap_or("").contains(fix),
                "{f:?} → {v:?}"
            );
        }
    }

    #[test]
    fn a_missing_directory_that_can_be_created_passes() {
        let v = judge(&DirFacts {
            missing: Some((PathBuf::from("/home/u/.local/state"), true)),
            ..facts()
        });
        assert_eq!(v.level, Level::Ok, "{v:?}");
        assert!(v.detail.contains("will be created"), "{v:?}");
    }

    #[test]
    fn facts_come_from_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let f = dir_facts(&state, &["lastfm"]);
        assert_eq!(f.missing, Some((dir.path().to_owned(), true)));
        session::store(&state, "lastfm", "alice", "sk").unwrap();
        let f = dir_facts(&state, &["lastfm", "listenbrainz"]);
        assert_eq!(f.missing, None);
        assert_eq!(f.mode, 0o700);
        assert_eq!(f.write_error, None);
        assert_eq!(f.secrets.len(), 1);
        assert_eq!(f.secrets[0].1, 0o600);
        assert!(f.free.unwrap() > 0);
        // The probe leaves nothing behind.
        let names: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["lastfm.session"]);
    }

    #[test]
    fn render_aligns_and_counts_failures() {
        let text = render(&[
            Verdict::ok("config", "fine".into()),
            Verdict::fail("listenbrainz", "refused\nfor good".into(), "run it".into()),
        ]);
        assert_eq!(
            text,
            concat!(
                "ok    config        fine\n",
                "FAIL  listenbrainz  refused\n",
                "                    for good\n",
                "                    fix: run it\n",
                "1 of 2 checks failed.\n",
            )
        );
    }

    #[test]
    fn a_damaged_queue_database_set_aside_is_shown_with_its_report() {
        let ok = Verdict::ok("state dir", "/s is writable".into());
        assert_eq!(judge_queue_db(ok.clone(), &[], false).level, Level::Ok);
        let v = judge_queue_db(
            ok.clone(),
            &[(
                PathBuf::from("/s/queue.damaged-1700000000"),
                Some("The queue database was set aside at unix time 1700000000 because it lost writes.\nmore".into()),
            )],
            false,
        );
        assert_eq!(v.level, Level::Warn);
        assert!(v.detail.contains("/s/queue.damaged-1700000000"), "{v:?}");
        assert!(v.detail.contains("because it lost writes"), "{v:?}");
        assert!(v.fix.unwrap().contains("mpd-scrobbler-damage.txt"));
        let v = judge_queue_db(ok, &[], true);
        assert_eq!(v.level, Level::Warn);
        assert!(v.detail.contains("died while opening"), "{v:?}");
    }
}
