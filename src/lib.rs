//! Kring: the backend for small asynchronous support circles.
//!
//! - [`config`]: command line and `KRING_*` environment.
//! - [`store`]: the database (SQLite or PostgreSQL through one set of queries).
//! - [`http`]: a toolkit of extractors, auth, idempotency, cursors and the
//!   connection layer; [`app`]: the application that puts features together;
//!   [`ops`]: health, readiness, the spec, metrics.
//! - features, each with its routes: [`accounts`], [`organisations`],
//!   [`circles`] (with invites and memberships), [`posts`], [`checkins`],
//!   [`devices`], [`notifications`] (the inbox and its producers), [`exports`]
//!   (a member's copy of their data).
//! - [`push`]: providers behind one trait and the response classification;
//!   [`jobs`]: delivery, the scheduler and upkeep, run by one loop; [`metrics`]: `/metrics`.
//! - [`silence`]: the silence engine: nudges, alerts, escalation.
//! - [`access_log`]: every staff access to a member's data, in a hash chain
//!   per organisation; a layer that features plug into, like [`http`].
//! - [`outcomes`]: instruments, their scores and cohort statistics (pure);
//!   [`questionnaires`]: a circle's measurement plan, the questionnaires
//!   members are asked (made, asked and reminded by a job), their answers
//!   and scores.
//! - [`clock`]: injected time, so tests move days in milliseconds.
//!
//! [`run`] serves the API until a shutdown signal; tests call [`serve`] with
//! their own state and a port-0 listener.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod accounts;
pub mod app;
pub mod checkins;
pub mod circles;
pub mod clock;
pub mod config;
pub mod devices;
pub mod erasure;
pub mod error;
pub mod exports;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod organisations;
pub mod outcomes;
pub mod posts;
pub mod push;
pub mod questionnaires;
pub mod secrets;
pub mod silence;
pub mod state;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::state::AppState;
use crate::store::{Store, StoreError};

pub use crate::jobs::upkeep::upkeep_once;

/// Applies every pending migration, then brings up to date, once, the
/// stored data that SQL cannot compute (recorded in `data_upgrades`).
pub async fn migrate(store: &Store) -> Result<(), StoreError> {
    store.migrate_sql().await?;
    circles::pseudonym::rekey_pseudonyms(store).await?;
    Ok(())
}

/// Connects to the database, applies migrations and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let store = Store::connect_with(&config.database_url(), config.database_pool_size).await?;
    migrate(&store).await?;
    // Provider tokens carry the real time even on a test clock: Apple
    // compares them with its own.
    let providers =
        push::Providers::from_config(&config, Arc::new(SystemClock)).map_err(RunError::Push)?;
    let test_clock = config
        .test_clock
        .then(|| clock::ManualClock::new(jiff::Timestamp::now()));
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(manual) => {
            tracing::warn!(
                "KRING_TEST_CLOCK is on: time moves only through POST /test/clock; never use this in production"
            );
            Arc::new(manual.clone())
        }
        None => Arc::new(SystemClock),
    };
    let mut state = AppState::new(store.clone(), clock, config);
    state.test_clock = test_clock;
    state.push = Arc::new(providers);
    tracing::info!(
        apns = state.push.apns.name(),
        fcm = state.push.fcm.name(),
        webpush = state.push.webpush.name(),
        "push providers"
    );
    serve(state, listener, shutdown).await?;
    store.close().await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("push configuration: {0}")]
    Push(String),
}

/// Serves the API with its background jobs until `shutdown` completes, then
/// drains requests and jobs.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut background = vec![jobs::start(jobs::upkeep::Upkeep, &state, &cancel)];
    if state.config.run_jobs {
        background.push(jobs::start(
            jobs::delivery::Delivery::new(&state),
            &state,
            &cancel,
        ));
        background.push(jobs::start(jobs::silence::Scheduler, &state, &cancel));
        background.push(jobs::start(erasure::run::Erasures, &state, &cancel));
        background.push(jobs::start(jobs::exports::Builder, &state, &cancel));
        background.push(jobs::start(
            jobs::questionnaires::Questionnaires,
            &state,
            &cancel,
        ));
    }
    for job in background {
        tracker.spawn(job);
    }

    let config = state.config.clone();
    let app = app::app(state);
    let stop = cancel.clone();
    let result = http::server::serve(listener, app, &config, async move {
        tokio::select! {
            () = shutdown => {}
            () = stop.cancelled() => {}
        }
    })
    .await;
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop within 10 s");
    }
    result
}
