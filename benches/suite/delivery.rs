//! Delivery throughput: messages written to the outbox by the real producer,
//! then sent by the real delivery workers to local push services (real
//! aes128gcm, VAPID, OAuth, and APNs over HTTP/2 with TLS and provider
//! tokens), every outcome recorded in the database.
//! Beside: the services' raw capacity (prepared requests replayed at the same
//! concurrency) and, for Web Push, the Node `web-push` library.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kring::clock::{Clock, SystemClock};
use kring::config::Config;
use kring::notifications::produce::{Outgoing, notify};
use kring::notifications::texts::TextParams;
use kring::push::Providers;
use kring::push::payload::NotificationKind;
use kring::state::AppState;
use kring::store::Store;
use push_mocks::{MockApns, MockFcm, MockWebPush, Subscription};
use serde_json::json;

use crate::report::{Line, Report, median};

/// Recipients; each has one device and gets messages in turn.
const ACCOUNTS: usize = 100;

struct Mocks {
    webpush: MockWebPush,
    fcm: MockFcm,
    apns: MockApns,
}

/// The push services run on a runtime of their own, as they would in
/// another process.
fn start_mocks() -> Mocks {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio");
        runtime.block_on(async {
            let mocks = Mocks {
                webpush: MockWebPush::start().await,
                fcm: MockFcm::start().await,
                apns: MockApns::start().await,
            };
            tx.send(mocks).expect("hand over");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the mocks started")
}

pub async fn run(report: &mut Report, rounds: usize) {
    let messages: usize = crate::env_or("KRING_BENCH_MESSAGES", 5_000);
    let mocks = start_mocks();
    let node = node_ready();
    let subscriptions: Vec<Subscription> =
        (0..ACCOUNTS).map(|_| mocks.webpush.subscribe()).collect();
    let (vapid_private, vapid_public) =
        kring::push::webpush::generate_vapid_keys().expect("VAPID keys");
    let mut config = Config::for_database("sqlite://unused");
    config.webpush_allowed_hosts = "127.0.0.1".into();
    config.webpush_allow_http = true;
    config.vapid_private_key = Some(vapid_private.clone());
    config.vapid_subject = "mailto:ops@kring.example".into();
    config.fcm_service_account_file = Some(mocks.fcm.key_file.clone());
    config.fcm_token_url = Some(format!("{}/token", mocks.fcm.base));
    config.fcm_base_url = mocks.fcm.base.clone();
    config.apns_key_file = Some(mocks.apns.key_file.clone());
    config.apns_key_id = Some(mocks.apns.key_id.clone());
    config.apns_team_id = Some(mocks.apns.team_id.clone());
    config.apns_base_url = mocks.apns.base.clone();
    config.apns_extra_ca_file = Some(mocks.apns.ca_file.clone());
    let apns_tokens: Vec<String> = (0..ACCOUNTS).map(|_| mocks.apns.device_token()).collect();
    let concurrency = config.push_concurrency;

    let (mut web_kring, mut web_raw, mut web_node) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fcm_kring, mut fcm_raw) = (Vec::new(), Vec::new());
    let (mut apns_kring, mut apns_raw) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        web_kring.push(kring_rate(&config, Kind::WebPush(&subscriptions), &mocks, messages).await);
        web_raw.push(raw_webpush(&config, &subscriptions, messages).await);
        if let Some(dir) = &node {
            web_node.push(node_rate(
                dir,
                &subscriptions,
                &vapid_private,
                &vapid_public,
                messages,
                concurrency,
            ));
        }
        fcm_kring.push(kring_rate(&config, Kind::Fcm, &mocks, messages).await);
        fcm_raw.push(raw_fcm(&mocks.fcm, concurrency, messages).await);
        let connections = mocks.apns.connections();
        apns_kring.push(kring_rate(&config, Kind::Apns(&apns_tokens), &mocks, messages).await);
        assert_eq!(
            mocks.apns.connections() - connections,
            1,
            "Kring multiplexes every APNs request over one HTTP/2 connection"
        );
        apns_raw.push(raw_apns(&mocks.apns, concurrency, messages).await);
        eprintln!(
            "delivery round {}: webpush {:.0}/s (raw {:.0}/s, node {}), fcm {:.0}/s (raw {:.0}/s), apns {:.0}/s (raw {:.0}/s)",
            round + 1,
            web_kring[round],
            web_raw[round],
            web_node
                .get(round)
                .map_or_else(|| "skipped".to_owned(), |r: &f64| format!("{r:.0}/s")),
            fcm_kring[round],
            fcm_raw[round],
            apns_kring[round],
            apns_raw[round]
        );
    }
    let rejected = mocks.webpush.rejected();
    assert!(
        rejected.is_empty(),
        "the Web Push service refused: {rejected:?}"
    );
    let rejected = mocks.apns.rejected();
    assert!(rejected.is_empty(), "APNs refused: {rejected:?}");

    let web = median(&web_kring);
    let raw = median(&web_raw);
    report.add(Line {
        area: "delivery",
        what: format!("Web Push, {messages} messages, concurrency {concurrency}"),
        value: format!("{web:.0}/s"),
        baseline: format!("mock raw capacity {raw:.0}/s"),
        ratio: Some(web / raw),
        target: "≥ 2,000/s".into(),
        met: Some(web >= 2000.0),
    });
    if !web_node.is_empty() {
        let node = median(&web_node);
        report.add(Line {
            area: "delivery",
            what: "Web Push, Kring beside Node web-push 3.6.7".into(),
            value: format!("{web:.0}/s"),
            baseline: format!("Node web-push {node:.0}/s"),
            ratio: Some(web / node),
            target: "ahead of Node (ratio > 1)".into(),
            met: Some(web > node),
        });
    }
    let fcm = median(&fcm_kring);
    let raw = median(&fcm_raw);
    report.add(Line {
        area: "delivery",
        what: format!("FCM HTTP v1, {messages} messages, concurrency {concurrency}"),
        value: format!("{fcm:.0}/s"),
        baseline: format!("mock raw capacity {raw:.0}/s"),
        ratio: Some(fcm / raw),
        target: "≥ 5,000/s".into(),
        met: Some(fcm >= 5000.0),
    });
    let apns = median(&apns_kring);
    let raw = median(&apns_raw);
    report.add(Line {
        area: "delivery",
        what: format!(
            "APNs (HTTP/2, one connection), {messages} messages, concurrency {concurrency}"
        ),
        value: format!("{apns:.0}/s"),
        baseline: format!("mock raw capacity {raw:.0}/s"),
        ratio: Some(apns / raw),
        target: "≥ 5,000/s".into(),
        met: Some(apns >= 5000.0),
    });
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    WebPush(&'a [Subscription]),
    Fcm,
    /// Device tokens the APNs mock issued.
    Apns(&'a [String]),
}

/// Deliveries per second through Kring: a fresh database, `messages`
/// personal messages produced in one transaction, then the delivery workers
/// until the outbox is empty.
async fn kring_rate(config: &Config, kind: Kind<'_>, mocks: &Mocks, messages: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("delivery.db").display());
    let store = Store::connect(&url).await.expect("connect");
    kring::migrate(&store).await.expect("migrate");
    let mut config = config.clone();
    config.database_url = Some(url);
    let mut state = AppState::new(
        store.clone(),
        Arc::new(SystemClock) as Arc<dyn Clock>,
        config.clone(),
    );
    state.push = Arc::new(Providers::from_config(&config, state.clock.clone()).expect("providers"));
    let now = state.now_ms();
    seed_devices(&store, kind, now).await;
    let mut tx = store.begin().await.expect("tx");
    for i in 0..messages {
        let out = Outgoing {
            account_id: format!("a{}", i % ACCOUNTS),
            kind: NotificationKind::PersonalMessage,
            params: TextParams {
                circle_name: "Samen sterk".into(),
                actor: "Sam".into(),
                reaction: None,
                message: Some("Hoe gaat het deze week?".into()),
                count: 1,
                ..Default::default()
            },
            circle_id: None,
            post_id: None,
            membership_id: None,
            alert_id: None,
            deliver_at: Some(now),
            inbox_only: false,
        };
        notify(&mut tx, now, &out).await.expect("notify");
    }
    tx.commit().await.expect("commit");
    let received = || match kind {
        Kind::WebPush(_) => mocks.webpush.received_count(),
        Kind::Fcm => mocks.fcm.received_count(),
        Kind::Apns(_) => mocks.apns.received_count(),
    };
    let before = received();
    let started = Instant::now();
    let sent = kring::jobs::delivery::run_until_idle(&state)
        .await
        .expect("deliver");
    let elapsed = started.elapsed().as_secs_f64();
    let delivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .fetch_one(store.pool())
            .await
            .expect("count");
    let received = received() - before;
    assert_eq!(
        (sent, usize::try_from(delivered).unwrap_or(0), received),
        (messages, messages, messages),
        "every message sent, recorded delivered and received"
    );
    store.close().await;
    messages as f64 / elapsed
}

async fn seed_devices(store: &Store, kind: Kind<'_>, now: i64) {
    let mut tx = store.begin().await.expect("tx");
    sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ('o', 'Bench', $1)")
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("organisation");
    for i in 0..ACCOUNTS {
        sqlx::query(
            "INSERT INTO accounts (id, organisation_id, role, locale, time_zone, created_at)
             VALUES ($1, 'o', 'member', 'nl', 'Europe/Amsterdam', $2)",
        )
        .bind(format!("a{i}"))
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("account");
        let (kind_name, token, p256dh, auth) = match kind {
            Kind::WebPush(subs) => (
                "webpush",
                subs[i].endpoint.clone(),
                Some(subs[i].p256dh.clone()),
                Some(subs[i].auth.clone()),
            ),
            Kind::Fcm => ("fcm", format!("fcm-registration-token-{i:04}"), None, None),
            Kind::Apns(tokens) => ("apns", tokens[i].clone(), None, None),
        };
        let (topic, environment) = match kind {
            Kind::Apns(_) => (Some("nl.kring.app"), Some("production")),
            _ => (None, None),
        };
        sqlx::query(
            "INSERT INTO devices (id, account_id, kind, token_key, token, webpush_p256dh, webpush_auth,
                                  apns_topic, apns_environment, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(format!("d{i}"))
        .bind(format!("a{i}"))
        .bind(kind_name)
        .bind(kring::secrets::hash_token(&token))
        .bind(&token)
        .bind(p256dh)
        .bind(auth)
        .bind(topic)
        .bind(environment)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("device");
    }
    tx.commit().await.expect("commit");
}

/// The Web Push service's capacity: one prepared (encrypted, signed)
/// request per subscription, replayed `messages` times in all.
async fn raw_webpush(config: &Config, subscriptions: &[Subscription], messages: usize) -> f64 {
    let provider = kring::push::webpush::WebPushProvider::new(
        config.vapid_private_key.as_deref().unwrap_or_default(),
        &config.vapid_subject,
        Duration::from_secs(10),
    )
    .expect("provider");
    let message = sample_message();
    let prepared: Vec<reqwest::Request> = subscriptions
        .iter()
        .map(|s| {
            provider
                .request(&message, &s.endpoint, &s.p256dh, &s.auth)
                .expect("request")
        })
        .collect();
    replay(
        reqwest::Client::new(),
        config.push_concurrency,
        messages,
        move |i| {
            prepared[i % prepared.len()]
                .try_clone()
                .expect("a byte body")
        },
    )
    .await
}

/// FCM's capacity: `messages:send` with a valid token and a fixed body.
async fn raw_fcm(fcm: &MockFcm, concurrency: usize, messages: usize) -> f64 {
    let client = reqwest::Client::new();
    let token = fcm.issue_token();
    let url = format!("{}/v1/projects/kring-test/messages:send", fcm.base);
    replay(client.clone(), concurrency, messages, move |i| {
        client
            .post(&url)
            .bearer_auth(&token)
            .json(
                &json!({"message": {"token": format!("fcm-registration-token-{:04}", i % ACCOUNTS),
                "data": {"kind": "personal_message", "title": "Sam stuurde je een bericht"}}}),
            )
            .build()
            .expect("request")
    })
    .await
}

/// APNs's capacity: the same request Kring makes (headers, body, one
/// provider token) to each device in turn, over one HTTP/2 connection.
async fn raw_apns(apns: &MockApns, concurrency: usize, messages: usize) -> f64 {
    let tokens: Vec<String> = (0..ACCOUNTS).map(|_| apns.device_token()).collect();
    let ca = std::fs::read(&apns.ca_file).expect("the CA file");
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a PEM certificate"))
        .build()
        .expect("client");
    let now = jiff::Timestamp::now().as_second();
    let bearer = format!("bearer {}", apns.provider_token(now));
    let message = sample_message();
    let headers = kring::push::apns::apns_headers(&message, &apns.topic, now);
    let body = serde_json::to_vec(&kring::push::apns::apns_body(&message)).expect("body");
    let base = apns.base.clone();
    replay(client.clone(), concurrency, messages, move |i| {
        let mut request = client
            .post(format!("{base}/3/device/{}", tokens[i % ACCOUNTS]))
            .header("authorization", &bearer)
            .body(body.clone());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        request.build().expect("request")
    })
    .await
}

/// Sends `messages` requests, `concurrency` at a time; returns requests/s.
async fn replay(
    client: reqwest::Client,
    concurrency: usize,
    messages: usize,
    make: impl Fn(usize) -> reqwest::Request,
) -> f64 {
    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..messages {
        if in_flight.len() >= concurrency {
            let status = in_flight.join_next().await.expect("a send").expect("join");
            assert!(status < 300, "the service refused: {status}");
        }
        let request = make(i);
        let client = client.clone();
        in_flight.spawn(async move {
            client
                .execute(request)
                .await
                .map_or(599, |r| r.status().as_u16())
        });
    }
    while let Some(status) = in_flight.join_next().await {
        let status = status.expect("join");
        assert!(status < 300, "the service refused: {status}");
    }
    messages as f64 / started.elapsed().as_secs_f64()
}

fn sample_message() -> kring::push::PushMessage {
    kring::push::PushMessage {
        payload: serde_json::from_value(json!({
            "kind": "personal_message", "notification_id": "n1", "circle_id": null,
            "post_id": null, "membership_id": null, "alert_id": null,
            "deep_link": "kring://inbox", "locale": "nl",
            "title": "Sam stuurde je een bericht", "body": "Hoe gaat het deze week?",
            "badge": 1, "actions": ["im_ok"]
        }))
        .expect("a payload"),
        ttl: Duration::from_secs(86_400),
        urgency: kring::push::Urgency::High,
        collapse_key: None,
        thread_id: None,
    }
}

/// The Node baseline's folder, with `web-push` installed (npm, once).
fn node_ready() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/suite/node");
    if !dir.join("node_modules/web-push").exists() {
        let installed = std::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        if !installed.is_ok_and(|s| s.success()) {
            eprintln!("delivery: npm install web-push failed; the Node baseline is skipped");
            return None;
        }
    }
    Some(dir)
}

/// The same number of messages to the same service by Node's web-push.
fn node_rate(
    dir: &Path,
    subscriptions: &[Subscription],
    private: &str,
    public: &str,
    messages: usize,
    concurrency: usize,
) -> f64 {
    let payload = serde_json::to_string(&sample_message().payload).expect("payload");
    let config = json!({
        "subject": "mailto:ops@kring.example",
        "publicKey": public,
        "privateKey": private,
        "subscriptions": subscriptions.iter().map(|s| json!({
            "endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}
        })).collect::<Vec<_>>(),
        "count": messages,
        "concurrency": concurrency,
        "payload": payload,
    });
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), config.to_string()).expect("write");
    let out = std::process::Command::new("node")
        .arg(dir.join("webpush.mjs"))
        .arg(file.path())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "node web-push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("node's result");
    messages as f64 / (result["ms"].as_f64().expect("ms") / 1000.0)
}
