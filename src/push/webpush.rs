//! Web Push (RFC 8030) with the `web-push` crate: aes128gcm payload
//! encryption (RFC 8291) and VAPID (RFC 8292), sent with reqwest.
//!
//! The VAPID JWT is signed once per push-service origin and reused for an
//! hour (it is valid for twelve), instead of once per message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use web_push::{
    ContentEncoding, PartialVapidSignatureBuilder, SubscriptionInfo, VapidSignature,
    VapidSignatureBuilder, WebPushMessageBuilder,
};

use super::classify::{classify, parse_retry_after};
use super::{Attempt, DeviceTarget, Outcome, Provider, PushMessage, Urgency};

/// How long a signed VAPID JWT is reused for one origin.
const VAPID_REUSE: Duration = Duration::from_secs(3600);

pub struct WebPushProvider {
    client: reqwest::Client,
    vapid: PartialVapidSignatureBuilder,
    subject: String,
    signatures: Mutex<HashMap<String, (VapidSignature, Instant)>>,
}

impl WebPushProvider {
    /// `private_key`: the VAPID key, base64url (raw 32-byte P-256 scalar).
    pub fn new(private_key: &str, subject: &str, timeout: Duration) -> Result<Self, String> {
        // The crate panics on a key of the wrong length: check it here first.
        let key = normalise_private_key(private_key)?;
        let vapid = VapidSignatureBuilder::from_base64_no_sub(&key)
            .map_err(|e| format!("KRING_VAPID_PRIVATE_KEY is not a VAPID private key: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            vapid,
            subject: subject.to_owned(),
            signatures: Mutex::new(HashMap::new()),
        })
    }

    /// The public key to give browsers as `applicationServerKey`, base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.vapid.get_public_key())
    }

    fn signature(&self, info: &SubscriptionInfo) -> Result<VapidSignature, String> {
        let origin = origin(&info.endpoint).ok_or("the endpoint is not a URL")?;
        if let Ok(cache) = self.signatures.lock()
            && let Some((sig, made)) = cache.get(&origin)
            && made.elapsed() < VAPID_REUSE
        {
            return Ok(sig.clone());
        }
        let mut builder = self.vapid.clone().add_sub_info(info);
        builder.add_claim("sub", self.subject.as_str());
        // RFC 8292: the audience is the push resource's origin, port included
        // (the crate's default leaves a non-default port out).
        builder.add_claim("aud", origin.as_str());
        let sig = builder
            .build()
            .map_err(|e| format!("VAPID signing failed: {e}"))?;
        if let Ok(mut cache) = self.signatures.lock() {
            cache.insert(origin, (sig.clone(), Instant::now()));
        }
        Ok(sig)
    }

    /// The HTTP request that delivers `message` to one subscription:
    /// encrypted (aes128gcm) and signed (VAPID). The benchmark builds a few
    /// once and replays them to measure a push service's raw capacity.
    pub fn request(
        &self,
        message: &PushMessage,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<reqwest::Request, String> {
        let info = SubscriptionInfo::new(endpoint, p256dh, auth);
        let payload = serde_json::to_vec(&message.payload).map_err(|e| e.to_string())?;
        let mut builder = WebPushMessageBuilder::new(&info);
        builder.set_payload(ContentEncoding::Aes128Gcm, &payload);
        builder.set_ttl(u32::try_from(message.ttl.as_secs()).unwrap_or(u32::MAX));
        builder.set_urgency(match message.urgency {
            Urgency::Low => web_push::Urgency::Low,
            Urgency::Normal => web_push::Urgency::Normal,
            Urgency::High => web_push::Urgency::High,
        });
        if let Some(key) = &message.collapse_key {
            builder.set_topic(topic(key));
        }
        builder.set_vapid_signature(self.signature(&info)?);
        let built = builder
            .build()
            .map_err(|e| format!("cannot build the Web Push message: {e}"))?;
        let http_request = web_push::request_builder::build_request::<Vec<u8>>(built);
        let (parts, body) = http_request.into_parts();
        let mut request = self.client.post(endpoint).body(body);
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                request = request.header(name.as_str(), value);
            }
        }
        request.build().map_err(|e| e.to_string())
    }
}

/// The Web Push `Topic` header: at most 32 base64url characters.
pub fn topic(collapse_key: &str) -> String {
    let digest = Sha256::digest(collapse_key.as_bytes());
    URL_SAFE_NO_PAD.encode(digest)[..32].to_owned()
}

fn origin(endpoint: &str) -> Option<String> {
    let uri: axum::http::Uri = endpoint.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

impl Provider for WebPushProvider {
    fn name(&self) -> &'static str {
        "webpush"
    }

    fn send<'a>(
        &'a self,
        message: &'a PushMessage,
        target: &'a DeviceTarget,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let DeviceTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } = target
            else {
                return Attempt {
                    outcome: Outcome::Failed,
                    status: None,
                    reason: Some("not a Web Push device".into()),
                };
            };
            let request = match self.request(message, endpoint, p256dh, auth) {
                Ok(r) => r,
                // A subscription whose keys cannot be used will never work.
                Err(reason) => {
                    return Attempt {
                        outcome: Outcome::DropToken,
                        status: None,
                        reason: Some(reason),
                    };
                }
            };
            match self.client.execute(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
                    Attempt {
                        outcome: classify("webpush", status, None, retry_after),
                        status: Some(status),
                        reason: None,
                    }
                }
                Err(err) if err.is_timeout() => Attempt::transport_error("timeout"),
                Err(err) => Attempt::transport_error(format!("transport: {}", err.without_url())),
            }
        })
    }
}

/// A P-256 private key as exactly 32 bytes, base64url. Some tools (openssl
/// among them) drop leading zero bytes of the scalar; those are put back.
pub fn normalise_private_key(key: &str) -> Result<String, String> {
    let bad =
        || "KRING_VAPID_PRIVATE_KEY must be a base64url P-256 private key (32 bytes)".to_owned();
    let raw = URL_SAFE_NO_PAD
        .decode(key.trim().trim_end_matches('='))
        .map_err(|_| bad())?;
    if raw.is_empty() || raw.len() > 32 {
        return Err(bad());
    }
    let mut padded = vec![0u8; 32 - raw.len()];
    padded.extend_from_slice(&raw);
    Ok(URL_SAFE_NO_PAD.encode(padded))
}

/// A new VAPID key pair: (private, public), both base64url.
pub fn generate_vapid_keys() -> Result<(String, String), String> {
    use ece::crypto::EcKeyComponents;
    let (keypair, _auth) = ece::generate_keypair_and_auth_secret().map_err(|e| e.to_string())?;
    let components: EcKeyComponents = keypair.raw_components().map_err(|e| e.to_string())?;
    let private = normalise_private_key(&URL_SAFE_NO_PAD.encode(components.private_key()))?;
    Ok((private, URL_SAFE_NO_PAD.encode(components.public_key())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_fit_the_header_rules() {
        let t = topic("digest:0194f1a2b3c47d5e8f901a2b3c4d5e6f");
        assert_eq!(t.len(), 32);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn generated_keys_make_a_working_provider() {
        let (private, public) = generate_vapid_keys().expect("keys");
        let provider =
            WebPushProvider::new(&private, "mailto:test@example.org", Duration::from_secs(1))
                .expect("provider");
        assert_eq!(provider.public_key(), public);
        assert!(WebPushProvider::new("not a key", "mailto:x@y", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn short_and_long_keys_never_panic() {
        // A key with its leading zero byte dropped (31 bytes) is padded back.
        let (private, _) = generate_vapid_keys().expect("keys");
        let mut raw = URL_SAFE_NO_PAD.decode(&private).unwrap();
        raw[0] = 0;
        let full = URL_SAFE_NO_PAD.encode(&raw);
        let short = URL_SAFE_NO_PAD.encode(&raw[1..]);
        assert_eq!(normalise_private_key(&short).unwrap(), full);
        assert!(WebPushProvider::new(&short, "mailto:x@y", Duration::from_secs(1)).is_ok());
        for bad in [
            "",
            "AAAA",
            &URL_SAFE_NO_PAD.encode([7u8; 33]),
            &URL_SAFE_NO_PAD.encode([0u8; 32]),
        ] {
            assert!(
                WebPushProvider::new(bad, "mailto:x@y", Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
        // Many generated keys all load (about 1 in 256 has a leading zero byte).
        for _ in 0..600 {
            let (private, _) = generate_vapid_keys().expect("keys");
            assert!(WebPushProvider::new(&private, "mailto:x@y", Duration::from_secs(1)).is_ok());
        }
    }
}
