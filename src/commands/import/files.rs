//! `import mpdscribble JOURNAL` and `import listenbrainz FILE`: plays read
//! from a file, streamed in batches into the history and the queues, by the
//! daemon when it runs and by this process otherwise.

use std::path::Path;

use crate::commands::history as commands;
use crate::config::Config;
use crate::control::Reply;
use crate::history::{self, journal};
use crate::model::Listen;
use crate::output::{count, errln, out};
use crate::queue::Imported;

/// `import mpdscribble JOURNAL`: read the journal line by line, report
/// malformed records by line, and import the rest in batches.
pub(crate) async fn import_journal(config: &Config, path: &Path) -> anyhow::Result<()> {
    use std::io::{BufRead, Read};
    let cannot = |e: std::io::Error| anyhow::anyhow!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    // Whether it is a journal at all, from its start.
    let mut head = Vec::new();
    (&file)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(cannot)?;
    let head = String::from_utf8_lossy(&head);
    let head = match head.rfind('\n') {
        Some(i) if head.len() == 64 * 1024 => &head[..i],
        _ => &head,
    };
    if !journal::is_journal(head) {
        return Err(anyhow::anyhow!(
            "{} is not an mpdscribble journal (its lines are not `key = value` records \
             starting with `a = ARTIST`); nothing imported",
            path.display()
        ));
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut reader = journal::Reader::default();
    let mut lines = std::io::BufReader::new(file).lines();
    let mut n = 0;
    let mut done = false;
    let next = std::iter::from_fn(|| {
        loop {
            if done {
                return None;
            }
            let got = match lines.next() {
                Some(Ok(line)) => {
                    n += 1;
                    reader.line(n, &line)
                }
                Some(Err(e)) => return Some(Err(cannot(e))),
                None => {
                    done = true;
                    std::mem::take(&mut reader).end()
                }
            };
            match got {
                Some(Ok(l)) => return Some(Ok(Some(l))),
                Some(Err(m)) => {
                    errln!("{}:{}: skipped: {}", path.display(), m.line, m.problem);
                    return Some(Ok(None));
                }
                None => {}
            }
        }
    });
    import_listens(config, path, next).await
}

/// `import listenbrainz FILE`: read a ListenBrainz export (JSON array or
/// JSON Lines) one listen at a time, report unreadable listens by position,
/// and import the rest in batches.
pub(crate) async fn import_listenbrainz(config: &Config, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let reader = history::ExportReader::new(std::io::BufReader::new(file));
    let next = reader.map(|item| match item {
        Ok(Ok(l)) => Ok(Some(l)),
        Ok(Err(b)) => {
            errln!(
                "{}: listen {}: skipped: {}",
                path.display(),
                b.index,
                b.problem
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    });
    import_listens(config, path, next).await
}

/// Add imported listens to the history and the queues, a batch at a time:
/// plays no target takes go straight into the history database (never
/// through the daemon), the others to the daemon, or to a storage thread of
/// this process when none runs.
async fn import_listens(
    config: &Config,
    path: &Path,
    listens: impl Iterator<Item = anyhow::Result<Option<Listen>>>,
) -> anyhow::Result<()> {
    let mut total = Imported::default();
    let (mut read, mut malformed) = (0usize, 0usize);
    let mut sink: Option<commands::Sink> = None;
    let mut history = match config.history.enabled {
        true => Some(
            crate::store::history::HistoryDb::open_writer(&config.state_dir)
                .map_err(anyhow::Error::from)?,
        ),
        false => None,
    };
    let now = crate::model::unix_now();
    let mut listens = listens.peekable();
    while listens.peek().is_some() {
        let mut to_queue = Vec::new();
        let mut history_only = Vec::new();
        for item in listens.by_ref() {
            match item? {
                None => malformed += 1,
                Some(l) => {
                    read += 1;
                    if commands::some_target_takes(config, l.started_at, now) {
                        to_queue.push(l);
                    } else {
                        history_only.push(l);
                    }
                }
            }
            if to_queue.len() + history_only.len() >= commands::BATCH {
                break;
            }
        }
        if let Some(db) = history.as_mut().filter(|_| !history_only.is_empty()) {
            let n = db
                .import_plays(&history_only)
                .map_err(anyhow::Error::from)?;
            total.added += n.added;
            total.recorded += n.added;
            total.skipped += n.duplicates;
            // No target takes them: every target is a Last.fm one they are
            // too old for.
            for t in &config.lastfm {
                *total.too_old.entry(t.name.clone()).or_default() += history_only.len();
            }
        }
        if !to_queue.is_empty() {
            let s = sink.get_or_insert(commands::Sink::Daemon);
            let r = s.send(config, to_queue, None).await?;
            total.added += r.added;
            total.skipped += r.skipped;
            total.recorded += r.recorded;
            for (t, n) in r.queued {
                *total.queued.entry(t).or_default() += n;
            }
            for (t, n) in r.too_old {
                *total.too_old.entry(t).or_default() += n;
            }
        }
    }
    if let Some(commands::Sink::Local(store)) = &sink {
        store.flush().await.map_err(anyhow::Error::from)?;
    }
    out!(
        "{}",
        import_report(config, path, &Reply::from(&total), read, malformed)
    );
    Ok(())
}

/// What `import` says: how many plays went into the history, and per
/// target how many were queued and how many left out as too old, as
/// `backfill` reports.
fn import_report(
    config: &Config,
    path: &Path,
    reply: &Reply,
    read: usize,
    malformed: usize,
) -> String {
    let Reply::Imported {
        recorded,
        queued,
        too_old,
        ..
    } = reply
    else {
        return String::new();
    };
    let mut text = format!(
        "Read {} from {}",
        count(read as u64, "play", "plays"),
        path.display()
    );
    if malformed > 0 {
        text.push_str(&format!(
            " ({} skipped)",
            count(malformed as u64, "malformed record", "malformed records")
        ));
    }
    text.push_str(".\n");
    if config.history.enabled {
        text.push_str(&format!(
            "history: imported {} ({} there already)\n",
            count(*recorded, "play", "plays"),
            read as u64 - recorded.min(&(read as u64))
        ));
    }
    for name in config.target_names() {
        let q = queued.get(name).copied().unwrap_or(0);
        text.push_str(&format!("{name}: queued {}", count(q, "play", "plays")));
        match too_old.get(name).copied().unwrap_or(0) {
            0 => {}
            n => text.push_str(&format!(
                "; skipped {} (older than 14 days, which Last.fm ignores)",
                n
            )),
        }
        text.push('\n');
    }
    text
}
