//! Recording what became of each send, in group commits ([`Recorder`]).
//!
//! A transaction the database refuses is written again outcome by outcome,
//! each retried with backoff for up to [`RECORD_RETRY_FOR`] while it waits
//! in memory, so one failure never resends a delivered push and one
//! outcome that cannot be written holds back no other.

use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

use super::claimed::Claimed;
use super::{LEASE_MS, NAME};
use crate::jobs::catch_panic;
use crate::push::{Attempt, Outcome};
use crate::state::AppState;

/// How long a refused outcome write is retried (real time). As long as the
/// lease: by then another worker may have claimed the delivery again.
const RECORD_RETRY_FOR: Duration = Duration::from_millis(LEASE_MS as u64);
/// The first wait before retrying an outcome write; it doubles up to
/// [`RECORD_RETRY_MAX_WAIT`], short so that a database back from an outage
/// gets the outcome before a lease that ran out meanwhile is claimed again.
const RECORD_RETRY_FIRST_WAIT: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX_WAIT: Duration = Duration::from_secs(2);
/// How long a provider pauses after refusing our credentials.
pub const CREDENTIAL_PAUSE_MS: i64 = 5 * 60_000;
/// First retry delay; doubles with each attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 60 * 60_000;

/// What became of a claimed delivery.
pub(super) enum Finished {
    /// Nothing was sent; the delivery ends with this status.
    Skipped(&'static str),
    /// Sent; the provider answered (or timed out) so.
    Sent(Attempt),
}

/// The most outcomes one transaction records.
const RECORD_CHUNK: usize = 50;

/// Outcomes written together (group commit). Each send hands its outcome
/// here and waits until it is committed, holding its slot. The recorder
/// writes whatever is waiting, up to [`RECORD_CHUNK`], in one transaction:
/// a burst costs a commit per chunk instead of one per push. A refused
/// transaction is written again outcome by outcome, each retried from memory
/// with backoff for up to [`RECORD_RETRY_FOR`], so one failure never resends
/// a push that was delivered, and one outcome that cannot be written holds
/// back no other.
#[derive(Clone)]
pub(super) struct Recorder(mpsc::UnboundedSender<Pending>);

struct Pending {
    at: i64,
    row: Claimed,
    finished: Finished,
    done: oneshot::Sender<()>,
}

impl Recorder {
    /// Starts the recorder; it ends when every handle to it is dropped and
    /// what was handed to it is written.
    pub(super) fn start(state: &AppState) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
        let state = state.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(RECORD_CHUNK);
            while rx.recv_many(&mut batch, RECORD_CHUNK).await > 0 {
                // A panic must not end the recorder: every later outcome
                // would then go unrecorded without a word.
                if catch_panic(write_batch(&state, &batch)).await.is_none() {
                    tracing::error!(
                        job = NAME,
                        outcomes = batch.len(),
                        "recording push outcomes panicked; they go out again when their leases run out"
                    );
                }
                for pending in batch.drain(..) {
                    let _ = pending.done.send(());
                }
            }
        });
        Self(tx)
    }

    /// Hands over an outcome and waits until it is written (or given up).
    pub(super) async fn record(&self, at: i64, row: Claimed, finished: Finished) {
        let (done, written) = oneshot::channel();
        let pending = Pending {
            at,
            row,
            finished,
            done,
        };
        if self.0.send(pending).is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_batch(state: &AppState, batch: &[Pending]) {
    match write_all(state, batch).await {
        Ok(()) => {}
        Err(err) => {
            state.metrics.record_failures.inc();
            tracing::warn!(error = %err, outcomes = batch.len(),
                "could not record push outcomes together; writing them one by one");
            for pending in batch {
                write_with_retries(state, pending).await;
            }
        }
    }
}

async fn write_all(state: &AppState, batch: &[Pending]) -> Result<(), sqlx::Error> {
    let mut tx = state.store.begin().await?;
    for pending in batch {
        write_one(&mut tx, pending).await?;
    }
    tx.commit().await
}

/// One outcome, retried from memory while the database refuses it.
async fn write_with_retries(state: &AppState, pending: &Pending) {
    let mut wait = RECORD_RETRY_FIRST_WAIT;
    let started = tokio::time::Instant::now();
    loop {
        let result = async {
            let mut tx = state.store.begin().await?;
            write_one(&mut tx, pending).await?;
            tx.commit().await
        }
        .await;
        let Err(err) = result else {
            return;
        };
        state.metrics.record_failures.inc();
        if started.elapsed() + wait > RECORD_RETRY_FOR {
            tracing::error!(delivery_id = %pending.row.id, error = %err,
                "could not record a push's outcome; it goes out again when its lease runs out");
            return;
        }
        tracing::warn!(delivery_id = %pending.row.id, error = %err,
            "could not record a push's outcome; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECORD_RETRY_MAX_WAIT);
    }
}

/// Writes one outcome in the caller's transaction. Safe to repeat.
async fn write_one(conn: &mut AnyConnection, pending: &Pending) -> Result<(), sqlx::Error> {
    match &pending.finished {
        Finished::Skipped(status) => {
            finish(conn, pending.at, &pending.row.id, status, "skipped", None).await
        }
        Finished::Sent(attempt) => record(conn, pending.at, &pending.row, attempt).await,
    }
}

async fn finish(
    conn: &mut AnyConnection,
    now: i64,
    id: &str,
    status: &str,
    outcome: &str,
    http_status: Option<u16>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = $1, outcome = $2, last_status = $3, lease_until = NULL, updated_at = $4,
                sent_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE sent_at END
         WHERE id = $5",
    )
    .bind(status)
    .bind(outcome)
    .bind(http_status.map(i64::from))
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what a send came to.
async fn record(
    conn: &mut AnyConnection,
    now: i64,
    row: &Claimed,
    attempt: &Attempt,
) -> Result<(), sqlx::Error> {
    let label = attempt.outcome.label();
    match &attempt.outcome {
        Outcome::Delivered => finish(conn, now, &row.id, "delivered", label, attempt.status).await,
        Outcome::Failed => finish(conn, now, &row.id, "failed", label, attempt.status).await,
        Outcome::DropToken => {
            crate::devices::remove_device(conn, &row.device_id, now, "token_rejected").await?;
            finish(conn, now, &row.id, "dropped", label, attempt.status).await
        }
        Outcome::Retry { retry_after } => {
            let delay = match retry_after {
                Some(d) => i64::try_from(d.as_millis())
                    .unwrap_or(MAX_BACKOFF_MS)
                    .max(1000),
                None => backoff_ms(row.attempts),
            };
            let next = now + delay;
            if next >= row.expires_at {
                return finish(conn, now, &row.id, "expired", label, attempt.status).await;
            }
            release(
                conn,
                "UPDATE deliveries SET not_before = $1, lease_until = NULL, outcome = $2, last_status = $3, updated_at = $4
                 WHERE id = $5",
                next,
                now,
                row,
                attempt,
            )
            .await
        }
        Outcome::FixCredentials => {
            sqlx::query(
                "INSERT INTO provider_pauses (provider, paused_until, reason, paused_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (provider) DO UPDATE SET paused_until = excluded.paused_until,
                     reason = excluded.reason, paused_at = excluded.paused_at",
            )
            .bind(&row.provider)
            .bind(now + CREDENTIAL_PAUSE_MS)
            .bind(attempt.reason.clone().unwrap_or_else(|| "credentials refused".into()))
            .bind(now)
            .execute(&mut *conn)
            .await?;
            // Not the token's fault: this attempt does not count (set, not
            // decremented, so that a repeated write counts it out once).
            release(
                conn,
                "UPDATE deliveries SET lease_until = NULL, attempts = $1, outcome = $2, last_status = $3,
                        updated_at = $4
                 WHERE id = $5",
                row.attempts - 1,
                now,
                row,
                attempt,
            )
            .await
        }
    }
}

/// Gives a delivery back to the outbox for a later attempt: `sql` clears
/// the lease, records the attempt's outcome (`$2`, `$3`) at `now` (`$4`)
/// and sets one more column to `value` (`$1`).
async fn release(
    conn: &mut AnyConnection,
    sql: &'static str,
    value: i64,
    now: i64,
    row: &Claimed,
    attempt: &Attempt,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql)
        .bind(value)
        .bind(attempt.outcome.label())
        .bind(attempt.status.map(i64::from))
        .bind(now)
        .bind(&row.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Exponential backoff with ±20% jitter: 30 s, 1 min, 2 min, … up to 1 hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    let base = BASE_BACKOFF_MS
        .saturating_mul(1_i64 << exp)
        .min(MAX_BACKOFF_MS);
    let jitter = (fastrand::f64() * 0.4 - 0.2) * base as f64;
    base + jitter as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        for _ in 0..100 {
            let first = backoff_ms(1);
            assert!((24_000..=36_000).contains(&first), "{first}");
            let third = backoff_ms(3);
            assert!((96_000..=144_000).contains(&third), "{third}");
            let late = backoff_ms(30);
            assert!((2_880_000..=4_320_000).contains(&late), "{late}");
        }
    }
}
