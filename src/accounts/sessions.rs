//! Sessions: sign-in, rotating refresh tokens with reuse detection, sign-out,
//! staff setup codes and member recovery codes.
//!
//! A session is one device's sign-in. Each refresh exchanges the refresh token
//! for a new pair; presenting a spent refresh token again means it was copied,
//! so the whole session is revoked. For a short grace period the spent token
//! gets the same new pair again (derived from it, never stored), so an app
//! that lost the response, or sent several refreshes at once, keeps working.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::accounts::me::{Me, load_me};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::idempotency::{HoldsSecret, IdempotencyKey, Idempotent};
use crate::http::{Caller, ClientAddress, Json};
use crate::secrets::{canonical_code, hash_token, new_id, new_token};
use crate::state::AppState;
use crate::store::Tx;
use crate::store::cache::Scope;

/// How long after its use a refresh token may be presented again (a retry
/// after a lost response) without counting as reuse.
const REUSE_GRACE_MS: i64 = 30_000;

/// A fresh pair of tokens for one session. Keep both in the phone's secure
/// storage; they are never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "access_token": "kra_3q2-6vQZ0pJ7o1nY8m1cW6Q9rJx0dB4yq0b7w1r2s3t",
    "access_token_expires_at": "2026-11-22T10:15:00Z",
    "refresh_token": "krr_Zk3m9QwX0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1w",
    "refresh_token_expires_at": "2027-05-21T10:00:00Z",
    "token_type": "Bearer"
}))]
pub struct Tokens {
    /// Send as `Authorization: Bearer <access_token>`.
    #[schema(example = "kra_3q2-6vQZ0pJ7o1nY8m1cW6Q9rJx0dB4yq0b7w1r2s3t")]
    pub access_token: String,
    /// When the access token stops working (15 minutes by default); after
    /// it, requests answer 401 `token_expired`.
    #[schema(value_type = String, format = DateTime, example = "2026-11-22T10:15:00Z")]
    pub access_token_expires_at: jiff::Timestamp,
    /// Exchange at `POST /v1/auth/refresh` for a new pair; use each once.
    #[schema(example = "krr_Zk3m9QwX0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1w")]
    pub refresh_token: String,
    /// When the refresh token stops working (180 days by default); every
    /// refresh starts a new one.
    #[schema(value_type = String, format = DateTime, example = "2027-05-21T10:00:00Z")]
    pub refresh_token_expires_at: jiff::Timestamp,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: String,
}

/// An account and a new session for it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "account": {
        "id": "0193a5b2c1d07e4f8a9b0c1d2e3f4a5b",
        "organisation_id": "0193a5b0c0de7a11b2c3d4e5f6a7b8c9",
        "role": "worker",
        "display_name": "Anna de Vries",
        "email": "anna@buurtwerk.example",
        "login_name": null,
        "locale": "nl",
        "time_zone": "Europe/Amsterdam",
        "quiet_hours": {"start": "21:00", "end": "09:00"},
        "preferred_reminder_time": null,
        "working_hours": {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"},
        "discreet_pushes": "sensitive_circles",
        "created_at": "2026-11-02T09:00:00Z"
    },
    "tokens": {
        "access_token": "kra_3q2-6vQZ0pJ7o1nY8m1cW6Q9rJx0dB4yq0b7w1r2s3t",
        "access_token_expires_at": "2026-11-22T10:15:00Z",
        "refresh_token": "krr_Zk3m9QwX0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1w",
        "refresh_token_expires_at": "2027-05-21T10:00:00Z",
        "token_type": "Bearer"
    }
}))]
pub struct AuthResponse {
    /// The account signed in.
    pub account: Me,
    /// The new session's tokens.
    pub tokens: Tokens,
}

impl AuthResponse {
    /// The response, marked as holding tokens: never stored for an
    /// idempotent replay; `advice` tells a retry what to do instead.
    pub fn into_response_with(self, status: StatusCode, advice: &'static str) -> Response {
        HoldsSecret(advice).mark((status, axum::Json(self)))
    }
}

/// Opens a new session for `account_id` and returns its first tokens.
pub async fn open_session(
    conn: &mut AnyConnection,
    state: &AppState,
    account_id: &str,
) -> Result<Tokens, sqlx::Error> {
    let now = state.now_ms();
    let session_id = new_id();
    sqlx::query(
        "INSERT INTO sessions (id, account_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(&session_id)
    .bind(account_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    issue_tokens(conn, state, &session_id).await.map(|(t, _)| t)
}

/// A new access and refresh token for a session; returns them and the
/// refresh token's hash.
async fn issue_tokens(
    conn: &mut AnyConnection,
    state: &AppState,
    session_id: &str,
) -> Result<(Tokens, String), sqlx::Error> {
    let pair = (new_token("kra_"), new_token("krr_"));
    insert_tokens(conn, state, session_id, pair).await
}

/// Stores an access and refresh token for a session.
async fn insert_tokens(
    conn: &mut AnyConnection,
    state: &AppState,
    session_id: &str,
    (access, refresh): (String, String),
) -> Result<(Tokens, String), sqlx::Error> {
    let now = state.now_ms();
    let access_expires = now + i64::from(state.config.access_token_ttl_secs) * 1000;
    let refresh_expires = now + i64::from(state.config.refresh_token_ttl_days) * 86_400_000;
    let refresh_hash = hash_token(&refresh);
    sqlx::query(
        "INSERT INTO access_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(hash_token(&access))
    .bind(session_id)
    .bind(access_expires)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&refresh_hash)
    .bind(session_id)
    .bind(now)
    .bind(refresh_expires)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(session_id)
        .execute(&mut *conn)
        .await?;
    Ok((
        Tokens {
            access_token: access,
            access_token_expires_at: from_ms(access_expires),
            refresh_token: refresh,
            refresh_token_expires_at: from_ms(refresh_expires),
            token_type: "Bearer".into(),
        },
        refresh_hash,
    ))
}

/// Revokes sessions: one (`session_id`) or every session of an account.
pub async fn revoke_sessions(
    tx: &mut Tx,
    now: i64,
    account_id: &str,
    session_id: Option<&str>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    // Cached tokens of the account are forgotten at commit.
    tx.touch(Scope::Account(account_id.to_owned()));
    let conn: &mut AnyConnection = tx;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE account_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id = $2)",
    )
    .bind(account_id)
    .bind(session_id)
    .fetch_all(&mut *conn)
    .await?;
    for id in ids {
        sqlx::query("UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3")
            .bind(now)
            .bind(reason)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM access_tokens WHERE session_id = $1")
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A sign-in with a password.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"login": "anna@buurtwerk.example", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    /// E-mail address (staff) or login name (members who chose one).
    /// Not blank: it is trimmed before it is looked up.
    #[schema(example = "anna@buurtwerk.example")]
    #[schema(min_length = 1, max_length = 254)]
    #[schema(
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub login: String,
    /// The account's password.
    #[schema(example = "correct horse battery staple", format = Password)]
    #[schema(min_length = 1, max_length = 1024)]
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub password: String,
}

/// Sign in with e-mail or login name and password.
///
/// Public. Staff sign in with their e-mail address; members with the login
/// name and password they chose when joining (members without one keep the
/// session their app got at `invite_join`, or move with a recovery code,
/// `auth_recover`). Opens a new session and answers the account with its
/// first tokens; other sessions stay open.
///
/// Repeated failures are throttled (429 with `Retry-After`): by default 5
/// failures per login name and 30 per client address within 15 minutes.
/// Each attempt counts as a failure before its password is checked, so
/// attempts sent at once cannot get past the limit; a right password takes
/// its attempt back. Passwords are checked a few at a time: under load the
/// answer is 503 `busy` with `Retry-After`. The tokens are never kept for
/// an idempotent replay: a retry with the same `Idempotency-Key` answers
/// 409 `idempotency_replay_refused`.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    operation_id = "auth_login",
    extensions(("x-problem-codes" = json!([Code::InvalidCredentials, Code::TooManyRequests, Code::Busy, Code::IdempotencyReplayRefused]))),
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthResponse),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    let login = req.login.trim().to_lowercase();
    let mut v = Validator::default();
    if login.is_empty() || login.len() > 254 {
        v.fail("login", "must be 1 to 254 characters");
    }
    if req.password.is_empty() || req.password.len() > 1024 {
        v.fail("password", "must be 1 to 1024 characters");
    }
    v.finish()?;

    let now = state.now_ms();
    // The address first: a client trying many names is stopped there
    // before any name's count is touched.
    let mut attempts = Vec::with_capacity(2);
    if let Some(address) = address {
        let identifier = format!("address:{address}");
        let limit = state.config.login_max_failures_per_address;
        attempts.push(claim_attempt(&state, &identifier, limit, now).await?);
    }
    let identifier = format!("login:{login}");
    let limit = state.config.login_max_failures;
    attempts.push(claim_attempt(&state, &identifier, limit, now).await?);

    let account: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT id, password_hash FROM accounts
         WHERE (email = $1 OR login_name = $1) AND deactivated_at IS NULL",
    )
    .bind(&login)
    .fetch_optional(state.store.pool())
    .await?;
    let stored_hash = account.as_ref().and_then(|(_, h)| h.clone());
    let ok = state.hashing.verify(req.password, stored_hash).await?;

    match account {
        Some((account_id, Some(_))) if ok => {
            let mut tx = state.store.begin().await?;
            // The right password gives its own slots back; earlier failures
            // stay in the window, so a sign-in does not reopen guessing.
            for attempt in &attempts {
                sqlx::query("DELETE FROM login_failures WHERE id = $1")
                    .bind(attempt)
                    .execute(&mut *tx)
                    .await?;
            }
            let tokens = open_session(&mut tx, &state, &account_id).await?;
            let account = load_me(&mut tx, &account_id).await?;
            tx.commit().await?;
            Ok(AuthResponse { account, tokens }
                .into_response_with(StatusCode::OK, "Sign in again."))
        }
        // The claimed slot stays: it is the failure.
        _ => Err(ApiError::new(
            Code::InvalidCredentials,
            "The login or password is not correct",
        )),
    }
}

/// Counts a sign-in attempt for `identifier` before its password is
/// checked: 429 when the window already holds the most failures allowed,
/// else a failure is recorded now and its id returned (a right password
/// removes it). Attempts for one name take turns on its `login_throttles`
/// row, so however many arrive at once, at most the limit are checked.
async fn claim_attempt(
    state: &AppState,
    identifier: &str,
    limit: u32,
    now: i64,
) -> ApiResult<String> {
    let window_ms = i64::from(state.config.login_window_secs) * 1000;
    let mut tx = state.store.begin().await?;
    sqlx::query(
        "INSERT INTO login_throttles (identifier, locked_at) VALUES ($1, $2)
         ON CONFLICT (identifier) DO UPDATE SET locked_at = excluded.locked_at",
    )
    .bind(identifier)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let failures: Vec<i64> = sqlx::query_scalar(
        "SELECT failed_at FROM login_failures WHERE identifier = $1 AND failed_at > $2 ORDER BY failed_at",
    )
    .bind(identifier)
    .bind(now - window_ms)
    .fetch_all(&mut *tx)
    .await?;
    if failures.len() >= limit as usize {
        let oldest = failures.first().copied().unwrap_or(now);
        let retry_after_secs = u64::try_from((oldest + window_ms - now + 999) / 1000)
            .unwrap_or(1)
            .max(1);
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    let attempt = new_id();
    sqlx::query("INSERT INTO login_failures (id, identifier, failed_at) VALUES ($1, $2, $3)")
        .bind(&attempt)
        .bind(identifier)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(attempt)
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "krr_Zk3m9QwX0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1w"}))]
pub struct RefreshRequest {
    /// The `refresh_token` of the session's latest pair.
    #[schema(example = "krr_Zk3m9QwX0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1w")]
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub refresh_token: String,
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    expires_at: i64,
    used_at: Option<i64>,
    replaced_by: Option<String>,
    successor_salt: Option<String>,
}

/// Exchange a refresh token for a new token pair.
///
/// Public: the refresh token is the credential. Call it when a request
/// answers 401 `token_expired`, then retry that request with the new
/// access token. The session stays the same; its old access token stops
/// working.
///
/// Each refresh token works once. A retry within 30 seconds (a lost
/// response), and refreshes sent at the same time, all get the same new
/// pair, as long as that pair has not been used. Presenting a spent token
/// otherwise revokes the whole session (401 `refresh_token_reused`: a sign
/// that the token was copied); sign in again. A signed-out session answers
/// `session_revoked`, an old token `refresh_token_expired`. Send it without
/// an `Idempotency-Key`: the new tokens are never kept for a replay.
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    operation_id = "auth_refresh",
    extensions(("x-problem-codes" = json!([Code::InvalidRefreshToken, Code::SessionRevoked, Code::RefreshTokenExpired, Code::RefreshTokenReused, Code::IdempotencyReplayRefused]))),
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = Tokens),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Response> {
    let invalid = || ApiError::new(Code::InvalidRefreshToken, "The refresh token is not valid");
    if req.refresh_token.is_empty() || req.refresh_token.len() > 200 {
        return Err(invalid());
    }
    let hash = hash_token(&req.refresh_token);
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    // Refreshes of one session take turns: the first statement locks the
    // session's row (PostgreSQL; SQLite has one writer at a time), before any
    // token row, so racing refreshes neither interleave nor deadlock, and
    // each sees what the one before it committed.
    let session: Option<(String, String, Option<i64>)> = sqlx::query_as(
        "UPDATE sessions SET last_used_at = $1
         WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)
         RETURNING id, account_id, revoked_at",
    )
    .bind(now)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let (session_id, account_id, revoked_at) = session.ok_or_else(invalid)?;
    if revoked_at.is_some() {
        return Err(ApiError::new(
            Code::SessionRevoked,
            "This session has been signed out",
        ));
    }
    let row: RefreshRow = sqlx::query_as(
        "SELECT expires_at, used_at, replaced_by, successor_salt FROM refresh_tokens
         WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?;
    if row.expires_at <= now {
        return Err(ApiError::new(
            Code::RefreshTokenExpired,
            "The refresh token has expired; sign in again",
        ));
    }
    let successor = |salt: &str| {
        crate::secrets::successor_tokens(&req.refresh_token, salt).map_err(ApiError::Internal)
    };
    let tokens = match (row.used_at, row.replaced_by, row.successor_salt) {
        (None, _, _) => {
            let salt = new_token("");
            let (tokens, new_hash) =
                insert_tokens(&mut tx, &state, &session_id, successor(&salt)?).await?;
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1, replaced_by = $2, successor_salt = $3
                 WHERE token_hash = $4",
            )
            .bind(now)
            .bind(&new_hash)
            .bind(&salt)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            Some(tokens)
        }
        // A retry after a lost response, or a refresh that raced the first
        // one: the same pair again, while the app has not used it.
        (Some(used_at), Some(next_hash), Some(salt)) if now - used_at <= REUSE_GRACE_MS => {
            let (access, refresh) = successor(&salt)?;
            let next: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
                "SELECT created_at, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind(&next_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match next {
                Some((created_at, expires_at, None)) if hash_token(&refresh) == next_hash => {
                    Some(Tokens {
                        access_token: access,
                        access_token_expires_at: from_ms(
                            created_at + i64::from(state.config.access_token_ttl_secs) * 1000,
                        ),
                        refresh_token: refresh,
                        refresh_token_expires_at: from_ms(expires_at),
                        token_type: "Bearer".into(),
                    })
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some(tokens) = tokens else {
        revoke_sessions(
            &mut tx,
            now,
            &account_id,
            Some(&session_id),
            "refresh_token_reused",
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(session_id = %session_id, "refresh token reused; session revoked");
        return Err(ApiError::new(
            Code::RefreshTokenReused,
            "This refresh token was already used; the session has been signed out for safety",
        ));
    };
    tx.commit().await?;
    // Sent with a bearer token and a key, it would otherwise be stored.
    Ok(HoldsSecret("Send the refresh again without an Idempotency-Key.").mark(axum::Json(tokens)))
}

/// Sign out on this device: revokes this session's tokens.
///
/// Any signed-in person. The access and refresh tokens of this session
/// stop working at once; other sessions (other phones) stay signed in.
/// Unregister the device first (`device_unregister`) if it should stop
/// receiving pushes. Calling it again with the same token answers 401.
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth",
    operation_id = "auth_logout",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
    )
)]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    revoke_sessions(
        &mut tx,
        state.now_ms(),
        &caller.account_id,
        Some(&caller.session_id),
        "logout",
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: revokes every session of this account.
///
/// Any signed-in person. Every session of the account, this one included,
/// stops working at once: use it after losing a phone. Devices stay
/// registered until their app unregisters them or their provider reports
/// them gone.
#[utoipa::path(
    post, path = "/v1/auth/logout-all", tag = "auth",
    operation_id = "auth_logout_all",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out on every device"),
    )
)]
pub async fn logout_all(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    revoke_sessions(
        &mut tx,
        state.now_ms(),
        &caller.account_id,
        None,
        "logout_all",
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A setup code and the password to set with it.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"code": "KX4M-7TQD-9HCA", "password": "correct horse battery staple"}))]
pub struct SetupRequest {
    /// The one-time setup code the coordinator (or `kring admin`) handed out.
    #[schema(example = "KX4M-7TQD-9HCA")]
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub code: String,
    /// The new password: 10 to 256 characters.
    #[schema(example = "correct horse battery staple", format = Password)]
    #[schema(min_length = 10, max_length = 256)]
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub password: String,
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    account_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    deactivated_at: Option<i64>,
}

/// Ends every unused one-time code of an account (it was removed).
pub async fn revoke_codes(
    conn: &mut AnyConnection,
    now: i64,
    account_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE account_codes SET used_at = $1 WHERE account_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(account_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Finds and spends a one-time account code, or says why it cannot be used.
/// The account a code of `purpose` opens, if the code is live (known, not
/// used, not expired, its account not removed), and its canonical form.
async fn live_code(
    conn: &mut AnyConnection,
    now: i64,
    code: &str,
    purpose: &str,
) -> ApiResult<(String, String)> {
    let invalid = || ApiError::field("code", "is not a valid code");
    let canonical = canonical_code(code).map_err(|_| invalid())?;
    let row: Option<CodeRow> = sqlx::query_as(
        "SELECT c.account_id, c.expires_at, c.used_at, a.deactivated_at
         FROM account_codes c JOIN accounts a ON a.id = c.account_id
         WHERE c.code_hash = $1 AND c.purpose = $2",
    )
    .bind(hash_token(&canonical))
    .bind(purpose)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or_else(invalid)?;
    // Removal also marks the codes used; this says why, and holds for a
    // code that some other path left behind.
    if row.deactivated_at.is_some() {
        return Err(ApiError::new(
            Code::CodeRevoked,
            "This code was revoked: its account has been removed",
        ));
    }
    if row.used_at.is_some() {
        return Err(ApiError::new(
            Code::CodeUsed,
            "This code has already been used",
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::new(
            Code::CodeExpired,
            "This code has expired; ask for a new one",
        ));
    }
    Ok((row.account_id, canonical))
}

/// Spends a live code of `purpose` (once, also under concurrent requests)
/// and returns the account it opens.
async fn spend_code(
    conn: &mut AnyConnection,
    now: i64,
    code: &str,
    purpose: &str,
) -> ApiResult<String> {
    let (account_id, canonical) = live_code(conn, now, code, purpose).await?;
    let spent = sqlx::query(
        "UPDATE account_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(hash_token(&canonical))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if spent != 1 {
        return Err(ApiError::new(
            Code::CodeUsed,
            "This code has already been used",
        ));
    }
    Ok(account_id)
}

/// Creates a one-time code for an account and returns it (shown once).
/// `circle_id` is the circle a recovery code was issued in, for its staff.
pub async fn create_code(
    conn: &mut AnyConnection,
    now: i64,
    account_id: &str,
    purpose: &str,
    created_by: Option<&str>,
    valid_ms: i64,
    circle_id: Option<&str>,
) -> Result<(String, i64), sqlx::Error> {
    let code = crate::secrets::new_code(3);
    let canonical = code.replace('-', "");
    // A new code replaces any earlier unused one for the same purpose.
    sqlx::query("UPDATE account_codes SET used_at = $1, replaced_at = $1 WHERE account_id = $2 AND purpose = $3 AND used_at IS NULL")
        .bind(now)
        .bind(account_id)
        .bind(purpose)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO account_codes (code_hash, account_id, purpose, created_by, created_at, expires_at, circle_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(hash_token(&canonical))
    .bind(account_id)
    .bind(purpose)
    .bind(created_by)
    .bind(now)
    .bind(now + valid_ms)
    .bind(circle_id)
    .execute(&mut *conn)
    .await?;
    Ok((code, now + valid_ms))
}

/// Staff: choose a password with a one-time setup code and sign in.
///
/// Public: the code is the credential. A coordinator gets a setup code when
/// they add a staff member (`organisation_staff_create`, valid for 7 days,
/// or a new one with `organisation_staff_setup_code_create`); the first
/// coordinator gets theirs from `kring admin create-organisation`. Case and
/// dashes in the code do not matter. Sets the password, spends the code and
/// opens a session. A code that is not known is 422 on `code`; a used,
/// replaced, expired or revoked one is 410.
///
/// The tokens are never kept for an idempotent replay: a retry with the same
/// `Idempotency-Key` after success answers 409 `idempotency_replay_refused`;
/// sign in with the new password instead.
#[utoipa::path(
    post, path = "/v1/auth/setup", tag = "auth",
    operation_id = "auth_setup",
    extensions(("x-problem-codes" = json!([Code::CodeUsed, Code::CodeExpired, Code::CodeRevoked, Code::Busy, Code::IdempotencyReplayRefused]))),
    security(()),
    params(IdempotencyKey),
    request_body = SetupRequest,
    responses(
        (status = 200, description = "Password set; signed in", body = AuthResponse),
    )
)]
pub async fn setup(
    State(state): State<AppState>,
    idem: Idempotent,
    Json(req): Json<SetupRequest>,
) -> ApiResult<Response> {
    let mut v = Validator::default();
    let password = v.check("password", validate_password(&req.password));
    let Some(password) = password else {
        return Err(v.into_error());
    };
    let now = state.now_ms();
    // A wrong code costs no hash.
    live_code(
        &mut *state.store.pool().acquire().await?,
        now,
        &req.code,
        "setup",
    )
    .await?;
    let hash = state.hashing.hash(password).await?;
    let mut tx = idem.begin(&state.store).await?;
    let account_id = spend_code(&mut tx, now, &req.code, "setup").await?;
    sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
        .bind(&hash)
        .bind(&account_id)
        .execute(&mut *tx)
        .await?;
    let tokens = open_session(&mut tx, &state, &account_id).await?;
    let account = load_me(&mut tx, &account_id).await?;
    idem.commit(
        tx,
        AuthResponse { account, tokens }
            .into_response_with(StatusCode::OK, "Sign in with the password you chose."),
    )
    .await
}

pub fn validate_password(password: &str) -> Result<String, String> {
    let chars = password.chars().count();
    if !(10..=256).contains(&chars) {
        return Err("must be 10 to 256 characters".into());
    }
    Ok(password.to_owned())
}

/// A recovery code.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"code": "KX4M-7TQD-9HCA"}))]
pub struct RecoverRequest {
    /// The one-time recovery code a worker issued.
    #[schema(example = "KX4M-7TQD-9HCA")]
    #[schema(pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub code: String,
}

/// Move an account to a new phone with a recovery code from a worker.
///
/// Public: the code is the credential. A worker issues a recovery code for
/// a member (`circle_member_recovery_code_create`, valid for 24 hours).
/// Case and dashes in the code do not matter. Spends the code, signs the
/// account out on every other device, opens a session here, and tells the
/// member in their inbox (`account_recovered`). A code that is not known is
/// 422 on `code`; a used, replaced, expired or revoked one is 410.
/// The tokens are never kept for an idempotent replay: a retry with the same
/// `Idempotency-Key` after success answers 409 `idempotency_replay_refused`
/// (ask the worker for a new code), so a replay can never open a session.
#[utoipa::path(
    post, path = "/v1/auth/recover", tag = "auth",
    operation_id = "auth_recover",
    extensions(("x-problem-codes" = json!([Code::CodeUsed, Code::CodeExpired, Code::CodeRevoked, Code::IdempotencyReplayRefused]))),
    security(()),
    params(IdempotencyKey),
    request_body = RecoverRequest,
    responses(
        (status = 200, description = "Signed in on this device", body = AuthResponse),
    )
)]
pub async fn recover(
    State(state): State<AppState>,
    idem: Idempotent,
    Json(req): Json<RecoverRequest>,
) -> ApiResult<Response> {
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let account_id = spend_code(&mut tx, now, &req.code, "recovery").await?;
    revoke_sessions(&mut tx, now, &account_id, None, "recovered").await?;
    // The member hears of it in the same transaction, so a takeover is
    // never silent; pushed at once, whatever the hour.
    crate::notifications::produce::notify(
        &mut tx,
        now,
        &crate::notifications::produce::Outgoing {
            account_id: account_id.clone(),
            kind: crate::push::payload::NotificationKind::AccountRecovered,
            params: Default::default(),
            circle_id: None,
            post_id: None,
            membership_id: None,
            alert_id: None,
            deliver_at: Some(now),
            inbox_only: false,
        },
    )
    .await?;
    let tokens = open_session(&mut tx, &state, &account_id).await?;
    let account = load_me(&mut tx, &account_id).await?;
    idem.commit(
        tx,
        AuthResponse { account, tokens }
            .into_response_with(StatusCode::OK, "Ask your worker for a new recovery code."),
    )
    .await
}
