//! Runs the real `mpd-scrobbler` binary in an isolated temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory holding `config.toml`, `state/` and the daemon log.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.config_path(), toml).expect("write config");
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
        r#"state_dir = {state:?}
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
url = {lastfm_url:?}
api_key = "0123456789abcdef0123456789abcdef"
api_secret = "fedcba9876543210fedcba9876543210"
"#,
        state = state_dir.display().to_string(),
    );
    if let Some(sk) = session_key {
        s.push_str(&format!("session_key = {sk:?}\n"));
    }
    s
}

fn command(dir: &TestDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpd-scrobbler"));
    cmd.arg("-c")
        .arg(dir.config_path())
        .env_remove("MPD_HOST")
        .env_remove("MPD_PORT")
        .env_remove("STATE_DIRECTORY")
        .env_remove("JOURNAL_STREAM")
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
        .env("XDG_STATE_HOME", dir.path().join("xdg-state"))
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
    /// Start `mpd-scrobbler -c <config> run`.
    pub fn spawn(dir: &TestDir) -> Daemon {
        // Every run appends to its own numbered log so a restart keeps the history.
        let mut n = 0;
        let log_path = loop {
            let p = dir.path().join(format!("daemon-{n}.log"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = command(dir)
            .arg("run")
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// SIGTERM and wait for the exit (at most 10 s).
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "daemon did not exit within 10 s of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Run a one-shot command (`auth ...`, `run` for a second daemon) with the
/// test's config and environment.
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
    use std::io::Write;
    let mut child = command(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpd-scrobbler");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}
