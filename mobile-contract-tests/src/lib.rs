//! The harness for Kring's contract tests, as a phone app sees the API.
//!
//! - [`Server`] starts the real `kring` binary on a free port with a fresh
//!   SQLite file (or PostgreSQL database) and the test clock switched on.
//! - [`Spec`] reads only the committed `openapi/openapi.json` and checks every
//!   response: its status must be documented for the operation, and its body
//!   must match the documented schema.
//! - [`App`] is the client: it makes requests and checks each response.
//!
//! Nothing here imports Kring's Rust types: the spec is the contract.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// The committed spec.
pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
        let text = std::fs::read_to_string(&path).expect("openapi/openapi.json");
        Self {
            doc: serde_json::from_str(&text).expect("the spec is JSON"),
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
            .map_err(|e| format!("{name}: {e}"))
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

    /// The named component schema, e.g. `PushPayload`.
    pub fn schema(&self, name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
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

impl Server {
    pub async fn start(backend: Backend) -> Self {
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
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let child = tokio::process::Command::new(kring_binary())
            .arg("serve")
            .env("KRING_BIND", format!("127.0.0.1:{port}"))
            .env("KRING_DATABASE_URL", &database_url)
            .env("KRING_TEST_CLOCK", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the kring binary (built by `cargo test --workspace`)");
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
}

impl App {
    pub fn new(server: &Server) -> Self {
        Self {
            base: server.base.clone(),
            client: reqwest::Client::new(),
            spec: Spec::load(),
            checked: std::cell::Cell::new(0),
        }
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
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
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

    /// Moves the server's test clock and lets its jobs run.
    pub async fn advance(&self, seconds: i64) {
        let r = self
            .client
            .post(format!("{}/test/clock", self.base))
            .json(&json!({"advance_seconds": seconds}))
            .send()
            .await
            .expect("test clock");
        assert_eq!(r.status(), 200, "the server runs with KRING_TEST_CLOCK");
    }
}
