//! The delivery worker: claims due deliveries from the outbox, sends them
//! with bounded concurrency per provider, and records each outcome.
//!
//! A claim is a lease: a worker that crashes between claiming and recording
//! loses it when the lease runs out, and the delivery is retried. Delivery is
//! therefore at least once; the payload's `notification_id` lets apps drop
//! duplicates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::push::payload::{NotificationKind, PushAction, PushPayload};
use crate::push::{Attempt, DeviceKind, DeviceTarget, Outcome, Providers, PushMessage, Urgency};
use crate::state::AppState;
use crate::store::Backend;

/// How long a claim lasts before another worker may take the delivery over.
pub const LEASE_MS: i64 = 60_000;
/// How many deliveries one round claims.
pub const BATCH: i64 = 200;
/// Outcomes are recorded this many to a transaction: one commit instead of
/// one per send.
const RECORD_CHUNK: usize = 50;
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
/// The one place where the backends differ: PostgreSQL skips rows another
/// instance holds locked; SQLite has a single writer.
pub async fn claim(state: &AppState, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let now = state.now_ms();
    let lock = match state.store.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE deliveries SET lease_until = $1, attempts = attempts + 1, updated_at = $2
         WHERE id IN (
             SELECT d.id FROM deliveries d
             WHERE d.status = 'pending' AND d.not_before <= $2
               AND (d.lease_until IS NULL OR d.lease_until < $2)
               AND NOT EXISTS (SELECT 1 FROM provider_pauses p WHERE p.provider = d.provider AND p.paused_until > $2)
             ORDER BY d.not_before
             LIMIT $3
             {lock}
         )
         RETURNING id"
    );
    // A cheap read first: an idle outbox costs no write lock.
    let earliest: Option<i64> =
        sqlx::query_scalar("SELECT MIN(not_before) FROM deliveries WHERE status = 'pending'")
            .fetch_one(state.store.pool())
            .await?;
    if earliest.is_none_or(|t| t > now) {
        return Ok(Vec::new());
    }
    let mut tx = state.store.begin().await?;
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now + LEASE_MS)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
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

/// One round: claim what is due, send it, record every outcome. Returns how
/// many deliveries it handled.
pub async fn run_once(state: &AppState) -> Result<usize, sqlx::Error> {
    let ids = claim(state, BATCH).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let claimed = load(state, &ids).await?;
    let now = state.now_ms();
    let limit = state.config.push_concurrency.max(1);
    let mut permits: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut sends = JoinSet::new();
    let mut handled = 0;
    for row in claimed {
        // Nothing to send: the device is gone, the item was read meanwhile,
        // or the message outlived its TTL.
        let skip = if row.device_removed_at.is_some() {
            Some("dropped")
        } else if row.read_at.is_some() || row.alert_resolved > 0 {
            // Read meanwhile, or news about an alert resolved before its
            // push time (the inbox keeps it).
            Some("superseded")
        } else if row.expires_at <= now {
            Some("expired")
        } else {
            None
        };
        let (Some(target), Some(message), None) = (row.target(), row.message(now), skip) else {
            let mut conn = state.store.pool().acquire().await?;
            let status = skip.unwrap_or("failed");
            finish(&mut conn, now, &row.id, status, "skipped", None).await?;
            handled += 1;
            continue;
        };
        let permit = permits
            .entry(row.provider.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone();
        let providers: Arc<Providers> = state.push.clone();
        sends.spawn(async move {
            let _permit = permit.acquire_owned().await;
            let provider = providers.for_kind(target.kind()).clone();
            let attempt = provider.send(&message, &target).await;
            (row, provider.name(), attempt)
        });
    }
    let mut done = Vec::with_capacity(RECORD_CHUNK);
    while let Some(joined) = sends.join_next().await {
        let Ok(sent) = joined else {
            continue;
        };
        done.push(sent);
        if done.len() >= RECORD_CHUNK {
            handled += record_all(state, &mut done).await?;
        }
    }
    handled += record_all(state, &mut done).await?;
    Ok(handled)
}

/// Records finished sends in one transaction.
async fn record_all(
    state: &AppState,
    done: &mut Vec<(Claimed, &'static str, Attempt)>,
) -> Result<usize, sqlx::Error> {
    if done.is_empty() {
        return Ok(0);
    }
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let n = done.len();
    for (row, provider_name, attempt) in done.drain(..) {
        record(&mut tx, state, now, &row, provider_name, &attempt).await?;
    }
    tx.commit().await?;
    Ok(n)
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

/// The production loop: a round whenever something may be due; stops between
/// rounds when cancelled.
pub async fn run(state: AppState, cancel: CancellationToken) {
    loop {
        let idle = match run_once(&state).await {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) => {
                tracing::warn!(error = %err, "delivery round failed; will retry");
                true
            }
        };
        if idle {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        } else if cancel.is_cancelled() {
            return;
        }
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
    state: &AppState,
    now: i64,
    row: &Claimed,
    provider_name: &str,
    attempt: &Attempt,
) -> Result<(), sqlx::Error> {
    let label = attempt.outcome.label();
    state.metrics.delivery(provider_name, label);
    match &attempt.outcome {
        Outcome::Delivered => finish(conn, now, &row.id, "delivered", label, attempt.status).await,
        Outcome::Failed => {
            tracing::warn!(delivery_id = %row.id, provider = provider_name, status = ?attempt.status,
                reason = ?attempt.reason, "push refused for good");
            finish(conn, now, &row.id, "failed", label, attempt.status).await
        }
        Outcome::DropToken => {
            tracing::info!(delivery_id = %row.id, device_id = %row.device_id, provider = provider_name,
                reason = ?attempt.reason, "push token is dead; device removed");
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
            state
                .metrics
                .credential_failures
                .get_or_create(&crate::metrics::ProviderLabels {
                    provider: row.provider.clone(),
                })
                .inc();
            tracing::error!(provider = provider_name, kind = %row.provider, status = ?attempt.status,
                reason = ?attempt.reason, "push credentials refused: provider paused; fix the configuration");
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
            // Not the token's fault: this attempt does not count.
            sqlx::query(
                "UPDATE deliveries SET lease_until = NULL, attempts = attempts - 1, outcome = $1, last_status = $2,
                        updated_at = $3
                 WHERE id = $4",
            )
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
