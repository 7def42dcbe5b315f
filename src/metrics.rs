//! Prometheus metrics at `/metrics`: deliveries by provider and outcome,
//! credential failures, outcomes the database refused to record, and, read from the database at scrape time, the
//! outbox depth, the oldest pending delivery's age and paused providers.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub provider: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

/// The metrics one Kring instance keeps.
pub struct Metrics {
    registry: Registry,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub credential_failures: Family<ProviderLabels, Counter>,
    /// Failed attempts to record a push's outcome (each is retried).
    pub record_failures: Counter,
    /// Password hashes computed (sign-ins, set-ups, joins with a password).
    pub password_hashes: Counter,
    /// Sign-ins refused with 503 `busy` while hashing was at its limit.
    pub password_hashes_refused: Counter,
    outbox_pending: Family<ProviderLabels, Gauge>,
    oldest_pending_seconds: Gauge,
    provider_paused: Family<ProviderLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kring");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let credential_failures = Family::<ProviderLabels, Counter>::default();
        let record_failures = Counter::default();
        let password_hashes = Counter::default();
        let password_hashes_refused = Counter::default();
        registry.register(
            "password_hashes",
            "Password hashes computed (Argon2id; a few at a time, see KRING_HASH_CONCURRENCY)",
            password_hashes.clone(),
        );
        registry.register(
            "password_hashes_refused",
            "Sign-ins answered 503 busy because too many waited for a password hash",
            password_hashes_refused.clone(),
        );
        let outbox_pending = Family::<ProviderLabels, Gauge>::default();
        let oldest_pending_seconds = Gauge::default();
        let provider_paused = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "push_deliveries",
            "Push send attempts by provider and outcome",
            deliveries.clone(),
        );
        registry.register(
            "push_credential_failures",
            "Push attempts refused for our credentials (the provider is paused)",
            credential_failures.clone(),
        );
        registry.register(
            "push_record_failures",
            "Failed attempts to record a push's outcome in the database (each is retried)",
            record_failures.clone(),
        );
        registry.register(
            "outbox_pending",
            "Deliveries waiting in the outbox, by device kind",
            outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest delivery that is due and not yet sent",
            oldest_pending_seconds.clone(),
        );
        registry.register(
            "push_provider_paused",
            "1 while a provider is paused for bad credentials",
            provider_paused.clone(),
        );
        Self {
            registry,
            deliveries,
            credential_failures,
            record_failures,
            password_hashes,
            password_hashes_refused,
            outbox_pending,
            oldest_pending_seconds,
            provider_paused,
        }
    }
}

impl Metrics {
    pub fn delivery(&self, provider: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// Prometheus text exposition.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Metrics in Prometheus text format", content_type = "text/plain"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let now = state.now_ms();
    let pool = state.store.pool();
    let m = &state.metrics;
    for kind in ["apns", "fcm", "webpush"] {
        let labels = ProviderLabels {
            provider: kind.to_owned(),
        };
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND provider = $1",
        )
        .bind(kind)
        .fetch_one(pool)
        .await?;
        m.outbox_pending.get_or_create(&labels).set(pending);
        let paused: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM provider_pauses WHERE provider = $1 AND paused_until > $2",
        )
        .bind(kind)
        .bind(now)
        .fetch_one(pool)
        .await?;
        m.provider_paused.get_or_create(&labels).set(paused.min(1));
    }
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(not_before) FROM deliveries WHERE status = 'pending' AND not_before <= $1",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    m.oldest_pending_seconds
        .set(oldest.map(|t| (now - t) / 1000).unwrap_or(0));
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &m.registry)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
