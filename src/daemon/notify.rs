//! What systemd hears (`Type=notify`): ready once the daemon follows MPD
//! (or retries it), the queue depth per target as the status line, and
//! stopping. Each is a no-op outside systemd. The watchdog is `watchdog.rs`.

use crate::queue::Queue;

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

/// Show the queue depth per target in `systemctl status`. Counting reads
/// the queue, which can wait on the disk, so it runs on the blocking pool.
pub(super) fn queue_depth(queue: &Queue) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || {
        let text: Vec<String> = queue
            .names()
            .iter()
            .map(|name| format!("{name}: {} queued", queue.target(name).len()))
            .collect();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&text.join(", "))]);
    });
}
