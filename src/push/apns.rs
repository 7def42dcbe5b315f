//! APNs: Apple's provider API over HTTP/2 (reqwest, one multiplexed
//! connection per host) with token authentication, and the mapping of
//! Kring's one model onto it: `apns-push-type: alert`, `apns-priority` 10
//! for urgent messages and 5 otherwise, `apns-collapse-id`,
//! `apns-expiration` from the TTL, the circle as `thread-id`, the "I'm OK"
//! category, the badge, and Kring's payload beside `aps`.
//!
//! Not the `a2` crate: it cannot be pointed at another host or trust
//! another CA, so no test could reach it. The base URLs are configurable
//! (a local APNs in the tests), and so is one extra CA (tests only).
//!
//! The provider token (an ES256 JWT with `kid`, `iss` = team id and `iat`)
//! is signed once and reused by every request until it is 50 minutes old:
//! Apple refuses a token older than an hour (`ExpiredProviderToken`) and
//! one replaced more often than every 20 minutes
//! (`TooManyProviderTokenUpdates`). When Apple calls it expired anyway (its
//! clock ahead of ours), the token is signed anew and the request sent once
//! more; a second refusal pauses the provider.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use jwt_simple::prelude::{Claims, ECDSAP256KeyPairLike, ES256KeyPair, UnixTimeStamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::classify::{classify, parse_retry_after};
use super::payload::PushAction;
use super::{Attempt, DeviceTarget, Outcome, Provider, PushMessage, Urgency};
use crate::clock::Clock;

/// The notification category apps register for the "I'm OK" button.
pub const IM_OK_CATEGORY: &str = "KRING_IM_OK";
pub use crate::config::{APNS_PRODUCTION_URL as PRODUCTION_URL, APNS_SANDBOX_URL as SANDBOX_URL};
/// A provider token is signed anew once it is this old (Apple: at most an
/// hour, and no more often than every 20 minutes).
pub const TOKEN_REFRESH_AFTER_SECS: i64 = 50 * 60;
/// `apns-collapse-id` is at most 64 bytes.
const MAX_COLLAPSE_ID: usize = 64;

/// What the provider needs to reach APNs.
pub struct ApnsSettings<'a> {
    /// The .p8 token-signing key (PKCS#8 PEM).
    pub key_pem: &'a [u8],
    pub key_id: &'a str,
    pub team_id: &'a str,
    /// Base URLs for devices of each environment.
    pub production_url: &'a str,
    pub sandbox_url: &'a str,
    /// A CA certificate (PEM) to trust besides the public roots: tests only.
    pub extra_ca_pem: Option<&'a [u8]>,
    /// How long one request may take.
    pub timeout: Duration,
}

pub struct ApnsProvider {
    client: reqwest::Client,
    production: String,
    sandbox: String,
    token: ProviderToken,
}

impl ApnsProvider {
    /// `clock`: where `iat` and `apns-expiration` come from (Apple compares
    /// both with its own clock).
    pub fn new(settings: &ApnsSettings<'_>, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let pem = std::str::from_utf8(settings.key_pem)
            .map_err(|_| "the APNs key file is not a PEM text file")?;
        let key = ES256KeyPair::from_pem(pem)
            .map_err(|_| "the APNs key file is not a P-256 private key (.p8, PKCS#8 PEM)")?
            .with_key_id(settings.key_id);
        // APNs speaks HTTP/2 only: `http2_prior_knowledge` offers just `h2`
        // in ALPN and multiplexes every request over one connection per host.
        let mut builder = reqwest::Client::builder()
            .http2_prior_knowledge()
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout);
        if let Some(pem) = settings.extra_ca_pem {
            let bad = || "the APNs extra CA file holds no PEM certificate".to_owned();
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| bad())?;
            if certs.is_empty() {
                return Err(bad());
            }
            for ca in certs {
                builder = builder.add_root_certificate(ca);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the APNs HTTP client: {e}"))?;
        Ok(Self {
            client,
            production: settings.production_url.trim_end_matches('/').to_owned(),
            sandbox: settings.sandbox_url.trim_end_matches('/').to_owned(),
            token: ProviderToken {
                key,
                team_id: settings.team_id.to_owned(),
                clock,
                current: Mutex::new(None),
            },
        })
    }

    /// One request to APNs, sent once more with a newly signed provider
    /// token if Apple calls the current one expired.
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: &[u8]) -> Attempt {
        let mut retried = false;
        loop {
            let token = match self.token.current() {
                Ok(token) => token,
                Err(reason) => {
                    return Attempt {
                        outcome: Outcome::FixCredentials,
                        status: None,
                        reason: Some(reason),
                    };
                }
            };
            let mut request = self
                .client
                .post(url)
                .header("authorization", format!("bearer {}", token.jwt))
                .body(body.to_vec());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) if err.is_timeout() => return Attempt::transport_error("timeout"),
                // Without the URL: it holds the device token.
                Err(err) => {
                    return Attempt::transport_error(format!("transport: {}", err.without_url()));
                }
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, self.token.clock.now()));
            let reason = if status == 200 {
                None
            } else {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                Some(reason_code(&body))
            };
            if status == 403 && reason.as_deref() == Some("ExpiredProviderToken") && !retried {
                self.token.expired(&token);
                retried = true;
                continue;
            }
            return Attempt {
                outcome: classify("apns", status, reason.as_deref(), retry_after),
                status: Some(status),
                reason,
            };
        }
    }
}

/// The provider token in use: signed once, shared by every request.
struct ProviderToken {
    key: ES256KeyPair,
    team_id: String,
    clock: Arc<dyn Clock>,
    current: Mutex<Option<Signed>>,
}

#[derive(Clone)]
struct Signed {
    jwt: Arc<str>,
    issued_at: i64,
}

impl ProviderToken {
    /// The current token, signed anew when there is none or it is 50
    /// minutes old.
    fn current(&self) -> Result<Signed, String> {
        let now = self.clock.now().as_second();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = current.as_ref()
            && now - token.issued_at < TOKEN_REFRESH_AFTER_SECS
        {
            return Ok(token.clone());
        }
        let mut claims =
            Claims::create(jwt_simple::prelude::Duration::from_secs(0)).with_issuer(&self.team_id);
        // Apple reads `iss` and `iat` only; the token's age is its expiry.
        claims.issued_at = Some(UnixTimeStamp::from_secs(
            u64::try_from(now).unwrap_or_default(),
        ));
        claims.expires_at = None;
        claims.invalid_before = None;
        let jwt = self
            .key
            .sign(claims)
            .map_err(|e| format!("signing the APNs provider token: {e}"))?;
        let signed = Signed {
            jwt: jwt.into(),
            issued_at: now,
        };
        *current = Some(signed.clone());
        Ok(signed)
    }

    /// Apple refused `refused` as expired: the next request signs a new
    /// one, unless a concurrent request has done so already.
    fn expired(&self, refused: &Signed) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|t| t.jwt == refused.jwt) {
            *current = None;
        }
    }
}

/// Apple's reason code from an error body (`{"reason": "Unregistered"}`);
/// anything else from the wire is not repeated into the logs.
fn reason_code(body: &Value) -> String {
    body.get("reason")
        .and_then(Value::as_str)
        .filter(|r| r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("unrecognised")
        .to_owned()
}

/// The `apns-*` headers for a message. `now_secs`: the Unix time, for the
/// absolute `apns-expiration`.
pub fn apns_headers(
    message: &PushMessage,
    topic: &str,
    now_secs: i64,
) -> Vec<(&'static str, String)> {
    let expiration = now_secs.saturating_add(i64::try_from(message.ttl.as_secs()).unwrap_or(0));
    let mut headers = vec![
        ("apns-topic", topic.to_owned()),
        ("apns-push-type", "alert".to_owned()),
        (
            "apns-priority",
            if message.urgency == Urgency::High {
                "10"
            } else {
                "5"
            }
            .to_owned(),
        ),
        ("apns-expiration", expiration.max(0).to_string()),
    ];
    if let Some(key) = &message.collapse_key {
        headers.push(("apns-collapse-id", collapse_id(key)));
    }
    headers
}

/// The collapse key, or a digest of it when it is longer than APNs allows.
fn collapse_id(key: &str) -> String {
    if key.len() <= MAX_COLLAPSE_ID {
        key.to_owned()
    } else {
        URL_SAFE_NO_PAD.encode(Sha256::digest(key.as_bytes()))
    }
}

/// The JSON body: `aps` (alert, badge, sound, thread, category) and
/// Kring's payload beside it.
pub fn apns_body(message: &PushMessage) -> Value {
    let p = &message.payload;
    let mut aps = json!({
        "alert": { "title": p.title, "body": p.body },
        "badge": p.badge.max(0),
        "sound": "default",
    });
    if let Some(thread) = &message.thread_id {
        aps["thread-id"] = Value::String(thread.clone());
    }
    if p.actions.contains(&PushAction::ImOk) {
        aps["category"] = Value::String(IM_OK_CATEGORY.into());
    }
    let mut body = match serde_json::to_value(p) {
        Ok(Value::Object(custom)) => custom,
        _ => serde_json::Map::new(),
    };
    body.insert("aps".into(), aps);
    Value::Object(body)
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
            // Registration checks this too; a token is never put in a URL unchecked.
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Attempt {
                    outcome: Outcome::DropToken,
                    status: None,
                    reason: Some("not an APNs device token".into()),
                };
            }
            let base = if *sandbox {
                &self.sandbox
            } else {
                &self.production
            };
            let url = format!("{base}/3/device/{token}");
            let headers = apns_headers(message, topic, self.token.clock.now().as_second());
            let body = serde_json::to_vec(&apns_body(message)).unwrap_or_default();
            self.post(&url, &headers, &body).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::push::payload::{NotificationKind, PushPayload};

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
                discreet: false,
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
        let json = apns_body(&m);
        assert_eq!(json["aps"]["alert"]["title"], "Sam denkt aan je");
        assert_eq!(json["aps"]["alert"]["body"], "Hoe gaat het?");
        assert_eq!(json["aps"]["badge"], 2);
        assert_eq!(json["aps"]["category"], IM_OK_CATEGORY);
        assert_eq!(json["aps"]["thread-id"], "c1");
        assert_eq!(json["kind"], "personal_message");
        assert_eq!(json["notification_id"], "n1");
        assert_eq!(json["actions"], json!(["im_ok"]));
        let headers = apns_headers(&m, "nl.kring.app", 1_000_000);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("apns-push-type"), Some("alert"));
        assert_eq!(get("apns-priority"), Some("10"));
        assert_eq!(get("apns-expiration"), Some("1003600"));
        assert_eq!(get("apns-topic"), Some("nl.kring.app"));
        assert_eq!(get("apns-collapse-id"), Some("digest:c1"));

        let mut low = message(NotificationKind::PostDigest, Urgency::Low);
        low.payload.actions.clear();
        low.collapse_key = Some("x".repeat(65));
        let headers = apns_headers(&low, "nl.kring.app", 0);
        assert!(headers.contains(&("apns-priority", "5".into())));
        let collapse = &headers
            .iter()
            .find(|(n, _)| *n == "apns-collapse-id")
            .unwrap()
            .1;
        assert!(collapse.len() <= 64, "{collapse}");
        assert!(apns_body(&low)["aps"].get("category").is_none());
    }

    #[test]
    fn the_largest_message_fits_apples_4_kb() {
        // A personal message is at most 500 characters; names are short.
        let mut m = message(NotificationKind::PersonalMessage, Urgency::High);
        m.payload.body = "\u{1F600}\"".repeat(250);
        m.payload.title = "\u{1F600}".repeat(64);
        m.payload.deep_link = format!(
            "kring://circles/{}/posts/{}",
            "c".repeat(32),
            "p".repeat(32)
        );
        let size = serde_json::to_vec(&apns_body(&m)).unwrap().len();
        assert!(size <= 4096, "{size} bytes");
    }

    #[test]
    fn reason_codes_are_apples_or_nothing() {
        assert_eq!(
            reason_code(&json!({"reason": "Unregistered", "timestamp": 1})),
            "Unregistered"
        );
        assert_eq!(
            reason_code(&json!({"reason": "token abcdef\nleaked"})),
            "unrecognised"
        );
        assert_eq!(reason_code(&Value::Null), "unrecognised");
    }

    fn p8() -> Vec<u8> {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap())
            .unwrap();
        key.private_key_to_pem_pkcs8().unwrap()
    }

    fn settings(pem: &[u8]) -> ApnsSettings<'_> {
        ApnsSettings {
            key_pem: pem,
            key_id: "KEYID12345",
            team_id: "TEAMID1234",
            production_url: PRODUCTION_URL,
            sandbox_url: SANDBOX_URL,
            extra_ca_pem: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_p8_key_makes_a_provider_and_anything_else_an_error() {
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::UNIX_EPOCH));
        let pem = p8();
        assert!(ApnsProvider::new(&settings(&pem), clock.clone()).is_ok());
        for bad in [&b"not a key"[..], &[0xff, 0xfe][..], &b""[..]] {
            assert!(ApnsProvider::new(&settings(bad), clock.clone()).is_err());
        }
        let mut with_ca = settings(&pem);
        with_ca.extra_ca_pem = Some(b"not a certificate");
        assert!(ApnsProvider::new(&with_ca, clock).is_err());
    }

    #[test]
    fn the_provider_token_is_reused_for_50_minutes() {
        let start: jiff::Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        let pem = p8();
        let provider = ApnsProvider::new(&settings(&pem), Arc::new(clock.clone())).unwrap();
        let first = provider.token.current().unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(first.jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (header["alg"].as_str(), header["kid"].as_str()),
            (Some("ES256"), Some("KEYID12345"))
        );
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(first.jwt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims,
            json!({"iss": "TEAMID1234", "iat": start.as_second()})
        );

        clock.advance(jiff::SignedDuration::from_mins(49));
        assert_eq!(provider.token.current().unwrap().jwt, first.jwt);
        clock.advance(jiff::SignedDuration::from_mins(1));
        let second = provider.token.current().unwrap();
        assert_ne!(second.jwt, first.jwt);
        assert_eq!(second.issued_at, start.as_second() + 50 * 60);
        // A refusal of the old token does not throw away the new one.
        provider.token.expired(&first);
        assert_eq!(provider.token.current().unwrap().jwt, second.jwt);
        provider.token.expired(&second);
        assert_ne!(provider.token.current().unwrap().jwt, second.jwt);
    }
}
