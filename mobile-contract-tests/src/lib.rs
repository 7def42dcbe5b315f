//! The harness for Kring's contract tests, as a phone app sees the API.
//!
//! - [`Server`] starts the real `kring` binary on a free port with a fresh
//!   SQLite file (or PostgreSQL database) and the test clock switched on.
//! - [`Spec`] reads only the committed `openapi/openapi.json` and checks every
//!   response: its status must be documented for the operation, and its body
//!   must match the documented schema.
//! - [`App`] is the client: it makes requests and checks each response.
//! - [`PushInbox`] is a phone's view of push: a Web Push subscription on a
//!   local push service (real VAPID and aes128gcm), or an iPhone's device
//!   token on a local APNs (HTTP/2, TLS, provider tokens), both from the
//!   `push-mocks` crate. Every message is checked against the committed push
//!   payload schema, `openapi/push-payload.schema.json` (for APNs: the keys
//!   beside `aps`, and `aps` against the payload).
//!
//! Nothing here imports Kring's Rust types: the spec is the contract.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// A committed file of `openapi/`, parsed.
fn committed(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../openapi")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// Every way `value` breaks the schema, in one message.
fn validate_with(validator: &jsonschema::Validator, value: &Value) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The committed spec.
pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Self {
        Self {
            doc: committed("openapi.json"),
        }
    }

    /// The path template and operation that serve `method path`.
    pub fn operation(&self, method: &str, path: &str) -> Option<(String, &Value)> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        // Literal segments win over parameters (`/v1/me/im-ok` before `/v1/{x}/…`).
        let mut best: Option<(usize, String, &Value)> = None;
        for (template, item) in paths {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let matches = parts.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') {
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if matches
                && let Some(op) = item.get(method.to_lowercase())
                && best.as_ref().is_none_or(|(l, _, _)| literal > *l)
            {
                best = Some((literal, template.clone(), op));
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.trim_start_matches('#');
            v = self.doc.pointer(pointer).unwrap_or(&Value::Null);
        }
        v
    }

    /// Checks one response against the operation's documented responses.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &Value,
    ) -> Result<(), String> {
        let (template, op) = self
            .operation(method, path)
            .ok_or_else(|| format!("{method} {path} is not in the spec"))?;
        let name = format!("{method} {template} → {status}");
        let response = op["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("{name}: status not documented"))?;
        let response = self.resolve(response);
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(format!("{name}: a body where none is documented"))
            };
        };
        let ct = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let media = content.get(ct).ok_or_else(|| {
            format!(
                "{name}: content type {ct:?} not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            )
        })?;
        let Some(schema) = media.get("schema") else {
            return Ok(());
        };
        self.validate(schema, body)
            .map_err(|e| format!("{name}: {e}"))?;
        if ct == "application/problem+json" {
            self.check_problem(method, path, status, body)?;
        }
        Ok(())
    }

    /// Checks that a problem's `code` is documented: among the codes the
    /// operation lists for this status (`x-problem-codes` on the response),
    /// or among those any request can meet (`x-problem-codes` at the root).
    /// A request that reaches no operation (an unknown path or method) is
    /// not checked here.
    pub fn check_problem(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let code = body["code"].as_str().unwrap_or_default();
        let listed = |codes: &Value| {
            codes
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == code))
        };
        if listed(&self.doc["x-problem-codes"]) {
            return Ok(());
        }
        let Some((template, op)) = self.operation(method, path) else {
            return Ok(());
        };
        let name = format!("{method} {template} → {status}");
        let response = op["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .ok_or_else(|| format!("{name}: status not documented (code {code:?})"))?;
        if listed(&response["x-problem-codes"]) {
            Ok(())
        } else {
            Err(format!(
                "{name}: code {code:?} is not among the documented codes {}",
                response["x-problem-codes"]
            ))
        }
    }

    /// Validates a value against a schema of the spec (its `$ref`s resolve
    /// within the spec's components).
    pub fn validate(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&root).map_err(|e| format!("bad schema: {e}"))?;
        validate_with(&validator, value)
    }

    /// The named component schema, e.g. `PushPayload`.
    pub fn schema(&self, name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
}

/// The committed push payload schema, `openapi/push-payload.schema.json`.
pub struct PushPayloadSchema {
    validator: jsonschema::Validator,
}

impl PushPayloadSchema {
    pub fn load() -> Self {
        let schema = committed("push-payload.schema.json");
        Self {
            validator: jsonschema::validator_for(&schema).expect("a valid JSON Schema"),
        }
    }

    pub fn check(&self, payload: &Value) -> Result<(), String> {
        validate_with(&self.validator, payload)
    }
}

/// A local Web Push service and a local APNs the server may send to.
pub struct PushService {
    mock: push_mocks::MockWebPush,
    apns: push_mocks::MockApns,
    schema: PushPayloadSchema,
}

impl PushService {
    pub async fn start() -> Self {
        Self {
            mock: push_mocks::MockWebPush::start().await,
            apns: push_mocks::MockApns::start().await,
            schema: PushPayloadSchema::load(),
        }
    }

    /// A new phone (a PWA): its subscription on the Web Push service.
    pub fn phone(&self) -> PushInbox<'_> {
        PushInbox {
            service: self,
            device: Phone::WebPush(self.mock.subscribe()),
            seen: std::cell::Cell::new(0),
        }
    }

    /// A new iPhone: its production device token for the app `nl.kring.app`.
    pub fn iphone(&self) -> PushInbox<'_> {
        PushInbox {
            service: self,
            device: Phone::Apns(self.apns.device_token()),
            seen: std::cell::Cell::new(0),
        }
    }

    /// What the server needs to reach both services.
    fn server_env(&self, vapid_private_key: String) -> Vec<(&'static str, String)> {
        let path = |p: &std::path::Path| p.display().to_string();
        vec![
            ("KRING_VAPID_PRIVATE_KEY", vapid_private_key),
            ("KRING_VAPID_SUBJECT", "mailto:ops@kring.example".into()),
            ("KRING_WEBPUSH_ALLOWED_HOSTS", "127.0.0.1".into()),
            ("KRING_WEBPUSH_ALLOW_HTTP", "true".into()),
            ("KRING_APNS_KEY_FILE", path(&self.apns.key_file)),
            ("KRING_APNS_KEY_ID", self.apns.key_id.clone()),
            ("KRING_APNS_TEAM_ID", self.apns.team_id.clone()),
            ("KRING_APNS_BASE_URL", self.apns.base.clone()),
            ("KRING_APNS_SANDBOX_BASE_URL", self.apns.base.clone()),
            ("KRING_APNS_EXTRA_CA_FILE", path(&self.apns.ca_file)),
        ]
    }
}

enum Phone {
    WebPush(push_mocks::Subscription),
    /// The device token.
    Apns(String),
}

/// One phone's pushes, as its app receives them.
pub struct PushInbox<'a> {
    service: &'a PushService,
    device: Phone,
    seen: std::cell::Cell<usize>,
}

impl PushInbox<'_> {
    /// The body of `POST /v1/devices` for this phone.
    pub fn device(&self) -> Value {
        match &self.device {
            Phone::WebPush(subscription) => json!({
                "kind": "webpush",
                "endpoint": subscription.endpoint,
                "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
                "label": "Contract test phone",
            }),
            Phone::Apns(token) => json!({
                "kind": "apns",
                "token": token,
                "topic": self.service.apns.topic,
                "environment": "production",
                "label": "Contract test iPhone",
            }),
        }
    }

    /// Pushes that arrived since the last call, each checked against the
    /// push payload schema: the decrypted Web Push body, or the APNs JSON
    /// (`aps` and the payload beside it).
    pub fn take(&self) -> Vec<Value> {
        let mine: Vec<Value> = match &self.device {
            Phone::WebPush(subscription) => {
                let rejected = self.service.mock.rejected();
                assert!(
                    rejected.is_empty(),
                    "the push service refused messages: {rejected:?}"
                );
                self.service
                    .mock
                    .received()
                    .into_iter()
                    .filter(|m| m.subscription == subscription.id)
                    .map(|m| m.payload)
                    .collect()
            }
            Phone::Apns(token) => {
                let rejected = self.service.apns.rejected();
                assert!(rejected.is_empty(), "APNs refused messages: {rejected:?}");
                self.service
                    .apns
                    .received()
                    .into_iter()
                    .filter(|m| m.token == *token)
                    .map(|m| m.payload)
                    .collect()
            }
        };
        let new = mine[self.seen.get()..].to_vec();
        self.seen.set(mine.len());
        for payload in &new {
            let checked = match &self.device {
                Phone::WebPush(_) => self.service.schema.check(payload),
                Phone::Apns(_) => check_apns(&self.service.schema, payload),
            };
            if let Err(e) = checked {
                panic!("push payload does not conform: {e}\npayload: {payload}");
            }
        }
        new
    }
}

/// An APNs body: the keys beside `aps` are the documented payload, and
/// `aps` shows it (alert, badge, the circle as thread, "I'm OK" category).
fn check_apns(schema: &PushPayloadSchema, body: &Value) -> Result<(), String> {
    let mut payload = body.clone();
    let aps = payload
        .as_object_mut()
        .and_then(|o| o.remove("aps"))
        .ok_or("no aps")?;
    schema.check(&payload)?;
    let expect = |what: &str, got: &Value, want: &Value| {
        if got == want {
            Ok(())
        } else {
            Err(format!("aps {what} is {got}, the payload says {want}"))
        }
    };
    expect("alert.title", &aps["alert"]["title"], &payload["title"])?;
    expect("alert.body", &aps["alert"]["body"], &payload["body"])?;
    expect("badge", &aps["badge"], &payload["badge"])?;
    expect("thread-id", &aps["thread-id"], &payload["circle_id"])?;
    let im_ok = payload["actions"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("im_ok")));
    let category = if im_ok {
        json!("KRING_IM_OK")
    } else {
        Value::Null
    };
    expect("category", &aps["category"], &category)
}

/// A running `kring serve`.
pub struct Server {
    pub base: String,
    child: tokio::process::Child,
    database_url: String,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// The `kring` binary the workspace built next to this test.
pub fn kring_binary() -> PathBuf {
    if let Ok(path) = std::env::var("KRING_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/<profile>/kring
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("kring")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> Option<String> {
    std::env::var("KRING_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Reads the server's JSON log until "kring is serving" and returns its
/// address as a base URL; then keeps draining the log so the server never
/// blocks on a full pipe.
async fn serving_address(stderr: tokio::process::ChildStderr) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["fields"]["message"] == "kring is serving" {
                return entry["fields"]["address"].as_str().map(str::to_owned);
            }
        }
        None
    };
    let address = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .ok()
        .flatten()
        .expect("kring logs the address it serves on");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    format!("http://{address}")
}

/// A VAPID private key, as `kring vapid-keys` makes one.
fn vapid_private_key() -> String {
    let out = std::process::Command::new(kring_binary())
        .arg("vapid-keys")
        .output()
        .expect("kring vapid-keys");
    assert!(out.status.success(), "kring vapid-keys");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("KRING_VAPID_PRIVATE_KEY=")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no private key in {text}"))
}

impl Server {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, None).await
    }

    /// A server that sends Web Push to `push` (allowed over http on
    /// 127.0.0.1, with fresh VAPID keys) and APNs to its local APNs
    /// (trusting its test CA).
    pub async fn start_with_push(backend: Backend, push: &PushService) -> Self {
        Self::start_with(backend, Some(push)).await
    }

    async fn start_with(backend: Backend, push: Option<&PushService>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("kring.db").display()),
                None,
            ),
            Backend::Postgres => {
                let admin = postgres_url().expect("KRING_TEST_POSTGRES_URL");
                let name = format!("kring_contract_{}", free_port());
                let ok = std::process::Command::new("psql")
                    .args([&admin, "-qc", &format!("CREATE DATABASE {name}")])
                    .status()
                    .expect("psql");
                assert!(ok.success(), "create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin.clone());
                (format!("{base}/{name}"), Some((admin, name)))
            }
        };
        let mut command = tokio::process::Command::new(kring_binary());
        if let Some(push) = push {
            command.envs(push.server_env(vapid_private_key()));
        }
        // Port 0: the server takes a free port and logs the address it got.
        let mut child = command
            .arg("serve")
            .env("KRING_BIND", "127.0.0.1:0")
            .env("KRING_DATABASE_URL", &database_url)
            .env("KRING_TEST_CLOCK", "true")
            .env("KRING_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,kring=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the kring binary (built by `cargo test --workspace`)");
        let base = serving_address(child.stderr.take().expect("stderr")).await;
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return Self {
                    base,
                    child,
                    database_url,
                    pg,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("kring did not become ready");
    }

    /// `kring admin create-organisation`, as an operator runs it; returns
    /// the setup code.
    pub fn create_organisation(&self, name: &str, email: &str) -> String {
        let out = std::process::Command::new(kring_binary())
            .args([
                "admin",
                "create-organisation",
                "--name",
                name,
                "--coordinator-email",
                email,
                "--coordinator-name",
                "Anna",
            ])
            .env("KRING_DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "error")
            .output()
            .expect("kring admin");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("setup_code:").map(|c| c.trim().to_owned()))
            .expect("a setup code")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some((admin, name)) = self.pg.take() {
            let _ = std::process::Command::new("psql")
                .args([
                    &admin,
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .status();
        }
    }
}

/// A response, already checked against the spec.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn str(&self, pointer: &str) -> String {
        self.body
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {pointer} in {}", self.body))
            .to_owned()
    }
}

/// A client that checks every response against the spec.
pub struct App {
    pub base: String,
    client: reqwest::Client,
    spec: Spec,
    /// How many responses were checked.
    pub checked: std::cell::Cell<usize>,
    /// Sessions kept fresh, as an app does: the first access token →
    /// (the current access token, the current refresh token).
    sessions: std::cell::RefCell<std::collections::HashMap<String, (String, String)>>,
}

impl App {
    pub fn new(server: &Server) -> Self {
        Self {
            base: server.base.clone(),
            client: reqwest::Client::new(),
            spec: Spec::load(),
            checked: std::cell::Cell::new(0),
            sessions: Default::default(),
        }
    }

    /// From now on, when `access` (or its successor) answers 401
    /// `token_expired`, refresh the session and retry, as an app does.
    pub fn keep_fresh(&self, access: &str, refresh: &str) {
        self.sessions
            .borrow_mut()
            .insert(access.to_owned(), (access.to_owned(), refresh.to_owned()));
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let kept = token.and_then(|t| self.sessions.borrow().get(t).cloned());
        let Some((access, refresh)) = kept else {
            return self.send(method, path, token, body, headers).await;
        };
        let first = self
            .send(method, path, Some(&access), body.clone(), headers)
            .await;
        if first.status != 401 || first.body["code"] != "token_expired" {
            return first;
        }
        let pair = self
            .send(
                "POST",
                "/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": refresh})),
                &[],
            )
            .await;
        assert_eq!(pair.status, 200, "refresh: {}", pair.body);
        let fresh = (pair.str("/access_token"), pair.str("/refresh_token"));
        self.sessions
            .borrow_mut()
            .insert(token.unwrap_or_default().to_owned(), fresh.clone());
        self.send(method, path, Some(&fresh.0), body, headers).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
        // Text (a CSV report) is kept as a JSON string, as its schema says.
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else if ct.is_some_and(|ct| ct.starts_with("text/")) {
            Value::String(String::from_utf8(bytes.to_vec()).expect("UTF-8 text"))
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        if let Err(e) = self.spec.check(method, path, status, ct, &body) {
            panic!("response does not conform: {e}\nbody: {body}");
        }
        self.checked.set(self.checked.get() + 1);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None, &[]).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call("POST", path, token, Some(body), &[]).await
    }

    /// Moves the server's test clock and lets its jobs run; returns the
    /// server's new time (RFC 3339).
    pub async fn advance(&self, seconds: i64) -> String {
        self.move_clock(json!({"advance_seconds": seconds})).await
    }

    /// Jumps the server's test clock forward to an RFC 3339 time.
    pub async fn set_clock(&self, at: &str) -> String {
        self.move_clock(json!({"set": at})).await
    }

    async fn move_clock(&self, body: Value) -> String {
        let r = self
            .client
            .post(format!("{}/test/clock", self.base))
            .json(&body)
            .send()
            .await
            .expect("test clock");
        assert_eq!(r.status(), 200, "the server runs with KRING_TEST_CLOCK");
        let moved: Value = r.json().await.expect("the clock's answer");
        moved["now"].as_str().expect("now").to_owned()
    }
}
