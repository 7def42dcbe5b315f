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
