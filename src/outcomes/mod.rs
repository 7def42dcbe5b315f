//! Outcome measurement: validated questionnaires ("instruments") and what
//! is computed from their answers. The pure part has no database, HTTP or
//! jobs; the API modules plug it in.
//!
//! - [`instrument`]: the definition format and its validation.
//! - [`schema`]: the format's JSON Schema (`openapi/instrument.schema.json`).
//! - [`scoring`]: one member's answers to totals, subscales and bands.
//! - [`stats`]: cohort figures: means, change from intake with its
//!   confidence interval, effect size, reliable change, band movement, and
//!   the comparison with a face-to-face cohort.
//! - [`suppress`]: small-cell suppression, primary and secondary.
//! - [`report`]: a report's figures per moment from plain rows (pure).
//! - [`catalogue`]: the instruments an organisation may use
//!   ([`catalogue::available`], [`catalogue::Available::usable`]).
//! - [`instruments_api`]: the instruments list, recording a permission,
//!   and `kring admin import-instrument`.
//! - [`cohorts`]: face-to-face comparison cohorts, by their aggregates.
//! - [`report_api`]: the organisation's and a circle's outcome reports;
//!   [`report_view`]: the report as JSON; [`csv`]: as CSV.

pub mod catalogue;
pub mod cohorts;
pub mod csv;
pub mod instrument;
pub mod instruments_api;
pub mod report;
pub mod report_api;
pub mod report_view;
pub mod schema;
pub mod scoring;
pub mod stats;
pub mod suppress;

use instrument::{Instrument, InstrumentError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The outcome routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_api::organisation_report))
        .routes(routes!(report_api::circle_report))
        .routes(routes!(cohorts::create, cohorts::list))
        .routes(routes!(cohorts::get, cohorts::delete))
        .routes(routes!(instruments_api::list))
        .routes(routes!(
            instruments_api::record_permission,
            instruments_api::withdraw_permission
        ))
}

/// The definitions that ship with Kring (`instruments/`).
pub const SHIPPED: [&str; 2] = [
    include_str!("../../instruments/who5.json"),
    include_str!("../../instruments/djg6.json"),
];

/// The shipped definitions, validated.
pub fn shipped() -> Result<Vec<Instrument>, InstrumentError> {
    SHIPPED
        .iter()
        .map(|json| Instrument::from_json(json))
        .collect()
}
