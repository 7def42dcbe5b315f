//! Time comes from an injected clock so that tests of "four days of silence"
//! take milliseconds and never sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// A day, in the milliseconds times are stored in.
pub const DAY_MS: i64 = 86_400_000;

/// The source of "now" for everything that stores or compares times.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Now, as stored in the database: milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }
}

/// The wall clock, used in production.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; shared by clones.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            ms: Arc::new(AtomicI64::new(start.as_millisecond())),
        }
    }

    pub fn set(&self, to: Timestamp) {
        self.ms.store(to.as_millisecond(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: SignedDuration) {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        from_ms(self.ms.load(Ordering::SeqCst))
    }
}

/// A stored time back to a timestamp. Stored times are always written by
/// Kring from valid timestamps, so the fallback is never reached in practice.
pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn opt_from_ms(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(from_ms)
}
