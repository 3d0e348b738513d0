//! The daemon's control socket: a line-based request/reply channel through
//! which commands reach the running daemon, since sled lets only the daemon
//! open the queue.
//!
//! - `protocol.rs` and `status.rs`: the [`Request`] and [`Reply`] types both
//!   ends share, one JSON value per line;
//! - `socket.rs`: where the socket lives (the runtime directory, with a
//!   symlink in the state directory) and who may use it;
//! - `serve.rs`: the daemon's side of a connection, within its line limits
//!   and idle timeout;
//! - `client.rs`: the commands' side.

mod client;
mod protocol;
mod serve;
mod socket;
mod status;

pub use client::{RequestError, request};
pub use protocol::{Loved, QueueCmd, QueueReply, Reply, Request, import_requests};
pub use serve::{IDLE_TIMEOUT, IMPORT_LINE_LIMIT, LINE_LIMIT, Limits, serve};
pub use socket::{Bound, bind, runtime_dir};
pub use status::{MpdLink, Playing, Status, Storage, StorageState, TargetStatus};
