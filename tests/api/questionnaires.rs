//! Questionnaires (issue 14, phase 2a): the default plan, making each due
//! questionnaire once, asking and reminding gently within the one message
//! a day, expiring, answering (validated, once, also in parallel),
//! declining, turning measurement off, and the scores a member and the
//! circle's staff see.

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Person, Resp, TestApp};

const DAY: i64 = 86_400_000;

/// Runs the questionnaire job until nothing is due.
async fn run(app: &TestApp) -> kring::questionnaires::schedule::Round {
    kring::jobs::run_until_idle(&kring::jobs::questionnaires::Questionnaires, &app.state)
        .await
        .unwrap()
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// How many questionnaire messages (inbox items) an account got.
async fn messages(app: &TestApp, account_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM notifications WHERE account_id = $1 AND kind = 'questionnaire'",
    )
    .bind(account_id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap()
}

async fn open_list(app: &TestApp, who: &Person) -> Vec<Value> {
    app.get("/v1/me/questionnaires", who.token())
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn who5(answer: &str) -> Value {
    json!({"answers": {"who5_1": answer, "who5_2": answer, "who5_3": answer, "who5_4": answer, "who5_5": answer}})
}

async fn answer(app: &TestApp, who: &Person, id: &str, body: Value) -> Resp {
    app.post(
        &format!("/v1/me/questionnaires/{id}/answers"),
        who.token(),
        body,
    )
    .await
}

async fn q_row(app: &TestApp, id: &str) -> (String, i64) {
    sqlx::query_as("SELECT status, prompts_sent FROM questionnaires WHERE id = $1")
        .bind(id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

struct World {
    app: TestApp,
    worker: Person,
    circle: String,
}

async fn world(backend: Backend) -> World {
    let app = TestApp::spawn_with(backend, |c| c.access_token_ttl_secs = 400 * 86_400).await;
    let org = app.organisation("Welzijn", "coord@example.org").await;
    let worker = app.worker(&org, "worker@example.org").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    World {
        app,
        worker,
        circle,
    }
}

both_backends!(a_member_is_asked_answers_is_reminded_and_sees_scores);
async fn a_member_is_asked_answers_is_reminded_and_sees_scores(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    // Joined Monday 10:00 in Amsterdam.
    let zon = app.member(&worker, &circle, "Zon").await;
    app.post(
        "/v1/devices",
        zon.token(),
        json!({"kind": "fcm", "token": "fcm-token-zon-00000000000001"}),
    )
    .await
    .expect(201);
    let joined = app.now_ms();

    // The agreement says what is asked and that it is voluntary.
    let c = app
        .get(&format!("/v1/circles/{circle}"), zon.token())
        .await
        .expect(200);
    let text = c.body["agreement"]["text"]
        .as_str()
        .or(c.body["agreement_text"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains("WHO-5") && text.contains("vrijwillig"),
        "{text}"
    );

    // The intake is made at the join, for the app to show at once: that is
    // its ask, without a message.
    let list = open_list(&app, &zon).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["moment"], "intake");
    assert_eq!(list[0]["status"], "open");
    let intake = list[0]["id"].as_str().unwrap().to_owned();
    let round = run(&app).await;
    assert_eq!(round.made, 0, "made once, at the join");
    assert_eq!(messages(&app, &zon.account_id).await, 0);

    // In the member's language, with items and options in order.
    let q = app
        .get(&format!("/v1/me/questionnaires/{intake}"), zon.token())
        .await
        .expect(200);
    assert_eq!(q.body["title"], "WHO-5 Welbevinden Index");
    assert_eq!(q.body["items"].as_array().unwrap().len(), 5);
    assert_eq!(q.body["items"][0]["options"][0]["label"], "Voortdurend");
    assert!(q.body["voluntary"].as_str().unwrap().contains("vrijwillig"));

    // Each bad item is named.
    let bad = answer(
        &app,
        &zon,
        &intake,
        json!({"answers": {"who5_1": "often", "who5_9": "at_no_time"}}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(fields, ["answers.who5_1", "answers.who5_9"]);
    answer(&app, &zon, &intake, json!({"answers": {}}))
        .await
        .expect_problem(422, "validation_failed");

    // Answered an hour later: 5 × 2 = raw 10, 40 %, poor well-being.
    app.advance(SignedDuration::from_hours(1));
    let r = answer(&app, &zon, &intake, who5("less_than_half"))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "answered");
    assert_eq!(r.body["result"]["raw"], 10);
    assert_eq!(r.body["result"]["score"], 40);
    assert_eq!(r.body["result"]["band"]["label"], "Laag welbevinden");
    assert_eq!(r.body["answers"]["who5_3"], "less_than_half");
    answer(&app, &zon, &intake, who5("at_no_time"))
        .await
        .expect_problem(409, "questionnaire_answered");
    // Answering is activity in the circle.
    let last: i64 = sqlx::query_scalar("SELECT last_activity_at FROM memberships WHERE id = $1")
        .bind(zon.membership())
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(last, app.now_ms());
    assert!(open_list(&app, &zon).await.is_empty());

    // Six weeks after joining: week_6 is asked, then reminded after 3 and 7 days, then no more.
    app.advance(SignedDuration::from_millis(
        joined + 42 * DAY - app.now_ms(),
    ));
    run(&app).await;
    let list = open_list(&app, &zon).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["moment"], "week_6");
    let week6 = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(q_row(&app, &week6).await, ("open".into(), 1));
    assert_eq!(messages(&app, &zon.account_id).await, 1);
    // Monday 13 April 09:00Z is 11:00 in Amsterdam: pushed at once.
    let not_before: i64 = sqlx::query_scalar(
        "SELECT d.not_before FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE n.account_id = $1 AND n.kind = 'questionnaire'",
    )
    .bind(&zon.account_id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(not_before, joined + 42 * DAY);
    app.advance(days(2));
    run(&app).await;
    assert_eq!(q_row(&app, &week6).await.1, 1, "no reminder before 3 days");
    app.advance(days(1));
    run(&app).await;
    assert_eq!(q_row(&app, &week6).await.1, 2, "the first reminder");
    app.advance(days(4));
    run(&app).await;
    assert_eq!(q_row(&app, &week6).await.1, 3, "the second reminder");
    app.advance(days(6));
    run(&app).await;
    assert_eq!(
        q_row(&app, &week6).await,
        ("open".into(), 3),
        "never a third"
    );
    assert_eq!(messages(&app, &zon.account_id).await, 3);
    // 14 days after the moment: expired, not listed, no answer taken.
    app.advance(days(1));
    run(&app).await;
    assert_eq!(q_row(&app, &week6).await.0, "expired");
    assert!(open_list(&app, &zon).await.is_empty());
    answer(&app, &zon, &week6, who5("at_no_time"))
        .await
        .expect_problem(409, "questionnaire_expired");

    // The member's own scores, with the band in words.
    let mine = app.get("/v1/me/outcomes", zon.token()).await.expect(200);
    let series = &mine.body["items"][0];
    assert_eq!(series["instrument"], "who5");
    assert_eq!(series["points"].as_array().unwrap().len(), 1);
    assert_eq!(series["points"][0]["score"], 40);
    assert_eq!(series["points"][0]["band"]["label"], "Laag welbevinden");

    // The worker sees each member's scores; another member sees nothing.
    let staff = app
        .get(&format!("/v1/circles/{circle}/outcomes"), worker.token())
        .await
        .expect(200);
    assert_eq!(staff.body["items"][0]["pseudonym"], "Zon");
    assert_eq!(
        staff.body["items"][0]["series"][0]["points"][0]["score"],
        40
    );
    app.get(&format!("/v1/circles/{circle}/outcomes"), zon.token())
        .await
        .expect_problem(403, "staff_only");
    app.stop().await;
}

both_backends!(trends_show_the_change_since_intake);
async fn trends_show_the_change_since_intake(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let zon = app.member(&worker, &circle, "Zon").await;
    run(&app).await;
    let intake = open_list(&app, &zon).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    answer(&app, &zon, &intake, who5("some_of_the_time"))
        .await
        .expect(200);
    app.advance(days(42));
    run(&app).await;
    let week6 = open_list(&app, &zon).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    answer(&app, &zon, &week6, who5("more_than_half"))
        .await
        .expect(200);
    // 20 % → 60 %.
    let staff = app
        .get(&format!("/v1/circles/{circle}/outcomes"), worker.token())
        .await
        .expect(200);
    let series = &staff.body["items"][0]["series"][0];
    assert_eq!(series["points"].as_array().unwrap().len(), 2);
    assert_eq!(series["change_since_intake"], 40);
    let mine = app.get("/v1/me/outcomes", zon.token()).await.expect(200);
    assert_eq!(mine.body["items"][0]["change_since_intake"], 40);

    // The member's export holds both, with answers and scores.
    let export = app
        .post("/v1/me/export", zon.token(), json!({}))
        .await
        .expect(202)
        .str("/id");
    kring::jobs::run_until_idle(&kring::jobs::exports::Builder, &app.state)
        .await
        .unwrap();
    let doc = app
        .get(&format!("/v1/me/exports/{export}/download"), zon.token())
        .await
        .expect(200)
        .body;
    let qs = doc["questionnaires"].as_array().unwrap();
    assert_eq!(qs.len(), 2);
    assert_eq!(qs[0]["moment"], "intake");
    assert_eq!(qs[0]["scaled_score"], 20);
    assert_eq!(qs[1]["answers"]["who5_5"], "more_than_half");
    assert_eq!(qs[1]["band"], "no_sign_of_low");
    app.stop().await;
}

both_backends!(parallel_answers_store_one_set);
async fn parallel_answers_store_one_set(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let zon = app.member(&worker, &circle, "Zon").await;
    run(&app).await;
    let id = open_list(&app, &zon).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/me/questionnaires/{id}/answers");
    let sends = (0..8).map(|i| {
        let key = format!("answer-{i}");
        let path = path.clone();
        let app = &app;
        let zon = &zon;
        async move {
            app.request_with(
                reqwest::Method::POST,
                &path,
                zon.token(),
                Some(who5("most_of_the_time")),
                &[("Idempotency-Key", key.as_str())],
            )
            .await
        }
    });
    let results = futures_util::future::join_all(sends).await;
    let ok: Vec<&Resp> = results.iter().filter(|r| r.status == 200).collect();
    let conflicts = results
        .iter()
        .filter(|r| r.status == 409 && r.body["code"] == "questionnaire_answered")
        .count();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(conflicts, 7);
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM questionnaire_answers WHERE questionnaire_id = $1",
    )
    .bind(&id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(stored, 5);
    // The winner's key replays its answer.
    let winner = results.iter().position(|r| r.status == 200).unwrap();
    let key = format!("answer-{winner}");
    let again = app
        .request_with(
            reqwest::Method::POST,
            &path,
            zon.token(),
            Some(who5("most_of_the_time")),
            &[("Idempotency-Key", key.as_str())],
        )
        .await
        .expect(200);
    assert_eq!(again.body, ok[0].body);
    app.stop().await;
}

both_backends!(two_instances_make_and_ask_each_once);
async fn two_instances_make_and_ask_each_once(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let mut members = Vec::new();
    for name in ["Zon", "Maan", "Ster", "Wolk", "Regen"] {
        members.push(app.member(&worker, &circle, name).await);
    }
    // Six weeks on: week_6 is due for all five (the intakes, made at the
    // join, expired unanswered on the way).
    app.advance(days(42));
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            kring::questionnaires::schedule::round(&app.state),
            kring::questionnaires::schedule::round(&app.state)
        );
        a.unwrap();
        b.unwrap();
    }
    run(&app).await;
    let made: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM questionnaires WHERE moment = 'week_6'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(made, 5);
    for m in &members {
        assert_eq!(messages(&app, &m.account_id).await, 1);
        let prompts: i64 =
            sqlx::query_scalar("SELECT prompts_sent FROM questionnaires WHERE account_id = $1")
                .bind(&m.account_id)
                .fetch_one(app.state.store.pool())
                .await
                .unwrap();
        assert_eq!(prompts, 1);
    }
    app.stop().await;
}

both_backends!(declining_and_turning_measurement_off_end_the_asking);
async fn declining_and_turning_measurement_off_end_the_asking(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let maan = app.member(&worker, &circle, "Maan").await;
    run(&app).await;
    let zon_intake = open_list(&app, &zon).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/v1/me/questionnaires/{zon_intake}/decline"),
            zon.token(),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "declined");
    answer(&app, &zon, &zon_intake, who5("at_no_time"))
        .await
        .expect_problem(409, "questionnaire_declined");
    app.post(
        &format!("/v1/me/questionnaires/{zon_intake}/decline"),
        zon.token(),
        json!({}),
    )
    .await
    .expect_problem(409, "questionnaire_declined");
    // Another account's questionnaire does not exist for you.
    app.get(&format!("/v1/me/questionnaires/{zon_intake}"), maan.token())
        .await
        .expect(404);

    // Maan turns measurement off: their open intake is no longer listed or reminded.
    let r = app
        .put(
            &format!("/v1/circles/{circle}/membership/measurement"),
            maan.token(),
            Some(json!({"on": false})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["on"], false);
    assert!(r.body["off_since"].is_string());
    assert!(open_list(&app, &maan).await.is_empty());
    app.put(
        &format!("/v1/circles/{circle}/membership/measurement"),
        worker.token(),
        Some(json!({"on": false})),
    )
    .await
    .expect_problem(403, "members_only");

    // Ten days on, then six weeks: Zon is not reminded of the declined
    // one but asked week_6; Maan is asked nothing more.
    app.advance(days(10));
    run(&app).await;
    app.advance(days(32));
    run(&app).await;
    assert_eq!(messages(&app, &zon.account_id).await, 1);
    assert_eq!(messages(&app, &maan.account_id).await, 0);
    let maan_made: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM questionnaires WHERE account_id = $1")
            .bind(&maan.account_id)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(maan_made, 1, "nothing new is made once off");
    let (status, prompts): (String, i64) =
        sqlx::query_as("SELECT status, prompts_sent FROM questionnaires WHERE account_id = $1")
            .bind(&maan.account_id)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), prompts), ("expired", 1));

    // On again: the next moment is asked.
    app.put(
        &format!("/v1/circles/{circle}/membership/measurement"),
        maan.token(),
        Some(json!({"on": true})),
    )
    .await
    .expect(200);
    app.advance(days(49));
    run(&app).await;
    assert_eq!(open_list(&app, &maan).await[0]["moment"], "month_3");
    app.stop().await;
}

both_backends!(the_question_waits_for_the_day_a_nudge_did_not_take);
async fn the_question_waits_for_the_day_a_nudge_did_not_take(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let week6_at = app.now_ms() + 42 * DAY;
    // A nudge went out this morning, a minute before week_6 is due: the
    // day's message is taken.
    app.advance(SignedDuration::from_millis(
        week6_at - 60_000 - app.now_ms(),
    ));
    sqlx::query("UPDATE accounts SET last_nudge_at = $1 WHERE id = $2")
        .bind(app.now_ms())
        .bind(&zon.account_id)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    app.advance(SignedDuration::from_secs(60));
    run(&app).await;
    assert_eq!(messages(&app, &zon.account_id).await, 0);
    let (status, prompts, next): (String, i64, i64) = sqlx::query_as(
        "SELECT status, prompts_sent, next_action_at FROM questionnaires
         WHERE account_id = $1 AND moment = 'week_6'",
    )
    .bind(&zon.account_id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!((status.as_str(), prompts), ("scheduled", 0));
    // Tomorrow 09:00 in Amsterdam (the end of quiet hours, CEST) = 07:00Z.
    let tomorrow_nine: i64 = "2026-04-14T07:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(next, tomorrow_nine);
    // It is listed (answerable) all the same.
    assert_eq!(open_list(&app, &zon).await.len(), 1);
    app.advance(SignedDuration::from_millis(tomorrow_nine - app.now_ms()));
    run(&app).await;
    assert_eq!(messages(&app, &zon.account_id).await, 1);
    let last: i64 = sqlx::query_scalar("SELECT last_nudge_at FROM accounts WHERE id = $1")
        .bind(&zon.account_id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(last, tomorrow_nine, "the ask took the day");
    app.stop().await;
}

both_backends!(staff_read_and_replace_the_plan);
async fn staff_read_and_replace_the_plan(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let path = format!("/v1/circles/{circle}/measurement-plan");
    let plan = app.get(&path, worker.token()).await.expect(200);
    let moments: Vec<(String, i64)> = plan.body["moments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["moment"].as_str().unwrap().to_owned(),
                m["offset_days"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moments,
        [
            ("intake".to_owned(), 0),
            ("week_6".to_owned(), 42),
            ("month_3".to_owned(), 91),
            ("month_6".to_owned(), 182),
            ("follow_up".to_owned(), 91)
        ]
    );
    assert_eq!(plan.body["ends_at"], Value::Null);

    // De Jong Gierveld needs the authors' permission recorded.
    let djg = json!({"ends_at": "2026-06-01T00:00:00Z", "moments": [
        {"instrument": "djg6", "moment": "intake", "anchor": "join", "offset_days": 0},
        {"instrument": "who5", "moment": "end", "anchor": "circle_end", "offset_days": 0}
    ]});
    let r = app
        .put(&path, worker.token(), Some(djg.clone()))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), ["moments[0].instrument"]);
    let r = app
        .put(
            &path,
            worker.token(),
            Some(json!({"ends_at": "soon", "moments": [
                {"instrument": "nope", "moment": "Intake!", "anchor": "join", "offset_days": -1},
                {"instrument": "who5", "moment": "intake", "anchor": "circle_end", "offset_days": 0}
            ]})),
        )
        .await
        .expect_problem(422, "validation_failed");
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "ends_at",
            "moments[0].instrument",
            "moments[0].moment",
            "moments[0].offset_days",
            "moments[1].moment"
        ]
    );
    let org: String = sqlx::query_scalar("SELECT organisation_id FROM circles WHERE id = $1")
        .bind(&circle)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO instrument_permissions (organisation_id, instrument_key, statement, recorded_by, recorded_at)
         VALUES ($1, 'djg6', 'Permission by letter, 2026', $2, 0)",
    )
    .bind(&org)
    .bind(&worker.account_id)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    let r = app.put(&path, worker.token(), Some(djg)).await.expect(200);
    assert_eq!(r.body["moments"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["ends_at"], "2026-06-01T00:00:00Z");

    // Members do not manage the plan.
    let zon = app.member(&worker, &circle, "Zon").await;
    app.get(&path, zon.token())
        .await
        .expect_problem(403, "staff_only");
    run(&app).await;
    let q = open_list(&app, &zon).await;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["instrument"], "djg6");

    // An empty plan asks nothing of the next member.
    app.put(
        &path,
        worker.token(),
        Some(json!({"ends_at": null, "moments": []})),
    )
    .await
    .expect(200);
    let maan = app.member(&worker, &circle, "Maan").await;
    run(&app).await;
    assert!(open_list(&app, &maan).await.is_empty());
    app.stop().await;
}

/// Prepares `members` so that each one's week_6 ask and first silence
/// nudge fall due together, on Monday 13 April 2026 at 19:00 in Amsterdam
/// (their reminder time), and leaves the clock there. Returns each one's
/// week_6 questionnaire and membership.
async fn ask_and_nudge_due_together(app: &TestApp, members: &[&Person]) -> Vec<(String, String)> {
    for m in members {
        app.post(
            "/v1/devices",
            m.token(),
            json!({"kind": "fcm", "token": format!("fcm-token-{}", m.account_id)}),
        )
        .await
        .expect(201);
        let intake = open_list(app, m).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.post(
            &format!("/v1/me/questionnaires/{intake}/decline"),
            m.token(),
            json!({}),
        )
        .await
        .expect(200);
        app.patch(
            "/v1/me",
            m.token(),
            json!({"preferred_reminder_time": "19:00"}),
        )
        .await
        .expect(200);
    }
    // Saturday 11 April, 12:00 in Amsterdam: "I'm OK". The first nudge is
    // due two days later, at 19:00 (the members' reminder time).
    to(app, at("2026-04-11T10:00:00Z"));
    for m in members {
        app.post("/v1/me/im-ok", m.token(), json!({}))
            .await
            .expect(201);
    }
    // Monday 13 April, 11:00: week_6 is made; its ask waits for 19:00.
    to(app, at("2026-04-13T09:30:00Z"));
    run(app).await;
    kring::jobs::silence::run_until_idle(&app.state)
        .await
        .unwrap();
    let mut due = Vec::new();
    for m in members {
        assert_eq!(messages(app, &m.account_id).await, 0);
        due.push(
            sqlx::query_as(
                "SELECT id, membership_id FROM questionnaires
                 WHERE account_id = $1 AND moment = 'week_6'",
            )
            .bind(&m.account_id)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap(),
        );
    }
    to(app, at("2026-04-13T17:00:00Z"));
    due
}

fn at(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn to(app: &TestApp, t: i64) {
    app.advance(SignedDuration::from_millis(t - app.now_ms()));
}

/// The kinds of the account's notifications that went out as pushes.
async fn pushes(app: &TestApp, account_id: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT n.kind, n.body FROM notifications n
         WHERE n.account_id = $1 AND EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)
         ORDER BY n.created_at",
    )
    .bind(account_id)
    .fetch_all(app.state.store.pool())
    .await
    .unwrap()
}

both_backends!(an_ask_due_with_a_nudge_rides_in_it);
async fn an_ask_due_with_a_nudge_rides_in_it(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let zon = app.member(&worker, &circle, "Zon").await;
    ask_and_nudge_due_together(&app, &[&zon]).await;
    // 19:00: the nudge goes out, and the ask rides in it.
    kring::jobs::silence::run_until_idle(&app.state)
        .await
        .unwrap();
    run(&app).await;
    let pushed = pushes(&app, &zon.account_id).await;
    assert_eq!(pushed.len(), 1, "one push: {pushed:?}");
    assert_eq!(pushed[0].0, "nudge");
    assert!(pushed[0].1.contains("vragenlijst"), "{}", pushed[0].1);
    // The ask is recorded, with an inbox item of its own.
    assert_eq!(messages(&app, &zon.account_id).await, 1);
    let week6: (String, i64) = sqlx::query_as(
        "SELECT status, prompts_sent FROM questionnaires WHERE account_id = $1 AND moment = 'week_6'",
    )
    .bind(&zon.account_id)
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(week6, ("open".to_owned(), 1));
    app.stop().await;
}

/// Waits until another transaction waits for a lock this test holds
/// (PostgreSQL), or gives it a moment to queue for the write lock (SQLite,
/// where writers take turns).
async fn until_waiting_for_a_lock(app: &TestApp) {
    if app.state.store.backend() != kring::store::Backend::Postgres {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        return;
    }
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the second transaction never waited for the first");
}

/// A message one instance decides for a member.
enum Decision {
    /// The questionnaire job acts on this questionnaire.
    Ask(String),
    /// The silence scheduler fires this membership's due steps.
    Nudge(String),
}

impl Decision {
    async fn decide(&self, conn: &mut sqlx::AnyConnection, now: i64) -> bool {
        match self {
            Decision::Ask(id) => kring::questionnaires::schedule::act(conn, id, now).await,
            Decision::Nudge(id) => kring::silence::engine::fire_due(conn, id, now).await,
        }
        .unwrap()
    }
}

/// `first` is decided and not yet committed when another instance decides
/// `second`; returns whether each sent a message.
async fn decided_at_once(app: &TestApp, first: Decision, second: Decision) -> (bool, bool) {
    let now = app.now_ms();
    let mut tx = app.state.store.begin().await.unwrap();
    let first_sent = first.decide(&mut tx, now).await;
    let state = app.state.clone();
    let other = tokio::spawn(async move {
        let mut tx = state.store.begin().await.unwrap();
        let sent = second.decide(&mut tx, now).await;
        tx.commit().await.unwrap();
        sent
    });
    until_waiting_for_a_lock(app).await;
    tx.commit().await.unwrap();
    (first_sent, other.await.unwrap())
}

async fn push_kinds(app: &TestApp, account_id: &str) -> Vec<String> {
    pushes(app, account_id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect()
}

both_backends!(a_nudge_and_an_ask_decided_at_once_send_one_message);
/// Two instances decide, in the same instant, a silence nudge and a
/// questionnaire's ask for one member: one message goes out, whichever
/// committed first; the other waits for the member's next moment.
async fn a_nudge_and_an_ask_decided_at_once_send_one_message(backend: Backend) {
    let World {
        app,
        worker,
        circle,
    } = world(backend).await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let maan = app.member(&worker, &circle, "Maan").await;
    let due = ask_and_nudge_due_together(&app, &[&zon, &maan]).await;

    // Zon: the ask is sent; before it commits, another instance decides
    // the nudge, which finds the day taken.
    let (question, membership) = due[0].clone();
    let sent = decided_at_once(&app, Decision::Ask(question), Decision::Nudge(membership)).await;
    assert_eq!(sent, (true, false), "the ask went out, the nudge did not");
    assert_eq!(push_kinds(&app, &zon.account_id).await, ["questionnaire"]);
    // The nudge waits for Zon's next moment: tomorrow at 19:00.
    let next: i64 = sqlx::query_scalar("SELECT next_step_due_at FROM memberships WHERE id = $1")
        .bind(&due[0].1)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(next, at("2026-04-14T17:00:00Z"));

    // Maan: the nudge is sent (the ask rides in it); before it commits,
    // another instance decides the ask on its own, which finds the day
    // taken.
    let (question, membership) = due[1].clone();
    let sent = decided_at_once(&app, Decision::Nudge(membership), Decision::Ask(question)).await;
    assert_eq!(
        sent,
        (true, false),
        "the nudge went out, the lone ask did not"
    );
    assert_eq!(push_kinds(&app, &maan.account_id).await, ["nudge"]);
    assert_eq!(q_row(&app, &due[1].0).await, ("open".to_owned(), 1));
    assert_eq!(
        messages(&app, &maan.account_id).await,
        1,
        "the ride-along's inbox item"
    );
    app.stop().await;
}
