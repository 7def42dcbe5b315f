//! The test harness: a real Kring server on port 0 with a manual clock, on a
//! fresh SQLite file or a fresh PostgreSQL database, and an HTTP client.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kring::clock::{Clock, ManualClock};
use kring::config::Config;
use kring::state::AppState;
use kring::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per backend: SQLite always, PostgreSQL when
/// `KRING_TEST_POSTGRES_URL` is set. On two worker threads, unless the
/// test names its runtime (`both_backends!(name, flavor = "current_thread")`
/// for one that reads its own logs: a thread's log subscriber sees only
/// that thread's tasks).
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        $crate::both_backends!($name, flavor = "multi_thread", worker_threads = 2);
    };
    ($name:ident, $($runtime:tt)+) => {
        mod $name {
            #[tokio::test($($runtime)+)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test($($runtime)+)]
            async fn postgres() {
                if $crate::support::postgres_url().is_none() {
                    eprintln!("KRING_TEST_POSTGRES_URL is not set; skipping the PostgreSQL run");
                    return;
                }
                super::$name($crate::support::Backend::Postgres).await;
            }
        }
    };
}

/// The committed spec, read once.
pub fn spec() -> &'static mobile_contract_tests::Spec {
    static SPEC: std::sync::LazyLock<mobile_contract_tests::Spec> =
        std::sync::LazyLock::new(mobile_contract_tests::Spec::load);
    &SPEC
}

pub fn postgres_url() -> Option<String> {
    std::env::var("KRING_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// 2026-03-02 09:00 UTC, a Monday: an arbitrary, fixed start for every test.
pub fn start_time() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().expect("valid time")
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<(String, String)>,
}

/// A response: status, headers and JSON body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a problem+json error with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "errors are problem+json"
        );
        assert_eq!(
            self.body["code"], code,
            "unexpected code; body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["type"], format!("urn:kring:problem:{code}"));
        self
    }

    pub fn str(&self, pointer: &str) -> String {
        self.body
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer} in {}", self.body))
            .to_owned()
    }

    /// The fields named in a validation problem.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// For tests that move the clock by days: access tokens that last 90 days.
    pub async fn spawn_long_tokens(backend: Backend) -> Self {
        Self::spawn_with(backend, |c| c.access_token_ttl_secs = 90 * 86_400).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_full(backend, configure, false).await
    }

    /// With the push providers the configuration names (pointing at mock services).
    pub async fn spawn_with_push(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_full(backend, configure, true).await
    }

    async fn spawn_full(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
        push_from_config: bool,
    ) -> Self {
        // RUST_LOG=kring=debug shows the server's logs beside a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (url, dir, pg_database) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("kring.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let admin = postgres_url().expect("KRING_TEST_POSTGRES_URL");
                let name = format!("kring_t_{}", kring::secrets::new_id());
                let store = Store::connect(&admin).await.expect("connect to PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(store.pool())
                    .await
                    .expect("create test database");
                store.close().await;
                let url = replace_database(&admin, &name);
                (url, None, Some((admin, name)))
            }
        };
        let mut config = Config::for_database(url.clone());
        // Tests decide when the scheduler and delivery run (run_until_idle).
        config.run_jobs = false;
        configure(&mut config);
        let store = Store::connect_with(&url, config.database_pool_size)
            .await
            .expect("connect");
        kring::migrate(&store).await.expect("migrate");
        let clock = ManualClock::new(start_time());
        let mut state = AppState::new(store, Arc::new(clock.clone()) as Arc<dyn Clock>, config);
        if push_from_config {
            state.push = Arc::new(
                kring::push::Providers::from_config(&state.config, state.clock.clone())
                    .expect("push providers"),
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            kring::serve(server_state, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        Self {
            base,
            client: reqwest::Client::new(),
            clock,
            state,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            pg_database,
        }
    }

    /// Stops the server and drops a PostgreSQL test database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.state.store.close().await;
        if let Some((admin, name)) = self.pg_database.take()
            && let Ok(store) = Store::connect(&admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(store.pool())
            .await;
            store.close().await;
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.request_with(method, path, token, body, &[]).await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method_name = method.as_str().to_owned();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
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
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        // Every problem code a test meets is one the spec documents for
        // that operation and status.
        let problem = headers
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        if problem && let Err(e) = spec().check_problem(&method_name, path, status.as_u16(), &body)
        {
            panic!("undocumented problem code: {e}");
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        self.request(Method::PUT, path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None).await
    }

    // ----- fixtures: the people of a small organisation -----

    /// Bootstraps an organisation as `kring admin create-organisation` does,
    /// and signs its coordinator in.
    pub async fn organisation(&self, name: &str, email: &str) -> Org {
        let made = kring::organisations::bootstrap(
            &self.state.store,
            self.clock.now_ms(),
            &kring::config::CreateOrganisation {
                name: name.into(),
                coordinator_email: email.into(),
                coordinator_name: "Coordinator".into(),
                locale: "nl".into(),
                time_zone: "Europe/Amsterdam".into(),
            },
        )
        .await
        .expect("bootstrap");
        let r = self
            .post(
                "/v1/auth/setup",
                None,
                json!({"code": made.setup_code, "password": PASSWORD}),
            )
            .await
            .expect(200);
        Org {
            id: made.organisation_id,
            coordinator: Person::from_auth(&r),
        }
    }

    /// A coordinator adds a worker, who sets a password with the setup code.
    pub async fn worker(&self, org: &Org, email: &str) -> Person {
        let r = self
            .post(
                "/v1/organisation/staff",
                Some(&org.coordinator.access),
                json!({"role": "worker", "email": email, "display_name": "Worker", "time_zone": "Europe/Amsterdam"}),
            )
            .await
            .expect(201);
        let code = r.str("/setup_code");
        let r = self
            .post(
                "/v1/auth/setup",
                None,
                json!({"code": code, "password": PASSWORD}),
            )
            .await
            .expect(200);
        Person::from_auth(&r)
    }

    /// A worker creates a circle with default settings.
    pub async fn circle(&self, worker: &Person, name: &str) -> String {
        self.post("/v1/circles", Some(&worker.access), json!({"name": name}))
            .await
            .expect(201)
            .str("/id")
    }

    pub async fn invite(&self, staff: &Person, circle_id: &str, max_uses: i64) -> String {
        self.post(
            &format!("/v1/circles/{circle_id}/invites"),
            Some(&staff.access),
            json!({"max_uses": max_uses}),
        )
        .await
        .expect(201)
        .str("/code")
    }

    /// A new member joins with a fresh invite.
    pub async fn member(&self, staff: &Person, circle_id: &str, pseudonym: &str) -> Person {
        let code = self.invite(staff, circle_id, 1).await;
        // As an app does: show the agreement from the preview, consent to its version.
        let version = self
            .get(&format!("/v1/invites/{code}"), None)
            .await
            .expect(200)
            .body["agreement"]["version"]
            .clone();
        let r = self
            .post(
                "/v1/join",
                None,
                json!({"code": code, "pseudonym": pseudonym, "consent_version": version, "time_zone": "Europe/Amsterdam"}),
            )
            .await
            .expect(201);
        let mut p = Person::from_auth(&r);
        p.membership_id = Some(r.str("/membership/id"));
        p
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let slash = base.rfind('/').expect("database URL with a path");
    let replaced = format!("{}/{}", &base[..slash], name);
    match query {
        Some(q) => format!("{replaced}?{q}"),
        None => replaced,
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Org {
    pub id: String,
    pub coordinator: Person,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub account_id: String,
    pub access: String,
    pub refresh: String,
    pub membership_id: Option<String>,
}

impl Person {
    pub fn from_auth(r: &Resp) -> Self {
        Self {
            account_id: r.str("/account/id"),
            access: r.str("/tokens/access_token"),
            refresh: r.str("/tokens/refresh_token"),
            membership_id: None,
        }
    }

    pub fn token(&self) -> Option<&str> {
        Some(&self.access)
    }

    pub fn membership(&self) -> &str {
        self.membership_id.as_deref().expect("a member")
    }
}
