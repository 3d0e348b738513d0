//! Command line: parse arguments, set up logging, load the config, and hand
//! over to the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use mpd_scrobbler::admin::{self, QueueCmd};
use mpd_scrobbler::config::{self, Config};
use mpd_scrobbler::query::{self, Query, QueryError};
use mpd_scrobbler::{auth, daemon, rules_test};

/// Scrobble what MPD plays to Last.fm, Libre.fm, ListenBrainz and compatible servers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/mpd-scrobbler/config.toml]
    #[arg(short, long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    verbose: u8,

    /// Only warnings and errors
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Run the daemon (the default)
    Run,
    /// Connect an account and store its session key in the state directory
    Auth {
        #[command(subcommand)]
        service: AuthService,
    },
    /// Check the config, MPD, the state directory and each target's credentials
    /// without changing anything; exit 0 only when all pass
    Check,
    /// Print a shell completion script (bash, zsh, fish, ...)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Manpage,
    /// Love the playing track on every target (Last.fm track.love, ListenBrainz feedback)
    Love,
    /// Unlove the playing track on every target
    Unlove,
    /// What the daemon is doing: MPD, the current play's progress, each target's queue and state
    Status {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Try the ignore and rewrite rules ([[rule]] in the config)
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Queue the unsent scrobbles of another scrobbler
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Show or fix the scrobble queue (works whether or not the daemon runs)
    Queue {
        #[command(subcommand)]
        action: Option<QueueAction>,
        /// Print JSON for scripts
        #[arg(long, global = true)]
        json: bool,
    },
    /// An artist's biography, tags, similar artists and counts (default: the one playing)
    Artist {
        /// Artist name
        name: Option<String>,
        /// The whole biography instead of the summary
        #[arg(long)]
        full: bool,
        /// Language of the biography (ISO 639-1, e.g. "de")
        #[arg(long)]
        lang: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// An album's tags, tracks and counts (default: the one playing)
    Album {
        /// Artist, then album (both or neither)
        #[arg(num_args = 2, value_names = ["ARTIST", "ALBUM"])]
        which: Option<Vec<String>>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Search artists
    Search {
        /// What to look for
        query: String,
        /// How many results
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A user's top artists or tracks
    Top {
        /// What to rank
        #[arg(value_enum)]
        kind: TopKind,
        /// Time span
        #[arg(long, default_value = "overall", value_parser = ["overall", "7day", "1month", "3month", "6month", "12month"])]
        period: String,
        /// How many
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Whose (default: the user of the stored Last.fm session)
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A user's recent tracks, in local time
    Recent {
        /// How many
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Whose (default: the user of the stored Last.fm session)
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum RulesAction {
    /// Show what each rule does to a track and the result per target: the
    /// song MPD plays now (a stream's title as it would be split), or the
    /// one given by the options
    Test {
        /// Artist
        #[arg(long)]
        artist: Option<String>,
        /// Title
        #[arg(long)]
        title: Option<String>,
        /// Album
        #[arg(long)]
        album: Option<String>,
        /// Path in the music directory, or a stream's URL
        #[arg(long)]
        file: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum ImportFrom {
    /// mpdscribble's journal (for example ~/.cache/mpdscribble/mpdscribble.journal)
    Mpdscribble {
        /// The journal file
        journal: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
enum QueueAction {
    /// List queued items per target (the default)
    List {
        /// The items servers refused for good instead
        #[arg(long)]
        rejected: bool,
    },
    /// Deliver now, skipping any backoff (needs the running daemon)
    Flush,
    /// Drop one queued item for good
    Drop {
        /// Its id, as `queue list` shows it
        id: u64,
        /// Only from this target
        #[arg(long)]
        name: Option<String>,
    },
    /// Put the rejected items back in the queue
    Retry,
}

#[derive(Debug, Clone, Copy, clap::Args)]
struct OutputArgs {
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
    /// Ask Last.fm even if the cache has an answer
    #[arg(long)]
    refresh: bool,
}

impl From<OutputArgs> for query::Options {
    fn from(o: OutputArgs) -> Self {
        query::Options {
            json: o.json,
            refresh: o.refresh,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TopKind {
    Artists,
    Tracks,
}

#[derive(Debug, Clone, Subcommand)]
enum AuthService {
    /// Last.fm, or the Audioscrobbler 2.0 server of a [lastfm] section's `url` (Libre.fm, ...)
    Lastfm {
        /// Which [[lastfm]] target, when several are configured
        #[arg(long)]
        name: Option<String>,
        /// Log in with this username and a password (read from a prompt or stdin)
        /// instead of approving access in a browser
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
    },
    /// ListenBrainz, or the compatible server of a [listenbrainz] section's `url` (Maloja, ...):
    /// reads a token from a prompt or stdin and checks it
    Listenbrainz {
        /// Which [[listenbrainz]] target, when several are configured
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);

    // Generated from the command-line definition; they need no config.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "mpd-scrobbler", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Manpage) => {
            use clap::CommandFactory;
            let page = clap_mangen::Man::new(Cli::command());
            return match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mpd-scrobbler: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }

    let env = |k: &str| std::env::var(k).ok();
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| config::default_path(&env));
    let loaded = Config::load(&path, &env);
    if let Some(Command::Check) = &cli.command {
        return check(loaded, &path);
    }
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpd-scrobbler: {e}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mpd-scrobbler: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Love | Command::Unlove = &command {
        let love = matches!(command, Command::Love);
        return match runtime.block_on(admin::love(&config, love)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Status { json } = &command {
        return match runtime.block_on(admin::status(&config, *json)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Rules {
        action:
            RulesAction::Test {
                artist,
                title,
                album,
                file,
            },
    } = &command
    {
        let given = rules_test::Given {
            artist: artist.clone(),
            title: title.clone(),
            album: album.clone(),
            file: file.clone(),
        };
        return match runtime.block_on(rules_test::run(&config, given)) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Import {
        from: ImportFrom::Mpdscribble { journal },
    } = &command
    {
        return match runtime.block_on(admin::import_journal(&config, journal)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Queue { action, json } = &command {
        let cmd = match action
            .clone()
            .unwrap_or(QueueAction::List { rejected: false })
        {
            QueueAction::List { rejected } => QueueCmd::List { rejected },
            QueueAction::Flush => QueueCmd::Flush,
            QueueAction::Drop { id, name } => QueueCmd::Drop { id, target: name },
            QueueAction::Retry => QueueCmd::Retry,
        };
        return match runtime.block_on(admin::command(&config, cmd, *json)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some((q, opts)) = as_query(&command) {
        return match runtime.block_on(query::run(&config, q, opts)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ QueryError::Usage(_)) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::from(2)
            }
            Err(e @ QueryError::Failed(_)) => {
                eprintln!("mpd-scrobbler: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = runtime.block_on(async {
        match command {
            Command::Run => {
                let shutdown = CancellationToken::new();
                tokio::spawn(on_signal(shutdown.clone()));
                daemon::run(config, shutdown).await
            }
            Command::Auth {
                service: AuthService::Lastfm { name, username },
            } => auth::lastfm(&config, auth::Options { name, username }).await,
            Command::Auth {
                service: AuthService::Listenbrainz { name },
            } => auth::listenbrainz(&config, name.as_deref()).await,
            _ => unreachable!("queries are handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpd-scrobbler: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `check`: one verdict per item on stdout; exit 0 when none failed, 1 when
/// one did, 2 when the config itself does not load.
fn check(loaded: Result<Config, config::ConfigError>, path: &std::path::Path) -> ExitCode {
    use mpd_scrobbler::check::{self, Level, Verdict};
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            print!("{}", check::render(&[Verdict::bad_config(&e, path)]));
            return ExitCode::from(2);
        }
    };
    let verdicts = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(check::run(&config)),
        Err(e) => {
            eprintln!("mpd-scrobbler: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", check::render(&verdicts));
    if verdicts.iter().any(|v| v.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The metadata and stats commands, as a query.
fn as_query(command: &Command) -> Option<(Query, query::Options)> {
    let q = match command.clone() {
        Command::Artist {
            name,
            full,
            lang,
            out,
        } => (Query::Artist { name, full, lang }, out),
        Command::Album { which, out } => (
            Query::Album {
                which: which.map(|w| (w[0].clone(), w[1].clone())),
            },
            out,
        ),
        Command::Search { query, limit, out } => (Query::Search { query, limit }, out),
        Command::Top {
            kind,
            period,
            limit,
            user,
            out,
        } => (
            Query::Top {
                kind: match kind {
                    TopKind::Artists => "artist",
                    TopKind::Tracks => "track",
                },
                period,
                limit,
                user,
            },
            out,
        ),
        Command::Recent { limit, user, out } => (Query::Recent { limit, user }, out),
        Command::Run
        | Command::Auth { .. }
        | Command::Queue { .. }
        | Command::Import { .. }
        | Command::Rules { .. }
        | Command::Status { .. }
        | Command::Love
        | Command::Unlove
        | Command::Check
        | Command::Completions { .. }
        | Command::Manpage => {
            return None;
        }
    };
    Some((q.0, q.1.into()))
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

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => LevelFilter::WARN,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    // Libraries are chatty at debug level; unless the user asks for their
    // output by MPD_SCROBBLER_LOG, only their warnings show.
    let directives = std::env::var("MPD_SCROBBLER_LOG").unwrap_or_else(|_| {
        format!("{level},sled=warn,mpd_client=warn,mpd_protocol=warn,hyper_util=warn,reqwest=warn")
    });
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(directives);
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if journal {
        // journald adds its own timestamps and reads the priority from the
        // `<N>` prefix (SyslogLevelPrefix=, on by default).
        builder.with_ansi(false).event_format(JournalFormat).init();
    } else {
        builder
            .with_ansi(use_colour(std::io::stderr().is_terminal(), &|k| {
                std::env::var_os(k)
            }))
            .with_target(false)
            .init();
    }
}

/// Colours on a terminal, unless NO_COLOR is set (no-color.org); always
/// with CLICOLOR_FORCE set to something other than "0".
fn use_colour(terminal: bool, env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if set("NO_COLOR") {
        false
    } else if env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        true
    } else {
        terminal
    }
}

/// One line per event for the journal: `<priority>message fields`, with
/// no timestamp and no colour.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Whether stderr is connected to the systemd journal, which adds its own
/// timestamps (JOURNAL_STREAM holds "device:inode" of that stream).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    expected.to_string_lossy() == format!("{}:{}", meta.dev(), meta.ino())
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsString;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn colour_follows_the_terminal_no_color_and_clicolor_force() {
        assert!(use_colour(true, &env(&[])));
        assert!(!use_colour(false, &env(&[])));
        assert!(!use_colour(true, &env(&[("NO_COLOR", "1")])));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(use_colour(true, &env(&[("NO_COLOR", "")])));
        assert!(use_colour(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(!use_colour(false, &env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!use_colour(
            true,
            &env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])
        ));
    }
}
