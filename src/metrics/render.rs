//! The Prometheus text format of the daemon's figures, and the health
//! verdict, from the same [`Status`] that `status --json` prints.

use std::fmt::Write;

use crate::control::{Status, StorageState};
use crate::target_state::{FAILURE_KINDS, TargetState};

/// One metric family: its header, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP mpd_scrobbler_{name} {help}");
        let _ = writeln!(out, "# TYPE mpd_scrobbler_{name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.out, "mpd_scrobbler_{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of `status`.
pub(crate) fn metrics(status: &Status) -> String {
    let mut out = String::with_capacity(4096);
    let targets = &status.targets;
    let mut f = Family::new(
        &mut out,
        "build_info",
        "gauge",
        "The running version, as a label; always 1.",
    );
    f.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    let mut f = Family::new(
        &mut out,
        "plays_recorded_total",
        "counter",
        "Plays written to the queue and history since the daemon started.",
    );
    f.sample("plays_recorded_total", &[], status.plays_recorded);
    let mut f = Family::new(
        &mut out,
        "plays_held",
        "gauge",
        "Plays held in memory because the state directory cannot be written.",
    );
    f.sample("plays_held", &[], status.storage.held);
    let mut f = Family::new(
        &mut out,
        "storage_writable",
        "gauge",
        "1 while plays can be written to the state directory.",
    );
    f.sample(
        "storage_writable",
        &[],
        u64::from(status.storage.state == StorageState::Ok),
    );
    let mut f = Family::new(
        &mut out,
        "mpd_connected",
        "gauge",
        "1 while the daemon follows MPD.",
    );
    f.sample("mpd_connected", &[], u64::from(status.mpd.connected));
    if let Some(n) = status.history_len() {
        let mut f = Family::new(
            &mut out,
            "history_plays",
            "gauge",
            "Plays in the local history.",
        );
        f.sample("history_plays", &[], n);
    }
    let mut f = Family::new(
        &mut out,
        "queued_plays",
        "gauge",
        "Scrobbles waiting in each target's queue.",
    );
    for t in targets {
        f.sample("queued_plays", &[("target", &t.name)], t.queued);
    }
    let mut f = Family::new(
        &mut out,
        "oldest_queued_timestamp_seconds",
        "gauge",
        "Start time of the oldest queued scrobble per target (absent when none waits).",
    );
    for t in targets {
        if let Some(at) = t.oldest_started {
            f.sample(
                "oldest_queued_timestamp_seconds",
                &[("target", &t.name)],
                at,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "last_success_timestamp_seconds",
        "gauge",
        "Time of the last successful delivery per target (absent before the first).",
    );
    for t in targets {
        if let Some(at) = t.last_success {
            f.sample("last_success_timestamp_seconds", &[("target", &t.name)], at);
        }
    }
    let mut f = Family::new(
        &mut out,
        "target_state",
        "gauge",
        "1 for each target's current delivery state (ok, retrying, paused).",
    );
    for t in targets {
        for state in ["ok", "retrying", "paused"] {
            let now = match t.state {
                TargetState::Ok => "ok",
                TargetState::Retrying { .. } => "retrying",
                TargetState::Paused { .. } => "paused",
            };
            f.sample(
                "target_state",
                &[("target", &t.name), ("state", state)],
                u64::from(now == state),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "deliveries_total",
        "counter",
        "Scrobbles accepted, ignored or rejected by each target, and requests failed by kind, \
         since the daemon started.",
    );
    for t in targets {
        let d = &t.deliveries;
        for (outcome, n) in [
            ("accepted", d.accepted),
            ("ignored", d.ignored),
            ("rejected", d.rejected),
        ] {
            f.sample(
                "deliveries_total",
                &[("target", &t.name), ("outcome", outcome), ("kind", "")],
                n,
            );
        }
        for (_, kind) in FAILURE_KINDS {
            let n = d.failed.get(kind).copied().unwrap_or(0);
            f.sample(
                "deliveries_total",
                &[("target", &t.name), ("outcome", "failed"), ("kind", kind)],
                n,
            );
        }
    }
    out
}

/// What keeps the daemon from doing its main job, one problem a part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub(crate) struct Unhealthy(Vec<String>);

/// `Ok` while the watcher follows MPD and the writer can write; otherwise
/// why not.
pub(crate) fn health(status: &Status) -> Result<(), Unhealthy> {
    let mut problems = Vec::new();
    if !status.mpd.connected {
        problems.push(format!("MPD at {} is not connected", status.mpd.address));
    }
    if status.storage.state != StorageState::Ok {
        problems.push(format!(
            "plays cannot be written to {}: {}",
            status.storage.dir.display(),
            status
                .storage
                .why
                .as_deref()
                .unwrap_or("the queue database is being opened again")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Unhealthy(problems))
    }
}
