//! API load: wrk against the release `kring` binary on a seeded database,
//! beside a trivial axum handler served by this same executable.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kring::store::Store;

use crate::report::{Line, Report, median, rss_mib};

pub const TRIVIAL_ENV: &str = "KRING_BENCH_TRIVIAL_BIND";

const CIRCLES: i64 = 1_000;
const MEMBERS: i64 = 10_000;
const POSTS: i64 = 200_000;
/// Members with a session, one per circle: the load spreads over circles.
const SIGNED_IN: i64 = 1_000;
const CONNECTIONS: u32 = 64;

/// The baseline: one route answering a fixed string, on the same kind of
/// runtime as Kring (tokio's multi-threaded default).
pub fn trivial_server(bind: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        // Any path: the scripted round asks for the feed's paths.
        let app = axum::Router::new().fallback(|| async { "ok" });
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}

struct Target {
    name: &'static str,
    url: String,
    script: Option<String>,
}

struct Measured {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(report: &mut Report, rounds: usize) {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("api: wrk is not installed (apt-get install wrk); skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let trivial_port = free_port();
    let mut trivial = Command::new(std::env::current_exe().expect("this executable"))
        .env(TRIVIAL_ENV, format!("127.0.0.1:{trivial_port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start the trivial server");
    wait_ready(&format!("http://127.0.0.1:{trivial_port}/")).await;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = Database {
        area: "api (SQLite)",
        url,
    };
    load(report, rounds, dir.path(), trivial_port, &sqlite).await;
    // PostgreSQL, as several instances would run it: no read caches.
    if let Ok(admin) = std::env::var("KRING_BENCH_POSTGRES_URL") {
        let name = "kring_bench_api";
        let postgres = Database {
            area: "api (PostgreSQL)",
            url: crate::seed::postgres_database(&admin, name).await,
        };
        load(report, rounds, dir.path(), trivial_port, &postgres).await;
        crate::seed::drop_postgres_database(&admin, name).await;
    }
    stop(&mut trivial);
}

/// A database to load Kring on.
struct Database {
    area: &'static str,
    url: String,
}

/// Seeds `db`, starts Kring on it and measures the feed, check-ins and
/// posts, each round beside the trivial server's.
async fn load(report: &mut Report, rounds: usize, dir: &Path, trivial_port: u16, db: &Database) {
    let seconds: u64 = crate::env_or("KRING_BENCH_SECONDS", 5);
    let area = db.area;
    eprintln!("{area}: seeding {CIRCLES} circles, {MEMBERS} members, {POSTS} posts");
    let started = std::time::Instant::now();
    let store = Store::connect(&db.url).await.expect("connect");
    kring::migrate(&store).await.expect("migrate");
    let sessions = seed(&store).await;
    if store.backend() == kring::store::Backend::Postgres {
        sqlx::query("ANALYZE")
            .execute(store.pool())
            .await
            .expect("analyze");
    }
    store.close().await;
    eprintln!("{area}: seeded in {:.1} s", started.elapsed().as_secs_f64());
    let sessions_file = dir.join("sessions.txt");
    std::fs::write(&sessions_file, sessions.join("\n") + "\n").expect("sessions");

    let kring_port = free_port();
    let mut kring = Command::new(env!("CARGO_BIN_EXE_kring"))
        .arg("serve")
        .env("KRING_DATABASE_URL", &db.url)
        .env("KRING_BIND", format!("127.0.0.1:{kring_port}"))
        .env("KRING_DATA_DIR", dir)
        .env_remove("RUST_LOG")
        .env_remove("KRING_READ_CACHE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kring");
    wait_ready(&format!("http://127.0.0.1:{kring_port}/readyz")).await;
    // Idle: started, migrated, the pool open, the jobs ticking; no requests yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib(kring.id());

    let base = format!("http://127.0.0.1:{kring_port}");
    let sessions_path = sessions_file.display().to_string();
    let script = |name: &str, body: &str| {
        let path = dir.join(format!("{name}.lua"));
        std::fs::write(&path, lua(&sessions_path, body)).expect("script");
        Some(path.display().to_string())
    };
    let feed_script = script(
        "feed",
        r#"return wrk.format("GET", "/v1/circles/" .. c .. "/posts", h)"#,
    );
    let targets = [
        Target {
            name: "trivial",
            url: format!("http://127.0.0.1:{trivial_port}/"),
            script: None,
        },
        // The same generator work per request as the feed (a Lua script
        // picking a member, their token and circle), so that the ratio
        // compares servers, not wrk configurations.
        Target {
            name: "trivial-scripted",
            url: format!("http://127.0.0.1:{trivial_port}"),
            script: feed_script.clone(),
        },
        Target {
            name: "feed",
            url: base.clone(),
            script: feed_script,
        },
        Target {
            name: "checkin",
            url: base.clone(),
            script: script(
                "checkin",
                r#"return wrk.format("POST", "/v1/circles/" .. c .. "/checkins", h, '{"mood": 4}')"#,
            ),
        },
        Target {
            name: "post",
            url: base.clone(),
            script: script(
                "post",
                r#"return wrk.format("POST", "/v1/circles/" .. c .. "/posts", h, '{"body": "Vandaag even naar de markt geweest, het was gezellig druk."}')"#,
            ),
        },
    ];
    // The first feed requests fill the read caches (1,000 circles' first
    // pages, 1,000 tokens and accesses): measured once, reported apart.
    let cold = wrk(&targets[2], 2);
    eprintln!(
        "{area}: feed, first 2 s (cold caches) {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        cold.rps, cold.p50_ms, cold.p99_ms
    );
    let mut results: Vec<Vec<Measured>> = targets.iter().map(|_| Vec::new()).collect();
    // Reads first, each round beside its baselines; then the writes. New
    // posts leave notifications for the delivery workers, which would
    // otherwise be sent while the next round reads.
    let groups: [&[usize]; 3] = [&[0, 1, 2], &[3], &[4]];
    for group in groups {
        for round in 0..rounds {
            for &i in group {
                let target = &targets[i];
                let m = wrk(target, seconds);
                eprintln!(
                    "{area} round {}: {} {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                    round + 1,
                    target.name,
                    m.rps,
                    m.p50_ms,
                    m.p99_ms
                );
                results[i].push(m);
            }
        }
    }
    let loaded = rss_mib(kring.id());
    stop(&mut kring);

    let med =
        |i: usize, f: fn(&Measured) -> f64| median(&results[i].iter().map(f).collect::<Vec<_>>());
    let plain_rps = med(0, |m| m.rps);
    let trivial_rps = med(1, |m| m.rps);
    let baseline = format!(
        "{trivial_rps:.0} req/s (trivial axum, same wrk script; {plain_rps:.0} without one)"
    );
    // The targets are for the embedded default, SQLite.
    let sqlite = store.backend() == kring::store::Backend::Sqlite;
    for (i, target) in targets.iter().enumerate().skip(2) {
        let rps = med(i, |m| m.rps);
        let p99 = med(i, |m| m.p99_ms);
        let ratio = rps / trivial_rps;
        let (goal, met) = match target.name {
            "feed" if sqlite => (
                "≥ 25% of trivial, p99 ≤ 20 ms".to_owned(),
                Some(ratio >= 0.25 && p99 <= 20.0),
            ),
            "checkin" if sqlite => ("≥ 2,000 req/s".to_owned(), Some(rps >= 2000.0)),
            _ => (String::new(), None),
        };
        report.add(Line {
            area,
            what: format!(
                "{} ({CONNECTIONS} conns)",
                match target.name {
                    "feed" => "GET feed, 20 posts",
                    "checkin" => "POST check-in",
                    _ => "POST post",
                }
            ),
            value: format!(
                "{rps:.0} req/s, p50 {:.2} ms, p99 {p99:.2} ms",
                med(i, |m| m.p50_ms)
            ),
            baseline: baseline.clone(),
            ratio: Some(ratio),
            target: goal,
            met,
        });
    }
    if !sqlite {
        // No read caches: the first 2 seconds were only a warm-up.
        return;
    }
    report.add(Line {
        area,
        what: format!("GET feed, cold caches, first 2 s ({CONNECTIONS} conns)"),
        value: format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            cold.rps, cold.p50_ms, cold.p99_ms
        ),
        baseline: baseline.clone(),
        ratio: Some(cold.rps / trivial_rps),
        target: String::new(),
        met: None,
    });
    report.add(Line {
        area: "memory",
        what: "kring RSS idle".into(),
        value: format!(
            "{:.1} MiB (anon {:.1}, files {:.1})",
            idle.now, idle.anon, idle.file
        ),
        baseline: String::new(),
        ratio: None,
        target: "≤ 30 MB".into(),
        met: Some(idle.now * 1.048_576 <= 30.0),
    });
    report.add(Line {
        area: "memory",
        what: "kring RSS under the API load".into(),
        value: format!(
            "peak {:.1} MiB; at the end anon {:.1}, files {:.1} (the mapped database)",
            loaded.peak, loaded.anon, loaded.file
        ),
        baseline: String::new(),
        ratio: None,
        target: String::new(),
        met: None,
    });
}

/// A wrk script: each request as a random signed-in member of their circle.
/// `body` builds the request from `c` (circle id) and `h` (headers).
fn lua(sessions: &str, body: &str) -> String {
    format!(
        r#"local tokens, circles = {{}}, {{}}
for line in io.lines("{sessions}") do
  local t, c = line:match("^(%S+) (%S+)$")
  if t then tokens[#tokens + 1] = t; circles[#circles + 1] = c end
end
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
request = function()
  local k = math.random(#tokens)
  local c = circles[k]
  local h = {{["Authorization"] = "Bearer " .. tokens[k], ["Content-Type"] = "application/json"}}
  {body}
end
"#
    )
}

fn wrk(target: &Target, seconds: u64) -> Measured {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = &target.script {
        cmd.args(["-s", script]);
    }
    let out = cmd.arg(&target.url).output().expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "{}: some requests failed:\n{text}",
        target.name
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
    };
    Measured {
        rps: field("Requests/sec:").parse().expect("req/s"),
        p50_ms: duration_ms(&field("50%")),
        p99_ms: duration_ms(&field("99%")),
    }
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.00s`.
fn duration_ms(s: &str) -> f64 {
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer");
}

pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Realistic volume, inserted directly (one SQL text per table for both
/// databases): circles of ten members, 200 posts per circle with a reaction
/// on every fourth, and a session for one member of each circle. Returns
/// "token circle" lines for wrk.
async fn seed(store: &Store) -> Vec<String> {
    let pool = store.pool();
    let now = jiff::Timestamp::now().as_millisecond();
    let exec = |sql: &'static str, binds: Vec<i64>| async move {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b);
        }
        q.execute(pool).await.expect(sql);
    };
    crate::seed::organisation_and_circles(pool, CIRCLES, POSTS / CIRCLES, now).await;
    exec(
        "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $1)
         INSERT INTO accounts (id, organisation_id, role, locale, time_zone, created_at)
         SELECT 'a' || x, 'o', 'member', 'nl', 'Europe/Amsterdam', $2 FROM s",
        vec![MEMBERS, now],
    )
    .await;
    // Active members: their next step is two days away.
    exec(
        "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $1)
         INSERT INTO memberships (id, circle_id, account_id, role, pseudonym, pseudonym_key, consent_version,
                                  consented_at, last_activity_at, last_read_at, joined_at, updated_at,
                                  silence_start_at, next_step_index, next_step_due_at)
         SELECT 'm' || x, 'c' || (x % $2), 'a' || x, 'member', 'Lid ' || x, 'lid ' || x, 1, $3,
                $3, $3, $3, $3, $3, 0, $3 + 172800000 FROM s",
        vec![MEMBERS, CIRCLES, now],
    )
    .await;
    // Post x is in circle x % 1000, by member x % 10000 (who is in that
    // circle), number x / 1000 + 1 of its circle, an hour apart per circle.
    let chunk = 50_000;
    for from in (0..POSTS).step_by(chunk) {
        let to = (from + chunk as i64).min(POSTS);
        exec(
            "WITH RECURSIVE s(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $2)
             INSERT INTO posts (id, circle_id, author_membership_id, body, created_at, updated_at,
                                created_seq, change_seq)
             SELECT 'p' || x, 'c' || (x % $3), 'm' || (x % $4),
                    'Vandaag was een goede dag. Even gewandeld in het park en daarna koffie gedronken met de buurvrouw. Bericht ' || x,
                    $5 - ($6 - x) * 3600, $5 - ($6 - x) * 3600, x / $3 + 1, x / $3 + 1 FROM s",
            vec![from, to, CIRCLES, MEMBERS, now, POSTS],
        )
        .await;
    }
    // A reaction on every fourth post, by the next member of its circle.
    exec(
        "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 4 FROM s WHERE x + 4 < $1)
         INSERT INTO reactions (post_id, membership_id, kind, created_at)
         SELECT 'p' || x, 'm' || ((x + $2) % $3), 'heart', $4 FROM s",
        vec![POSTS, CIRCLES, MEMBERS, now],
    )
    .await;
    let mut tx = store.begin().await.expect("tx");
    let mut lines = Vec::new();
    for x in 0..SIGNED_IN {
        let token = kring::secrets::new_token("kra_");
        sqlx::query(
            "INSERT INTO sessions (id, account_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)",
        )
        .bind(format!("s{x}"))
        .bind(format!("a{x}"))
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("session");
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(kring::secrets::hash_token(&token))
        .bind(format!("s{x}"))
        .bind(now + 86_400_000)
        .execute(&mut *tx)
        .await
        .expect("token");
        lines.push(format!("{token} c{}", x % CIRCLES));
    }
    tx.commit().await.expect("commit");
    lines
}
