//! The state every handler gets: the store, the clock and the configuration.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::push::Providers;
use crate::store::Store;
use crate::store::cache::Caches;

#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// "Now" for every stored or compared time; a manual clock in tests.
    pub clock: Arc<dyn Clock>,
    /// The running configuration.
    pub config: Arc<Config>,
    /// The push provider for each kind of device; fakes or mocks in tests.
    pub push: Arc<Providers>,
    /// Counters and gauges for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Password hashing, a few at a time (see [`crate::secrets::Hashing`]).
    pub hashing: Arc<crate::secrets::Hashing>,
    /// The read caches, one per kind of hot read, each made by its feature
    /// (see [`crate::store::cache`]).
    pub caches: Arc<Caches>,
    /// Testing only (`KRING_TEST_CLOCK`): the clock `POST /test/clock` moves.
    pub test_clock: Option<crate::clock::ManualClock>,
    /// Testing only: faults a test arms to see what a crash or an outage at
    /// one point does. Nothing outside the tests sets them.
    pub faults: Arc<Faults>,
}

/// Faults the integration tests inject at points no database trigger can
/// reach. All off unless a test turns one on.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next idempotent request's answer is lost after its handler
    /// returned (its instance died before the client heard back): the
    /// client gets a 500 and nothing after the handler runs.
    pub lose_next_answer: std::sync::atomic::AtomicBool,
    /// The next caller lookup of the idempotency layer fails as a brief
    /// database outage would.
    pub fail_next_caller_lookup: std::sync::atomic::AtomicBool,
}

impl Faults {
    /// Whether `fault` was armed; disarms it.
    pub fn take(fault: &std::sync::atomic::AtomicBool) -> bool {
        fault.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

impl AppState {
    /// State with the log push provider and fresh metrics.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        store.set_read_cache(config.read_cache.enabled_for(store.backend()));
        let metrics = Arc::new(Metrics::default());
        let hashing = Arc::new(crate::secrets::Hashing::new(
            config.hash_concurrency,
            config.hash_queue,
            metrics.password_hashes.clone(),
            metrics.password_hashes_refused.clone(),
        ));
        Self {
            hashing,
            caches: Arc::new(Caches::default()),
            store,
            clock,
            config: Arc::new(config),
            push: Arc::new(Providers::log_only()),
            metrics,
            test_clock: None,
            faults: Arc::default(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
