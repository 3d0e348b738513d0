//! The command line as clap sees it: every subcommand, argument and help text.
//! The man page and shell completions are generated from these definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::metadata::query;

/// The heading of the options every command takes, apart from each
/// command's own.
const GLOBAL: &str = "Global options";

/// Scrobble what MPD plays to Last.fm, Libre.fm, ListenBrainz and compatible servers.
#[derive(Debug, Parser)]
#[command(version = env!("MPD_SCROBBLER_VERSION"), about)]
pub(super) struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/mpd-scrobbler/config.toml]
    #[arg(short, long, value_name = "FILE", global = true, help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub verbose: u8,

    /// Only warnings and errors
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub(super) enum Command {
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
    /// Print the man page (roff), or write every page into a directory
    Manpage {
        /// Write mpd-scrobbler.1, a page per subcommand (mpd-scrobbler-history.1, ...)
        /// and mpd-scrobbler.toml.5 into DIR, and print their paths
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Write or print a commented default config file
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
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
    /// The [[notify]] sinks: send a test message through each
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Try the ignore and rewrite rules ([[rule]] in the config)
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Bring plays in: another scrobbler's unsent scrobbles, or a server's record
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// The local listening history, one line per play in local time
    /// (works with no config file and no account; `history export` writes it out)
    History {
        #[command(subcommand)]
        action: Option<HistoryAction>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Only the last N plays
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print a JSON array (started_at in Unix seconds, artist, title, album, duration)
        #[arg(long)]
        json: bool,
    },
    /// Listening stats from the local history: totals, top artists, albums and
    /// tracks, plays per day and per hour as bar charts
    Stats {
        /// The span: the last 7 or 30 days, the last 365 days, or everything
        #[arg(long, default_value = "30d", value_parser = ["7d", "30d", "year", "all"])]
        period: String,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Queue the recorded plays that a target has not received (for a target
    /// added later). Last.fm-style targets only take the last 14 days; older
    /// plays are counted and skipped
    Backfill {
        /// The target's name (as in the config: "lastfm", "listenbrainz", ...)
        target: String,
        /// Only plays since this date or this long ago ("2024-05-01", "30d")
        #[arg(long, value_name = "DATE|DURATION")]
        since: Option<String>,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
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
pub(super) enum ConfigAction {
    /// Write the commented default config to the config file (-c FILE, or
    /// the default path), mode 0600; an existing file is never overwritten
    Init,
    /// Print the commented default config (what `config init` writes)
    Show,
}

#[derive(Debug, Clone, Subcommand)]
pub(super) enum NotifyAction {
    /// Send a test message through every [[notify]] sink, or the one named;
    /// exit 0 only when each took it
    Test {
        /// The sink's `name` (default: every sink)
        name: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub(super) enum RulesAction {
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
pub(super) enum ImportFrom {
    /// mpdscribble's journal (for example ~/.cache/mpdscribble/mpdscribble.journal)
    Mpdscribble {
        /// The journal file
        journal: PathBuf,
    },
    /// A ListenBrainz export file, or with --user a user's listens from the API
    ///
    /// FILE: a JSON array or JSON Lines of listens (also what `history export
    /// --format listenbrainz` writes); its plays go into the history and are
    /// queued for every target. --user NAME: every listen of NAME read from
    /// the ListenBrainz API into the history, as already delivered to that
    /// target and queued for none (like `import lastfm`).
    Listenbrainz {
        /// The export file
        #[arg(required_unless_present = "user")]
        file: Option<PathBuf>,
        /// Read this user's listens from the API instead of a file
        #[arg(long, conflicts_with = "file")]
        user: Option<String>,
        #[command(flatten)]
        from: FromServer,
    },
    /// Every scrobble of a Last.fm (or Libre.fm, ...) account, into the history
    ///
    /// The plays count as already delivered to that target: nothing is sent
    /// to it again, and nothing is queued for the other targets (`backfill
    /// TARGET` does that). Stopped (Ctrl-C, a crash), it continues where it
    /// stopped when run again; run later, it reads what is new.
    Lastfm {
        /// Whose scrobbles (default: the user of the target's session)
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        from: FromServer,
    },
}

/// Which target and which plays of a server's record.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct FromServer {
    /// Which target (its name in the config), when several are configured
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Only plays since this local date or this long ago ("2024-05-01", "90d")
    #[arg(long, value_name = "DATE|DURATION")]
    pub since: Option<String>,
}

/// Which plays of the history.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct FilterArgs {
    /// Plays since this local date or time, or this long ago ("2024-05-01", "2024-05-01 18:00", "7d")
    #[arg(long, value_name = "DATE|DURATION", global = true)]
    pub since: Option<String>,
    /// Plays before this local date or time, or this long ago
    #[arg(long, value_name = "DATE|DURATION", global = true)]
    pub until: Option<String>,
    /// Only this artist's plays (case-insensitive, part of the name is enough)
    #[arg(long, global = true)]
    pub artist: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub(super) enum HistoryAction {
    /// Write the plays to stdout as ListenBrainz listens (JSON) or CSV
    Export {
        /// The format
        #[arg(long, value_enum)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum ExportFormat {
    /// A JSON array in ListenBrainz's import shape
    Listenbrainz,
    /// CSV with a header line
    Csv,
}

#[derive(Debug, Clone, Subcommand)]
pub(super) enum QueueAction {
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
pub(crate) struct OutputArgs {
    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
    /// Ask Last.fm even if the cache has an answer
    #[arg(long)]
    pub refresh: bool,
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
pub(super) enum TopKind {
    Artists,
    Tracks,
}

#[derive(Debug, Clone, Subcommand)]
pub(super) enum AuthService {
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
