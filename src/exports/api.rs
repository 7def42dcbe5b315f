//! The export routes: a member's own (`/v1/me/export…`) and a
//! coordinator's on a member's behalf (`/v1/organisation/members/…`).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::{Export, ExportRow, ExportStatus, SELECT};
use crate::access_log::{Action, Audit, Kind, Subject};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Role};
use crate::state::AppState;
use crate::store::Tx;

/// Opens a pending export of `account_id` asked for by `requested_by`, in
/// `tx`. A second pending export of the account is refused by the
/// database (`exports_one_pending`), also when two requests race.
async fn start(
    tx: &mut Tx,
    now: i64,
    account_id: &str,
    requested_by: &str,
) -> ApiResult<ExportRow> {
    let id = crate::secrets::new_id();
    sqlx::query(
        "INSERT INTO exports (id, account_id, requested_by, status, requested_at, build_due_at,
                              updated_at)
         VALUES ($1, $2, $3, 'pending', $4, $4, $4)",
    )
    .bind(&id)
    .bind(account_id)
    .bind(requested_by)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        ApiError::conflict_if_taken(
            e,
            Code::ExportInProgress,
            "An export of this account is still being built; wait until it is ready.",
        )
    })?;
    find(tx, &id, account_id, None)
        .await?
        .ok_or(ApiError::NotFound("export"))
}

/// The export `id` of `account_id` (and, for a coordinator, requested by
/// them).
async fn find(
    conn: &mut AnyConnection,
    id: &str,
    account_id: &str,
    requested_by: Option<&str>,
) -> ApiResult<Option<ExportRow>> {
    let sql = format!(
        "{SELECT} WHERE e.id = $1 AND e.account_id = $2 AND ($3 = '' OR e.requested_by = $3)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account_id)
        .bind(requested_by.unwrap_or_default())
        .fetch_optional(&mut *conn)
        .await?)
}

/// The document of a ready export, or why there is none.
async fn document(state: &AppState, row: &ExportRow) -> ApiResult<String> {
    match row.status(state.now_ms())? {
        ExportStatus::Ready => {}
        ExportStatus::Pending => {
            return Err(ApiError::new(
                Code::ExportNotReady,
                "The export is still being built; check its status again shortly.",
            ));
        }
        ExportStatus::Failed => {
            return Err(ApiError::new(
                Code::ExportFailed,
                "The export could not be built; ask for a new one.",
            ));
        }
        ExportStatus::Expired => {
            return Err(ApiError::new(
                Code::ExportExpired,
                "The export's download period is over and its document was deleted; ask for a new one.",
            ));
        }
    }
    let doc: Option<String> = sqlx::query_scalar("SELECT document FROM exports WHERE id = $1")
        .bind(&row.id)
        .fetch_one(state.store.pool())
        .await?;
    // Upkeep may have expired it just now.
    doc.ok_or_else(|| {
        ApiError::new(
            Code::ExportExpired,
            "The export's download period is over and its document was deleted; ask for a new one.",
        )
    })
}

/// The document as a download: JSON, never cached.
fn download(id: &str, doc: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"kring-export-{id}.json\""),
            ),
        ],
        doc,
    )
        .into_response()
}

fn accepted(export: Export, location: String) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(export),
    )
        .into_response()
}

/// Members: start an export of everything Kring holds about you.
///
/// The right of access and to data portability (GDPR art. 15 and 20).
/// Answers 202 with the export, `pending`; a job builds the document,
/// usually within a minute. Poll `GET /v1/me/exports/{export_id}` until it
/// is `ready`, then download it; the download lasts
/// `KRING_EXPORT_TTL_HOURS` (by default 72 hours), after which the
/// document is deleted and the export is `expired`. One export at a time:
/// while one is `pending`, another answers 409 `export_in_progress`.
/// Staff accounts cannot use this (403 `export_members_only`).
#[utoipa::path(
    post, path = "/v1/me/export", tag = "exports",
    operation_id = "me_exports_create",
    extensions(("x-problem-codes" = json!([Code::ExportMembersOnly, Code::ExportInProgress]))),
    security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 202, description = "The export, pending", body = Export,
         headers(("Location" = String, description = "The export's status"))),
    )
)]
pub async fn start_my_export(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
) -> ApiResult<Response> {
    if caller.role != Role::Member {
        return Err(ApiError::new(
            Code::ExportMembersOnly,
            "Exports are for members' data; staff accounts hold none to export.",
        ));
    }
    let mut tx = idem.begin(&state.store).await?;
    let row = start(
        &mut tx,
        state.now_ms(),
        &caller.account_id,
        &caller.account_id,
    )
    .await?;
    let base = format!("/v1/me/exports/{}", row.id);
    let export = row.resource(state.now_ms(), &base)?;
    idem.commit(tx, accepted(export, base)).await
}

/// Your exports, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "status": "ready",
    "requested_by": "member",
    "requested_at": "2026-11-21T10:00:00Z",
    "ready_at": "2026-11-21T10:00:05Z",
    "expires_at": "2026-11-24T10:00:05Z",
    "download": "/v1/me/exports/0194f1e0a1b27c3d8e9f0a1b2c3d4e5f/download"
}]}))]
pub struct ExportList {
    /// At most the last 20, also those a coordinator started for you.
    pub items: Vec<Export>,
}

/// Members: your exports, newest first.
///
/// Also those a coordinator started on your behalf (`requested_by:
/// coordinator`). Expired and failed exports stay listed, without a
/// download. Staff accounts hold none: their list is empty.
#[utoipa::path(
    get, path = "/v1/me/exports", tag = "exports",
    operation_id = "me_exports_list",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your exports", body = ExportList),
    )
)]
pub async fn my_exports(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<ExportList>> {
    let sql = format!(
        "{SELECT} WHERE e.account_id = $1 ORDER BY e.requested_at DESC, e.id DESC LIMIT 20"
    );
    let rows: Vec<ExportRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&caller.account_id)
        .fetch_all(state.store.pool())
        .await?;
    let now = state.now_ms();
    let items = rows
        .iter()
        .map(|r| r.resource(now, &format!("/v1/me/exports/{}", r.id)))
        .collect::<ApiResult<_>>()?;
    Ok(axum::Json(ExportList { items }))
}

/// Members: one of your exports, with its status.
///
/// When `ready`, `download` says where to get the document. Poll this after
/// `POST /v1/me/export` until the status is no longer `pending`. 404 for an
/// export of another account.
#[utoipa::path(
    get, path = "/v1/me/exports/{export_id}", tag = "exports",
    operation_id = "me_export_get",
    security(("bearer" = [])),
    params(("export_id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The export", body = Export),
    )
)]
pub async fn my_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(export_id): Path<String>,
) -> ApiResult<axum::Json<Export>> {
    let mut conn = state.store.pool().acquire().await?;
    let row = find(&mut conn, &export_id, &caller.account_id, None)
        .await?
        .ok_or(ApiError::NotFound("export"))?;
    let base = format!("/v1/me/exports/{}", row.id);
    Ok(axum::Json(row.resource(state.now_ms(), &base)?))
}

/// Members: download a ready export as one JSON document.
///
/// The document (`DataExport`) holds everything Kring holds about you and a
/// short summary in your language; it is sent as an attachment and never
/// cached. Download it as often as you like until `expires_at`.
/// 409 `export_not_ready` while it is being built, 409 `export_failed` if
/// it could not be built, 410 `export_expired` after its download period.
#[utoipa::path(
    get, path = "/v1/me/exports/{export_id}/download", tag = "exports",
    operation_id = "me_export_download",
    extensions(("x-problem-codes" = json!([Code::ExportNotReady, Code::ExportFailed, Code::ExportExpired]))),
    security(("bearer" = [])),
    params(("export_id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The document", body = super::document::DataExport,
         content_type = "application/json"),
    )
)]
pub async fn download_my_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(export_id): Path<String>,
) -> ApiResult<Response> {
    let mut conn = state.store.pool().acquire().await?;
    let row = find(&mut conn, &export_id, &caller.account_id, None)
        .await?
        .ok_or(ApiError::NotFound("export"))?;
    drop(conn);
    let doc = document(&state, &row).await?;
    Ok(download(&row.id, doc))
}

/// Checks that `account_id` is an active member of the caller's
/// organisation.
async fn member_of(state: &AppState, caller: &Caller, account_id: &str) -> ApiResult<()> {
    caller.require_coordinator()?;
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM accounts
         WHERE id = $1 AND organisation_id = $2 AND role = 'member' AND deactivated_at IS NULL",
    )
    .bind(account_id)
    .bind(&caller.organisation_id)
    .fetch_optional(state.store.pool())
    .await?;
    found.map(|_| ()).ok_or(ApiError::NotFound("member"))
}

/// Coordinators: start an export of a member's data on their behalf.
///
/// For a member who asked for it but cannot use the app.
/// As `POST /v1/me/export`, for the member `account_id`: one export at a
/// time per member (409 `export_in_progress`). It is logged in the access
/// log (kind `export`, action `export`, `on_behalf_of` the member), so the
/// member sees it in `GET /v1/me/access-log`, and the member sees the
/// export in `GET /v1/me/exports`. Only the coordinator who started it can
/// read it here; downloading it is logged too.
#[utoipa::path(
    post, path = "/v1/organisation/members/{account_id}/export", tag = "exports",
    operation_id = "organisation_member_exports_create",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::ExportInProgress]))),
    security(("bearer" = [])),
    params(
        ("account_id" = String, Path, description = "The member's account id"),
        IdempotencyKey,
    ),
    responses(
        (status = 202, description = "The export, pending", body = Export,
         headers(("Location" = String, description = "The export's status"))),
    )
)]
pub async fn start_member_export(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    audit: Audit,
    Path(account_id): Path<String>,
) -> ApiResult<Response> {
    member_of(&state, &caller, &account_id).await?;
    let mut tx = idem.begin(&state.store).await?;
    let row = start(&mut tx, state.now_ms(), &account_id, &caller.account_id).await?;
    audit
        .changed_on_behalf(
            &mut tx,
            Kind::Export,
            Action::Export,
            Subject::account(&account_id),
            Some(account_id.clone()),
        )
        .await?;
    let base = format!("/v1/organisation/members/{account_id}/exports/{}", row.id);
    let export = row.resource(state.now_ms(), &base)?;
    idem.commit(tx, accepted(export, base)).await
}

/// Coordinators: an export you started for a member, with its status.
///
/// When `ready`, `download` says where to get the document. Only the
/// coordinator who started the export can read it here (404 for anyone
/// else, and for an export the member started themselves).
#[utoipa::path(
    get, path = "/v1/organisation/members/{account_id}/exports/{export_id}", tag = "exports",
    operation_id = "organisation_member_export_get",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(
        ("account_id" = String, Path, description = "The member's account id"),
        ("export_id" = String, Path, description = "The export's id"),
    ),
    responses(
        (status = 200, description = "The export", body = Export),
    )
)]
pub async fn member_export(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, export_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Export>> {
    member_of(&state, &caller, &account_id).await?;
    let mut conn = state.store.pool().acquire().await?;
    let row = find(&mut conn, &export_id, &account_id, Some(&caller.account_id))
        .await?
        .ok_or(ApiError::NotFound("export"))?;
    let base = format!("/v1/organisation/members/{account_id}/exports/{}", row.id);
    Ok(axum::Json(row.resource(state.now_ms(), &base)?))
}

/// Coordinators: download an export you started for a member.
///
/// To hand it to them. Logged in the access log (kind `export`, action
/// `read`).
/// 409 `export_not_ready` while it is being built, 409 `export_failed` if
/// it could not be built, 410 `export_expired` after its download period.
#[utoipa::path(
    get, path = "/v1/organisation/members/{account_id}/exports/{export_id}/download", tag = "exports",
    operation_id = "organisation_member_export_download",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::ExportNotReady, Code::ExportFailed, Code::ExportExpired]))),
    security(("bearer" = [])),
    params(
        ("account_id" = String, Path, description = "The member's account id"),
        ("export_id" = String, Path, description = "The export's id"),
    ),
    responses(
        (status = 200, description = "The document", body = super::document::DataExport,
         content_type = "application/json"),
    )
)]
pub async fn download_member_export(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((account_id, export_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    member_of(&state, &caller, &account_id).await?;
    let mut conn = state.store.pool().acquire().await?;
    let row = find(&mut conn, &export_id, &account_id, Some(&caller.account_id))
        .await?
        .ok_or(ApiError::NotFound("export"))?;
    drop(conn);
    let doc = document(&state, &row).await?;
    audit.shown(Kind::Export, Action::Read, [Subject::account(&account_id)]);
    Ok(download(&row.id, doc))
}
