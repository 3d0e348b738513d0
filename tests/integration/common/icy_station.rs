//! A stand-in internet radio station on 127.0.0.1: an HTTP stream with ICY
//! metadata (docs/protocols.md, "Internet radio and ICY"), as Icecast and SHOUTcast serve it.
//!
//! The audio is a FLAC encoded from a pipe, so its STREAMINFO says "total
//! samples: 0" and mpd reports no duration, as for a live station. It is
//! sent at real time; the title changes on a schedule measured in audio
//! time, so mpd (which plays at real time through the null output) sees
//! each title for its scheduled length of play, pauses excluded.
//!
//! Each connection starts the schedule from its beginning; the last title
//! lasts until the audio runs out.
//!
//! Self-contained (std and the `flac` program).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// 8 kHz mono 16-bit: little data, and mpd decodes it at once.
const RATE: u32 = 8000;
/// Bytes of audio between metadata blocks: about 0.1 s of this stream, so a
/// title changes within a tenth of a second of its scheduled time.
const METAINT: usize = 1600;
/// Sent at once on connecting, so that mpd starts playing without waiting.
const PREROLL: Duration = Duration::from_millis(500);

struct Shared {
    name: String,
    /// (title, seconds of audio) in order.
    schedule: Vec<(String, f64)>,
    flac: Vec<u8>,
    /// Encoded bytes per second of audio.
    byte_rate: f64,
    stopped: AtomicBool,
    connections: AtomicUsize,
    asked_for_metadata: Mutex<Vec<bool>>,
}

/// A running station; dropping it closes it.
pub struct IcyStation {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl IcyStation {
    /// Start a station called `name` (sent as `icy-name`) that plays each
    /// title of `schedule` for its seconds of audio, then the last until
    /// `total_secs` of audio have been sent.
    pub fn start(name: &str, schedule: &[(&str, f64)], total_secs: u32) -> IcyStation {
        let flac = encode_live_flac(total_secs);
        let byte_rate = flac.len() as f64 / f64::from(total_secs);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the station");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            schedule: schedule
                .iter()
                .map(|(t, s)| ((*t).to_owned(), *s))
                .collect(),
            flac,
            byte_rate,
            stopped: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            asked_for_metadata: Mutex::new(Vec::new()),
        });
        let acceptor = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if acceptor.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&acceptor);
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        IcyStation { addr, shared }
    }

    /// The stream's URL.
    pub fn url(&self) -> String {
        format!("http://{}/live.flac", self.addr)
    }

    /// How many times a client connected.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Whether each client sent `Icy-MetaData: 1`.
    pub fn asked_for_metadata(&self) -> Vec<bool> {
        self.shared.asked_for_metadata.lock().unwrap().clone()
    }
}

impl Drop for IcyStation {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The title playing at `secs` of audio.
fn title_at(schedule: &[(String, f64)], secs: f64) -> &str {
    let mut end = 0.0;
    for (title, len) in schedule {
        end += len;
        if secs < end {
            return title;
        }
    }
    schedule.last().map_or("", |(t, _)| t.as_str())
}

/// One `StreamTitle` metadata block: a length byte L, then L×16 bytes.
fn metadata_block(title: &str) -> Vec<u8> {
    let text = format!("StreamTitle='{title}';");
    let blocks = text.len().div_ceil(16);
    assert!(blocks <= 255, "title too long for one ICY block");
    let mut out = vec![blocks as u8];
    out.extend_from_slice(text.as_bytes());
    out.resize(1 + blocks * 16, 0);
    out
}

fn serve(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    if shared.stopped.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut icy = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("icy-metadata") && v.trim() == "1" {
                icy = true;
            }
        }
    }
    shared.connections.fetch_add(1, Ordering::SeqCst);
    shared.asked_for_metadata.lock().unwrap().push(icy);
    let mut head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: audio/flac\r\nicy-name: {}\r\nCache-Control: no-cache\r\n",
        shared.name
    );
    if icy {
        head.push_str(&format!("icy-metaint: {METAINT}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;

    let mut base = Instant::now();
    let mut sent_secs = 0.0;
    let mut last_title: Option<&str> = None;
    for chunk in shared.flac.chunks(METAINT) {
        if shared.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        stream.write_all(chunk)?;
        sent_secs += chunk.len() as f64 / shared.byte_rate;
        if icy {
            let title = title_at(&shared.schedule, sent_secs);
            if last_title == Some(title) {
                stream.write_all(&[0])?;
            } else {
                stream.write_all(&metadata_block(title))?;
                last_title = Some(title);
            }
        }
        // Real time after the preroll. A client that stopped reading (mpd
        // paused) is not flooded when it reads again: the clock restarts.
        let due = base + Duration::from_secs_f64(sent_secs) - PREROLL;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_secs(1) {
            base += now - due;
        }
    }
    Ok(())
}

/// `secs` seconds of low noise (so the byte rate is steady), encoded by
/// `flac` from a pipe into a pipe: it cannot go back to write the total
/// sample count, which stays 0 ("unknown"), as in a live stream.
fn encode_live_flac(secs: u32) -> Vec<u8> {
    let mut child = Command::new("flac")
        .args([
            "--silent",
            "--force-raw-format",
            "--endian=little",
            "--sign=signed",
            "--channels=1",
            "--bps=16",
            &format!("--sample-rate={RATE}"),
            "-0",
            "--stdout",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run flac (apt-get install flac)");
    let mut stdin = child.stdin.take().expect("flac stdin");
    let writer = std::thread::spawn(move || {
        let mut seed: u32 = 0x1234_5678;
        let mut pcm = Vec::with_capacity((RATE * 2) as usize);
        for _ in 0..secs {
            pcm.clear();
            for _ in 0..RATE {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let sample = ((seed >> 16) as i16) >> 6;
                pcm.extend_from_slice(&sample.to_le_bytes());
            }
            stdin.write_all(&pcm).expect("feed flac");
        }
    });
    let mut flac = Vec::new();
    child
        .stdout
        .take()
        .expect("flac stdout")
        .read_to_end(&mut flac)
        .expect("read flac");
    writer.join().expect("pcm writer");
    assert!(
        child.wait().expect("wait for flac").success(),
        "flac failed"
    );
    // STREAMINFO starts after "fLaC" and the 4-byte block header; total
    // samples are the low 36 bits of bytes 13..18 of the block.
    assert_eq!(&flac[..4], b"fLaC");
    let info = &flac[8..8 + 34];
    let total = (u64::from(info[13] & 0x0f) << 32)
        | u64::from(u32::from_be_bytes([info[14], info[15], info[16], info[17]]));
    assert_eq!(total, 0, "the stream must not tell its length");
    flac
}
