//! The delivery worker: claims due deliveries from the outbox, sends them
//! with bounded concurrency per provider, and records each outcome as soon
//! as its send ends.
//!
//! A claim is a lease: a worker that crashes between claiming and recording
//! loses it when the lease runs out, and the delivery is retried. Delivery is
//! therefore at least once; the payload's `notification_id` lets apps drop
//! duplicates. To keep duplicates rare, outcomes are written in group
//! commits ([`Recorder`]); a transaction the database refuses is written
//! again outcome by outcome, each retried with backoff for up to
//! [`RECORD_RETRY_FOR`] while it waits in memory. A push the provider accepted goes out again only
//! if the process dies between the provider's answer and that write's
//! commit, or if the database stays unwritable for longer than the retries.
//!
//! No head-of-line blocking: [`run`] gives each provider
//! `KRING_PUSH_CONCURRENCY` send slots and claims a provider's deliveries
//! only while it has free slots, starting each at once. A slow endpoint
//! holds one slot (for at most `KRING_PUSH_TIMEOUT_MS`), and the loop goes
//! on claiming for the others. A claimed delivery never waits for a slot,
//! so its lease covers only its own send and recording.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::push::payload::{NotificationKind, PushAction, PushPayload};
use crate::push::{Attempt, DeviceKind, DeviceTarget, Outcome, PushMessage, Urgency};
use crate::state::AppState;
use crate::store::Backend;

/// How long a claim lasts before another worker may take the delivery over.
pub const LEASE_MS: i64 = 60_000;
/// The most deliveries one claim takes.
pub const BATCH: i64 = 200;
/// How long a refused outcome write is retried (real time). As long as the
/// lease: by then another worker may have claimed the delivery again.
const RECORD_RETRY_FOR: Duration = Duration::from_millis(LEASE_MS as u64);
/// The first wait before retrying an outcome write; it doubles up to
/// [`RECORD_RETRY_MAX_WAIT`], short so that a database back from an outage
/// gets the outcome before a lease that ran out meanwhile is claimed again.
const RECORD_RETRY_FIRST_WAIT: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX_WAIT: Duration = Duration::from_secs(2);
/// How often an idle loop looks for due deliveries.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long a provider pauses after refusing our credentials.
pub const CREDENTIAL_PAUSE_MS: i64 = 5 * 60_000;
/// First retry delay; doubles with each attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 60 * 60_000;

#[derive(sqlx::FromRow)]
struct Claimed {
    id: String,
    provider: String,
    attempts: i64,
    expires_at: i64,
    urgency: String,
    collapse_key: Option<String>,
    device_id: String,
    token: String,
    apns_topic: Option<String>,
    apns_environment: Option<String>,
    webpush_p256dh: Option<String>,
    webpush_auth: Option<String>,
    device_removed_at: Option<i64>,
    notification_id: String,
    kind: String,
    title: String,
    body: String,
    deep_link: String,
    circle_id: Option<String>,
    post_id: Option<String>,
    membership_id: Option<String>,
    alert_id: Option<String>,
    locale: String,
    read_at: Option<i64>,
    alert_resolved: i64,
    badge: i64,
}

/// Claims up to `limit` due deliveries for this worker; returns their ids.
pub async fn claim(state: &AppState, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    claim_for(state, None, limit).await
}

/// Claims up to `limit` due deliveries, of one provider (device kind) or of
/// any. The one place where the backends differ: PostgreSQL skips rows
/// another instance holds locked; SQLite has a single writer.
async fn claim_for(
    state: &AppState,
    provider: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let now = state.now_ms();
    let lock = match state.store.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let of_provider = if provider.is_some() {
        "AND d.provider = $4"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE deliveries SET lease_until = $1, attempts = attempts + 1, updated_at = $2
         WHERE id IN (
             SELECT d.id FROM deliveries d
             WHERE d.status = 'pending' AND d.not_before <= $2
               AND (d.lease_until IS NULL OR d.lease_until < $2)
               AND NOT EXISTS (SELECT 1 FROM provider_pauses p WHERE p.provider = d.provider AND p.paused_until > $2)
               {of_provider}
             ORDER BY d.not_before
             LIMIT $3
             {lock}
         )
         RETURNING id"
    );
    // A cheap read first: an idle outbox costs no write lock.
    let probe = format!(
        "SELECT MIN(d.not_before) FROM deliveries d WHERE d.status = 'pending' {}",
        if provider.is_some() {
            "AND d.provider = $1"
        } else {
            ""
        }
    );
    let mut probe = sqlx::query_scalar(sqlx::AssertSqlSafe(probe));
    if let Some(provider) = provider {
        probe = probe.bind(provider);
    }
    let earliest: Option<i64> = probe.fetch_one(state.store.pool()).await?;
    if earliest.is_none_or(|t| t > now) {
        return Ok(Vec::new());
    }
    let mut tx = state.store.begin().await?;
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now + LEASE_MS)
        .bind(now)
        .bind(limit);
    if let Some(provider) = provider {
        query = query.bind(provider);
    }
    let ids: Vec<String> = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(ids)
}

async fn load(state: &AppState, ids: &[String]) -> Result<Vec<Claimed>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT d.id, d.provider, d.attempts, d.expires_at, d.urgency, d.collapse_key,
                v.id AS device_id, v.token, v.apns_topic, v.apns_environment, v.webpush_p256dh, v.webpush_auth,
                v.removed_at AS device_removed_at,
                n.id AS notification_id, n.kind, n.title, n.body, n.deep_link, n.circle_id, n.post_id,
                n.membership_id, n.alert_id, n.locale, n.read_at,
                (SELECT COUNT(*) FROM alerts al WHERE al.id = n.alert_id AND al.status = 'resolved'
                   AND n.kind IN ('alert', 'alert_escalated')) AS alert_resolved,
                (SELECT COUNT(*) FROM notifications u WHERE u.account_id = n.account_id AND u.read_at IS NULL) AS badge
         FROM deliveries d
         JOIN devices v ON v.id = d.device_id
         JOIN notifications n ON n.id = d.notification_id
         WHERE d.id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, Claimed>(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.clone());
    }
    query.fetch_all(state.store.pool()).await
}

impl Claimed {
    fn target(&self) -> Option<DeviceTarget> {
        match DeviceKind::parse(&self.provider).ok()? {
            DeviceKind::Apns => Some(DeviceTarget::Apns {
                token: self.token.clone(),
                topic: self.apns_topic.clone()?,
                sandbox: self.apns_environment.as_deref() == Some("sandbox"),
            }),
            DeviceKind::Fcm => Some(DeviceTarget::Fcm {
                token: self.token.clone(),
            }),
            DeviceKind::WebPush => Some(DeviceTarget::WebPush {
                endpoint: self.token.clone(),
                p256dh: self.webpush_p256dh.clone()?,
                auth: self.webpush_auth.clone()?,
            }),
        }
    }

    fn message(&self, now: i64) -> Option<PushMessage> {
        let kind = NotificationKind::parse(&self.kind).ok()?;
        let remaining = u64::try_from((self.expires_at - now).max(0) / 1000).unwrap_or(0);
        Some(PushMessage {
            payload: PushPayload {
                kind,
                notification_id: self.notification_id.clone(),
                circle_id: self.circle_id.clone(),
                post_id: self.post_id.clone(),
                membership_id: self.membership_id.clone(),
                alert_id: self.alert_id.clone(),
                deep_link: self.deep_link.clone(),
                locale: self.locale.clone(),
                title: self.title.clone(),
                body: self.body.clone(),
                badge: self.badge,
                actions: actions_for(kind),
            },
            ttl: Duration::from_secs(remaining),
            urgency: Urgency::parse(&self.urgency),
            collapse_key: self.collapse_key.clone(),
            thread_id: self.circle_id.clone(),
        })
    }
}

/// The buttons a notification of this kind offers.
pub fn actions_for(kind: NotificationKind) -> Vec<PushAction> {
    match kind {
        NotificationKind::PersonalMessage | NotificationKind::Nudge => vec![PushAction::ImOk],
        _ => Vec::new(),
    }
}

/// Send slots: at most `KRING_PUSH_CONCURRENCY` sends in flight per
/// provider (device kind), counted from claim to recorded outcome.
struct Slots(Vec<(&'static str, Arc<Semaphore>)>);

impl Slots {
    fn new(state: &AppState) -> Self {
        let per_provider = state.config.push_concurrency.max(1);
        Self(
            [DeviceKind::Apns, DeviceKind::Fcm, DeviceKind::WebPush]
                .map(|kind| (kind.as_str(), Arc::new(Semaphore::new(per_provider))))
                .into(),
        )
    }

    fn of(&self, provider: &str) -> Option<Arc<Semaphore>> {
        self.0
            .iter()
            .find(|(name, _)| *name == provider)
            .map(|(_, slots)| slots.clone())
    }
}

/// What became of a claimed delivery.
enum Finished {
    /// Nothing was sent; the delivery ends with this status.
    Skipped(&'static str),
    /// Sent; the provider answered (or timed out) so.
    Sent(Attempt),
}

/// Sends one claimed delivery, unless there is nothing left to send, and
/// records what came of it. The slot is held until the outcome is recorded,
/// so outcomes waiting for the database are bounded by the slots.
async fn handle(
    state: &AppState,
    recorder: &Recorder,
    row: Claimed,
    slot: Option<OwnedSemaphorePermit>,
) {
    let now = state.now_ms();
    // Nothing to send: the device is gone, the item was read meanwhile, or
    // the message outlived its TTL.
    let skip = if row.device_removed_at.is_some() {
        Some("dropped")
    } else if row.read_at.is_some() || row.alert_resolved > 0 {
        // Read meanwhile, or news about an alert resolved before its push
        // time (the inbox keeps it).
        Some("superseded")
    } else if row.expires_at <= now {
        Some("expired")
    } else {
        None
    };
    let finished = match (row.target(), row.message(now), skip) {
        (Some(target), Some(message), None) => {
            let provider = state.push.for_kind(target.kind()).clone();
            let attempt = provider.send(&message, &target).await;
            report(state, &row, provider.name(), &attempt);
            Finished::Sent(attempt)
        }
        _ => Finished::Skipped(skip.unwrap_or("failed")),
    };
    // The time of the outcome, kept across retries of its write.
    let at = state.now_ms();
    recorder.record(at, row, finished).await;
    drop(slot);
}

/// One round: claim what is due, send it, record every outcome. Returns how
/// many deliveries it handled. For tests and `KRING_TEST_CLOCK`: it waits
/// for every send it started; the production loop is [`run`].
pub async fn run_once(state: &AppState) -> Result<usize, sqlx::Error> {
    let ids = claim(state, BATCH).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let claimed = load(state, &ids).await?;
    let handled = claimed.len();
    let slots = Slots::new(state);
    let recorder = Recorder::start(state);
    let mut sends = JoinSet::new();
    for row in claimed {
        let slots = slots.of(&row.provider);
        let state = state.clone();
        let recorder = recorder.clone();
        sends.spawn(async move {
            let slot = match slots {
                Some(slots) => slots.acquire_owned().await.ok(),
                None => None,
            };
            handle(&state, &recorder, row, slot).await;
        });
    }
    while sends.join_next().await.is_some() {}
    Ok(handled)
}

/// Runs rounds until nothing is due: for tests.
pub async fn run_until_idle(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = run_once(state).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Claims, for each provider with free slots, as many due deliveries as it
/// has free slots, and starts them. Returns how many it started.
async fn start_due(
    state: &AppState,
    slots: &Slots,
    recorder: &Recorder,
    sends: &mut JoinSet<()>,
) -> Result<usize, sqlx::Error> {
    let mut started = 0;
    for (provider, free) in &slots.0 {
        let limit = free.available_permits().min(BATCH as usize);
        if limit == 0 {
            continue;
        }
        let ids = claim_for(state, Some(provider), limit as i64).await?;
        for row in load(state, &ids).await? {
            // Only this loop takes slots, so the ones counted are still free.
            let slot = free.clone().try_acquire_owned().ok();
            let state = state.clone();
            let recorder = recorder.clone();
            sends.spawn(async move { handle(&state, &recorder, row, slot).await });
            started += 1;
        }
    }
    Ok(started)
}

/// The production loop: claims and starts due deliveries while sends are in
/// flight, whenever a slot frees up or something may have become due. When
/// cancelled it claims nothing more and returns once every send in flight
/// has ended and been recorded (each within `KRING_PUSH_TIMEOUT_MS` and the
/// recording retries).
pub async fn run(state: AppState, cancel: CancellationToken) {
    let slots = Slots::new(&state);
    let recorder = Recorder::start(&state);
    let mut sends = JoinSet::new();
    while !cancel.is_cancelled() {
        let started = match start_due(&state, &slots, &recorder, &mut sends).await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "claiming deliveries failed; will retry");
                0
            }
        };
        while sends.try_join_next().is_some() {}
        if started == 0 {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                Some(_) = sends.join_next(), if !sends.is_empty() => {}
            }
        }
    }
    while sends.join_next().await.is_some() {}
}

/// Counts and logs a send's outcome, once, whether or not recording it
/// needs retries.
fn report(state: &AppState, row: &Claimed, provider_name: &str, attempt: &Attempt) {
    state
        .metrics
        .delivery(provider_name, attempt.outcome.label());
    match &attempt.outcome {
        Outcome::Delivered | Outcome::Retry { .. } => {}
        Outcome::Failed => {
            tracing::warn!(delivery_id = %row.id, provider = provider_name, status = ?attempt.status,
                reason = ?attempt.reason, "push refused for good");
        }
        Outcome::DropToken => {
            tracing::info!(delivery_id = %row.id, device_id = %row.device_id, provider = provider_name,
                reason = ?attempt.reason, "push token is dead; device removed");
        }
        Outcome::FixCredentials => {
            state
                .metrics
                .credential_failures
                .get_or_create(&crate::metrics::ProviderLabels {
                    provider: row.provider.clone(),
                })
                .inc();
            tracing::error!(provider = provider_name, kind = %row.provider, status = ?attempt.status,
                reason = ?attempt.reason, "push credentials refused: provider paused; fix the configuration");
        }
    }
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
struct Recorder(mpsc::UnboundedSender<Pending>);

struct Pending {
    at: i64,
    row: Claimed,
    finished: Finished,
    done: oneshot::Sender<()>,
}

impl Recorder {
    /// Starts the recorder; it ends when every handle to it is dropped and
    /// what was handed to it is written.
    fn start(state: &AppState) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
        let state = state.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(RECORD_CHUNK);
            while rx.recv_many(&mut batch, RECORD_CHUNK).await > 0 {
                write_batch(&state, &batch).await;
                for pending in batch.drain(..) {
                    let _ = pending.done.send(());
                }
            }
        });
        Self(tx)
    }

    /// Hands over an outcome and waits until it is written (or given up).
    async fn record(&self, at: i64, row: Claimed, finished: Finished) {
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
            sqlx::query(
                "UPDATE deliveries SET not_before = $1, lease_until = NULL, outcome = $2, last_status = $3, updated_at = $4
                 WHERE id = $5",
            )
            .bind(next)
            .bind(label)
            .bind(attempt.status.map(i64::from))
            .bind(now)
            .bind(&row.id)
            .execute(conn)
            .await?;
            Ok(())
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
            sqlx::query(
                "UPDATE deliveries SET lease_until = NULL, attempts = $1, outcome = $2, last_status = $3,
                        updated_at = $4
                 WHERE id = $5",
            )
            .bind(row.attempts - 1)
            .bind(label)
            .bind(attempt.status.map(i64::from))
            .bind(now)
            .bind(&row.id)
            .execute(conn)
            .await?;
            Ok(())
        }
    }
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
