//! The export builder: each round claims pending exports
//! ([`crate::exports::QUEUE`], under a lease) and builds their documents.

use std::time::Duration;

use crate::jobs::Job;
use crate::state::AppState;

/// Builds exports: looks every 5 seconds while none is pending (an export
/// is asked for rarely, and the look is one index probe).
pub struct Builder;

impl Job for Builder {
    type Progress = usize;

    fn name(&self) -> &'static str {
        "exports"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn run_once(&self, state: &AppState) -> Result<usize, sqlx::Error> {
        crate::exports::build_once(state).await
    }
}
