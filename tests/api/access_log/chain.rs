//! The chain: concurrent appends in one organisation keep one valid chain,
//! a changed or removed entry fails verification (also through
//! `kring admin verify-access-log`), and retention expiry keeps the chain
//! verifiable.

use futures_util::future::join_all;
use jiff::SignedDuration;
use kring::access_log::chain::{COLUMNS, Entry};
use kring::store::Backend as StoreBackend;
use reqwest::Method;
use serde_json::json;

use super::{World, entries, verify};
use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn parallel_appends_keep_one_chain(backend: Backend) {
    let w = World::new(backend).await;
    let c = &w.circle;
    w.checkin(&w.zon, 3).await;
    w.checkin(&w.maan, 4).await;
    let zon = w.zon.membership();
    // Reads (written after the handler, two entries each) and writes
    // (written in their own transaction) by two staff members at once.
    let requests: Vec<(Method, String, Option<serde_json::Value>, &str, usize)> = (0..32)
        .map(|i| {
            let token = if i % 2 == 0 {
                w.worker.access.as_str()
            } else {
                w.org.coordinator.access.as_str()
            };
            match i % 4 {
                0 => (
                    Method::GET,
                    format!("/v1/circles/{c}/checkins"),
                    None,
                    token,
                    2,
                ),
                1 => (
                    Method::GET,
                    format!("/v1/circles/{c}/members"),
                    None,
                    token,
                    2,
                ),
                2 => (
                    Method::POST,
                    format!("/v1/circles/{c}/members/{zon}/messages"),
                    Some(json!({"text": "Hoi"})),
                    token,
                    1,
                ),
                _ => (
                    Method::GET,
                    format!("/v1/circles/{c}/overview"),
                    None,
                    token,
                    2,
                ),
            }
        })
        .collect();
    let expected: usize = requests.iter().map(|r| r.4).sum();
    let answers = join_all(requests.iter().map(|(m, path, body, token, _)| {
        w.app.request(m.clone(), path, Some(token), body.clone())
    }))
    .await;
    for r in answers {
        assert!(r.status.is_success(), "{} {}", r.status, r.body);
    }
    let all = entries(&w.app).await;
    assert_eq!(all.len(), expected);
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    let consecutive: Vec<i64> = (1..=i64::try_from(expected).unwrap()).collect();
    assert_eq!(seqs, consecutive, "one chain, no number taken twice");
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let verified = verify(&w.app).await.expect("a valid chain");
    assert_eq!(verified.chains.len(), 1);
    assert_eq!(verified.chains[0].seq, i64::try_from(expected).unwrap());
    w.app.stop().await;
}
both_backends!(parallel_appends_keep_one_chain);

/// Runs `kring admin verify-access-log` against the test's database.
fn verify_command(app: &TestApp) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kring"))
        .args([
            "admin",
            "verify-access-log",
            "--database-url",
            &app.state.config.database_url(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

async fn insert(app: &TestApp, e: &Entry) {
    let cells: Vec<String> = (1..=18).map(|i| format!("${i}")).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO access_log ({COLUMNS}) VALUES ({})",
        cells.join(", ")
    )))
    .bind(e.id.clone())
    .bind(e.organisation_id.clone())
    .bind(e.seq)
    .bind(e.accessed_at)
    .bind(e.actor_account_id.clone())
    .bind(e.actor_role.clone())
    .bind(e.on_behalf_of.clone())
    .bind(e.subject_account_id.clone())
    .bind(e.subject_membership_id.clone())
    .bind(e.circle_id.clone())
    .bind(e.kind.clone())
    .bind(e.action.clone())
    .bind(e.operation.clone())
    .bind(e.client.clone())
    .bind(e.session_id.clone())
    .bind(e.result_count)
    .bind(e.prev_hash.clone())
    .bind(e.hash.clone())
    .execute(app.state.store.pool())
    .await
    .unwrap();
}

async fn sql(app: &TestApp, statement: &str, id: &str) {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .bind(id.to_owned())
        .execute(app.state.store.pool())
        .await
        .unwrap();
}

async fn tampering_is_detected(backend: Backend) {
    let w = World::new(backend).await;
    let app = &w.app;
    w.checkin(&w.zon, 3).await;
    w.checkin(&w.maan, 4).await;
    for _ in 0..3 {
        w.read_checkins(&w.worker).await;
    }
    let all = entries(app).await;
    assert_eq!(all.len(), 6);
    assert!(verify(app).await.is_ok());
    let out = verify_command(app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("access log verified"), "{stdout}");
    assert!(
        stdout.contains(&all[5].hash),
        "prints the last hash: {stdout}"
    );

    // The database refuses to change an entry.
    let refused = sqlx::query("UPDATE access_log SET result_count = 0 WHERE id = $1")
        .bind(all[2].id.clone())
        .execute(app.state.store.pool())
        .await;
    assert!(refused.is_err(), "entries cannot be updated");

    // Someone who owns the database drops that guard and edits entry 3.
    let drop = match app.state.store.backend() {
        StoreBackend::Sqlite => "DROP TRIGGER access_log_append_only",
        StoreBackend::Postgres => "DROP TRIGGER access_log_append_only ON access_log",
    };
    sqlx::query(drop)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let target = all[2].clone();
    sql(
        app,
        "UPDATE access_log SET result_count = 0 WHERE id = $1",
        &target.id,
    )
    .await;
    let broken = verify(app).await.expect_err("a changed entry");
    assert_eq!(
        (broken.seq, broken.entry_id.as_deref()),
        (3, Some(target.id.as_str()))
    );
    assert!(broken.problem.contains("changed"), "{}", broken.problem);
    let out = verify_command(app);
    assert!(!out.status.success(), "the command fails");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&target.id) && stderr.contains("entry 3"),
        "{stderr}"
    );

    // Rewriting the entry with a matching hash breaks the next one.
    let mut forged = target.clone();
    forged.result_count = Some(0);
    forged.hash = forged.digest();
    sqlx::query("UPDATE access_log SET hash = $1 WHERE id = $2")
        .bind(forged.hash.clone())
        .bind(target.id.clone())
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let broken = verify(app).await.expect_err("a forged entry");
    assert_eq!(broken.seq, 4);
    assert!(
        broken.problem.contains("does not follow"),
        "{}",
        broken.problem
    );
    sql(app, "DELETE FROM access_log WHERE id = $1", &target.id).await;
    insert(app, &target).await;
    assert!(verify(app).await.is_ok(), "restored");

    // An entry removed from the middle, or from the end.
    sql(app, "DELETE FROM access_log WHERE id = $1", &all[1].id).await;
    let broken = verify(app).await.expect_err("a gap");
    assert_eq!(broken.seq, 3);
    assert!(broken.problem.contains("missing"), "{}", broken.problem);
    insert(app, &all[1]).await;
    sql(app, "DELETE FROM access_log WHERE id = $1", &all[5].id).await;
    let broken = verify(app).await.expect_err("a shortened chain");
    assert_eq!((broken.seq, broken.entry_id.as_deref()), (6, None));
    assert!(broken.problem.contains("missing"), "{}", broken.problem);
    // And removing the start is not expiry: the anchor does not match.
    insert(app, &all[5]).await;
    sql(app, "DELETE FROM access_log WHERE id = $1", &all[0].id).await;
    let broken = verify(app).await.expect_err("a removed start");
    assert_eq!(broken.seq, 2);
    insert(app, &all[0]).await;
    assert!(verify(app).await.is_ok(), "restored");
    w.app.stop().await;
}
both_backends!(tampering_is_detected);

async fn expiry_keeps_the_chain_verifiable(backend: Backend) {
    let w = World::with(backend, |c| c.access_log_retention_days = 30).await;
    let app = &w.app;
    w.checkin(&w.zon, 3).await;
    w.checkin(&w.maan, 4).await;
    let seqs = |entries: &[Entry]| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    w.read_checkins(&w.worker).await;
    w.read_checkins(&w.worker).await;
    app.advance(SignedDuration::from_hours(20 * 24));
    w.read_checkins(&w.worker).await;
    kring::upkeep_once(&app.state).await.unwrap();
    assert_eq!(
        seqs(&entries(app).await),
        [1, 2, 3, 4, 5, 6],
        "nothing is 30 days old"
    );

    // Day 35: the first four are past retention.
    app.advance(SignedDuration::from_hours(15 * 24));
    kring::upkeep_once(&app.state).await.unwrap();
    assert_eq!(seqs(&entries(app).await), [5, 6]);
    let verified = verify(app).await.expect("still valid after expiry");
    assert_eq!((verified.chains[0].entries, verified.chains[0].seq), (2, 6));
    let mine = app
        .get("/v1/me/access-log", w.zon.token())
        .await
        .expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    w.read_checkins(&w.worker).await;
    assert!(verify(app).await.is_ok());
    // A second round has nothing left to do.
    let before = entries(app).await;
    kring::upkeep_once(&app.state).await.unwrap();
    assert_eq!(entries(app).await, before);

    // Day 75: everything expires; the chain goes on from its anchor.
    app.advance(SignedDuration::from_hours(40 * 24));
    kring::upkeep_once(&app.state).await.unwrap();
    assert!(entries(app).await.is_empty());
    let verified = verify(app).await.expect("an empty chain with an anchor");
    assert_eq!((verified.chains[0].entries, verified.chains[0].seq), (0, 8));
    w.read_checkins(&w.worker).await;
    assert_eq!(seqs(&entries(app).await), [9, 10]);
    assert!(verify(app).await.is_ok());
    let out = verify_command(app);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.app.stop().await;
}
both_backends!(expiry_keeps_the_chain_verifiable);
