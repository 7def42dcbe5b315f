//! The caller behind a bearer access token.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Code};
use crate::secrets::hash_token;
use crate::state::AppState;
use crate::store::cache::{Loaded, Scope, Shelf};

/// What an account is within its organisation: `coordinator` (sets up the
/// organisation, its workers and circles), `worker` (a professional who
/// guides circles) or `member` (a participant in one or more circles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sets up the organisation, its workers and circles.
    Coordinator,
    /// A professional who guides circles.
    Worker,
    /// A participant in one or more circles.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Worker => "worker",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "coordinator" => Ok(Self::Coordinator),
            "worker" => Ok(Self::Worker),
            "member" => Ok(Self::Member),
            other => Err(format!("unknown role {other}")),
        }
    }

    pub fn is_staff(self) -> bool {
        matches!(self, Self::Coordinator | Self::Worker)
    }
}

/// The authenticated account making a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub organisation_id: String,
    pub role: Role,
    /// The session (one device's sign-in) the token belongs to.
    pub session_id: String,
}

/// The caller behind a token as read from the database, with the token's
/// expiry (checked on every use, cached or not).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CachedCaller {
    account_id: String,
    organisation_id: String,
    role: String,
    session_id: String,
    expires_at: i64,
}

/// The bearer token in `Authorization`, if any.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Caller {
    /// Looks up the account behind an access token.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let hash = hash_token(token);
        let tokens = state.caches.shelf::<TokenCache>();
        let row = tokens
            .0
            .get_or_load(state.store.generations(), hash.clone(), async || {
                let row: Option<CachedCaller> = sqlx::query_as(
                    "SELECT a.id AS account_id, a.organisation_id, a.role, s.id AS session_id, t.expires_at
                     FROM access_tokens t
                     JOIN sessions s ON s.id = t.session_id
                     JOIN accounts a ON a.id = s.account_id
                     WHERE t.token_hash = $1 AND s.revoked_at IS NULL AND a.deactivated_at IS NULL",
                )
                .bind(&hash)
                .fetch_optional(state.store.pool())
                .await?;
                let row = row.ok_or_else(|| {
                    ApiError::new(Code::InvalidToken, "The access token is not valid")
                })?;
                // Revoking a session or deactivating an account touches it.
                Ok::<_, ApiError>(Loaded {
                    scopes: vec![Scope::Account(row.account_id.clone())],
                    cost: 1,
                    value: row,
                })
            })
            .await?;
        if row.expires_at <= state.now_ms() {
            return Err(ApiError::new(
                Code::TokenExpired,
                "The access token has expired; refresh it",
            ));
        }
        Ok(Self {
            account_id: row.account_id,
            organisation_id: row.organisation_id,
            role: Role::parse(&row.role).map_err(ApiError::Internal)?,
            session_id: row.session_id,
        })
    }

    pub fn require_staff(&self) -> Result<(), ApiError> {
        if self.role.is_staff() {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::StaffOnly,
                "Only workers and coordinators may do this",
            ))
        }
    }

    pub fn require_coordinator(&self) -> Result<(), ApiError> {
        if self.role == Role::Coordinator {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::CoordinatorOnly,
                "Only coordinators may do this",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                "Sign in: this needs a bearer access token",
            )
        })?;
        let caller = Self::from_token(state, token).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// A caller when a bearer token is given, `None` when not; a bad token is
/// still an error.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if bearer_token(parts).is_none() {
            return Ok(Self(None));
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(|c| Self(Some(c)))
    }
}

/// Access token hash → the caller (at most 50,000).
pub struct TokenCache(pub Shelf<String, CachedCaller>);

impl Default for TokenCache {
    fn default() -> Self {
        // A backstop only: writes invalidate entries as they commit.
        Self(Shelf::new(50_000, std::time::Duration::from_secs(60)))
    }
}
