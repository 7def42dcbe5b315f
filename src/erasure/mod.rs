//! Erasure (GDPR art. 17): a member asks Kring to forget them. The request
//! waits for a grace period (`KRING_ERASURE_GRACE_DAYS`) in which the member
//! (or a coordinator) can take it back; then the erasure job carries it out
//! ([`run`]) in one transaction, once, whatever crashes in between.
//!
//! - `POST /v1/me/erasure`, `GET` and `DELETE` the same path: the member's
//!   own request, confirmed by typing a phrase (many members have no
//!   password to type again).
//! - `POST` and `DELETE /v1/organisation/members/{account_id}/erasure`:
//!   coordinators, on the member's behalf (in the access log).

pub mod run;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json, Role};
use crate::state::AppState;
use crate::store::Tx;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_erasure, get_erasure, cancel_erasure))
        .routes(routes!(request_erasure_for, cancel_erasure_for))
}

/// The phrases that confirm an erasure, in either language.
const CONFIRMATIONS: &[&str] = &["wis mijn gegevens", "erase my data"];

/// A scheduled erasure.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "scheduled",
    "requested_at": "2026-12-01T09:00:00Z",
    "due_at": "2026-12-08T09:00:00Z",
    "keep_posts": false
}))]
pub struct Erasure {
    /// `scheduled` until it runs at `due_at`; it can be cancelled until then.
    #[schema(example = "scheduled")]
    pub status: String,
    /// When the erasure was asked for.
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: jiff::Timestamp,
    /// When Kring erases the account: the end of the grace period.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: jiff::Timestamp,
    /// Whether the member's posts stay, under "former member", instead of
    /// becoming tombstones.
    pub keep_posts: bool,
}

/// The phrase that confirms an erasure, as the app shows it (the server
/// also takes it in other case or with spaces around it).
#[derive(ToSchema)]
#[allow(dead_code)]
enum Confirmation {
    #[schema(rename = "wis mijn gegevens")]
    Nl,
    #[schema(rename = "erase my data")]
    En,
}

/// A member's request to be erased.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"confirmation": "wis mijn gegevens", "keep_posts": false}))]
pub struct EraseMe {
    /// The member types `wis mijn gegevens` (or `erase my data`), case and
    /// surrounding spaces aside: the app shows the phrase and explains what
    /// it means. Anything else is refused (422).
    #[schema(example = "wis mijn gegevens", value_type = Confirmation)]
    pub confirmation: String,
    /// Keep my posts as a former member: they stay under the name "former
    /// member" (oud-lid) so threads still read, with nothing linking them
    /// to me. Default false: they become tombstones.
    #[serde(default)]
    pub keep_posts: bool,
}

/// A coordinator's request to erase a member, on the member's behalf.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"keep_posts": false}))]
pub struct EraseMember {
    /// As the member's own choice: keep the posts as a former member.
    #[serde(default)]
    pub keep_posts: bool,
}

#[derive(sqlx::FromRow)]
struct ErasureRow {
    requested_at: i64,
    due_at: i64,
    keep_posts: i64,
}

impl ErasureRow {
    fn view(&self) -> Erasure {
        Erasure {
            status: "scheduled".into(),
            requested_at: from_ms(self.requested_at),
            due_at: from_ms(self.due_at),
            keep_posts: self.keep_posts != 0,
        }
    }
}

async fn pending(conn: &mut sqlx::AnyConnection, account_id: &str) -> ApiResult<ErasureRow> {
    sqlx::query_as(
        "SELECT requested_at, due_at, keep_posts FROM erasures
         WHERE account_id = $1 AND erased_at IS NULL",
    )
    .bind(account_id)
    .fetch_optional(conn)
    .await?
    .ok_or(ApiError::NotFound("erasure"))
}

/// Schedules the erasure of `account_id`; 409 `erasure_scheduled` when it
/// already is.
async fn schedule(
    tx: &mut Tx,
    state: &AppState,
    account_id: &str,
    organisation_id: &str,
    requested_by: &str,
    keep_posts: bool,
) -> ApiResult<ErasureRow> {
    let now = state.now_ms();
    let due = now + i64::from(state.config.erasure_grace_days) * 86_400_000;
    let inserted = sqlx::query(
        "INSERT INTO erasures (account_id, organisation_id, requested_at, requested_by, due_at, keep_posts)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account_id)
    .bind(organisation_id)
    .bind(now)
    .bind(requested_by)
    .bind(due)
    .bind(i64::from(keep_posts))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ApiError::new(
            Code::ErasureScheduled,
            "An erasure is already scheduled; cancel it first to change it",
        ));
    }
    Ok(ErasureRow {
        requested_at: now,
        due_at: due,
        keep_posts: i64::from(keep_posts),
    })
}

/// Members: ask Kring to erase your account and data.
///
/// After a grace period (7 days by default; `due_at` says when) Kring
/// deletes your sessions, devices, codes, settings, notifications and
/// check-ins, takes you out of every circle, and turns your posts into
/// tombstones ("removed at the member's request"), or keeps them under
/// "former member" when `keep_posts` is true. Until then `DELETE
/// /v1/me/erasure` takes the request back, and your circles' workers see
/// that you are leaving. 409 `erasure_scheduled` when one is already
/// scheduled.
#[utoipa::path(
    post, path = "/v1/me/erasure", tag = "me",
    operation_id = "me_erasure_request",
    extensions(("x-problem-codes" = json!([Code::MembersOnly, Code::ErasureScheduled]))),
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = EraseMe,
    responses(
        (status = 202, description = "The erasure is scheduled", body = Erasure),
    )
)]
pub async fn request_erasure(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Json(req): Json<EraseMe>,
) -> ApiResult<Response> {
    if caller.role != Role::Member {
        return Err(ApiError::new(
            Code::MembersOnly,
            "Staff accounts are removed by a coordinator",
        ));
    }
    let typed = req.confirmation.trim().to_lowercase();
    if !CONFIRMATIONS.contains(&typed.as_str()) {
        return Err(ApiError::field(
            "confirmation",
            "type the phrase the app shows: wis mijn gegevens (or: erase my data)",
        ));
    }
    let mut tx = idem.begin(&state.store).await?;
    let row = schedule(
        &mut tx,
        &state,
        &caller.account_id,
        &caller.organisation_id,
        &caller.account_id,
        req.keep_posts,
    )
    .await?;
    idem.commit(tx, (StatusCode::ACCEPTED, axum::Json(row.view())))
        .await
}

/// Members: your scheduled erasure, if any.
///
/// Shows when the erasure runs and whether your posts stay. 404 when none
/// is scheduled (never asked, cancelled, or already carried out).
#[utoipa::path(
    get, path = "/v1/me/erasure", tag = "me",
    operation_id = "me_erasure_get",
    extensions(("x-problem-codes" = json!([Code::NotFound]))),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The scheduled erasure", body = Erasure),
    )
)]
pub async fn get_erasure(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Erasure>> {
    let mut conn = state.store.pool().acquire().await?;
    Ok(axum::Json(
        pending(&mut conn, &caller.account_id).await?.view(),
    ))
}

/// Members: take back your erasure request before it runs.
///
/// Nothing was erased yet; your account stays as it is and your circles'
/// workers no longer see you leaving. 404 when none is scheduled, or it
/// already ran.
#[utoipa::path(
    delete, path = "/v1/me/erasure", tag = "me",
    operation_id = "me_erasure_cancel",
    extensions(("x-problem-codes" = json!([Code::NotFound]))),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The erasure is cancelled"),
    )
)]
pub async fn cancel_erasure(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    cancel(&mut tx, &caller.account_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cancel(tx: &mut Tx, account_id: &str) -> ApiResult<()> {
    let gone = sqlx::query("DELETE FROM erasures WHERE account_id = $1 AND erased_at IS NULL")
        .bind(account_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ApiError::NotFound("erasure"));
    }
    Ok(())
}

/// The member account `account_id` of the coordinator's organisation, or
/// 404.
async fn member_of(tx: &mut Tx, caller: &Caller, account_id: &str) -> ApiResult<()> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM accounts
         WHERE id = $1 AND organisation_id = $2 AND role = 'member' AND erased_at IS NULL",
    )
    .bind(account_id)
    .bind(&caller.organisation_id)
    .fetch_optional(&mut **tx)
    .await?;
    found.map(|_| ()).ok_or(ApiError::NotFound("member"))
}

/// Coordinators: schedule a member's erasure on their behalf.
///
/// When the member asked in person or by letter. The same grace period and
/// effects as the member's own request (`POST /v1/me/erasure`); with
/// `keep_posts` their posts stay under "former member". It is logged as
/// done on the member's behalf: the member sees it in their app and in
/// their access log, and can cancel it. 404 for an
/// account that is not a member of your organisation; 409
/// `erasure_scheduled` when one is already scheduled.
#[utoipa::path(
    post, path = "/v1/organisation/members/{account_id}/erasure", tag = "organisation",
    operation_id = "organisation_member_erasure_request",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::ErasureScheduled]))),
    security(("bearer" = [])),
    params(IdempotencyKey, ("account_id" = String, Path, description = "The member's account id")),
    request_body = EraseMember,
    responses(
        (status = 202, description = "The erasure is scheduled", body = Erasure),
    )
)]
pub async fn request_erasure_for(
    State(state): State<AppState>,
    idem: Idempotent,
    audit: Audit,
    caller: Caller,
    Path(account_id): Path<String>,
    Json(req): Json<EraseMember>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let mut tx = idem.begin(&state.store).await?;
    member_of(&mut tx, &caller, &account_id).await?;
    let row = schedule(
        &mut tx,
        &state,
        &account_id,
        &caller.organisation_id,
        &caller.account_id,
        req.keep_posts,
    )
    .await?;
    audit
        .changed_on_behalf(
            &mut tx,
            Kind::Erasure,
            Action::Create,
            Subject::Account(account_id.clone()),
            Some(account_id.clone()),
        )
        .await?;
    idem.commit(tx, (StatusCode::ACCEPTED, axum::Json(row.view())))
        .await
}

/// Coordinators: cancel a member's scheduled erasure.
///
/// Logged in the access log as done on the member's behalf. 404 when none
/// is scheduled, or for an account that is not a member of your
/// organisation.
#[utoipa::path(
    delete, path = "/v1/organisation/members/{account_id}/erasure", tag = "organisation",
    operation_id = "organisation_member_erasure_cancel",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(("account_id" = String, Path, description = "The member's account id")),
    responses(
        (status = 204, description = "The erasure is cancelled"),
    )
)]
pub async fn cancel_erasure_for(
    State(state): State<AppState>,
    audit: Audit,
    caller: Caller,
    Path(account_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_coordinator()?;
    let mut tx = state.store.begin().await?;
    member_of(&mut tx, &caller, &account_id).await?;
    cancel(&mut tx, &account_id).await?;
    audit
        .changed_on_behalf(
            &mut tx,
            Kind::Erasure,
            Action::Delete,
            Subject::Account(account_id.clone()),
            Some(account_id.clone()),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
