//! The silence engine's rules, one test per defect seen in long use
//! (issue 11): alerts never wait behind nudges, breaks restart the silence
//! however they end, every contact request reaches the workers, policy
//! changes map by time and respect the member's hours, nothing happens
//! during a break, every recipient's hours count, and a silence is never
//! forgotten. All on the injected clock; times are CET (UTC+1) in March.

use serde_json::{Value, json};

use crate::both_backends;
use crate::push::{World, world};
use crate::support::{Backend, Person};
use push_mocks::Subscription;

impl World {
    fn pushes(&self, sub: &Subscription, kind: &str) -> Vec<Value> {
        self.webpush
            .received()
            .into_iter()
            .filter(|r| r.subscription == sub.id && r.payload["kind"] == kind)
            .map(|r| r.payload)
            .collect()
    }

    async fn checkin(&self, person: &Person, body: Value) {
        self.app
            .post(
                &format!("/v1/circles/{}/checkins", self.circle),
                person.token(),
                body,
            )
            .await
            .expect(201);
    }

    async fn set_circle(&self, body: Value) {
        self.app
            .patch(
                &format!("/v1/circles/{}", self.circle),
                self.worker.token(),
                body,
            )
            .await
            .expect(200);
    }

    async fn set_membership(&self, person: &Person, body: Value) -> Value {
        self.app
            .patch(
                &format!("/v1/circles/{}/membership", self.circle),
                person.token(),
                body,
            )
            .await
            .expect(200)
            .body
    }

    async fn alerts_about(&self, pseudonym: &str) -> Vec<Value> {
        self.alerts(&self.worker)
            .await
            .into_iter()
            .filter(|a| a["pseudonym"] == pseudonym)
            .collect()
    }
}

/// Defect 1: rhythm 1 (nudges at 24 h and 36 h, the alert at 48 h), a
/// reminder time of 12:30: the second nudge waits for 12:30 on the day after,
/// the alert does not wait for it.
async fn an_alert_never_waits_behind_a_nudge(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    w.set_circle(json!({"rhythm_days": 1})).await;
    w.app
        .patch(
            "/v1/me",
            w.zon.token(),
            json!({"preferred_reminder_time": "12:30"}),
        )
        .await
        .expect(200);
    w.app.clock.set("2026-03-03T00:00:00Z".parse().unwrap());
    w.checkin(&w.zon, json!({"mood": 3})).await;
    w.at("2026-03-04T11:30:00Z").await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 1);
    w.at("2026-03-05T00:00:00Z").await;
    let alerts = w.alerts_about("Zon").await;
    assert_eq!(alerts.len(), 1, "the alert opens at the policy's time");
    assert_eq!(alerts[0]["opened_at"], "2026-03-05T00:00:00Z");
    assert_eq!(alerts[0]["silent_since"], "2026-03-03T00:00:00Z");
    // The nudge still waiting then is sent at the member's reminder time.
    w.at("2026-03-05T11:29:00Z").await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 1);
    w.at("2026-03-05T11:30:00Z").await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 2);
    w.app.stop().await;
}
both_backends!(an_alert_never_waits_behind_a_nudge);

/// Defect 2: a break ended early (null) or shortened starts the silence at
/// the break's new end.
async fn a_break_ended_early_starts_a_new_silence(backend: Backend) {
    let w = world(backend).await;
    w.at("2026-03-03T10:00:00Z").await;
    for p in [&w.zon, &w.maan] {
        w.set_membership(p, json!({"away_until": "2026-03-20T09:00:00Z"}))
            .await;
    }
    w.at("2026-03-04T10:00:00Z").await;
    w.set_membership(&w.maan, json!({"away_until": "2026-03-05T10:00:00Z"}))
        .await;
    w.at("2026-03-06T10:00:00Z").await;
    let view = w.set_membership(&w.zon, json!({"away_until": null})).await;
    assert_eq!(view["away_until"], Value::Null, "{view}");
    w.at("2026-03-06T10:01:00Z").await;
    assert!(w.inbox(&w.zon, "nudge").await.is_empty());
    assert!(w.alerts(&w.worker).await.is_empty());
    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["condition"], "active");
    assert_eq!(zon["next_step_due_at"], "2026-03-08T10:00:00Z");
    let maan = w.overview_member("Maan").await;
    assert_eq!(maan["next_step_due_at"], "2026-03-07T10:00:00Z");
    // Four days after each break's end, the alert, silent since then.
    w.at("2026-03-09T10:00:00Z").await;
    let maan = w.alerts_about("Maan").await;
    assert_eq!(maan.len(), 1);
    assert_eq!(maan[0]["silent_since"], "2026-03-05T10:00:00Z");
    assert!(w.alerts_about("Zon").await.is_empty());
    w.at("2026-03-10T10:00:00Z").await;
    let zon = w.alerts_about("Zon").await;
    assert_eq!(zon.len(), 1);
    assert_eq!(zon[0]["silent_since"], "2026-03-06T10:00:00Z");
    w.app.stop().await;
}
both_backends!(a_break_ended_early_starts_a_new_silence);

/// Defect 3 (and 12): every "I would like contact" opens an alert and pushes
/// the workers at once, even while an earlier one is acknowledged; the list
/// pages with a cursor.
async fn every_contact_request_reaches_the_workers(backend: Backend) {
    let w = world(backend).await;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.worker, &sub).await;
    // A policy without silence alerts, so only contact requests alert.
    w.set_circle(json!({"escalation_policy": {
        "steps": [{"after_hours": 1440, "action": "nudge"}],
        "coordinator_after_working_hours": null
    }}))
    .await;
    // Saturday night: contact requests do not wait for working hours.
    w.at("2026-03-07T23:00:00Z").await;
    w.checkin(&w.zon, json!({"mood": 1, "wants_contact": true}))
        .await;
    w.tick().await;
    assert_eq!(w.pushes(&sub, "alert").len(), 1);
    let first = w.alerts_about("Zon").await;
    assert_eq!(first.len(), 1);
    let id = first[0]["id"].as_str().unwrap().to_owned();
    w.app
        .post(
            &format!("/v1/alerts/{id}/acknowledge"),
            w.worker.token(),
            json!({}),
        )
        .await
        .expect(200);
    for day in ["2026-03-12T23:00:00Z", "2026-03-13T02:00:00Z"] {
        w.at(day).await;
        w.checkin(&w.zon, json!({"mood": 2, "wants_contact": true}))
            .await;
        w.tick().await;
    }
    assert_eq!(w.pushes(&sub, "alert").len(), 3, "every request is pushed");
    let open: Vec<Value> = w
        .alerts_about("Zon")
        .await
        .into_iter()
        .filter(|a| a["reason"] == "contact_request" && a["status"] == "open")
        .collect();
    assert_eq!(open.len(), 2);

    // Paging: two, then one, then the end.
    let page = w
        .app
        .get("/v1/alerts?status=all&limit=2", w.worker.token())
        .await
        .expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let cursor = page.str("/next_cursor");
    let page = w
        .app
        .get(
            &format!("/v1/alerts?status=all&limit=2&cursor={cursor}"),
            w.worker.token(),
        )
        .await
        .expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["items"][0]["id"], id.as_str());
    assert_eq!(page.body["next_cursor"], Value::Null);
    w.app
        .get("/v1/alerts?limit=0", w.worker.token())
        .await
        .expect_problem(422, "validation_failed");
    w.app.stop().await;
}
both_backends!(every_contact_request_reaches_the_workers);

/// Defect 4: a rhythm change at 22:30 makes two nudges past due: they wait
/// for 09:00 and come as one push.
async fn a_policy_change_waits_for_the_members_morning(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.zon, &sub).await;
    w.at("2026-03-03T21:30:00Z").await;
    w.set_circle(json!({"rhythm_days": 1})).await;
    w.at("2026-03-03T21:31:00Z").await;
    assert!(w.inbox(&w.zon, "nudge").await.is_empty(), "quiet hours");
    w.at("2026-03-04T07:59:00Z").await;
    assert!(w.inbox(&w.zon, "nudge").await.is_empty());
    w.at("2026-03-04T08:00:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 1);
    assert_eq!(nudges[0]["created_at"], "2026-03-04T08:00:00Z");
    // The 48 h alert is on time; no second nudge that day.
    w.at("2026-03-04T09:00:00Z").await;
    assert_eq!(w.alerts_about("Zon").await.len(), 1);
    w.at("2026-03-04T19:59:00Z").await;
    assert_eq!(w.pushes(&sub, "nudge").len(), 1, "one nudge push a day");
    w.app.stop().await;
}
both_backends!(a_policy_change_waits_for_the_members_morning);

/// Defect 5: a five-step policy at its fourth step, changed to the
/// three-step default: the position maps by time and the alert still comes.
async fn a_policy_change_mid_silence_maps_by_time(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    let step = |h: i64, a: &str| json!({"after_hours": h, "action": a});
    w.set_circle(json!({"escalation_policy": {
        "steps": [step(24, "nudge"), step(48, "nudge"), step(72, "nudge"), step(96, "nudge"), step(120, "alert_worker")],
        "coordinator_after_working_hours": null
    }}))
    .await;
    for day in 3..=5 {
        w.at(&format!("2026-03-{day:02}T09:00:00Z")).await;
    }
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 3);
    w.at("2026-03-05T12:00:00Z").await;
    w.set_circle(json!({"rhythm_days": 2})).await;
    let zon = w.overview_member("Zon").await;
    assert_eq!(zon["next_step_due_at"], "2026-03-06T09:00:00Z", "{zon}");
    w.at("2026-03-06T09:00:00Z").await;
    assert_eq!(w.alerts_about("Zon").await.len(), 1);
    assert_eq!(
        w.inbox(&w.zon, "nudge").await.len(),
        3,
        "48 h and 72 h are behind"
    );
    w.app.stop().await;
}
both_backends!(a_policy_change_mid_silence_maps_by_time);

/// Defect 6 (and the notice on an open alert): while a member is away their
/// alerts neither wake nor escalate; after the break the new silence's alert
/// step tells the workers again on the alert still open.
async fn nothing_happens_during_a_break(backend: Backend) {
    let w = world(backend).await;
    // Both silent from Monday; alerts on Friday 10:00.
    w.at("2026-03-06T09:00:00Z").await;
    let zon = w.alerts_about("Zon").await;
    let maan = w.alerts_about("Maan").await;
    assert_eq!((zon.len(), maan.len()), (1, 1));
    let maan_id = maan[0]["id"].as_str().unwrap().to_owned();
    w.app
        .post(
            &format!("/v1/alerts/{maan_id}/snooze"),
            w.worker.token(),
            json!({"until": "2026-03-07T09:00:00Z"}),
        )
        .await
        .expect(200);
    w.at("2026-03-06T12:00:00Z").await;
    w.set_membership(&w.zon, json!({"away_until": "2026-03-16T09:00:00Z"}))
        .await;
    w.set_membership(&w.maan, json!({"away_until": "2026-03-12T09:00:00Z"}))
        .await;
    let before = w.inbox(&w.worker, "alert").await.len();
    for day in 7..=11 {
        w.at(&format!("2026-03-{day:02}T12:00:00Z")).await;
    }
    assert_eq!(
        w.inbox(&w.worker, "alert").await.len(),
        before,
        "no wake-up"
    );
    assert!(w.inbox(&w.coordinator, "alert_escalated").await.is_empty());
    let zon = w.alerts_about("Zon").await;
    assert_eq!(zon[0]["escalated_at"], Value::Null);
    assert_eq!(w.alerts_about("Maan").await[0]["status"], "snoozed");
    // Maan's break ends: the snooze that ran out during it wakes now.
    w.at("2026-03-12T09:00:00Z").await;
    let titles: Vec<String> = w
        .inbox(&w.worker, "alert")
        .await
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles.len(), before + 1, "{titles:?}");
    assert!(titles.iter().all(|t| !t.contains('-')), "{titles:?}");
    // Zon's silence restarts on the 16th: four days later the open alert is raised again.
    w.at("2026-03-20T08:59:00Z").await;
    let count = w.inbox(&w.worker, "alert").await.len();
    w.at("2026-03-20T09:00:00Z").await;
    assert_eq!(w.inbox(&w.worker, "alert").await.len(), count + 1);
    let zon = w.alerts_about("Zon").await;
    assert_eq!(zon.len(), 1, "the open alert, told again");
    assert_eq!(zon[0]["last_notified_at"], "2026-03-20T09:00:00Z");
    assert!(zon[0]["escalate_at"].is_string());
    w.app.stop().await;
}
both_backends!(nothing_happens_during_a_break);

/// Defect 7: the escalation push waits for the coordinator's own working
/// hours, in their time zone.
async fn escalation_waits_for_the_coordinators_hours(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.coordinator, &sub).await;
    w.app
        .patch(
            "/v1/me",
            w.coordinator.token(),
            json!({"time_zone": "Asia/Tokyo"}),
        )
        .await
        .expect(200);
    // The alert on Friday 10:00 CET; one working day later, Monday 10:00 CET
    // (18:00 in Tokyo), it escalates.
    w.at("2026-03-06T09:00:00Z").await;
    w.at("2026-03-09T09:00:00Z").await;
    assert_eq!(w.inbox(&w.coordinator, "alert_escalated").await.len(), 1);
    w.at("2026-03-09T23:59:00Z").await;
    assert!(w.pushes(&sub, "alert_escalated").is_empty());
    // Tuesday 09:00 in Tokyo.
    w.at("2026-03-10T00:00:00Z").await;
    assert_eq!(w.pushes(&sub, "alert_escalated").len(), 1);
    w.app.stop().await;
}
both_backends!(escalation_waits_for_the_coordinators_hours);

/// Defect 8: a reminder time inside the member's own quiet hours is refused,
/// whichever of the two changes.
async fn a_reminder_time_inside_quiet_hours_is_refused(backend: Backend) {
    let w = world(backend).await;
    w.app
        .patch(
            "/v1/me",
            w.zon.token(),
            json!({"quiet_hours": {"start": "22:00", "end": "10:00"}, "preferred_reminder_time": "09:00"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    w.app
        .patch(
            "/v1/me",
            w.zon.token(),
            json!({"preferred_reminder_time": "09:30"}),
        )
        .await
        .expect(200);
    let r = w
        .app
        .patch(
            "/v1/me",
            w.zon.token(),
            json!({"quiet_hours": {"start": "22:00", "end": "10:00"}}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["preferred_reminder_time"]);
    w.app.stop().await;
}
both_backends!(a_reminder_time_inside_quiet_hours_is_refused);

/// Defect 9: a merged nudge names only circles whose nudges are on.
async fn merged_nudges_name_only_circles_with_nudges_on(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    for (name, nudges) in [("Tweede kring", false), ("Derde kring", true)] {
        let circle = w.app.circle(&w.worker, name).await;
        let code = w.app.invite(&w.worker, &circle, 1).await;
        w.app
            .post(
                "/v1/join",
                w.zon.token(),
                json!({"code": code, "pseudonym": "Zon", "consent_version": 1}),
            )
            .await
            .expect(201);
        w.app
            .patch(
                &format!("/v1/circles/{circle}/membership"),
                w.zon.token(),
                json!({"nudges_enabled": nudges}),
            )
            .await
            .expect(200);
        if !nudges {
            // Its alert step falls due the same morning as the others' nudges.
            w.app
                .patch(
                    &format!("/v1/circles/{circle}"),
                    w.worker.token(),
                    json!({"rhythm_days": 1}),
                )
                .await
                .expect(200);
        }
    }
    w.at("2026-03-04T09:00:00Z").await;
    let nudges = w.inbox(&w.zon, "nudge").await;
    assert_eq!(nudges.len(), 1);
    let title = nudges[0]["title"].as_str().unwrap();
    assert!(
        title.contains("Samen sterk") && title.contains("Derde kring"),
        "{title}"
    );
    assert!(!title.contains("Tweede kring"), "{title}");
    w.app.stop().await;
}
both_backends!(merged_nudges_name_only_circles_with_nudges_on);

/// Defect 10: an alert opened on Sunday and resolved by the member's return
/// that afternoon is not pushed on Monday; nor is its all clear.
async fn a_resolved_alert_is_not_pushed_later(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.worker, &sub).await;
    w.at("2026-03-04T12:00:00Z").await;
    w.checkin(&w.zon, json!({"mood": 3})).await;
    w.at("2026-03-08T12:00:00Z").await;
    assert_eq!(w.alerts_about("Zon").await.len(), 1);
    w.at("2026-03-08T15:00:00Z").await;
    w.checkin(&w.zon, json!({"mood": 4})).await;
    w.at("2026-03-09T08:00:00Z").await;
    w.at("2026-03-09T12:00:00Z").await;
    assert!(w.pushes(&sub, "alert").is_empty());
    assert!(w.pushes(&sub, "all_clear").is_empty());
    assert_eq!(w.inbox(&w.worker, "alert").await.len(), 1);
    assert_eq!(w.inbox(&w.worker, "all_clear").await.len(), 1);
    w.app.stop().await;
}
both_backends!(a_resolved_alert_is_not_pushed_later);

/// Defect 11 and the repeat: the alert speaks as a worker would; after a
/// worker resolved it, a member who stays silent is raised again every
/// week, and the nudges back off (a week, then every two weeks).
async fn a_silence_is_never_forgotten(backend: Backend) {
    let w = world(backend).await;
    w.leave(&w.maan).await;
    for day in 4..=6 {
        w.at(&format!("2026-03-{day:02}T09:00:00Z")).await;
    }
    let alerts = w.alerts_about("Zon").await;
    assert_eq!(alerts.len(), 1);
    let titles = w.inbox(&w.worker, "alert").await;
    assert_eq!(titles[0]["title"], "Zon is al ongeveer 4 dagen stil");
    let id = alerts[0]["id"].as_str().unwrap();
    w.at("2026-03-06T12:00:00Z").await;
    w.app
        .post(
            &format!("/v1/alerts/{id}/resolve"),
            w.worker.token(),
            json!({"outcome": "no_answer"}),
        )
        .await
        .expect(200);
    w.at("2026-03-13T08:59:00Z").await;
    assert_eq!(w.alerts_about("Zon").await.len(), 1);
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 2);
    w.at("2026-03-13T09:00:00Z").await;
    let alerts = w.alerts_about("Zon").await;
    assert_eq!(alerts.len(), 2, "still quiet a week later: a new alert");
    assert_eq!(alerts[0]["status"], "open");
    assert_eq!(
        w.inbox(&w.zon, "nudge").await.len(),
        3,
        "a week after the ladder"
    );
    w.at("2026-03-20T09:00:00Z").await;
    assert_eq!(
        w.alerts_about("Zon").await.len(),
        2,
        "told again on the open one"
    );
    let titles = w.inbox(&w.worker, "alert").await;
    assert_eq!(titles.len(), 3);
    assert_eq!(
        titles[0]["title"],
        "Zon is nog steeds stil, al ongeveer 18 dagen"
    );
    w.at("2026-03-26T12:00:00Z").await;
    assert_eq!(
        w.inbox(&w.zon, "nudge").await.len(),
        3,
        "then every two weeks"
    );
    w.at("2026-03-27T09:00:00Z").await;
    assert_eq!(w.inbox(&w.zon, "nudge").await.len(), 4);
    w.app.stop().await;
}
both_backends!(a_silence_is_never_forgotten);
