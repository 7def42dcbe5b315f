//! `Idempotency-Key` for POSTs: a retried request gets the first response back
//! instead of creating a second thing.
//!
//! Keys are scoped to the calling account (or to anonymous callers), bound to
//! a fingerprint of the request, and kept for 24 hours.
//!
//! A creating handler writes the key and its response **in its own
//! transaction** ([`Idempotent::begin`] claims the key as the transaction's
//! first write, [`Idempotent::commit`] stores the response and commits), so
//! the key's state can never disagree with the write: after a crash, an
//! outage or a lost answer, a retry either replays the committed response
//! or runs again against a write that was rolled back. Two copies of one
//! request at once queue on the key (the database's unique index): the
//! second replays the first's response. Other POSTs (naturally idempotent
//! state changes, sign-in) store their response after the handler, which
//! at worst runs them again.
//!
//! A response that holds a secret (tokens, a one-time code) is marked
//! [`HoldsSecret`] by its handler and is never stored: a retry of it answers
//! 409 `idempotency_replay_refused`. Replaying it would hand the secret, or a
//! fresh session, to anyone who sends the same key and body (anonymous
//! callers share one scope, and a join's body is guessable), and would undo
//! a sign-out everywhere.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::error::{ApiError, Code, KeyTaken};
use crate::http::auth::{Caller, bearer_token};
use crate::state::{AppState, Faults};
use crate::store::{Store, Tx};

pub const HEADER: &str = "idempotency-key";
/// Set on a response that is a replay of an earlier one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key is remembered.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The largest response body that is stored for replay.
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// Marks a response whose body holds a secret: bearer tokens or a one-time
/// code. Its body is never stored for replay; a retry with the same key is
/// refused with 409 `idempotency_replay_refused`, whose detail ends with
/// this advice on what the app should do instead.
#[derive(Debug, Clone, Copy)]
pub struct HoldsSecret(pub &'static str);

impl HoldsSecret {
    /// `response`, marked.
    pub fn mark(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(self);
        response
    }

    fn refusal(self) -> ApiError {
        ApiError::new(
            Code::IdempotencyReplayRefused,
            format!(
                "A request with this Idempotency-Key already succeeded, and its response held a \
                 secret that is never kept for replay, so nothing was done again. {}",
                self.0
            ),
        )
    }
}

/// The `Idempotency-Key` request header, documented on every creating POST.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// A unique value per intended operation (a UUID is ideal), 1 to 255
    /// printable ASCII characters. Retrying with the same key and body returns
    /// the first response (with `Idempotent-Replayed: true`); the same key with
    /// a different body is refused with 422 `idempotency_key_reused`. The key
    /// is kept in the same transaction as the write, so after a lost answer
    /// the retry replays what was committed or runs again if nothing was;
    /// copies sent at once wait for each other and get one response.
    // No example value: a client that copies one key into every request
    // would see its second, different request refused.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]{1,255}$"
    )]
    pub idempotency_key: Option<String>,
}

/// The key a request holds, for its handler's transaction.
#[derive(Debug, Clone)]
struct Claim {
    scope: String,
    key: String,
    fingerprint: String,
    now: i64,
}

/// Set on a response whose key and body were written in the handler's
/// transaction: nothing is left to store.
#[derive(Debug, Clone, Copy)]
struct StoredInTx;

/// Extractor for creating handlers: the request's `Idempotency-Key`, if it
/// has one. Begin the write with [`Idempotent::begin`] and finish it with
/// [`Idempotent::commit`]; without a key they are a plain begin and commit.
#[derive(Debug, Clone)]
pub struct Idempotent(Option<Claim>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Claim>().cloned()))
    }
}

impl Idempotent {
    /// Begins the write transaction and, when the request has a key, claims
    /// it as the transaction's first write. A copy of this request that is
    /// still running holds the key: this waits for it (on SQLite behind the
    /// write lock, on PostgreSQL on the key's unique index) and, if it
    /// committed, answers [`ApiError::KeyTaken`] so its response is
    /// replayed instead.
    pub async fn begin(&self, store: &Store) -> Result<Tx, ApiError> {
        let mut tx = store.begin().await?;
        if let Some(claim) = &self.0 {
            sqlx::query(
                "DELETE FROM idempotency_keys
                 WHERE scope = $1 AND idem_key = $2 AND created_at < $3",
            )
            .bind(&claim.scope)
            .bind(&claim.key)
            .bind(claim.now - RETENTION_MS)
            .execute(&mut *tx)
            .await?;
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (scope, idem_key) DO NOTHING",
            )
            .bind(&claim.scope)
            .bind(&claim.key)
            .bind(&claim.fingerprint)
            .bind(claim.now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                return Err(ApiError::KeyTaken);
            }
        }
        Ok(tx)
    }

    /// Stores `response` as the key's outcome inside `tx` (a response
    /// marked [`HoldsSecret`] is stored as the refusal, never its body),
    /// then commits. Without a key: commits and returns `response`.
    pub async fn commit(
        &self,
        mut tx: Tx,
        response: impl IntoResponse,
    ) -> Result<Response, ApiError> {
        let Some(claim) = &self.0 else {
            tx.commit().await?;
            return Ok(response.into_response());
        };
        let (mut parts, body) = response.into_response().into_parts();
        let bytes = to_bytes(body, MAX_STORED_RESPONSE)
            .await
            .map_err(|_| ApiError::Internal("response too large to store for replay".into()))?;
        let (status, content_type, text) = stored_form(&parts, &bytes)?;
        sqlx::query(
            "UPDATE idempotency_keys SET status_code = $1, content_type = $2, response_body = $3
             WHERE scope = $4 AND idem_key = $5",
        )
        .bind(status)
        .bind(content_type)
        .bind(text)
        .bind(&claim.scope)
        .bind(&claim.key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        parts.extensions.insert(StoredInTx);
        Ok(Response::from_parts(parts, Body::from(bytes)))
    }
}

/// What is stored for a response: its status, content type and body, or
/// for a secret the refusal a retry gets.
fn stored_form(
    parts: &axum::http::response::Parts,
    bytes: &Bytes,
) -> Result<(i64, Option<String>, String), ApiError> {
    Ok(match parts.extensions.get::<HoldsSecret>() {
        Some(secret) => {
            let refusal = secret.refusal();
            let problem = serde_json::to_string(&refusal.to_problem())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            (
                i64::from(refusal.status().as_u16()),
                Some("application/problem+json".to_owned()),
                problem,
            )
        }
        None => (
            i64::from(parts.status.as_u16()),
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            String::from_utf8_lossy(bytes).into_owned(),
        ),
    })
}

#[derive(sqlx::FromRow)]
struct Stored {
    fingerprint: String,
    status_code: Option<i64>,
    content_type: Option<String>,
    response_body: Option<String>,
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !req.headers().contains_key(HEADER) {
        return next.run(req).await;
    }
    match handle(state, req, next).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    let key = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::new(
                Code::InvalidIdempotencyKey,
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        })?
        .to_owned();

    let (mut parts, body) = req.into_parts();
    let scope = match bearer_token(&parts) {
        Some(token) => match lookup_caller(&state, token).await {
            Ok(caller) => {
                let scope = format!("account:{}", caller.account_id);
                parts.extensions.insert(caller);
                scope
            }
            // An unknown or expired token gets no scope; the handler
            // answers 401.
            Err(err) if err.status() == StatusCode::UNAUTHORIZED => {
                return Ok(next.run(Request::from_parts(parts, body)).await);
            }
            // Anything else (the database briefly away) fails the request:
            // running it without its key could store it twice.
            Err(err) => return Err(err),
        },
        // Callers without a token share one scope. A route that needs a
        // token answers 401, which is never stored, so the scope only ever
        // holds the answers of routes open to everyone.
        None => "anonymous".to_owned(),
    };
    let bytes = to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let claim = Claim {
        scope,
        key,
        fingerprint: fingerprint(&parts.method, parts.uri.path(), &bytes),
        now: state.now_ms(),
    };
    if let Some(answer) = stored_answer(&state, &claim).await? {
        return Ok(answer);
    }

    parts.extensions.insert(claim.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if Faults::take(&state.faults.lose_next_answer) {
        return Err(ApiError::Internal(
            "injected fault: the answer was lost".into(),
        ));
    }
    if response.extensions().get::<KeyTaken>().is_some() {
        // A copy of this request committed first: answer with its response.
        return Ok(stored_answer(&state, &claim)
            .await?
            .unwrap_or_else(|| in_progress().into_response()));
    }
    if response.status().is_server_error() || response.status() == StatusCode::UNAUTHORIZED {
        // Nothing was stored: the handler's transaction (and its claim)
        // rolled back, so a retry runs again. A 401 is not an outcome
        // either: it says who may ask, not what the request did.
        return Ok(response);
    }
    let mut response = if response.extensions().get::<StoredInTx>().is_some() {
        // Kept in the handler's own transaction: nothing left to store.
        response
    } else {
        // A handler without its own claim (a state change, a sign-in, a
        // refusal before any write): store its response now.
        let (parts, body) = response.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_STORED_RESPONSE).await else {
            return Err(ApiError::Internal(
                "response too large to store for replay".into(),
            ));
        };
        let (status, content_type, text) = stored_form(&parts, &bytes)?;
        sqlx::query(
            "INSERT INTO idempotency_keys
                 (scope, idem_key, fingerprint, created_at, status_code, content_type, response_body)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, idem_key) DO NOTHING",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.fingerprint)
        .bind(claim.now)
        .bind(status)
        .bind(content_type)
        .bind(text)
        .execute(state.store.pool())
        .await?;
        Response::from_parts(parts, Body::from(bytes))
    };
    response.headers_mut().insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("false"),
    );
    Ok(response)
}

async fn lookup_caller(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    if Faults::take(&state.faults.fail_next_caller_lookup) {
        return Err(ApiError::Database(sqlx::Error::PoolTimedOut));
    }
    Caller::from_token(state, token).await
}

/// The answer a request gets from what its key already holds: the stored
/// response, or a refusal; `None` when the key is free (or expired).
async fn stored_answer(state: &AppState, claim: &Claim) -> Result<Option<Response>, ApiError> {
    let stored: Option<Stored> = sqlx::query_as(
        "SELECT fingerprint, status_code, content_type, response_body
         FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at >= $3",
    )
    .bind(&claim.scope)
    .bind(&claim.key)
    .bind(claim.now - RETENTION_MS)
    .fetch_optional(state.store.pool())
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    if stored.fingerprint != claim.fingerprint {
        return Err(ApiError::new(
            Code::IdempotencyKeyReused,
            "This Idempotency-Key was already used for a different request",
        ));
    }
    match (stored.status_code, stored.response_body) {
        (Some(status), Some(body)) => {
            Ok(Some(replay(status, stored.content_type.as_deref(), body)))
        }
        // Only a server older than this one left keys without a response.
        _ => Err(in_progress()),
    }
}

fn fingerprint(method: &Method, path: &str, body: &Bytes) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    crate::secrets::hex(&hasher.finalize())
}

fn replay(status: i64, content_type: Option<&str>, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(ct).ok()) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    headers.insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

fn in_progress() -> ApiError {
    ApiError::new(
        Code::IdempotencyInProgress,
        "A request with this Idempotency-Key is still being processed; retry shortly",
    )
}

/// Forgets keys older than the retention period.
pub async fn sweep(state: &AppState) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(state.now_ms() - RETENTION_MS)
            .execute(state.store.pool())
            .await?
            .rows_affected(),
    )
}
