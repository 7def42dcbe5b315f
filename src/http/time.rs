//! Times in the API are RFC 3339 UTC strings; these parse them at the edge.

use jiff::Timestamp;

/// Parses an RFC 3339 timestamp (with an offset or `Z`).
pub fn parse_timestamp(input: &str) -> Result<Timestamp, String> {
    input
        .parse::<Timestamp>()
        .map_err(|_| "must be an RFC 3339 time such as 2026-11-22T09:30:00Z".to_owned())
}
