//! Operations endpoints, for whoever runs Kring rather than for apps:
//! liveness and readiness, the spec as served, the Prometheus metrics, and
//! (testing only, outside the spec) moving the clock.

pub mod test_clock;

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The operations routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
}

/// The spec as served, rendered once.
#[derive(Clone)]
pub struct SpecJson(Arc<String>);

impl SpecJson {
    pub fn new(json: String) -> Self {
        Self(Arc::new(json))
    }
}

/// A health report.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// `ok`, or what is wrong (for people; do not parse it).
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: the process is up.
///
/// Public; for load balancers and orchestrators. Answers without touching
/// the database, so it stays up while the database is away (use `readyz_get`
/// to route traffic). Changes nothing.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    operation_id = "healthz_get",
    security(()),
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and every migration is applied.
///
/// Public; for load balancers and orchestrators: send traffic to an
/// instance only while it answers 200. Answers 503 with a `Health` report
/// otherwise. Changes nothing.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    operation_id = "readyz_get",
    security(()),
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "Not ready", body = Health),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    if state.store.is_ready().await {
        (
            StatusCode::OK,
            axum::Json(Health {
                status: "ok".into(),
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health {
                status: "database unavailable or migrations pending".into(),
            }),
        )
    }
}

/// This OpenAPI 3.1 document.
///
/// Public. The same document as `openapi/openapi.json` in the repository,
/// byte for byte: generate clients from either. Changes nothing.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    operation_id = "openapi_get",
    security(()),
    responses((status = 200, description = "The OpenAPI spec", content_type = "application/json"))
)]
pub async fn openapi_json(Extension(spec): Extension<SpecJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        spec.0.as_str().to_owned(),
    )
        .into_response()
}

/// Prometheus text exposition.
///
/// Public, for the operator's monitoring (restrict it at the proxy if the
/// network is not trusted): push send attempts and their outcomes per
/// provider, the outbox's backlog and its oldest due delivery, provider
/// pauses for bad credentials, and password hashing. Not for apps. Changes
/// nothing.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    operation_id = "metrics_get",
    security(()),
    responses(
        (status = 200, description = "Metrics in Prometheus text format", content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let now = state.now_ms();
    let pool = state.store.pool();
    let m = &state.metrics;
    for kind in ["apns", "fcm", "webpush"] {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND provider = $1",
        )
        .bind(kind)
        .fetch_one(pool)
        .await?;
        let paused: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM provider_pauses WHERE provider = $1 AND paused_until > $2",
        )
        .bind(kind)
        .bind(now)
        .fetch_one(pool)
        .await?;
        m.set_provider_state(kind, pending, paused > 0);
    }
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(not_before) FROM deliveries WHERE status = 'pending' AND not_before <= $1",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    m.set_oldest_pending(oldest.map(|t| (now - t) / 1000).unwrap_or(0));
    let body = m.encode().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
