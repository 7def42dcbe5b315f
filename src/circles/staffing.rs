//! Staffing a circle: coordinators add workers (or bring former ones back)
//! and remove them; a worker who creates a circle becomes its worker.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::circles::access;
use crate::circles::members::{MemberView, load_member};
use crate::circles::pseudonym::Pseudonym;
use crate::error::{ApiError, ApiResult, Code};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json};
use crate::ids::{AccountId, CircleId, MembershipId};
use crate::state::AppState;
use crate::store::Tx;

use super::membership::{self, EnrolAs};

/// A staff member to make a worker of a circle.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"account_id": "0193a5b3d4e57f6a8b9c0d1e2f3a4b5c", "pseudonym": "Sam"}))]
pub struct AddWorker {
    /// A worker or coordinator of the organisation.
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub account_id: String,
    /// The name members see; default: the worker's display name.
    #[schema(value_type = Option<Pseudonym>)]
    pub pseudonym: Option<String>,
}

/// Coordinators: make a staff member a worker of this circle.
///
/// The organisation's coordinators only (403 `coordinator_only`); 404 for
/// an account that is not a current worker or coordinator of the
/// organisation. A coordinator may add themself, to take part in the
/// circle. The worker gets the circle's alerts from now on; someone who
/// worked in it before comes back. Someone already in the circle is 409
/// `already_in_circle`; a pseudonym that looks like one in use is 409
/// `pseudonym_taken`. Send an `Idempotency-Key`: a retry adds no one twice.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/workers", tag = "circles",
    operation_id = "circle_workers_add",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::AlreadyInCircle, Code::PseudonymTaken]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), IdempotencyKey),
    request_body = AddWorker,
    responses(
        (status = 201, description = "The worker's membership", body = MemberView),
    )
)]
pub async fn add_worker(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<AddWorker>,
) -> ApiResult<Response> {
    let pseudonym = match &req.pseudonym {
        Some(p) => Some(Pseudonym::parse(p).map_err(|m| ApiError::field("pseudonym", m))?),
        None => None,
    };
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    // Visibility first: a circle the caller cannot see is 404 whatever their role.
    let access = access(&mut tx, &caller, &circle_id).await?;
    caller.require_coordinator()?;
    let staff: Option<String> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE id = $1 AND organisation_id = $2
         AND role IN ('worker', 'coordinator') AND deactivated_at IS NULL",
    )
    .bind(&req.account_id)
    .bind(&access.organisation_id)
    .fetch_optional(&mut *tx)
    .await?;
    if staff.is_none() {
        return Err(ApiError::NotFound("staff member"));
    }
    let membership_id =
        add_worker_membership(&mut tx, &access.circle_id, &req.account_id, pseudonym, now).await?;
    let member = load_member(&mut tx, &membership_id, now).await?;
    idem.commit(tx, (StatusCode::CREATED, axum::Json(member)))
        .await
}

/// Makes an account a worker of a circle (or brings a former one back),
/// by default under their display name.
pub(super) async fn add_worker_membership(
    tx: &mut Tx,
    circle_id: &str,
    account_id: &str,
    pseudonym: Option<Pseudonym>,
    now: i64,
) -> ApiResult<String> {
    let pseudonym = match pseudonym {
        Some(p) => p,
        None => {
            let name: Option<String> =
                sqlx::query_scalar("SELECT display_name FROM accounts WHERE id = $1")
                    .bind(account_id)
                    .fetch_one(&mut **tx)
                    .await?;
            Pseudonym::parse(name.as_deref().unwrap_or("Begeleider"))
                .or_else(|_| Pseudonym::parse("Begeleider"))
                .map_err(ApiError::Internal)?
        }
    };
    let (circle, account) = (CircleId::from(circle_id), AccountId::from(account_id));
    let id = membership::enrol(tx, &circle, &account, &pseudonym, EnrolAs::Worker, now).await?;
    Ok(id.into_string())
}

/// Coordinators: a worker leaves this circle.
///
/// The organisation's coordinators only (403 `coordinator_only`); 404 when
/// the account is not a worker of this circle. The worker stops getting the
/// circle's alerts and no longer sees it; their posts stay. Alerts stay
/// with the circle's other workers.
#[utoipa::path(
    delete, path = "/v1/circles/{circle_id}/workers/{account_id}", tag = "circles",
    operation_id = "circle_worker_remove",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(
        ("circle_id" = String, Path, description = "The circle's id"),
        ("account_id" = String, Path, description = "The worker's account id"),
    ),
    responses(
        (status = 204, description = "Removed"),
    )
)]
pub async fn remove_worker(
    State(state): State<AppState>,
    caller: Caller,
    Path((circle_id, account_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    caller.require_coordinator()?;
    let worker: Option<String> = sqlx::query_scalar(
        "SELECT id FROM memberships
         WHERE circle_id = $1 AND account_id = $2 AND role = 'worker' AND left_at IS NULL",
    )
    .bind(&access.circle_id)
    .bind(&account_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(worker) = worker else {
        return Err(ApiError::NotFound("worker"));
    };
    let circle = CircleId::from(access.circle_id.as_str());
    membership::leave(&mut tx, &circle, &MembershipId::from(worker), now).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
