//! Cross-cutting HTTP pieces: the JSON and query extractors, the bearer-token
//! caller, idempotent POSTs, cursors, the router that ties features together,
//! and the connection layer that serves it within limits.

pub mod auth;
pub mod cursor;
pub mod extract;
pub mod idempotency;
pub mod router;
pub mod server;
pub mod sync;
pub mod test_clock;
pub mod text;
pub mod time;

pub use auth::{Caller, Role};
pub use extract::{ClientAddress, Json, Query};
