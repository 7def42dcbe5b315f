//! The silence engine, the heart of Kring: when a member goes quiet, gentle
//! nudges to them; when the silence lasts, an alert to their workers; when
//! nobody acknowledges it, the coordinators. Every step fires exactly once,
//! at a moment that respects the person.
//!
//! - [`timing`]: reminder times and working hours in each person's zone.
//! - [`ladder`]: the policy's steps and the repeats after them, by time.
//! - [`member`]: what the engine knows of one membership when it decides.
//! - [`engine`]: scheduling and firing steps.
//! - [`alerting`]: contact requests, alerts to workers, escalation.
//! - [`alerts`]: the workers' alert API and the circle overview.

pub mod alerting;
pub mod alerts;
pub mod engine;
pub mod ladder;
pub mod member;
pub mod timing;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::get_alert))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(alerts::snooze))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::overview))
}
