//! The Prometheus metrics one instance keeps: deliveries by provider and
//! outcome, credential failures, outcomes the database refused to record,
//! password hashes, and the gauges `/metrics` (in [`crate::ops`]) reads
//! from the database at scrape time: the outbox depth, the oldest pending
//! delivery's age and paused providers.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub provider: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: String,
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
    /// Job rounds and push sends that panicked, by job.
    job_panics: Family<JobLabels, Counter>,
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
        let job_panics = Family::<JobLabels, Counter>::default();
        registry.register(
            "job_panics",
            "Background job rounds and push sends that panicked, by job (each is logged; the loop goes on)",
            job_panics.clone(),
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
            job_panics,
            outbox_pending,
            oldest_pending_seconds,
            provider_paused,
        }
    }
}

impl Metrics {
    /// A round or a send of `job` panicked.
    pub fn job_panicked(&self, job: &str) {
        self.job_panics
            .get_or_create(&JobLabels {
                job: job.to_owned(),
            })
            .inc();
    }

    pub fn delivery(&self, provider: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

impl Metrics {
    /// A provider's outbox depth and whether it is paused, read at scrape time.
    pub fn set_provider_state(&self, provider: &str, pending: i64, paused: bool) {
        let labels = ProviderLabels {
            provider: provider.to_owned(),
        };
        self.outbox_pending.get_or_create(&labels).set(pending);
        self.provider_paused
            .get_or_create(&labels)
            .set(i64::from(paused));
    }

    /// The age of the oldest due delivery, in seconds.
    pub fn set_oldest_pending(&self, seconds: i64) {
        self.oldest_pending_seconds.set(seconds);
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &self.registry)?;
        Ok(body)
    }
}
