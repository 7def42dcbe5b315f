//! The whole HTTP application: feature routers, the spec, health checks and
//! the layers that apply to every request.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router, middleware};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::has_encoded_control;
use crate::openapi::{ApiDoc, CommonResponses};
use crate::state::AppState;
use crate::{
    accounts, checkins, circles, devices, metrics, notifications, organisations, posts, silence,
};

/// The spec as served, rendered once.
#[derive(Clone)]
struct SpecJson(Arc<String>);

/// All API routes with their OpenAPI description.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(organisations::router())
        .merge(circles::router())
        .merge(posts::router())
        .merge(checkins::router())
        .merge(devices::router())
        .merge(notifications::router())
        .merge(silence::router())
        .routes(routes!(metrics::metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
        .split_for_parts();
    CommonResponses.modify(&mut spec);
    (router, spec)
}

/// The OpenAPI spec as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let (_, spec) = api();
    let mut json = spec.to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

/// The application with its state and layers.
pub fn app(state: AppState) -> Router {
    let (router, spec) = api();
    let mut json = spec.to_pretty_json().unwrap_or_default();
    json.push('\n');
    let max_body = state.config.max_body_bytes;
    // Testing only, and outside the spec: moving the clock.
    let router = if state.test_clock.is_some() {
        router.route(
            "/test/clock",
            axum::routing::post(crate::http::test_clock::move_clock),
        )
    } else {
        router
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::idempotency::middleware,
        ))
        .layer(middleware::from_fn(reject_control_characters))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(state.config.request_timeout_secs.max(1)),
            crate::http::server::request_timeout,
        ))
        .layer(middleware::from_fn(crate::http::server::header_limit))
        .layer(Extension(SpecJson(Arc::new(json))))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::Internal("a handler panicked".into()).into_response()
            },
        ))
        .with_state(state)
}

/// No id, path or query value in Kring contains control characters; a URI
/// that decodes to one cannot name anything (and NUL cannot reach the database).
async fn reject_control_characters(
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let uri = req.uri();
    if has_encoded_control(uri.path()) {
        return ApiError::NotFound("route").into_response();
    }
    if uri.query().is_some_and(has_encoded_control) {
        return ApiError::bad_request("invalid_query", "The query string holds control characters")
            .into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: the process is up.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    security(()),
    responses((status = 200, description = "Alive", body = Health))
)]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "Not ready", body = Health),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
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
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI spec", content_type = "application/json"))
)]
async fn openapi_json(Extension(spec): Extension<SpecJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        spec.0.as_str().to_owned(),
    )
        .into_response()
}
