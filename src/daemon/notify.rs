//! What systemd hears (`Type=notify`): ready once the daemon follows MPD
//! (or retries it), the queue depth per target as the status line, and
//! stopping. Each is a no-op outside systemd. The watchdog is `watchdog.rs`.

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

/// What shows the queue depth per target in `systemctl status`, for the
/// storage thread to call after each write that changes it; `None` outside
/// systemd.
pub(super) fn depth_report() -> Option<DepthReport> {
    std::env::var_os("NOTIFY_SOCKET")?;
    Some(Box::new(|depths| {
        let text: Vec<String> = depths
            .iter()
            .map(|(name, n)| format!("{name}: {n} queued"))
            .collect();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&text.join(", "))]);
    }))
}
