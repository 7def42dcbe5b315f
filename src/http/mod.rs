//! Cross-cutting HTTP pieces, a toolkit that knows no feature: the JSON and
//! query extractors, the bearer-token caller, idempotent POSTs, cursors,
//! sync tokens, names, and the connection layer that serves within limits.
//! The application that puts features together is [`crate::app`].

pub mod auth;
pub mod cursor;
pub mod extract;
pub mod idempotency;
pub mod server;
pub mod sync;
pub mod text;
pub mod time;

pub use auth::{Caller, Role};
pub use extract::{ClientAddress, Json, Query};

/// The answer for a path no route has.
pub async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound("route")
}

/// The answer for a method a route does not take.
pub async fn method_not_allowed() -> crate::error::ApiError {
    crate::error::ApiError::MethodNotAllowed
}
