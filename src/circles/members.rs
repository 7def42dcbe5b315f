//! Memberships: who is in a circle, under which pseudonym, and the member's
//! own choices (pseudonym, nudges, away-until, consent, leaving).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::access;
use crate::clock::{from_ms, opt_from_ms};
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::time::parse_timestamp;
use crate::http::{Caller, Json};
use crate::ids::{CircleId, MembershipId};
use crate::state::AppState;

use super::membership::{self, Changes};
use super::pseudonym::Pseudonym;

/// The furthest ahead a member can set "away until".
const MAX_AWAY_MS: i64 = 366 * 86_400_000;

/// A person's role within one circle: `member` or `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MembershipRole {
    Member,
    Worker,
}

impl MembershipRole {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "member" => Ok(Self::Member),
            "worker" => Ok(Self::Worker),
            other => Err(format!("unknown membership role {other}")),
        }
    }
}

/// Where a membership stands: `active`, `away` (taking a break until
/// `away_until`: no nudges, no alerts) or `left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MembershipState {
    Active,
    /// Taking a break until `away_until`: no nudges, no alerts.
    Away,
    Left,
}

/// The consent a member gave to the circle's agreement.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Consent {
    /// The agreement version consented to.
    #[schema(example = 1)]
    pub version: i64,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
}

/// A person in a circle. Fields after `joined_at` are shown to the circle's
/// staff and to the member themself, and are null for everyone else.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "pseudonym": "Zonnebloem",
    "role": "member",
    "joined_at": "2026-11-02T10:00:00Z",
    "state": "away",
    "away_until": "2026-11-30T09:00:00Z",
    "nudges_enabled": true,
    "last_activity_at": "2026-11-20T18:12:00Z",
    "consent": {"version": 1, "at": "2026-11-02T10:00:00Z"},
    "account_id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f"
}))]
pub struct MemberView {
    /// The membership id.
    pub id: String,
    /// The circle.
    pub circle_id: String,
    /// The name others in the circle see.
    #[schema(example = "Zonnebloem")]
    pub pseudonym: String,
    /// Member or worker.
    pub role: MembershipRole,
    /// When they joined (or came back).
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: jiff::Timestamp,
    /// Active, away or left.
    pub state: Option<MembershipState>,
    /// The end of a break; null when not away.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub away_until: Option<jiff::Timestamp>,
    /// Whether gentle reminders are on.
    pub nudges_enabled: Option<bool>,
    /// The last post, reply, reaction or check-in in this circle: the start
    /// of the current silence.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_activity_at: Option<jiff::Timestamp>,
    /// Members: the agreement version consented to, and when; null for
    /// workers.
    pub consent: Option<Consent>,
    /// Staff only: the member's account, for recovery codes and support.
    pub account_id: Option<String>,
    /// Leaving: the member (or a coordinator for them) asked Kring to erase
    /// their data, which happens at this time unless they cancel; null
    /// otherwise. Shown to the member and the circle's staff.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub leaving_at: Option<jiff::Timestamp>,
}

/// A circle's current members and workers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [
    {
        "id": "0194f1a3bb217c2d9e8f7a6b5c4d3e2f",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "pseudonym": "Sam",
        "role": "worker",
        "joined_at": "2026-11-02T09:00:00Z",
        "state": null,
        "away_until": null,
        "nudges_enabled": null,
        "last_activity_at": null,
        "consent": null,
        "account_id": null
    },
    {
        "id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "pseudonym": "Zonnebloem",
        "role": "member",
        "joined_at": "2026-11-02T10:00:00Z",
        "state": "active",
        "away_until": null,
        "nudges_enabled": true,
        "last_activity_at": "2026-11-20T18:12:00Z",
        "consent": {"version": 1, "at": "2026-11-02T10:00:00Z"},
        "account_id": null
    }
]}))]
pub struct MemberList {
    /// Workers first, then members, each in the order they joined.
    pub items: Vec<MemberView>,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: String,
    circle_id: String,
    account_id: String,
    pseudonym: String,
    role: String,
    joined_at: i64,
    left_at: Option<i64>,
    away_until: Option<i64>,
    nudges_enabled: i64,
    last_activity_at: i64,
    consent_version: Option<i64>,
    consented_at: Option<i64>,
    erasure_due_at: Option<i64>,
}

const MEMBER_SELECT: &str =
    "SELECT id, circle_id, account_id, pseudonym, role, joined_at, left_at, away_until,
        nudges_enabled, last_activity_at, consent_version, consented_at,
        (SELECT e.due_at FROM erasures e
         WHERE e.account_id = memberships.account_id AND e.erased_at IS NULL) AS erasure_due_at
     FROM memberships";

impl MemberRow {
    fn into_view(self, full: bool, now: i64) -> ApiResult<MemberView> {
        let state = if self.left_at.is_some() {
            MembershipState::Left
        } else if self.away_until.is_some_and(|t| t > now) {
            MembershipState::Away
        } else {
            MembershipState::Active
        };
        let consent = match (self.consent_version, self.consented_at) {
            (Some(version), Some(at)) => Some(Consent {
                version,
                at: from_ms(at),
            }),
            _ => None,
        };
        Ok(MemberView {
            role: MembershipRole::parse(&self.role).map_err(ApiError::Internal)?,
            id: self.id,
            circle_id: self.circle_id,
            pseudonym: self.pseudonym,
            joined_at: from_ms(self.joined_at),
            state: full.then_some(state),
            // A break that ended is no break.
            away_until: if full {
                opt_from_ms(self.away_until.filter(|&t| t > now))
            } else {
                None
            },
            nudges_enabled: full.then_some(self.nudges_enabled != 0),
            last_activity_at: full.then(|| from_ms(self.last_activity_at)),
            consent: if full { consent } else { None },
            account_id: full.then_some(self.account_id),
            leaving_at: if full {
                opt_from_ms(self.erasure_due_at)
            } else {
                None
            },
        })
    }
}

/// Loads one membership as its owner or the circle's staff see it.
pub async fn load_member(
    conn: &mut AnyConnection,
    membership_id: &str,
    now: i64,
) -> ApiResult<MemberView> {
    let row: Option<MemberRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MEMBER_SELECT} WHERE id = $1"
    )))
    .bind(membership_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(ApiError::NotFound("membership"))?
        .into_view(true, now)
}

/// The circle's current members and workers.
///
/// Anyone who can see the circle: its members and workers, and the
/// organisation's coordinators. Everyone sees pseudonyms, roles and when
/// people joined; the circle's staff also see each member's state,
/// away-until, reminders, last activity, consent and account id, and a
/// member sees those of their own membership. In one list, workers first
/// (no pagination: circles are small). Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/members", tag = "memberships",
    operation_id = "circle_members_list",
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "Members and workers", body = MemberList),
    )
)]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<MemberList>> {
    let mut conn = state.store.pool().acquire().await?;
    let access = access(&mut conn, &caller, &circle_id).await?;
    let rows: Vec<MemberRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{MEMBER_SELECT} WHERE circle_id = $1 AND left_at IS NULL ORDER BY role DESC, joined_at, id"
    )))
    .bind(&access.circle_id)
    .fetch_all(&mut *conn)
    .await?;
    let now = state.now_ms();
    let staff = access.is_staff();
    audit.shown(
        Kind::MemberList,
        Action::List,
        rows.iter().map(|r| Subject::membership(&r.id)),
    );
    let items = rows
        .into_iter()
        .map(|r| {
            let full = staff || r.account_id == caller.account_id;
            r.into_view(full, now)
        })
        .collect::<ApiResult<_>>()?;
    Ok(axum::Json(MemberList { items }))
}

/// Your membership of this circle.
///
/// Members and workers of the circle; a coordinator who is not one of its
/// workers gets 403 `not_in_circle`. Shows your state, break, reminders
/// and, for members, the agreement version you consented to: when the
/// circle's `agreement.version` is higher, ask for consent again. Changes
/// nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/membership", tag = "memberships",
    operation_id = "circle_membership_get",
    extensions(("x-problem-codes" = json!([Code::NotInCircle]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "Your membership", body = MemberView),
    )
)]
pub async fn get_membership(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<MemberView>> {
    let mut conn = state.store.pool().acquire().await?;
    let access = access(&mut conn, &caller, &circle_id).await?;
    let id = access.membership_id()?;
    Ok(axum::Json(
        load_member(&mut conn, id, state.now_ms()).await?,
    ))
}

/// Changes to your membership; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"nudges_enabled": false, "away_until": "2026-11-30T09:00:00Z"}))]
pub struct UpdateMembership {
    /// A new name in this circle; it must not look like one in use (409
    /// `pseudonym_taken`).
    #[schema(value_type = Option<Pseudonym>)]
    pub pseudonym: Option<String>,
    /// Gentle reminders on or off. With reminders off your worker is still
    /// told when a silence lasts, as the circle's agreement says.
    pub nudges_enabled: Option<bool>,
    /// Taking a break: no reminders, no alerts, no wake-ups or escalation of
    /// silence alerts until this time (at most a year ahead). Null ends the
    /// break now. However the break ends, the silence starts counting again
    /// at its end.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T09:00:00Z")]
    pub away_until: Option<Option<String>>,
}

/// Change your pseudonym, reminders or away-until in this circle.
///
/// Members and workers of the circle (a coordinator outside it gets 403
/// `not_in_circle`). Absent fields stay as they are; `away_until: null`
/// ends a break now. A break or reminders off take effect at once: pending
/// reminders and alerts are planned again, and the silence counts from the
/// end of a break however it ends. Changes no other circle. Answers the
/// membership as it is now.
#[utoipa::path(
    patch, path = "/v1/circles/{circle_id}/membership", tag = "memberships",
    operation_id = "circle_membership_update",
    extensions(("x-problem-codes" = json!([Code::NotInCircle, Code::PseudonymTaken]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    request_body = UpdateMembership,
    responses(
        (status = 200, description = "Your membership", body = MemberView),
    )
)]
pub async fn update_membership(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<UpdateMembership>,
) -> ApiResult<axum::Json<MemberView>> {
    let now = state.now_ms();
    let mut v = Validator::default();
    let pseudonym = req
        .pseudonym
        .as_deref()
        .map(|p| v.check("pseudonym", Pseudonym::parse(p)));
    let away = req.away_until.as_ref().map(|a| match a {
        None => Some(None),
        Some(s) => v
            .check(
                "away_until",
                parse_timestamp(s).and_then(|t| {
                    let ms = t.as_millisecond();
                    if ms <= now {
                        Err("must be in the future".into())
                    } else if ms > now + MAX_AWAY_MS {
                        Err("must be at most a year ahead".into())
                    } else {
                        Ok(ms)
                    }
                }),
            )
            .map(Some),
    });
    v.finish()?;

    let changes = Changes {
        pseudonym: pseudonym.flatten(),
        nudges_enabled: req.nudges_enabled,
        away_until: away.flatten(),
    };
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    let id = access.membership_id()?.to_owned();
    let (circle, membership) = (
        CircleId::from(access.circle_id.as_str()),
        MembershipId::from(id.as_str()),
    );
    membership::change(&mut tx, &circle, &membership, changes, now).await?;
    let view = load_member(&mut tx, &id, now).await?;
    tx.commit().await?;
    Ok(axum::Json(view))
}

/// Consent to an agreement version.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"version": 2}))]
pub struct ConsentRequest {
    /// The agreement version you read and agree to; must be the current one
    /// (another answers 409 `agreement_changed`).
    #[schema(example = 2, minimum = 1)]
    pub version: i64,
}

/// Members: consent to the circle's current agreement (after it changed).
///
/// Members of the circle only (workers consent to nothing: 403
/// `members_only`). Show the circle's `agreement` and send its `version`;
/// an older or newer one is 409 `agreement_changed` (load the circle again).
/// Records the version and the time of consent.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/membership/consent", tag = "memberships",
    operation_id = "circle_membership_consent",
    extensions(("x-problem-codes" = json!([Code::MembersOnly, Code::AgreementChanged]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    request_body = ConsentRequest,
    responses(
        (status = 200, description = "Your membership with the new consent", body = MemberView),
    )
)]
pub async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<ConsentRequest>,
) -> ApiResult<axum::Json<MemberView>> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    let id = access.member_membership_id()?.to_owned();
    if req.version != access.agreement_version {
        return Err(ApiError::new(
            Code::AgreementChanged,
            format!(
                "The current agreement is version {}; read it and consent to that",
                access.agreement_version
            ),
        ));
    }
    let (circle, membership) = (
        CircleId::from(access.circle_id.as_str()),
        MembershipId::from(id.as_str()),
    );
    membership::consent(&mut tx, &circle, &membership, req.version, now).await?;
    let view = load_member(&mut tx, &id, now).await?;
    tx.commit().await?;
    Ok(axum::Json(view))
}

/// Leave this circle. Your posts stay, under your pseudonym.
///
/// Members and workers of the circle (a coordinator outside it gets 403
/// `not_in_circle`). Ends your reminders and alerts in this circle; the
/// circle is then hidden from you (404). To come back, a member joins with
/// a new invite, and a worker is added again by a coordinator; either comes
/// back with a new pseudonym and a fresh start.
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/membership/leave", tag = "memberships",
    operation_id = "circle_membership_leave",
    extensions(("x-problem-codes" = json!([Code::NotInCircle]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 204, description = "You left the circle"),
    )
)]
pub async fn leave(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    let id = access.membership_id()?.to_owned();
    let (circle, membership) = (
        CircleId::from(access.circle_id.as_str()),
        MembershipId::from(id.as_str()),
    );
    membership::leave(&mut tx, &circle, &membership, now).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
