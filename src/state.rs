//! The state every handler gets: the store, the clock and the configuration.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// "Now" for every stored or compared time; a manual clock in tests.
    pub clock: Arc<dyn Clock>,
    /// The running configuration.
    pub config: Arc<Config>,
}

impl AppState {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
