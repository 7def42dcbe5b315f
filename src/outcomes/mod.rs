//! Outcome measurement, the pure part: validated questionnaires
//! ("instruments") and what is computed from their answers. No database,
//! HTTP or jobs here; those plug these functions in.
//!
//! - [`instrument`]: the definition format and its validation.
//! - [`schema`]: the format's JSON Schema (`openapi/instrument.schema.json`).
//! - [`scoring`]: one member's answers to totals, subscales and bands.
//! - [`stats`]: cohort figures: means, change from intake with its
//!   confidence interval, effect size, reliable change, band movement, and
//!   the comparison with a face-to-face cohort.
//! - [`suppress`]: small-cell suppression, primary and secondary.

pub mod instrument;
pub mod schema;
pub mod scoring;
pub mod stats;
pub mod suppress;

use instrument::{Instrument, InstrumentError};

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
