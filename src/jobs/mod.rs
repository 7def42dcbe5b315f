//! Background work that every Kring instance runs: push delivery
//! ([`delivery`]), the silence scheduler ([`silence`]), building exports
//! ([`exports`]), asking questionnaires ([`questionnaires`]) and
//! housekeeping ([`upkeep`]).
//!
//! Each is a [`Job`]: tests drive it with [`run_until_idle`]; production
//! runs it in [`run`], one loop for all, which stops between rounds when
//! cancelled, lets a job finish what it started, and logs a failed or
//! panicking round with the job's name and goes on. Due work is claimed
//! with [`crate::store::Store::claim_due`].

pub mod delivery;
pub mod exports;
pub mod questionnaires;
pub mod silence;
pub mod upkeep;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Work done in rounds.
pub trait Job: Send + 'static {
    /// What a round did; [`run_until_idle`] adds rounds up.
    type Progress: Progress;

    /// The job's name in logs.
    fn name(&self) -> &'static str;

    /// How long the loop waits after a round that found nothing to do, or
    /// failed, before it looks again.
    fn interval(&self) -> Duration;

    /// One whole round: whatever it starts has ended when it returns.
    fn run_once(
        &self,
        state: &AppState,
    ) -> impl Future<Output = Result<Self::Progress, sqlx::Error>> + Send;

    /// One round of the production loop: by default a whole round. A job
    /// may instead start work that outlives the round (delivery's sends, so
    /// that a slow one holds back no other), and then tells of it in
    /// [`Job::settled`] and finishes it in [`Job::drain`].
    fn step(
        &mut self,
        state: &AppState,
    ) -> impl Future<Output = Result<Self::Progress, sqlx::Error>> + Send {
        self.run_once(state)
    }

    /// Ends when some work a step started has ended, which may let the
    /// next step do more. Without such work it never ends.
    fn settled(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// Waits for all work the steps started; the loop's last call.
    fn drain(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// What a round reports.
pub trait Progress: Default + Send {
    /// True when the round found nothing to do.
    fn is_idle(&self) -> bool;
    /// Adds another round's report to this one.
    fn add(&mut self, other: Self);
}

impl Progress for usize {
    fn is_idle(&self) -> bool {
        *self == 0
    }

    fn add(&mut self, other: Self) {
        *self += other;
    }
}

impl Progress for u64 {
    fn is_idle(&self) -> bool {
        *self == 0
    }

    fn add(&mut self, other: Self) {
        *self += other;
    }
}

/// Whole rounds until one finds nothing to do: for tests, and for
/// `KRING_TEST_CLOCK`. Returns what they did together.
pub async fn run_until_idle<J: Job>(job: &J, state: &AppState) -> Result<J::Progress, sqlx::Error> {
    let mut total = J::Progress::default();
    loop {
        let round = job.run_once(state).await?;
        if round.is_idle() {
            return Ok(total);
        }
        total.add(round);
    }
}

/// The production loop. A round that did something is followed at once by
/// the next; after an idle or failed round the loop waits for the job's
/// interval, for work it started to settle, or for cancellation. Once
/// cancelled it starts no round and returns when the job has drained.
pub async fn run<J: Job>(mut job: J, state: AppState, cancel: CancellationToken) {
    let name = job.name();
    while !cancel.is_cancelled() {
        let busy = match catch_panic(job.step(&state)).await {
            Some(Ok(progress)) => !progress.is_idle(),
            Some(Err(err)) => {
                tracing::warn!(job = name, error = %err, "job round failed; will retry");
                false
            }
            None => {
                tracing::error!(job = name, "job round panicked; the loop goes on");
                state.metrics.job_panicked(name);
                false
            }
        };
        if !busy {
            let interval = job.interval();
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(interval) => {}
                () = job.settled() => {}
            }
        }
    }
    job.drain().await;
}

/// A job's production loop, ready to be spawned: [`crate::serve`] starts
/// a list of these.
pub fn start<J: Job>(
    job: J,
    state: &AppState,
    cancel: &CancellationToken,
) -> BoxFuture<'static, ()> {
    run(job, state.clone(), cancel.clone()).boxed()
}

/// Runs `work`, returning `None` if it panicked, so that one bad round or
/// send never ends a loop. The panic hook has already printed the panic;
/// callers log which job (and which item) it hit.
pub(crate) async fn catch_panic<F: Future>(work: F) -> Option<F::Output> {
    // A panicking round leaves nothing shared half-changed that the next
    // round trusts: its database work is in transactions that roll back.
    AssertUnwindSafe(work).catch_unwind().await.ok()
}
