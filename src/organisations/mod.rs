//! Organisations (tenants) and their staff: bootstrap from the command line,
//! coordinators adding workers and coordinators with one-time setup codes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::create::{self, NewStaff};
use crate::accounts::me::validate_display_name;
use crate::accounts::sessions::create_code;
use crate::accounts::types::{Locale, TimeZoneName};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::idempotency::{HoldsSecret, IdempotencyKey, Idempotent};
use crate::http::{Caller, Json, Role};
use crate::ids::AccountId;
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::Store;

/// How long a staff setup code stays valid.
pub const SETUP_CODE_VALID_MS: i64 = 7 * 86_400_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_organisation))
        .routes(routes!(list_staff, create_staff))
        .routes(routes!(setup_code))
        .routes(routes!(remove_staff))
}

/// An organisation: the tenant that coordinators set up, with its staff
/// and circles. Nothing crosses organisations.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a5b0c0de7a11b2c3d4e5f6a7b8c9",
    "name": "Buurtwerk Noord",
    "created_at": "2026-11-01T08:00:00Z"
}))]
pub struct Organisation {
    /// The organisation's id.
    pub id: String,
    /// Its name, as `kring admin create-organisation` set it.
    #[schema(example = "Buurtwerk Noord")]
    pub name: String,
    /// When it was set up.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// Your organisation.
///
/// Any signed-in person, members included (the app can show whose service
/// it is). Changes nothing.
#[utoipa::path(
    get, path = "/v1/organisation", tag = "organisation",
    operation_id = "organisation_get",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your organisation", body = Organisation),
    )
)]
pub async fn get_organisation(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Organisation>> {
    let (id, name, created_at): (String, String, i64) =
        sqlx::query_as("SELECT id, name, created_at FROM organisations WHERE id = $1")
            .bind(&caller.organisation_id)
            .fetch_one(state.store.pool())
            .await?;
    Ok(axum::Json(Organisation {
        id,
        name,
        created_at: from_ms(created_at),
    }))
}

/// A worker or coordinator of the organisation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a5b3d4e57f6a8b9c0d1e2f3a4b5c",
    "role": "worker",
    "display_name": "Sam Jansen",
    "email": "sam@buurtwerk.example",
    "has_password": true,
    "created_at": "2026-11-02T09:00:00Z"
}))]
pub struct StaffMember {
    /// The staff member's account id (for `circle_workers_add`).
    pub id: String,
    /// `worker` or `coordinator`.
    pub role: Role,
    /// The name colleagues see.
    #[schema(example = "Sam Jansen")]
    pub display_name: Option<String>,
    /// The address they sign in with.
    #[schema(example = "sam@buurtwerk.example")]
    pub email: Option<String>,
    /// False until they have used their setup code.
    pub has_password: bool,
    /// When they were added.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
}

/// The organisation's staff, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0193a5b3d4e57f6a8b9c0d1e2f3a4b5c",
    "role": "worker",
    "display_name": "Sam Jansen",
    "email": "sam@buurtwerk.example",
    "has_password": true,
    "created_at": "2026-11-02T09:00:00Z"
}]}))]
pub struct StaffList {
    /// Every worker and coordinator who has not been removed.
    pub items: Vec<StaffMember>,
}

#[derive(sqlx::FromRow)]
struct StaffRow {
    id: String,
    role: String,
    display_name: Option<String>,
    email: Option<String>,
    has_password: i64,
    created_at: i64,
}

impl StaffRow {
    fn into_view(self) -> ApiResult<StaffMember> {
        Ok(StaffMember {
            id: self.id,
            role: Role::parse(&self.role).map_err(ApiError::Internal)?,
            display_name: self.display_name,
            email: self.email,
            has_password: self.has_password != 0,
            created_at: from_ms(self.created_at),
        })
    }
}

/// Coordinators and workers: the organisation's staff.
///
/// Staff only (members get 403 `staff_only`). Every worker and coordinator
/// who has not been removed, oldest first, in one list (no pagination).
/// Changes nothing.
#[utoipa::path(
    get, path = "/v1/organisation/staff", tag = "organisation",
    operation_id = "organisation_staff_list",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The staff", body = StaffList),
    )
)]
pub async fn list_staff(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<StaffList>> {
    caller.require_staff()?;
    let rows: Vec<StaffRow> = sqlx::query_as(
        "SELECT id, role, display_name, email,
                CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS has_password, created_at
         FROM accounts
         WHERE organisation_id = $1 AND role IN ('coordinator', 'worker') AND deactivated_at IS NULL
         ORDER BY created_at, id",
    )
    .bind(&caller.organisation_id)
    .fetch_all(state.store.pool())
    .await?;
    Ok(axum::Json(StaffList {
        items: rows
            .into_iter()
            .map(StaffRow::into_view)
            .collect::<ApiResult<_>>()?,
    }))
}

/// The roles a coordinator can give (`worker`, `coordinator`): members join
/// with an invite code.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    Worker,
    Coordinator,
}

/// A new worker or coordinator.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "role": "worker",
    "email": "sam@buurtwerk.example",
    "display_name": "Sam Jansen",
    "locale": "nl",
    "time_zone": "Europe/Amsterdam"
}))]
pub struct CreateStaff {
    /// `worker` or `coordinator`.
    #[schema(value_type = StaffRole)]
    pub role: Role,
    /// The address they will sign in with; unique across Kring (409
    /// `email_taken`), compared without case.
    #[schema(example = "sam@buurtwerk.example")]
    #[schema(max_length = 254, format = Email)]
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub email: String,
    /// The name colleagues see.
    #[schema(value_type = crate::openapi::Name)]
    pub display_name: String,
    /// Their language; `nl` when absent.
    #[schema(value_type = Option<crate::accounts::types::Locale>)]
    pub locale: Option<String>,
    /// Their time zone; `Europe/Amsterdam` when absent.
    #[schema(value_type = Option<crate::accounts::types::TimeZoneName>)]
    pub time_zone: Option<String>,
}

/// A new staff account and the one-time code with which they choose a password.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "account": {
        "id": "0193a5b3d4e57f6a8b9c0d1e2f3a4b5c",
        "role": "worker",
        "display_name": "Sam Jansen",
        "email": "sam@buurtwerk.example",
        "has_password": false,
        "created_at": "2026-11-02T09:00:00Z"
    },
    "setup_code": "KX4M-7TQD-9HCA",
    "setup_code_expires_at": "2026-11-09T09:00:00Z"
}))]
pub struct StaffCreated {
    /// The new account, without a password yet.
    pub account: StaffMember,
    /// Give this to the person; it is shown only once. They use it at
    /// `POST /v1/auth/setup`.
    #[schema(example = "KX4M-7TQD-9HCA")]
    pub setup_code: String,
    /// When the code stops working (7 days after it was made).
    #[schema(value_type = String, format = DateTime)]
    pub setup_code_expires_at: jiff::Timestamp,
}

/// Coordinators: add a worker or coordinator.
///
/// Coordinators only (403 `coordinator_only`). Makes the account without a
/// password and answers a one-time setup code, valid for 7 days, that the
/// person uses at `auth_setup` to choose a password and sign in. To give
/// them circles, add them as a worker (`circle_workers_add`). The e-mail
/// address must be new to Kring (409 `email_taken`).
///
/// The setup code is never kept for an idempotent replay: a retry with the
/// same `Idempotency-Key` after success answers 409
/// `idempotency_replay_refused` (issue a new setup code instead).
#[utoipa::path(
    post, path = "/v1/organisation/staff", tag = "organisation",
    operation_id = "organisation_staff_create",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::EmailTaken, Code::IdempotencyReplayRefused]))),
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = CreateStaff,
    responses(
        (status = 201, description = "Created, with a setup code", body = StaffCreated),
    )
)]
pub async fn create_staff(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Json(req): Json<CreateStaff>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let mut v = Validator::default();
    if req.role == Role::Member {
        v.fail(
            "role",
            "must be worker or coordinator; members join with an invite code",
        );
    }
    let email = v.check("email", validate_email(&req.email));
    let name = v.check("display_name", validate_display_name(&req.display_name));
    let locale = v.check(
        "locale",
        Locale::parse(req.locale.as_deref().unwrap_or("nl")),
    );
    let tz = v.check(
        "time_zone",
        TimeZoneName::parse(req.time_zone.as_deref().unwrap_or("Europe/Amsterdam")),
    );
    let (Some(email), Some(name), Some(locale), Some(tz), true) =
        (email, name, locale, tz, v.is_ok())
    else {
        return Err(v.into_error());
    };
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let id = new_id();
    let new = NewStaff {
        organisation_id: &caller.organisation_id,
        role: req.role,
        email: &email,
        display_name: &name,
        locale,
        time_zone: &tz,
    };
    create::staff(&mut tx, &AccountId::from(id.as_str()), new, now).await?;
    let (code, expires) = create_code(
        &mut tx,
        now,
        &id,
        "setup",
        Some(&caller.account_id),
        SETUP_CODE_VALID_MS,
        None,
    )
    .await?;
    let advice = "Issue the staff member a new setup code \
                  (POST /v1/organisation/staff/{account_id}/setup-code).";
    idem.commit(
        tx,
        HoldsSecret(advice).mark((
            StatusCode::CREATED,
            axum::Json(StaffCreated {
                account: StaffMember {
                    id,
                    role: req.role,
                    display_name: Some(name),
                    email: Some(email),
                    has_password: false,
                    created_at: from_ms(now),
                },
                setup_code: code,
                setup_code_expires_at: from_ms(expires),
            }),
        )),
    )
    .await
}

/// A one-time code with which a staff member chooses a (new) password.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "setup_code": "KX4M-7TQD-9HCA",
    "setup_code_expires_at": "2026-11-09T09:00:00Z"
}))]
pub struct SetupCode {
    /// Give this to the person; it is shown only once. They use it at
    /// `POST /v1/auth/setup`. Case and dashes do not matter.
    #[schema(example = "KX4M-7TQD-9HCA")]
    pub setup_code: String,
    /// When the code stops working (7 days after it was made).
    #[schema(value_type = String, format = DateTime)]
    pub setup_code_expires_at: jiff::Timestamp,
}

/// Coordinators: a new setup code for a staff member (a forgotten password).
///
/// Coordinators only (403 `coordinator_only`); 404 for an account that is
/// not a current staff member of the organisation. The code is valid for
/// 7 days and replaces any earlier unused code. The staff member's sessions stay until
/// they set the new password. The code is never kept for an idempotent
/// replay: a retry with the same `Idempotency-Key` after success answers 409
/// `idempotency_replay_refused`.
#[utoipa::path(
    post, path = "/v1/organisation/staff/{account_id}/setup-code", tag = "organisation",
    operation_id = "organisation_staff_setup_code_create",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::IdempotencyReplayRefused]))),
    security(("bearer" = [])),
    params(("account_id" = String, Path, description = "The staff member's account id"), IdempotencyKey),
    responses(
        (status = 201, description = "A new setup code", body = SetupCode),
    )
)]
pub async fn setup_code(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(account_id): Path<String>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM accounts WHERE id = $1 AND organisation_id = $2
         AND role IN ('coordinator', 'worker') AND deactivated_at IS NULL",
    )
    .bind(&account_id)
    .bind(&caller.organisation_id)
    .fetch_optional(&mut *tx)
    .await?;
    if found.is_none() {
        return Err(ApiError::NotFound("staff member"));
    }
    let (code, expires) = create_code(
        &mut tx,
        now,
        &account_id,
        "setup",
        Some(&caller.account_id),
        SETUP_CODE_VALID_MS,
        None,
    )
    .await?;
    idem.commit(
        tx,
        HoldsSecret("Issue another setup code; it replaces this one.").mark((
            StatusCode::CREATED,
            axum::Json(SetupCode {
                setup_code: code,
                setup_code_expires_at: from_ms(expires),
            }),
        )),
    )
    .await
}

/// Coordinators: remove a staff member from the organisation.
///
/// Coordinators only (403 `coordinator_only`); 404 for an account that is
/// not a current staff member. Their account is deactivated, every session
/// is signed out, an unused setup code stops working, and they leave every
/// circle they worked in. Their posts stay. You cannot remove yourself (409
/// `cannot_remove_self`).
#[utoipa::path(
    delete, path = "/v1/organisation/staff/{account_id}", tag = "organisation",
    operation_id = "organisation_staff_remove",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly, Code::CannotRemoveSelf]))),
    security(("bearer" = [])),
    params(("account_id" = String, Path, description = "The staff member's account id")),
    responses(
        (status = 204, description = "Removed"),
    )
)]
pub async fn remove_staff(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_coordinator()?;
    if account_id == caller.account_id {
        return Err(ApiError::new(
            Code::CannotRemoveSelf,
            "You cannot remove yourself; ask another coordinator",
        ));
    }
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let removed = sqlx::query(
        "UPDATE accounts SET deactivated_at = $1
         WHERE id = $2 AND organisation_id = $3 AND role IN ('coordinator', 'worker') AND deactivated_at IS NULL",
    )
    .bind(now)
    .bind(&account_id)
    .bind(&caller.organisation_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if removed == 0 {
        return Err(ApiError::NotFound("staff member"));
    }
    crate::circles::membership::leave_all(&mut tx, &AccountId::from(account_id.as_str()), now)
        .await?;
    crate::accounts::sessions::revoke_sessions(&mut tx, now, &account_id, None, "removed").await?;
    crate::accounts::sessions::revoke_codes(&mut tx, now, &account_id).await?;
    tx.commit().await?;
    tracing::info!(account_id = %account_id, "staff member removed");
    Ok(StatusCode::NO_CONTENT)
}

pub fn validate_email(input: &str) -> Result<String, String> {
    let email = crate::http::text::name(input)?.trim().to_lowercase();
    let bad = || "must be an e-mail address".to_owned();
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || email.len() > 254
        || email.chars().any(char::is_whitespace)
        || domain.contains('@')
    {
        return Err(bad());
    }
    Ok(email)
}

/// What `kring admin create-organisation` made.
#[derive(Debug)]
pub struct Bootstrapped {
    pub organisation_id: String,
    pub coordinator_id: String,
    pub setup_code: String,
}

/// Creates an organisation and its first coordinator with a setup code.
pub async fn bootstrap(
    store: &Store,
    now: i64,
    cmd: &crate::config::CreateOrganisation,
) -> Result<Bootstrapped, ApiError> {
    let mut v = Validator::default();
    let name = v.check("name", validate_display_name(&cmd.name));
    let email = v.check("coordinator_email", validate_email(&cmd.coordinator_email));
    let coordinator = v.check(
        "coordinator_name",
        validate_display_name(&cmd.coordinator_name),
    );
    let locale = v.check("locale", Locale::parse(&cmd.locale));
    let tz = v.check("time_zone", TimeZoneName::parse(&cmd.time_zone));
    let (Some(name), Some(email), Some(coordinator), Some(locale), Some(tz)) =
        (name, email, coordinator, locale, tz)
    else {
        return Err(v.into_error());
    };
    let mut tx = store.begin().await?;
    let organisation_id = new_id();
    sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&organisation_id)
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let coordinator_id = new_id();
    let new = NewStaff {
        organisation_id: &organisation_id,
        role: Role::Coordinator,
        email: &email,
        display_name: &coordinator,
        locale,
        time_zone: &tz,
    };
    create::staff(&mut tx, &AccountId::from(coordinator_id.as_str()), new, now).await?;
    let (setup_code, _) = create_code(
        &mut tx,
        now,
        &coordinator_id,
        "setup",
        None,
        SETUP_CODE_VALID_MS,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        organisation_id,
        coordinator_id,
        setup_code,
    })
}
