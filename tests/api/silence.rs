//! The silence engine, driven by the injected clock: nudges, alerts and
//! escalation at the right local times, exactly once.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::both_backends;
use crate::push::{World, world};
use crate::support::{Backend, Person};

impl World {
    /// Moves the clock to `at` and lets the scheduler and delivery catch up.
    pub(crate) async fn at(&self, at: &str) {
        self.app.clock.set(at.parse().unwrap());
        self.tick().await;
    }

    pub(crate) async fn tick(&self) {
        kring::jobs::silence::run_until_idle(&self.app.state)
            .await
            .unwrap();
        kring::jobs::delivery::run_until_idle(&self.app.state)
            .await
            .unwrap();
    }

    pub(crate) async fn inbox(&self, person: &Person, kind: &str) -> Vec<Value> {
        let r = self
            .app
            .get("/v1/notifications?limit=100", person.token())
            .await
            .expect(200);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == kind)
            .cloned()
            .collect()
    }

    /// A member leaves the circle (so only the others' silence counts).
    pub(crate) async fn leave(&self, person: &Person) {
        self.app
            .post(
                &format!("/v1/circles/{}/membership/leave", self.circle),
                person.token(),
                json!({}),
            )
            .await
            .expect(204);
    }

    /// One member's line in the circle overview, as the worker sees it.
    pub(crate) async fn overview_member(&self, pseudonym: &str) -> Value {
        let r = self
            .app
            .get(
                &format!("/v1/circles/{}/overview", self.circle),
                self.worker.token(),
            )
            .await
            .expect(200);
        r.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["pseudonym"] == pseudonym)
            .cloned()
            .unwrap()
    }

    pub(crate) async fn alerts(&self, person: &Person) -> Vec<Value> {
        let r = self
            .app
            .get("/v1/alerts?status=all", person.token())
            .await
            .expect(200);
        r.body["items"].as_array().unwrap().clone()
    }
}

fn hour_in_amsterdam(at: &Value) -> i8 {
    let t: Timestamp = at.as_str().unwrap().parse().unwrap();
    t.to_zoned(jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap())
        .hour()
}

/// Silent from Thursday 22 October 2026, 23:30 in Amsterdam, over the night
/// the clocks go back (Sunday 25 October, 03:00 CEST → 02:00 CET).
async fn five_silent_days_across_the_dst_change(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    w.leave(&w.maan).await;
    let worker_sub = w.webpush.subscribe();
    w.register_webpush(&w.worker, &worker_sub).await;

    // Zon's last activity: Thursday 23:30 CEST = 21:30Z.
    app.clock.set("2026-10-22T21:30:00Z".parse().unwrap());
    app.post(
        &format!("/v1/circles/{}/checkins/ok", w.circle),
        w.zon.token(),
        json!({}),
    )
    .await
    .expect(201);

    // +48 h is Saturday 23:30 CEST, inside quiet hours: the nudge waits for
    // 09:00 on Sunday, which after the change is 09:00 CET = 08:00Z.
    w.at("2026-10-24T21:30:00Z").await;
    w.at("2026-10-25T07:59:00Z").await;
    assert!(
        w.inbox(&w.zon, "nudge").await.is_empty(),
        "nothing in quiet hours"
    );
    w.at("2026-10-25T08:00:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 1);
    assert_eq!(nudges[0]["created_at"], "2026-10-25T08:00:00Z");
    assert_eq!(hour_in_amsterdam(&nudges[0]["created_at"]), 9);

    // +72 h is Sunday 22:30 CET: the second nudge comes Monday 09:00 CET.
    w.at("2026-10-26T07:59:00Z").await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 1);
    w.at("2026-10-26T08:00:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 2);
    assert_ne!(
        nudges[0]["body"], nudges[1]["body"],
        "never the same text twice in a row"
    );

    // +96 h is Monday 22:30 CET: the alert opens then (the worker sees it in
    // the API), and its push waits for the worker's hours: Tuesday 09:00 CET.
    w.at("2026-10-26T21:29:00Z").await;
    assert!(w.alerts(&w.worker).await.is_empty());
    w.at("2026-10-26T21:30:00Z").await;
    let alerts = w.alerts(&w.worker).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "open");
    assert_eq!(alerts[0]["reason"], "silence");
    assert_eq!(alerts[0]["pseudonym"], "Zon");
    assert_eq!(alerts[0]["silent_since"], "2026-10-22T21:30:00Z");
    // Escalation after one working day (8 hours) from Tuesday 09:00: 17:00 CET.
    assert_eq!(alerts[0]["escalate_at"], "2026-10-27T16:00:00Z");
    let before = w
        .webpush
        .received()
        .iter()
        .filter(|r| r.payload["kind"] == "alert")
        .count();
    assert_eq!(before, 0, "no alert push outside working hours");
    w.at("2026-10-27T08:00:00Z").await;
    let pushed: Vec<_> = w
        .webpush
        .received()
        .into_iter()
        .filter(|r| r.payload["kind"] == "alert")
        .collect();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].payload["alert_id"], alerts[0]["id"]);
    assert_eq!(
        pushed[0].payload["title"],
        "Zon is al ongeveer 4 dagen stil"
    );

    // Nobody acknowledged it: the coordinators hear at 17:00 CET, once.
    w.at("2026-10-27T15:59:00Z").await;
    let org_coordinator = w.coordinator().await;
    assert!(
        w.inbox(&org_coordinator, "alert_escalated")
            .await
            .is_empty()
    );
    w.at("2026-10-27T16:00:00Z").await;
    w.at("2026-10-27T18:00:00Z").await;
    let escalated = w.inbox(&org_coordinator, "alert_escalated").await;
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0]["alert_id"], alerts[0]["id"]);

    // Nothing ever fired inside Zon's quiet hours, and nothing twice.
    for n in w.inbox(&w.zon, "nudge").await {
        let hour = hour_in_amsterdam(&n["created_at"]);
        assert!((9..21).contains(&hour), "nudge at {hour}:00");
    }
    w.at("2026-10-29T12:00:00Z").await;
    assert_eq!(
        w.inbox(&w.zon, "nudge").await.len(),
        2,
        "the ladder has no more nudges"
    );
    assert_eq!(w.alerts(&w.worker).await.len(), 1);
    w.app.stop().await;
}
both_backends!(five_silent_days_across_the_dst_change);

impl World {
    /// The organisation's coordinator, signed in.
    async fn coordinator(&self) -> Person {
        let r = self
            .app
            .post(
                "/v1/auth/login",
                None,
                json!({"login": "anna@buurtwerk.example", "password": crate::support::PASSWORD}),
            )
            .await
            .expect(200);
        Person::from_auth(&r)
    }
}

async fn returning_after_the_alert_clears_it(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    w.leave(&w.maan).await;
    // Monday 2 March 10:00 CET; silent until the alert on Friday 10:00.
    w.at("2026-03-06T09:00:00Z").await;
    let alerts = w.alerts(&w.worker).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["condition"], "alerted");
    assert_eq!(zon["quiet_for_hours"], 96);

    // Zon posts: the alert resolves itself and the worker gets the all clear.
    w.at("2026-03-06T12:00:00Z").await;
    app.post(
        &format!("/v1/circles/{}/posts", w.circle),
        w.zon.token(),
        json!({"body": "Ik was op vakantie!"}),
    )
    .await
    .expect(201);
    w.tick().await;
    let alert = app
        .get(
            &format!("/v1/alerts/{}", alerts[0]["id"].as_str().unwrap()),
            w.worker.token(),
        )
        .await
        .expect(200);
    assert_eq!(alert.body["status"], "resolved");
    assert_eq!(alert.body["resolution_outcome"], "member_active");
    let clear = w.inbox(&w.worker, "all_clear").await;
    assert_eq!(clear.len(), 1);
    assert_eq!(clear[0]["title"], "Zon is weer actief");
    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["condition"], "active");
    // The ladder starts again from the post: next nudge two days later, 13:00 CET.
    assert_eq!(zon["next_step_due_at"], "2026-03-08T12:00:00Z");
    w.app.stop().await;
}
both_backends!(returning_after_the_alert_clears_it);

async fn away_for_a_week_and_nudges_off(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let membership = format!("/v1/circles/{}/membership", w.circle);
    // Zon is away until Monday 9 March 10:00 CET; Maan turns nudges off.
    app.patch(
        &membership,
        w.zon.token(),
        json!({"away_until": "2026-03-09T09:00:00Z"}),
    )
    .await
    .expect(200);
    app.patch(
        &membership,
        w.maan.token(),
        json!({"nudges_enabled": false}),
    )
    .await
    .expect(200);

    for day in 3..=9 {
        w.at(&format!("2026-03-{day:02}T12:00:00Z")).await;
    }
    // Zon: nothing during the break. Maan: no nudges, but the alert after 4 days.
    assert!(w.inbox(&w.zon, "nudge").await.is_empty());
    assert!(w.inbox(&w.maan, "nudge").await.is_empty());
    let alerts = w.alerts(&w.worker).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["pseudonym"], "Maan");
    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["nudges_enabled"], true);

    // Zon's silence starts when the break ends: the first nudge two days later.
    w.at("2026-03-11T08:59:00Z").await;
    assert!(w.inbox(&w.zon, "nudge").await.is_empty());
    w.at("2026-03-11T09:00:00Z").await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 1);
    w.app.stop().await;
}
both_backends!(away_for_a_week_and_nudges_off);

async fn three_circles_one_nudge_a_day(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    w.leave(&w.maan).await;
    for name in ["Tweede kring", "Derde kring"] {
        let circle = app.circle(&w.worker, name).await;
        let code = app.invite(&w.worker, &circle, 1).await;
        app.post(
            "/v1/join",
            w.zon.token(),
            json!({"code": code, "pseudonym": "Zon", "consent_version": 1}),
        )
        .await
        .expect(201);
    }
    // All three circles have been silent since Monday 10:00 CET.
    w.at("2026-03-04T09:00:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 1, "one nudge, not three");
    let title = nudges[0]["title"].as_str().unwrap();
    assert!(
        title.contains("Samen sterk")
            && title.contains("Tweede kring")
            && title.contains("Derde kring"),
        "{title}"
    );
    // The next day: the second nudges, again merged into one.
    w.at("2026-03-05T09:00:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 2);
    // "I'm OK" from the nudge answers for every circle: all three ladders restart.
    let r = app
        .post("/v1/me/im-ok", w.zon.token(), json!({}))
        .await
        .expect(201);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    app.post("/v1/me/im-ok", w.worker.token(), json!({}))
        .await
        .expect_problem(403, "members_only");
    let due: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT next_step_due_at FROM memberships WHERE account_id = $1")
            .bind(&w.zon.account_id)
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
    let two_days = app.now_ms() + 48 * 3_600_000;
    assert!(
        due.iter().all(|d| d.is_some_and(|d| d >= two_days)),
        "{due:?}"
    );
    // Every step was recorded once per circle.
    let steps: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM silence_steps WHERE action = 'nudge'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(steps, 6);
    w.app.stop().await;
}
both_backends!(three_circles_one_nudge_a_day);

async fn a_worker_with_working_hours_and_a_contact_request(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.worker, &sub).await;
    // Sam works Wednesdays and Thursdays, 13:00–17:00.
    let me = app
        .patch(
            "/v1/me",
            w.worker.token(),
            json!({"working_hours": {"days": [3, 4], "start": "13:00", "end": "17:00"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        me.body["working_hours"],
        json!({"days": [3, 4], "start": "13:00", "end": "17:00"})
    );
    app.patch(
        "/v1/me",
        w.zon.token(),
        json!({"working_hours": {"days": [1], "start": "09:00", "end": "17:00"}}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Zon asks for contact on Monday night: an alert at once, pushed at once.
    w.at("2026-03-02T22:00:00Z").await;
    app.post(
        &format!("/v1/circles/{}/checkins", w.circle),
        w.zon.token(),
        json!({"mood": 1, "wants_contact": true}),
    )
    .await
    .expect(201);
    w.tick().await;
    let alerts = w.alerts(&w.worker).await;
    assert_eq!(alerts[0]["reason"], "contact_request");
    let pushes: Vec<_> = w
        .webpush
        .received()
        .into_iter()
        .filter(|r| r.payload["kind"] == "alert")
        .collect();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].payload["title"], "Zon wil graag contact");

    // Silence alerts wait for Sam's hours: Maan's falls due Friday 6 March
    // 10:00 CET, Zon's (silent since her check-in) Friday 23:00 CET; Sam next
    // works Wednesday 11 March at 13:00 CET.
    w.at("2026-03-06T09:00:00Z").await;
    assert!(
        w.alerts(&w.worker)
            .await
            .iter()
            .any(|a| a["pseudonym"] == "Maan")
    );
    w.at("2026-03-06T22:00:00Z").await;
    assert!(
        w.alerts(&w.worker)
            .await
            .iter()
            .any(|a| a["pseudonym"] == "Zon" && a["reason"] == "silence")
    );
    w.at("2026-03-11T11:59:00Z").await;
    assert_eq!(
        w.webpush
            .received()
            .iter()
            .filter(|r| r.payload["kind"] == "alert")
            .count(),
        1
    );
    w.at("2026-03-11T12:00:00Z").await;
    let titles: Vec<String> = w
        .webpush
        .received()
        .into_iter()
        .filter(|r| r.payload["kind"] == "alert")
        .map(|r| r.payload["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(
        titles.contains(&"Maan is al ongeveer 4 dagen stil".to_owned()),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"Zon is al ongeveer 4 dagen stil".to_owned()),
        "{titles:?}"
    );
    w.app.stop().await;
}
both_backends!(a_worker_with_working_hours_and_a_contact_request);

async fn alerts_are_acknowledged_snoozed_and_resolved(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    w.at("2026-03-06T09:00:00Z").await;
    let alerts = w.alerts(&w.worker).await;
    assert_eq!(alerts.len(), 2);
    let (a, b) = (
        alerts[0]["id"].as_str().unwrap().to_owned(),
        alerts[1]["id"].as_str().unwrap().to_owned(),
    );

    // Members and outsiders cannot see alerts.
    app.get(&format!("/v1/alerts/{a}"), w.zon.token())
        .await
        .expect_problem(404, "not_found");
    app.get("/v1/alerts", w.zon.token())
        .await
        .expect_problem(403, "staff_only");

    // Acknowledged: no escalation.
    let r = app
        .post(
            &format!("/v1/alerts/{a}/acknowledge"),
            w.worker.token(),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "acknowledged");
    // Snoozed until Monday: it opens again then, and the workers hear of it.
    app.post(
        &format!("/v1/alerts/{b}/snooze"),
        w.worker.token(),
        json!({"until": "yesterday"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let r = app
        .post(
            &format!("/v1/alerts/{b}/snooze"),
            w.worker.token(),
            json!({"until": "2026-03-09T09:00:00Z"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "snoozed");
    let alert_items = w.inbox(&w.worker, "alert").await.len();
    w.at("2026-03-09T09:00:00Z").await;
    let r = app
        .get(&format!("/v1/alerts/{b}"), w.worker.token())
        .await
        .expect(200);
    assert_eq!(r.body["status"], "open");
    assert_eq!(w.inbox(&w.worker, "alert").await.len(), alert_items + 1);

    // Resolved with a note; then it is closed for changes.
    let r = app
        .post(
            &format!("/v1/alerts/{a}/resolve"),
            w.worker.token(),
            json!({"outcome": "reached", "note": "Gebeld, gaat goed."}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "resolved");
    assert_eq!(r.body["resolution_note"], "Gebeld, gaat goed.");
    app.post(
        &format!("/v1/alerts/{a}/acknowledge"),
        w.worker.token(),
        json!({}),
    )
    .await
    .expect_problem(409, "alert_resolved");
    app.post(
        &format!("/v1/alerts/{b}/resolve"),
        w.worker.token(),
        json!({"outcome": "member_active"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let open = app.get("/v1/alerts", w.worker.token()).await.expect(200);
    assert_eq!(open.body["items"].as_array().unwrap().len(), 1);
    // Neither escalated: one was acknowledged, the other snoozed (which counts as handling it).
    let coordinator = w.coordinator().await;
    assert!(w.inbox(&coordinator, "alert_escalated").await.is_empty());
    w.app.stop().await;
}
both_backends!(alerts_are_acknowledged_snoozed_and_resolved);

async fn every_step_fires_exactly_once(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    w.leave(&w.maan).await;
    app.clock.set("2026-03-04T09:00:00Z".parse().unwrap());
    // Two scheduler instances tick at the same moment.
    let state = &app.state;
    let (a, b) = tokio::join!(
        kring::jobs::silence::tick(state),
        kring::jobs::silence::tick(state)
    );
    assert_eq!(a.unwrap().fired + b.unwrap().fired, 1);
    // A scheduler that crashed after firing (its schedule not yet moved on)
    // finds the step taken and fires nothing twice.
    sqlx::query("UPDATE memberships SET next_step_index = 0, next_step_due_at = $1, schedule_lease_until = NULL WHERE id = $2")
        .bind(app.now_ms() - 1000)
        .bind(w.zon.membership())
        .execute(state.store.pool())
        .await
        .unwrap();
    let t = kring::jobs::silence::tick(state).await.unwrap();
    assert_eq!((t.claimed, t.fired), (1, 0));
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 1);
    w.app.advance(SignedDuration::from_hours(1));
    w.tick().await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 1);
    w.app.stop().await;
}
both_backends!(every_step_fires_exactly_once);

async fn racing_schedulers_lose_nothing_and_duplicate_nothing(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let mut members = vec![w.zon.clone(), w.maan.clone()];
    for i in 0..8 {
        members.push(app.member(&w.worker, &w.circle, &format!("Lid {i}")).await);
    }
    // A scheduler fires Zon's first nudge and crashes before committing: the
    // step and its notification vanish together.
    app.clock.set("2026-03-04T09:00:00Z".parse().unwrap());
    {
        let mut tx = app.state.store.begin().await.unwrap();
        let fired = kring::silence::engine::fire_due(&mut tx, w.zon.membership(), app.now_ms())
            .await
            .unwrap();
        assert!(fired);
        drop(tx);
    }
    // Two instances race through everything that is due.
    let state = &app.state;
    let (a, b) = tokio::join!(
        kring::jobs::silence::run_until_idle(state),
        kring::jobs::silence::run_until_idle(state)
    );
    assert_eq!(
        a.unwrap().fired + b.unwrap().fired,
        members.len(),
        "each member's step fired once"
    );
    for m in &members {
        assert_eq!(
            w.inbox(m, "nudge").await.len(),
            1,
            "one nudge each, none lost"
        );
    }
    w.app.stop().await;
}
both_backends!(racing_schedulers_lose_nothing_and_duplicate_nothing);

async fn reminder_time_im_ok_action_and_overview(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.zon, &sub).await;
    // Zon likes reminders at 19:30; Maan takes a break.
    app.patch(
        "/v1/me",
        w.zon.token(),
        json!({"preferred_reminder_time": "19:30"}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/v1/circles/{}/membership", w.circle),
        w.maan.token(),
        json!({"away_until": "2026-03-20T09:00:00Z"}),
    )
    .await
    .expect(200);
    // Zon's moods over a few days; the last check-in is Tuesday 10:00 CET.
    for (day, mood) in [(2, 2), (2, 3), (3, 4)] {
        w.at(&format!("2026-03-0{day}T09:{:02}:00Z", mood)).await;
        app.post(
            &format!("/v1/circles/{}/checkins", w.circle),
            w.zon.token(),
            json!({"mood": mood}),
        )
        .await
        .expect(201);
    }
    // +48 h is Thursday 10:04 CET; the nudge waits for 19:30 CET that day.
    w.at("2026-03-05T18:29:00Z").await;
    assert!(w.inbox(&w.zon, "nudge").await.is_empty());
    w.at("2026-03-05T18:30:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 1);
    assert_eq!(nudges[0]["created_at"], "2026-03-05T18:30:00Z");
    // The push offers "I'm OK"; answering it restarts the ladder.
    let push = w
        .webpush
        .received()
        .into_iter()
        .find(|r| r.payload["kind"] == "nudge")
        .expect("a nudge push");
    assert_eq!(push.payload["actions"], json!(["im_ok"]));
    assert_eq!(push.payload["membership_id"], w.zon.membership());

    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["condition"], "nudged");
    assert_eq!(zon["recent_moods"], json!([2, 3, 4]));
    assert_eq!(zon["mood_average_14d"], 3.0);
    let maan = w.overview_member("Maan").await;
    assert_eq!(maan["condition"], "away");
    assert_eq!(maan["away_until"], "2026-03-20T09:00:00Z");

    app.post("/v1/me/im-ok", w.zon.token(), json!({}))
        .await
        .expect(201);
    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["condition"], "active");

    // Alerts filter by circle.
    w.at("2026-03-10T12:00:00Z").await;
    let mine = app
        .get(
            &format!("/v1/alerts?circle_id={}", w.circle),
            w.worker.token(),
        )
        .await
        .expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    let other = app
        .get("/v1/alerts?circle_id=elsewhere", w.worker.token())
        .await
        .expect(200);
    assert!(other.body["items"].as_array().unwrap().is_empty());
    app.get("/v1/alerts?status=maybe", w.worker.token())
        .await
        .expect_problem(422, "validation_failed");
    w.app.stop().await;
}
both_backends!(reminder_time_im_ok_action_and_overview);
