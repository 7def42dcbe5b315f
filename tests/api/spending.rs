//! What is spent once is spent once, also when the requests race: a
//! recovery code, a setup code and an invite's uses, fired in parallel.

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, PASSWORD, TestApp};

/// Statuses of `n` copies of one POST sent at once.
async fn race(app: &TestApp, path: &str, body: serde_json::Value, n: usize) -> Vec<u16> {
    let calls = (0..n).map(|_| app.post(path, None, body.clone()));
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.status.as_u16())
        .collect()
}

/// Exactly `winners` of `statuses` are `success`, and the rest are refusals
/// (4xx), never a server error.
fn assert_won(statuses: &[u16], success: u16, winners: usize) {
    assert_eq!(
        statuses.iter().filter(|&&s| s == success).count(),
        winners,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|&s| s == success || (400..500).contains(&s)),
        "{statuses:?}"
    );
}

async fn one_time_codes_and_invites_are_spent_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;

    // A recovery code: one new phone gets the account, and the member is
    // told once.
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    let code = app
        .post(
            &format!(
                "/v1/circles/{circle}/members/{}/recovery-code",
                member.membership()
            ),
            worker.token(),
            json!({}),
        )
        .await
        .expect(201)
        .str("/code");
    let statuses = race(&app, "/v1/auth/recover", json!({"code": code}), 10).await;
    assert_won(&statuses, 200, 1);
    let recovered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM notifications WHERE account_id = $1 AND kind = 'account_recovered'",
    )
    .bind(&member.account_id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(recovered, 1);

    // A setup code: one password is set.
    let setup = app
        .post(
            "/v1/organisation/staff",
            Some(&org.coordinator.access),
            json!({"role": "worker", "email": "kim@buurtwerk.example", "display_name": "Kim"}),
        )
        .await
        .expect(201)
        .str("/setup_code");
    let statuses = race(
        &app,
        "/v1/auth/setup",
        json!({"code": setup, "password": PASSWORD}),
        10,
    )
    .await;
    assert_won(&statuses, 200, 1);

    // An invite for three: three join, whatever the race.
    let invite = app.invite(&worker, &circle, 3).await;
    let joins = (0..10).map(|i| {
        app.post(
            "/v1/join",
            None,
            json!({"code": invite, "pseudonym": format!("Lid {i}"), "consent_version": 1}),
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_won(&statuses, 201, 3);
    let members: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE circle_id = $1 AND role = 'member' AND left_at IS NULL",
    )
    .bind(&circle)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(members, 1 + 3);
    app.stop().await;
}
both_backends!(one_time_codes_and_invites_are_spent_once);
