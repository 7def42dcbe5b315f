//! Local push services on 127.0.0.1 that speak the real protocols:
//!
//! - Web Push: checks the VAPID `Authorization` (an ES256 JWT for this
//!   origin, signed by the key in `k`) and decrypts the aes128gcm body with
//!   the subscription's private key.
//! - FCM HTTP v1: an OAuth2 token endpoint that verifies the service
//!   account's RS256 assertion, and `messages:send` that checks the bearer
//!   token it issued.
//!
//! - APNs ([`apns`]): HTTP/2 over TLS (a CA made at test time), provider
//!   tokens (ES256 JWT) verified with the team's key, Apple's headers,
//!   payload rules and reason codes.
//!
//! Each answers with a script of failures per device, then with success,
//! and keeps what it accepted for the test to read.
//!
//! The crate knows nothing of Kring's types: the contract tests use it too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod apns;
pub mod tls;

pub use apns::{ApnsReceived, MockApns};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::{Value, json};

/// What a mock answers next for one device.
#[derive(Debug, Clone)]
pub enum Script {
    Status(u16),
    /// This status with this reason code (APNs: `{"reason": …}`); other
    /// services answer as for `Status`.
    Refuse(u16, &'static str),
    RetryAfter(u16, u64),
    /// Never answers in time (the client's timeout fires).
    Hang,
    /// Holds the request until the test calls `release()`, then accepts
    /// it: a slow push service whose pace the test sets, not a timer.
    Stall,
}

/// Where `Script::Stall` requests wait until the test releases them.
#[derive(Default)]
struct Gate {
    released: tokio::sync::watch::Sender<bool>,
    waiting: AtomicUsize,
}

impl Gate {
    async fn wait(&self) {
        let mut released = self.released.subscribe();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _ = released.wait_for(|r| *r).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fresh id for a subscription, message or token.
fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{n:x}{nanos:08x}")
}

/// A request header's value as text, if it has one.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

async fn scripted(
    script: Option<Script>,
    gate: &Gate,
    ok: Response,
    error_body: impl Fn(u16) -> Value,
) -> Response {
    match script {
        None => ok,
        Some(Script::Hang) => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ok
        }
        Some(Script::Stall) => {
            gate.wait().await;
            ok
        }
        Some(Script::Status(s) | Script::Refuse(s, _)) => {
            let status = StatusCode::from_u16(s).unwrap();
            if status.is_success() {
                ok
            } else {
                (status, axum::Json(error_body(s))).into_response()
            }
        }
        Some(Script::RetryAfter(s, secs)) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
            axum::Json(error_body(s)),
        )
            .into_response(),
    }
}

// ----- Web Push -----

/// A browser's subscription: its key pair and auth secret.
pub struct Subscription {
    pub id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// One message the Web Push service accepted, decrypted.
#[derive(Debug, Clone)]
pub struct WebPushReceived {
    pub subscription: String,
    pub ttl: String,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub vapid_sub: String,
    pub payload: Value,
}

#[derive(Default)]
struct WebPushInner {
    keys: HashMap<String, (ece::crypto::EcKeyComponents, Vec<u8>)>,
    scripts: HashMap<String, VecDeque<Script>>,
    received: Vec<WebPushReceived>,
    /// Requests refused before delivery (bad VAPID or undecryptable).
    rejected: Vec<String>,
    origin: String,
    /// VAPID headers already verified → (subject, expiry in Unix seconds).
    /// Push services verify a sender's reused JWT once, as this one does.
    verified: HashMap<String, (String, u64)>,
}

#[derive(Clone)]
pub struct MockWebPush {
    pub base: String,
    inner: Arc<Mutex<WebPushInner>>,
    gate: Arc<Gate>,
}

impl MockWebPush {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(WebPushInner::default()));
        let gate = Arc::new(Gate::default());
        let router = Router::new()
            .route("/push/{id}", post(webpush_receive))
            .with_state((inner.clone(), gate.clone()));
        let base = serve(router).await;
        inner.lock().unwrap().origin = base.clone();
        Self { base, inner, gate }
    }

    /// How many requests a `Script::Stall` holds right now.
    pub fn stalled(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Lets every stalled request (and every later one) be accepted.
    pub fn release(&self) {
        self.gate.released.send_replace(true);
    }

    /// A new subscription, as a browser makes one for this push service.
    pub fn subscribe(&self) -> Subscription {
        let (keypair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        let components = keypair.raw_components().unwrap();
        let id = new_id();
        let sub = Subscription {
            endpoint: format!("{}/push/{id}", self.base),
            p256dh: URL_SAFE_NO_PAD.encode(components.public_key()),
            auth: URL_SAFE_NO_PAD.encode(auth),
            id: id.clone(),
        };
        self.inner
            .lock()
            .unwrap()
            .keys
            .insert(id, (components, auth.to_vec()));
        sub
    }

    pub fn script(&self, sub: &Subscription, steps: Vec<Script>) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(sub.id.clone(), steps.into());
    }

    pub fn received(&self) -> Vec<WebPushReceived> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }

    pub fn received_count(&self) -> usize {
        self.inner.lock().unwrap().received.len()
    }
}

async fn webpush_receive(
    State((inner, gate)): State<(Arc<Mutex<WebPushInner>>, Arc<Gate>)>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| header(&headers, name);
    let (keys, origin, script) = {
        let mut guard = inner.lock().unwrap();
        let script = guard.scripts.get_mut(&id).and_then(VecDeque::pop_front);
        (
            guard
                .keys
                .get(&id)
                .map(|(c, a)| (c.private_key().to_vec(), c.public_key().to_vec(), a.clone())),
            guard.origin.clone(),
            script,
        )
    };
    let Some((private, public, auth)) = keys else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let authorization = header("authorization").unwrap_or_default();
    let cached = {
        let guard = inner.lock().unwrap();
        guard
            .verified
            .get(&authorization)
            .filter(|(_, exp)| *exp > unix_now())
            .map(|(sub, _)| sub.clone())
    };
    let verified = cached.or_else(|| {
        let (sub, exp) = verify_vapid(&authorization, &origin)?;
        inner
            .lock()
            .unwrap()
            .verified
            .insert(authorization.clone(), (sub.clone(), exp));
        Some(sub)
    });
    let Some(vapid_sub) = verified else {
        inner
            .lock()
            .unwrap()
            .rejected
            .push(format!("{id}: bad VAPID"));
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if header("content-encoding").as_deref() != Some("aes128gcm") {
        inner
            .lock()
            .unwrap()
            .rejected
            .push(format!("{id}: not aes128gcm"));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let components = ece::crypto::EcKeyComponents::new(private, public);
    let Ok(plain) = ece::decrypt(&components, &auth, &body) else {
        inner
            .lock()
            .unwrap()
            .rejected
            .push(format!("{id}: cannot decrypt"));
        return StatusCode::BAD_REQUEST.into_response();
    };
    let payload: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
    let accepted = (
        StatusCode::CREATED,
        [("location", format!("/messages/{}", new_id()))],
    )
        .into_response();
    let response = scripted(
        script.clone(),
        &gate,
        accepted,
        |_| json!({"error": "scripted"}),
    )
    .await;
    if response.status().is_success() {
        inner.lock().unwrap().received.push(WebPushReceived {
            subscription: id,
            ttl: header("ttl").unwrap_or_default(),
            urgency: header("urgency"),
            topic: header("topic"),
            vapid_sub,
            payload,
        });
    }
    response
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 8292: `Authorization: vapid t=<JWT>, k=<public key>`, an ES256 JWT
/// for this origin signed by `k`. Returns its subject and expiry.
fn verify_vapid(authorization: &str, origin: &str) -> Option<(String, u64)> {
    let rest = authorization.strip_prefix("vapid ")?;
    let mut t = None;
    let mut k = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = Some(v.to_owned());
        } else if let Some(v) = part.strip_prefix("k=") {
            k = Some(v.to_owned());
        }
    }
    let key = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(k?).ok()?).ok()?;
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from([origin.to_owned()])),
        ..Default::default()
    };
    let claims = key
        .verify_token::<serde_json::Map<String, Value>>(&t?, Some(options))
        .ok()?;
    let exp = claims.expires_at?.as_secs();
    let sub = claims
        .custom
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(claims.subject)?;
    Some((sub, exp))
}

// ----- FCM HTTP v1 -----

/// One message FCM accepted.
#[derive(Debug, Clone)]
pub struct FcmReceived {
    pub token: String,
    pub message: Value,
}

#[derive(Default)]
struct FcmInner {
    public_key_pem: Vec<u8>,
    issued: HashSet<String>,
    token_requests: usize,
    /// `expires_in` of issued tokens, in seconds.
    token_lifetime: u64,
    scripts: HashMap<String, VecDeque<Script>>,
    received: Vec<FcmReceived>,
}

#[derive(Clone)]
pub struct MockFcm {
    pub base: String,
    /// A service-account key file for this mock (its `token_uri` points here).
    pub key_file: std::path::PathBuf,
    _dir: Arc<tempfile::TempDir>,
    inner: Arc<Mutex<FcmInner>>,
    gate: Arc<Gate>,
}

impl MockFcm {
    pub async fn start() -> Self {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
        let private_pem = String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let inner = Arc::new(Mutex::new(FcmInner {
            public_key_pem: pkey.public_key_to_pem().unwrap(),
            token_lifetime: 3599,
            ..Default::default()
        }));
        let gate = Arc::new(Gate::default());
        let router = Router::new()
            .route("/token", post(fcm_token))
            .route("/v1/projects/{project}/messages:send", post(fcm_send))
            .with_state((inner.clone(), gate.clone()));
        let base = serve(router).await;
        let project = "kring-test".to_owned();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("service-account.json");
        let key = json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": "test-key",
            "private_key": private_pem,
            "client_email": "kring@kring-test.iam.gserviceaccount.com",
            "client_id": "1",
            // Deliberately wrong: Kring's KRING_FCM_TOKEN_URL must replace it.
            "token_uri": format!("{base}/not-the-token-endpoint"),
        });
        std::fs::write(&key_file, key.to_string()).unwrap();
        Self {
            base,
            key_file,
            _dir: Arc::new(dir),
            inner,
            gate,
        }
    }

    /// How many requests a `Script::Stall` holds right now.
    pub fn stalled(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Lets every stalled request (and every later one) be accepted.
    pub fn release(&self) {
        self.gate.released.send_replace(true);
    }

    pub fn script(&self, token: &str, steps: Vec<Script>) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(token.to_owned(), steps.into());
    }

    pub fn received(&self) -> Vec<FcmReceived> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Issue tokens that expire after this many seconds.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.inner.lock().unwrap().token_lifetime = secs;
    }

    pub fn token_requests(&self) -> usize {
        self.inner.lock().unwrap().token_requests
    }

    /// An access token as the token endpoint issues one, for a client that
    /// measures `messages:send` alone.
    pub fn issue_token(&self) -> String {
        let token = format!("ya29.mock-{}", new_id());
        self.inner.lock().unwrap().issued.insert(token.clone());
        token
    }

    pub fn received_count(&self) -> usize {
        self.inner.lock().unwrap().received.len()
    }
}

/// RFC 7523: a JWT bearer assertion signed (RS256) with the service
/// account's key, asking for the Firebase messaging scope.
async fn fcm_token(
    State((inner, _)): State<(Arc<Mutex<FcmInner>>, Arc<Gate>)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let pem = inner.lock().unwrap().public_key_pem.clone();
    let grant_ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer");
    let claims = form.get("assertion").and_then(|a| verify_rs256(a, &pem));
    let scope_ok = claims
        .as_ref()
        .and_then(|c| {
            c["scope"]
                .as_str()
                .map(|s| s.contains("firebase.messaging"))
        })
        .unwrap_or(false);
    if !grant_ok || !scope_ok {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let token = format!("ya29.mock-{}", new_id());
    let mut guard = inner.lock().unwrap();
    guard.token_requests += 1;
    guard.issued.insert(token.clone());
    let lifetime = guard.token_lifetime;
    axum::Json(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}))
        .into_response()
}

/// Checks a JWT's RS256 signature and expiry; returns its claims.
fn verify_rs256(jwt: &str, public_pem: &[u8]) -> Option<Value> {
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    // Some signers pad their base64url segments; accept both forms.
    let b64 = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok();
    let header: Value = serde_json::from_slice(&b64(header)?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    let key = openssl::pkey::PKey::public_key_from_pem(public_pem).ok()?;
    let mut verifier =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).ok()?;
    verifier
        .update(format!("{}.{}", jwt.split('.').next()?, jwt.split('.').nth(1)?).as_bytes())
        .ok()?;
    if !verifier.verify(&b64(signature)?).ok()? {
        return None;
    }
    let claims: Value = serde_json::from_slice(&b64(claims)?).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let now = i64::try_from(now).ok()?;
    (claims["exp"].as_i64()? > now).then_some(claims)
}

fn fcm_error(status: u16) -> Value {
    let (code, error_code, message) = match status {
        400 => (
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        401 => (
            "UNAUTHENTICATED",
            "THIRD_PARTY_AUTH_ERROR",
            "Request is missing required authentication credential.",
        ),
        404 => (
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        ),
        429 => ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
        503 => (
            "UNAVAILABLE",
            "UNAVAILABLE",
            "The service is currently unavailable.",
        ),
        _ => ("INTERNAL", "INTERNAL", "Internal error."),
    };
    json!({"error": {"code": status, "message": message, "status": code,
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]}})
}

async fn fcm_send(
    State((inner, gate)): State<(Arc<Mutex<FcmInner>>, Arc<Gate>)>,
    Path(project): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = body["message"]["token"].as_str().unwrap_or("").to_owned();
    let (authorised, script) = {
        let mut guard = inner.lock().unwrap();
        let ok = bearer.is_some_and(|b| guard.issued.contains(&b));
        (
            ok,
            guard.scripts.get_mut(&token).and_then(VecDeque::pop_front),
        )
    };
    if !authorised || project != "kring-test" {
        return (StatusCode::UNAUTHORIZED, axum::Json(fcm_error(401))).into_response();
    }
    let ok = axum::Json(json!({"name": format!("projects/{project}/messages/{}", new_id())}))
        .into_response();
    let response = scripted(script, &gate, ok, fcm_error).await;
    if response.status().is_success() {
        inner.lock().unwrap().received.push(FcmReceived {
            token,
            message: body,
        });
    }
    response
}
