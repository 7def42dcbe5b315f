//! APNs with the `a2` crate: token (.p8) authentication, one client per APNs
//! environment, and the mapping of Kring's one model onto APNs headers:
//! `apns-push-type: alert`, `apns-priority` 10 for urgent messages and 5
//! otherwise, `apns-collapse-id`, `apns-expiration` from the TTL, and the
//! circle as `thread-id`.
//!
//! a2 0.10 has no `thread-id` in its `aps` and cannot target another host,
//! so this wraps a2's payload in our own [`PayloadLike`] (adding `thread-id`)
//! and tests the mapping and the response classification through a2's
//! public types rather than against a mock server.

use std::time::Duration;

use a2::request::notification::{
    DefaultNotificationBuilder, NotificationBuilder, NotificationOptions,
};
use a2::request::payload::PayloadLike;
use a2::{Client, ClientConfig, CollapseId, Endpoint, Priority, PushType};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use super::classify::classify;
use super::payload::PushAction;
use super::{Attempt, DeviceTarget, Outcome, Provider, PushMessage, Urgency};

/// The notification category apps register for the "I'm OK" button.
pub const IM_OK_CATEGORY: &str = "KRING_IM_OK";

pub struct ApnsProvider {
    production: Client,
    sandbox: Client,
}

impl ApnsProvider {
    /// From the .p8 signing key (PKCS#8 PEM), its key id and the team id.
    pub fn new(
        key_pem: &[u8],
        key_id: &str,
        team_id: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = |endpoint: Endpoint| {
            let config = ClientConfig {
                request_timeout_secs: Some(timeout.as_secs().max(1)),
                ..ClientConfig::new(endpoint)
            };
            Client::token(key_pem, key_id, team_id, config)
                .map_err(|e| format!("the APNs key cannot be used: {e}"))
        };
        Ok(Self {
            production: client(Endpoint::Production)?,
            sandbox: client(Endpoint::Sandbox)?,
        })
    }
}

/// An APNs request: a2's options and device token, and the JSON body with
/// `thread-id` added to `aps` and Kring's payload beside it.
#[derive(Debug, Serialize)]
pub struct ApnsPayload<'a> {
    #[serde(skip)]
    pub options: NotificationOptions<'a>,
    #[serde(skip)]
    pub device_token: &'a str,
    #[serde(flatten)]
    pub body: Value,
}

impl PayloadLike for ApnsPayload<'_> {
    fn get_device_token(&self) -> &str {
        self.device_token
    }

    fn get_options(&self) -> &NotificationOptions<'_> {
        &self.options
    }
}

/// Maps a message onto an APNs request. `now_secs`: the Unix time, for the
/// absolute `apns-expiration`.
pub fn apns_payload<'a>(
    message: &'a PushMessage,
    token: &'a str,
    topic: &'a str,
    now_secs: u64,
) -> ApnsPayload<'a> {
    let p = &message.payload;
    let mut builder = DefaultNotificationBuilder::new()
        .set_title(&p.title)
        .set_body(&p.body)
        .set_badge(u32::try_from(p.badge).unwrap_or(0))
        .set_sound("default");
    if p.actions.contains(&PushAction::ImOk) {
        builder = builder.set_category(IM_OK_CATEGORY);
    }
    let options = NotificationOptions {
        apns_id: None,
        apns_push_type: Some(PushType::Alert),
        apns_expiration: Some(now_secs + message.ttl.as_secs()),
        apns_priority: Some(if message.urgency == Urgency::High {
            Priority::High
        } else {
            Priority::Normal
        }),
        apns_topic: Some(topic),
        apns_collapse_id: message
            .collapse_key
            .as_deref()
            .and_then(|k| CollapseId::new(k).ok()),
    };
    let built = builder.build(token, options.clone());
    let mut body = serde_json::to_value(&built).unwrap_or(Value::Null);
    if let (Some(thread), Some(aps)) = (
        &message.thread_id,
        body.get_mut("aps").and_then(Value::as_object_mut),
    ) {
        aps.insert("thread-id".into(), Value::String(thread.clone()));
    }
    if let (Ok(Value::Object(custom)), Some(obj)) = (serde_json::to_value(p), body.as_object_mut())
    {
        for (k, v) in custom {
            obj.insert(k, v);
        }
    }
    ApnsPayload {
        options,
        device_token: token,
        body,
    }
}

/// Classifies what a2 returned, with Apple's reason names (`Unregistered`, …).
pub fn classify_apns(result: &Result<a2::Response, a2::Error>) -> Attempt {
    match result {
        Ok(response) => Attempt {
            outcome: classify("apns", response.code, None, None),
            status: Some(response.code),
            reason: None,
        },
        Err(a2::Error::ResponseError(response)) => {
            let reason = response.error.as_ref().map(|e| format!("{:?}", e.reason));
            Attempt {
                outcome: classify("apns", response.code, reason.as_deref(), None),
                status: Some(response.code),
                reason,
            }
        }
        Err(a2::Error::RequestTimeout(_)) => Attempt::transport_error("timeout"),
        Err(a2::Error::SignerError(e)) => Attempt {
            outcome: Outcome::FixCredentials,
            status: None,
            reason: Some(format!("signing: {e}")),
        },
        Err(other) => Attempt::transport_error(format!("transport: {other}")),
    }
}

impl Provider for ApnsProvider {
    fn name(&self) -> &'static str {
        "apns"
    }

    fn send<'a>(
        &'a self,
        message: &'a PushMessage,
        target: &'a DeviceTarget,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let DeviceTarget::Apns {
                token,
                topic,
                sandbox,
            } = target
            else {
                return Attempt {
                    outcome: Outcome::Failed,
                    status: None,
                    reason: Some("not an APNs device".into()),
                };
            };
            let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
            let payload = apns_payload(message, token, topic, now);
            let client = if *sandbox {
                &self.sandbox
            } else {
                &self.production
            };
            classify_apns(&client.send(payload).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::payload::{NotificationKind, PushPayload};
    use a2::{ErrorBody, ErrorReason, Response};

    fn message(kind: NotificationKind, urgency: Urgency) -> PushMessage {
        PushMessage {
            payload: PushPayload {
                kind,
                notification_id: "n1".into(),
                circle_id: Some("c1".into()),
                post_id: None,
                membership_id: Some("m1".into()),
                alert_id: None,
                deep_link: "kring://circles/c1".into(),
                locale: "nl".into(),
                title: "Sam denkt aan je".into(),
                body: "Hoe gaat het?".into(),
                badge: 2,
                actions: vec![PushAction::ImOk],
            },
            ttl: Duration::from_secs(3600),
            urgency,
            collapse_key: Some("digest:c1".into()),
            thread_id: Some("c1".into()),
        }
    }

    #[test]
    fn payload_and_headers_follow_the_one_model() {
        let m = message(NotificationKind::PersonalMessage, Urgency::High);
        let p = apns_payload(&m, "ab".repeat(32).leak(), "nl.kring.app", 1_000_000);
        let json: Value = serde_json::from_str(&p.to_json_string().unwrap()).unwrap();
        assert_eq!(json["aps"]["alert"]["title"], "Sam denkt aan je");
        assert_eq!(json["aps"]["alert"]["body"], "Hoe gaat het?");
        assert_eq!(json["aps"]["badge"], 2);
        assert_eq!(json["aps"]["category"], IM_OK_CATEGORY);
        assert_eq!(json["aps"]["thread-id"], "c1");
        assert_eq!(json["kind"], "personal_message");
        assert_eq!(json["notification_id"], "n1");
        assert_eq!(json["actions"], serde_json::json!(["im_ok"]));
        let o = p.get_options();
        assert_eq!(o.apns_push_type, Some(PushType::Alert));
        assert_eq!(
            o.apns_priority.as_ref().map(ToString::to_string).as_deref(),
            Some("10")
        );
        assert_eq!(o.apns_expiration, Some(1_003_600));
        assert_eq!(o.apns_topic, Some("nl.kring.app"));
        assert_eq!(
            o.apns_collapse_id.as_ref().map(|c| c.value),
            Some("digest:c1")
        );

        let low = message(NotificationKind::PostDigest, Urgency::Low);
        let p = apns_payload(&low, "cd", "nl.kring.app", 0);
        assert_eq!(
            p.get_options()
                .apns_priority
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("5")
        );
    }

    fn refused(code: u16, reason: ErrorReason) -> Result<Response, a2::Error> {
        Err(a2::Error::ResponseError(Response {
            error: Some(ErrorBody {
                reason,
                timestamp: None,
            }),
            apns_id: None,
            code,
        }))
    }

    #[test]
    fn responses_are_classified_through_a2_types() {
        let ok: Result<Response, a2::Error> = Ok(Response {
            error: None,
            apns_id: Some("id".into()),
            code: 200,
        });
        assert_eq!(classify_apns(&ok).outcome, Outcome::Delivered);
        assert_eq!(
            classify_apns(&refused(410, ErrorReason::Unregistered)).outcome,
            Outcome::DropToken
        );
        assert_eq!(
            classify_apns(&refused(400, ErrorReason::BadDeviceToken)).outcome,
            Outcome::DropToken
        );
        assert_eq!(
            classify_apns(&refused(400, ErrorReason::DeviceTokenNotForTopic)).outcome,
            Outcome::DropToken
        );
        assert_eq!(
            classify_apns(&refused(403, ErrorReason::ExpiredProviderToken)).outcome,
            Outcome::FixCredentials
        );
        assert_eq!(
            classify_apns(&refused(403, ErrorReason::InvalidProviderToken)).outcome,
            Outcome::FixCredentials
        );
        assert_eq!(
            classify_apns(&refused(429, ErrorReason::TooManyRequests)).outcome,
            Outcome::Retry { retry_after: None }
        );
        assert_eq!(
            classify_apns(&refused(500, ErrorReason::InternalServerError)).outcome,
            Outcome::Retry { retry_after: None }
        );
        assert_eq!(
            classify_apns(&refused(503, ErrorReason::ServiceUnavailable)).outcome,
            Outcome::Retry { retry_after: None }
        );
        assert_eq!(
            classify_apns(&refused(400, ErrorReason::PayloadTooLarge)).outcome,
            Outcome::Failed
        );
        assert_eq!(
            classify_apns(&Err(a2::Error::RequestTimeout(10))).outcome,
            Outcome::Retry { retry_after: None }
        );
        assert_eq!(
            classify_apns(&refused(410, ErrorReason::Unregistered))
                .reason
                .as_deref(),
            Some("Unregistered")
        );
    }

    #[test]
    fn a_p8_key_makes_a_provider() {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        let pem = key.private_key_to_pem_pkcs8().unwrap();
        assert!(
            ApnsProvider::new(&pem, "KEYID12345", "TEAMID1234", Duration::from_secs(5)).is_ok()
        );
        assert!(
            ApnsProvider::new(
                b"not a key",
                "KEYID12345",
                "TEAMID1234",
                Duration::from_secs(5)
            )
            .is_err()
        );
    }
}
