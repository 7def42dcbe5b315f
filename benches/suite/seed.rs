//! Seeding shared by the suite's parts: one SQL text per table for both
//! databases (recursive CTEs), ids `o`, `c0`, `c1`, ….

use sqlx::AnyPool;

/// The organisation `o` and `circles` circles `c0…` on a 2-day rhythm with
/// the default policy; `change_seq` is each circle's change number (its
/// posts' count for seeded posts).
pub async fn organisation_and_circles(pool: &AnyPool, circles: i64, change_seq: i64, now: i64) {
    sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ('o', 'Bench', $1)")
        .bind(now)
        .execute(pool)
        .await
        .expect("organisation");
    let policy = serde_json::to_string(&kring::circles::policy::EscalationPolicy::default_for(2))
        .expect("policy");
    sqlx::query(
        "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $1)
         INSERT INTO circles (id, organisation_id, name, theme, language, rhythm_days, escalation_policy,
                              checkin_visibility, agreement_version, agreement_text, created_at, updated_at, change_seq)
         SELECT 'c' || x, 'o', 'Kring ' || x, '', 'nl', 2, $2, 'workers', 1, 'Afspraken', $3, $3, $4 FROM s",
    )
    .bind(circles)
    .bind(policy)
    .bind(now)
    .bind(change_seq)
    .execute(pool)
    .await
    .expect("circles");
}

/// A fresh PostgreSQL database `name` beside `admin`'s; returns its URL.
pub async fn postgres_database(admin: &str, name: &str) -> String {
    drop_postgres_database(admin, name).await;
    let store = kring::store::Store::connect(admin).await.expect("postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(store.pool())
        .await
        .expect("create database");
    store.close().await;
    format!(
        "{}/{}",
        admin.rsplit_once('/').map_or(admin, |(base, _)| base),
        name
    )
}

pub async fn drop_postgres_database(admin: &str, name: &str) {
    let store = kring::store::Store::connect(admin).await.expect("postgres");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(store.pool())
    .await;
    store.close().await;
}
