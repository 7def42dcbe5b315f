//! Scheduler scale: the cost of a tick follows what is due, not how many
//! memberships exist. Seeds memberships (100k by default; set
//! `KRING_BENCH_SIZES=100000,1000000`) with the same 10k due, on SQLite
//! (always) and PostgreSQL (when `KRING_BENCH_POSTGRES_URL` is set), and
//! times the ticks that fire them. The baseline is the same database's
//! round trip for `SELECT 1`.

use std::sync::Arc;
use std::time::Instant;

use kring::clock::{Clock, ManualClock};
use kring::config::Config;
use kring::state::AppState;
use kring::store::Store;

use crate::report::{Line, Report, median};

const DUE: i64 = 10_000;
const CIRCLES: i64 = 1_000;

pub async fn run(report: &mut Report) {
    let sizes: Vec<i64> = std::env::var("KRING_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000]);
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        measure(report, "sqlite", &url, n).await;
    }
    if let Ok(admin) = std::env::var("KRING_BENCH_POSTGRES_URL") {
        for &n in &sizes {
            let name = format!("kring_bench_{n}");
            let url = crate::seed::postgres_database(&admin, &name).await;
            measure(report, "postgres", &url, n).await;
            crate::seed::drop_postgres_database(&admin, &name).await;
        }
    }
}

async fn measure(report: &mut Report, backend: &'static str, url: &str, n: i64) {
    let store = Store::connect(url).await.expect("connect");
    kring::migrate(&store).await.expect("migrate");
    let clock = ManualClock::new("2026-03-04T12:00:00Z".parse().expect("time"));
    let now = clock.now_ms();
    eprintln!("scheduler: seeding {n} memberships on {backend}");
    seed(&store, n, now).await;
    let state = AppState::new(
        store.clone(),
        Arc::new(clock) as Arc<dyn Clock>,
        Config::for_database(url),
    );
    if matches!(store.backend(), kring::store::Backend::Postgres) {
        sqlx::query("ANALYZE")
            .execute(store.pool())
            .await
            .expect("analyze");
    }

    // A tick with nothing due is what most ticks are.
    sqlx::query("UPDATE memberships SET next_step_due_at = next_step_due_at + 86400000 WHERE next_step_due_at <= $1")
        .bind(now)
        .execute(store.pool())
        .await
        .expect("park");
    let mut empty = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        kring::jobs::silence::tick(&state).await.expect("tick");
        empty.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut round_trips = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        sqlx::query("SELECT 1")
            .execute(store.pool())
            .await
            .expect("select 1");
        round_trips.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let round_trip_us = median(&round_trips);
    sqlx::query("UPDATE memberships SET next_step_due_at = next_step_due_at - 86400000 WHERE next_step_due_at <= $1")
        .bind(now + 86_400_000)
        .execute(store.pool())
        .await
        .expect("unpark");

    // Fire the 10k due steps.
    let started = Instant::now();
    let mut ticks = 0;
    let mut fired = 0;
    loop {
        let t = kring::jobs::silence::tick(&state).await.expect("tick");
        if t.claimed == 0 {
            break;
        }
        ticks += 1;
        fired += t.fired;
    }
    let all_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        i64::try_from(fired).unwrap_or(0),
        DUE,
        "every due step fired once"
    );
    let per_due_us = all_ms * 1000.0 / DUE as f64;
    let baseline = format!("SELECT 1: {round_trip_us:.0} µs");
    report.add(Line {
        area: "scheduler",
        what: format!("{backend}, {n} memberships: empty tick"),
        value: format!("{:.2} ms", median(&empty)),
        baseline: baseline.clone(),
        ratio: Some(median(&empty) * 1000.0 / round_trip_us),
        target: String::new(),
        met: None,
    });
    report.add(Line {
        area: "scheduler",
        what: format!("{backend}, {n} memberships: fire {DUE} due ({ticks} ticks)"),
        value: format!("{per_due_us:.0} µs per due membership ({all_ms:.0} ms)"),
        baseline,
        ratio: Some(per_due_us / round_trip_us),
        target: String::new(),
        met: None,
    });
    store.close().await;
}

/// Organisation, circles, one member account per membership, and the
/// schedules: `DUE` memberships due now, the rest days ahead. One SQL text
/// per table for both databases (recursive CTEs).
async fn seed(store: &Store, n: i64, now: i64) {
    let pool = store.pool();
    crate::seed::organisation_and_circles(pool, CIRCLES, 0, now).await;
    let chunk = 100_000;
    let mut from = 0;
    while from < n {
        let to = (from + chunk).min(n);
        let mut tx = store.begin().await.expect("tx");
        sqlx::query(
            "WITH RECURSIVE s(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $2)
             INSERT INTO accounts (id, organisation_id, role, locale, time_zone, created_at)
             SELECT 'a' || x, 'o', 'member', 'nl', 'Europe/Amsterdam', $3 FROM s",
        )
        .bind(from)
        .bind(to)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("accounts");
        // Silent for 2 days (a nudge due now) or active recently (due days ahead).
        sqlx::query(
            "WITH RECURSIVE s(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $2)
             INSERT INTO memberships (id, circle_id, account_id, role, pseudonym, pseudonym_key, consent_version,
                                      consented_at, last_activity_at, last_read_at, joined_at, updated_at,
                                      silence_start_at, next_step_index, next_step_due_at)
             SELECT 'm' || x, 'c' || (x % $3), 'a' || x, 'member', 'lid ' || x, 'lid ' || x, 1, $4,
                    CASE WHEN x % ($5 / $6) = 0 THEN $4 - 172800000 ELSE $4 END, $4, $4, $4,
                    CASE WHEN x % ($5 / $6) = 0 THEN $4 - 172800000 ELSE $4 END, 0,
                    CASE WHEN x % ($5 / $6) = 0 THEN $4 - 1000 ELSE $4 + 172800000 + (x % 86400000) END
             FROM s",
        )
        .bind(from)
        .bind(to)
        .bind(CIRCLES)
        .bind(now)
        .bind(n)
        .bind(DUE)
        .execute(&mut *tx)
        .await
        .expect("memberships");
        tx.commit().await.expect("commit");
        from = to;
    }
}
