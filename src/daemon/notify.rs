//! What systemd hears (`Type=notify`): ready once the daemon follows MPD
//! (or retries it), the queue depth per target as the status line, and
//! stopping. Each is a no-op outside systemd. The watchdog is `watchdog.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::events::{Event, Events};
use crate::store::DepthReport;

/// Start-up is done; only the first call sends anything.
pub(super) fn ready() {
    static SENT: std::sync::Once = std::sync::Once::new();
    SENT.call_once(|| {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    });
}

/// Shutdown has begun.
pub(super) fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// What shows the queue depth per target in `systemctl status`, and tells
/// `events` when a target's oldest queued play changes, for the storage
/// thread to call after each write that changes them; `None` outside
/// systemd when no notification is configured.
pub(super) fn depth_report(events: Events) -> Option<DepthReport> {
    let systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    if !systemd && !events.is_active() {
        return None;
    }
    let told: Mutex<HashMap<String, Option<u64>>> = Mutex::default();
    // The storage thread reports once at start, for the notifications:
    // systemd hears READY=1 before any status line.
    let started = AtomicBool::new(false);
    Some(Box::new(move |depths| {
        if systemd && started.swap(true, Ordering::Relaxed) {
            let text: Vec<String> = depths
                .iter()
                .map(|d| format!("{}: {} queued", d.name, d.queued))
                .collect();
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&text.join(", "))]);
        }
        let mut told = told.lock().unwrap_or_else(|e| e.into_inner());
        for d in depths {
            if told.get(d.name) != Some(&d.oldest) {
                told.insert(d.name.to_owned(), d.oldest);
                events.send(Event::Oldest {
                    target: d.name.to_owned(),
                    started: d.oldest,
                });
            }
        }
    }))
}
