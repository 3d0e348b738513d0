//! The control protocol, shared by the daemon and the commands: one
//! [`Request`] per line, answered by one [`Reply`] per line, each a JSON
//! value (serde's externally tagged enums: `"status"`, `{"love":true}`,
//! `{"import":[…]}`; `{"status":{…}}`, `{"error":"…"}`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::status::Status;
use crate::model::Listen;
use crate::queue::Imported;
use crate::store::{QueueCmd, QueueReply};

/// Longest `import` line: about 60,000 listens. `import` sends a larger
/// journal in several requests.
pub(crate) const IMPORT_LINE_LIMIT: usize = 16 << 20;
/// How an `import` request line starts, which earns it the longer limit.
pub(super) const IMPORT_PREFIX: &[u8] = b"{\"import\":";

/// A request the daemon understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Request {
    /// Re-read session keys and resume paused targets.
    Reload,
    /// A queue operation.
    Queue(QueueCmd),
    /// A batch of listens to import into the history and the queues (of
    /// `only`, for a backfill).
    Import {
        /// The listens (a bounded batch: [`import_requests`]).
        listens: Vec<Listen>,
        /// Only this target's queue.
        only: Option<String>,
    },
    /// The daemon's state.
    Status,
    /// Love (`true`) or unlove the playing track.
    Love(bool),
}

/// The daemon's answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Credentials re-read.
    Reloaded,
    /// The answer to `status`.
    Status(Box<Status>),
    /// A love or unlove was queued.
    Loved(Loved),
    /// The answer to a queue operation.
    Queue(QueueReply),
    /// Listens imported.
    Imported {
        /// New in the queues.
        added: u64,
        /// Already queued or delivered.
        skipped: u64,
        /// New in the history.
        #[serde(default)]
        recorded: u64,
        /// Per target: queued for it.
        #[serde(default)]
        queued: BTreeMap<String, u64>,
        /// Per target: left out as too old for it.
        #[serde(default)]
        too_old: BTreeMap<String, u64>,
    },
    /// The request failed; what to tell the user.
    Error(String),
}

/// What a love or unlove queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Loved {
    /// "love" or "unlove".
    pub queued: String,
    /// The track's artist.
    pub artist: String,
    /// The track's title.
    pub title: String,
}

impl From<&Imported> for Reply {
    /// The answer to an import batch.
    fn from(r: &Imported) -> Reply {
        let counts = |m: &BTreeMap<String, usize>| -> BTreeMap<String, u64> {
            m.iter().map(|(k, v)| (k.clone(), *v as u64)).collect()
        };
        Reply::Imported {
            added: r.added as u64,
            skipped: r.skipped as u64,
            recorded: r.recorded as u64,
            queued: counts(&r.queued),
            too_old: counts(&r.too_old),
        }
    }
}

impl Request {
    /// The request as it goes on the socket, newline included.
    pub(crate) fn to_line(&self) -> String {
        line(self)
    }

    /// A request line (newline optional).
    ///
    /// # Errors
    ///
    /// The line is not a request.
    pub(crate) fn parse(line: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(line)
    }
}

impl Reply {
    /// The reply as it goes on the socket, newline included.
    pub(crate) fn to_line(&self) -> String {
        line(self)
    }

    /// A reply line (newline optional).
    ///
    /// # Errors
    ///
    /// The line is not a reply.
    pub(crate) fn parse(line: &str) -> Result<Reply, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// One JSON line. Requests and replies hold strings, numbers and maps with
/// string keys only, which always serialise.
fn line(value: &impl Serialize) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::to_string(&Reply::Error(format!("cannot encode: {e}")))
            .unwrap_or_else(|_| "{\"error\":\"cannot encode\"}".into())
    });
    line.push('\n');
    line
}

/// `listens` as `import` requests, each within
/// [`IMPORT_LINE_LIMIT`](IMPORT_LINE_LIMIT).
pub(crate) fn import_requests(listens: &[Listen], only: Option<&str>) -> Vec<Request> {
    split_import(listens, only, IMPORT_LINE_LIMIT)
}

/// `listens` as `import` requests whose lines are at most `limit` bytes
/// (but at least one listen each).
fn split_import(listens: &[Listen], only: Option<&str>, limit: usize) -> Vec<Request> {
    // `{"import":[` and `]}`, then each listen and its comma.
    // The line of an empty batch: everything around the listens.
    let frame = Request::Import {
        listens: Vec::new(),
        only: only.map(str::to_owned),
    }
    .to_line()
    .len();
    let mut requests = Vec::new();
    let mut chunk: Vec<Listen> = Vec::new();
    let mut size = frame;
    for listen in listens {
        let len = serde_json::to_string(listen).map_or(0, |s| s.len()) + 1;
        if !chunk.is_empty() && size + len > limit {
            requests.push(Request::Import {
                listens: std::mem::take(&mut chunk),
                only: only.map(str::to_owned),
            });
            size = frame;
        }
        size += len;
        chunk.push(listen.clone());
    }
    if !chunk.is_empty() || requests.is_empty() {
        requests.push(Request::Import {
            listens: chunk,
            only: only.map(str::to_owned),
        });
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{MpdLink, Playing, Status, Storage, StorageState, TargetStatus};
    use crate::target_state::TargetState;

    fn listen(i: u64) -> Listen {
        Listen {
            track: crate::model::Track {
                artist: "a".repeat(100),
                title: format!("t{i}"),
                ..Default::default()
            },
            started_at: 1_700_000_000 + i,
        }
    }

    #[test]
    fn every_request_survives_the_wire() {
        let requests = [
            Request::Reload,
            Request::Status,
            Request::Love(true),
            Request::Love(false),
            Request::Queue(QueueCmd::List { rejected: true }),
            Request::Queue(QueueCmd::Flush),
            Request::Queue(QueueCmd::Retry),
            Request::Queue(QueueCmd::Drop {
                id: 7,
                target: Some("lastfm".into()),
            }),
            Request::Import {
                listens: vec![listen(1), listen(2)],
                only: None,
            },
            Request::Import {
                listens: vec![listen(1)],
                only: Some("lb".into()),
            },
        ];
        for r in requests {
            let line = r.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(Request::parse(&line).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn requests_have_a_readable_wire_form() {
        assert_eq!(Request::Status.to_line(), "\"status\"\n");
        assert_eq!(Request::Love(false).to_line(), "{\"love\":false}\n");
        assert_eq!(
            Request::parse("{\"queue\":{\"drop\":{\"id\":7,\"target\":null}}}").unwrap(),
            Request::Queue(QueueCmd::Drop {
                id: 7,
                target: None
            })
        );
        assert!(
            Request::Import {
                listens: vec![],
                only: None
            }
            .to_line()
            .as_bytes()
            .starts_with(IMPORT_PREFIX)
        );
        for bad in [
            "status",
            "\"shutdown\"",
            "{\"import\":{",
            "",
            "{\"love\":1}",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_reply_survives_the_wire() {
        let status = Status {
            history: crate::store::HistorySummary::Plays {
                plays: 3,
                first_started: None,
            },
            mpd: MpdLink {
                address: "localhost:6600".into(),
                connected: true,
            },
            playing: Some(Playing {
                artist: "A".into(),
                needed_secs: Some(120),
                played_secs: 12,
                qualified: false,
                title: "T".into(),
                counts_at_end_secs: None,
                recorded: false,
                queued_for: vec!["lastfm".into()],
                delivered_to: Vec::new(),
            }),
            plays_recorded: 7,
            storage: Storage {
                dir: "/var/lib/x".into(),
                dropped: 0,
                fix: Some("free space".into()),
                held: 2,
                state: StorageState::Full,
                why: Some("ENOSPC".into()),
            },
            targets: vec![
                TargetStatus {
                    deliveries: crate::target_state::Deliveries {
                        accepted: 5,
                        ignored: 1,
                        rejected: 0,
                        failed: [("transient".to_owned(), 2)].into(),
                    },
                    last_success: Some(1_700_000_000),
                    name: "lastfm".into(),
                    oldest_started: None,
                    oldest_secs: None,
                    queued: 4,
                    rejected: 1,
                    state: TargetState::Retrying {
                        at: 1_700_000_060,
                        why: "HTTP 503".into(),
                    },
                },
                TargetStatus {
                    deliveries: crate::target_state::Deliveries::default(),
                    last_success: None,
                    name: "lb".into(),
                    oldest_started: Some(1_700_000_000),
                    oldest_secs: Some(60),
                    queued: 0,
                    rejected: 0,
                    state: TargetState::Paused {
                        why: "no token".into(),
                        fix: "run `mpd-scrobbler auth listenbrainz`".into(),
                    },
                },
            ],
        };
        let items = crate::queue::Item {
            id: 3,
            listen: listen(3),
            reason: None,
        };
        let replies = [
            Reply::Reloaded,
            Reply::Status(Box::new(status)),
            Reply::Loved(Loved {
                queued: "love".into(),
                artist: "A".into(),
                title: "T".into(),
            }),
            Reply::Queue(QueueReply::Listed(BTreeMap::from([(
                "lastfm".to_owned(),
                vec![items],
            )]))),
            Reply::Queue(QueueReply::Dropped(vec!["lastfm".into()])),
            Reply::Queue(QueueReply::Retried(BTreeMap::from([("lb".to_owned(), 2)]))),
            Reply::Queue(QueueReply::Flushed(2)),
            Reply::Imported {
                added: 3,
                skipped: 1,
                recorded: 3,
                queued: BTreeMap::from([("lastfm".to_owned(), 2)]),
                too_old: BTreeMap::from([("lastfm".to_owned(), 1)]),
            },
            Reply::Error("no".into()),
        ];
        for r in replies {
            let line = r.to_line();
            assert_eq!(Reply::parse(&line).unwrap(), r, "{line}");
        }
    }

    #[test]
    fn queue_replies_print_as_queue_json_always_did() {
        let v = |r: &QueueReply| serde_json::to_value(r).unwrap();
        assert_eq!(
            v(&QueueReply::Dropped(vec!["a".into()])),
            serde_json::json!({"dropped": ["a"]})
        );
        assert_eq!(
            v(&QueueReply::Listed(BTreeMap::new())),
            serde_json::json!({"targets": {}})
        );
        assert_eq!(
            v(&QueueReply::Retried(BTreeMap::from([("a".to_owned(), 1)]))),
            serde_json::json!({"retried": {"a": 1}})
        );
        assert_eq!(Reply::Error("x".into()).to_line(), "{\"error\":\"x\"}\n");
    }

    #[test]
    fn a_large_import_is_split_into_requests_within_the_limit() {
        let listens: Vec<Listen> = (0..200).map(listen).collect();
        let limit = 4096;
        let requests = split_import(&listens, None, limit);
        assert!(requests.len() > 5, "{}", requests.len());
        let mut back = Vec::new();
        for r in &requests {
            let line = r.to_line();
            assert!(line.trim_end().len() <= limit, "{}", line.len());
            let Ok(Request::Import { listens: chunk, .. }) = Request::parse(&line) else {
                panic!("not an import: {line}");
            };
            back.extend(chunk);
        }
        assert_eq!(back, listens);
        let one = |listens| Request::Import {
            listens,
            only: None,
        };
        assert_eq!(import_requests(&[], None), [one(vec![])]);
        assert_eq!(import_requests(&listens, None), [one(listens)]);
    }
}
