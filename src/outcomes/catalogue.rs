//! The instruments an organisation may use: the shipped ones and those it
//! imported (`organisation_instruments`), each with the permission it
//! recorded (`instrument_permissions`). The one place that decides whether
//! an instrument may be used ([`Available::usable`]); measurement plans and
//! reports both ask here.

use std::sync::LazyLock;

use sqlx::AnyConnection;

use super::instrument::Instrument;

/// The shipped definitions, validated once (a test keeps them valid).
static SHIPPED: LazyLock<Vec<Instrument>> = LazyLock::new(|| {
    super::shipped().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a shipped instrument is invalid; none are offered");
        Vec::new()
    })
});

/// Where a definition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Ships with Kring (`instruments/`).
    Shipped,
    /// Imported by the organisation; `imported_by` is `None` when imported
    /// with `kring admin import-instrument`.
    Imported {
        imported_by: Option<String>,
        imported_at: i64,
    },
}

/// An organisation's recorded permission to use an instrument.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Permission {
    pub statement: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

/// One instrument definition as one organisation sees it.
#[derive(Debug, Clone)]
pub struct Available {
    pub instrument: Instrument,
    pub origin: Origin,
    /// The organisation's recorded permission for this key, if any.
    pub permission: Option<Permission>,
}

impl Available {
    /// Whether the organisation may use it now: its licence asks for no
    /// permission, or the organisation recorded one.
    pub fn usable(&self) -> bool {
        !self.instrument.licence.permission_required || self.permission.is_some()
    }
}

#[derive(sqlx::FromRow)]
struct ImportedRow {
    definition: String,
    imported_by: Option<String>,
    imported_at: i64,
}

#[derive(sqlx::FromRow)]
struct PermissionRow {
    instrument_key: String,
    statement: String,
    recorded_by: String,
    recorded_at: i64,
}

/// Every instrument definition the organisation can see, shipped ones
/// first, then its own by key and version; whether each may be used is
/// [`Available::usable`]. Every version of an imported key is listed.
pub async fn available(
    conn: &mut AnyConnection,
    organisation_id: &str,
) -> Result<Vec<Available>, sqlx::Error> {
    let imported: Vec<ImportedRow> = sqlx::query_as(
        "SELECT definition, imported_by, imported_at FROM organisation_instruments
         WHERE organisation_id = $1 ORDER BY instrument_key, version",
    )
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    let permissions: Vec<PermissionRow> = sqlx::query_as(
        "SELECT instrument_key, statement, recorded_by, recorded_at FROM instrument_permissions
         WHERE organisation_id = $1",
    )
    .bind(organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    let permission = |key: &str| {
        permissions
            .iter()
            .find(|p| p.instrument_key == key)
            .map(|p| Permission {
                statement: p.statement.clone(),
                recorded_by: p.recorded_by.clone(),
                recorded_at: p.recorded_at,
            })
    };
    let mut all: Vec<Available> = SHIPPED
        .iter()
        .map(|instrument| Available {
            permission: permission(&instrument.key),
            instrument: instrument.clone(),
            origin: Origin::Shipped,
        })
        .collect();
    for row in imported {
        // Validated on import; one that no longer is (a stricter check
        // since) is left out and logged, never offered half-understood.
        let instrument = match Instrument::from_json(&row.definition) {
            Ok(instrument) => instrument,
            Err(e) => {
                tracing::error!(organisation_id, error = %e, "an imported instrument is invalid; left out");
                continue;
            }
        };
        all.push(Available {
            permission: permission(&instrument.key),
            instrument,
            origin: Origin::Imported {
                imported_by: row.imported_by,
                imported_at: row.imported_at,
            },
        });
    }
    Ok(all)
}

/// The newest version of `key` the organisation can see, usable or not
/// (check [`Available::usable`] before starting to measure with it; a
/// report may still describe what was measured before a permission was
/// withdrawn).
pub async fn find(
    conn: &mut AnyConnection,
    organisation_id: &str,
    key: &str,
) -> Result<Option<Available>, sqlx::Error> {
    Ok(available(conn, organisation_id)
        .await?
        .into_iter()
        .filter(|a| a.instrument.key == key)
        .max_by_key(|a| a.instrument.version))
}

/// The newest version of `key` if the organisation may measure with it
/// now: the check for a measurement plan. `None` for a key it cannot see
/// or one whose licence needs a permission it has not recorded.
pub async fn usable(
    conn: &mut AnyConnection,
    organisation_id: &str,
    key: &str,
) -> Result<Option<Available>, sqlx::Error> {
    Ok(find(conn, organisation_id, key)
        .await?
        .filter(Available::usable))
}

/// Why the organisation may not start measuring with `key`, in words for
/// a 422 on a measurement plan; `None` when it may.
pub async fn refusal(
    conn: &mut AnyConnection,
    organisation_id: &str,
    key: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(match find(conn, organisation_id, key).await? {
        None => Some(format!("{key} is not a known instrument")),
        Some(a) if !a.usable() => Some(format!(
            "{key}'s licence asks for the authors' permission, which your organisation has not recorded"
        )),
        Some(_) => None,
    })
}

/// The definition of `key` at `version`, as the organisation sees it: the
/// one a questionnaire was made with (usable now or not).
pub async fn at_version(
    conn: &mut AnyConnection,
    organisation_id: &str,
    key: &str,
    version: i64,
) -> Result<Option<Instrument>, sqlx::Error> {
    Ok(available(conn, organisation_id)
        .await?
        .into_iter()
        .find(|a| a.instrument.key == key && i64::from(a.instrument.version) == version)
        .map(|a| a.instrument))
}

/// Whether `key` is a shipped instrument's key (an import may not take it).
pub fn is_shipped(key: &str) -> bool {
    SHIPPED.iter().any(|i| i.key == key)
}
