//! What a claimed delivery is: the row with its device and notification,
//! loaded in one query, and the push message and target made from it.

use std::time::Duration;

use crate::accounts::types::{DiscreetPushes, Locale};
use crate::notifications::texts;
use crate::push::payload::{NotificationKind, PushAction, PushPayload};
use crate::push::{DeviceKind, DeviceTarget, PushMessage, Urgency};
use crate::state::AppState;

/// A claimed delivery with what sending it needs: its device, its
/// notification, and whether it is still worth sending.
#[derive(sqlx::FromRow)]
pub(super) struct Claimed {
    pub(super) id: String,
    pub(super) provider: String,
    pub(super) attempts: i64,
    pub(super) expires_at: i64,
    pub(super) urgency: String,
    pub(super) collapse_key: Option<String>,
    pub(super) device_id: String,
    pub(super) token: String,
    pub(super) apns_topic: Option<String>,
    pub(super) apns_environment: Option<String>,
    pub(super) webpush_p256dh: Option<String>,
    pub(super) webpush_auth: Option<String>,
    pub(super) device_removed_at: Option<i64>,
    pub(super) notification_id: String,
    pub(super) kind: String,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) deep_link: String,
    pub(super) circle_id: Option<String>,
    pub(super) post_id: Option<String>,
    pub(super) membership_id: Option<String>,
    pub(super) alert_id: Option<String>,
    pub(super) locale: String,
    pub(super) read_at: Option<i64>,
    pub(super) alert_resolved: i64,
    pub(super) badge: i64,
    /// The recipient's `discreet_pushes` setting.
    pub(super) discreet_pushes: String,
    /// 1 when the notification's circle is marked sensitive.
    pub(super) circle_sensitive: i64,
}

/// Loads the claimed deliveries with their devices and notifications.
pub(super) async fn load(state: &AppState, ids: &[String]) -> Result<Vec<Claimed>, sqlx::Error> {
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
                (SELECT COUNT(*) FROM notifications u WHERE u.account_id = n.account_id AND u.read_at IS NULL) AS badge,
                a.discreet_pushes, COALESCE(c.sensitive, 0) AS circle_sensitive
         FROM deliveries d
         JOIN devices v ON v.id = d.device_id
         JOIN notifications n ON n.id = d.notification_id
         JOIN accounts a ON a.id = n.account_id
         LEFT JOIN circles c ON c.id = n.circle_id
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
    /// Where the push goes; `None` when the device row is incomplete.
    pub(super) fn target(&self) -> Option<DeviceTarget> {
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

    /// Whether the push must be discreet: decided as it is sent, so a
    /// setting changed after the notification was made still counts.
    fn discreet(&self) -> bool {
        // An unreadable setting errs on the side of discretion.
        DiscreetPushes::parse(&self.discreet_pushes)
            .map_or(true, |d| d.applies(self.circle_sensitive != 0))
    }

    /// What the push says; `None` for an unknown kind. A discreet push says
    /// only "Kring: you have a new message" (see [`texts::discreet`]).
    pub(super) fn message(&self, now: i64) -> Option<PushMessage> {
        let kind = NotificationKind::parse(&self.kind).ok()?;
        let discreet = self.discreet();
        let (title, body) = if discreet {
            let (title, body) = texts::discreet(Locale::parse(&self.locale).unwrap_or(Locale::Nl));
            (title.to_owned(), body.to_owned())
        } else {
            (self.title.clone(), self.body.clone())
        };
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
                title,
                body,
                discreet,
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
