//! The listening history in SQLite: `<state dir>/history.sqlite`, in WAL
//! mode so commands read it while the daemon (or an import) writes, with
//! `busy_timeout` so two writers wait for each other rather than fail.
//!
//! Tables:
//! - `artists`: each distinct artist once, with its lowercased name, so
//!   `--artist X` (a case-insensitive substring) scans the artists, not the
//!   plays, then reads the plays through the index on `plays(artist, ...)`;
//! - `plays`: one row per play, unique on (start time, artist, title), the
//!   key servers match listens on, so a duplicate is never stored twice;
//!   `queue_key` is the key its queue entries carry (none for plays never
//!   queued);
//! - `marks`: per play and target, queued (no `delivered_at`) or delivered;
//! - `counts`: the number of plays, kept by triggers, so `status` needs no
//!   scan;
//! - `cursors`: where a resumable import stopped, written in the same
//!   transaction as the plays it covers.
//!
//! Durability: a connection commits with `synchronous=FULL` (the WAL is
//! fsynced at each commit) unless it asked for a lax commit
//! ([`HistoryDb::apply`] with `durable == false`). In WAL mode a later full
//! commit makes every earlier lax one durable too, in order.

use std::ops::ControlFlow;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::history::{Change, Filter, Record};
use crate::model::{Listen, Track};
use crate::queue::Known;

/// The file's name in the state directory.
pub(crate) const FILE: &str = "history.sqlite";

/// How long a writer waits for another one before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema's version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS artists (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    lower TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plays (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    artist INTEGER NOT NULL REFERENCES artists(id),
    title TEXT NOT NULL,
    album TEXT,
    album_artist TEXT,
    track_number INTEGER,
    duration_secs INTEGER,
    recording_mbid TEXT,
    release_mbid TEXT,
    release_group_mbid TEXT,
    track_mbid TEXT,
    artist_mbids TEXT,
    stream_url TEXT,
    uri TEXT,
    played_secs INTEGER,
    queue_key INTEGER,
    UNIQUE (started_at, artist, title)
);
CREATE INDEX IF NOT EXISTS plays_by_artist ON plays(artist, started_at);
CREATE INDEX IF NOT EXISTS plays_by_queue_key ON plays(queue_key) WHERE queue_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS marks (
    play INTEGER NOT NULL,
    target TEXT NOT NULL,
    delivered_at INTEGER,
    PRIMARY KEY (play, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO counts VALUES ('plays', 0);
CREATE TABLE IF NOT EXISTS cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS play_added AFTER INSERT ON plays BEGIN
    UPDATE counts SET n = n + 1 WHERE name = 'plays';
END;
CREATE TRIGGER IF NOT EXISTS play_removed AFTER DELETE ON plays BEGIN
    UPDATE counts SET n = n - 1 WHERE name = 'plays';
    DELETE FROM marks WHERE play = old.id;
END;
";

/// The columns of `plays` [`read_play`] reads, in its order.
const PLAY_COLUMNS: &str = "p.id, p.started_at, a.name, p.title, p.album, p.album_artist, \
     p.track_number, p.duration_secs, p.recording_mbid, p.release_mbid, p.release_group_mbid, \
     p.track_mbid, p.artist_mbids, p.stream_url, p.uri, p.played_secs, p.queue_key";

/// A failure of the history database.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
    /// SQLite failed.
    #[error("history database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// Creating the file or syncing its directory failed.
    #[error("history database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// What [`HistoryDb::import_delivered`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ImportCount {
    /// Plays new to the history.
    pub(crate) added: usize,
    /// Plays it had already.
    pub(crate) duplicates: usize,
}

/// One play as read back, with its row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The row id (stable while the play is kept).
    pub(crate) id: i64,
    /// The play (its `queued` and `delivered` are empty unless asked for).
    pub(crate) record: Record,
    /// The key its queue entries carry, if it was queued by the daemon.
    pub(crate) queue_key: Option<u64>,
}

/// One play as `stats` reads it, borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatsPlay<'a> {
    /// Start.
    pub(crate) started_at: u64,
    /// Artist.
    pub(crate) artist: &'a str,
    /// Title.
    pub(crate) title: &'a str,
    /// Album.
    pub(crate) album: Option<&'a str>,
    /// Album artist.
    pub(crate) album_artist: Option<&'a str>,
    /// Seconds listened: the play time, or the track's length.
    pub(crate) listened: u64,
}

/// The history database: one connection.
#[derive(Debug)]
pub(crate) struct HistoryDb {
    conn: Connection,
    path: PathBuf,
}

impl HistoryDb {
    /// Open (creating if needed) `<state_dir>/history.sqlite` for writing.
    pub(crate) fn open_writer(state_dir: &Path) -> Result<HistoryDb, HistoryError> {
        let path = state_dir.join(FILE);
        let created = !path.exists();
        if created {
            // Private, as every state directory the program makes.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(|source| HistoryError::Io {
                    path: path.clone(),
                    source,
                })?;
        }
        let conn = Connection::open(&path).map_err(|source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let db = HistoryDb { conn, path };
        db.setup()?;
        if created {
            // The file's entry (and the WAL's, made by the first write) are
            // durable only once the directory is synced.
            sync_dir(state_dir).map_err(|source| HistoryError::Io {
                path: db.path.clone(),
                source,
            })?;
        }
        Ok(db)
    }

    /// Open the history for reading; `None` when there is none yet.
    pub(crate) fn open_reader(state_dir: &Path) -> Result<Option<HistoryDb>, HistoryError> {
        let path = state_dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        // Read-write flags so a reader can take part in WAL recovery when
        // it is the first to open the file after a crash; it writes nothing.
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let db = HistoryDb { conn, path };
        db.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| db.err(e))?;
        if db.schema_version()? < SCHEMA_VERSION {
            // Created but never set up (a writer cut off at its start).
            return Ok(None);
        }
        Ok(Some(db))
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn schema_version(&self) -> Result<i64, HistoryError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn setup(&self) -> Result<(), HistoryError> {
        let c = &self.conn;
        c.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        // WAL: readers never block the writer; FULL: the WAL is synced at
        // each commit; a small page cache: the daemon's memory stays flat
        // whatever the history's size.
        c.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        c.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        c.pragma_update(None, "cache_size", -512)
            .map_err(|e| self.err(e))?;
        if self.schema_version()? < SCHEMA_VERSION {
            let tx = c.unchecked_transaction().map_err(|e| self.err(e))?;
            tx.execute_batch(SCHEMA).map_err(|e| self.err(e))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Number of plays (kept by triggers: no scan).
    pub(crate) fn len(&self) -> Result<u64, HistoryError> {
        self.conn
            .query_row("SELECT n FROM counts WHERE name = 'plays'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// Start time of the first play (through the index).
    pub(crate) fn first_started(&self) -> Result<Option<u64>, HistoryError> {
        self.conn
            .query_row("SELECT min(started_at) FROM plays", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map(|t| t.map(to_u64))
            .map_err(|e| self.err(e))
    }

    /// Plays taken from a server's own record: into the history as already
    /// delivered to `target` (when `Some`, the configured target's name),
    /// skipping duplicates (same start time, artist and title; a duplicate
    /// gains the delivered mark). `cursor` (key, value) is stored in the
    /// same synced transaction, so a resumed import continues exactly
    /// where the last committed batch ended.
    pub(crate) fn import_delivered(
        &mut self,
        listens: &[Listen],
        target: Option<&str>,
        cursor: Option<(&str, &str)>,
    ) -> Result<ImportCount, HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut count = ImportCount::default();
        for listen in listens {
            let (id, added) = insert_play(&tx, listen, None, None, None).map_err(err)?;
            if added {
                count.added += 1;
            } else {
                count.duplicates += 1;
            }
            if let Some(t) = target {
                mark(&tx, id, t, Some(listen.started_at)).map_err(err)?;
            }
        }
        if let Some((k, v)) = cursor {
            tx.execute(
                "INSERT INTO cursors (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(count)
    }

    /// The value last stored for this cursor key.
    #[allow(
        dead_code,
        reason = "read by the resumable API imports (issue 22, part 3)"
    )]
    pub(crate) fn cursor(&self, key: &str) -> Result<Option<String>, HistoryError> {
        self.conn
            .query_row("SELECT value FROM cursors WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Apply changes from the queue's outbox, in one transaction. Applying
    /// one twice changes nothing. `durable`: the commit is synced before
    /// this returns; otherwise it is durable with the next synced commit.
    pub(crate) fn apply(&mut self, changes: &[Change], durable: bool) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let level = if durable { "FULL" } else { "NORMAL" };
        self.conn
            .pragma_update(None, "synchronous", level)
            .map_err(err)?;
        let tx = self.conn.transaction().map_err(err)?;
        // Plays first: a mark refers to a play, perhaps one in this batch.
        let mut ordered: Vec<&Change> = changes.iter().collect();
        ordered.sort_by_key(|c| match c {
            Change::Play { .. } => 0,
            _ => 1,
        });
        for change in ordered {
            apply_one(&tx, change).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        if !durable {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(err)?;
        }
        Ok(())
    }

    /// The plays `filter` selects, oldest first, each handed to `each` as it
    /// is read (with its marks when `marks`); `each` may stop the walk.
    pub(crate) fn select(
        &self,
        filter: &Filter,
        marks: bool,
        mut each: impl FnMut(Row) -> ControlFlow<()>,
    ) -> Result<(), HistoryError> {
        let since = filter.since.map_or(0, to_i64);
        let until = filter.until.map_or(i64::MAX, to_i64);
        let artist = filter.artist.as_ref().map(|a| a.to_lowercase());
        let artist_clause = match artist {
            Some(_) => "AND p.artist IN (SELECT id FROM artists WHERE instr(lower, ?3) > 0)",
            None => "AND ?3 IS NULL",
        };
        // The last N: the newest N, read back in time order.
        let sql = match filter.limit {
            Some(_) => format!(
                "SELECT * FROM (SELECT {PLAY_COLUMNS} FROM plays p JOIN artists a ON a.id = p.artist \
                 WHERE p.started_at >= ?1 AND p.started_at < ?2 {artist_clause} \
                 ORDER BY p.started_at DESC, p.id DESC LIMIT ?4) ORDER BY 2, 1"
            ),
            None => format!(
                "SELECT {PLAY_COLUMNS} FROM plays p JOIN artists a ON a.id = p.artist \
                 WHERE p.started_at >= ?1 AND p.started_at < ?2 {artist_clause} \
                 AND ?4 IS NULL ORDER BY p.started_at, p.id"
            ),
        };
        let limit = filter.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut marks_stmt = match marks {
            true => Some(
                self.conn
                    .prepare("SELECT target, delivered_at FROM marks WHERE play = ?1")
                    .map_err(|e| self.err(e))?,
            ),
            false => None,
        };
        let mut rows = stmt
            .query(params![since, until, artist, limit])
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let mut row = read_play(r).map_err(|e| self.err(e))?;
            if let Some(m) = &mut marks_stmt {
                let mut ms = m.query([row.id]).map_err(|e| self.err(e))?;
                while let Some(mr) = ms.next().map_err(|e| self.err(e))? {
                    let target: String = mr.get(0).map_err(|e| self.err(e))?;
                    if let Some(at) = mr.get::<_, Option<i64>>(1).map_err(|e| self.err(e))? {
                        row.record.delivered.insert(target.clone(), to_u64(at));
                    }
                    row.record.queued.push(target);
                }
            }
            if each(row).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The plays since `since` that `target` has not (no mark), with row
    /// ids above `after`, in row order: at most `n`, and the last row id.
    pub(crate) fn lacking(
        &self,
        target: &str,
        since: Option<u64>,
        after: i64,
        n: usize,
    ) -> Result<(Vec<Listen>, i64), HistoryError> {
        let sql = format!(
            "SELECT {PLAY_COLUMNS} FROM plays p JOIN artists a ON a.id = p.artist \
             WHERE p.id > ?1 AND p.started_at >= ?2 AND NOT EXISTS \
             (SELECT 1 FROM marks m WHERE m.play = p.id AND m.target = ?3) \
             ORDER BY p.id LIMIT ?4"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![after, since.map_or(0, to_i64), target, limit],
                read_play,
            )
            .and_then(|rows| rows.collect::<Result<Vec<Row>, _>>())
            .map_err(|e| self.err(e))?;
        let last = rows.last().map_or(after, |r| r.id);
        Ok((rows.into_iter().map(|r| r.record.listen).collect(), last))
    }

    /// How many plays since `since` `target` has (queued or delivered).
    pub(crate) fn count_held(&self, target: &str, since: Option<u64>) -> Result<u64, HistoryError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM marks m JOIN plays p ON p.id = m.play \
                 WHERE m.target = ?1 AND p.started_at >= ?2",
                params![target, since.map_or(0, to_i64)],
                |r| r.get::<_, i64>(0),
            )
            .map(to_u64)
            .map_err(|e| self.err(e))
    }

    /// The figures `stats` needs of each play since `since`, read with no
    /// more than those columns: the artists' names from one read of their
    /// table, not a join per play, and all time as a plain walk of the
    /// table (the start-time index would add a seek per play).
    pub(crate) fn for_stats(
        &self,
        since: Option<u64>,
        mut each: impl FnMut(StatsPlay<'_>),
    ) -> Result<(), HistoryError> {
        let mut artists = rustc_hash::FxHashMap::default();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT id, name FROM artists")
                .map_err(|e| self.err(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let id: i64 = r.get(0).map_err(|e| self.err(e))?;
                let name: String = r.get(1).map_err(|e| self.err(e))?;
                artists.insert(id, name);
            }
        }
        let columns = "SELECT started_at, artist, title, album, album_artist, \
                       coalesce(played_secs, duration_secs, 0) FROM plays";
        let sql = match since {
            Some(_) => format!("{columns} WHERE started_at >= ?1"),
            None => format!("{columns} WHERE ?1 IS NULL"),
        };
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([since.map(to_i64)]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let text = |i| {
                r.get_ref(i)
                    .ok()
                    .and_then(|v| v.as_str_or_null().ok().flatten())
            };
            let artist: i64 = r.get(1).map_err(|e| self.err(e))?;
            each(StatsPlay {
                started_at: to_u64(r.get(0).map_err(|e| self.err(e))?),
                artist: artists.get(&artist).map_or("", String::as_str),
                title: text(2).unwrap_or_default(),
                album: text(3),
                album_artist: text(4),
                listened: to_u64(r.get(5).map_err(|e| self.err(e))?),
            });
        }
        Ok(())
    }

    /// What the history knows of the play with this start time, artist
    /// and title: its queue key and the targets that have it (queued or
    /// delivered); `None` when the history lacks it.
    pub(crate) fn known(&self, listen: &Listen) -> Result<Option<Known>, HistoryError> {
        let found: Option<(i64, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT p.id, p.queue_key FROM plays p JOIN artists a ON a.id = p.artist \
                 WHERE p.started_at = ?1 AND a.name = ?2 AND p.title = ?3",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        to_i64(listen.started_at),
                        listen.track.artist,
                        listen.track.title
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some((id, queue_key)) = found else {
            return Ok(None);
        };
        let mut s = self
            .conn
            .prepare_cached("SELECT target FROM marks WHERE play = ?1")
            .map_err(|e| self.err(e))?;
        let holders = s
            .query_map([id], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(Some(Known {
            queue_key: queue_key.map(key_u64),
            holders,
        }))
    }

    /// Plays from elsewhere that no target takes: into the history only,
    /// synced; a duplicate is skipped. How many were new.
    pub(crate) fn import_plays(&mut self, listens: &[Listen]) -> Result<ImportCount, HistoryError> {
        self.import_delivered(listens, None, None)
    }

    /// Forget plays that started before `before`, except those still
    /// queued somewhere (`waiting(queue_key)`): the history keeps
    /// everything the queues hold. Walks only the plays it removes (through
    /// the start-time index). How many went.
    pub(crate) fn prune(
        &mut self,
        before: u64,
        waiting: impl Fn(u64) -> bool,
    ) -> Result<usize, HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut removed = 0;
        {
            let mut sel = tx
                .prepare("SELECT id, queue_key FROM plays WHERE started_at < ?1")
                .map_err(err)?;
            let mut del = tx.prepare("DELETE FROM plays WHERE id = ?1").map_err(err)?;
            let mut rows = sel.query([to_i64(before)]).map_err(err)?;
            while let Some(r) = rows.next().map_err(err)? {
                let id: i64 = r.get(0).map_err(err)?;
                let key: Option<i64> = r.get(1).map_err(err)?;
                if key.is_some_and(|k| waiting(key_u64(k))) {
                    continue;
                }
                del.execute([id]).map_err(err)?;
                removed += 1;
            }
        }
        tx.commit().map_err(err)?;
        Ok(removed)
    }
}

/// Insert `listen` unless the history has it; its row id and whether it
/// was new.
fn insert_play(
    tx: &rusqlite::Transaction<'_>,
    listen: &Listen,
    uri: Option<&str>,
    played_secs: Option<u64>,
    queue_key: Option<u64>,
) -> rusqlite::Result<(i64, bool)> {
    let t = &listen.track;
    let artist = artist_id(tx, &t.artist)?;
    let mbids = (!t.artist_mbids.is_empty()).then(|| t.artist_mbids.join(" "));
    let added =
        tx.prepare_cached(
            "INSERT INTO plays (started_at, artist, title, album, album_artist, track_number, \
             duration_secs, recording_mbid, release_mbid, release_group_mbid, track_mbid, \
             artist_mbids, stream_url, uri, played_secs, queue_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
             ON CONFLICT (started_at, artist, title) DO NOTHING",
        )?
        .execute(params![
            to_i64(listen.started_at),
            artist,
            t.title,
            t.album,
            t.album_artist,
            t.track_number,
            t.duration_secs.map(to_i64),
            t.recording_mbid,
            t.release_mbid,
            t.release_group_mbid,
            t.track_mbid,
            mbids,
            t.stream_url,
            uri,
            played_secs.map(to_i64),
            queue_key.map(key_i64),
        ])? == 1;
    if added {
        return Ok((tx.last_insert_rowid(), true));
    }
    let id = tx
        .prepare_cached(
            "SELECT id FROM plays WHERE started_at = ?1 AND artist = ?2 AND title = ?3",
        )?
        .query_row(params![to_i64(listen.started_at), artist, t.title], |r| {
            r.get(0)
        })?;
    if let Some(k) = queue_key {
        // A play imported first and queued later: its queue key, so that
        // delivery marks find it.
        tx.prepare_cached("UPDATE plays SET queue_key = ?2 WHERE id = ?1 AND queue_key IS NULL")?
            .execute(params![id, key_i64(k)])?;
    }
    Ok((id, false))
}

fn artist_id(tx: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
    if let Some(id) = tx
        .prepare_cached("SELECT id FROM artists WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO artists (name, lower) VALUES (?1, ?2)")?
        .execute(params![name, name.to_lowercase()])?;
    Ok(tx.last_insert_rowid())
}

/// Note `target` as holding play `id`: queued (`delivered == None`) or
/// delivered; a delivered mark is never turned back to queued.
fn mark(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    target: &str,
    delivered: Option<u64>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO marks (play, target, delivered_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (play, target) DO UPDATE SET \
         delivered_at = coalesce(marks.delivered_at, excluded.delivered_at)",
    )?
    .execute(params![id, target, delivered.map(to_i64)])?;
    Ok(())
}

fn apply_one(tx: &rusqlite::Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::Play { key, record } => {
            let (id, _) = insert_play(
                tx,
                &record.listen,
                record.uri.as_deref(),
                record.played_secs,
                Some(*key),
            )?;
            for t in &record.queued {
                mark(tx, id, t, None)?;
            }
            for (t, at) in &record.delivered {
                mark(tx, id, t, Some(*at))?;
            }
        }
        Change::Queued { key, target } | Change::Delivered { key, target, .. } => {
            let at = match change {
                Change::Delivered { at, .. } => Some(*at),
                _ => None,
            };
            let id: Option<i64> = tx
                .prepare_cached("SELECT id FROM plays WHERE queue_key = ?1")?
                .query_row([key_i64(*key)], |r| r.get(0))
                .optional()?;
            // A play queued before the history existed has no record.
            if let Some(id) = id {
                mark(tx, id, target, at)?;
            }
        }
        Change::Played {
            started_at,
            artist,
            title,
            secs,
        } => {
            tx.prepare_cached(
                "UPDATE plays SET played_secs = ?4 WHERE started_at = ?1 AND title = ?3 \
                 AND artist = (SELECT id FROM artists WHERE name = ?2)",
            )?
            .execute(params![to_i64(*started_at), artist, title, to_i64(*secs)])?;
        }
    }
    Ok(())
}

fn read_play(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let mbids: Option<String> = r.get(12)?;
    let listen = Listen {
        track: Track {
            artist: r.get(2)?,
            title: r.get(3)?,
            album: r.get(4)?,
            album_artist: r.get(5)?,
            track_number: r.get(6)?,
            duration_secs: r.get::<_, Option<i64>>(7)?.map(to_u64),
            recording_mbid: r.get(8)?,
            release_mbid: r.get(9)?,
            release_group_mbid: r.get(10)?,
            track_mbid: r.get(11)?,
            artist_mbids: mbids
                .map(|m| m.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            stream_url: r.get(13)?,
            ..Track::default()
        },
        started_at: to_u64(r.get(1)?),
    };
    let mut record = Record::new(&listen, &crate::history::PlayInfo::default(), &[]);
    record.uri = r.get(14)?;
    record.played_secs = r.get::<_, Option<i64>>(15)?.map(to_u64);
    Ok(Row {
        id: r.get(0)?,
        record,
        queue_key: r.get::<_, Option<i64>>(16)?.map(key_u64),
    })
}

/// Seconds as SQLite stores them (times after 2262 saturate).
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A queue key, stored bit for bit (SQLite integers are signed).
#[allow(clippy::cast_possible_wrap)]
fn key_i64(k: u64) -> i64 {
    k as i64
}

#[allow(clippy::cast_sign_loss)]
fn key_u64(k: i64) -> u64 {
    k as u64
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The history's part of `status` (its JSON: `{"plays": N,
/// "first_started": T}`, `{"enabled": false}` or `{"error": "…"}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum HistorySummary {
    /// The history's size, kept by the database (no scan).
    Plays {
        /// Number of plays.
        plays: u64,
        /// Start of the first one.
        first_started: Option<u64>,
    },
    /// It cannot be read.
    Error {
        /// Why.
        error: String,
    },
    /// Switched off (`[history] enabled = false`).
    Off {
        /// Always `false`.
        enabled: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::PlayInfo;

    fn listen(t: u64, artist: &str, title: &str) -> Listen {
        Listen {
            track: Track {
                artist: artist.into(),
                title: title.into(),
                album: Some("Takk...".into()),
                duration_secs: Some(268),
                artist_mbids: vec!["a".into(), "b".into()],
                ..Track::default()
            },
            started_at: t,
        }
    }

    fn all(db: &HistoryDb, filter: &Filter) -> Vec<Record> {
        let mut out = Vec::new();
        db.select(filter, true, |r| {
            out.push(r.record);
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn import_skips_duplicates_marks_them_and_stores_the_cursor_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = HistoryDb::open_writer(dir.path()).unwrap();
        let a = listen(1000, "Sigur Rós", "Hoppípolla");
        let b = listen(1010, "AC/DC", "T.N.T.");
        let n = db
            .import_delivered(std::slice::from_ref(&a), None, None)
            .unwrap();
        assert_eq!((n.added, n.duplicates), (1, 0));
        let n = db
            .import_delivered(
                &[a.clone(), b.clone()],
                Some("lastfm"),
                Some(("lastfm:me", "7")),
            )
            .unwrap();
        assert_eq!((n.added, n.duplicates), (1, 1));
        assert_eq!(db.cursor("lastfm:me").unwrap().as_deref(), Some("7"));
        assert_eq!(db.cursor("other").unwrap(), None);
        assert_eq!(db.len().unwrap(), 2);
        let got = all(&db, &Filter::default());
        assert_eq!(got[0].listen, a, "every tag reads back");
        assert_eq!(got[0].delivered.get("lastfm"), Some(&1000));
        let known = db.known(&b).unwrap().unwrap();
        assert_eq!(known.holders, ["lastfm"]);
        assert_eq!(known.queue_key, None);
        assert_eq!(db.known(&listen(1, "x", "y")).unwrap(), None);
        // A reader sees it all, while the writer is open.
        let r = HistoryDb::open_reader(dir.path()).unwrap().unwrap();
        assert_eq!(r.len().unwrap(), 2);
        assert_eq!(r.first_started().unwrap(), Some(1000));
    }

    #[test]
    fn changes_apply_once_however_often_they_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(HistoryDb::open_reader(dir.path()).unwrap().is_none());
        let mut db = HistoryDb::open_writer(dir.path()).unwrap();
        let l = listen(2000, "A", "T");
        let changes = [
            Change::Delivered {
                key: 7,
                target: "lb".into(),
                at: 2100,
            },
            Change::Play {
                key: 7,
                record: Box::new(Record::new(
                    &l,
                    &PlayInfo {
                        uri: Some("a.flac".into()),
                        played_secs: Some(60),
                        ended: false,
                    },
                    &["lb".into(), "lastfm".into()],
                )),
            },
            Change::Played {
                started_at: 2000,
                artist: "A".into(),
                title: "T".into(),
                secs: 250,
            },
        ];
        db.apply(&changes, false).unwrap();
        db.apply(&changes, true).unwrap();
        db.apply(
            &[Change::Queued {
                key: 7,
                target: "lb".into(),
            }],
            true,
        )
        .unwrap();
        assert_eq!(db.len().unwrap(), 1);
        let got = all(&db, &Filter::default());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].played_secs, Some(250));
        assert_eq!(got[0].uri.as_deref(), Some("a.flac"));
        assert_eq!(
            got[0].delivered.get("lb"),
            Some(&2100),
            "never back to queued"
        );
        let mut queued = got[0].queued.clone();
        queued.sort();
        assert_eq!(queued, ["lastfm", "lb"]);
    }

    #[test]
    fn select_by_time_artist_and_last_n_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = HistoryDb::open_writer(dir.path()).unwrap();
        let listens: Vec<Listen> = (0..10u64)
            .map(|i| {
                let artist = if i % 2 == 0 { "Sigur Rós" } else { "AC/DC" };
                listen(1000 + i * 10, artist, &format!("t{i}"))
            })
            .collect();
        db.import_delivered(&listens, None, None).unwrap();
        let times =
            |f: &Filter| -> Vec<u64> { all(&db, f).iter().map(|r| r.listen.started_at).collect() };
        assert_eq!(times(&Filter::default()).len(), 10);
        let f = Filter {
            since: Some(1020),
            until: Some(1060),
            ..Filter::default()
        };
        assert_eq!(times(&f), [1020, 1030, 1040, 1050]);
        let f = Filter {
            artist: Some("SIGUR RÓS".into()),
            limit: Some(2),
            ..Filter::default()
        };
        assert_eq!(times(&f), [1060, 1080]);
        let mut seen = 0;
        db.select(&Filter::default(), false, |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1, "the walk stops when asked");
        assert_eq!(db.prune(1030, |_| false).unwrap(), 3);
        assert_eq!(db.len().unwrap(), 7);
        assert_eq!(db.first_started().unwrap(), Some(1030));
    }
}
