//! Push providers behind one trait, one model of TTL, urgency and collapse,
//! and the table that turns every provider response into an outcome.
//!
//! - [`log`]: the default when nothing is configured; logs that it would send.
//! - [`webpush`]: Web Push (aes128gcm, VAPID) with the `web-push` crate.
//! - [`fcm`]: FCM HTTP v1 with OAuth2 service-account tokens.
//! - [`apns`]: APNs over HTTP/2 with token (.p8) authentication.

pub mod apns;
pub mod classify;
pub mod fcm;
pub mod log;
pub mod payload;
pub mod webpush;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use classify::{Outcome, classify};
pub use payload::PushPayload;

/// How soon a message matters. Maps to APNs priority, FCM priority and the
/// Web Push `Urgency` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    Normal,
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "low" => Self::Low,
            "high" => Self::High,
            _ => Self::Normal,
        }
    }
}

/// Everything a provider needs to send one notification to one device.
#[derive(Debug, Clone)]
pub struct PushMessage {
    /// The contract the apps read (see `openapi/push-payload.schema.json`).
    pub payload: PushPayload,
    /// How long the message is worth delivering.
    pub ttl: Duration,
    pub urgency: Urgency,
    /// Messages with the same key replace one another on the device.
    pub collapse_key: Option<String>,
    /// Groups notifications on the device: the circle (APNs `thread-id`).
    pub thread_id: Option<String>,
}

/// Where a message goes.
#[derive(Debug, Clone)]
pub enum DeviceTarget {
    Apns {
        token: String,
        topic: String,
        sandbox: bool,
    },
    Fcm {
        token: String,
    },
    WebPush {
        endpoint: String,
        p256dh: String,
        auth: String,
    },
}

impl DeviceTarget {
    pub fn kind(&self) -> DeviceKind {
        match self {
            Self::Apns { .. } => DeviceKind::Apns,
            Self::Fcm { .. } => DeviceKind::Fcm,
            Self::WebPush { .. } => DeviceKind::WebPush,
        }
    }
}

/// The kinds of device Kring can push to: `apns` (iOS), `fcm` (Android) and
/// `webpush` (a browser or PWA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Apns,
    Fcm,
    #[serde(rename = "webpush")]
    WebPush,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apns => "apns",
            Self::Fcm => "fcm",
            Self::WebPush => "webpush",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "apns" => Ok(Self::Apns),
            "fcm" => Ok(Self::Fcm),
            "webpush" => Ok(Self::WebPush),
            other => Err(format!("unknown device kind {other}")),
        }
    }
}

/// What one send attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    /// The HTTP status, when the provider answered.
    pub status: Option<u16>,
    /// The provider's reason code (e.g. `Unregistered`), never message content.
    pub reason: Option<String>,
}

impl Attempt {
    /// A transport failure (connection refused, timeout): retry later.
    pub fn transport_error(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Retry { retry_after: None },
            status: None,
            reason: Some(reason.into()),
        }
    }
}

/// A push service.
pub trait Provider: Send + Sync + 'static {
    /// The provider's name in metrics and the outbox (`apns`, `fcm`, `webpush`, `log`).
    fn name(&self) -> &'static str;

    /// Sends one message to one device and classifies the response.
    fn send<'a>(
        &'a self,
        message: &'a PushMessage,
        target: &'a DeviceTarget,
    ) -> BoxFuture<'a, Attempt>;
}

/// The provider for each kind of device.
#[derive(Clone)]
pub struct Providers {
    pub apns: Arc<dyn Provider>,
    pub fcm: Arc<dyn Provider>,
    pub webpush: Arc<dyn Provider>,
}

impl Providers {
    /// Every kind goes to the log provider.
    pub fn log_only() -> Self {
        let log: Arc<dyn Provider> = Arc::new(log::LogProvider);
        Self {
            apns: log.clone(),
            fcm: log.clone(),
            webpush: log,
        }
    }

    /// The providers the configuration has credentials for; the log provider
    /// for the rest. `clock`: the time in APNs provider tokens and
    /// expirations, which Apple checks against its own clock.
    pub fn from_config(
        config: &crate::config::Config,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Self, String> {
        let mut providers = Self::log_only();
        let timeout = Duration::from_millis(config.push_timeout_ms);
        if let Some(key) = &config.vapid_private_key {
            providers.webpush = Arc::new(webpush::WebPushProvider::new(
                key,
                &config.vapid_subject,
                timeout,
            )?);
        }
        match (
            &config.apns_key_file,
            &config.apns_key_id,
            &config.apns_team_id,
        ) {
            (Some(path), Some(key_id), Some(team_id)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("cannot read the APNs key file {}: {e}", path.display())
                })?;
                let extra_ca = match &config.apns_extra_ca_file {
                    Some(ca) => {
                        tracing::warn!(
                            "KRING_APNS_EXTRA_CA_FILE is set: APNs also trusts a test CA; never use this in production"
                        );
                        Some(std::fs::read(ca).map_err(|e| {
                            format!("cannot read the APNs extra CA file {}: {e}", ca.display())
                        })?)
                    }
                    None => None,
                };
                let settings = apns::ApnsSettings {
                    key_pem: &pem,
                    key_id,
                    team_id,
                    production_url: &config.apns_base_url,
                    sandbox_url: &config.apns_sandbox_base_url,
                    extra_ca_pem: extra_ca.as_deref(),
                    timeout,
                };
                providers.apns = Arc::new(apns::ApnsProvider::new(&settings, clock)?);
            }
            (None, None, None) => {}
            _ => return Err(
                "APNs needs KRING_APNS_KEY_FILE, KRING_APNS_KEY_ID and KRING_APNS_TEAM_ID together"
                    .into(),
            ),
        }
        if let Some(path) = &config.fcm_service_account_file {
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the FCM key file {}: {e}", path.display()))?;
            providers.fcm = Arc::new(fcm::FcmProvider::new(
                &json,
                config.fcm_project_id.as_deref(),
                &config.fcm_base_url,
                config.fcm_token_url.as_deref(),
                timeout,
            )?);
        }
        Ok(providers)
    }

    pub fn for_kind(&self, kind: DeviceKind) -> &Arc<dyn Provider> {
        match kind {
            DeviceKind::Apns => &self.apns,
            DeviceKind::Fcm => &self.fcm,
            DeviceKind::WebPush => &self.webpush,
        }
    }
}
