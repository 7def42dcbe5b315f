//! Invites: short codes with no look-alike characters, an expiry and a use
//! limit; previewing one; and joining a circle with one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::me::{Me, load_me};
use crate::accounts::sessions::{Tokens, open_session, validate_password};
use crate::accounts::types::{Locale, TimeZoneName};
use crate::circles::access;
use crate::circles::handlers::Agreement;
use crate::circles::members::{MemberView, load_member};
use crate::circles::pseudonym::Pseudonym;
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::auth::MaybeCaller;
use crate::http::idempotency::{HoldsSecret, IdempotencyKey, Idempotent};
use crate::http::{Caller, Json, Role};
use crate::ids::{AccountId, CircleId};
use crate::secrets::{canonical_code, hash_token, new_code, new_id};
use crate::state::AppState;

use super::membership::{self, EnrolAs};
use crate::accounts::create::NewMember;

/// An invite: a short code with which members join a circle, until it
/// expires, is used up or revoked.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "code": "KX4M-7TQD-9HCA",
    "code_hint": "9HCA",
    "expires_at": "2026-11-29T09:00:00Z",
    "max_uses": 5,
    "uses": 0,
    "revoked": false,
    "created_at": "2026-11-22T09:00:00Z"
}))]
pub struct Invite {
    /// The invite's id (to revoke it).
    pub id: String,
    /// The circle it leads to.
    pub circle_id: String,
    /// The code itself: shown only in the response that creates it.
    #[schema(example = "KX4M-7TQD-9HCA")]
    pub code: Option<String>,
    /// The code's last four characters, to tell invites apart.
    #[schema(example = "9HCA")]
    pub code_hint: String,
    /// When the code stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// How many people may join with it.
    #[schema(example = 5)]
    pub max_uses: i64,
    /// How many have.
    #[schema(example = 1)]
    pub uses: i64,
    /// Whether staff withdrew it.
    pub revoked: bool,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// A circle's invites, newest first, without their codes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1a5c6d77e8f9a0b1c2d3e4f5a6b",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "code": null,
    "code_hint": "9HCA",
    "expires_at": "2026-11-09T09:00:00Z",
    "max_uses": 5,
    "uses": 1,
    "revoked": false,
    "created_at": "2026-11-02T09:00:00Z"
}]}))]
pub struct InviteList {
    /// The latest 200 invites.
    pub items: Vec<Invite>,
}

#[derive(sqlx::FromRow)]
struct InviteRow {
    id: String,
    circle_id: String,
    code_hint: String,
    expires_at: i64,
    max_uses: i64,
    uses: i64,
    revoked_at: Option<i64>,
    created_at: i64,
}

impl From<InviteRow> for Invite {
    fn from(r: InviteRow) -> Self {
        Self {
            id: r.id,
            circle_id: r.circle_id,
            code: None,
            code_hint: r.code_hint,
            expires_at: from_ms(r.expires_at),
            max_uses: r.max_uses,
            uses: r.uses,
            revoked: r.revoked_at.is_some(),
            created_at: from_ms(r.created_at),
        }
    }
}

/// A new invite; both fields may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"expires_in_hours": 168, "max_uses": 5}))]
pub struct CreateInvite {
    /// 1 to 720 hours (default 168, a week).
    #[schema(example = 168, minimum = 1, maximum = 720)]
    pub expires_in_hours: Option<i64>,
    /// How many people may join with it, 1 to 100 (default 1).
    #[schema(example = 1, minimum = 1, maximum = 100)]
    pub max_uses: Option<i64>,
}

/// Staff of the circle: a new invite code for members.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`). The code (like `KX4M-7TQD-9HCA`, without look-alike
/// characters) is shown only in this response; lists show its last four
/// characters. Give it to the people who should join; they use it at
/// `invite_preview` and `invite_join`.
///
/// The code is never kept for an idempotent replay: a retry with the same
/// `Idempotency-Key` after success answers 409 `idempotency_replay_refused`
/// (revoke that invite and create a new one).
#[utoipa::path(
    post, path = "/v1/circles/{circle_id}/invites", tag = "invites",
    operation_id = "circle_invites_create",
    extensions(("x-problem-codes" = json!([Code::StaffOnly, Code::IdempotencyReplayRefused]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), IdempotencyKey),
    request_body = CreateInvite,
    responses(
        (status = 201, description = "The invite, with its code (shown once)", body = Invite),
    )
)]
pub async fn create_invite(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<CreateInvite>,
) -> ApiResult<Response> {
    let mut v = Validator::default();
    let hours = req.expires_in_hours.unwrap_or(168);
    if !(1..=720).contains(&hours) {
        v.fail("expires_in_hours", "must be 1 to 720 hours");
    }
    let max_uses = req.max_uses.unwrap_or(1);
    if !(1..=100).contains(&max_uses) {
        v.fail("max_uses", "must be 1 to 100");
    }
    v.finish()?;
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    access.require_staff()?;
    let code = new_code(3);
    let canonical = code.replace('-', "");
    let hint = canonical[canonical.len() - 4..].to_owned();
    let id = new_id();
    sqlx::query(
        "INSERT INTO invites (id, organisation_id, circle_id, code_hash, code_hint, created_by, created_at, expires_at, max_uses)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(&access.organisation_id)
    .bind(&access.circle_id)
    .bind(hash_token(&canonical))
    .bind(&hint)
    .bind(&caller.account_id)
    .bind(now)
    .bind(now + hours * 3_600_000)
    .bind(max_uses)
    .execute(&mut *tx)
    .await?;
    let advice = "Revoke that invite and create a new one.";
    idem.commit(
        tx,
        HoldsSecret(advice).mark((
            StatusCode::CREATED,
            axum::Json(Invite {
                id,
                circle_id: access.circle_id,
                code: Some(code),
                code_hint: hint,
                expires_at: from_ms(now + hours * 3_600_000),
                max_uses,
                uses: 0,
                revoked: false,
                created_at: from_ms(now),
            }),
        )),
    )
    .await
}

/// Staff of the circle: its invites, newest first.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`). The latest 200, without their codes, including
/// expired, used-up and revoked ones. Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/invites", tag = "invites",
    operation_id = "circle_invites_list",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "Invites (without their codes)", body = InviteList),
    )
)]
pub async fn list_invites(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<InviteList>> {
    let mut conn = state.store.pool().acquire().await?;
    let access = access(&mut conn, &caller, &circle_id).await?;
    access.require_staff()?;
    let rows: Vec<InviteRow> = sqlx::query_as(
        "SELECT id, circle_id, code_hint, expires_at, max_uses, uses, revoked_at, created_at
         FROM invites WHERE circle_id = $1 ORDER BY created_at DESC, id DESC LIMIT 200",
    )
    .bind(&access.circle_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(axum::Json(InviteList {
        items: rows.into_iter().map(Invite::from).collect(),
    }))
}

/// Staff of the circle: revoke an invite so nobody else joins with it.
///
/// The circle's workers and the organisation's coordinators (members get
/// 403 `staff_only`); 404 for an invite of another circle. Whoever already
/// joined with it stays. Revoking a revoked invite again answers 204 too.
#[utoipa::path(
    delete, path = "/v1/circles/{circle_id}/invites/{invite_id}", tag = "invites",
    operation_id = "circle_invite_revoke",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(
        ("circle_id" = String, Path, description = "The circle's id"),
        ("invite_id" = String, Path, description = "The invite's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
    )
)]
pub async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path((circle_id, invite_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let access = access(&mut tx, &caller, &circle_id).await?;
    access.require_staff()?;
    let found = sqlx::query(
        "UPDATE invites SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND circle_id = $3",
    )
    .bind(now)
    .bind(&invite_id)
    .bind(&access.circle_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(ApiError::NotFound("invite"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an invite leads to, shown before joining.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "circle_name": "Samen sterk",
    "theme": "Eenzaamheid na pensioen",
    "language": "nl",
    "organisation_name": "Buurtwerk Noord",
    "agreement": {"version": 1, "text": "Jij bepaalt wanneer je schrijft."},
    "expires_at": "2026-11-09T09:00:00Z"
}))]
pub struct InvitePreview {
    /// The circle the code leads to.
    pub circle_id: String,
    /// Its name.
    #[schema(example = "Samen sterk")]
    pub circle_name: String,
    /// What it is about; may be empty.
    #[schema(example = "Eenzaamheid na pensioen")]
    pub theme: String,
    /// Its language.
    pub language: Locale,
    /// Whose circle it is.
    #[schema(example = "Buurtwerk Noord")]
    pub organisation_name: String,
    /// What joining means: show it and ask for consent; send its version as
    /// `consent_version` when joining.
    pub agreement: Agreement,
    /// When the code stops working.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
}

#[derive(sqlx::FromRow)]
struct ValidInvite {
    id: String,
    circle_id: String,
    organisation_id: String,
    circle_name: String,
    theme: String,
    language: String,
    organisation_name: String,
    agreement_version: i64,
    agreement_text: String,
    expires_at: i64,
    max_uses: i64,
    uses: i64,
    revoked_at: Option<i64>,
}

/// Finds a usable invite by its code, or says why it cannot be used.
async fn find_invite(
    conn: &mut sqlx::AnyConnection,
    code: &str,
    now: i64,
) -> ApiResult<ValidInvite> {
    let canonical = canonical_code(code).map_err(|_| ApiError::NotFound("invite"))?;
    let row: Option<ValidInvite> = sqlx::query_as(
        "SELECT i.id, i.circle_id, i.organisation_id, c.name AS circle_name, c.theme, c.language,
                o.name AS organisation_name, c.agreement_version, c.agreement_text,
                i.expires_at, i.max_uses, i.uses, i.revoked_at
         FROM invites i
         JOIN circles c ON c.id = i.circle_id
         JOIN organisations o ON o.id = i.organisation_id
         WHERE i.code_hash = $1 AND c.archived_at IS NULL",
    )
    .bind(hash_token(&canonical))
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(ApiError::NotFound("invite"))?;
    if row.revoked_at.is_some() {
        return Err(ApiError::new(
            Code::InviteRevoked,
            "This invite has been withdrawn; ask for a new one",
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::new(
            Code::InviteExpired,
            "This invite has expired; ask for a new one",
        ));
    }
    if row.uses >= row.max_uses {
        return Err(ApiError::new(
            Code::InviteUsedUp,
            "This invite has been used up; ask for a new one",
        ));
    }
    Ok(row)
}

/// See where an invite code leads, and the agreement to consent to.
///
/// Public: the code is the credential. Case and dashes in the code do not
/// matter. Show the circle and its agreement, and ask for consent before
/// `invite_join`. An unknown code is 404; an expired, revoked or used-up
/// one is 410 with the reason. Changes nothing (a preview uses no use of
/// the invite).
#[utoipa::path(
    get, path = "/v1/invites/{code}", tag = "invites",
    operation_id = "invite_preview",
    extensions(("x-problem-codes" = json!([Code::InviteRevoked, Code::InviteExpired, Code::InviteUsedUp]))),
    security(()),
    params(("code" = String, Path, description = "The invite code; case and dashes do not matter", example = "KX4M-7TQD-9HCA")),
    responses(
        (status = 200, description = "The circle the code leads to", body = InvitePreview),
    )
)]
pub async fn preview_invite(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<InvitePreview>> {
    let mut conn = state.store.pool().acquire().await?;
    let invite = find_invite(&mut conn, &code, state.now_ms()).await?;
    Ok(axum::Json(InvitePreview {
        circle_id: invite.circle_id,
        circle_name: invite.circle_name,
        theme: invite.theme,
        language: Locale::parse(&invite.language).map_err(ApiError::Internal)?,
        organisation_name: invite.organisation_name,
        agreement: Agreement {
            version: invite.agreement_version,
            text: invite.agreement_text,
        },
        expires_at: from_ms(invite.expires_at),
    }))
}

/// Joining a circle with an invite code.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "code": "KX4M-7TQD-9HCA",
    "pseudonym": "Zonnebloem",
    "consent_version": 1,
    "locale": "nl",
    "time_zone": "Europe/Amsterdam"
}))]
pub struct JoinRequest {
    /// The invite code; case, dashes and spaces do not matter.
    #[schema(example = "KX4M-7TQD-9HCA", max_length = 40)]
    #[schema(pattern = "^[- ]*([ACDEFGHJKMNPQRTWXY34679acdefghjkmnpqrtwxy][- ]*){8,32}$")]
    pub code: String,
    /// The name others in this circle will see.
    #[schema(value_type = Pseudonym)]
    pub pseudonym: String,
    /// The agreement version the member read and consents to (from the
    /// invite preview); another answers 409 `agreement_changed`.
    #[schema(example = 1, minimum = 1)]
    pub consent_version: i64,
    /// New accounts: `nl` or `en` (default `nl`).
    #[schema(example = "nl")]
    #[schema(value_type = Option<crate::accounts::types::Locale>)]
    pub locale: Option<String>,
    /// New accounts: IANA time zone (default `Europe/Amsterdam`).
    #[schema(value_type = Option<TimeZoneName>)]
    pub time_zone: Option<String>,
    /// New accounts (no bearer token), optional: a login name (3 to 40
    /// characters, no `@`, white space or control characters) to sign in on
    /// another device; needs `password`.
    #[schema(example = "zonnebloem52", min_length = 3, max_length = 40)]
    #[schema(
        pattern = "^[^@\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub login_name: Option<String>,
    /// With `login_name` (and only with it): 10 to 256 characters.
    #[schema(format = Password)]
    #[schema(min_length = 10, max_length = 256)]
    pub password: Option<String>,
}

/// You are in: your account, your membership, and for a new account its
/// first tokens.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "account": {
        "id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f",
        "organisation_id": "0194f1a0c0de7a11b2c3d4e5f6a7b8c9",
        "role": "member",
        "display_name": null,
        "email": null,
        "login_name": null,
        "locale": "nl",
        "time_zone": "Europe/Amsterdam",
        "quiet_hours": {"start": "21:00", "end": "09:00"},
        "preferred_reminder_time": null,
        "working_hours": null,
        "discreet_pushes": "sensitive_circles",
        "created_at": "2026-11-02T10:00:00Z"
    },
    "membership": {
        "id": "0194f1a4aa117c2d9e8f7a6b5c4d3e2f",
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
        "pseudonym": "Zonnebloem",
        "role": "member",
        "joined_at": "2026-11-02T10:00:00Z",
        "state": "active",
        "away_until": null,
        "nudges_enabled": true,
        "last_activity_at": "2026-11-02T10:00:00Z",
        "consent": {"version": 1, "at": "2026-11-02T10:00:00Z"},
        "account_id": "0194f1a4a0c17c2d9e8f7a6b5c4d3e2f"
    },
    "tokens": {
        "access_token": "kra_3q2-6vQZ0pJ7o1nY8m1cW6Q9rJx0dB4yq0b7w1r2s3t",
        "access_token_expires_at": "2026-11-02T10:15:00Z",
        "refresh_token": "krr_Zk3m9QwX0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1w",
        "refresh_token_expires_at": "2027-05-01T10:00:00Z",
        "token_type": "Bearer"
    }
}))]
pub struct JoinResponse {
    /// Your account (new, or the one you signed in with).
    pub account: Me,
    /// Your membership of the circle.
    pub membership: MemberView,
    /// Present when joining created a new account (no bearer token was sent).
    pub tokens: Option<Tokens>,
}

/// A join request's fields, parsed; every field's problem at once (422).
struct JoinInput {
    pseudonym: Pseudonym,
    locale: Locale,
    tz: TimeZoneName,
    login_name: Option<String>,
    password: Option<String>,
}

impl JoinInput {
    fn parse(req: &JoinRequest, signed_in: bool) -> ApiResult<Self> {
        let mut v = Validator::default();
        let pseudonym = v.check("pseudonym", Pseudonym::parse(&req.pseudonym));
        let locale = v.check(
            "locale",
            Locale::parse(req.locale.as_deref().unwrap_or("nl")),
        );
        let tz = v.check(
            "time_zone",
            TimeZoneName::parse(req.time_zone.as_deref().unwrap_or("Europe/Amsterdam")),
        );
        let login_name = match &req.login_name {
            Some(name) => v.check("login_name", validate_login_name(name)).map(Some),
            None => Some(None),
        };
        let password = match (&req.login_name, &req.password) {
            (Some(_), Some(p)) => v.check("password", validate_password(p)).map(Some),
            (Some(_), None) => {
                v.fail("password", "is required with login_name");
                None
            }
            (None, Some(_)) => {
                v.fail("login_name", "is required with password");
                None
            }
            (None, None) => Some(None),
        };
        if signed_in && req.login_name.is_some() {
            v.fail("login_name", "can only be chosen when creating an account");
        }
        let (Some(pseudonym), Some(locale), Some(tz), Some(login_name), Some(password), true) =
            (pseudonym, locale, tz, login_name, password, v.is_ok())
        else {
            return Err(v.into_error());
        };
        Ok(Self {
            pseudonym,
            locale,
            tz,
            login_name,
            password,
        })
    }
}

/// Counts one use of the invite; 410 `invite_used_up` when it has none
/// left (two joins racing for the last use: one wins).
async fn use_invite(tx: &mut crate::store::Tx, invite_id: &str, now: i64) -> ApiResult<()> {
    let used = sqlx::query(
        "UPDATE invites SET uses = uses + 1
         WHERE id = $1 AND uses < max_uses AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(invite_id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if used != 1 {
        return Err(ApiError::new(
            Code::InviteUsedUp,
            "This invite has been used up; ask for a new one",
        ));
    }
    Ok(())
}

/// Join a circle with an invite code.
///
/// Public, or with a member's bearer token. Show `invite_preview` first and
/// send the agreement version the person consented to. Staff accounts do
/// not join with invites (403 `staff_cannot_join`), and a signed-in member
/// of another organisation gets 409 `other_organisation` (join without a
/// token for a separate account). Uses one use of the invite; the silence
/// clock starts at joining. Someone already in the circle gets 409
/// `already_in_circle`; someone who left comes back with a new pseudonym.
/// With `login_name` and `password`, the new account can also sign in with
/// `auth_login`; passwords are hashed a few at a time (503 `busy` with
/// `Retry-After` under load).
///
/// Without a bearer token this creates a member account (no e-mail needed)
/// and returns its tokens. A signed-in member joins another circle of the
/// same organisation with their existing account. Send an `Idempotency-Key`:
/// a retry never makes a second account. A new account's tokens are never
/// kept for replay, so its retry after success answers 409
/// `idempotency_replay_refused` (sign in with the login name, or ask the
/// worker for a recovery code); a replay never opens a session.
#[utoipa::path(
    post, path = "/v1/join", tag = "invites",
    operation_id = "invite_join",
    extensions(("x-problem-codes" = json!([Code::StaffCannotJoin, Code::NotFound, Code::InviteRevoked, Code::InviteExpired, Code::InviteUsedUp, Code::AgreementChanged, Code::OtherOrganisation, Code::AlreadyInCircle, Code::PseudonymTaken, Code::LoginNameTaken, Code::Busy, Code::IdempotencyReplayRefused]))),
    params(IdempotencyKey),
    request_body = JoinRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Joined", body = JoinResponse),
    )
)]
pub async fn join(
    State(state): State<AppState>,
    idem: Idempotent,
    MaybeCaller(caller): MaybeCaller,
    Json(req): Json<JoinRequest>,
) -> ApiResult<Response> {
    let JoinInput {
        pseudonym,
        locale,
        tz,
        login_name,
        password,
    } = JoinInput::parse(&req, caller.is_some())?;
    if let Some(c) = &caller
        && c.role != Role::Member
    {
        return Err(ApiError::new(
            Code::StaffCannotJoin,
            "Staff are added to circles by a coordinator, not with an invite",
        ));
    }
    let now = state.now_ms();
    // A wrong, used or expired code costs no hash.
    find_invite(&mut *state.store.pool().acquire().await?, &req.code, now).await?;
    let password_hash = match password {
        Some(p) => Some(state.hashing.hash(p).await?),
        None => None,
    };

    let mut tx = idem.begin(&state.store).await?;
    let invite = find_invite(&mut tx, &req.code, now).await?;
    if req.consent_version != invite.agreement_version {
        return Err(ApiError::new(
            Code::AgreementChanged,
            format!(
                "The circle's agreement is now version {}; show it again and ask for consent",
                invite.agreement_version
            ),
        ));
    }
    use_invite(&mut tx, &invite.id, now).await?;

    let account_id = match &caller {
        Some(c) => {
            if c.organisation_id != invite.organisation_id {
                return Err(ApiError::new(
                    Code::OtherOrganisation,
                    "This invite is for another organisation; join it without signing in to get a separate account",
                ));
            }
            c.account_id.clone()
        }
        None => {
            let new = NewMember {
                organisation_id: &invite.organisation_id,
                login_name: login_name.as_deref(),
                password_hash: password_hash.as_deref(),
                locale,
                time_zone: &tz,
            };
            crate::accounts::create::member(&mut tx, new, now)
                .await?
                .into_string()
        }
    };

    let membership_id = membership::enrol(
        &mut tx,
        &CircleId::from(invite.circle_id.as_str()),
        &AccountId::from(account_id.as_str()),
        &pseudonym,
        EnrolAs::Member {
            consent_version: invite.agreement_version,
        },
        now,
    )
    .await?;
    let membership_id = membership_id.into_string();
    crate::questionnaires::schedule::on_join(&mut tx, &membership_id, now).await?;
    let tokens = match caller {
        Some(_) => None,
        None => Some(open_session(&mut tx, &state, &account_id).await?),
    };
    let account = load_me(&mut tx, &account_id).await?;
    let membership = load_member(&mut tx, &membership_id, now).await?;

    let issued = tokens.is_some();
    let response = (
        StatusCode::CREATED,
        axum::Json(JoinResponse {
            account,
            membership,
            tokens,
        }),
    );
    idem.commit(
        tx,
        if issued {
            HoldsSecret(
                "You are in the circle: sign in with your login name, or ask the circle's worker \
             for a recovery code.",
            )
            .mark(response)
        } else {
            response.into_response()
        },
    )
    .await
}

fn validate_login_name(name: &str) -> Result<String, String> {
    let name = crate::http::text::name(name)?.trim().to_lowercase();
    let len = name.chars().count();
    if !(3..=40).contains(&len) || name.contains('@') || name.chars().any(char::is_whitespace) {
        return Err("must be 3 to 40 characters without spaces or @".into());
    }
    Ok(name)
}
