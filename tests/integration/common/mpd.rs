//! A real `mpd` (the Debian package) on 127.0.0.1 with the null output and a
//! generated library of tagged FLAC files, isolated in a temporary directory.
//!
//! Every server has its own directory (music, database, state, log, pid
//! file), its own port and no other listener, so tests can run in parallel.
//!
//! Behaviour of mpd 0.23 worth knowing when writing tests:
//! - the null output keeps real time, in steps of mpd's 4 KiB chunk, which
//!   is 0.256 s at the 8 kHz mono of these files: `elapsed` follows the wall
//!   clock in 0.25 s steps, and an N-second song ends (`stop`, or the next
//!   song) about 0.25 s before N seconds after `play`;
//! - `Time`/`duration` are exactly the generated length (`secs`);
//! - at the end of the queue mpd goes to `stop`; with `single 1` and another
//!   song queued it goes to `pause` on that next song at 0.0 instead; with
//!   `repeat 1` and `single 1` it replays the same song: same `songid`,
//!   `elapsed` back to 0, state stays `play`;
//! - `stop_server` + `start_server` restores the queue and the play state
//!   from the state file, so a song that was playing resumes where it was.
//!
//! Self-contained (std and tempfile only) so the benchmark can include it too.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long mpd may take to start listening, or to index the library.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// How often the wait loops poll.
const POLL: Duration = Duration::from_millis(20);

/// One song of the generated library.
pub struct SongSpec {
    /// Path inside the music directory.
    pub file: &'static str,
    /// Length in seconds.
    pub secs: u32,
    /// Vorbis comments; a tag may repeat (two ARTIST values).
    pub tags: Vec<(&'static str, String)>,
}

impl SongSpec {
    pub fn new(file: &'static str, secs: u32, tags: &[(&'static str, &str)]) -> SongSpec {
        SongSpec {
            file,
            secs,
            tags: tags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }
}

/// MusicBrainz recording id of `sigur/hoppipolla.flac` in the default library.
pub const HOPPIPOLLA_MBID: &str = "a3e4a7b4-9f6b-4b8e-9d43-3f0e0bde0c51";

/// A small library with the cases the tests need. The order is stable:
/// tests pick songs by index (`[0]` is the Sigur Rós song).
pub fn default_library() -> Vec<SongSpec> {
    vec![
        SongSpec::new(
            "sigur/hoppipolla.flac",
            8,
            &[
                ("ARTIST", "Sigur Rós"),
                ("TITLE", "Hoppípolla"),
                ("ALBUM", "Takk..."),
                ("ALBUMARTIST", "Sigur Rós"),
                ("TRACKNUMBER", "3"),
                ("MUSICBRAINZ_TRACKID", HOPPIPOLLA_MBID),
            ],
        ),
        SongSpec::new(
            "jp/song.flac",
            8,
            &[
                ("ARTIST", "日本語のアーティスト"),
                ("TITLE", "日本語の曲"),
                ("ALBUM", "アルバム"),
            ],
        ),
        SongSpec::new(
            "misc/rock.flac",
            8,
            &[
                ("ARTIST", "AC/DC"),
                ("TITLE", "Rock & Roll = Life"),
                ("ALBUM", "T.N.T."),
            ],
        ),
        SongSpec::new(
            "misc/plain.flac",
            8,
            &[("ARTIST", "Plain Artist"), ("TITLE", "Plain Song")],
        ),
        // Shorter than any sensible minimum track length.
        SongSpec::new(
            "misc/short.flac",
            1,
            &[("ARTIST", "Short Artist"), ("TITLE", "Too Short")],
        ),
        SongSpec::new(
            "misc/duo.flac",
            8,
            &[("ARTIST", "Foo"), ("ARTIST", "Bar"), ("TITLE", "Together")],
        ),
        SongSpec::new("misc/untagged.flac", 8, &[("TITLE", "No Artist Here")]),
        SongSpec::new(
            "misc/long.flac",
            20,
            &[("ARTIST", "Long Artist"), ("TITLE", "Long Song")],
        ),
    ]
}

/// A running mpd. Killed and its directory removed when dropped.
pub struct MpdServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// When set, clients without it may do nothing (`default_permissions ""`).
    password: Option<String>,
}

impl MpdServer {
    /// Generate the library, start mpd and wait until its database holds every song.
    pub fn start(library: &[SongSpec]) -> MpdServer {
        MpdServer::start_with(library, None)
    }

    /// `start`, with mpd requiring `password` for everything.
    pub fn start_with_password(library: &[SongSpec], password: &str) -> MpdServer {
        MpdServer::start_with(library, Some(password))
    }

    fn start_with(library: &[SongSpec], password: Option<&str>) -> MpdServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let music = dir.path().join("music");
        std::fs::create_dir_all(&music).expect("music dir");
        std::fs::create_dir_all(dir.path().join("playlists")).expect("playlist dir");
        write_library(&music, library);

        // The port comes from binding port 0 and letting go of it, so another
        // process can take it before mpd binds it: then mpd exits at once and
        // we try again on a new port.
        let mut server = MpdServer {
            dir,
            port: 0,
            child: None,
            password: password.map(str::to_owned),
        };
        let mut attempts = 0;
        loop {
            server.port = free_port();
            server.write_conf();
            match server.launch() {
                Ok(()) => break,
                Err(e) if attempts >= 2 => panic!("mpd did not start: {e}"),
                Err(_) => attempts += 1,
            }
        }
        server.update(library.len());
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The temporary directory holding mpd.conf, the database, the state
    /// file, the logs and `music/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn music_dir(&self) -> PathBuf {
        self.dir.path().join("music")
    }

    /// mpd's log file. Errors before mpd opens it (a bad config, a port in
    /// use) only reach its stderr: see `stderr`.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mpd.log")).unwrap_or_default()
    }

    /// Everything mpd wrote to stderr, over every start.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mpd.stderr")).unwrap_or_default()
    }

    /// Rescan the music directory (after adding files to `music_dir`) and
    /// wait until the database holds `expected_songs` songs.
    pub fn update(&self, expected_songs: usize) {
        self.cmd("update");
        let start = Instant::now();
        loop {
            // `updating_db` shows while the scan runs; the count rules out
            // asking before the scan has even begun.
            let updating = self.status_value("updating_db").is_some();
            let songs = self
                .value("stats", "songs")
                .and_then(|s| s.parse::<usize>().ok());
            if !updating && songs == Some(expected_songs) {
                return;
            }
            assert!(
                start.elapsed() < STARTUP_LIMIT,
                "mpd did not index the library: {songs:?} songs, {expected_songs} expected\n{}",
                self.diagnostics()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Run one command (arguments already quoted, see `quote` and
    /// `cmd_args`) on a fresh connection and return its key/value pairs in
    /// order. Panics with mpd's ACK line when mpd refuses it.
    pub fn cmd(&self, command: &str) -> Vec<(String, String)> {
        assert!(
            !command.contains('\n'),
            "one command per call, without newlines: {command:?}"
        );
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap_or_else(|e| {
            panic!("connect to mpd on port {} for {command:?}: {e}", self.port)
        });
        // A wedged mpd fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("greeting");
        assert!(line.starts_with("OK MPD "), "bad greeting {line:?}");
        if let Some(password) = &self.password {
            (&stream)
                .write_all(format!("password {}\n", quote(password)).as_bytes())
                .expect("send password");
            line.clear();
            reader.read_line(&mut line).expect("password reply");
            assert_eq!(line, "OK\n", "mpd refused the test's own password");
        }
        (&stream)
            .write_all(format!("{command}\n").as_bytes())
            .expect("send");
        let mut out = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reading mpd's reply to {command:?}: {e}"));
            assert!(n > 0, "mpd closed the connection during {command:?}");
            let l = line.trim_end_matches('\n');
            if l == "OK" {
                return out;
            }
            if l.starts_with("ACK ") {
                panic!("mpd refused {command:?}: {l}");
            }
            if let Some((k, v)) = l.split_once(": ") {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }

    /// `cmd` with each argument quoted: `cmd_args("find", &["Artist", "Sigur Rós"])`.
    pub fn cmd_args(&self, name: &str, args: &[&str]) -> Vec<(String, String)> {
        let mut command = name.to_string();
        for arg in args {
            command.push(' ');
            command.push_str(&quote(arg));
        }
        self.cmd(&command)
    }

    fn value(&self, command: &str, key: &str) -> Option<String> {
        self.cmd(command)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// One field of `status` (`state`, `songid`, `elapsed`, `single`, ...).
    pub fn status_value(&self, key: &str) -> Option<String> {
        self.value("status", key)
    }

    /// Clear the queue, add `file`, play it.
    pub fn play_file(&self, file: &str) {
        self.cmd("clear");
        self.enqueue(&[file]);
        self.cmd("play");
    }

    /// Append files to the queue.
    pub fn enqueue(&self, files: &[&str]) {
        for f in files {
            self.cmd_args("add", &[f]);
        }
    }

    pub fn play(&self) {
        self.cmd("play");
    }

    pub fn pause(&self) {
        self.cmd("pause 1");
    }

    pub fn resume(&self) {
        self.cmd("pause 0");
    }

    pub fn stop(&self) {
        self.cmd("stop");
    }

    pub fn next(&self) {
        self.cmd("next");
    }

    pub fn clear(&self) {
        self.cmd("clear");
    }

    /// Seek within the current song; works while paused too.
    pub fn seek(&self, secs: f64) {
        self.cmd(&format!("seekcur {secs}"));
    }

    pub fn repeat(&self, on: bool) {
        self.cmd(&format!("repeat {}", u8::from(on)));
    }

    pub fn single(&self, on: bool) {
        self.cmd(&format!("single {}", u8::from(on)));
    }

    /// `play`, `pause` or `stop`.
    pub fn state(&self) -> String {
        self.status_value("state").unwrap_or_default()
    }

    /// Position in the current song; 0.0 when stopped.
    pub fn elapsed(&self) -> f64 {
        self.status_value("elapsed")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Wait until `status` says `state: <state>`; panics after `timeout`.
    pub fn wait_state(&self, state: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let now = self.state();
            if now == state {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "mpd stayed in state {now:?}, expected {state:?}; status: {:?}",
                self.cmd("status")
            );
            std::thread::sleep(POLL);
        }
    }

    /// Stop mpd (SIGTERM) and wait for it; the directory and port stay.
    /// mpd writes its state file on the way out, so `start_server` brings
    /// back the queue and what was playing.
    pub fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        // mpd exits within milliseconds; don't let a wedged one hang the test.
        let start = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mpd ignored SIGTERM for 10 s; killed it\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Start mpd (again) on the same port with the same database, music and
    /// state file. No rescan is needed: the database file is kept.
    pub fn start_server(&mut self) {
        assert!(self.child.is_none(), "mpd is already running");
        if let Err(e) = self.launch() {
            panic!("mpd did not start again on port {}: {e}", self.port);
        }
    }

    /// Spawn mpd and wait for its greeting on our port. On failure mpd is
    /// not running and the error holds what it said.
    fn launch(&mut self) -> Result<(), String> {
        let conf = self.dir.path().join("mpd.conf");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mpd.stderr"))
            .expect("stderr file");
        let child = Command::new("mpd")
            .arg("--no-daemon")
            .arg(&conf)
            // Under systemd these would make mpd take the service's sockets
            // (socket activation) or report readiness to the service manager.
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start mpd (apt-get install mpd)");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        loop {
            // Checked first: something else may hold the port after mpd
            // failed to bind it, and its answer must not count as ours.
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("mpd exited ({status})\n{}", self.diagnostics()));
            }
            if greets(addr) {
                // mpd that fails to bind exits within milliseconds; if it is
                // still there after a greeting, the greeting was its own.
                std::thread::sleep(POLL);
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if exited.is_none() {
                    return Ok(());
                }
                continue;
            }
            if start.elapsed() > STARTUP_LIMIT {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(format!("mpd did not answer\n{}", self.diagnostics()));
            }
            std::thread::sleep(POLL);
        }
    }

    fn write_conf(&self) {
        let d = self.dir.path();
        let q = |name: &str| quote(&d.join(name).display().to_string());
        // bind_to_address also keeps mpd off its default socket; no `user`
        // line, so mpd runs as whoever runs the tests (root in CI).
        let conf = format!(
            r#"music_directory {music}
playlist_directory {playlists}
db_file {db}
state_file {state}
log_file {log}
pid_file {pid}
bind_to_address "127.0.0.1"
port "{port}"
zeroconf_enabled "no"
auto_update "no"
filesystem_charset "UTF-8"
audio_output {{
    type "null"
    name "null"
}}
"#,
            music = q("music"),
            playlists = q("playlists"),
            db = q("db"),
            state = q("state"),
            log = q("mpd.log"),
            pid = q("mpd.pid"),
            port = self.port,
        );
        let conf = match &self.password {
            Some(pw) => format!(
                "{conf}password {}\ndefault_permissions \"\"\n",
                quote(&format!("{pw}@read,add,control,admin"))
            ),
            None => conf,
        };
        std::fs::write(d.join("mpd.conf"), conf).expect("write mpd.conf");
    }

    /// The log and stderr, for failure messages.
    fn diagnostics(&self) -> String {
        format!(
            "--- mpd log:\n{}--- mpd stderr:\n{}",
            self.log(),
            self.stderr()
        )
    }
}

impl Drop for MpdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test shows this with its output; mpd's log is short.
        if std::thread::panicking() {
            eprintln!(
                "--- mpd on port {} at failure:\n{}",
                self.port,
                tail(&self.diagnostics(), 40)
            );
        }
    }
}

/// Whether an MPD server answers on `addr` with its greeting.
fn greets(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("OK MPD ")
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Quote an argument for the MPD protocol (and mpd.conf): double quotes,
/// with `"` and `\` escaped by a backslash.
pub fn quote(arg: &str) -> String {
    format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Write every song as FLAC under `music`, running the encoders in parallel.
fn write_library(music: &Path, library: &[SongSpec]) {
    let encoders: Vec<_> = library
        .iter()
        .map(|song| {
            let path = music.join(song.file);
            (song.file, spawn_flac(&path, song.secs, &song.tags), path)
        })
        .collect();
    for (file, child, path) in encoders {
        let out = child.wait_with_output().expect("wait for flac");
        assert!(
            out.status.success(),
            "flac failed on {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The WAV must be gone before mpd scans, or it would be indexed too.
        std::fs::remove_file(path.with_extension("wav")).expect("remove wav");
    }
}

/// Start `flac` encoding `secs` seconds of silence (8 kHz, mono, 16 bit,
/// written here as a WAV file next to the target) into `path` with `tags`.
fn spawn_flac(path: &Path, secs: u32, tags: &[(&'static str, String)]) -> Child {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("music dir");
    let rate: u32 = 8000;
    let data_len = rate * 2 * secs;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    let wav_path = path.with_extension("wav");
    std::fs::write(&wav_path, &wav).expect("write wav");
    let mut cmd = Command::new("flac");
    cmd.args(["--silent", "--force", "-0"]);
    for (k, v) in tags {
        // flac splits at the first '=', so values may contain '='.
        cmd.arg(format!("--tag={k}={v}"));
    }
    cmd.arg("-o")
        .arg(path)
        .arg(&wav_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run flac (apt-get install flac)")
}
