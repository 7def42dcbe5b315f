//! Kring's benchmark suite: every figure beside a baseline measured in the
//! same run, as a ratio, because these machines are shared and noisy.
//!
//!     cargo bench --bench suite
//!
//! - **api**: `wrk` (64 connections, loopback) against the release `kring`
//!   binary on a seeded SQLite file (1,000 circles, 10,000 members, 200,000
//!   posts), and PostgreSQL when given, beside a trivial axum handler; and
//!   the server's memory.
//! - **delivery**: the outbox to local Web Push, FCM and APNs services (real
//!   aes128gcm, VAPID, OAuth, and HTTP/2 over TLS with provider tokens),
//!   beside their raw capacity and, for Web Push, the Node `web-push` library.
//! - **scheduler**: the silence engine's tick at 100k (and more) memberships.
//! - **signin**: 200 logins at once and the server's memory during and a
//!   minute after; 200 wrong logins from one address against its throttle.
//!
//! Settings: `KRING_BENCH_ONLY=api,delivery,scheduler,signin`, `KRING_BENCH_ROUNDS`
//! (default 3; medians are reported), `KRING_BENCH_SECONDS` (per wrk run,
//! default 5), `KRING_BENCH_MESSAGES` (per delivery run, default 5000),
//! `KRING_BENCH_SIZES` (scheduler, default 100000),
//! `KRING_BENCH_SIGNIN_SETTLE_SECS` (signin, default 60),
//! `KRING_BENCH_POSTGRES_URL` (also run the API load and the scheduler on
//! PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod delivery;
mod report;
mod scheduler;
mod seed;
mod signin;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // The suite re-runs itself as the trivial baseline server.
    if let Ok(bind) = std::env::var(api::TRIVIAL_ENV) {
        api::trivial_server(&bind);
        return;
    }
    let only = std::env::var("KRING_BENCH_ONLY")
        .unwrap_or_else(|_| "api,delivery,scheduler,signin".into());
    let rounds: usize = env_or("KRING_BENCH_ROUNDS", 3).max(1);
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let mut report = report::Report::default();
    report::machine();
    if only.contains("api") {
        runtime.block_on(api::run(&mut report, rounds));
    }
    if only.contains("delivery") {
        runtime.block_on(delivery::run(&mut report, rounds));
    }
    if only.contains("scheduler") {
        runtime.block_on(scheduler::run(&mut report));
    }
    if only.contains("signin") {
        runtime.block_on(signin::run(&mut report));
    }
    report.print();
}
