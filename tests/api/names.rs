//! Names that look right but are not: look-alike letters, decomposed
//! accents, invisible and control characters (issue 12, item 12).

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn look_alike_pseudonyms_collide_in_a_circle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    app.member(&worker, &circle, "Worker b").await;
    let zoe = app.member(&worker, &circle, "Zoë").await;
    let code = app.invite(&worker, &circle, 10).await;
    let join = |pseudonym: &'static str| {
        let code = code.clone();
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

    // A Cyrillic е, a decomposed ë, case and spacing: the same name to a reader.
    for taken in ["Work\u{0435}r b", "Zoe\u{0308}", "WORKER  B", "w0rker b"] {
        join(taken).await.expect_problem(409, "pseudonym_taken");
    }
    // Invisible characters are refused, not silently kept.
    for invisible in [
        "Worker b\u{200b}",
        "Wor\u{200d}ker c",
        "\u{202e}Worker d",
        "Worker\u{2066} e",
        "Worker f\u{feff}",
        "Worker\u{3164}g",
        "\u{115f}Worker h",
        "Worker i\u{ad}",
    ] {
        let r = join(invisible)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["pseudonym"], "{invisible:?}");
    }
    // A name is stored as one normal form (NFC).
    let r = join("Rene\u{0301}e").await.expect(201);
    assert_eq!(r.str("/membership/pseudonym"), "Ren\u{e9}e");

    // Renaming follows the same rules.
    app.patch(
        &format!("/v1/circles/{circle}/membership"),
        zoe.token(),
        json!({"pseudonym": "Worker \u{0431}"}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/v1/circles/{circle}/membership"),
        zoe.token(),
        json!({"pseudonym": "Work\u{0435}r b"}),
    )
    .await
    .expect_problem(409, "pseudonym_taken");
    app.stop().await;
}
both_backends!(look_alike_pseudonyms_collide_in_a_circle);

async fn invisible_and_control_characters_never_reach_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    let coordinator = org.coordinator.token();

    // Circle names, display names, e-mails, login names, device labels.
    let r = app
        .post(
            "/v1/circles",
            worker.token(),
            json!({"name": "Samen\u{200b} sterk"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["name"]);
    let r = app
        .patch(
            "/v1/me",
            worker.token(),
            json!({"display_name": "Sam\u{202e} Jansen"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["display_name"]);
    let r = app
        .post(
            "/v1/organisation/staff",
            coordinator,
            json!({"role": "worker", "email": "kim\u{200b}@buurtwerk.example", "display_name": "Kim\u{2060}"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(fields, vec!["display_name", "email"]);
    let code = app.invite(&worker, &circle, 3).await;
    let r = app
        .post(
            "/v1/join",
            None,
            json!({"code": code, "pseudonym": "Maan", "consent_version": 1,
                   "login_name": "maan\u{200c}52", "password": crate::support::PASSWORD}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["login_name"]);
    let r = app
        .post(
            "/v1/devices",
            member.token(),
            json!({"kind": "fcm", "token": "fcm-registration-token-0001", "label": "Pixel\u{202d} 7"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["label"]);

    // A decomposed name is stored composed.
    let r = app
        .patch(
            "/v1/me",
            worker.token(),
            json!({"display_name": "Sam Bre\u{0301}da"}),
        )
        .await
        .expect(200);
    assert_eq!(r.str("/display_name"), "Sam Br\u{e9}da");

    // Control characters other than tab and newline, in any text field.
    let r = app
        .post(
            &format!("/v1/circles/{circle}/posts"),
            member.token(),
            json!({"body": "Rood \u{1b}[31mgevaar"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["body"]);
    let r = app
        .post(
            &format!("/v1/circles/{circle}/checkins"),
            member.token(),
            json!({"mood": 3, "note": "moe\u{85}"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["note"]);
    // Tab and newline stay welcome in notes and posts.
    let r = app
        .post(
            &format!("/v1/circles/{circle}/checkins"),
            member.token(),
            json!({"mood": 3, "note": "moe\n\tmaar goed"}),
        )
        .await
        .expect(201);
    assert_eq!(r.str("/note"), "moe\n\tmaar goed");
    app.post(
        &format!("/v1/circles/{circle}/posts"),
        member.token(),
        json!({"body": "Eerste regel\nTweede\tregel"}),
    )
    .await
    .expect(201);
    app.stop().await;
}
both_backends!(invisible_and_control_characters_never_reach_the_database);
