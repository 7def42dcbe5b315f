//! The whole HTTP application: every feature's router, the operations
//! endpoints, and the layers from [`crate::http`] that apply to every
//! request. This is the one place that knows every feature.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::{Extension, Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::openapi::{
    ApiDoc, FieldDescriptions, Links, OpenEnums, Problems, ResponseHeaders, Security,
};
use crate::ops::SpecJson;
use crate::state::AppState;
use crate::{
    access_log, accounts, checkins, circles, devices, erasure, exports, http, notifications, ops,
    organisations, outcomes, posts, questionnaires, silence,
};

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
        .merge(access_log::router())
        .merge(erasure::router())
        .merge(exports::router())
        .merge(outcomes::router())
        .merge(questionnaires::router())
        .merge(ops::router())
        .split_for_parts();
    Security.modify(&mut spec);
    Problems.modify(&mut spec);
    access_log::policy::Documented.modify(&mut spec);
    ResponseHeaders.modify(&mut spec);
    Links.modify(&mut spec);
    OpenEnums.modify(&mut spec);
    FieldDescriptions.modify(&mut spec);
    (router, spec)
}

/// The OpenAPI spec as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let (_, spec) = api();
    let mut json = spec.to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

/// The routes, the spec as JSON and the access log's list of operations.
/// Built on a thread of its own, which ends: the spec's document is large,
/// and a thread that idles after freeing memory would keep it unless the
/// allocator purges at once (the binary sets that, `src/main.rs`; tests
/// and other embedders may not).
fn built_once() -> (
    Router<AppState>,
    String,
    std::sync::Arc<access_log::Operations>,
) {
    let build = || {
        let (router, spec) = api();
        let mut json = spec.to_pretty_json().unwrap_or_default();
        json.push('\n');
        let operations = std::sync::Arc::new(access_log::Operations::from_spec(&spec));
        (router, json, operations)
    };
    std::thread::scope(|scope| scope.spawn(build).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The application with its state and layers.
pub fn app(state: AppState) -> Router {
    let (router, json, operations) = built_once();
    let max_body = state.config.max_body_bytes;
    // Testing only, and outside the spec: moving the clock.
    let router = if state.test_clock.is_some() {
        router.route(
            "/test/clock",
            axum::routing::post(ops::test_clock::move_clock),
        )
    } else {
        router
    };
    router
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        // Next to the handlers, inside idempotency: see the middleware.
        .layer(middleware::from_fn_with_state(
            (state.clone(), operations),
            access_log::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            http::idempotency::middleware,
        ))
        .layer(middleware::from_fn(
            http::extract::reject_control_characters,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(state.config.request_timeout_secs.max(1)),
            http::server::request_timeout,
        ))
        .layer(middleware::from_fn(http::server::header_limit))
        .layer(Extension(SpecJson::new(json)))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::Internal("a handler panicked".into()).into_response()
            },
        ))
        .with_state(state)
}
