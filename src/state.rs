//! The state every handler gets: the store, the clock and the configuration.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::push::Providers;
use crate::store::Store;

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
    /// Testing only (`KRING_TEST_CLOCK`): the clock `POST /test/clock` moves.
    pub test_clock: Option<crate::clock::ManualClock>,
}

impl AppState {
    /// State with the log push provider and fresh metrics.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        Self {
            store,
            clock,
            config: Arc::new(config),
            push: Arc::new(Providers::log_only()),
            metrics: Arc::new(Metrics::default()),
            test_clock: None,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
