//! Sign-in under a burst: 200 logins at once against the release `kring`
//! binary, and its memory before, at the peak, right after and a minute
//! later (each Argon2id hash holds 19 MiB while it runs); then 200 wrong
//! passwords for random names from one address, which the per-address
//! throttle must stop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kring::store::Store;

use crate::api::{free_port, stop, wait_ready};
use crate::report::{Line, Report, rss_mib};

const LOGINS: usize = 200;
const PASSWORD: &str = "lang genoeg wachtwoord";

pub async fn run(report: &mut Report) {
    let settle: u64 = crate::env_or("KRING_BENCH_SIGNIN_SETTLE_SECS", 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("signin.db").display());
    let store = Store::connect(&url).await.expect("connect");
    kring::migrate(&store).await.expect("migrate");
    let now = jiff::Timestamp::now().as_millisecond();
    let hash = kring::secrets::hash_password(PASSWORD).expect("hash");
    sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ('o', 'Bench', $1)")
        .bind(now)
        .execute(store.pool())
        .await
        .expect("organisation");
    for i in 0..LOGINS {
        sqlx::query(
            "INSERT INTO accounts (id, organisation_id, role, login_name, password_hash, locale, time_zone, created_at)
             VALUES ($1, 'o', 'member', $2, $3, 'nl', 'Europe/Amsterdam', $4)",
        )
        .bind(format!("a{i}"))
        .bind(format!("lid{i}"))
        .bind(&hash)
        .bind(now)
        .execute(store.pool())
        .await
        .expect("account");
    }
    store.close().await;

    let port = free_port();
    let mut kring = Command::new(env!("CARGO_BIN_EXE_kring"))
        .arg("serve")
        .env("KRING_DATABASE_URL", &url)
        .env("KRING_BIND", format!("127.0.0.1:{port}"))
        .env("KRING_DATA_DIR", dir.path())
        // Every client of this benchmark is 127.0.0.1: the per-address
        // throttle would otherwise stop the right passwords too.
        .env("KRING_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000")
        .env_remove("KRING_HASH_CONCURRENCY")
        .env_remove("KRING_HASH_QUEUE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kring");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/readyz")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib(kring.id());

    let burst = |bodies: Vec<serde_json::Value>| {
        let base = base.clone();
        async move {
            let client = reqwest::Client::new();
            let started = Instant::now();
            let answers = futures_util::future::join_all(bodies.into_iter().map(|body| {
                let client = client.clone();
                let url = format!("{base}/v1/auth/login");
                async move {
                    client
                        .post(url)
                        .json(&body)
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16())
                }
            }))
            .await;
            (answers, started.elapsed())
        }
    };
    let count = |answers: &[u16], status: u16| answers.iter().filter(|&&s| s == status).count();

    let right = (0..LOGINS)
        .map(|i| serde_json::json!({"login": format!("lid{i}"), "password": PASSWORD}))
        .collect();
    let (answers, took) = burst(right).await;
    let after = rss_mib(kring.id());
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let later = rss_mib(kring.id());
    let ok = count(&answers, 200);
    let busy = count(&answers, 503);
    eprintln!(
        "signin: {LOGINS} logins in {:.2} s: {ok} ok, {busy} busy, others {:?}; RSS idle {:.1}, peak {:.1}, after {:.1}, {settle} s later {:.1} MiB",
        took.as_secs_f64(),
        answers
            .iter()
            .filter(|&&s| s != 200 && s != 503)
            .collect::<Vec<_>>(),
        idle.now,
        after.peak,
        after.now,
        later.now
    );
    let mb = |mib: f64| mib * 1.048_576;
    report.add(Line {
        area: "sign-in",
        what: format!("{LOGINS} logins at once (right passwords)"),
        value: format!(
            "{ok} signed in, {busy} busy (503) in {:.1} s; RSS idle {:.1} MiB, peak {:.1} MiB, right after {:.1} MiB",
            took.as_secs_f64(),
            idle.now,
            after.peak,
            after.now
        ),
        baseline: String::new(),
        ratio: None,
        target: "RSS ≤ 120 MB, all signed in".into(),
        met: Some(mb(after.peak) <= 120.0 && ok == LOGINS),
    });
    report.add(Line {
        area: "sign-in",
        what: format!("RSS {settle} s after the burst"),
        value: format!("{:.1} MiB (anon {:.1})", later.now, later.anon),
        baseline: String::new(),
        ratio: None,
        target: "< 60 MB".into(),
        met: Some(mb(later.now) < 60.0),
    });

    // Hostile: wrong passwords for random names, all from one address.
    stop(&mut kring);
    let mut kring = Command::new(env!("CARGO_BIN_EXE_kring"))
        .arg("serve")
        .env("KRING_DATABASE_URL", &url)
        .env("KRING_BIND", format!("127.0.0.1:{port}"))
        .env("KRING_DATA_DIR", dir.path())
        .env_remove("KRING_LOGIN_MAX_FAILURES_PER_ADDRESS")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kring");
    wait_ready(&format!("{base}/readyz")).await;
    let wrong = (0..LOGINS)
        .map(|i| serde_json::json!({"login": format!("guess{i}@example.org"), "password": "raden"}))
        .collect();
    let (answers, took) = burst(wrong).await;
    let hostile = rss_mib(kring.id());
    stop(&mut kring);
    let checked = count(&answers, 401);
    let throttled = count(&answers, 429);
    eprintln!(
        "signin: {LOGINS} wrong logins in {:.2} s: {checked} checked, {throttled} throttled; RSS peak {:.1} MiB",
        took.as_secs_f64(),
        hostile.peak
    );
    report.add(Line {
        area: "sign-in",
        what: format!("{LOGINS} wrong logins at once, random names, one address"),
        value: format!(
            "{checked} checked (401), {throttled} refused (429) in {:.1} s; RSS peak {:.1} MiB",
            took.as_secs_f64(),
            hostile.peak
        ),
        baseline: String::new(),
        ratio: None,
        target: "≤ 30 checked (KRING_LOGIN_MAX_FAILURES_PER_ADDRESS)".into(),
        met: Some(checked <= 30 && checked + throttled == LOGINS),
    });
}
