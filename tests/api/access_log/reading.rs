//! Reading the log: a member sees exactly the entries about themselves (and
//! reading them is not logged); coordinators filter the organisation's log
//! (and reading it is).

use jiff::SignedDuration;
use serde_json::Value;

use super::{World, entries};
use crate::both_backends;
use crate::support::{Backend, TestApp};

fn items(r: &Value) -> Vec<Value> {
    r["items"].as_array().unwrap().clone()
}

fn operation_id(method: &str, path: &str) -> String {
    let spec: Value = serde_json::from_str(&kring::app::spec_json()).unwrap();
    spec["paths"][path][method]["operationId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn time(app: &TestApp) -> String {
    kring::clock::Clock::now(&app.clock).to_string()
}

async fn members_see_exactly_their_own_entries(backend: Backend) {
    let w = World::new(backend).await;
    let (app, c) = (&w.app, &w.circle);
    w.checkin(&w.zon, 3).await;
    w.checkin(&w.maan, 4).await;
    w.read_checkins(&w.worker).await;

    let mine = app
        .get("/v1/me/access-log", w.zon.token())
        .await
        .expect(200);
    let list = items(&mine.body);
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e["staff"]["display_name"], "Worker");
    assert_eq!(e["staff"]["role"], "worker");
    assert_eq!(
        (e["kind"].as_str(), e["action"].as_str()),
        (Some("checkins"), Some("list"))
    );
    assert_eq!(e["result_count"], 1);
    assert_eq!(e["circle_id"], c.as_str());
    assert_eq!(e["membership_id"], w.zon.membership());
    assert_eq!(
        e["access_point"]["operation"],
        operation_id("get", "/v1/circles/{circle_id}/checkins")
    );
    assert_eq!(mine.body["next_cursor"], Value::Null);
    // Nothing about anyone else: not maan's, not the worker's account.
    let text = mine.body.to_string();
    for other in [
        w.maan.account_id.as_str(),
        w.maan.membership(),
        &w.worker.account_id,
    ] {
        assert!(!text.contains(other), "{other} in {text}");
    }
    let theirs = app
        .get("/v1/me/access-log", w.maan.token())
        .await
        .expect(200);
    assert_eq!(items(&theirs.body).len(), 1);
    assert_eq!(items(&theirs.body)[0]["membership_id"], w.maan.membership());
    let staff = app
        .get("/v1/me/access-log", w.worker.token())
        .await
        .expect(200);
    assert!(items(&staff.body).is_empty(), "staff are not members");
    assert_eq!(
        entries(app).await.len(),
        2,
        "reading one's own log is not logged"
    );

    // A day later the coordinator looks at the overview.
    app.advance(SignedDuration::from_hours(24));
    let midway = time(app);
    app.advance(SignedDuration::from_hours(1));
    app.get(
        &format!("/v1/circles/{c}/overview"),
        w.org.coordinator.token(),
    )
    .await
    .expect(200);
    let list = items(
        &app.get("/v1/me/access-log", w.zon.token())
            .await
            .expect(200)
            .body,
    );
    let kinds: Vec<&str> = list.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["overview", "checkins"], "newest first");
    assert_eq!(list[0]["staff"]["role"], "coordinator");
    assert_eq!(list[0]["staff"]["display_name"], "Coordinator");

    // By period.
    let from = app
        .get(&format!("/v1/me/access-log?from={midway}"), w.zon.token())
        .await
        .expect(200);
    assert_eq!(items(&from.body).len(), 1);
    assert_eq!(items(&from.body)[0]["kind"], "overview");
    let until = app
        .get(&format!("/v1/me/access-log?until={midway}"), w.zon.token())
        .await
        .expect(200);
    assert_eq!(items(&until.body).len(), 1);
    assert_eq!(items(&until.body)[0]["kind"], "checkins");

    // In pages.
    let first = app
        .get("/v1/me/access-log?limit=1", w.zon.token())
        .await
        .expect(200);
    assert_eq!(items(&first.body)[0]["kind"], "overview");
    let cursor = first.str("/next_cursor");
    let second = app
        .get(
            &format!("/v1/me/access-log?limit=1&cursor={cursor}"),
            w.zon.token(),
        )
        .await
        .expect(200);
    assert_eq!(items(&second.body)[0]["kind"], "checkins");
    assert_eq!(second.body["next_cursor"], Value::Null);

    // Bad input is a 422 naming the field.
    for (query, field) in [
        ("from=yesterday", "from"),
        ("cursor=bm9wZQ", "cursor"),
        ("limit=0", "limit"),
    ] {
        let r = app
            .get(&format!("/v1/me/access-log?{query}"), w.zon.token())
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), [field], "{query}");
    }
    // A period that ends before it starts holds nothing.
    let empty = app
        .get(
            &format!("/v1/me/access-log?from={midway}&until={midway}"),
            w.zon.token(),
        )
        .await
        .expect(200);
    assert_eq!(items(&empty.body).len(), 0);
    app.get("/v1/me/access-log", None)
        .await
        .expect_problem(401, "unauthenticated");
    w.app.stop().await;
}
both_backends!(members_see_exactly_their_own_entries);

async fn coordinators_filter_the_organisation_log(backend: Backend) {
    let w = World::new(backend).await;
    let (app, c) = (&w.app, &w.circle);
    let coordinator = &w.org.coordinator;
    w.checkin(&w.zon, 3).await;
    w.checkin(&w.maan, 4).await;
    w.read_checkins(&w.worker).await;
    app.get(&format!("/v1/circles/{c}/members"), coordinator.token())
        .await
        .expect(200);
    app.advance(SignedDuration::from_hours(1));
    let midway = time(app);
    app.advance(SignedDuration::from_hours(1));
    app.get(&format!("/v1/circles/{c}/overview"), w.worker.token())
        .await
        .expect(200);
    let log = "/v1/organisation/access-log";

    let all = app.get(log, coordinator.token()).await.expect(200);
    let list = items(&all.body);
    assert_eq!(list.len(), 6);
    let first = &list[0];
    assert_eq!(first["kind"], "overview");
    assert_eq!(first["staff"]["account_id"], w.worker.account_id.as_str());
    assert_eq!(first["staff"]["role"], "worker");
    assert!(first["seq"].as_i64().unwrap() >= 5);
    assert!(first["access_point"]["session_id"].is_string());
    assert!(list.iter().all(|e| e["on_behalf_of"].is_null()));
    assert!(
        list.iter()
            .any(|e| e["member"]["account_id"] == w.zon.account_id.as_str()
                && e["member"]["membership_id"] == w.zon.membership())
    );

    // Reading the organisation's log is logged: each member it showed.
    let zon_log = items(
        &app.get("/v1/me/access-log", w.zon.token())
            .await
            .expect(200)
            .body,
    );
    assert_eq!(zon_log[0]["kind"], "access_log");
    assert_eq!(zon_log[0]["staff"]["role"], "coordinator");
    assert_eq!(zon_log[0]["result_count"], 3);

    // By staff member.
    let by_worker = app
        .get(
            &format!("{log}?staff_id={}", w.worker.account_id),
            coordinator.token(),
        )
        .await
        .expect(200);
    let list = items(&by_worker.body);
    assert_eq!(list.len(), 4);
    assert!(
        list.iter()
            .all(|e| e["staff"]["account_id"] == w.worker.account_id.as_str())
    );
    // By member: zon's entries only (by now including the log reads).
    let zon = &w.zon.account_id;
    let about_zon = app
        .get(
            &format!("{log}?member_id={zon}&limit=100"),
            coordinator.token(),
        )
        .await
        .expect(200);
    let list = items(&about_zon.body);
    assert!(list.len() >= 5);
    assert!(
        list.iter()
            .all(|e| e["member"]["account_id"] == zon.as_str())
    );
    // By kind, and by period.
    let checkins = app
        .get(&format!("{log}?kind=checkins"), coordinator.token())
        .await
        .expect(200);
    let list = items(&checkins.body);
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|e| e["kind"] == "checkins"));
    let early = app
        .get(&format!("{log}?until={midway}"), coordinator.token())
        .await
        .expect(200);
    let early = items(&early.body);
    assert_eq!(early.len(), 4);
    assert!(
        early
            .iter()
            .all(|e| e["kind"] == "checkins" || e["kind"] == "member_list")
    );
    let late = app
        .get(
            &format!("{log}?from={midway}&kind=overview"),
            coordinator.token(),
        )
        .await
        .expect(200);
    assert_eq!(items(&late.body).len(), 2);
    // Paging.
    let page = app
        .get(&format!("{log}?limit=2"), coordinator.token())
        .await
        .expect(200);
    let cursor = page.str("/next_cursor");
    let next = app
        .get(
            &format!("{log}?limit=2&cursor={cursor}"),
            coordinator.token(),
        )
        .await
        .expect(200);
    assert_ne!(items(&page.body)[0]["id"], items(&next.body)[0]["id"]);

    // Only coordinators, and bad filters are 422.
    app.get(log, w.worker.token())
        .await
        .expect_problem(403, "coordinator_only");
    app.get(log, w.zon.token())
        .await
        .expect_problem(403, "coordinator_only");
    let r = app
        .get(&format!("{log}?kind=gossip"), coordinator.token())
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), ["kind"]);

    // Another organisation sees none of it.
    let elsewhere = app.organisation("Elders", "eva@elders.example").await;
    let theirs = app
        .get(log, elsewhere.coordinator.token())
        .await
        .expect(200);
    assert!(items(&theirs.body).is_empty());
    w.app.stop().await;
}
both_backends!(coordinators_filter_the_organisation_log);
