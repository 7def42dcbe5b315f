//! Sessions under attack and under load: replays of sign-in responses, one-time
//! secrets kept for replay, refreshes and sign-ins racing each other, and codes
//! of staff who were removed.

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, PASSWORD, TestApp};

/// Sessions of an account that are not revoked.
async fn live_sessions(app: &TestApp, account_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE account_id = $1 AND revoked_at IS NULL")
        .bind(account_id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

/// A removed staff member's unused setup code no longer sets a password.
async fn removing_staff_revokes_their_setup_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let made = app
        .post(
            "/v1/organisation/staff",
            org.coordinator.token(),
            json!({"role": "worker", "email": "kim@buurtwerk.example", "display_name": "Kim"}),
        )
        .await
        .expect(201);
    let code = made.str("/setup_code");
    app.delete(
        &format!("/v1/organisation/staff/{}", made.str("/account/id")),
        org.coordinator.token(),
    )
    .await
    .expect(204);
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": code, "password": PASSWORD}),
    )
    .await
    .expect_problem(410, "code_revoked");
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
            .bind(made.str("/account/id"))
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(hash, None, "no password was set");
    assert_eq!(live_sessions(&app, &made.str("/account/id")).await, 0);
    app.stop().await;
}
both_backends!(removing_staff_revokes_their_setup_code);
