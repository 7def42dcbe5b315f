//! Circles, their policy, invites, joining and memberships.

use jiff::SignedDuration;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn circles_have_a_rhythm_and_a_validated_policy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;

    // Defaults: rhythm 2 days → nudge at 2 and 3 days, alert at 4, coordinator after a working day.
    let r = app
        .post(
            "/v1/circles",
            worker.token(),
            json!({"name": "Samen sterk", "theme": "Eenzaamheid"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["organisation_id"], org.id);
    assert_eq!(r.body["rhythm_days"], 2);
    assert_eq!(
        r.body["escalation_policy"],
        json!({"steps": [
            {"after_hours": 48, "action": "nudge"},
            {"after_hours": 72, "action": "nudge"},
            {"after_hours": 96, "action": "alert_worker"}],
            "coordinator_after_working_hours": 8, "realert_after_days": 7})
    );
    assert_eq!(r.body["checkin_visibility"], "workers");
    assert_eq!(r.body["agreement"]["version"], 1);
    let text = r.str("/agreement/text");
    assert!(text.contains("4 dagen"), "{}", r.body);
    // The agreement states the repeats and the break rule.
    assert!(text.contains("elke 7 dagen opnieuw"), "{text}");
    assert!(text.contains("eens per twee weken"), "{text}");
    assert!(text.contains("pauze"), "{text}");
    assert_eq!(r.body["my_membership"]["role"], "worker");
    let circle = r.str("/id");

    // Every bad field is listed at once.
    let r = app
        .post(
            "/v1/circles",
            worker.token(),
            json!({"name": "", "rhythm_days": 15, "language": "de",
                   "escalation_policy": {"steps": [{"after_hours": 48, "action": "nudge"},
                                                    {"after_hours": 24, "action": "nudge"}],
                                         "coordinator_after_working_hours": 8,
                                         "realert_after_days": 0}}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        r.fields(),
        vec![
            "name",
            "language",
            "rhythm_days",
            "escalation_policy.steps[1].after_hours",
            "escalation_policy.realert_after_days",
            "escalation_policy.coordinator_after_working_hours"
        ]
    );
    let r = app
        .post(
            "/v1/circles",
            worker.token(),
            json!({"name": "X", "escalation_policy": {"steps": [{"after_hours": 48, "action": "shout"}]}}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["escalation_policy.steps[0].action"]);

    // Changing the rhythm resets the policy to its default; a new agreement text bumps the version.
    let r = app
        .patch(
            &format!("/v1/circles/{circle}"),
            worker.token(),
            json!({"rhythm_days": 1, "agreement_text": "Nieuwe afspraken", "checkin_visibility": "circle"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["escalation_policy"]["steps"][0]["after_hours"], 24);
    assert_eq!(r.body["escalation_policy"]["steps"][2]["after_hours"], 48);
    assert_eq!(r.body["agreement"]["version"], 2);
    assert_eq!(r.body["checkin_visibility"], "circle");

    // Members may not change the circle; coordinators see every circle.
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    app.patch(
        &format!("/v1/circles/{circle}"),
        member.token(),
        json!({"name": "Mine"}),
    )
    .await
    .expect_problem(403, "staff_only");
    let list = app
        .get("/v1/circles", org.coordinator.token())
        .await
        .expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list.body["items"][0]["my_membership"],
        serde_json::Value::Null
    );
    let list = app.get("/v1/circles", member.token()).await.expect(200);
    assert_eq!(list.body["items"][0]["id"], circle);
    assert_eq!(
        list.body["items"][0]["my_membership"]["pseudonym"],
        "Zonnebloem"
    );

    // Coordinators staff circles with workers.
    let second = app.worker(&org, "kim@buurtwerk.example").await;
    let r = app
        .post(
            &format!("/v1/circles/{circle}/workers"),
            org.coordinator.token(),
            json!({"account_id": second.account_id, "pseudonym": "Kim (begeleider)"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["role"], "worker");
    app.get(&format!("/v1/circles/{circle}"), second.token())
        .await
        .expect(200);
    app.post(
        &format!("/v1/circles/{circle}/workers"),
        org.coordinator.token(),
        json!({"account_id": second.account_id}),
    )
    .await
    .expect_problem(409, "already_in_circle");
    app.post(
        &format!("/v1/circles/{circle}/workers"),
        org.coordinator.token(),
        json!({"account_id": member.account_id}),
    )
    .await
    .expect_problem(404, "not_found");
    app.delete(
        &format!("/v1/circles/{circle}/workers/{}", second.account_id),
        org.coordinator.token(),
    )
    .await
    .expect(204);
    app.get(&format!("/v1/circles/{circle}"), second.token())
        .await
        .expect_problem(404, "not_found");
    app.stop().await;
}
both_backends!(circles_have_a_rhythm_and_a_validated_policy);

async fn invites_expire_run_out_and_can_be_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;

    let r = app
        .post(
            &format!("/v1/circles/{circle}/invites"),
            worker.token(),
            json!({"max_uses": 2, "expires_in_hours": 24}),
        )
        .await
        .expect(201);
    let code = r.str("/code");
    // Three groups of four from the look-alike-free alphabet.
    assert_eq!(code.len(), 14);
    for c in code.chars().filter(|c| *c != '-') {
        assert!(!"0O1IL5S8B2ZUV".contains(c), "look-alike {c} in {code}");
    }

    let preview = app
        .get(&format!("/v1/invites/{}", code.to_lowercase()), None)
        .await
        .expect(200);
    assert_eq!(preview.body["circle_name"], "Samen sterk");
    assert_eq!(preview.body["organisation_name"], "Buurtwerk");
    assert_eq!(preview.body["agreement"]["version"], 1);

    let join = |pseudonym: &'static str, code: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/join",
                None,
                json!({"code": code, "pseudonym": pseudonym, "consent_version": 1}),
            )
            .await
        }
    };
    join("Een", code.clone()).await.expect(201);
    // Pseudonyms are unique per circle, ignoring case.
    join("EEN", code.clone())
        .await
        .expect_problem(409, "pseudonym_taken");
    join("Twee", code.clone()).await.expect(201);
    join("Drie", code.clone())
        .await
        .expect_problem(410, "invite_used_up");

    // Expiry.
    let code = app.invite(&worker, &circle, 5).await;
    app.advance(SignedDuration::from_hours(169));
    join("Vier", code.clone())
        .await
        .expect_problem(410, "invite_expired");
    app.get(&format!("/v1/invites/{code}"), None)
        .await
        .expect_problem(410, "invite_expired");

    // Revocation.
    let worker_token = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "sam@buurtwerk.example", "password": crate::support::PASSWORD}),
        )
        .await
        .expect(200)
        .str("/tokens/access_token");
    let r = app
        .post(
            &format!("/v1/circles/{circle}/invites"),
            Some(&worker_token),
            json!({}),
        )
        .await
        .expect(201);
    let (id, code) = (r.str("/id"), r.str("/code"));
    app.delete(
        &format!("/v1/circles/{circle}/invites/{id}"),
        Some(&worker_token),
    )
    .await
    .expect(204);
    join("Vijf", code.clone())
        .await
        .expect_problem(410, "invite_revoked");
    let list = app
        .get(
            &format!("/v1/circles/{circle}/invites"),
            Some(&worker_token),
        )
        .await
        .expect(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items.iter().all(|i| i["code"].is_null()),
        "codes are shown only once"
    );
    assert_eq!(items[0]["revoked"], true);

    // Unknown and malformed codes are simply not found.
    join("Zes", "ACDE-FGHJ-KMNP".into())
        .await
        .expect_problem(404, "not_found");
    join("Zes", "0000".into())
        .await
        .expect_problem(404, "not_found");
    app.stop().await;
}
both_backends!(invites_expire_run_out_and_can_be_revoked);

async fn joining_records_consent_and_members_control_their_membership(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let other_circle = app.circle(&worker, "Geldzorgen").await;

    // Consent must be to the current agreement version.
    let code = app.invite(&worker, &circle, 5).await;
    app.post(
        "/v1/join",
        None,
        json!({"code": code, "pseudonym": "Zon", "consent_version": 0}),
    )
    .await
    .expect_problem(409, "agreement_changed");
    let r = app
        .post(
            "/v1/join",
            None,
            json!({"code": code, "pseudonym": "Zon", "consent_version": 1, "locale": "en", "time_zone": "Europe/Lisbon"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["account"]["role"], "member");
    assert_eq!(r.body["account"]["email"], serde_json::Value::Null);
    assert_eq!(r.body["account"]["time_zone"], "Europe/Lisbon");
    assert_eq!(r.body["membership"]["consent"]["version"], 1);
    assert_eq!(
        r.body["membership"]["consent"]["at"],
        "2026-03-02T09:00:00Z"
    );
    let member = r.str("/tokens/access_token");

    // A signed-in member joins a second circle with the same account.
    let code2 = app.invite(&worker, &other_circle, 1).await;
    let r = app
        .post(
            "/v1/join",
            Some(&member),
            json!({"code": code2, "pseudonym": "Zonnetje", "consent_version": 1}),
        )
        .await
        .expect(201);
    assert!(r.body["tokens"].is_null());
    let list = app.get("/v1/circles", Some(&member)).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);

    // Staff cannot join with an invite; a member of another organisation cannot either.
    let code3 = app.invite(&worker, &circle, 5).await;
    app.post(
        "/v1/join",
        worker.token(),
        json!({"code": code3, "pseudonym": "Sam", "consent_version": 1}),
    )
    .await
    .expect_problem(403, "staff_cannot_join");
    let other_org = app.organisation("Elders", "eva@elders.example").await;
    let other_worker = app.worker(&other_org, "olaf@elders.example").await;
    let elsewhere = app.circle(&other_worker, "Elders").await;
    let outsider = app.member(&other_worker, &elsewhere, "Buiten").await;
    app.post(
        "/v1/join",
        outsider.token(),
        json!({"code": code3, "pseudonym": "Buiten", "consent_version": 1}),
    )
    .await
    .expect_problem(409, "other_organisation");

    // Away-until, nudges off, pseudonym change.
    let path = format!("/v1/circles/{circle}/membership");
    app.patch(
        &path,
        Some(&member),
        json!({"away_until": "2026-03-01T09:00:00Z"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.patch(
        &path,
        Some(&member),
        json!({"away_until": "2027-06-01T09:00:00Z"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.patch(&path, Some(&member), json!({"away_until": "tomorrow"}))
        .await
        .expect_problem(422, "validation_failed");
    let r = app
        .patch(
            &path,
            Some(&member),
            json!({"away_until": "2026-03-09T09:00:00+01:00", "nudges_enabled": false, "pseudonym": "Zonnig"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["state"], "away");
    assert_eq!(r.body["away_until"], "2026-03-09T08:00:00Z");
    assert_eq!(r.body["nudges_enabled"], false);
    assert_eq!(r.body["pseudonym"], "Zonnig");

    // The worker sees the member's state; other members see only the pseudonym.
    let peer = app.member(&worker, &circle, "Maan").await;
    let seen_by_worker = app
        .get(&format!("/v1/circles/{circle}/members"), worker.token())
        .await
        .expect(200);
    let zonnig = seen_by_worker.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["pseudonym"] == "Zonnig")
        .unwrap()
        .clone();
    assert_eq!(zonnig["state"], "away");
    assert_eq!(zonnig["nudges_enabled"], false);
    let seen_by_peer = app
        .get(&format!("/v1/circles/{circle}/members"), peer.token())
        .await
        .expect(200);
    let zonnig = seen_by_peer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["pseudonym"] == "Zonnig")
        .unwrap()
        .clone();
    assert!(
        zonnig["state"].is_null()
            && zonnig["away_until"].is_null()
            && zonnig["account_id"].is_null()
    );

    // Ending the break.
    let r = app
        .patch(&path, Some(&member), json!({"away_until": null}))
        .await
        .expect(200);
    assert_eq!(r.body["state"], "active");

    // A changed agreement needs new consent.
    app.patch(
        &format!("/v1/circles/{circle}"),
        worker.token(),
        json!({"agreement_text": "Nieuwe afspraken"}),
    )
    .await
    .expect(200);
    app.post(
        &format!("{path}/consent"),
        Some(&member),
        json!({"version": 1}),
    )
    .await
    .expect_problem(409, "agreement_changed");
    let r = app
        .post(
            &format!("{path}/consent"),
            Some(&member),
            json!({"version": 2}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["consent"]["version"], 2);

    // Leaving: the circle disappears for the member.
    app.post(&format!("{path}/leave"), Some(&member), json!({}))
        .await
        .expect(204);
    app.get(&format!("/v1/circles/{circle}"), Some(&member))
        .await
        .expect_problem(404, "not_found");
    let list = app.get("/v1/circles", Some(&member)).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}
both_backends!(joining_records_consent_and_members_control_their_membership);
