//! The instruments an organisation may use, over HTTP and from the command
//! line: the list ([`super::catalogue::available`]), a coordinator
//! recording or withdrawing the permission a licence asks for, and
//! `kring admin import-instrument` ([`import`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::catalogue::{self, Available, Origin};
use super::instrument::Instrument;
use super::report_view::{RecordedPermission, Texts};
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::{Caller, Json};
use crate::state::AppState;
use crate::store::Store;

/// An instrument as an organisation sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "djg6", "version": 1,
    "title": {"nl": "De Jong Gierveld Eenzaamheidsschaal (6 items)", "en": "De Jong Gierveld Loneliness Scale (6 items)"},
    "origin": "shipped",
    "licence_note": "Free for scientific research; other use needs the authors' permission.",
    "citation": "De Jong Gierveld, J., & Van Tilburg, T. (2006). Research on Aging, 28(5), 582–598.",
    "permission_required": true,
    "permission": null,
    "usable": false
}))]
pub struct InstrumentView {
    /// Its key (`who5`, `djg6`, …).
    pub key: String,
    /// The definition's version.
    pub version: u32,
    /// Its title.
    pub title: Texts,
    /// `shipped` (with Kring) or `imported` (by the organisation).
    pub origin: String,
    /// The terms of use, in words.
    pub licence_note: String,
    /// How to cite it.
    pub citation: String,
    /// True when it may be used only once the organisation recorded the
    /// authors' permission.
    pub permission_required: bool,
    /// The permission recorded, if any: by whom, when, in what words.
    pub permission: Option<RecordedPermission>,
    /// Whether the organisation may measure with it now.
    pub usable: bool,
}

impl From<&Available> for InstrumentView {
    fn from(a: &Available) -> Self {
        let i = &a.instrument;
        Self {
            key: i.key.clone(),
            version: i.version,
            title: (&i.title).into(),
            origin: match a.origin {
                Origin::Shipped => "shipped",
                Origin::Imported { .. } => "imported",
            }
            .to_owned(),
            licence_note: i.licence.note.clone(),
            citation: i.source.citation.clone(),
            permission_required: i.licence.permission_required,
            permission: a.permission.as_ref().map(RecordedPermission::from),
            usable: a.usable(),
        }
    }
}

/// The instruments an organisation can see.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "key": "who5", "version": 1,
    "title": {"nl": "WHO-5 Welbevinden Index", "en": "WHO-5 Well-Being Index"},
    "origin": "shipped",
    "licence_note": "Free to use, citing the source.",
    "citation": "WHO-Five Well-being Index (WHO-5). Psychiatric Research Unit, Hillerød.",
    "permission_required": false,
    "permission": null,
    "usable": true
}]}))]
pub struct InstrumentList {
    /// Shipped instruments first, then the organisation's own by key and version.
    pub items: Vec<InstrumentView>,
}

/// Staff: the instruments your organisation may use.
///
/// Coordinators and workers. The shipped instruments and those the
/// organisation imported (`kring admin import-instrument`), each with its
/// licence, whether it needs the authors' permission, the permission
/// recorded (by whom, when, in what words) and whether it may be used now.
/// Members get 403 `staff_only`. Changes nothing.
#[utoipa::path(
    get, path = "/v1/organisation/instruments", tag = "outcomes",
    operation_id = "organisation_instruments_list",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    responses((status = 200, description = "The instruments", body = InstrumentList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<InstrumentList>> {
    caller.require_staff()?;
    let mut conn = state.store.pool().acquire().await?;
    let all = catalogue::available(&mut conn, &caller.organisation_id).await?;
    Ok(axum::Json(InstrumentList {
        items: all.iter().map(InstrumentView::from).collect(),
    }))
}

/// A recorded permission.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"statement": "Written permission of the authors, e-mail of 3 March 2026 (file 2026-031)"}))]
pub struct RecordPermission {
    /// What permission the organisation holds, from whom and since when
    /// (1 to 1,000 characters); shown in reports.
    #[schema(value_type = crate::openapi::Statement)]
    pub statement: String,
}

/// Coordinators: record that the organisation holds an instrument's permission.
///
/// For an instrument whose licence asks for the authors' permission (such
/// as the De Jong Gierveld scale): once recorded it may be used, and
/// reports show the statement. Recording again replaces the statement,
/// recorder and time. 404 for a key the organisation cannot see; 422 for
/// a blank or too long statement.
#[utoipa::path(
    put, path = "/v1/organisation/instruments/{key}/permission", tag = "outcomes",
    operation_id = "organisation_instrument_permission_put",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The instrument's key")),
    request_body = RecordPermission,
    responses((status = 200, description = "The instrument, with its permission", body = InstrumentView))
)]
pub async fn record_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Json(req): Json<RecordPermission>,
) -> ApiResult<axum::Json<InstrumentView>> {
    caller.require_coordinator()?;
    let statement = req.statement.trim();
    let mut v = Validator::default();
    if statement.is_empty() || statement.chars().count() > 1000 {
        v.fail("statement", "must be 1 to 1,000 characters");
    }
    let mut conn = state.store.pool().acquire().await?;
    catalogue::find(&mut conn, &caller.organisation_id, &key)
        .await?
        .ok_or(ApiError::NotFound("instrument"))?;
    v.finish()?;
    sqlx::query(
        "INSERT INTO instrument_permissions (organisation_id, instrument_key, statement, recorded_by, recorded_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (organisation_id, instrument_key)
         DO UPDATE SET statement = excluded.statement, recorded_by = excluded.recorded_by,
                       recorded_at = excluded.recorded_at",
    )
    .bind(&caller.organisation_id)
    .bind(&key)
    .bind(statement)
    .bind(&caller.account_id)
    .bind(state.now_ms())
    .execute(&mut *conn)
    .await?;
    let found = catalogue::find(&mut conn, &caller.organisation_id, &key)
        .await?
        .ok_or(ApiError::NotFound("instrument"))?;
    Ok(axum::Json((&found).into()))
}

/// Coordinators: withdraw a recorded permission.
///
/// An instrument that needs it can no longer be used for new measurements;
/// reports then show no permission. 404 when none is recorded.
#[utoipa::path(
    delete, path = "/v1/organisation/instruments/{key}/permission", tag = "outcomes",
    operation_id = "organisation_instrument_permission_delete",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The instrument's key")),
    responses((status = 204, description = "Withdrawn"))
)]
pub async fn withdraw_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let done = sqlx::query(
        "DELETE FROM instrument_permissions WHERE organisation_id = $1 AND instrument_key = $2",
    )
    .bind(&caller.organisation_id)
    .bind(&key)
    .execute(state.store.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("permission"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `kring admin import-instrument`: validates `json` as an instrument
/// definition and stores it for the organisation. Refused: an invalid
/// definition (every problem named), an unknown organisation, a shipped
/// instrument's key, and a key and version already imported (a version,
/// once imported, never changes: import a new version instead).
pub async fn import(
    store: &Store,
    now: i64,
    organisation_id: &str,
    json: &str,
) -> Result<Instrument, String> {
    let instrument = Instrument::from_json(json).map_err(|e| {
        let problems: Vec<String> = e
            .problems()
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        format!("the definition is not valid: {}", problems.join("; "))
    })?;
    if catalogue::is_shipped(&instrument.key) {
        return Err(format!(
            "{} is the key of an instrument that ships with Kring; give yours another key",
            instrument.key
        ));
    }
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1")
        .bind(organisation_id)
        .fetch_optional(store.pool())
        .await
        .map_err(|e| e.to_string())?;
    if found.is_none() {
        return Err(format!("no organisation has the id {organisation_id}"));
    }
    sqlx::query(
        "INSERT INTO organisation_instruments (organisation_id, instrument_key, version, definition, imported_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(organisation_id)
    .bind(&instrument.key)
    .bind(i64::from(instrument.version))
    .bind(json)
    .bind(now)
    .execute(store.pool())
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => format!(
            "{} version {} is already imported for this organisation; a version never changes, import it as version {}",
            instrument.key,
            instrument.version,
            instrument.version + 1
        ),
        _ => e.to_string(),
    })?;
    Ok(instrument)
}
