//! Cross-cutting HTTP pieces: the JSON and query extractors, the bearer-token
//! caller, idempotent POSTs, cursors, and the router that ties features together.

pub mod auth;
pub mod cursor;
pub mod extract;
pub mod idempotency;
pub mod router;
pub mod sync;
pub mod test_clock;
pub mod text;
pub mod time;

pub use auth::{Caller, Role};
pub use extract::{Json, Query};
