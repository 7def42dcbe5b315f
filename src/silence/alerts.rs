//! Alerts for workers: list, acknowledge, snooze, resolve; and the overview
//! of how each member of a circle is doing.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::access;
use crate::clock::{from_ms, opt_from_ms};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::cursor::{Cursor, CursorQuery};
use crate::http::time::parse_timestamp;
use crate::http::{Caller, Json, Query, Role};
use crate::state::AppState;

/// Where an alert stands: `open` (nobody has taken it up), `acknowledged`
/// (a worker is on it; no escalation), `snoozed` (until `snoozed_until`,
/// then open again) or `resolved` (by a worker with an outcome, or by Kring
/// when the member was active again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Snoozed,
    Resolved,
}

/// How an alert was closed: `reached` (spoke with the member), `no_answer`
/// (tried, no answer), `not_needed` (no contact needed), `referred` (handed
/// over to someone else), `other`, or Kring's own `member_active` (the
/// member was active again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionOutcome {
    /// Spoke with the member.
    Reached,
    /// Tried, no answer.
    NoAnswer,
    /// No contact needed.
    NotNeeded,
    /// Handed over to someone else.
    Referred,
    Other,
    /// Set by Kring: the member was active again.
    MemberActive,
}

/// The outcomes a worker can choose when resolving an alert: `reached`,
/// `no_answer`, `not_needed`, `referred` or `other` (`member_active` is
/// Kring's own).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChosenOutcome {
    /// Spoke with the member.
    Reached,
    /// Tried, no answer.
    NoAnswer,
    /// No contact needed.
    NotNeeded,
    /// Handed over to someone else.
    Referred,
    Other,
}

impl ResolutionOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reached => "reached",
            Self::NoAnswer => "no_answer",
            Self::NotNeeded => "not_needed",
            Self::Referred => "referred",
            Self::Other => "other",
            Self::MemberActive => "member_active",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reached" => Self::Reached,
            "no_answer" => Self::NoAnswer,
            "not_needed" => Self::NotNeeded,
            "referred" => Self::Referred,
            "other" => Self::Other,
            "member_active" => Self::MemberActive,
            _ => return None,
        })
    }
}

/// Why an alert was opened: `silence` (the policy's alert step, or a repeat
/// of it while the member stays quiet) or `contact_request` (the member
/// asked for contact in a check-in; one alert per request).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertReason {
    Silence,
    ContactRequest,
}

/// An alert to a circle's workers about one member.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1f0a1b27c3d8e9f0a1b2c3d4e5f",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
    "pseudonym": "Zonnebloem",
    "reason": "silence",
    "status": "open",
    "silent_since": "2026-11-18T18:12:00Z",
    "opened_at": "2026-11-22T18:12:00Z",
    "acknowledged_at": null,
    "snoozed_until": null,
    "resolved_at": null,
    "resolution_outcome": null,
    "resolution_note": null,
    "escalate_at": "2026-11-23T17:00:00Z",
    "escalated_at": null,
    "last_notified_at": null
}))]
pub struct Alert {
    /// The alert's id.
    pub id: String,
    /// The member's circle.
    pub circle_id: String,
    /// The member's membership.
    pub membership_id: String,
    /// The member's name in the circle.
    #[schema(example = "Zonnebloem")]
    pub pseudonym: String,
    /// Why it was opened.
    #[schema(value_type = AlertReason)]
    pub reason: String,
    /// Where it stands.
    pub status: AlertStatus,
    /// When the silence began.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub silent_since: Option<jiff::Timestamp>,
    /// When it was opened.
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: jiff::Timestamp,
    /// When a worker acknowledged (or first snoozed) it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<jiff::Timestamp>,
    /// While snoozed: when it opens again.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub snoozed_until: Option<jiff::Timestamp>,
    /// When it was resolved.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<jiff::Timestamp>,
    /// How it was resolved.
    pub resolution_outcome: Option<ResolutionOutcome>,
    /// The resolving worker's note for colleagues.
    pub resolution_note: Option<String>,
    /// When it goes to the coordinators if nobody acknowledges it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub escalate_at: Option<jiff::Timestamp>,
    /// When it went to the coordinators.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub escalated_at: Option<jiff::Timestamp>,
    /// When the workers were last told again about this alert: the member
    /// stayed quiet past another step (the repeat after the ladder, or a
    /// silence after a break), or a snooze ran out. Null: told once.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_notified_at: Option<jiff::Timestamp>,
}

/// A page of alerts, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "0194f1f0a1b27c3d8e9f0a1b2c3d4e5f",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "pseudonym": "Zonnebloem",
        "reason": "contact_request",
        "status": "acknowledged",
        "silent_since": null,
        "opened_at": "2026-11-22T18:12:00Z",
        "acknowledged_at": "2026-11-22T18:20:00Z",
        "snoozed_until": null,
        "resolved_at": null,
        "resolution_outcome": null,
        "resolution_note": null,
        "escalate_at": null,
        "escalated_at": null,
        "last_notified_at": null
    }],
    "next_cursor": null
}))]
pub struct AlertList {
    /// The alerts on this page.
    pub items: Vec<Alert>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    circle_id: String,
    membership_id: String,
    pseudonym: String,
    reason: String,
    status: String,
    silence_start: Option<i64>,
    opened_at: i64,
    acknowledged_at: Option<i64>,
    snoozed_until: Option<i64>,
    resolved_at: Option<i64>,
    resolution_outcome: Option<String>,
    resolution_note: Option<String>,
    escalate_at: Option<i64>,
    escalated_at: Option<i64>,
    last_notified_at: Option<i64>,
}

impl AlertRow {
    fn into_view(self) -> Alert {
        Alert {
            status: match self.status.as_str() {
                "acknowledged" => AlertStatus::Acknowledged,
                "snoozed" => AlertStatus::Snoozed,
                "resolved" => AlertStatus::Resolved,
                _ => AlertStatus::Open,
            },
            id: self.id,
            circle_id: self.circle_id,
            membership_id: self.membership_id,
            pseudonym: self.pseudonym,
            reason: self.reason,
            silent_since: opt_from_ms(self.silence_start),
            opened_at: from_ms(self.opened_at),
            acknowledged_at: opt_from_ms(self.acknowledged_at),
            snoozed_until: opt_from_ms(self.snoozed_until),
            resolved_at: opt_from_ms(self.resolved_at),
            resolution_outcome: self
                .resolution_outcome
                .as_deref()
                .and_then(ResolutionOutcome::parse),
            resolution_note: self.resolution_note,
            escalate_at: opt_from_ms(self.escalate_at),
            escalated_at: opt_from_ms(self.escalated_at),
            last_notified_at: opt_from_ms(self.last_notified_at),
        }
    }
}

const ALERT_SELECT: &str =
    "SELECT al.id, al.circle_id, al.membership_id, m.pseudonym, al.reason, al.status,
        al.silence_start, al.opened_at, al.acknowledged_at, al.snoozed_until, al.resolved_at,
        al.resolution_outcome, al.resolution_note, al.escalate_at, al.escalated_at, al.last_notified_at
    FROM alerts al JOIN memberships m ON m.id = al.membership_id";

/// The alert, when the caller is a worker of its circle or a coordinator of
/// its organisation; otherwise it does not exist.
async fn visible_alert(
    conn: &mut AnyConnection,
    caller: &Caller,
    alert_id: &str,
) -> ApiResult<AlertRow> {
    caller
        .require_staff()
        .map_err(|_| ApiError::NotFound("alert"))?;
    let row: Option<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ALERT_SELECT}
         WHERE al.id = $1 AND al.organisation_id = $2
           AND ($3 = 1 OR EXISTS (SELECT 1 FROM memberships w WHERE w.circle_id = al.circle_id
                                  AND w.account_id = $4 AND w.role = 'worker' AND w.left_at IS NULL))"
    )))
    .bind(alert_id)
    .bind(&caller.organisation_id)
    .bind(i64::from(caller.role == Role::Coordinator))
    .bind(&caller.account_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(ApiError::NotFound("alert"))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (default: everything not resolved), `acknowledged`, `snoozed`, `resolved` or `all`.
    #[param(pattern = "^(open|acknowledged|snoozed|resolved|all)$")]
    pub status: Option<String>,
    /// Only this circle.
    #[param(pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub circle_id: Option<String>,
    /// How many alerts to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,200}$")]
    pub cursor: Option<String>,
}

/// Staff: alerts of your circles (coordinators: the whole organisation).
///
/// Workers see the alerts of the circles they work in; coordinators see
/// every alert of the organisation; members get 403 `staff_only`. Newest
/// first, in pages (`limit`, `cursor` → `next_cursor`). By default the ones
/// not yet resolved; `status` and `circle_id` narrow the list. Changes
/// nothing.
#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    operation_id = "alerts_list",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(AlertQuery),
    responses(
        (status = 200, description = "Alerts", body = AlertList),
    )
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Query(query): Query<AlertQuery>,
) -> ApiResult<axum::Json<AlertList>> {
    caller.require_staff()?;
    let page = CursorQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let status = match query.status.as_deref() {
        None => "unresolved",
        Some(s @ ("open" | "acknowledged" | "snoozed" | "resolved" | "all")) => s,
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be open, acknowledged, snoozed, resolved or all",
            ));
        }
    };
    let (after_at, after_id) = match &page.cursor {
        Some(c) => (c.at_ms, c.id.clone()),
        None => (i64::MAX, String::new()),
    };
    let mut rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ALERT_SELECT}
         WHERE al.organisation_id = $1
           AND ($2 = 1 OR EXISTS (SELECT 1 FROM memberships w WHERE w.circle_id = al.circle_id
                                  AND w.account_id = $3 AND w.role = 'worker' AND w.left_at IS NULL))
           AND ($4 = 'all' OR ($4 = 'unresolved' AND al.status <> 'resolved') OR al.status = $4)
           AND ($5 = '' OR al.circle_id = $5)
           AND ($6 = '' OR al.opened_at < $7 OR (al.opened_at = $7 AND al.id < $6))
         ORDER BY al.opened_at DESC, al.id DESC LIMIT $8"
    )))
    .bind(&caller.organisation_id)
    .bind(i64::from(caller.role == Role::Coordinator))
    .bind(&caller.account_id)
    .bind(status)
    .bind(query.circle_id.unwrap_or_default())
    .bind(&after_id)
    .bind(after_at)
    .bind(page.limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let more = rows.len() > usize::try_from(page.limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(page.limit).unwrap_or(0));
    let next_cursor = rows.last().filter(|_| more).map(|r| {
        Cursor {
            at_ms: r.opened_at,
            id: r.id.clone(),
        }
        .encode()
    });
    audit.shown(
        Kind::Alerts,
        Action::List,
        rows.iter().map(|r| Subject::membership(&r.membership_id)),
    );
    Ok(axum::Json(AlertList {
        items: rows.into_iter().map(AlertRow::into_view).collect(),
        next_cursor,
    }))
}

/// Staff: one alert.
///
/// A worker of the alert's circle or a coordinator of its organisation;
/// for anyone else (members too) it does not exist (404). Changes nothing.
#[utoipa::path(
    get, path = "/v1/alerts/{alert_id}", tag = "alerts",
    operation_id = "alert_get",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "The alert", body = Alert),
    )
)]
pub async fn get_alert(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(alert_id): Path<String>,
) -> ApiResult<axum::Json<Alert>> {
    let mut conn = state.store.pool().acquire().await?;
    let row = visible_alert(&mut conn, &caller, &alert_id).await?;
    audit.shown(
        Kind::Alerts,
        Action::Read,
        [Subject::membership(&row.membership_id)],
    );
    Ok(axum::Json(row.into_view()))
}

/// Opens a transaction on an alert the caller may change (not resolved);
/// the alert's id and whose alert it is.
async fn changeable(
    state: &AppState,
    caller: &Caller,
    alert_id: &str,
) -> ApiResult<(crate::store::Tx, String, Subject)> {
    let mut tx = state.store.begin().await?;
    let row = visible_alert(&mut tx, caller, alert_id).await?;
    if row.status == "resolved" {
        return Err(ApiError::new(
            Code::AlertResolved,
            "This alert is already resolved",
        ));
    }
    Ok((tx, row.id, Subject::membership(row.membership_id)))
}

/// Logs the change in its transaction, commits, and answers with the alert.
async fn finish(
    mut tx: crate::store::Tx,
    caller: &Caller,
    audit: &Audit,
    alert_id: &str,
    member: Subject,
) -> ApiResult<axum::Json<Alert>> {
    let row = visible_alert(&mut tx, caller, alert_id).await?;
    audit
        .changed(&mut tx, Kind::Alerts, Action::Change, member)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(row.into_view()))
}

/// Staff: acknowledge an alert ("I'm on it").
///
/// A worker of the alert's circle or a coordinator of its organisation (404
/// for anyone else). Stops the escalation to the coordinators; the other
/// workers see who took it up. A resolved alert cannot change (409
/// `alert_resolved`); acknowledging again changes nothing. Answers the
/// alert.
#[utoipa::path(
    post, path = "/v1/alerts/{alert_id}/acknowledge", tag = "alerts",
    operation_id = "alert_acknowledge",
    extensions(("x-problem-codes" = json!([Code::AlertResolved]))),
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "Acknowledged", body = Alert),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(alert_id): Path<String>,
) -> ApiResult<axum::Json<Alert>> {
    let (mut tx, id, member) = changeable(&state, &caller, &alert_id).await?;
    sqlx::query(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, $1),
                acknowledged_by = COALESCE(acknowledged_by, $2), snoozed_until = NULL, updated_at = $1
         WHERE id = $3",
    )
    .bind(state.now_ms())
    .bind(&caller.account_id)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    finish(tx, &caller, &audit, &id, member).await
}

/// Until when to snooze an alert.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"until": "2026-11-23T09:00:00Z"}))]
pub struct SnoozeRequest {
    /// When to be reminded again: in the future, at most 14 days ahead.
    #[schema(example = "2026-11-23T09:00:00Z", format = DateTime)]
    pub until: String,
}

/// Staff: snooze an alert until a time; it opens again then.
///
/// A worker of the alert's circle or a coordinator of its organisation (404
/// for anyone else). `until` must be in the future and at most 14 days
/// ahead (422). Snoozing counts as acknowledging: no escalation meanwhile.
/// When the time comes the alert opens again and the workers are told. A
/// resolved alert cannot change (409 `alert_resolved`). Answers the alert.
#[utoipa::path(
    post, path = "/v1/alerts/{alert_id}/snooze", tag = "alerts",
    operation_id = "alert_snooze",
    extensions(("x-problem-codes" = json!([Code::AlertResolved]))),
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert's id")),
    request_body = SnoozeRequest,
    responses(
        (status = 200, description = "Snoozed", body = Alert),
    )
)]
pub async fn snooze(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(alert_id): Path<String>,
    Json(req): Json<SnoozeRequest>,
) -> ApiResult<axum::Json<Alert>> {
    let now = state.now_ms();
    let until = parse_timestamp(&req.until)
        .and_then(|t| {
            let ms = t.as_millisecond();
            if ms <= now || ms > now + 14 * 86_400_000 {
                Err("must be in the future, at most 14 days ahead".to_owned())
            } else {
                Ok(ms)
            }
        })
        .map_err(|m| ApiError::field("until", m))?;
    let (mut tx, id, member) = changeable(&state, &caller, &alert_id).await?;
    // Snoozing is handling it: it counts as an acknowledgement.
    sqlx::query(
        "UPDATE alerts SET status = 'snoozed', snoozed_until = $1, acknowledged_at = COALESCE(acknowledged_at, $2),
                acknowledged_by = COALESCE(acknowledged_by, $3), updated_at = $2
         WHERE id = $4",
    )
    .bind(until)
    .bind(now)
    .bind(&caller.account_id)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    finish(tx, &caller, &audit, &id, member).await
}

/// How an alert ends.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"outcome": "reached", "note": "Gebeld; het gaat wat beter."}))]
pub struct ResolveRequest {
    /// `reached`, `no_answer`, `not_needed`, `referred` or `other`.
    #[schema(value_type = ChosenOutcome)]
    pub outcome: ResolutionOutcome,
    /// A short note for colleagues. It is about the member, so the member
    /// can read it in an export of their data (GDPR art. 15): write it as
    /// you would if they read along.
    #[schema(value_type = Option<crate::openapi::Note>)]
    pub note: Option<String>,
}

/// Staff: resolve an alert with an outcome and a note.
///
/// A worker of the alert's circle or a coordinator of its organisation (404
/// for anyone else). Closes it for every worker. The note is kept with the
/// alert for colleagues; the member does not see it in the app, but can
/// read it in an export of their data (`POST /v1/me/export`; GDPR art. 15
/// gives them access to notes about them). A resolved alert cannot change
/// (409 `alert_resolved`). Answers the alert.
#[utoipa::path(
    post, path = "/v1/alerts/{alert_id}/resolve", tag = "alerts",
    operation_id = "alert_resolve",
    extensions(("x-problem-codes" = json!([Code::AlertResolved]))),
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "The alert's id")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "Resolved", body = Alert),
    )
)]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(alert_id): Path<String>,
    Json(req): Json<ResolveRequest>,
) -> ApiResult<axum::Json<Alert>> {
    if req.outcome == ResolutionOutcome::MemberActive {
        return Err(ApiError::field(
            "outcome",
            "member_active is set by Kring itself",
        ));
    }
    // At most 1000 characters as sent (`crate::openapi::Note`), then trimmed.
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 1000) {
        return Err(ApiError::field("note", "must be at most 1000 characters"));
    }
    let note = req
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let (mut tx, id, member) = changeable(&state, &caller, &alert_id).await?;
    sqlx::query(
        "UPDATE alerts SET status = 'resolved', resolved_at = $1, resolved_by = $2, snoozed_until = NULL,
                resolution_outcome = $3, resolution_note = $4, updated_at = $1
         WHERE id = $5",
    )
    .bind(state.now_ms())
    .bind(&caller.account_id)
    .bind(req.outcome.as_str())
    .bind(note)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    finish(tx, &caller, &audit, &id, member).await
}

/// Where a member stands, as their worker sees it: `active` (active within
/// the circle's rhythm), `quiet` (quiet for longer than the rhythm),
/// `nudged` (quiet, and nudged in this silence), `alerted` (an unresolved
/// alert) or `away` (taking a break until `away_until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberCondition {
    /// Active within the circle's rhythm.
    Active,
    /// Quiet for longer than the rhythm.
    Quiet,
    /// Quiet, and nudged in this silence.
    Nudged,
    /// An unresolved alert.
    Alerted,
    /// Taking a break until `away_until`.
    Away,
}

/// How one member of a circle is doing.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOverview {
    /// The member's membership.
    pub membership_id: String,
    /// Their name in the circle.
    #[schema(example = "Zonnebloem")]
    pub pseudonym: String,
    /// Where they stand.
    pub condition: MemberCondition,
    /// Hours since the last activity.
    #[schema(example = 52)]
    pub quiet_for_hours: i64,
    /// Their last post, reply, reaction or check-in in the circle.
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: jiff::Timestamp,
    /// The end of their break; null when not away.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub away_until: Option<jiff::Timestamp>,
    /// Whether they get reminders.
    pub nudges_enabled: bool,
    /// The next step of the escalation policy, and when.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_step_due_at: Option<jiff::Timestamp>,
    /// Their alert that is not resolved, if any.
    pub open_alert_id: Option<String>,
    /// The moods of the last five mood check-ins, oldest first.
    pub recent_moods: Vec<i64>,
    /// The average mood over the last 14 days, if any.
    pub mood_average_14d: Option<f64>,
}

/// A circle at a glance, for its workers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "rhythm_days": 2,
    "members": [{
        "membership_id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "pseudonym": "Zonnebloem",
        "condition": "nudged",
        "quiet_for_hours": 52,
        "last_activity_at": "2026-11-20T18:12:00Z",
        "away_until": null,
        "nudges_enabled": true,
        "next_step_due_at": "2026-11-22T18:12:00Z",
        "open_alert_id": null,
        "recent_moods": [3, 2, 4]
    }]
}))]
pub struct CircleOverview {
    /// The circle.
    pub circle_id: String,
    /// How often contact is expected, in days.
    pub rhythm_days: i64,
    /// Every current member (not the workers), by pseudonym.
    pub members: Vec<MemberOverview>,
}

#[derive(sqlx::FromRow)]
struct OverviewRow {
    id: String,
    pseudonym: String,
    last_activity_at: i64,
    away_until: Option<i64>,
    nudges_enabled: i64,
    silence_start_at: Option<i64>,
    next_step_due_at: Option<i64>,
    open_alert_id: Option<String>,
    nudged: i64,
}

/// A silence starts at the last activity, or where a break ended.
fn silence_start(last_activity_at: i64, away_until: Option<i64>) -> i64 {
    away_until.map_or(last_activity_at, |a| a.max(last_activity_at))
}

/// Staff: how each member of the circle is doing.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`). For each member: their condition, how long they have
/// been quiet, a break, whether they get reminders, the next step of the
/// escalation policy and when, an open alert, and their recent moods.
/// Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/overview", tag = "alerts",
    operation_id = "circle_overview_get",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "Each member's state", body = CircleOverview),
    )
)]
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<CircleOverview>> {
    let now = state.now_ms();
    let mut conn = state.store.pool().acquire().await?;
    let access = access(&mut conn, &caller, &circle_id).await?;
    access.require_staff()?;
    let rhythm_days: i64 = sqlx::query_scalar("SELECT rhythm_days FROM circles WHERE id = $1")
        .bind(&access.circle_id)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<OverviewRow> = sqlx::query_as(
        "SELECT m.id, m.pseudonym, m.last_activity_at, m.away_until, m.nudges_enabled, m.silence_start_at,
                m.next_step_due_at,
                (SELECT al.id FROM alerts al WHERE al.membership_id = m.id AND al.status <> 'resolved'
                 ORDER BY al.opened_at DESC LIMIT 1) AS open_alert_id,
                (SELECT COUNT(*) FROM silence_steps s WHERE s.membership_id = m.id
                   AND s.silence_start = m.silence_start_at AND s.action = 'nudge') AS nudged
         FROM memberships m
         WHERE m.circle_id = $1 AND m.role = 'member' AND m.left_at IS NULL
         ORDER BY m.pseudonym_key",
    )
    .bind(&access.circle_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut members = Vec::with_capacity(rows.len());
    for row in rows {
        let moods: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT mood, created_at FROM checkins WHERE membership_id = $1 AND kind = 'mood'
             ORDER BY created_at DESC LIMIT 30",
        )
        .bind(&row.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut recent: Vec<i64> = moods.iter().take(5).map(|(m, _)| *m).collect();
        recent.reverse();
        let window: Vec<i64> = moods
            .iter()
            .filter(|(_, at)| *at >= now - 14 * 86_400_000)
            .map(|(m, _)| *m)
            .collect();
        let average =
            (!window.is_empty()).then(|| window.iter().sum::<i64>() as f64 / window.len() as f64);
        let condition = if row.away_until.is_some_and(|a| a > now) {
            MemberCondition::Away
        } else if row.open_alert_id.is_some() {
            MemberCondition::Alerted
        } else if row.nudged > 0 && row.silence_start_at.is_some() {
            MemberCondition::Nudged
        } else if now - silence_start(row.last_activity_at, row.away_until)
            > rhythm_days * 86_400_000
        {
            MemberCondition::Quiet
        } else {
            MemberCondition::Active
        };
        members.push(MemberOverview {
            membership_id: row.id,
            pseudonym: row.pseudonym,
            condition,
            quiet_for_hours: (now - row.last_activity_at).max(0) / 3_600_000,
            last_activity_at: from_ms(row.last_activity_at),
            away_until: opt_from_ms(row.away_until).filter(|a| a.as_millisecond() > now),
            nudges_enabled: row.nudges_enabled != 0,
            next_step_due_at: opt_from_ms(row.next_step_due_at),
            open_alert_id: row.open_alert_id,
            recent_moods: recent,
            mood_average_14d: average.map(|a| (a * 10.0).round() / 10.0),
        });
    }
    audit.shown(
        Kind::Overview,
        Action::List,
        members
            .iter()
            .map(|m| Subject::membership(&m.membership_id)),
    );
    Ok(axum::Json(CircleOverview {
        circle_id: access.circle_id,
        rhythm_days,
        members,
    }))
}
