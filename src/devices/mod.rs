//! Devices that receive push: APNs tokens, FCM registration tokens and Web
//! Push subscriptions. A token registered by another account moves to it.
//! Web Push endpoints must belong to a known push service (no SSRF).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json};
use crate::push::DeviceKind;
use crate::secrets::{hash_token, new_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, register_device))
        .routes(routes!(update_device, unregister_device))
}

/// APNs environment of the app build that registered the token: `sandbox`
/// (development builds) or `production` (App Store and TestFlight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApnsEnvironment {
    Sandbox,
    Production,
}

/// A Web Push subscription's keys, as the browser's `PushSubscription.toJSON()` gives them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebPushKeys {
    /// The client's P-256 public key, base64url (65 bytes uncompressed, so
    /// 87 characters starting with `B`; `=` padding may follow).
    #[schema(pattern = "^B[A-P][A-Za-z0-9_-]{84}[AEIMQUYcgkosw048]=*$")]
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url (22 characters; `=`
    /// padding may follow).
    #[schema(pattern = "^[A-Za-z0-9_-]{21}[AQgw]=*$")]
    pub auth: String,
}

/// A device to register, by kind (`apns`, `fcm` or `webpush`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "kind": "apns",
    "token": "5f1d0c3a9e7b4c2d8e6f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
    "topic": "nl.kring.app",
    "environment": "production",
    "label": "iPhone"
}))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegisterDevice {
    /// An iOS app: the APNs device token (hex), the app's bundle id (topic)
    /// and the APNs environment of the build.
    Apns {
        /// 64 to 200 hex digits.
        #[schema(example = "5f1d0c3a9e7b4c2d8e6f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d")]
        #[schema(pattern = "^[0-9A-Fa-f]{64,200}$")]
        token: String,
        /// The app's bundle id: letters, digits, `-` and at least one `.`.
        #[schema(example = "nl.kring.app", min_length = 3, max_length = 155)]
        #[schema(pattern = "^[A-Za-z0-9.-]*\\.[A-Za-z0-9.-]*$")]
        topic: String,
        /// The APNs environment of the build: pushes go to that host.
        environment: ApnsEnvironment,
        /// A name you recognise, such as the phone's name.
        #[schema(value_type = Option<crate::openapi::DeviceLabel>)]
        label: Option<String>,
    },
    /// An Android app: the FCM registration token.
    Fcm {
        /// 20 to 4096 printable ASCII characters.
        #[schema(example = "dQw4w9WgXcQ:APA91bH0000000000000")]
        #[schema(pattern = "^[!-~]{20,4096}$")]
        token: String,
        /// A name you recognise, such as the phone's name.
        #[schema(value_type = Option<crate::openapi::DeviceLabel>)]
        label: Option<String>,
    },
    /// A PWA: the Web Push subscription.
    #[serde(rename = "webpush")]
    WebPush {
        /// An https URL of a push service that this server allows
        /// (`KRING_WEBPUSH_ALLOWED_HOSTS`), without user info.
        #[schema(example = "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH")]
        #[schema(max_length = 2048, pattern = "^https://[^/?#@]+([/?#].*)?$")]
        endpoint: String,
        /// The subscription's keys, to encrypt each message for it.
        keys: WebPushKeys,
        /// A name you recognise, such as the browser's.
        #[schema(value_type = Option<crate::openapi::DeviceLabel>)]
        label: Option<String>,
    },
}

/// A registered device. Tokens are not echoed back.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "kind": "apns",
    "label": "iPhone",
    "apns_topic": "nl.kring.app",
    "apns_environment": "production",
    "webpush_host": null,
    "created_at": "2026-11-02T10:01:00Z",
    "updated_at": "2026-11-02T10:01:00Z"
}))]
pub struct Device {
    /// The device's id (to update or unregister it).
    pub id: String,
    /// How Kring reaches it.
    pub kind: DeviceKind,
    /// The name you gave it; null for none.
    #[schema(example = "iPhone")]
    pub label: Option<String>,
    /// For APNs devices: the app's bundle id.
    pub apns_topic: Option<String>,
    /// For APNs devices: the environment of the build.
    pub apns_environment: Option<ApnsEnvironment>,
    /// For Web Push: the push service's host.
    pub webpush_host: Option<String>,
    /// When it was first registered.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When its token or label last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
}

/// Your registered devices.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1d0e1f27a3b8c9d0e1f2a3b4c5d",
    "kind": "apns",
    "label": "iPhone",
    "apns_topic": "nl.kring.app",
    "apns_environment": "production",
    "webpush_host": null,
    "created_at": "2026-11-02T10:01:00Z",
    "updated_at": "2026-11-02T10:01:00Z"
}]}))]
pub struct DeviceList {
    /// Every device of your account that still receives pushes.
    pub items: Vec<Device>,
}

/// A validated registration.
struct Parsed {
    kind: DeviceKind,
    token: String,
    apns_topic: Option<String>,
    apns_environment: Option<&'static str>,
    p256dh: Option<String>,
    auth: Option<String>,
    label: Option<String>,
}

fn parse(req: &RegisterDevice, allowed_hosts: &[String], allow_http: bool) -> ApiResult<Parsed> {
    let mut v = Validator::default();
    let label = |v: &mut Validator, l: &Option<String>| -> Option<String> {
        // At most 60 characters as sent (`crate::openapi::DeviceLabel`), then trimmed.
        let too_long = l.as_ref().is_some_and(|l| l.chars().count() > 60);
        let cleaned = l.as_deref().map(crate::http::text::name);
        match cleaned.as_ref().map(|c| c.as_deref().map(str::trim)) {
            Some(Err(e)) => {
                v.fail("label", e.clone());
                None
            }
            Some(Ok(_)) if too_long => {
                v.fail("label", "must be at most 60 characters");
                None
            }
            Some(Ok("")) | None => None,
            Some(Ok(l)) => Some(l.to_owned()),
        }
    };
    let parsed = match req {
        RegisterDevice::Apns {
            token,
            topic,
            environment,
            label: l,
        } => {
            let token = token.trim().to_ascii_lowercase();
            if !(64..=200).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                v.fail("token", "must be the APNs device token in hex");
            }
            let topic_ok = (3..=155).contains(&topic.len())
                && topic.split('.').count() >= 2
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !topic_ok {
                v.fail("topic", "must be the app's bundle id, e.g. nl.kring.app");
            }
            Parsed {
                kind: DeviceKind::Apns,
                token,
                apns_topic: Some(topic.clone()),
                apns_environment: Some(match environment {
                    ApnsEnvironment::Sandbox => "sandbox",
                    ApnsEnvironment::Production => "production",
                }),
                p256dh: None,
                auth: None,
                label: label(&mut v, l),
            }
        }
        RegisterDevice::Fcm { token, label: l } => {
            let token = token.trim().to_owned();
            if !(20..=4096).contains(&token.len()) || token.bytes().any(|b| !b.is_ascii_graphic()) {
                v.fail("token", "must be an FCM registration token");
            }
            Parsed {
                kind: DeviceKind::Fcm,
                token,
                apns_topic: None,
                apns_environment: None,
                p256dh: None,
                auth: None,
                label: label(&mut v, l),
            }
        }
        RegisterDevice::WebPush {
            endpoint,
            keys,
            label: l,
        } => {
            if let Err(message) = check_endpoint(endpoint, allowed_hosts, allow_http) {
                v.fail("endpoint", message);
            }
            if URL_SAFE_NO_PAD
                .decode(keys.p256dh.trim_end_matches('='))
                .map(|k| k.len() == 65 && k[0] == 4)
                != Ok(true)
            {
                v.fail(
                    "keys.p256dh",
                    "must be an uncompressed P-256 public key, base64url",
                );
            }
            if URL_SAFE_NO_PAD
                .decode(keys.auth.trim_end_matches('='))
                .map(|k| k.len() == 16)
                != Ok(true)
            {
                v.fail("keys.auth", "must be the 16-byte auth secret, base64url");
            }
            Parsed {
                kind: DeviceKind::WebPush,
                token: endpoint.clone(),
                apns_topic: None,
                apns_environment: None,
                p256dh: Some(keys.p256dh.trim_end_matches('=').to_owned()),
                auth: Some(keys.auth.trim_end_matches('=').to_owned()),
                label: label(&mut v, l),
            }
        }
    };
    v.finish()?;
    Ok(parsed)
}

/// A Web Push endpoint must be https (http only when allowed, for local
/// development) on a host of a known push service.
pub fn check_endpoint(
    endpoint: &str,
    allowed_hosts: &[String],
    allow_http: bool,
) -> Result<String, String> {
    let uri: axum::http::Uri = endpoint.parse().map_err(|_| "must be a URL".to_owned())?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        _ => return Err("must be an https URL".into()),
    }
    if endpoint.len() > 2048 || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must be a plain push-service URL".into());
    }
    let host = uri
        .host()
        .ok_or_else(|| "must name a host".to_owned())?
        .to_ascii_lowercase();
    let allowed = allowed_hosts
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == *pattern,
        });
    if allowed {
        Ok(host)
    } else {
        Err(format!("{host} is not a known push service"))
    }
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    kind: String,
    label: Option<String>,
    token: String,
    apns_topic: Option<String>,
    apns_environment: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl DeviceRow {
    fn into_view(self) -> ApiResult<Device> {
        let kind = DeviceKind::parse(&self.kind).map_err(ApiError::Internal)?;
        Ok(Device {
            id: self.id,
            webpush_host: (kind == DeviceKind::WebPush)
                .then(|| {
                    self.token
                        .parse::<axum::http::Uri>()
                        .ok()
                        .and_then(|u| u.host().map(str::to_owned))
                })
                .flatten(),
            kind,
            label: self.label,
            apns_topic: self.apns_topic,
            apns_environment: match self.apns_environment.as_deref() {
                Some("sandbox") => Some(ApnsEnvironment::Sandbox),
                Some("production") => Some(ApnsEnvironment::Production),
                _ => None,
            },
            created_at: from_ms(self.created_at),
            updated_at: from_ms(self.updated_at),
        })
    }
}

const DEVICE_SELECT: &str = "SELECT id, kind, label, token, apns_topic, apns_environment, created_at, updated_at FROM devices";

async fn load(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<Device> {
    let row: DeviceRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DEVICE_SELECT} WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    row.into_view()
}

/// Marks a device removed and drops its pending deliveries.
pub async fn remove_device(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    now: i64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE devices SET removed_at = $1, removed_reason = $2, updated_at = $1 WHERE id = $3 AND removed_at IS NULL")
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE deliveries SET status = 'dropped', lease_until = NULL, updated_at = $1 WHERE device_id = $2 AND status = 'pending'")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Your devices.
///
/// Any signed-in person: the devices of their own account that still
/// receive pushes (a device whose provider reported it gone is removed).
/// Changes nothing.
#[utoipa::path(
    get, path = "/v1/devices", tag = "devices",
    operation_id = "devices_list",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your registered devices", body = DeviceList),
    )
)]
pub async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<DeviceList>> {
    let rows: Vec<DeviceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DEVICE_SELECT} WHERE account_id = $1 AND removed_at IS NULL ORDER BY created_at, id"
    )))
    .bind(&caller.account_id)
    .fetch_all(state.store.pool())
    .await?;
    Ok(axum::Json(DeviceList {
        items: rows
            .into_iter()
            .map(DeviceRow::into_view)
            .collect::<ApiResult<_>>()?,
    }))
}

/// Register this device for push.
///
/// Any signed-in person. Register after sign-in and whenever the platform
/// hands out a token. Registering a token again updates it (200); a token
/// that another account registered moves to you (the phone changed hands).
/// Web Push endpoints must be on a push service this server allows (422 on
/// `endpoint` otherwise). Pushes follow the `PushPayload` schema; see the
/// `push_notification` webhook. Send an `Idempotency-Key`: a retry never
/// registers twice.
#[utoipa::path(
    post, path = "/v1/devices", tag = "devices",
    operation_id = "devices_register",
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = RegisterDevice,
    responses(
        (status = 201, description = "Registered", body = Device),
        (status = 200, description = "Already registered; updated", body = Device),
    )
)]
pub async fn register_device(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Json(req): Json<RegisterDevice>,
) -> ApiResult<Response> {
    let p = parse(
        &req,
        &state.config.webpush_host_allowlist(),
        state.config.webpush_allow_http,
    )?;
    let now = state.now_ms();
    let key = hash_token(&p.token);
    let mut tx = idem.begin(&state.store).await?;
    let existing: Option<(String, String)> = sqlx::query_as(
        "SELECT id, account_id FROM devices WHERE kind = $1 AND token_key = $2 AND removed_at IS NULL",
    )
    .bind(p.kind.as_str())
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, status) = match existing {
        Some((id, account_id)) if account_id == caller.account_id => {
            write_fields(&mut tx, &id, &p, now).await?;
            (id, StatusCode::OK)
        }
        other => {
            if let Some((old_id, _)) = other {
                // The token now belongs to this account (a shared phone changed hands).
                remove_device(&mut tx, &old_id, now, "moved").await?;
            }
            let id = new_id();
            sqlx::query(
                "INSERT INTO devices (id, account_id, kind, token_key, token, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&id)
            .bind(&caller.account_id)
            .bind(p.kind.as_str())
            .bind(&key)
            .bind(&p.token)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write_fields(&mut tx, &id, &p, now).await?;
            (id, StatusCode::CREATED)
        }
    };
    let device = load(&mut tx, &id).await?;
    idem.commit(tx, (status, axum::Json(device))).await
}

async fn write_fields(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    p: &Parsed,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE devices SET token_key = $1, token = $2, apns_topic = $3, apns_environment = $4,
                webpush_p256dh = $5, webpush_auth = $6, label = COALESCE($7, label), updated_at = $8
         WHERE id = $9",
    )
    .bind(hash_token(&p.token))
    .bind(&p.token)
    .bind(p.apns_topic.as_deref())
    .bind(p.apns_environment)
    .bind(p.p256dh.as_deref())
    .bind(p.auth.as_deref())
    .bind(p.label.as_deref())
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Update a device after the platform refreshed its token or subscription.
///
/// Only the device's owner (404 otherwise). Its kind stays: another kind
/// answers 409 `device_kind_changed` (register the new device instead).
/// Another registration of the new token, by anyone, gives way to this
/// device. Pending pushes go to the new token.
#[utoipa::path(
    put, path = "/v1/devices/{device_id}", tag = "devices",
    operation_id = "device_update",
    extensions(("x-problem-codes" = json!([Code::DeviceKindChanged]))),
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "The device's id")),
    request_body = RegisterDevice,
    responses(
        (status = 200, description = "Updated", body = Device),
    )
)]
pub async fn update_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(device_id): Path<String>,
    Json(req): Json<RegisterDevice>,
) -> ApiResult<axum::Json<Device>> {
    let p = parse(
        &req,
        &state.config.webpush_host_allowlist(),
        state.config.webpush_allow_http,
    )?;
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let kind: Option<String> = sqlx::query_scalar(
        "SELECT kind FROM devices WHERE id = $1 AND account_id = $2 AND removed_at IS NULL",
    )
    .bind(&device_id)
    .bind(&caller.account_id)
    .fetch_optional(&mut *tx)
    .await?;
    match kind {
        None => return Err(ApiError::NotFound("device")),
        Some(k) if k != p.kind.as_str() => {
            return Err(ApiError::new(
                Code::DeviceKindChanged,
                "A device cannot change its kind; register the new device instead",
            ));
        }
        Some(_) => {}
    }
    // Another registration of the new token gives way to this device.
    let clash: Option<String> = sqlx::query_scalar(
        "SELECT id FROM devices WHERE kind = $1 AND token_key = $2 AND removed_at IS NULL AND id <> $3",
    )
    .bind(p.kind.as_str())
    .bind(hash_token(&p.token))
    .bind(&device_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(other) = clash {
        remove_device(&mut tx, &other, now, "moved").await?;
    }
    write_fields(&mut tx, &device_id, &p, now).await?;
    let device = load(&mut tx, &device_id).await?;
    tx.commit().await?;
    Ok(axum::Json(device))
}

/// Stop pushing to this device (sign-out, uninstall).
///
/// Only the device's owner (404 otherwise, also for a device already
/// unregistered). Its pending pushes are dropped; the inbox keeps every
/// item. Call it before `auth_logout` when the app signs out.
#[utoipa::path(
    delete, path = "/v1/devices/{device_id}", tag = "devices",
    operation_id = "device_unregister",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "The device's id")),
    responses(
        (status = 204, description = "Unregistered"),
    )
)]
pub async fn unregister_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(device_id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.now_ms();
    let mut tx = state.store.begin().await?;
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM devices WHERE id = $1 AND account_id = $2 AND removed_at IS NULL",
    )
    .bind(&device_id)
    .bind(&caller.account_id)
    .fetch_optional(&mut *tx)
    .await?;
    if found.is_none() {
        return Err(ApiError::NotFound("device"));
    }
    remove_device(&mut tx, &device_id, now, "unregistered").await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_known_push_services() {
        let hosts = vec![
            "fcm.googleapis.com".to_owned(),
            "*.push.apple.com".to_owned(),
        ];
        assert!(check_endpoint("https://fcm.googleapis.com/fcm/send/abc", &hosts, false).is_ok());
        assert!(check_endpoint("https://web.push.apple.com/QGx", &hosts, false).is_ok());
        assert!(check_endpoint("https://push.apple.com.evil.example/x", &hosts, false).is_err());
        assert!(check_endpoint("http://fcm.googleapis.com/fcm/send/abc", &hosts, false).is_err());
        assert!(check_endpoint("https://169.254.169.254/latest", &hosts, false).is_err());
        assert!(check_endpoint("https://user@fcm.googleapis.com/x", &hosts, false).is_err());
        assert!(check_endpoint("not a url", &hosts, false).is_err());
    }
}
