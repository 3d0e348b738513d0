//! Runs the real `mpd-scrobbler` binary in an isolated temporary directory.
//!
//! The environment is scrubbed of everything the binary (or reqwest) would
//! read from the developer's or CI's session, and `HOME`/`XDG_*` point inside
//! the test's directory, so nothing outside it is read or written.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a one-shot `run_cli` command may take before the test fails.
const CLI_LIMIT: Duration = Duration::from_secs(60);
/// How long the daemon may take to exit after SIGTERM.
const SIGTERM_LIMIT: Duration = Duration::from_secs(10);
/// How often the wait loops poll.
const POLL: Duration = Duration::from_millis(20);

/// A temporary directory holding `config.toml`, `state/` and the daemon logs.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        use std::os::unix::fs::DirBuilderExt;
        let dir = tempfile::tempdir().expect("temp dir");
        // As a login session provides it: the daemon's control socket goes there.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.path().join("xdg-runtime"))
            .expect("runtime dir");
        TestDir { dir }
    }

    /// `$XDG_RUNTIME_DIR` of the commands run here.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("xdg-runtime")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Not created here: creating it is the daemon's job.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.config_path(), toml).expect("write config");
    }

    /// Write the usual test config (`config_toml`) with this directory's
    /// state dir.
    pub fn write_test_config(&self, mpd_port: u16, lastfm_url: &str, session_key: Option<&str>) {
        self.write_config(&config_toml(
            mpd_port,
            &self.state_dir(),
            lastfm_url,
            session_key,
        ));
    }
}

/// A config for the tests: thresholds low enough for seconds-long songs,
/// retries fast enough for a test to wait on.
pub fn config_toml(
    mpd_port: u16,
    state_dir: &Path,
    lastfm_url: &str,
    session_key: Option<&str>,
) -> String {
    let mut s = format!(
        r#"state_dir = {state}
[mpd]
host = "127.0.0.1"
port = {mpd_port}
[scrobble]
min_track_secs = 2
played_percent = 50
max_required_secs = 240
[delivery]
retry_min = "200ms"
retry_max = "2s"
request_timeout = "5s"
[lastfm]
url = {url}
api_key = "0123456789abcdef0123456789abcdef"
api_secret = "fedcba9876543210fedcba9876543210"
"#,
        state = toml_str(&state_dir.display().to_string()),
        url = toml_str(lastfm_url),
    );
    if let Some(sk) = session_key {
        s.push_str(&format!("session_key = {}\n", toml_str(sk)));
    }
    s
}

/// A TOML basic string. (Rust's `{:?}` is close but writes `\u{..}`,
/// which TOML rejects.)
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The binary with `-c <config>` and the test's environment.
pub fn command(dir: &TestDir) -> Command {
    let mut cmd = with_test_env(Command::new(env!("CARGO_BIN_EXE_mpd-scrobbler")), dir);
    cmd.arg("-c").arg(dir.config_path());
    cmd
}

/// The state directory of a run without a config file (zero-config):
/// `$XDG_STATE_HOME/mpd-scrobbler`.
pub fn zero_config_state_dir(dir: &TestDir) -> PathBuf {
    dir.path().join("xdg-state").join("mpd-scrobbler")
}

/// `cmd` (the binary, or a wrapper running it) with the test's environment.
fn with_test_env(mut cmd: Command, dir: &TestDir) -> Command {
    for var in [
        // Read by the binary: they would override the config's [mpd] and
        // state_dir, change the log format or the width of tables.
        "MPD_HOST",
        "MPD_PORT",
        "STATE_DIRECTORY",
        "RUNTIME_DIRECTORY",
        "CREDENTIALS_DIRECTORY",
        "JOURNAL_STREAM",
        "NO_COLOR",
        "CLICOLOR_FORCE",
        "COLUMNS",
        // Read by reqwest: the stand-in servers are on 127.0.0.1.
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        // systemd's, for a CI runner that is itself a service.
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    let home = dir.path();
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .env("XDG_STATE_HOME", home.join("xdg-state"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env("XDG_CACHE_HOME", home.join("xdg-cache"))
        .env("XDG_RUNTIME_DIR", home.join("xdg-runtime"))
        .env(
            "MPD_SCROBBLER_LOG",
            "debug,mpd_client=info,mpd_protocol=info,sled=warn,hyper_util=info,reqwest=info",
        );
    cmd
}

/// The daemon process. Killed with SIGKILL when dropped.
pub struct Daemon {
    child: Child,
    log_path: PathBuf,
}

impl Daemon {
    /// Start `mpd-scrobbler -c <config> run`, stdout and stderr into
    /// `daemon-<n>.log` in the test directory.
    pub fn spawn(dir: &TestDir) -> Daemon {
        Daemon::spawn_env(dir, &[])
    }

    /// `spawn` with extra environment variables (NOTIFY_SOCKET, say).
    pub fn spawn_env(dir: &TestDir, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(dir, env, false)
    }

    /// `spawn_env` with the log file posing as the journal: JOURNAL_STREAM
    /// names its device and inode, as systemd does for a service's stderr.
    pub fn spawn_journal(dir: &TestDir, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(dir, env, true)
    }

    /// Start `mpd-scrobbler run` with no `-c` and no file at the default
    /// config path: the zero-config set-up, MPD from `env` (MPD_HOST, MPD_PORT).
    pub fn spawn_zero_config(dir: &TestDir, env: &[(&str, &str)]) -> Daemon {
        let cmd = with_test_env(Command::new(env!("CARGO_BIN_EXE_mpd-scrobbler")), dir);
        Daemon::spawn_cmd(dir, cmd, env, false)
    }

    fn spawn_with(dir: &TestDir, env: &[(&str, &str)], journal: bool) -> Daemon {
        Daemon::spawn_cmd(dir, command(dir), env, journal)
    }

    fn spawn_cmd(dir: &TestDir, mut cmd: Command, env: &[(&str, &str)], journal: bool) -> Daemon {
        use std::os::unix::fs::MetadataExt;
        // Each run gets its own numbered log, so a restarted daemon's log
        // starts empty (wait_log sees only the new run) and the old one stays.
        let (log, log_path) = (0..)
            .find_map(|n| {
                let p = dir.path().join(format!("daemon-{n}.log"));
                let f = std::fs::File::create_new(&p).ok()?;
                Some((f, p))
            })
            .expect("log file");
        if journal {
            let meta = log.metadata().expect("log metadata");
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        let child = cmd
            .arg("run")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn mpd-scrobbler");
        Daemon { child, log_path }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What this run wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Wait until the log contains `needle`; false after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// How many times the log says `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Wait until the log says `needle` at least `times` times; false
    /// after `timeout`. For a line an earlier event already wrote once
    /// ("connected to MPD" after a reconnection).
    pub fn wait_log_count(&self, needle: &str, times: usize, timeout: Duration) -> bool {
        self.wait_for_log(|log| log.matches(needle).count() >= times, timeout)
    }

    /// Wait until `ready` holds for the log; false after `timeout`.
    pub fn wait_for_log(&self, ready: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if ready(&self.log()) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Send a signal by name (`"USR1"`, `"HUP"`, ...). The pid cannot have
    /// been reused: it stays ours until we reap the child.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// SIGTERM and wait for the exit (at most 10 s, then panic). A daemon
    /// that has already exited just gives its status.
    pub fn sigterm(&mut self) -> ExitStatus {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            return status;
        }
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < SIGTERM_LIMIT,
                "daemon did not exit within {SIGTERM_LIMIT:?} of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL and reap; nothing happens if it has already exited.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        // Shown with the failing test's output.
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- daemon {} ({}) at failure, last lines:\n{}",
                self.pid(),
                self.log_path.display(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
    }
}

/// How many items `target` has waiting (or set aside, with `rejected`),
/// from `queue list --json`: through the daemon when it runs, else read
/// from the queue database.
pub fn queued(dir: &TestDir, target: &str, rejected: bool) -> usize {
    let mut args = vec!["queue", "list", "--json"];
    if rejected {
        args.push("--rejected");
    }
    let out = run_cli(dir, &args, None);
    assert!(
        out.status.success(),
        "queue list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("queue list JSON");
    v["targets"][target].as_array().map_or(0, Vec::len)
}

/// Run a one-shot command (`auth ...`, `queue list`, `run` for a second
/// daemon) with the test's config and environment; `stdin` is closed after
/// writing it, or null when `None`. Fails the test after 60 s.
pub fn run_cli(dir: &TestDir, args: &[&str], stdin: Option<&str>) -> Output {
    run_cli_env(dir, args, stdin, &[])
}

/// `run_cli` with extra environment variables.
pub fn run_cli_env(
    dir: &TestDir,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = command(dir);
    cmd.envs(env.iter().copied());
    run_to_end(cmd, args, stdin)
}

/// A one-shot command with no `-c` and no file at the default config path
/// (the zero-config set-up), with extra environment variables.
pub fn run_cli_zero_config(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = with_test_env(Command::new(env!("CARGO_BIN_EXE_mpd-scrobbler")), dir);
    cmd.envs(env.iter().copied());
    run_to_end(cmd, args, None)
}

/// `run_cli` as the unprivileged user `uid` (through `setpriv`, so the test
/// must run as root), with a copy of the binary that user may execute. The
/// test directory is opened to others for it; its contents keep their modes.
pub fn run_cli_as(dir: &TestDir, uid: u32, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open.clone()).expect("open the test dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let copy = bin.join("mpd-scrobbler");
    std::fs::copy(env!("CARGO_BIN_EXE_mpd-scrobbler"), &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, open).expect("chmod the binary");
    let mut setpriv = Command::new("setpriv");
    setpriv
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(copy);
    let mut cmd = with_test_env(setpriv, dir);
    cmd.arg("-c").arg(dir.config_path());
    run_to_end(cmd, args, None)
}

fn run_to_end(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = cmd
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpd-scrobbler");
    // Read both pipes while writing stdin and waiting, so that neither side
    // blocks on a full pipe.
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // The command may exit without reading it all (a refused config).
        let _ = pipe.write_all(input.as_bytes());
        // Dropping `pipe` closes it: the command sees end of input.
    }
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > CLI_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mpd-scrobbler {args:?} still running after {CLI_LIMIT:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(POLL);
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// `run_cli` with its stdout read as `| head -n LINES` does: the first
/// `lines` lines, then the pipe is closed. Those lines and the output.
pub fn run_cli_head(dir: &TestDir, args: &[&str], lines: usize) -> (Vec<String>, Output) {
    use std::io::BufRead;
    let mut child = command(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpd-scrobbler");
    let stderr = drain(child.stderr.take().expect("stderr"));
    let read: Vec<String> = std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .take(lines)
        .map(|l| l.expect("a line"))
        .collect();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > CLI_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpd-scrobbler {args:?} still running after {CLI_LIMIT:?}");
        }
        std::thread::sleep(POLL);
    };
    let out = Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.join().expect("stderr reader"),
    };
    (read, out)
}

/// `run_cli` with stdout a pipe whose reading end is already closed, as
/// `mpd-scrobbler history | head -0` would leave it: every write gets EPIPE.
/// The output holds stderr only.
pub fn run_cli_stdout_closed(dir: &TestDir, args: &[&str]) -> Output {
    let mut child = command(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpd-scrobbler");
    drop(child.stdout.take());
    let stderr = drain(child.stderr.take().expect("stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > CLI_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpd-scrobbler {args:?} still running after {CLI_LIMIT:?}");
        }
        std::thread::sleep(POLL);
    };
    Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Read a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
