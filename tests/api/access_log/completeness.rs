//! Proven complete: every operation of the spec has a logging decision, and
//! every operation whose decision is to log writes the expected entries
//! when staff call it (with the read caches on), and none when a member
//! reads their own circle.

use std::collections::{BTreeSet, HashMap};

use kring::access_log::chain::Entry;
use kring::access_log::policy::{Decision, POLICY};
use kring::posts::FirstPageCache;
use reqwest::Method;
use serde_json::{Value, json};

use super::{CLIENT, World, entries, expect, seen, verify};
use crate::both_backends;
use crate::support::{Backend, Person, Resp};

/// The served spec.
fn spec() -> Value {
    serde_json::from_str(&kring::app::spec_json()).unwrap()
}

/// Every operation of the spec: (METHOD, path) → operationId.
fn operations(spec: &Value) -> HashMap<(String, String), String> {
    let mut ops = HashMap::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.insert(
                (method.to_uppercase(), path.clone()),
                op["operationId"].as_str().unwrap().to_owned(),
            );
        }
    }
    ops
}

/// The operations whose policy is to log.
fn logging() -> BTreeSet<(String, String)> {
    POLICY
        .iter()
        .filter(|d| matches!(d.decision, Decision::Logs(_)))
        .map(|d| (d.method.to_owned(), d.path.to_owned()))
        .collect()
}

#[test]
fn every_operation_has_a_logging_decision() {
    let ops = operations(&spec());
    let declared: BTreeSet<(String, String)> = POLICY
        .iter()
        .map(|d| (d.method.to_owned(), d.path.to_owned()))
        .collect();
    let undecided: Vec<_> = ops.keys().filter(|k| !declared.contains(*k)).collect();
    assert!(
        undecided.is_empty(),
        "operations without an access-log decision in src/access_log/policy.rs: {undecided:?}"
    );
    let stale: Vec<_> = declared.iter().filter(|k| !ops.contains_key(*k)).collect();
    assert!(
        stale.is_empty(),
        "decisions for operations the spec does not have: {stale:?}"
    );
    // The spec documents what each logging operation writes.
    let spec = spec();
    for (method, path) in logging() {
        let op = &spec["paths"][&path][method.to_lowercase()];
        assert!(
            op["x-kring-access-log"]["entries"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{method} {path}: x-kring-access-log"
        );
    }
}

/// Calls operations as staff and collects what each one logged.
struct Run<'a> {
    w: &'a World,
    ops: HashMap<(String, String), String>,
    covered: BTreeSet<(String, String)>,
}

impl Run<'_> {
    /// Calls `template` (filled in as `path`) as `who`; returns the answer
    /// and the entries it wrote, each checked for who and where.
    async fn call(
        &mut self,
        who: &Person,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (Resp, Vec<Entry>) {
        let before = entries(&self.w.app).await.len();
        let resp = self
            .w
            .app
            .request_with(
                method.clone(),
                path,
                who.token(),
                body,
                &[("user-agent", CLIENT)],
            )
            .await;
        assert!(
            resp.status.is_success(),
            "{method} {path}: {} {}",
            resp.status,
            resp.body
        );
        let all = entries(&self.w.app).await;
        let new = all[before..].to_vec();
        let key = (method.as_str().to_owned(), template.to_owned());
        let operation = self
            .ops
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} is not in the spec"));
        for e in &new {
            assert_eq!(&e.operation, operation, "{method} {template}");
            assert_eq!(e.actor_account_id, who.account_id);
            assert_eq!(e.client.as_deref(), Some(CLIENT));
            assert!(e.session_id.is_some());
            // Only an export started for a member and an erasure asked or
            // taken back for them are done on their behalf.
            let on_behalf = ((e.kind == "export" && e.action == "export") || e.kind == "erasure")
                .then(|| e.subject_account_id.clone());
            assert_eq!(e.on_behalf_of, on_behalf);
            assert!(e.circle_id.is_some() || e.subject_membership_id.is_none());
        }
        self.covered.insert(key);
        (resp, new)
    }
}

/// Each member's items in a list, as (membership, count), for members only.
fn per_member<'a>(
    items: impl IntoIterator<Item = (&'a Value, &'a Value)>,
) -> Vec<(String, Option<i64>)> {
    let mut counts: Vec<(String, Option<i64>)> = Vec::new();
    for (membership, role) in items {
        if role != "member" {
            continue;
        }
        let m = membership.as_str().unwrap().to_owned();
        match counts.iter_mut().find(|(id, _)| *id == m) {
            Some((_, n)) => *n = n.map(|n| n + 1),
            None => counts.push((m, Some(1))),
        }
    }
    counts
}

fn as_refs(v: &[(String, Option<i64>)]) -> Vec<(&str, Option<i64>)> {
    v.iter().map(|(m, n)| (m.as_str(), *n)).collect()
}

async fn staff_access_to_member_data_is_logged(backend: Backend) {
    sweep(World::new(backend).await).await;
}
both_backends!(staff_access_to_member_data_is_logged);

/// The same sweep with one database connection for the whole server: a
/// handler that asks the pool for a second connection while it holds one
/// (a read outside its open transaction) waits for itself until the pool's
/// timeout and fails here, where with a larger pool it would only hang
/// under load (as check-ins once did on PostgreSQL).
async fn every_logged_operation_works_on_one_database_connection(backend: Backend) {
    sweep(World::with(backend, |c| c.database_pool_size = Some(1)).await).await;
}
both_backends!(every_logged_operation_works_on_one_database_connection);

/// Every operation whose policy logs, called as staff, with its entries
/// checked.
async fn sweep(w: World) {
    let app = &w.app;
    let (c, zon, maan) = (&w.circle, w.zon.membership(), w.maan.membership());
    let coordinator = &w.org.coordinator;
    let posts = format!("/v1/circles/{c}/posts");

    // What members and staff do for themselves is not logged.
    let post = |who: &Person, body: &str| {
        let (app, posts) = (app, posts.clone());
        let (token, body) = (who.access.clone(), body.to_owned());
        async move {
            app.post(&posts, Some(&token), json!({ "body": body }))
                .await
                .expect(201)
                .str("/id")
        }
    };
    let p1 = post(&w.zon, "Vandaag gewandeld.").await;
    let _p2 = post(&w.zon, "Slecht geslapen.").await;
    let p3 = post(&w.maan, "Schulden maken me bang.").await;
    let pw = post(&w.worker, "Welkom allemaal.").await;
    w.checkin(&w.zon, 4).await;
    w.checkin(&w.zon, 2).await;
    app.post(
        &format!("/v1/circles/{c}/checkins"),
        w.maan.token(),
        json!({"mood": 1, "note": "Ik wil graag praten.", "wants_contact": true}),
    )
    .await
    .expect(201);
    assert!(entries(app).await.is_empty(), "nothing logged yet");

    let spec = spec();
    let mut run = Run {
        w: &w,
        ops: operations(&spec),
        covered: BTreeSet::new(),
    };
    let staff = &w.worker;

    // The member list: one entry per member shown (workers are not members).
    let t = "/v1/circles/{circle_id}/members";
    let (_, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/members"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("member_list", "list", &[(zon, Some(1)), (maan, Some(1))])
    );

    // Check-ins: each member with the number of their check-ins shown.
    let t = "/v1/circles/{circle_id}/checkins";
    let (r, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/checkins"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("checkins", "list", &[(zon, Some(2)), (maan, Some(1))])
    );
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    // By a coordinator too, with their role.
    let (_, new) = run
        .call(
            coordinator,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/checkins"),
            None,
        )
        .await;
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|e| e.actor_role == "coordinator"));

    // Outcomes: each member with answers, once. Zon answers the intake
    // questionnaire (her own data: nothing logged).
    kring::jobs::run_until_idle(&kring::jobs::questionnaires::Questionnaires, &app.state)
        .await
        .unwrap();
    let mine = app
        .get("/v1/me/questionnaires", w.zon.token())
        .await
        .expect(200);
    let q = mine.str("/items/0/id");
    let answers = json!({"answers": {"who5_1": "at_no_time", "who5_2": "at_no_time",
        "who5_3": "at_no_time", "who5_4": "at_no_time", "who5_5": "at_no_time"}});
    app.post(
        &format!("/v1/me/questionnaires/{q}/answers"),
        w.zon.token(),
        answers,
    )
    .await
    .expect(200);
    let t = "/v1/circles/{circle_id}/outcomes";
    let (r, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/outcomes"),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(seen(&new), expect("outcomes", "list", &[(zon, Some(1))]));

    // The feed: each author who is a member, with their posts on the page;
    // again when the page comes from the read cache.
    let t = "/v1/circles/{circle_id}/posts";
    let feed_expected = expect("feed", "list", &[(zon, Some(2)), (maan, Some(1))]);
    let (r, new) = run.call(staff, Method::GET, t, &posts, None).await;
    assert_eq!(seen(&new), feed_expected);
    let sync_token = r.str("/sync_token");
    assert!(
        !app.state.caches.shelf::<FirstPageCache>().0.is_empty(),
        "the first page is cached"
    );
    let (_, new) = run.call(staff, Method::GET, t, &posts, None).await;
    assert_eq!(seen(&new), feed_expected, "a cached page is logged too");
    // A later page of the listing, and a sync.
    let (r, new) = run
        .call(staff, Method::GET, t, &format!("{posts}?limit=2"), None)
        .await;
    assert_eq!(
        seen(&new),
        expect("feed", "list", &[(maan, Some(1))]),
        "worker and maan"
    );
    let cursor = r.str("/next_cursor");
    let (r, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("{posts}?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    let shown = per_member(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (&p["author"]["membership_id"], &p["author"]["role"])),
    );
    assert_eq!(seen(&new), expect("feed", "list", &as_refs(&shown)));
    assert_eq!(seen(&new), expect("feed", "list", &[(zon, Some(2))]));
    post(&w.zon, "Nog eentje.").await;
    let (_, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("{posts}?since={sync_token}"),
            None,
        )
        .await;
    assert_eq!(seen(&new), expect("feed", "list", &[(zon, Some(1))]));

    // One post: its author, when a member.
    let t = "/v1/posts/{post_id}";
    let (_, new) = run
        .call(staff, Method::GET, t, &format!("/v1/posts/{p1}"), None)
        .await;
    assert_eq!(seen(&new), expect("feed", "read", &[(zon, None)]));
    let (_, new) = run
        .call(staff, Method::GET, t, &format!("/v1/posts/{pw}"), None)
        .await;
    assert!(new.is_empty(), "a worker's own post is no member's data");

    // Reacting answers with the post.
    let t = "/v1/posts/{post_id}/reactions/{kind}";
    let path = format!("/v1/posts/{p1}/reactions/hug");
    let (_, new) = run.call(staff, Method::PUT, t, &path, None).await;
    assert_eq!(seen(&new), expect("feed", "read", &[(zon, None)]));
    let (_, new) = run.call(staff, Method::DELETE, t, &path, None).await;
    assert_eq!(seen(&new), expect("feed", "read", &[(zon, None)]));

    // Moderation changes the member's post.
    let t = "/v1/posts/{post_id}/hide";
    let path = format!("/v1/posts/{p3}/hide");
    let (_, new) = run
        .call(
            staff,
            Method::POST,
            t,
            &path,
            Some(json!({"reason": "privé"})),
        )
        .await;
    assert_eq!(seen(&new), expect("feed", "change", &[(maan, None)]));
    let (_, new) = run.call(staff, Method::DELETE, t, &path, None).await;
    assert_eq!(seen(&new), expect("feed", "change", &[(maan, None)]));

    // The overview: every member.
    let t = "/v1/circles/{circle_id}/overview";
    let (_, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/overview"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("overview", "list", &[(zon, Some(1)), (maan, Some(1))])
    );

    // The circle's outcome report: about zon, who answered her intake
    // above; maan's intake waits unanswered (made when she joined), so the
    // report uses nothing of hers.
    let t = "/v1/circles/{circle_id}/outcomes/report";
    let (_, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/outcomes/report?instrument=who5"),
            None,
        )
        .await;
    assert_eq!(seen(&new), expect("outcomes", "list", &[(zon, Some(1))]));

    // Alerts: maan asked for contact.
    let (r, new) = run
        .call(staff, Method::GET, "/v1/alerts", "/v1/alerts", None)
        .await;
    assert_eq!(seen(&new), expect("alerts", "list", &[(maan, Some(1))]));
    let alert = r.str("/items/0/id");
    let (_, new) = run
        .call(
            staff,
            Method::GET,
            "/v1/alerts/{alert_id}",
            &format!("/v1/alerts/{alert}"),
            None,
        )
        .await;
    assert_eq!(seen(&new), expect("alerts", "read", &[(maan, None)]));
    let until =
        (kring::clock::Clock::now(&app.clock) + jiff::SignedDuration::from_hours(24)).to_string();
    for (action, body) in [
        ("acknowledge", None),
        ("snooze", Some(json!({ "until": until }))),
        ("resolve", Some(json!({"outcome": "reached"}))),
    ] {
        let t = format!("/v1/alerts/{{alert_id}}/{action}");
        let (_, new) = run
            .call(
                staff,
                Method::POST,
                &t,
                &format!("/v1/alerts/{alert}/{action}"),
                body,
            )
            .await;
        assert_eq!(
            seen(&new),
            expect("alerts", "change", &[(maan, None)]),
            "{action}"
        );
    }

    // Recovery codes for zon: issued, then listed.
    let t = "/v1/circles/{circle_id}/members/{membership_id}/recovery-code";
    let (r, new) = run
        .call(
            staff,
            Method::POST,
            t,
            &format!("/v1/circles/{c}/members/{zon}/recovery-code"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("recovery_code", "create", &[(zon, None)])
    );
    let code = r.str("/code");
    let t = "/v1/circles/{circle_id}/members/{membership_id}/recovery-codes";
    let (_, new) = run
        .call(
            staff,
            Method::GET,
            t,
            &format!("/v1/circles/{c}/members/{zon}/recovery-codes"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("recovery_code", "list", &[(zon, Some(1))])
    );

    // A personal message: who wrote to whom, never what.
    let t = "/v1/circles/{circle_id}/members/{membership_id}/messages";
    let text = "Ik denk aan je, Zon.";
    let (_, new) = run
        .call(
            staff,
            Method::POST,
            t,
            &format!("/v1/circles/{c}/members/{zon}/messages"),
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("personal_message", "create", &[(zon, None)])
    );

    // An erasure requested on Maan's behalf, then taken back: each logged
    // against her account.
    let maan_account = w.maan.account_id.clone();
    let t = "/v1/organisation/members/{account_id}/erasure";
    let path = format!("/v1/organisation/members/{maan_account}/erasure");
    let (_, new) = run
        .call(
            coordinator,
            Method::POST,
            t,
            &path,
            Some(json!({"keep_posts": false})),
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("erasure", "create", &[(maan_account.as_str(), None)])
    );
    let (_, new) = run.call(coordinator, Method::DELETE, t, &path, None).await;
    assert_eq!(
        seen(&new),
        expect("erasure", "delete", &[(maan_account.as_str(), None)])
    );

    // The coordinator reads the organisation's log: that is logged per
    // member it shows, and for a member asked about with nothing shown.
    let t = "/v1/organisation/access-log";
    let (r, new) = run
        .call(coordinator, Method::GET, t, &format!("{t}?limit=5"), None)
        .await;
    let member = json!("member");
    let shown = per_member(r.body["items"].as_array().unwrap().iter().map(|e| {
        match &e["member"]["membership_id"] {
            Value::Null => (&e["member"]["account_id"], &member),
            membership => (membership, &member),
        }
    }));
    assert_eq!(seen(&new), expect("access_log", "list", &as_refs(&shown)));
    let zon_account = w.zon.account_id.clone();
    let (_, new) = run
        .call(
            coordinator,
            Method::GET,
            t,
            &format!("{t}?member_id={zon_account}&kind=erasure"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("access_log", "list", &[(zon_account.as_str(), Some(0))])
    );

    // An export of zon's data, started by the coordinator on zon's behalf,
    // then downloaded: about zon's account, not a membership.
    let t = "/v1/organisation/members/{account_id}/export";
    let (r, new) = run
        .call(
            coordinator,
            Method::POST,
            t,
            &format!("/v1/organisation/members/{zon_account}/export"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("export", "export", &[(zon_account.as_str(), None)])
    );
    let export = r.str("/id");
    kring::jobs::run_until_idle(&kring::jobs::exports::Builder, &app.state)
        .await
        .unwrap();
    let t = "/v1/organisation/members/{account_id}/exports/{export_id}/download";
    let (_, new) = run
        .call(
            coordinator,
            Method::GET,
            t,
            &format!("/v1/organisation/members/{zon_account}/exports/{export}/download"),
            None,
        )
        .await;
    assert_eq!(
        seen(&new),
        expect("export", "read", &[(zon_account.as_str(), None)])
    );

    // Every logging operation was called.
    let missing: Vec<_> = logging().difference(&run.covered).cloned().collect();
    assert!(
        missing.is_empty(),
        "logging operations this test never calls: {missing:?}"
    );

    // No content, no secret in any entry.
    let all = entries(app).await;
    let dump = format!("{all:?}");
    for secret in [
        text,
        "Schulden",
        "gewandeld",
        "privé",
        "praten",
        code.as_str(),
    ] {
        assert!(!dump.contains(secret), "{secret} in the log");
    }
    assert!(verify(app).await.is_ok());
    w.app.stop().await;
}

/// Members reading their own circle (posts, check-ins, members, their
/// alerts' absence) and their own data write nothing.
async fn members_own_reads_are_not_logged(backend: Backend) {
    let w = World::new(backend).await;
    let (app, c) = (&w.app, &w.circle);
    let p = app
        .post(
            &format!("/v1/circles/{c}/posts"),
            w.zon.token(),
            json!({"body": "Hallo"}),
        )
        .await
        .expect(201)
        .str("/id");
    w.checkin(&w.zon, 3).await;
    w.checkin(&w.maan, 4).await;
    for who in [&w.zon, &w.maan] {
        for path in [
            format!("/v1/circles/{c}/posts"),
            format!("/v1/circles/{c}/checkins"),
            format!("/v1/circles/{c}/members"),
            format!("/v1/circles/{c}/membership"),
            format!("/v1/posts/{p}"),
            "/v1/me".to_owned(),
            "/v1/me/access-log".to_owned(),
        ] {
            app.get(&path, who.token()).await.expect(200);
        }
        app.put(&format!("/v1/posts/{p}/reactions/heart"), who.token(), None)
            .await
            .expect(200);
    }
    assert!(entries(app).await.is_empty());
    w.app.stop().await;
}
both_backends!(members_own_reads_are_not_logged);
