//! Recovery codes: a worker gives a member a one-time code that moves the
//! member's account to a new phone. The code opens the whole account, also
//! its other circles, so it is accountable: the member is told when one is
//! issued and when it is used (inbox and push, never the code), the circle's
//! staff see who issued which code and when, and it lives only a short time.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::accounts::sessions::create_code;
use crate::circles::access;
use crate::clock::{from_ms, opt_from_ms};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::Caller;
use crate::http::idempotency::{HoldsSecret, IdempotencyKey, Idempotent};
use crate::notifications::produce::{Outgoing, notify};
use crate::notifications::texts::TextParams;
use crate::push::payload::NotificationKind;
use crate::state::AppState;

/// How long a recovery code stays valid: 24 hours. Long enough for a member
/// who gets the code by phone or in person to set up the new phone that day
/// or the next morning, with help if need be; short enough that a code that
/// is overheard or written down is soon worthless, and the member, told at
/// once, has little time to lose. (It was 72 hours.)
pub const RECOVERY_CODE_VALID_MS: i64 = 24 * 3_600_000;

/// A one-time recovery code, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "KX4M-7TQD-9HCA", "expires_at": "2026-11-03T10:00:00Z"}))]
pub struct RecoveryCode {
    /// The member enters this in the app on the new phone
    /// (`POST /v1/auth/recover`); it signs out every other device.
    #[schema(example = "KX4M-7TQD-9HCA")]
    pub code: String,
    /// 24 hours after it was issued.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

/// Workers: a one-time code that moves a member's account to a new phone.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`); 404 for a membership that is not a current member of
/// this circle. Give the code to the member in person or by phone. Valid
/// for 24 hours; replaces any earlier unused code. The member gets an
/// inbox item and a push at once (`recovery_code_issued`, naming who issued
/// it and in which circle, never the code), and another when the code is
/// used (`account_recovered`). The circle's staff see every code at
/// `GET .../recovery-codes`. The code is never kept for an idempotent
/// replay: a retry with the same `Idempotency-Key` after success answers
/// 409 `idempotency_replay_refused`.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/members/{membership_id}/recovery-code", tag = "memberships",
    operation_id = "circle_member_recovery_code_create",
    extensions(("x-problem-codes" = json!([Code::StaffOnly, Code::IdempotencyReplayRefused]))),
    security(("bearer" = [])),
    params(
        ("circle_id" = String, Path, description = "The circle's id"),
        ("membership_id" = String, Path, description = "The member's membership id"),
        IdempotencyKey,
    ),
    responses(
        (status = 201, description = "The code", body = RecoveryCode),
    )
)]
pub async fn recovery_code(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    audit: Audit,
    Path((circle_id, membership_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    access.require_staff()?;
    let account_id: Option<String> = sqlx::query_scalar(
        "SELECT m.account_id FROM memberships m JOIN accounts a ON a.id = m.account_id
         WHERE m.id = $1 AND m.circle_id = $2 AND m.left_at IS NULL AND m.role = 'member'
           AND a.deactivated_at IS NULL",
    )
    .bind(&membership_id)
    .bind(&access.circle_id)
    .fetch_optional(&mut *tx)
    .await?;
    let account_id = account_id.ok_or(ApiError::NotFound("member"))?;
    let (code, expires) = create_code(
        &mut tx,
        now,
        &account_id,
        "recovery",
        Some(&caller.account_id),
        RECOVERY_CODE_VALID_MS,
        Some(&access.circle_id),
    )
    .await?;
    let (circle_name, issuer): (String, Option<String>) = sqlx::query_as(
        "SELECT c.name, a.display_name FROM circles c, accounts a WHERE c.id = $1 AND a.id = $2",
    )
    .bind(&access.circle_id)
    .bind(&caller.account_id)
    .fetch_one(&mut *tx)
    .await?;
    // In the same transaction as the code: no code without the notice. It
    // is pushed at once, whatever the hour, so that it reaches the member's
    // phone before someone else can use the code.
    notify(
        &mut tx,
        now,
        &Outgoing {
            account_id,
            kind: NotificationKind::RecoveryCodeIssued,
            params: TextParams {
                circle_name,
                actor: issuer.unwrap_or_default(),
                ..Default::default()
            },
            circle_id: Some(access.circle_id.clone()),
            post_id: None,
            membership_id: Some(membership_id.clone()),
            alert_id: None,
            deliver_at: Some(now),
            inbox_only: false,
        },
    )
    .await?;
    let member = Subject::membership(&membership_id);
    audit
        .changed(&mut tx, Kind::RecoveryCode, Action::Create, member)
        .await?;
    let response = idem
        .commit(
            tx,
            HoldsSecret("Issue another recovery code; it replaces this one.").mark((
                StatusCode::CREATED,
                axum::Json(RecoveryCode {
                    code,
                    expires_at: from_ms(expires),
                }),
            )),
        )
        .await?;
    tracing::info!(membership_id = %membership_id, "recovery code issued");
    Ok(response)
}

/// Where a recovery code stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryCodeState {
    /// Can still be used.
    Valid,
    /// Moved the account to a new phone at `used_at`.
    Used,
    /// A newer code replaced it before it was used.
    Replaced,
    /// Ran out unused.
    Expired,
}

/// The staff member who issued a code.
#[derive(Debug, Serialize, ToSchema)]
pub struct Issuer {
    /// Their account id.
    pub account_id: String,
    /// Their display name.
    #[schema(example = "Sam Jansen")]
    pub display_name: Option<String>,
}

/// A recovery code issued for a member's account; never the code itself.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "issued_by": {"account_id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f", "display_name": "Sam Jansen"},
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "issued_at": "2026-11-02T10:00:00Z",
    "expires_at": "2026-11-03T10:00:00Z",
    "used_at": null,
    "state": "valid"
}))]
pub struct RecoveryCodeRecord {
    /// Who issued it; null when it was issued in a circle of another
    /// organisation (the member may belong to several).
    pub issued_by: Option<Issuer>,
    /// The circle it was issued in; null as for `issued_by`.
    pub circle_id: Option<String>,
    /// When it was issued.
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: jiff::Timestamp,
    /// When it stops (or stopped) working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// When it moved the account to a new phone.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub used_at: Option<jiff::Timestamp>,
    /// Where the code stands now.
    pub state: RecoveryCodeState,
}

/// The recovery codes issued for a member's account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "issued_by": {"account_id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f", "display_name": "Sam Jansen"},
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "issued_at": "2026-11-02T10:00:00Z",
    "expires_at": "2026-11-03T10:00:00Z",
    "used_at": "2026-11-02T11:30:00Z",
    "state": "used"
}]}))]
pub struct RecoveryCodeList {
    /// Newest first; at most the last 50.
    pub items: Vec<RecoveryCodeRecord>,
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    created_by: Option<String>,
    display_name: Option<String>,
    circle_id: Option<String>,
    organisation_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    replaced_at: Option<i64>,
}

/// Staff: the recovery codes issued for a member's account.
///
/// By whom and when each was issued, and whether it was used.
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`); 404 for a membership that is not a current member of
/// this circle. Changes nothing.
///
/// Every code for the member's account is listed, also those issued in the
/// member's other circles: a code opens the whole account. Who issued it
/// and where is shown for codes issued within this circle's organisation.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/members/{membership_id}/recovery-codes", tag = "memberships",
    operation_id = "circle_member_recovery_codes_list",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(
        ("circle_id" = String, Path, description = "The circle's id"),
        ("membership_id" = String, Path, description = "The member's membership id"),
    ),
    responses(
        (status = 200, description = "The codes, newest first", body = RecoveryCodeList),
    )
)]
pub async fn list_recovery_codes(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((circle_id, membership_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<RecoveryCodeList>> {
    let now = state.now_ms();
    let mut conn = state.store.pool().acquire().await?;
    let access = access(&mut conn, &caller, &circle_id).await?;
    access.require_staff()?;
    let account_id: Option<String> = sqlx::query_scalar(
        "SELECT account_id FROM memberships WHERE id = $1 AND circle_id = $2 AND role = 'member'",
    )
    .bind(&membership_id)
    .bind(&access.circle_id)
    .fetch_optional(&mut *conn)
    .await?;
    let account_id = account_id.ok_or(ApiError::NotFound("member"))?;
    let rows: Vec<RecordRow> = sqlx::query_as(
        "SELECT k.created_by, a.display_name, k.circle_id, c.organisation_id, k.created_at,
                k.expires_at, k.used_at, k.replaced_at
         FROM account_codes k
         LEFT JOIN accounts a ON a.id = k.created_by
         LEFT JOIN circles c ON c.id = k.circle_id
         WHERE k.account_id = $1 AND k.purpose = 'recovery'
         ORDER BY k.created_at DESC LIMIT 50",
    )
    .bind(&account_id)
    .fetch_all(&mut *conn)
    .await?;
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    audit.shown_counted(
        Kind::RecoveryCode,
        Action::List,
        [(Subject::membership(&membership_id), count)],
    );
    let items = rows
        .into_iter()
        .map(|r| {
            // Nothing crosses tenants: another organisation's staff stay unnamed.
            let ours = r.organisation_id.as_deref() == Some(access.organisation_id.as_str());
            let state = match (r.replaced_at, r.used_at) {
                (Some(_), _) => RecoveryCodeState::Replaced,
                (None, Some(_)) => RecoveryCodeState::Used,
                (None, None) if r.expires_at <= now => RecoveryCodeState::Expired,
                (None, None) => RecoveryCodeState::Valid,
            };
            RecoveryCodeRecord {
                issued_by: match (ours, r.created_by) {
                    (true, Some(account_id)) => Some(Issuer {
                        account_id,
                        display_name: r.display_name,
                    }),
                    _ => None,
                },
                circle_id: r.circle_id.filter(|_| ours),
                issued_at: from_ms(r.created_at),
                expires_at: from_ms(r.expires_at),
                used_at: opt_from_ms(r.used_at.filter(|_| r.replaced_at.is_none())),
                state,
            }
        })
        .collect();
    Ok(axum::Json(RecoveryCodeList { items }))
}
