//! Recovery codes are accountable: the member hears of every code issued
//! for their account and of its use, the circle's other staff see who
//! issued it, and it lives only a short time (issue 12, item 6).

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestApp};

fn kinds(inbox: &Value) -> Vec<String> {
    inbox["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["kind"].as_str().expect("kind").to_owned())
        .collect()
}

async fn recovery_codes_are_told_to_the_member_and_seen_by_staff(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    let path = format!(
        "/v1/circles/{circle}/members/{}/recovery-code",
        member.membership()
    );
    let issued_at = app.now_ms();
    let r = app.post(&path, worker.token(), json!({})).await.expect(201);
    let code = r.str("/code");
    let expires: jiff::Timestamp = r.str("/expires_at").parse().unwrap();
    assert!(
        expires.as_millisecond() - issued_at <= 24 * 3_600_000,
        "a recovery code lives at most 24 hours, not until {expires}"
    );

    // The member is told, without the code.
    let inbox = app
        .get("/v1/notifications", member.token())
        .await
        .expect(200);
    assert_eq!(kinds(&inbox.body), vec!["recovery_code_issued"]);
    let text = inbox.body.to_string();
    assert!(!text.contains(&code) && !text.contains(&code.replace('-', "")));
    assert_eq!(inbox.body["items"][0]["circle_id"], circle.as_str());

    // The circle's other staff see who issued it and when.
    let list_path = format!(
        "/v1/circles/{circle}/members/{}/recovery-codes",
        member.membership()
    );
    let list = app
        .get(&list_path, org.coordinator.token())
        .await
        .expect(200);
    let item = &list.body["items"][0];
    assert_eq!(item["issued_by"]["account_id"], worker.account_id.as_str());
    assert_eq!(item["issued_by"]["display_name"], "Worker");
    assert_eq!(item["circle_id"], circle.as_str());
    assert_eq!(item["state"], "valid");
    assert!(item.get("code").is_none());
    // Not the members.
    let other = app.member(&worker, &circle, "Regenboog").await;
    app.get(&list_path, other.token())
        .await
        .expect_problem(403, "staff_only");

    // Used: the member is told again, on the new phone.
    let r = app
        .post("/v1/auth/recover", None, json!({"code": code}))
        .await
        .expect(200);
    let new_access = r.str("/tokens/access_token");
    let inbox = app
        .get("/v1/notifications", Some(&new_access))
        .await
        .expect(200);
    assert_eq!(
        kinds(&inbox.body),
        vec!["account_recovered", "recovery_code_issued"]
    );
    assert!(!inbox.body.to_string().contains(&code));
    let list = app.get(&list_path, worker.token()).await.expect(200);
    assert_eq!(list.body["items"][0]["state"], "used");
    assert!(list.body["items"][0]["used_at"].is_string());

    // A code is valid for 24 hours, not longer.
    let code = app
        .post(&path, worker.token(), json!({}))
        .await
        .expect(201)
        .str("/code");
    app.advance(SignedDuration::from_hours(24) + SignedDuration::from_mins(1));
    app.post("/v1/auth/recover", None, json!({"code": code}))
        .await
        .expect_problem(410, "code_expired");
    app.stop().await;
}
both_backends!(recovery_codes_are_told_to_the_member_and_seen_by_staff);
