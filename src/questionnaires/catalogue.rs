//! Which instruments an organisation may use, and their definitions: the
//! ones Kring ships ([`crate::outcomes::shipped`]) and the organisation's
//! own (`organisation_instruments`). An instrument whose licence asks for
//! permission is usable only once the organisation recorded it
//! (`instrument_permissions`).

use std::sync::LazyLock;

use sqlx::AnyConnection;

use crate::outcomes::instrument::Instrument;

/// The shipped definitions, validated once (a test keeps them valid).
static SHIPPED: LazyLock<Vec<Instrument>> =
    LazyLock::new(|| crate::outcomes::shipped().unwrap_or_default());

/// The definition of `key` at `version` (the newest when `None`): the
/// organisation's own first, then the shipped one.
pub async fn find(
    conn: &mut AnyConnection,
    organisation_id: &str,
    key: &str,
    version: Option<i64>,
) -> Result<Option<Instrument>, sqlx::Error> {
    let own: Option<String> = sqlx::query_scalar(
        "SELECT definition FROM organisation_instruments
         WHERE organisation_id = $1 AND instrument_key = $2 AND ($3 < 0 OR version = $3)
         ORDER BY version DESC LIMIT 1",
    )
    .bind(organisation_id)
    .bind(key)
    .bind(version.unwrap_or(-1))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(instrument) = own.and_then(|json| Instrument::from_json(&json).ok()) {
        return Ok(Some(instrument));
    }
    Ok(SHIPPED
        .iter()
        .find(|i| i.key == key && version.is_none_or(|v| i64::from(i.version) == v))
        .cloned())
}

/// Why an organisation may not use an instrument, if it may not.
pub async fn refusal(
    conn: &mut AnyConnection,
    organisation_id: &str,
    key: &str,
) -> Result<Option<String>, sqlx::Error> {
    let Some(instrument) = find(conn, organisation_id, key, None).await? else {
        return Ok(Some(format!("{key} is not a known instrument")));
    };
    if instrument.enabled_by_default() {
        return Ok(None);
    }
    let recorded: Option<i64> = sqlx::query_scalar(
        "SELECT recorded_at FROM instrument_permissions WHERE organisation_id = $1 AND instrument_key = $2",
    )
    .bind(organisation_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(recorded.is_none().then(|| {
        format!(
            "{key}'s licence asks for the authors' permission, which your organisation has not recorded"
        )
    }))
}
