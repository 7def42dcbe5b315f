//! Producing notifications: the inbox item and its deliveries, written in
//! the caller's transaction, so a notification exists exactly when the change
//! that caused it does.

use sqlx::AnyConnection;

use crate::accounts::types::Locale;
use crate::notifications::texts::{TextParams, render};
use crate::notifications::timing::QuietWindow;
use crate::push::Urgency;
use crate::push::payload::NotificationKind;
use crate::secrets::new_id;

/// A digest waits this long for more posts before it is pushed.
pub const DIGEST_DELAY_MS: i64 = 60 * 60 * 1000;

/// A notification to produce for one account.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub account_id: String,
    pub kind: NotificationKind,
    pub params: TextParams,
    pub circle_id: Option<String>,
    pub post_id: Option<String>,
    pub membership_id: Option<String>,
    pub alert_id: Option<String>,
    /// Deliver pushes from this moment instead of after the recipient's quiet
    /// hours (workers' alerts follow their working hours; urgent ones go now).
    pub deliver_at: Option<i64>,
    /// An inbox item only, no push (an all clear about an alert whose own
    /// push never went out).
    pub inbox_only: bool,
}

impl Outgoing {
    fn urgency(&self) -> Urgency {
        match self.kind {
            NotificationKind::PersonalMessage
            | NotificationKind::Alert
            | NotificationKind::AlertEscalated
            | NotificationKind::RecoveryCodeIssued
            | NotificationKind::AccountRecovered => Urgency::High,
            NotificationKind::Nudge | NotificationKind::Questionnaire => Urgency::Normal,
            NotificationKind::Reply => Urgency::Normal,
            _ => Urgency::Low,
        }
    }

    fn ttl_secs(&self) -> i64 {
        match self.kind {
            NotificationKind::PersonalMessage
            | NotificationKind::Alert
            | NotificationKind::AlertEscalated => 72 * 3600,
            _ => 24 * 3600,
        }
    }

    fn deep_link(&self) -> String {
        if self.kind == NotificationKind::Questionnaire {
            return "kring://questionnaires".to_owned();
        }
        if let Some(alert) = &self.alert_id {
            return format!("kring://alerts/{alert}");
        }
        match (&self.circle_id, &self.post_id) {
            (Some(c), Some(p)) => format!("kring://circles/{c}/posts/{p}"),
            (Some(c), None) => format!("kring://circles/{c}"),
            _ => "kring://inbox".to_owned(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Recipient {
    locale: String,
    time_zone: String,
    quiet_start_min: i64,
    quiet_end_min: i64,
}

/// The recipient's preferences, with the defaults for someone who never set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub new_posts: String,
    pub replies: bool,
    pub reactions: bool,
}

pub async fn preferences(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Preferences, sqlx::Error> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT new_posts, replies, reactions FROM notification_preferences WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some((new_posts, replies, reactions)) => Preferences {
            new_posts,
            replies: replies != 0,
            reactions: reactions != 0,
        },
        None => Preferences {
            new_posts: "digest".into(),
            replies: true,
            reactions: true,
        },
    })
}

/// Writes the inbox item and one delivery per active device; returns the
/// notification's id. Deliveries wait for the end of the recipient's quiet
/// hours.
pub async fn notify(
    conn: &mut AnyConnection,
    now: i64,
    out: &Outgoing,
) -> Result<String, sqlx::Error> {
    let recipient: Recipient = sqlx::query_as(
        "SELECT locale, time_zone, quiet_start_min, quiet_end_min FROM accounts WHERE id = $1",
    )
    .bind(&out.account_id)
    .fetch_one(&mut *conn)
    .await?;
    let locale = Locale::parse(&recipient.locale).unwrap_or(Locale::Nl);
    let quiet = QuietWindow {
        time_zone: recipient.time_zone,
        start_min: recipient.quiet_start_min,
        end_min: recipient.quiet_end_min,
    };

    if out.kind == NotificationKind::PostDigest
        && let Some(circle_id) = &out.circle_id
    {
        return digest(conn, now, out, circle_id, locale, &quiet).await;
    }

    let (title, body) = render(out.kind, locale, &out.params);
    let id = new_id();
    insert_notification(conn, &id, out, locale, &title, &body, None, 1, now).await?;
    if out.inbox_only {
        return Ok(id);
    }
    let due = match out.deliver_at {
        Some(at) => at.max(now),
        None => quiet.next_allowed(now),
    };
    // A newer nudge (or questionnaire reminder) replaces an older one on the device.
    let collapse = match out.kind {
        NotificationKind::Nudge => Some("nudge"),
        NotificationKind::Questionnaire => Some("questionnaire"),
        _ => None,
    };
    enqueue(
        conn,
        &id,
        &out.account_id,
        now,
        due,
        out.ttl_secs(),
        out.urgency(),
        collapse,
    )
    .await?;
    Ok(id)
}

/// New posts collapse into one unread digest item per circle; the push goes
/// out once, after [`DIGEST_DELAY_MS`], with the count at that moment.
async fn digest(
    conn: &mut AnyConnection,
    now: i64,
    out: &Outgoing,
    circle_id: &str,
    locale: Locale,
    quiet: &QuietWindow,
) -> Result<String, sqlx::Error> {
    let key = format!("digest:{circle_id}");
    let open: Option<(String, i64)> = sqlx::query_as(
        "SELECT id, item_count FROM notifications
         WHERE account_id = $1 AND collapse_key = $2 AND read_at IS NULL
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(&out.account_id)
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?;
    let (id, count) = match open {
        Some((id, count)) => {
            let count = count + 1;
            let params = TextParams {
                count,
                ..out.params.clone()
            };
            let (title, body) = render(out.kind, locale, &params);
            sqlx::query(
                "UPDATE notifications SET item_count = $1, title = $2, body = $3, post_id = $4, updated_at = $5,
                        change_seq = 0
                 WHERE id = $6",
            )
            .bind(count)
            .bind(&title)
            .bind(&body)
            .bind(out.post_id.as_deref())
            .bind(now)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            (id, count)
        }
        None => {
            let id = new_id();
            let params = TextParams {
                count: 1,
                ..out.params.clone()
            };
            let (title, body) = render(out.kind, locale, &params);
            insert_notification(conn, &id, out, locale, &title, &body, Some(&key), 1, now).await?;
            (id, 1)
        }
    };
    // One pending push per digest: later posts only raise its count.
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE notification_id = $1 AND status = 'pending'",
    )
    .bind(&id)
    .fetch_one(&mut *conn)
    .await?;
    if pending == 0 {
        let due = quiet.next_allowed(now + DIGEST_DELAY_MS);
        enqueue(
            conn,
            &id,
            &out.account_id,
            now,
            due,
            out.ttl_secs(),
            out.urgency(),
            Some(&key),
        )
        .await?;
    }
    tracing::debug!(notification_id = %id, count, "digest updated");
    Ok(id)
}

#[allow(clippy::too_many_arguments)]
async fn insert_notification(
    conn: &mut AnyConnection,
    id: &str,
    out: &Outgoing,
    locale: Locale,
    title: &str,
    body: &str,
    collapse_key: Option<&str>,
    count: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (id, account_id, kind, locale, title, body, deep_link, circle_id, post_id,
                                    membership_id, alert_id, collapse_key, item_count, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(id)
    .bind(&out.account_id)
    .bind(out.kind.as_str())
    .bind(locale.as_str())
    .bind(title)
    .bind(body)
    .bind(out.deep_link())
    .bind(out.circle_id.as_deref())
    .bind(out.post_id.as_deref())
    .bind(out.membership_id.as_deref())
    .bind(out.alert_id.as_deref())
    .bind(collapse_key)
    .bind(count)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One pending delivery per active device of the account.
#[allow(clippy::too_many_arguments)]
async fn enqueue(
    conn: &mut AnyConnection,
    notification_id: &str,
    account_id: &str,
    now: i64,
    due: i64,
    ttl_secs: i64,
    urgency: Urgency,
    collapse_key: Option<&str>,
) -> Result<(), sqlx::Error> {
    let devices: Vec<(String, String)> =
        sqlx::query_as("SELECT id, kind FROM devices WHERE account_id = $1 AND removed_at IS NULL")
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
    for (device_id, kind) in devices {
        sqlx::query(
            "INSERT INTO deliveries (id, notification_id, device_id, provider, status, not_before, expires_at,
                                     ttl_secs, urgency, collapse_key, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(new_id())
        .bind(notification_id)
        .bind(&device_id)
        .bind(&kind)
        .bind(due)
        .bind(due + ttl_secs * 1000)
        .bind(ttl_secs)
        .bind(urgency.as_str())
        .bind(collapse_key)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
