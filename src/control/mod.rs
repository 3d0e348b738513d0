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

pub(crate) use client::{RequestError, request};
pub(crate) use protocol::{Loved, Reply, Request, import_requests};
pub(crate) use serve::{Limits, serve};
pub(crate) use socket::{Bound, bind};
pub(crate) use status::{MpdLink, Playing, Status, Storage, StorageState, TargetStatus};
