//! A real `mpd` (the Debian package) on 127.0.0.1 with the null output and a
//! generated library of tagged FLAC files, isolated in a temporary directory.
//!
//! Self-contained (std and tempfile only) so the benchmark can include it too.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One song of the generated library.
pub struct SongSpec {
    /// Path inside the music directory.
    pub file: &'static str,
    /// Length in seconds.
    pub secs: u32,
    /// Vorbis comments; a tag may repeat (two ARTIST values).
    pub tags: Vec<(&'static str, String)>,
}

fn song(file: &'static str, secs: u32, tags: &[(&'static str, &str)]) -> SongSpec {
    SongSpec {
        file,
        secs,
        tags: tags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    }
}

/// A small library with the cases the tests need.
pub fn default_library() -> Vec<SongSpec> {
    vec![
        song(
            "sigur/hoppipolla.flac",
            8,
            &[
                ("ARTIST", "Sigur Rós"),
                ("TITLE", "Hoppípolla"),
                ("ALBUM", "Takk..."),
                ("TRACKNUMBER", "3"),
            ],
        ),
        song(
            "jp/song.flac",
            8,
            &[
                ("ARTIST", "日本語のアーティスト"),
                ("TITLE", "日本語の曲"),
                ("ALBUM", "アルバム"),
            ],
        ),
        song(
            "misc/rock.flac",
            8,
            &[
                ("ARTIST", "AC/DC"),
                ("TITLE", "Rock & Roll = Life"),
                ("ALBUM", "T.N.T."),
            ],
        ),
        song(
            "misc/plain.flac",
            8,
            &[("ARTIST", "Plain Artist"), ("TITLE", "Plain Song")],
        ),
        song(
            "misc/short.flac",
            1,
            &[("ARTIST", "Short Artist"), ("TITLE", "Too Short")],
        ),
        song(
            "misc/duo.flac",
            8,
            &[("ARTIST", "Foo"), ("ARTIST", "Bar"), ("TITLE", "Together")],
        ),
        song("misc/untagged.flac", 8, &[("TITLE", "No Artist Here")]),
        song(
            "misc/long.flac",
            20,
            &[("ARTIST", "Long Artist"), ("TITLE", "Long Song")],
        ),
    ]
}

/// A running mpd. Killed and cleaned up when dropped.
pub struct MpdServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl MpdServer {
    /// Generate the library, start mpd and wait until its database holds every song.
    pub fn start(library: &[SongSpec]) -> MpdServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let music = dir.path().join("music");
        for song in library {
            write_flac(&music.join(song.file), song.secs, &song.tags);
        }
        let port = free_port();
        let conf = format!(
            r#"music_directory "{music}"
db_file "{d}/db"
state_file "{d}/state"
log_file "{d}/mpd.log"
pid_file "{d}/mpd.pid"
bind_to_address "127.0.0.1"
port "{port}"
zeroconf_enabled "no"
auto_update "no"
audio_output {{
    type "null"
    name "null"
}}
"#,
            music = music.display(),
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("mpd.conf"), conf).expect("write mpd.conf");
        let mut server = MpdServer {
            dir,
            port,
            child: None,
        };
        server.start_server();
        server.cmd("update");
        let start = Instant::now();
        loop {
            let updating = server.cmd("status").iter().any(|(k, _)| k == "updating_db");
            let songs = server
                .value("stats", "songs")
                .and_then(|s| s.parse::<usize>().ok());
            if !updating && songs == Some(library.len()) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mpd did not index the library: {songs:?} songs\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mpd.log")).unwrap_or_default()
    }

    /// Run one command on a fresh connection; panics on ACK.
    pub fn cmd(&self, command: &str) -> Vec<(String, String)> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to mpd");
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("greeting");
        assert!(line.starts_with("OK MPD"), "bad greeting {line:?}");
        (&stream)
            .write_all(format!("{command}\n").as_bytes())
            .expect("send");
        let mut out = Vec::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "mpd closed the connection during {command:?}");
            let l = line.trim_end_matches('\n');
            if l == "OK" {
                return out;
            }
            if l.starts_with("ACK") {
                panic!("mpd refused {command:?}: {l}");
            }
            if let Some((k, v)) = l.split_once(": ") {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }

    fn value(&self, command: &str, key: &str) -> Option<String> {
        self.cmd(command)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Clear the queue, add `file`, play it.
    pub fn play_file(&self, file: &str) {
        self.cmd("clear");
        self.enqueue(&[file]);
        self.cmd("play");
    }

    pub fn enqueue(&self, files: &[&str]) {
        for f in files {
            self.cmd(&format!("add {}", quote(f)));
        }
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

    pub fn seek(&self, secs: f64) {
        self.cmd(&format!("seekcur {secs}"));
    }

    pub fn repeat(&self, on: bool) {
        self.cmd(&format!("repeat {}", u8::from(on)));
    }

    pub fn single(&self, on: bool) {
        self.cmd(&format!("single {}", u8::from(on)));
    }

    pub fn state(&self) -> String {
        self.value("status", "state").unwrap_or_default()
    }

    pub fn elapsed(&self) -> f64 {
        self.value("status", "elapsed")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Wait until `status` says `state: <state>`.
    pub fn wait_state(&self, state: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let now = self.state();
            if now == state {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "mpd stayed in state {now:?}, expected {state:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop mpd (SIGTERM) and wait for it; the directory and port stay.
    pub fn stop_server(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Start mpd (again) on the same port with the same database.
    pub fn start_server(&mut self) {
        let conf = self.dir.path().join("mpd.conf");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mpd.stderr"))
            .expect("stderr file");
        let child = Command::new("mpd")
            .arg("--no-daemon")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start mpd (apt-get install mpd)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mpd did not start listening:\n{}\n{}",
                self.log(),
                std::fs::read_to_string(self.dir.path().join("mpd.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MpdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Quote an argument for the MPD protocol.
pub fn quote(arg: &str) -> String {
    format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Write a silent 8 kHz mono FLAC of `secs` seconds with the given tags,
/// encoding a WAV written here with the `flac` command.
fn write_flac(path: &Path, secs: u32, tags: &[(&'static str, String)]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("music dir");
    let rate: u32 = 8000;
    let data_len = rate * 2 * secs;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    let wav_path: PathBuf = path.with_extension("wav");
    std::fs::write(&wav_path, &wav).expect("write wav");
    let mut cmd = Command::new("flac");
    cmd.args(["--silent", "--force", "-0"]);
    for (k, v) in tags {
        cmd.arg(format!("--tag={k}={v}"));
    }
    let out = cmd
        .arg("-o")
        .arg(path)
        .arg(&wav_path)
        .output()
        .expect("run flac (apt-get install flac)");
    assert!(
        out.status.success(),
        "flac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&wav_path).ok();
}
