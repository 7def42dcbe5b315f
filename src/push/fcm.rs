//! FCM HTTP v1 (`projects/{id}/messages:send`) with OAuth2 service-account
//! tokens from `gcp_auth`, which caches each token and refreshes it before it
//! expires. The base URL and the token URL are configurable, so tests (and
//! emulators) can stand in for Google.
//!
//! Not the published `fcm` crate: it speaks the legacy API that Google shut
//! down in 2024.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use gcp_auth::TokenProvider;
use serde_json::{Value, json};

use super::classify::{classify, parse_retry_after};
use super::{Attempt, DeviceTarget, Outcome, Provider, PushMessage, Urgency};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

pub struct FcmProvider {
    client: reqwest::Client,
    send_url: String,
    tokens: Arc<dyn TokenProvider>,
}

impl FcmProvider {
    /// From a service-account key (JSON text). `token_url` replaces the key's
    /// `token_uri`; `project_id` replaces its `project_id`.
    pub fn new(
        key_json: &str,
        project_id: Option<&str>,
        base_url: &str,
        token_url: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut key: Value = serde_json::from_str(key_json)
            .map_err(|e| format!("the FCM key file is not JSON: {e}"))?;
        if let (Some(url), Some(obj)) = (token_url, key.as_object_mut()) {
            obj.insert("token_uri".into(), Value::String(url.to_owned()));
        }
        let project = project_id
            .map(str::to_owned)
            .or_else(|| key["project_id"].as_str().map(str::to_owned))
            .ok_or("the FCM project id is neither configured nor in the key file")?;
        let account = gcp_auth::CustomServiceAccount::from_json(&key.to_string())
            .map_err(|e| format!("the FCM key file is not a service-account key: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            send_url: format!(
                "{}/v1/projects/{project}/messages:send",
                base_url.trim_end_matches('/')
            ),
            tokens: Arc::new(account),
        })
    }
}

/// The FCM v1 message for one device. Everything the app needs is in `data`
/// (string values only, as FCM requires); `notification` lets Android show it
/// when the app is not running.
pub fn fcm_message(message: &PushMessage, token: &str) -> Value {
    let mut data = serde_json::Map::new();
    if let Ok(Value::Object(payload)) = serde_json::to_value(&message.payload) {
        for (k, v) in payload {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(k, Value::String(text));
        }
    }
    let mut android = json!({
        "ttl": format!("{}s", message.ttl.as_secs()),
        "priority": if message.urgency == Urgency::High { "HIGH" } else { "NORMAL" },
        "notification": { "tag": message.thread_id },
    });
    if let Some(key) = &message.collapse_key {
        android["collapse_key"] = Value::String(key.clone());
    }
    json!({
        "message": {
            "token": token,
            "data": data,
            "notification": { "title": message.payload.title, "body": message.payload.body },
            "android": android,
        }
    })
}

/// FCM's error code (`UNREGISTERED`, …) and message from an error body.
fn error_reason(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let code = error
        .get("details")
        .and_then(Value::as_array)
        .and_then(|details| {
            details
                .iter()
                .find_map(|d| d.get("errorCode").and_then(Value::as_str))
        })
        .or_else(|| error.get("status").and_then(Value::as_str))
        .unwrap_or("UNKNOWN");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(format!("{code}: {message}"))
}

impl Provider for FcmProvider {
    fn name(&self) -> &'static str {
        "fcm"
    }

    fn send<'a>(
        &'a self,
        message: &'a PushMessage,
        target: &'a DeviceTarget,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let DeviceTarget::Fcm { token } = target else {
                return Attempt {
                    outcome: Outcome::Failed,
                    status: None,
                    reason: Some("not an FCM device".into()),
                };
            };
            let access = match self.tokens.token(&[SCOPE]).await {
                Ok(t) => t,
                // Google refused our service account: nothing a retry of this
                // token fixes.
                Err(err) => {
                    return Attempt {
                        outcome: Outcome::FixCredentials,
                        status: None,
                        reason: Some(format!("OAuth token: {err}")),
                    };
                }
            };
            let response = self
                .client
                .post(&self.send_url)
                .bearer_auth(access.as_str())
                .json(&fcm_message(message, token))
                .send()
                .await;
            match response {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let reason = if status == 200 {
                        None
                    } else {
                        error_reason(&body)
                    };
                    Attempt {
                        outcome: classify("fcm", status, reason.as_deref(), retry_after),
                        status: Some(status),
                        reason,
                    }
                }
                Err(err) if err.is_timeout() => Attempt::transport_error("timeout"),
                Err(err) => Attempt::transport_error(format!("transport: {}", err.without_url())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::payload::{NotificationKind, PushPayload};

    #[test]
    fn messages_map_ttl_priority_collapse_and_data() {
        let message = PushMessage {
            payload: PushPayload {
                kind: NotificationKind::PostDigest,
                notification_id: "n1".into(),
                circle_id: Some("c1".into()),
                post_id: None,
                membership_id: None,
                alert_id: None,
                deep_link: "kring://circles/c1".into(),
                locale: "nl".into(),
                title: "3 nieuwe berichten".into(),
                body: "Kijk".into(),
                discreet: false,
                badge: 3,
                actions: vec![],
            },
            ttl: Duration::from_secs(3600),
            urgency: Urgency::Low,
            collapse_key: Some("digest:c1".into()),
            thread_id: Some("c1".into()),
        };
        let m = fcm_message(&message, "tok");
        assert_eq!(m["message"]["token"], "tok");
        assert_eq!(m["message"]["android"]["ttl"], "3600s");
        assert_eq!(m["message"]["android"]["priority"], "NORMAL");
        assert_eq!(m["message"]["android"]["collapse_key"], "digest:c1");
        assert_eq!(m["message"]["data"]["badge"], "3");
        assert_eq!(m["message"]["data"]["kind"], "post_digest");
        assert!(m["message"]["data"].get("post_id").is_none());
    }

    #[test]
    fn error_reasons_prefer_the_fcm_error_code() {
        let body = json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
        assert_eq!(
            error_reason(&body).unwrap(),
            "UNREGISTERED: Requested entity was not found."
        );
    }
}
