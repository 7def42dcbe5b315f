//! Circles: create, list, read and change them (staffing is in
//! [`super::staffing`], the agreement text in [`super::agreement`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::accounts::types::Locale;
use crate::circles::access;
use crate::circles::policy::EscalationPolicy;
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::cursor::{Cursor, CursorQuery, next_cursor};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json, Query, Role};
use crate::ids::CircleId;
use crate::secrets::new_id;
use crate::state::AppState;

use super::agreement::{default_agreement, validate_agreement};
use super::settings::{self, CircleChanges};
use super::staffing::add_worker_membership;

/// Who sees members' check-ins: `circle` (everyone in the circle) or
/// `workers` (only the circle's workers, and each member their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckinVisibility {
    /// Everyone in the circle.
    Circle,
    /// Only the circle's workers (and the member themself).
    Workers,
}

impl CheckinVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Circle => "circle",
            Self::Workers => "workers",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "circle" => Ok(Self::Circle),
            "workers" => Ok(Self::Workers),
            other => Err(format!("unknown check-in visibility {other}")),
        }
    }
}

/// What members agree to when they join: how Kring reminds them and when
/// their worker is told.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Agreement {
    /// Goes up by one whenever the text changes; members consent to a version.
    #[schema(example = 1)]
    pub version: i64,
    /// The text to show before asking for consent.
    #[schema(
        example = "Jij bepaalt wanneer je schrijft. Als je een tijd niets laat horen, krijg je een vriendelijke herinnering."
    )]
    pub text: String,
}

/// The caller's place in a circle.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyMembership {
    /// Your membership id.
    pub id: String,
    /// Whether you are a member or a worker here.
    pub role: crate::circles::members::MembershipRole,
    /// The name others in this circle see for you.
    #[schema(example = "Zonnebloem")]
    pub pseudonym: String,
    /// The agreement version this member consented to (null for workers).
    pub consent_version: Option<i64>,
}

/// A circle as the caller sees it: a small group with its workers, its
/// rhythm and escalation policy, and the agreement its members consent to.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "organisation_id": "0194f1a0c0de7a11b2c3d4e5f6a7b8c9",
    "name": "Samen sterk",
    "theme": "Eenzaamheid na pensioen",
    "language": "nl",
    "rhythm_days": 2,
    "escalation_policy": {
        "steps": [
            {"after_hours": 48, "action": "nudge"},
            {"after_hours": 72, "action": "nudge"},
            {"after_hours": 96, "action": "alert_worker"}
        ],
        "coordinator_after_working_hours": 8
    },
    "checkin_visibility": "workers",
    "sensitive": false,
    "agreement": {"version": 1, "text": "Jij bepaalt wanneer je schrijft. ..."},
    "my_membership": {"id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f", "role": "member", "pseudonym": "Zonnebloem", "consent_version": 1},
    "unread_count": 3,
    "created_at": "2026-11-02T09:00:00Z",
    "updated_at": "2026-11-02T09:00:00Z"
}))]
pub struct Circle {
    /// The circle's id.
    pub id: String,
    /// The organisation the circle belongs to.
    pub organisation_id: String,
    /// The circle's name.
    #[schema(example = "Samen sterk")]
    pub name: String,
    /// What the circle is about; may be empty.
    #[schema(example = "Eenzaamheid na pensioen")]
    pub theme: String,
    /// The circle's language; its default agreement is written in it.
    pub language: Locale,
    /// How often contact is expected, in days (1 to 14).
    #[schema(example = 2)]
    pub rhythm_days: i64,
    /// What happens while a member stays silent, and when.
    pub escalation_policy: EscalationPolicy,
    /// Who sees members' check-ins.
    pub checkin_visibility: CheckinVisibility,
    /// The circle's subject itself is private (debts, an illness): pushes
    /// about it are discreet for members who keep the default
    /// (`discreet_pushes: sensitive_circles`), naming no circle, person or
    /// message on the lock screen.
    pub sensitive: bool,
    /// What members consent to; its `version` goes up when the text changes.
    pub agreement: Agreement,
    /// Your membership; null for a coordinator who is not in the circle.
    pub my_membership: Option<MyMembership>,
    /// Posts by others since your read position.
    #[schema(example = 3)]
    pub unread_count: i64,
    /// When the circle was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When its settings last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
}

/// A page of circles, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "items": [{
        "id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "organisation_id": "0194f1a0c0de7a11b2c3d4e5f6a7b8c9",
        "name": "Samen sterk",
        "theme": "Eenzaamheid na pensioen",
        "language": "nl",
        "rhythm_days": 2,
        "escalation_policy": {
            "steps": [
                {"after_hours": 48, "action": "nudge"},
                {"after_hours": 72, "action": "nudge"},
                {"after_hours": 96, "action": "alert_worker"}
            ],
            "coordinator_after_working_hours": 8,
            "realert_after_days": 7
        },
        "checkin_visibility": "workers",
        "sensitive": false,
        "agreement": {"version": 1, "text": "Jij bepaalt wanneer je schrijft."},
        "my_membership": {"id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f", "role": "member", "pseudonym": "Zonnebloem", "consent_version": 1},
        "unread_count": 3,
        "created_at": "2026-11-02T09:00:00Z",
        "updated_at": "2026-11-02T09:00:00Z"
    }],
    "next_cursor": null
}))]
pub struct CirclePage {
    /// The circles on this page.
    pub items: Vec<Circle>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CircleRow {
    id: String,
    organisation_id: String,
    name: String,
    theme: String,
    language: String,
    rhythm_days: i64,
    escalation_policy: String,
    checkin_visibility: String,
    sensitive: i64,
    agreement_version: i64,
    agreement_text: String,
    created_at: i64,
    updated_at: i64,
    membership_id: Option<String>,
    membership_role: Option<String>,
    pseudonym: Option<String>,
    consent_version: Option<i64>,
    unread_count: i64,
}

const CIRCLE_SELECT: &str = "
    SELECT c.id, c.organisation_id, c.name, c.theme, c.language, c.rhythm_days,
           c.escalation_policy, c.checkin_visibility, c.sensitive, c.agreement_version, c.agreement_text,
           c.created_at, c.updated_at,
           m.id AS membership_id, m.role AS membership_role, m.pseudonym, m.consent_version,
           CASE WHEN m.id IS NULL THEN 0 ELSE
             (SELECT COUNT(*) FROM posts p
              WHERE p.circle_id = c.id AND p.created_at > m.last_read_at
                AND p.deleted_at IS NULL AND p.author_membership_id <> m.id)
           END AS unread_count
    FROM circles c
    LEFT JOIN memberships m ON m.circle_id = c.id AND m.account_id = $1 AND m.left_at IS NULL";

impl CircleRow {
    fn into_view(self) -> ApiResult<Circle> {
        let internal = |e: String| ApiError::Internal(format!("circle {}: {e}", self.id));
        let escalation_policy: EscalationPolicy =
            serde_json::from_str(&self.escalation_policy).map_err(|e| internal(e.to_string()))?;
        let my_membership = match (self.membership_id, self.membership_role, self.pseudonym) {
            (Some(id), Some(role), Some(pseudonym)) => Some(MyMembership {
                id,
                role: crate::circles::members::MembershipRole::parse(&role).map_err(internal)?,
                pseudonym,
                consent_version: self.consent_version,
            }),
            _ => None,
        };
        Ok(Circle {
            language: Locale::parse(&self.language).map_err(internal)?,
            checkin_visibility: CheckinVisibility::parse(&self.checkin_visibility)
                .map_err(internal)?,
            id: self.id,
            organisation_id: self.organisation_id,
            name: self.name,
            theme: self.theme,
            rhythm_days: self.rhythm_days,
            sensitive: self.sensitive != 0,
            escalation_policy,
            agreement: Agreement {
                version: self.agreement_version,
                text: self.agreement_text,
            },
            my_membership,
            unread_count: self.unread_count,
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
        })
    }
}

pub async fn load_circle(
    conn: &mut AnyConnection,
    circle_id: &str,
    account_id: &str,
) -> ApiResult<Circle> {
    let row: Option<CircleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CIRCLE_SELECT} WHERE c.id = $2"
    )))
    .bind(account_id)
    .bind(circle_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(ApiError::NotFound("circle"))?.into_view()
}

/// Your circles (coordinators: every circle of the organisation), oldest first.
///
/// Any signed-in person. Members and workers get the circles they are in;
/// coordinators get every circle of the organisation, with `my_membership`
/// null where they are not a worker. Paginated (`limit`, `cursor` →
/// `next_cursor`). Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles", tag = "circles",
    operation_id = "circles_list",
    security(("bearer" = [])),
    params(CursorQuery),
    responses(
        (status = 200, description = "Circles", body = CirclePage),
    )
)]
pub async fn list_circles(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CursorQuery>,
) -> ApiResult<axum::Json<CirclePage>> {
    let page = query.parse()?;
    let (after_ms, after_id) = page
        .cursor
        .map(|c| (c.at_ms, c.id))
        .unwrap_or((i64::MIN, String::new()));
    let mut rows: Vec<CircleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CIRCLE_SELECT}
         WHERE c.organisation_id = $2 AND c.archived_at IS NULL
           AND (m.id IS NOT NULL OR $3 = 1)
           AND (c.created_at > $4 OR (c.created_at = $4 AND c.id > $5))
         ORDER BY c.created_at, c.id
         LIMIT $6"
    )))
    .bind(&caller.account_id)
    .bind(&caller.organisation_id)
    .bind(i64::from(caller.role == Role::Coordinator))
    .bind(after_ms)
    .bind(after_id)
    .bind(page.limit + 1)
    .fetch_all(state.store.pool())
    .await?;
    let next = next_cursor(&mut rows, page.limit, |r| Cursor {
        at_ms: r.created_at,
        id: r.id.clone(),
    });
    Ok(axum::Json(CirclePage {
        items: rows
            .into_iter()
            .map(CircleRow::into_view)
            .collect::<ApiResult<_>>()?,
        next_cursor: next,
    }))
}

/// A new circle; only `name` is required.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Samen sterk",
    "theme": "Eenzaamheid na pensioen",
    "language": "nl",
    "rhythm_days": 2,
    "checkin_visibility": "workers"
}))]
pub struct CreateCircle {
    /// The circle's name.
    #[schema(value_type = crate::openapi::Name)]
    pub name: String,
    /// What the circle is about.
    #[schema(value_type = Option<crate::openapi::Theme>)]
    pub theme: Option<String>,
    /// `nl` or `en` (default `nl`).
    #[schema(value_type = Option<Locale>)]
    pub language: Option<String>,
    /// 1 to 14 days (default 2).
    #[schema(example = 2, minimum = 1, maximum = 14)]
    pub rhythm_days: Option<i64>,
    /// Default: derived from the rhythm (see `EscalationPolicy`).
    pub escalation_policy: Option<EscalationPolicy>,
    /// Default: `workers`.
    pub checkin_visibility: Option<CheckinVisibility>,
    /// Whether the circle's subject itself is private (debts, an illness),
    /// so that pushes about it are discreet by default. Default: false.
    pub sensitive: Option<bool>,
    /// The agreement members consent to; default: a standard text in the
    /// circle's language describing the escalation policy.
    #[schema(value_type = Option<crate::openapi::AgreementText>)]
    pub agreement_text: Option<String>,
}

/// Staff: create a circle. A worker who creates one becomes its worker.
///
/// Staff only (members get 403 `staff_only`). A worker becomes the circle's
/// first worker, under their display name; a coordinator does not, and adds
/// workers with `circle_workers_add`. Absent settings get their defaults:
/// language `nl`, a rhythm of 2 days, the default escalation policy for the
/// rhythm, check-ins seen by workers only, and the standard agreement in
/// the circle's language (version 1). Then invite members with
/// `circle_invites_create`. Send an `Idempotency-Key`: a retry never makes
/// a second circle.
#[utoipa::path(
    post, path = "/v1/circles", tag = "circles",
    operation_id = "circles_create",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = CreateCircle,
    responses(
        (status = 201, description = "The new circle", body = Circle),
    )
)]
pub async fn create_circle(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Json(req): Json<CreateCircle>,
) -> ApiResult<Response> {
    caller.require_staff()?;
    let mut v = Validator::default();
    let name = v.check("name", validate_name(&req.name));
    let theme = v.check("theme", validate_theme(req.theme.as_deref().unwrap_or("")));
    let language = v.check(
        "language",
        Locale::parse(req.language.as_deref().unwrap_or("nl")),
    );
    let rhythm = v.check("rhythm_days", validate_rhythm(req.rhythm_days.unwrap_or(2)));
    let policy = req
        .escalation_policy
        .clone()
        .unwrap_or_else(|| EscalationPolicy::default_for(rhythm.unwrap_or(2)));
    policy.validate("escalation_policy", &mut v);
    let agreement = match &req.agreement_text {
        Some(text) => v.check("agreement_text", validate_agreement(text)),
        None => language.map(|l| default_agreement(l, &policy)),
    };
    let (Some(name), Some(theme), Some(language), Some(rhythm), Some(agreement), true) =
        (name, theme, language, rhythm, agreement, v.is_ok())
    else {
        return Err(v.into_error());
    };
    let visibility = req.checkin_visibility.unwrap_or(CheckinVisibility::Workers);
    let policy_json =
        serde_json::to_string(&policy).map_err(|e| ApiError::Internal(e.to_string()))?;

    let now = state.now_ms();
    let id = new_id();
    let mut tx = idem.begin(&state.store).await?;
    sqlx::query(
        "INSERT INTO circles (id, organisation_id, name, theme, language, rhythm_days, escalation_policy,
                              checkin_visibility, sensitive, agreement_version, agreement_text, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $11)",
    )
    .bind(&id)
    .bind(&caller.organisation_id)
    .bind(&name)
    .bind(&theme)
    .bind(language.as_str())
    .bind(rhythm)
    .bind(&policy_json)
    .bind(visibility.as_str())
    .bind(i64::from(req.sensitive.unwrap_or(false)))
    .bind(&agreement)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    crate::questionnaires::plan::write_default(&mut tx, &id).await?;
    if caller.role == Role::Worker {
        add_worker_membership(&mut tx, &id, &caller.account_id, None, now).await?;
    }
    let circle = load_circle(&mut tx, &id, &caller.account_id).await?;
    idem.commit(tx, (StatusCode::CREATED, axum::Json(circle)))
        .await
}

/// One circle.
///
/// Its current members and workers, and the coordinators of its
/// organisation; for anyone else it does not exist (404). Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}", tag = "circles",
    operation_id = "circle_get",
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "The circle", body = Circle),
    )
)]
pub async fn get_circle(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<Circle>> {
    let mut conn = state.store.pool().acquire().await?;
    let access = access(&mut conn, &caller, &circle_id).await?;
    Ok(axum::Json(
        load_circle(&mut conn, &access.circle_id, &caller.account_id).await?,
    ))
}

/// Changes to a circle; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "rhythm_days": 3,
    "agreement_text": "Jij bepaalt wanneer je schrijft. Na 3 dagen stilte krijg je een herinnering."
}))]
pub struct UpdateCircle {
    /// A new name.
    #[schema(value_type = Option<crate::openapi::Name>)]
    pub name: Option<String>,
    /// A new theme; empty for none.
    #[schema(value_type = Option<crate::openapi::Theme>)]
    pub theme: Option<String>,
    /// A new language (it does not translate an agreement already written).
    #[schema(value_type = Option<Locale>)]
    pub language: Option<String>,
    /// 1 to 14 days. Changing the rhythm without giving a policy resets the
    /// policy to the default for the new rhythm.
    #[schema(minimum = 1, maximum = 14)]
    pub rhythm_days: Option<i64>,
    /// A new escalation policy; every member's pending steps are planned
    /// again with it.
    pub escalation_policy: Option<EscalationPolicy>,
    /// Who sees members' check-ins from now on.
    pub checkin_visibility: Option<CheckinVisibility>,
    /// Mark the circle sensitive (pushes about it discreet by default) or not.
    pub sensitive: Option<bool>,
    /// A new agreement text raises the agreement version; members are asked
    /// to consent again.
    #[schema(value_type = Option<crate::openapi::AgreementText>)]
    pub agreement_text: Option<String>,
}

/// Staff of the circle: change its name, theme, rhythm, policy, agreement or sensitivity.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`). Absent fields stay as they are; every bad field is
/// listed in one 422. A new rhythm without a policy resets the policy to
/// the default for that rhythm; a new policy reschedules the pending
/// reminders and alerts of every member at once. A different agreement text
/// raises the agreement's version: members see their `consent_version`
/// fall behind and are asked to consent again (`circle_membership_consent`);
/// the same text changes nothing. Marking the circle sensitive makes pushes
/// about it discreet for members who keep the default, including pushes
/// still waiting to be sent. Answers the circle as it is now.
#[utoipa::path(
    patch, path = "/v1/circles/{circle_id}", tag = "circles",
    operation_id = "circle_update",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    request_body = UpdateCircle,
    responses(
        (status = 200, description = "The updated circle", body = Circle),
    )
)]
pub async fn update_circle(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<UpdateCircle>,
) -> ApiResult<axum::Json<Circle>> {
    let mut v = Validator::default();
    let name = req
        .name
        .as_deref()
        .map(|n| v.check("name", validate_name(n)));
    let theme = req
        .theme
        .as_deref()
        .map(|t| v.check("theme", validate_theme(t)));
    let language = req
        .language
        .as_deref()
        .map(|l| v.check("language", Locale::parse(l)));
    let rhythm = req
        .rhythm_days
        .map(|r| v.check("rhythm_days", validate_rhythm(r)));
    let policy = match (&req.escalation_policy, rhythm) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(Some(r))) => Some(EscalationPolicy::default_for(r)),
        _ => None,
    };
    if let Some(p) = &policy {
        p.validate("escalation_policy", &mut v);
    }
    let agreement = req
        .agreement_text
        .as_deref()
        .map(|t| v.check("agreement_text", validate_agreement(t)));
    v.finish()?;

    let changes = CircleChanges {
        name: name.flatten(),
        theme: theme.flatten(),
        language: language.flatten().map(|l| l.as_str()),
        checkin_visibility: req.checkin_visibility.map(|v| v.as_str()),
        sensitive: req.sensitive,
        rhythm_days: rhythm.flatten(),
        escalation_policy: policy,
        agreement_text: agreement.flatten(),
    };

    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    access.require_staff()?;
    let id = access.circle_id.as_str();
    settings::change(&mut tx, &CircleId::from(id), changes, now).await?;
    let circle = load_circle(&mut tx, id, &caller.account_id).await?;
    tx.commit().await?;
    Ok(axum::Json(circle))
}

// Limits count the characters as sent; the text is trimmed after that (the
// spec states these rules: `crate::openapi::{Name, Theme, AgreementText}`).

/// A circle's name follows the rules of every name (as a staff member's
/// display name does).
fn validate_name(name: &str) -> Result<String, String> {
    crate::accounts::me::validate_display_name(name)
}

/// A theme is shown beside the name, so it takes no invisible characters
/// either.
fn validate_theme(theme: &str) -> Result<String, String> {
    let len = theme.chars().count();
    let theme = crate::http::text::name(theme)?;
    let theme = theme.trim();
    if len > 200 {
        return Err("must be at most 200 characters".into());
    }
    Ok(theme.to_owned())
}

fn validate_rhythm(days: i64) -> Result<i64, String> {
    if (1..=14).contains(&days) {
        Ok(days)
    } else {
        Err("must be 1 to 14 days".into())
    }
}
