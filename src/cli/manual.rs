//! The manual: `mpd-scrobbler.1` with the sections a user looks for (FILES,
//! ENVIRONMENT, EXIT STATUS, CONFIGURATION), a page per subcommand, and
//! `mpd-scrobbler.toml.5`, made from the commented default config so that
//! every key documented there is documented here. Also the shell
//! completions, with the work-around for clap's bash script.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::CliError;
use super::args::Cli;
use super::config_file::DEFAULT as DEFAULT_CONFIG;

/// The program's name, as installed.
const BIN: &str = "mpd-scrobbler";

/// The FILES, ENVIRONMENT, EXIT STATUS and CONFIGURATION sections of
/// `mpd-scrobbler.1` (roff).
const MAIN_SECTIONS: &str = r#".SH CONFIGURATION
The config file is TOML; every key is described in
.BR mpd\-scrobbler.toml (5),
and
.B mpd\-scrobbler config init
writes a commented default one (mode 0600).
Without a config file the daemon follows MPD at \fBMPD_HOST\fR/\fBMPD_PORT\fR (or localhost:6600)
and keeps every play in the local history only.
.B mpd\-scrobbler check
tests the whole set\-up without changing anything.
.SH FILES
.TP
.I $XDG_CONFIG_HOME/mpd\-scrobbler/config.toml
The config file (\fI~/.config/mpd\-scrobbler/config.toml\fR); \fB\-c\fR \fIFILE\fR names another.
.TP
.I $XDG_STATE_HOME/mpd\-scrobbler/
The state directory (\fI~/.local/state/mpd\-scrobbler\fR; \fB$STATE_DIRECTORY\fR under systemd;
\fBstate_dir\fR in the config): \fIqueue/\fR, the scrobble queue and the local history;
\fIcache/\fR, the metadata cache; \fINAME.session\fR, session keys and tokens (mode 0600).
.TP
.I $XDG_RUNTIME_DIR/mpd\-scrobbler/control\-HASH.sock
The running daemon's control socket (mode 0600), linked from \fIcontrol.sock\fR in the state directory.
.SH ENVIRONMENT
.TP
.B MPD_HOST\fR, \fBMPD_PORT
MPD's address, with mpc's rules (\fIpassword@host\fR, \fI/run/mpd/socket\fR, \fI@abstract\fR); they win over \fB[mpd]\fR.
.TP
.B XDG_CONFIG_HOME\fR, \fBXDG_STATE_HOME\fR, \fBXDG_RUNTIME_DIR\fR, \fBHOME
Where the config file, the state directory and the control socket are.
.TP
.B STATE_DIRECTORY\fR, \fBRUNTIME_DIRECTORY
Set by systemd's StateDirectory= and RuntimeDirectory=; they win over the XDG directories.
.TP
.B CREDENTIALS_DIRECTORY
systemd credentials: \fImpd.password\fR, \fINAME.api_secret\fR, \fINAME.session_key\fR, \fINAME.token\fR.
.TP
.B MPD_SCROBBLER_LOG
Log filter, as \fB\-v\fR (\fIdebug\fR, \fItrace\fR, or per module).
.TP
.B JOURNAL_STREAM
Set by systemd when stderr is the journal: log lines carry priorities instead of timestamps.
.TP
.B NO_COLOR\fR, \fBCLICOLOR_FORCE
Turn colours off, or force them on.
.TP
.B COLUMNS
The width of the charts of \fBstats\fR.
.SH EXIT STATUS
.TP
.B 0
Success.
.TP
.B 1
The command ran and failed: not found, refused or unreachable, a failed check, no daemon for a command that needs one.
.TP
.B 2
The command line or the config file is wrong (the message names the file, the key and the problem).
"#;

/// The whole command line as clap sees it, built for the manual: no
/// `help` subcommand (it has no page).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// `mpd-scrobbler.1`.
pub(super) fn main_page() -> Result<Vec<u8>, CliError> {
    page(&command(), true)
}

/// `manpage --dir DIR`: every page, written into DIR; their paths.
pub(super) fn write_dir(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let failed = |p: &Path, e: std::io::Error| {
        CliError::Failed(format!("cannot write {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let mut pages = vec![(format!("{BIN}.toml.5"), config_page())];
    let top = command();
    pages.push((format!("{BIN}.1"), page(&top, true)?));
    let mut stack: Vec<clap::Command> = top.get_subcommands().cloned().collect();
    while let Some(cmd) = stack.pop() {
        stack.extend(cmd.get_subcommands().cloned());
        let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
        pages.push((format!("{name}.1"), page(&cmd, false)?));
    }
    pages.sort();
    let mut written = Vec::new();
    for (name, text) in pages {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// One command's page; the main one carries the sections of the whole
/// program.
fn page(cmd: &clap::Command, main: bool) -> Result<Vec<u8>, CliError> {
    let cmd = cmd.clone().override_usage(synopsis(cmd));
    let man = clap_mangen::Man::new(cmd.clone()).manual("mpd-scrobbler manual");
    let mut out = Vec::new();
    let render = |out: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(out)?;
        man.render_name_section(out)?;
        man.render_synopsis_section(out)?;
        man.render_description_section(out)?;
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(out)?;
        }
        if cmd.has_subcommands() {
            man.render_subcommands_section(out)?;
        }
        if main {
            out.extend_from_slice(MAIN_SECTIONS.as_bytes());
        } else {
            out.extend_from_slice(
                b".SH EXIT STATUS\n0 on success, 1 when the command failed, 2 when the command \
                  line or the config file is wrong; see\n.BR mpd\\-scrobbler (1).\n",
            );
        }
        out.extend_from_slice(b".SH SEE ALSO\n");
        let mut see: Vec<String> = Vec::new();
        if !main {
            see.push(format!(".BR {} (1)", roff_escape(BIN)));
        }
        see.push(format!(".BR {}.toml (5)", roff_escape(BIN)));
        for s in &see {
            out.extend_from_slice(s.as_bytes());
            out.push(b'\n');
        }
        if main {
            man.render_version_section(out)?;
        }
        Ok(())
    };
    render(&mut out).map_err(|e| CliError::Failed(format!("cannot render the man page: {e}")))?;
    // Each section rendered alone repeats roff's preamble; once is enough.
    let text = String::from_utf8_lossy(&out);
    let preamble = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let (first, rest) = text.split_at(text.find(preamble).map_or(0, |i| i + preamble.len()));
    Ok(format!("{first}{}", rest.replace(preamble, "")).into_bytes())
}

/// The usage line with each option's value (clap_mangen's own synopsis
/// shows `-c` without FILE).
fn synopsis(cmd: &clap::Command) -> String {
    let mut s = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_owned();
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
    {
        if matches!(a.get_id().as_str(), "help" | "version") {
            continue;
        }
        let flag = match (a.get_short(), a.get_long()) {
            (Some(c), Some(l)) => format!("-{c}|--{l}"),
            (Some(c), None) => format!("-{c}"),
            (None, Some(l)) => format!("--{l}"),
            (None, None) => continue,
        };
        let value = match a.get_action() {
            clap::ArgAction::Set | clap::ArgAction::Append => a
                .get_value_names()
                .map(|v| format!(" {}", v.join(" ")))
                .unwrap_or_else(|| format!(" {}", a.get_id().as_str().to_uppercase())),
            _ => String::new(),
        };
        let repeat = if matches!(a.get_action(), clap::ArgAction::Count) {
            "..."
        } else {
            ""
        };
        if a.is_required_set() {
            s.push_str(&format!(" {flag}{value}"));
        } else {
            s.push_str(&format!(" [{flag}{value}]{repeat}"));
        }
    }
    for a in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let name = a
            .get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
        if a.is_required_set() {
            s.push_str(&format!(" {name}"));
        } else {
            s.push_str(&format!(" [{name}]"));
        }
    }
    if cmd.has_subcommands() {
        if cmd.is_subcommand_required_set() {
            s.push_str(" COMMAND");
        } else {
            s.push_str(" [COMMAND]");
        }
    }
    s
}

fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

/// Text for a roff line: escaped, and never starting with a control
/// character.
fn roff_text(s: &str) -> String {
    let s = roff_escape(s);
    if s.starts_with(['.', '\'']) {
        format!("\\&{s}")
    } else {
        s
    }
}

/// `mpd-scrobbler.toml.5`: the commented default config as a page. Each
/// comment becomes the description of the keys that follow it; a key
/// commented out in the config (`# key = value`) is an optional one.
pub(super) fn config_page() -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!(
        ".TH {} 5 \"\" \"{BIN} {}\" \"mpd-scrobbler manual\"\n",
        roff_escape("MPD-SCROBBLER.TOML"),
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(
        ".SH NAME\nmpd\\-scrobbler.toml \\- the configuration file of mpd\\-scrobbler\n\
         .SH SYNOPSIS\n.I $XDG_CONFIG_HOME/mpd\\-scrobbler/config.toml\n\
         .SH DESCRIPTION\n\
         A TOML file. Every key is optional; without the file the daemon runs with the \
         defaults below and no online target. Unknown keys and bad values are errors \
         naming the file, the key and the problem (exit status 2).\n\
         .B mpd\\-scrobbler config init\n\
         writes this page's content as a commented config file, and\n\
         .B mpd\\-scrobbler config show\n\
         prints it.\n\
         .SH KEYS\n",
    );
    // A comment followed by keys describes them; one followed by a blank
    // line or a section is a paragraph of its own.
    let mut pending: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut desc: Vec<String> = Vec::new();
    let emit = |out: &mut String, keys: &mut Vec<String>, text: &mut Vec<String>| {
        if keys.is_empty() && text.is_empty() {
            return;
        }
        if keys.is_empty() {
            out.push_str(".PP\n");
        }
        for (i, k) in keys.drain(..).enumerate() {
            out.push_str(if i == 0 { ".TP\n" } else { ".TQ\n" });
            out.push_str(&k);
            out.push('\n');
        }
        for line in text.drain(..) {
            if line.is_empty() {
                out.push_str(".br\n");
            } else {
                out.push_str(&roff_text(&line));
                out.push('\n');
            }
        }
    };
    // The file's own header (before the first blank line) is the
    // DESCRIPTION's business.
    let body = DEFAULT_CONFIG
        .split_once("\n\n")
        .map_or(DEFAULT_CONFIG, |(_, b)| b);
    for line in body.lines() {
        let text = line.strip_prefix('#').map(str::trim_start);
        let setting = text.unwrap_or(line).trim();
        let is_header = setting.starts_with('[') && setting.ends_with(']');
        let key = setting
            .split_once(" = ")
            .filter(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if line.trim().is_empty() || is_header {
            emit(&mut out, &mut keys, &mut desc);
            emit(&mut out, &mut Vec::new(), &mut pending);
            if is_header {
                out.push_str(&format!(".SS {}\n", roff_text(setting)));
            }
        } else if let Some((k, v)) = key {
            if keys.is_empty() {
                desc = std::mem::take(&mut pending);
            }
            keys.push(format!("\\fB{}\\fR = {}", roff_escape(k), roff_escape(v)));
        } else {
            emit(&mut out, &mut keys, &mut desc);
            pending.push(text.unwrap_or(line).to_owned());
        }
    }
    emit(&mut out, &mut keys, &mut desc);
    emit(&mut out, &mut Vec::new(), &mut pending);
    out.push_str(".SH SEE ALSO\n.BR mpd\\-scrobbler (1)\n");
    out.into_bytes()
}

/// The completion script for `shell`.
///
/// clap_complete names bash's per-command case labels after a mangled
/// binary name that differs from the one it dispatches on when the name
/// has a hyphen (clap-rs/clap#6421: `mpd__subcmd__scrobbler__...` against
/// `mpd__scrobbler__...`), so no subcommand's options complete. The
/// labels are put right here; with a fixed clap_complete this changes
/// nothing.
pub(super) fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    if shell != clap_complete::Shell::Bash {
        return script;
    }
    String::from_utf8_lossy(&script)
        .replace("mpd__subcmd__scrobbler", "mpd__scrobbler")
        .into_bytes()
}
