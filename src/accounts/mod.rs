//! Accounts, sign-in and sessions: members who join without e-mail, staff who
//! sign in with e-mail and password, rotating refresh tokens, recovery codes.

pub mod create;
pub mod me;
pub mod sessions;
pub mod types;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use sessions::{Tokens, open_session};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::logout_all))
        .routes(routes!(sessions::setup))
        .routes(routes!(sessions::recover))
        .routes(routes!(me::get_me, me::update_me))
}
