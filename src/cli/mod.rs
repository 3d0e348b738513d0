//! The command-line front end: parse the arguments ([`args`]), set up logging
//! ([`logging`]), load the config, run one command, and turn its outcome into
//! an exit status in one place ([`CliError::exit_code`]).
//!
//! Exit statuses: 0 success; 1 the command failed (not found, refused,
//! unreachable, a failed check); 2 the command line or the config is wrong.

mod args;
mod config_file;
mod logging;
mod manual;
#[cfg(test)]
mod readme;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::commands::check::{self, Level, Verdict};
use crate::commands::history::{self as commands, Format};
use crate::commands::metadata::query::{self, Query, QueryError};
use crate::commands::rules as rules_test;
use crate::commands::{auth, import, love, queue};
use crate::config::{self, Config};
use crate::daemon;
use crate::history::{self, Filter};
use crate::output::{self, errln, out};
use crate::store::QueueCmd;
use args::{
    AuthService, Cli, Command, ConfigAction, ExportFormat, FilterArgs, HistoryAction, ImportFrom,
    NotifyAction, QueueAction, RulesAction, TopKind,
};

/// Why a command did not succeed, and so which exit status it gets.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or the config is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The command printed its own verdict; only the status is left to set.
    #[error("")]
    Reported(u8),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::FAILURE,
            CliError::Reported(code) => ExitCode::from(*code),
        }
    }
}

impl From<QueryError> for CliError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Usage(m) => CliError::Usage(m),
            QueryError::Failed(m) => CliError::Failed(m),
        }
    }
}

/// Run the command line of this process and return its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.quiet, cli.verbose);
    let result = dispatch(cli);
    let written = output::finish();
    // A reader that went away (EPIPE) is no failure: see `output`.
    match result {
        Ok(()) => match written {
            output::Outcome::Failed(e) => {
                errln!("mpd-scrobbler: cannot write to stdout: {e}");
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        },
        Err(e) => {
            if !matches!(e, CliError::Reported(_)) {
                errln!("mpd-scrobbler: {e}");
            }
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Run);
    // Generated from the command-line definition; they need no config.
    match &command {
        Command::Completions { shell } => {
            output::write_bytes(&manual::completions(*shell));
            return Ok(());
        }
        Command::Manpage { dir: None } => {
            output::write_bytes(&manual::main_page()?);
            return Ok(());
        }
        Command::Manpage { dir: Some(dir) } => {
            for path in manual::write_dir(dir)? {
                out!("{}\n", path.display());
            }
            return Ok(());
        }
        _ => {}
    }

    let env = |k: &str| std::env::var(k).ok();
    if let Command::Config { action } = &command {
        match action {
            ConfigAction::Show => config_file::show(),
            ConfigAction::Init => {
                let path = cli.config.unwrap_or_else(|| config::default_path(&env));
                config_file::init(&path)?;
            }
        }
        return Ok(());
    }
    // With no config file at the default path the zero-config set-up runs
    // (MPD at MPD_HOST/MPD_PORT or localhost, plays kept in the history).
    let is_default = cli.config.is_none();
    let path = cli.config.unwrap_or_else(|| config::default_path(&env));
    let loaded = Config::load_or_default(&path, is_default, &env);
    if let Command::Check = command {
        return check(loaded, &path);
    }
    let config = loaded.map_err(|e| CliError::Usage(e.to_string()))?;
    let runtime = runtime()?;
    let failed = |e: anyhow::Error| CliError::Failed(e.to_string());
    match command {
        Command::Run => {
            let result = runtime.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(on_signal(shutdown.clone()));
                daemon::run(config, shutdown).await
            });
            // A write stuck on a failing disk runs on a blocking thread;
            // exiting must not wait for it (SIGTERM ends the daemon within 2 s).
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            result.map_err(|e| CliError::Failed(format!("{e:#}")))
        }
        // A target the config does not have is a config error (exit 2),
        // found before anything is asked.
        Command::Auth {
            service: AuthService::Lastfm { name, username },
        } => config
            .lastfm_target(name.as_deref())
            .map_err(|e| CliError::Usage(e.to_string()))
            .and_then(|_| {
                runtime
                    .block_on(auth::lastfm(&config, auth::Options { name, username }))
                    .map_err(|e| CliError::Failed(format!("{e:#}")))
            }),
        Command::Auth {
            service: AuthService::Listenbrainz { name },
        } => config
            .listenbrainz_target(name.as_deref())
            .map_err(|e| CliError::Usage(e.to_string()))
            .and_then(|_| {
                runtime
                    .block_on(auth::listenbrainz(&config, name.as_deref()))
                    .map_err(|e| CliError::Failed(format!("{e:#}")))
            }),
        Command::Love => runtime.block_on(love::love(&config, true)).map_err(failed),
        Command::Unlove => runtime.block_on(love::love(&config, false)).map_err(failed),
        Command::Notify {
            action: NotifyAction::Test { name },
        } => runtime
            .block_on(crate::commands::notify::test(&config, name.as_deref()))
            .map_err(|e| match e {
                crate::commands::notify::NotifyTestError::NoSink(m) => CliError::Usage(m),
                e => CliError::Failed(e.to_string()),
            }),
        Command::Status { json } => runtime
            .block_on(crate::commands::status::status(&config, json))
            .map_err(failed),
        Command::Rules {
            action:
                RulesAction::Test {
                    artist,
                    title,
                    album,
                    file,
                },
        } => {
            let given = rules_test::Given {
                artist,
                title,
                album,
                file,
            };
            let report = runtime
                .block_on(rules_test::run(&config, given))
                .map_err(|e| CliError::Failed(format!("{e:#}")))?;
            out!("{report}");
            Ok(())
        }
        Command::Import {
            from: ImportFrom::Mpdscribble { journal },
        } => runtime
            .block_on(import::import_journal(&config, &journal))
            .map_err(failed),
        Command::Import {
            from: ImportFrom::Listenbrainz {
                file: Some(file), ..
            },
        } => runtime
            .block_on(import::import_listenbrainz(&config, &file))
            .map_err(failed),
        Command::Import {
            from:
                ImportFrom::Listenbrainz {
                    file: None,
                    user,
                    from,
                },
        } => import_from_server(&runtime, &config, import::Source::ListenBrainz, user, from),
        Command::Import {
            from: ImportFrom::Lastfm { user, from },
        } => import_from_server(&runtime, &config, import::Source::LastFm, user, from),
        Command::History {
            action,
            filter,
            limit,
            json,
        } => {
            let mut filter = parse_filter(&filter)?;
            filter.limit = limit;
            match action {
                None => runtime.block_on(commands::show(&config, &filter, json)),
                Some(HistoryAction::Export { format }) => {
                    let format = match format {
                        ExportFormat::Listenbrainz => Format::ListenBrainz,
                        ExportFormat::Csv => Format::Csv,
                    };
                    runtime.block_on(commands::export(&config, &filter, format))
                }
            }
            .map_err(failed)
        }
        Command::Stats { period, json } => runtime
            .block_on(commands::show_stats(&config, &period, json))
            .map_err(failed),
        Command::Backfill {
            target,
            since,
            json,
        } => {
            let since = since.as_deref().map(when).transpose()?;
            if !config.target_names().contains(&target.as_str()) {
                return Err(CliError::Usage(format!(
                    "{}: no target named {target:?} (configured: {}); add a [lastfm] or \
                     [listenbrainz] section for it (`mpd-scrobbler config show` prints them)",
                    config.path.display(),
                    match config.target_names() {
                        n if n.is_empty() => "none".to_owned(),
                        n => n.join(", "),
                    }
                )));
            }
            runtime
                .block_on(commands::backfill_cmd(&config, &target, since, json))
                .map_err(failed)
        }
        Command::Queue { action, json } => {
            let cmd = match action.unwrap_or(QueueAction::List { rejected: false }) {
                QueueAction::List { rejected } => QueueCmd::List { rejected },
                QueueAction::Flush => QueueCmd::Flush,
                QueueAction::Drop { id, name } => QueueCmd::Drop { id, target: name },
                QueueAction::Retry => QueueCmd::Retry,
            };
            runtime
                .block_on(queue::command(&config, cmd, json))
                .map_err(failed)
        }
        Command::Artist {
            name,
            full,
            lang,
            out,
        } => query(&runtime, &config, Query::Artist { name, full, lang }, out),
        Command::Album { which, out } => {
            let which = which.and_then(|w| match <[String; 2]>::try_from(w) {
                Ok([artist, album]) => Some((artist, album)),
                Err(_) => None,
            });
            query(&runtime, &config, Query::Album { which }, out)
        }
        Command::Search {
            query: q,
            limit,
            out,
        } => query(&runtime, &config, Query::Search { query: q, limit }, out),
        Command::Top {
            kind,
            period,
            limit,
            user,
            out,
        } => {
            let kind = match kind {
                TopKind::Artists => "artist",
                TopKind::Tracks => "track",
            };
            let q = Query::Top {
                kind,
                period,
                limit,
                user,
            };
            query(&runtime, &config, q, out)
        }
        Command::Recent { limit, user, out } => {
            query(&runtime, &config, Query::Recent { limit, user }, out)
        }
        Command::Check
        | Command::Completions { .. }
        | Command::Manpage { .. }
        | Command::Config { .. } => Ok(()),
    }
}

/// `import lastfm` and `import listenbrainz --user`.
fn import_from_server(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    source: import::Source,
    user: Option<String>,
    from: args::FromServer,
) -> Result<(), CliError> {
    let request = import::Request {
        source,
        target: from.target,
        user,
        since: from.since.as_deref().map(when).transpose()?,
    };
    runtime
        .block_on(import::run(config, request))
        .map_err(|e| match e {
            import::ImportError::Usage(m) => CliError::Usage(m),
            e => CliError::Failed(e.to_string()),
        })
}

/// A `--since`/`--until` value in Unix seconds.
fn when(s: &str) -> Result<u64, CliError> {
    let now = crate::model::unix_now();
    history::parse_when(s, now, &jiff::tz::TimeZone::system())
        .map_err(|e| CliError::Usage(e.to_string()))
}

fn parse_filter(f: &FilterArgs) -> Result<Filter, CliError> {
    let since = f.since.as_deref().map(when).transpose()?;
    let until = f.until.as_deref().map(when).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(CliError::Usage(format!(
            "--since {:?} is not before --until {:?}: no play can match (swap them?)",
            f.since.as_deref().unwrap_or_default(),
            f.until.as_deref().unwrap_or_default()
        )));
    }
    Ok(Filter {
        since,
        until,
        limit: None,
        artist: f.artist.clone(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // The daemon's writes and fsyncs run on blocking threads. Left to
        // the default, an idle one exits after 10 s, so every play paid for
        // a thread's exit and another's start: three more wake-ups.
        .thread_keep_alive(std::time::Duration::from_secs(24 * 3600))
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))
}

/// A metadata or stats command.
fn query(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    q: Query,
    out: args::OutputArgs,
) -> Result<(), CliError> {
    Ok(runtime.block_on(query::run(config, q, out.into()))?)
}

/// `check`: one verdict per item on stdout; exit 0 when none failed, 1 when
/// one did, 2 when the config itself does not load.
fn check(loaded: Result<Config, config::ConfigError>, path: &Path) -> Result<(), CliError> {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            out!("{}", check::render(&[Verdict::bad_config(&e, path)]));
            return Err(CliError::Reported(2));
        }
    };
    let verdicts = runtime()?.block_on(check::run(&config));
    out!("{}", check::render(&verdicts));
    if verdicts.iter().any(|v| v.level == Level::Fail) {
        Err(CliError::Reported(1))
    } else {
        Ok(())
    }
}

/// Cancel on SIGTERM or SIGINT.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}
