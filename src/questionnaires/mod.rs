//! Questionnaires (issue 14): a circle's measurement plan ([`plan`]), the
//! questionnaires made from it for each member and asked, reminded and
//! expired by a job ([`schedule`], run by [`crate::jobs::questionnaires`]),
//! and the member's answers and scores ([`api`], [`scores`]). Instruments
//! and scoring are the pure [`crate::outcomes`]; which ones an
//! organisation may use is [`crate::outcomes::catalogue`], which the
//! reports ask too.
//!
//! Answering is voluntary: a member declines one questionnaire or turns
//! measurement off for a circle; both are recorded and never nagged about.

pub mod api;
pub mod export;
pub mod plan;
pub mod schedule;
pub mod scores;
pub mod views;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plan::get_plan, plan::replace_plan))
        .routes(routes!(api::list))
        .routes(routes!(api::get))
        .routes(routes!(api::answer))
        .routes(routes!(api::decline))
        .routes(routes!(api::set))
        .routes(routes!(scores::mine))
        .routes(routes!(scores::circle))
}
