//! The questionnaire job: each round makes the questionnaires whose moment
//! has come and asks, reminds or expires those claimed under a lease
//! ([`crate::questionnaires::schedule`]).

use std::time::Duration;

use crate::jobs::Job;
use crate::questionnaires::schedule::{self, Round};
use crate::state::AppState;

/// Looks every 30 seconds while nothing is due: moments are days apart,
/// and a member's reminder time is a minute of the day.
pub struct Questionnaires;

impl Job for Questionnaires {
    type Progress = Round;

    fn name(&self) -> &'static str {
        "questionnaires"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(30)
    }

    async fn run_once(&self, state: &AppState) -> Result<Round, sqlx::Error> {
        schedule::round(state).await
    }
}
