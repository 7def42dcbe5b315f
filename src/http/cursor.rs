//! Opaque pagination cursors: a position (time, id) in a stable ordering.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, Validator};

/// A position in a list ordered by (time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at_ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.at_ms, self.id))
    }

    pub fn decode(s: &str) -> Result<Self, String> {
        let bad = || "is not a cursor this server returned".to_owned();
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = raw.split_once(':').ok_or_else(bad)?;
        let at_ms = at.parse().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Err(bad());
        }
        Ok(Self {
            at_ms,
            id: id.to_owned(),
        })
    }
}

/// `limit` and `cursor`, for lists that have no incremental sync.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// How many items to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,200}$")]
    pub cursor: Option<String>,
}

/// A parsed [`CursorQuery`].
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

/// A list's `limit`: 1 to 100, 20 when not given.
pub fn parse_limit(limit: Option<i64>) -> Result<i64, String> {
    match limit {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err("must be between 1 and 100".to_owned()),
    }
}

impl CursorQuery {
    pub fn parse(&self) -> Result<Page, ApiError> {
        let mut v = Validator::default();
        let limit = v.check("limit", parse_limit(self.limit));
        let cursor = match &self.cursor {
            Some(c) => v.check("cursor", Cursor::decode(c)).map(Some),
            None => Some(None),
        };
        match (limit, cursor) {
            (Some(limit), Some(cursor)) => Ok(Page { limit, cursor }),
            _ => Err(v.into_error()),
        }
    }
}

/// Keyset pagination over `(position, id)` (a time or a change number): the condition, the order, and the
/// two values to bind to the condition's placeholders.
#[derive(Debug, Clone)]
pub struct Keyset {
    /// E.g. `(p.created_at < $2 OR (p.created_at = $2 AND p.id < $3))`.
    pub condition: String,
    /// E.g. `p.created_at DESC, p.id DESC`.
    pub order: String,
    pub at_ms: i64,
    pub id: String,
}

/// Splits one extra fetched row off into a `next_cursor`.
pub fn next_cursor<T>(
    rows: &mut Vec<T>,
    limit: i64,
    position: impl Fn(&T) -> Cursor,
) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| position(last).encode())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            at_ms: 1_700_000_000_000,
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode("!!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x:y")).is_err());
    }
}
