//! `Idempotency-Key` for POSTs: a retried request gets the first response back
//! instead of creating a second thing.
//!
//! Keys are scoped to the calling account (or to anonymous callers), bound to
//! a fingerprint of the request, and kept for 24 hours. A key whose first
//! request is still running answers 409; a first request that failed with a
//! 5xx releases its key so the retry runs again.
//!
//! A response that holds a secret (tokens, a one-time code) is marked
//! [`HoldsSecret`] by its handler and is never stored: a retry of it answers
//! 409 `idempotency_replay_refused`. Replaying it would hand the secret, or a
//! fresh session, to anyone who sends the same key and body (anonymous
//! callers share one scope, and a join's body is guessable), and would undo
//! a sign-out everywhere.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::http::auth::{Caller, bearer_token};
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
/// Set on a response that is a replay of an earlier one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a key is remembered.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// After this long a still-pending first attempt is presumed dead (its
/// instance crashed) and a retry may run.
const PENDING_LEASE_MS: i64 = 60 * 1000;
/// The POSTs that work without a bearer token. Anywhere else a request
/// without one is answered by the handler (401) before any key is looked at.
const PUBLIC_POSTS: &[&str] = &["/v1/join", "/v1/auth/setup", "/v1/auth/recover"];

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
        ApiError::conflict(
            "idempotency_replay_refused",
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
    /// a different body is refused with 422 `idempotency_key_reused`.
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

#[derive(sqlx::FromRow)]
struct Stored {
    fingerprint: String,
    status_code: Option<i64>,
    content_type: Option<String>,
    response_body: Option<String>,
    created_at: i64,
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
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        })?
        .to_owned();

    let (mut parts, body) = req.into_parts();
    // An unknown token gets no scope of its own; the handler answers 401.
    let scope = match bearer_token(&parts) {
        Some(token) => match Caller::from_token(&state, token).await {
            Ok(caller) => {
                let scope = format!("account:{}", caller.account_id);
                parts.extensions.insert(caller);
                scope
            }
            Err(_) => return Ok(next.run(Request::from_parts(parts, body)).await),
        },
        None if PUBLIC_POSTS.contains(&parts.uri.path()) => "anonymous".to_owned(),
        None => return Ok(next.run(Request::from_parts(parts, body)).await),
    };
    let bytes = to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), &bytes);

    let now = state.now_ms();
    let pool = state.store.pool();
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at < $3",
    )
    .bind(&scope)
    .bind(&key)
    .bind(now - RETENTION_MS)
    .execute(pool)
    .await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (scope, idem_key) DO NOTHING",
    )
    .bind(&scope)
    .bind(&key)
    .bind(&fingerprint)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;

    if !claimed {
        let stored: Option<Stored> = sqlx::query_as(
            "SELECT fingerprint, status_code, content_type, response_body, created_at
             FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
        )
        .bind(&scope)
        .bind(&key)
        .fetch_optional(pool)
        .await?;
        let Some(stored) = stored else {
            return Err(in_progress());
        };
        if stored.fingerprint != fingerprint {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request",
            ));
        }
        if let (Some(status), Some(body)) = (stored.status_code, stored.response_body) {
            return Ok(replay(status, stored.content_type.as_deref(), body));
        }
        // Still pending: wait for it, unless its lease has run out.
        let taken_over = stored.created_at < now - PENDING_LEASE_MS
            && sqlx::query(
                "UPDATE idempotency_keys SET created_at = $1
                 WHERE scope = $2 AND idem_key = $3 AND created_at = $4 AND status_code IS NULL",
            )
            .bind(now)
            .bind(&scope)
            .bind(&key)
            .bind(stored.created_at)
            .execute(pool)
            .await?
            .rows_affected()
                == 1;
        if !taken_over {
            return Err(in_progress());
        }
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status.is_server_error() {
        release(&state, &scope, &key).await;
        return Ok(response);
    }
    let (mut resp_parts, resp_body) = response.into_parts();
    let Ok(resp_bytes) = to_bytes(resp_body, MAX_STORED_RESPONSE).await else {
        release(&state, &scope, &key).await;
        return Err(ApiError::Internal(
            "response too large to store for replay".into(),
        ));
    };
    // A secret is never stored: what a retry will get is the refusal.
    let (stored_status, content_type, body_text) = match resp_parts.extensions.get::<HoldsSecret>()
    {
        Some(secret) => {
            let refusal = secret.refusal();
            let problem = serde_json::to_string(&refusal.to_problem())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            (
                refusal.status(),
                Some("application/problem+json".to_owned()),
                problem,
            )
        }
        None => (
            status,
            resp_parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            String::from_utf8_lossy(&resp_bytes).into_owned(),
        ),
    };
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $1, content_type = $2, response_body = $3
         WHERE scope = $4 AND idem_key = $5",
    )
    .bind(i64::from(stored_status.as_u16()))
    .bind(content_type)
    .bind(body_text)
    .bind(&scope)
    .bind(&key)
    .execute(pool)
    .await?;
    resp_parts.headers.insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("false"),
    );
    Ok(Response::from_parts(resp_parts, Body::from(resp_bytes)))
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

async fn release(state: &AppState, scope: &str, key: &str) {
    let result = sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2")
        .bind(scope)
        .bind(key)
        .execute(state.store.pool())
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not release an idempotency key");
    }
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "idempotency_in_progress",
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
