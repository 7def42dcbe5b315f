//! A local APNs (Apple Push Notification service) that speaks the provider
//! API as Apple documents it: HTTP/2 only, over TLS with a certificate from
//! a CA made at test time, `POST /3/device/{token}` with token-based
//! authentication.
//!
//! It checks what Apple checks: the provider token (an ES256 JWT signed by
//! the team's key, with `kid`, `iss` = team id and `iat`; refused as
//! expired after an hour, and refused when replaced on a connection more
//! often than every 20 minutes), the `apns-*` headers, that the device token was issued for
//! this environment and topic, and the payload (an `aps` dictionary, 4 KB
//! at most). It answers with Apple's statuses and reason codes, and keeps
//! what it accepted for the test to read, with the connection it came on.
//!
//! Production and sandbox are two instances ([`MockApns::sandbox`]) that
//! share the CA and the team's key, as Apple's two hosts do, but not their
//! device tokens: a token sent to the wrong host is a `BadDeviceToken`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::pkey::{PKey, Private};
use serde_json::{Value, json};
use tower::ServiceExt;

mod checks;

use checks::{check_aps, is_uuid, refusal, uuid_like, verify_provider_token};

use crate::tls::TestCa;
use crate::{Gate, Script};

/// Apple's limit on a notification's JSON, in bytes.
pub const MAX_PAYLOAD: usize = 4096;
/// A provider token older than this is refused as expired.
const TOKEN_LIFETIME: i64 = 3600;
/// A new provider token within this long of the previous one is refused.
const TOKEN_MIN_INTERVAL: i64 = 20 * 60;

/// One notification APNs accepted.
#[derive(Debug, Clone)]
pub struct ApnsReceived {
    pub token: String,
    pub topic: String,
    pub push_type: String,
    pub priority: Option<u8>,
    pub expiration: Option<u64>,
    pub collapse_id: Option<String>,
    pub apns_id: String,
    /// The JSON body: `aps` and the provider's own keys.
    pub payload: Value,
    /// The provider token it was authorised with, its `kid` and `iat`.
    pub provider_token: String,
    pub jwt_kid: String,
    pub jwt_iat: i64,
    /// Which TLS connection (counted from 1) carried it.
    pub connection: u64,
}

/// What the team registered with Apple: its signing key and apps.
struct Team {
    key_id: String,
    team_id: String,
    public_key: PKey<openssl::pkey::Public>,
    topics: Vec<String>,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Inner {
    environment: &'static str,
    /// Device token → the topic (bundle id) it was issued for.
    devices: HashMap<String, String>,
    scripts: HashMap<String, VecDeque<Script>>,
    received: Vec<ApnsReceived>,
    /// Requests refused by a check, not by a script: `reason: detail`.
    rejected: Vec<String>,
    /// Provider tokens whose signature was verified → `(kid, iat)`.
    verified: HashMap<String, (String, i64)>,
    /// The provider token in use on each connection.
    current: HashMap<u64, InUse>,
    clock: Clock,
}

/// A connection's provider token. Apple counts token updates per
/// connection: several servers with tokens of their own are fine.
struct InUse {
    jwt: String,
    iat: i64,
    /// Refused as expired: a new one is welcome at once.
    expired: bool,
}

#[derive(Clone)]
pub struct MockApns {
    /// `https://127.0.0.1:{port}`.
    pub base: String,
    /// The test CA's certificate (PEM): the client must trust it.
    pub ca_file: PathBuf,
    /// The team's token-signing key, as Apple hands it out (`AuthKey_{key id}.p8`).
    pub key_file: PathBuf,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id, the `apns-topic` its devices' tokens belong to.
    pub topic: String,
    ca: Arc<TestCa>,
    team: Arc<Team>,
    private_key: Arc<PKey<Private>>,
    dir: Arc<tempfile::TempDir>,
    inner: Arc<Mutex<Inner>>,
    gate: Arc<Gate>,
    connections: Arc<AtomicU64>,
}

/// The TLS connection a request came on.
#[derive(Clone, Copy)]
struct Connection(u64);

fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    })
}

impl MockApns {
    /// The production environment, with a new CA and a new team key; its
    /// apps are `nl.kring.app` and `nl.kring.other`.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_file = dir.path().join("apns-test-ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let key_id = "KRNGKEY001".to_owned();
        let key_file = dir.path().join(format!("AuthKey_{key_id}.p8"));
        std::fs::write(&key_file, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let team = Team {
            key_id: key_id.clone(),
            team_id: "KRNGTEAM01".into(),
            public_key: PKey::public_key_from_pem(&key.public_key_to_pem().unwrap()).unwrap(),
            topics: vec!["nl.kring.app".into(), "nl.kring.other".into()],
        };
        Self::serve(
            "production",
            Arc::new(ca),
            ca_file,
            key_file,
            Arc::new(team),
            Arc::new(key),
            Arc::new(dir),
        )
        .await
    }

    /// The sandbox environment beside this one: the same CA, team and key,
    /// its own host and device tokens.
    pub async fn sandbox(&self) -> Self {
        Self::serve(
            "sandbox",
            self.ca.clone(),
            self.ca_file.clone(),
            self.key_file.clone(),
            self.team.clone(),
            self.private_key.clone(),
            self.dir.clone(),
        )
        .await
    }

    async fn serve(
        environment: &'static str,
        ca: Arc<TestCa>,
        ca_file: PathBuf,
        key_file: PathBuf,
        team: Arc<Team>,
        private_key: Arc<PKey<Private>>,
        dir: Arc<tempfile::TempDir>,
    ) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            environment,
            devices: HashMap::new(),
            scripts: HashMap::new(),
            received: Vec::new(),
            rejected: Vec::new(),
            verified: HashMap::new(),
            current: HashMap::new(),
            clock: system_clock(),
        }));
        let gate = Arc::new(Gate::default());
        let connections = Arc::new(AtomicU64::new(0));
        let router = Router::new()
            .route("/3/device/{token}", post(receive))
            .fallback(|| async { refusal(StatusCode::NOT_FOUND, "BadPath", None) })
            .with_state((inner.clone(), gate.clone(), team.clone()));
        // Apple's servers speak HTTP/2 only, and allow 1,000 streams per connection.
        let tls = tokio_rustls::TlsAcceptor::from(ca.server_config(&[b"h2"]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let (counter, handshakes) = (connections.clone(), inner.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, router, counter, handshakes) = (
                    tls.clone(),
                    router.clone(),
                    counter.clone(),
                    handshakes.clone(),
                );
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let stream = match tls.accept(tcp).await {
                        Ok(s) => s,
                        Err(e) => {
                            handshakes
                                .lock()
                                .unwrap()
                                .rejected
                                .push(format!("TLS: {e}"));
                            return;
                        }
                    };
                    let connection = Connection(counter.fetch_add(1, Ordering::SeqCst) + 1);
                    let service = hyper::service::service_fn(
                        move |mut request: hyper::Request<hyper::body::Incoming>| {
                            request.extensions_mut().insert(connection);
                            router.clone().oneshot(request)
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(1000)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base,
            ca_file,
            key_file,
            key_id: team.key_id.clone(),
            team_id: team.team_id.clone(),
            topic: team.topics[0].clone(),
            ca,
            team,
            private_key,
            dir,
            inner,
            gate,
            connections,
        }
    }

    /// `production` or `sandbox`.
    pub fn environment(&self) -> &'static str {
        self.inner.lock().unwrap().environment
    }

    /// A device token for the app `nl.kring.app`, as an iPhone gets one
    /// from this environment: 32 random bytes in hex.
    pub fn device_token(&self) -> String {
        self.device_token_for(&self.topic)
    }

    /// A device token for another app of the team (or any bundle id).
    pub fn device_token_for(&self, topic: &str) -> String {
        let mut bytes = [0u8; 32];
        openssl::rand::rand_bytes(&mut bytes).unwrap();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.inner
            .lock()
            .unwrap()
            .devices
            .insert(token.clone(), topic.to_owned());
        token
    }

    /// What APNs answers for this device next, one entry per request.
    pub fn script(&self, token: &str, steps: Vec<Script>) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(token.to_owned(), steps.into());
    }

    /// APNs's "now" in Unix seconds, for checking provider tokens and
    /// expirations (default: the system clock).
    pub fn set_clock(&self, clock: impl Fn() -> i64 + Send + Sync + 'static) {
        self.inner.lock().unwrap().clock = Arc::new(clock);
    }

    pub fn received(&self) -> Vec<ApnsReceived> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn received_count(&self) -> usize {
        self.inner.lock().unwrap().received.len()
    }

    /// Requests a check refused (not a script), as `reason: detail`.
    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many requests a `Script::Stall` holds right now.
    pub fn stalled(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Lets every stalled request (and every later one) be accepted.
    pub fn release(&self) {
        self.gate.released.send_replace(true);
    }

    /// A provider token as Kring should make one, signed with the team's
    /// key: for a client that measures the service alone.
    pub fn provider_token(&self, iat: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(
            json!({"alg": "ES256", "kid": self.key_id})
                .to_string()
                .as_bytes(),
        );
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iss": self.team_id, "iat": iat})
                .to_string()
                .as_bytes(),
        );
        let signing_input = format!("{header}.{claims}");
        let digest = openssl::sha::sha256(signing_input.as_bytes());
        let signature =
            openssl::ecdsa::EcdsaSig::sign(&digest, self.private_key.ec_key().unwrap().as_ref())
                .unwrap();
        let mut raw = signature.r().to_vec_padded(32).unwrap();
        raw.extend(signature.s().to_vec_padded(32).unwrap());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw))
    }
}

/// What a script answers instead of accepting, if anything.
async fn scripted(script: Option<Script>, gate: &Gate, now: i64) -> Option<Response> {
    let default_reason = |status: u16| match status {
        400 => "BadDeviceToken",
        403 => "InvalidProviderToken",
        410 => "Unregistered",
        413 => "PayloadTooLarge",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalServerError",
    };
    let refuse = |status: u16, reason: &str| {
        let timestamp = (status == 410).then_some(now * 1000);
        refusal(StatusCode::from_u16(status).unwrap(), reason, timestamp)
    };
    match script? {
        Script::Status(s) if (200..300).contains(&s) => None,
        Script::Status(s) => Some(refuse(s, default_reason(s))),
        Script::Refuse(s, reason) => Some(refuse(s, reason)),
        Script::RetryAfter(s, secs) => {
            let mut response = refuse(s, default_reason(s));
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            Some(response)
        }
        Script::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            None
        }
        Script::Stall => {
            gate.wait().await;
            None
        }
    }
}

type ApnsState = (Arc<Mutex<Inner>>, Arc<Gate>, Arc<Team>);

async fn receive(
    State((inner, gate, team)): State<ApnsState>,
    Extension(Connection(connection)): Extension<Connection>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| crate::header(&headers, name);
    let reject = |status: StatusCode, reason: &'static str, detail: String| {
        inner
            .lock()
            .unwrap()
            .rejected
            .push(format!("{reason}: {detail}"));
        refusal(status, reason, None)
    };

    // The provider token.
    let Some(jwt) =
        header("authorization").and_then(|a| a.strip_prefix("bearer ").map(str::to_owned))
    else {
        return reject(
            StatusCode::FORBIDDEN,
            "MissingProviderToken",
            "no `authorization: bearer` header".into(),
        );
    };
    let cached = inner.lock().unwrap().verified.get(&jwt).cloned();
    let (kid, iat) = match cached.map_or_else(|| verify_provider_token(&jwt, &team), Ok) {
        Ok(v) => v,
        Err(why) => {
            return reject(
                StatusCode::FORBIDDEN,
                "InvalidProviderToken",
                why.to_owned(),
            );
        }
    };
    let now = {
        let mut guard = inner.lock().unwrap();
        guard.verified.insert(jwt.clone(), (kid.clone(), iat));
        let now = (guard.clock)();
        if now - iat > TOKEN_LIFETIME {
            if let Some(in_use) = guard.current.get_mut(&connection)
                && in_use.jwt == jwt
            {
                in_use.expired = true;
            }
            drop(guard);
            return reject(
                StatusCode::FORBIDDEN,
                "ExpiredProviderToken",
                format!("iat {iat} is {}s old", now - iat),
            );
        }
        match guard.current.get(&connection) {
            Some(in_use) if in_use.jwt == jwt => {}
            Some(in_use) if iat < in_use.iat + TOKEN_MIN_INTERVAL && !in_use.expired => {
                let previous = in_use.iat;
                drop(guard);
                return reject(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyProviderTokenUpdates",
                    format!("a new token {}s after the last", iat - previous),
                );
            }
            _ => {
                let in_use = InUse {
                    jwt: jwt.clone(),
                    iat,
                    expired: false,
                };
                guard.current.insert(connection, in_use);
            }
        }
        now
    };

    // The headers.
    let Some(topic) = header("apns-topic") else {
        return reject(StatusCode::BAD_REQUEST, "MissingTopic", String::new());
    };
    if !team.topics.contains(&topic) {
        return reject(StatusCode::BAD_REQUEST, "TopicDisallowed", topic);
    }
    let push_type = header("apns-push-type").unwrap_or_default();
    if !matches!(push_type.as_str(), "alert" | "background") {
        return reject(StatusCode::BAD_REQUEST, "InvalidPushType", push_type);
    }
    let priority = match header("apns-priority").map(|p| p.parse::<u8>()) {
        None => None,
        Some(Ok(p @ (1 | 5 | 10))) if !(push_type == "background" && p == 10) => Some(p),
        Some(other) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "BadPriority",
                format!("{other:?} for {push_type}"),
            );
        }
    };
    let expiration = match header("apns-expiration").map(|e| e.parse::<u64>()) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(_)) => {
            return reject(StatusCode::BAD_REQUEST, "BadExpirationDate", String::new());
        }
    };
    let collapse_id = header("apns-collapse-id");
    if collapse_id.as_ref().is_some_and(|c| c.len() > 64) {
        return reject(StatusCode::BAD_REQUEST, "BadCollapseId", String::new());
    }
    let apns_id = match header("apns-id") {
        Some(id) if is_uuid(&id) => id,
        Some(id) => return reject(StatusCode::BAD_REQUEST, "BadMessageId", id),
        None => uuid_like(),
    };

    // The device token: issued by this environment, for this topic.
    let (bound_topic, script) = {
        let mut guard = inner.lock().unwrap();
        (
            guard.devices.get(&token).cloned(),
            guard.scripts.get_mut(&token).and_then(VecDeque::pop_front),
        )
    };
    let Some(bound_topic) = bound_topic else {
        return reject(
            StatusCode::BAD_REQUEST,
            "BadDeviceToken",
            "not a token of this environment".into(),
        );
    };
    if bound_topic != topic {
        return reject(
            StatusCode::BAD_REQUEST,
            "DeviceTokenNotForTopic",
            format!("{bound_topic} ≠ {topic}"),
        );
    }

    // The payload.
    if body.is_empty() {
        return reject(StatusCode::BAD_REQUEST, "PayloadEmpty", String::new());
    }
    if body.len() > MAX_PAYLOAD {
        return reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("{} bytes", body.len()),
        );
    }
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(why) = check_aps(&payload, &push_type) {
        // Apple has no reason code for this; its devices would show nothing.
        return reject(StatusCode::BAD_REQUEST, "BadPayload", why);
    }

    let expires = matches!(script, Some(Script::Refuse(403, "ExpiredProviderToken")));
    if let Some(response) = scripted(script, &gate, now).await {
        if expires {
            // As when the token really expired: a new one is welcome at once.
            if let Some(in_use) = inner.lock().unwrap().current.get_mut(&connection) {
                in_use.expired = true;
            }
        }
        return response;
    }
    inner.lock().unwrap().received.push(ApnsReceived {
        token,
        topic,
        push_type,
        priority,
        expiration,
        collapse_id,
        apns_id: apns_id.clone(),
        payload,
        provider_token: jwt,
        jwt_kid: kid,
        jwt_iat: iat,
        connection,
    });
    (StatusCode::OK, [("apns-id", apns_id)]).into_response()
}
