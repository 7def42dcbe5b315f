//! Journeys, played over HTTP the way a phone app plays them, against the
//! real `kring` binary. Every response is checked against the committed spec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mobile_contract_tests::{App, Backend, PushService, Server};
use std::collections::{HashMap, HashSet};

use serde_json::json;

macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(mobile_contract_tests::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if mobile_contract_tests::postgres_url().is_none() {
                    eprintln!("KRING_TEST_POSTGRES_URL is not set; skipping the PostgreSQL run");
                    return;
                }
                super::$name(mobile_contract_tests::Backend::Postgres).await;
            }
        }
    };
}

const PASSWORD: &str = "een lang en veilig wachtwoord";

/// A coordinator, a worker and a circle, set up through the API.
struct Setup {
    coordinator: String,
    coordinator_refresh: String,
    worker: String,
    worker_refresh: String,
    circle: String,
}

async fn setup(server: &Server, app: &App) -> Setup {
    let code = server.create_organisation("Buurtwerk", "anna@buurtwerk.example");
    let signed_in = app
        .post(
            "/v1/auth/setup",
            None,
            json!({"code": code, "password": PASSWORD}),
        )
        .await;
    let coordinator = signed_in.str("/tokens/access_token");
    let coordinator_refresh = signed_in.str("/tokens/refresh_token");
    let worker_code = app
        .post(
            "/v1/organisation/staff",
            Some(&coordinator),
            json!({"role": "worker", "email": "sam@buurtwerk.example", "display_name": "Sam"}),
        )
        .await
        .str("/setup_code");
    let signed_in = app
        .post(
            "/v1/auth/setup",
            None,
            json!({"code": worker_code, "password": PASSWORD}),
        )
        .await;
    let worker = signed_in.str("/tokens/access_token");
    let worker_refresh = signed_in.str("/tokens/refresh_token");
    let circle = app
        .post("/v1/circles", Some(&worker), json!({"name": "Samen sterk"}))
        .await
        .str("/id");
    Setup {
        coordinator,
        coordinator_refresh,
        worker,
        worker_refresh,
        circle,
    }
}

/// A member joins the way the app does it, skipping the intake
/// questionnaire; returns (access, refresh, membership).
async fn join(app: &App, s: &Setup, pseudonym: &str) -> (String, String, String) {
    let joined = join_circle(app, s, pseudonym).await;
    skip_questionnaires(app, &joined.0).await;
    joined
}

/// A member joins; the intake questionnaire waits in the app.
async fn join_circle(app: &App, s: &Setup, pseudonym: &str) -> (String, String, String) {
    let code = app
        .post(
            &format!("/v1/circles/{}/invites", s.circle),
            Some(&s.worker),
            json!({}),
        )
        .await
        .str("/code");
    let preview = app.get(&format!("/v1/invites/{code}"), None).await;
    let version = preview.body["agreement"]["version"].clone();
    let key = format!("join-{pseudonym}");
    let r = app
        .call(
            "POST",
            "/v1/join",
            None,
            Some(json!({"code": code, "pseudonym": pseudonym, "consent_version": version, "time_zone": "Europe/Amsterdam"})),
            &[("idempotency-key", &key)],
        )
        .await;
    assert_eq!(r.status, 201);
    (
        r.str("/tokens/access_token"),
        r.str("/tokens/refresh_token"),
        r.str("/membership/id"),
    )
}

/// The app shows the intake questionnaire right after joining; these
/// members skip it (answering is voluntary), so that no reminder of it
/// comes in the journeys about other things.
async fn skip_questionnaires(app: &App, member: &str) {
    let open = app.get("/v1/me/questionnaires", Some(member)).await;
    assert_eq!(open.status, 200);
    for q in open.body["items"].as_array().unwrap() {
        let id = q["id"].as_str().unwrap();
        let declined = app
            .post(
                &format!("/v1/me/questionnaires/{id}/decline"),
                Some(member),
                json!({}),
            )
            .await;
        assert_eq!(declined.status, 200, "{}", declined.body);
    }
}

async fn member_onboarding(backend: Backend) {
    let server = Server::start(backend).await;
    let app = App::new(&server);
    let s = setup(&server, &app).await;
    let (member, _, _) = join(&app, &s, "Zonnebloem").await;

    let device = app
        .post(
            "/v1/devices",
            Some(&member),
            json!({"kind": "fcm", "token": "fcm-registration-token-0001"}),
        )
        .await;
    assert_eq!(device.status, 201);
    let feed = app
        .get(&format!("/v1/circles/{}/posts", s.circle), Some(&member))
        .await;
    assert_eq!(feed.body["items"].as_array().unwrap().len(), 0);

    // The post's response was lost; the app retries with the same key.
    let path = format!("/v1/circles/{}/posts", s.circle);
    let body = json!({"body": "Hallo allemaal"});
    let key = [("idempotency-key", "9b2f0c3e-post-1")];
    let first = app
        .call("POST", &path, Some(&member), Some(body.clone()), &key)
        .await;
    let retry = app
        .call("POST", &path, Some(&member), Some(body), &key)
        .await;
    assert_eq!((first.status, retry.status), (201, 201));
    assert_eq!(first.str("/id"), retry.str("/id"));
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let feed = app.get(&path, Some(&member)).await;
    assert_eq!(
        feed.body["items"].as_array().unwrap().len(),
        1,
        "no duplicate"
    );

    // Errors conform too.
    let bad = app.post(&path, Some(&member), json!({"body": ""})).await;
    assert_eq!(bad.status, 422);
    let none = app
        .get(&format!("/v1/circles/{}/posts", "nope"), Some(&member))
        .await;
    assert_eq!(none.status, 404);
    // (14, with the two of skipping the intake questionnaire at the join.)
    assert_eq!(
        app.checked.get(),
        16,
        "every response was checked against the spec"
    );
    server.stop().await;
}
both_backends!(member_onboarding);

async fn check_ins_and_im_ok(backend: Backend) {
    let server = Server::start(backend).await;
    let app = App::new(&server);
    let s = setup(&server, &app).await;
    let (member, _, _) = join(&app, &s, "Zonnebloem").await;
    let r = app
        .post(
            &format!("/v1/circles/{}/checkins", s.circle),
            Some(&member),
            json!({"mood": 4, "note": "Goed geslapen."}),
        )
        .await;
    assert_eq!(r.status, 201);
    // "I'm OK" straight from a notification action.
    let ok = app.post("/v1/me/im-ok", Some(&member), json!({})).await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body["items"][0]["kind"], "ok");
    let list = app
        .get(
            &format!("/v1/circles/{}/checkins", s.circle),
            Some(&s.worker),
        )
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    server.stop().await;
}
both_backends!(check_ins_and_im_ok);

async fn sessions_expire_refresh_and_detect_reuse(backend: Backend) {
    let server = Server::start(backend).await;
    let app = App::new(&server);
    let s = setup(&server, &app).await;
    let (member, refresh, _) = join(&app, &s, "Zonnebloem").await;

    app.advance(16 * 60).await;
    let expired = app.get("/v1/me", Some(&member)).await;
    assert_eq!(
        (expired.status, expired.body["code"].as_str()),
        (401, Some("token_expired"))
    );
    let pair = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(pair.status, 200);
    let access = pair.str("/access_token");
    assert_eq!(app.get("/v1/me", Some(&access)).await.status, 200);

    // The old refresh token shows up again later: the session is revoked.
    app.advance(120).await;
    let reused = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(
        (reused.status, reused.body["code"].as_str()),
        (401, Some("refresh_token_reused"))
    );
    assert_eq!(app.get("/v1/me", Some(&access)).await.status, 401);
    server.stop().await;
}
both_backends!(sessions_expire_refresh_and_detect_reuse);

async fn recovery_moves_a_member_to_a_new_phone(backend: Backend) {
    let server = Server::start(backend).await;
    let app = App::new(&server);
    let s = setup(&server, &app).await;
    let (member, _, membership) = join(&app, &s, "Zonnebloem").await;
    let code = app
        .post(
            &format!(
                "/v1/circles/{}/members/{membership}/recovery-code",
                s.circle
            ),
            Some(&s.worker),
            json!({}),
        )
        .await
        .str("/code");
    let moved = app
        .post("/v1/auth/recover", None, json!({"code": code}))
        .await;
    assert_eq!(moved.status, 200);
    let new_phone = moved.str("/tokens/access_token");
    assert_eq!(app.get("/v1/me", Some(&new_phone)).await.status, 200);
    assert_eq!(app.get("/v1/me", Some(&member)).await.status, 401);
    server.stop().await;
}
both_backends!(recovery_moves_a_member_to_a_new_phone);

#[test]
fn the_spec_is_the_only_contract() {
    // The harness resolves operations by the spec alone.
    let spec = mobile_contract_tests::Spec::load();
    assert!(spec.operation("POST", "/v1/me/im-ok").is_some());
    assert!(spec.operation("GET", "/v1/circles/abc/posts").is_some());
    assert!(spec.operation("DELETE", "/v1/nothing").is_none());
    // The checks can fail: a wrong body, an undocumented status, a wrong media type.
    let json = Some("application/json");
    assert!(
        spec.check("GET", "/v1/me", 200, json, &json!({"id": 5}))
            .is_err()
    );
    assert!(spec.check("GET", "/v1/me", 418, json, &json!({})).is_err());
    assert!(
        spec.check("GET", "/v1/me", 200, Some("text/html"), &json!({}))
            .is_err()
    );
    let problem = json!({"type": "urn:kring:problem:unauthenticated", "title": "Unauthorized", "status": 401,
                         "code": "unauthenticated", "detail": "Sign in."});
    assert!(
        spec.check(
            "GET",
            "/v1/me",
            401,
            Some("application/problem+json"),
            &problem
        )
        .is_ok()
    );
    assert!(
        spec.check(
            "GET",
            "/v1/me",
            401,
            Some("application/problem+json"),
            &json!({"code": 1})
        )
        .is_err()
    );
}

const DAY: i64 = 24 * 60 * 60;

/// Puts the server's clock on the next Monday, 10:00 UTC: inside everyone's
/// working hours and outside the members' quiet hours (21:00–09:00 in
/// Amsterdam), so the journeys below read like a week.
async fn monday_morning(app: &App) {
    let now: jiff::Timestamp = app.advance(0).await.parse().unwrap();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let days = 7 - i64::from(today.weekday().to_monday_zero_offset());
    let monday = today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .at(10, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    app.set_clock(&monday.to_string()).await;
}

/// A server that pushes to `push`, its clock on a Monday morning, a circle
/// and a member who joined; both the member's and the worker's app keep
/// their sessions fresh as days pass. Returns the member's access token and
/// membership id.
async fn a_week_with_push(
    backend: Backend,
    push: &PushService,
) -> (Server, App, Setup, String, String) {
    let server = Server::start_with_push(backend, push).await;
    let app = App::new(&server);
    monday_morning(&app).await;
    let s = setup(&server, &app).await;
    let (member, member_refresh, membership) = join(&app, &s, "Zonnebloem").await;
    app.keep_fresh(&member, &member_refresh);
    app.keep_fresh(&s.worker, &s.worker_refresh);
    (server, app, s, member, membership)
}

fn kinds(pushes: &[serde_json::Value]) -> Vec<&str> {
    pushes.iter().map(|p| p["kind"].as_str().unwrap()).collect()
}

/// The member goes quiet, gets a nudge on their phone, taps "I'm OK", and the
/// ladder starts again from that moment.
async fn silence_nudge_and_im_ok(backend: Backend) {
    let push = PushService::start().await;
    let (server, app, s, member, membership) = a_week_with_push(backend, &push).await;
    let phone = push.phone();
    let device = app.post("/v1/devices", Some(&member), phone.device()).await;
    assert_eq!(device.status, 201);
    let posts = format!("/v1/circles/{}/posts", s.circle);
    let post = app
        .post(&posts, Some(&member), json!({"body": "Tot gauw!"}))
        .await;
    assert_eq!(post.status, 201);
    let overview = format!("/v1/circles/{}/overview", s.circle);
    let me_in = |o: &serde_json::Value| {
        o["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["membership_id"] == membership.as_str())
            .cloned()
            .unwrap()
    };

    // One quiet day (Tuesday): nothing yet.
    app.advance(DAY).await;
    assert_eq!(phone.take(), Vec::<serde_json::Value>::new());

    // Wednesday, two days quiet on a two-day rhythm: a gentle nudge.
    app.advance(DAY + 60).await;
    let pushes = phone.take();
    assert_eq!(kinds(&pushes), ["nudge"], "{pushes:?}");
    let nudge = &pushes[0];
    assert_eq!(nudge["actions"], json!(["im_ok"]));
    assert_eq!(nudge["locale"], "nl");
    // The push is a copy of an inbox item.
    let inbox = app.get("/v1/notifications", Some(&member)).await;
    assert_eq!(
        inbox.body["items"][0]["id"], nudge["notification_id"],
        "{}",
        inbox.body
    );
    let seen = app.get(&overview, Some(&s.worker)).await;
    assert_eq!(me_in(&seen.body)["condition"], "nudged");

    // The member taps "I'm OK" on the notification.
    let ok = app.post("/v1/me/im-ok", Some(&member), json!({})).await;
    assert_eq!(ok.status, 201);
    let seen = app.get(&overview, Some(&s.worker)).await;
    let me = me_in(&seen.body);
    assert_eq!(me["condition"], "active");
    let tapped: jiff::Timestamp = me["last_activity_at"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = me["next_step_due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next.duration_since(tapped).as_secs(),
        2 * DAY,
        "the ladder starts again from the tap"
    );

    // Thursday: the old ladder's second nudge does not come.
    app.advance(DAY + 60).await;
    assert_eq!(phone.take(), Vec::<serde_json::Value>::new());
    // Friday, two days after the tap: the first nudge of the new ladder.
    app.advance(DAY).await;
    let pushes = phone.take();
    assert_eq!(kinds(&pushes), ["nudge"]);
    // The app brings its inbox up to date from Wednesday's listing: the new
    // item comes, the unchanged one does not.
    let token = inbox.str("/sync_token");
    let synced = app
        .get(&format!("/v1/notifications?since={token}"), Some(&member))
        .await;
    let ids: Vec<&serde_json::Value> = synced.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["id"])
        .collect();
    assert_eq!(ids, [&pushes[0]["notification_id"]], "{}", synced.body);
    server.stop().await;
}
both_backends!(silence_nudge_and_im_ok);

/// A member with an iPhone: the nudge arrives over APNs, in their
/// language, with the "I'm OK" category, in the circle's thread; the tap
/// answers it.
async fn an_iphone_gets_its_nudge(backend: Backend) {
    let push = PushService::start().await;
    let (server, app, s, member, _) = a_week_with_push(backend, &push).await;
    let iphone = push.iphone();
    let device = app
        .post("/v1/devices", Some(&member), iphone.device())
        .await;
    assert_eq!(device.status, 201);
    assert_eq!(device.body["kind"], "apns");
    let posts = format!("/v1/circles/{}/posts", s.circle);
    let post = app
        .post(&posts, Some(&member), json!({"body": "Tot gauw!"}))
        .await;
    assert_eq!(post.status, 201);

    app.advance(DAY).await;
    assert_eq!(iphone.take(), Vec::<serde_json::Value>::new());
    app.advance(DAY + 60).await;
    let pushes = iphone.take();
    assert_eq!(kinds(&pushes), ["nudge"], "{pushes:?}");
    let nudge = &pushes[0];
    assert_eq!(nudge["aps"]["category"], "KRING_IM_OK");
    assert_eq!(nudge["aps"]["thread-id"], s.circle.as_str());
    assert_eq!(nudge["locale"], "nl");
    let inbox = app.get("/v1/notifications", Some(&member)).await;
    assert_eq!(inbox.body["items"][0]["id"], nudge["notification_id"]);

    let ok = app.post("/v1/me/im-ok", Some(&member), json!({})).await;
    assert_eq!(ok.status, 201);
    server.stop().await;
}
both_backends!(an_iphone_gets_its_nudge);

/// A circle about debts is marked sensitive: a worker's personal message
/// reaches the member's iPhone as "Kring: you have a new message", with no
/// circle name, pseudonym or text anywhere in what Apple receives; the
/// inbox keeps the message. The member may choose the full text instead.
async fn a_sensitive_circle_keeps_the_lock_screen_discreet(backend: Backend) {
    let push = PushService::start().await;
    let (server, app, s, member, membership) = a_week_with_push(backend, &push).await;
    let iphone = push.iphone();
    let device = app
        .post("/v1/devices", Some(&member), iphone.device())
        .await;
    assert_eq!(device.status, 201);
    let circle = format!("/v1/circles/{}", s.circle);
    let marked = app
        .call(
            "PATCH",
            &circle,
            Some(&s.worker),
            Some(json!({"sensitive": true})),
            &[],
        )
        .await;
    assert_eq!(
        (marked.status, &marked.body["sensitive"]),
        (200, &json!(true))
    );

    let messages = format!("/v1/circles/{}/members/{membership}/messages", s.circle);
    let text = "Lukt het met de schuldhulp deze week?";
    let sent = app
        .post(&messages, Some(&s.worker), json!({"text": text}))
        .await;
    assert_eq!(sent.status, 201);
    app.advance(1).await;
    let pushes = iphone.take();
    assert_eq!(kinds(&pushes), ["personal_message"], "{pushes:?}");
    let shown = &pushes[0];
    assert_eq!(shown["discreet"], true);
    assert_eq!(shown["aps"]["alert"]["title"], "Kring");
    assert_eq!(shown["aps"]["alert"]["body"], "Je hebt een nieuw bericht.");
    let everything = shown.to_string();
    for secret in ["Samen sterk", "Zonnebloem", "Sam", text] {
        assert!(!everything.contains(secret), "{secret:?} in {everything}");
    }
    let inbox = app.get("/v1/notifications", Some(&member)).await;
    assert_eq!(inbox.body["items"][0]["id"], shown["notification_id"]);
    assert_eq!(inbox.body["items"][0]["body"], text);

    // The member would rather read it on the lock screen.
    let me = app
        .call(
            "PATCH",
            "/v1/me",
            Some(&member),
            Some(json!({"discreet_pushes": "never"})),
            &[],
        )
        .await;
    assert_eq!(me.status, 200);
    let sent = app
        .post(
            &messages,
            Some(&s.worker),
            json!({"text": "Tot donderdag!"}),
        )
        .await;
    assert_eq!(sent.status, 201);
    app.advance(1).await;
    let pushes = iphone.take();
    assert_eq!(pushes[0]["discreet"], false);
    assert_eq!(pushes[0]["aps"]["alert"]["body"], "Tot donderdag!");
    server.stop().await;
}
both_backends!(a_sensitive_circle_keeps_the_lock_screen_discreet);

/// Four quiet days: the worker's phone gets the alert, and the worker
/// acknowledges and resolves it.
async fn alert_reaches_the_worker(backend: Backend) {
    let push = PushService::start().await;
    let (server, app, s, member, membership) = a_week_with_push(backend, &push).await;
    let member_phone = push.phone();
    let worker_phone = push.phone();
    for (token, phone) in [(&member, &member_phone), (&s.worker, &worker_phone)] {
        let device = app.post("/v1/devices", Some(token), phone.device()).await;
        assert_eq!(device.status, 201);
    }
    let checkin = app
        .post(
            &format!("/v1/circles/{}/checkins", s.circle),
            Some(&member),
            json!({"mood": 2}),
        )
        .await;
    assert_eq!(checkin.status, 201);

    // Wednesday and Thursday: nudges to the member; Friday: the alert.
    for _ in 0..4 {
        app.advance(DAY).await;
    }
    app.advance(60).await;
    assert_eq!(kinds(&member_phone.take()), ["nudge", "nudge"]);
    let pushes = worker_phone.take();
    assert_eq!(kinds(&pushes), ["alert"], "{pushes:?}");
    let alert_id = pushes[0]["alert_id"].as_str().unwrap().to_owned();
    assert_eq!(
        pushes[0]["membership_id"],
        membership.as_str(),
        "{pushes:?}"
    );
    assert_eq!(pushes[0]["circle_id"], s.circle.as_str());

    // The worker opens the app on the alert.
    let open = app.get("/v1/alerts?status=open", Some(&s.worker)).await;
    assert_eq!(open.body["items"][0]["id"], alert_id.as_str());
    assert_eq!(open.body["items"][0]["reason"], "silence");
    let path = format!("/v1/alerts/{alert_id}");
    // The member never sees alerts about themselves.
    assert_eq!(app.get(&path, Some(&member)).await.status, 404);

    let ack = app
        .post(&format!("{path}/acknowledge"), Some(&s.worker), json!({}))
        .await;
    assert_eq!(
        (ack.status, ack.body["status"].as_str()),
        (200, Some("acknowledged"))
    );
    let resolved = app
        .post(
            &format!("{path}/resolve"),
            Some(&s.worker),
            json!({"outcome": "reached", "note": "Gebeld; het gaat goed, even druk gehad."}),
        )
        .await;
    assert_eq!(
        (resolved.status, resolved.body["status"].as_str()),
        (200, Some("resolved"))
    );
    assert_eq!(resolved.body["resolution_outcome"], "reached");
    let open = app.get("/v1/alerts?status=open", Some(&s.worker)).await;
    assert_eq!(open.body["items"], json!([]));
    // Resolving twice is a conflict, documented like every other answer.
    let again = app
        .post(
            &format!("{path}/resolve"),
            Some(&s.worker),
            json!({"outcome": "reached"}),
        )
        .await;
    assert_eq!(again.status, 409);
    server.stop().await;
}
both_backends!(alert_reaches_the_worker);

/// One listing of a circle's feed, newest first, page by page: the ids
/// in order and the listing's sync token.
async fn list_feed(app: &App, circle: &str, token: &str) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut tokens = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/circles/{circle}/posts?limit=5&cursor={c}"),
            None => format!("/v1/circles/{circle}/posts?limit=5"),
        };
        let page = app.get(&path, Some(token)).await;
        assert_eq!(page.status, 200);
        for p in page.body["items"].as_array().unwrap() {
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
        tokens.insert(page.str("/sync_token"));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        tokens.len(),
        1,
        "the pages of one listing share a sync token"
    );
    (ids, tokens.into_iter().next().unwrap())
}

/// Brings a local copy up to date from `since`; returns the new token.
async fn sync_feed(
    app: &App,
    circle: &str,
    token: &str,
    since: &str,
    copy: &mut HashMap<String, String>,
) -> String {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/circles/{circle}/posts?since={since}&limit=5&cursor={c}"),
            None => format!("/v1/circles/{circle}/posts?since={since}&limit=5"),
        };
        let page = app.get(&path, Some(token)).await;
        assert_eq!(page.status, 200);
        for p in page.body["items"].as_array().unwrap() {
            copy.insert(
                p["id"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
            );
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return page.str("/sync_token"),
        }
    }
}

/// One member reads the feed, page by page and then by `since`, while
/// another writes and deletes at the same time: the reader's copy ends up
/// exactly the server's, with no post missing and none listed twice.
async fn feed_and_sync_while_posts_arrive(backend: Backend) {
    let server = Server::start(backend).await;
    let app = App::new(&server);
    let s = setup(&server, &app).await;
    let (reader, _, _) = join(&app, &s, "Maan").await;
    let (writer, _, _) = join(&app, &s, "Zon").await;
    let posts = format!("/v1/circles/{}/posts", s.circle);
    let mut before = Vec::new();
    for i in 0..12 {
        let r = app
            .post(
                &posts,
                Some(&writer),
                json!({"body": format!("eerder {i}")}),
            )
            .await;
        before.push(r.str("/id"));
    }

    // The writer: 40 new posts, deleting one older post in every four. The
    // reader, at the same time: a first listing, then syncs until the
    // writer is done. Their requests are in flight together.
    let done = std::cell::Cell::new(false);
    let writer_app = App::new(&server);
    let write = async {
        let mut written = Vec::new();
        for i in 0..40 {
            let r = writer_app
                .post(&posts, Some(&writer), json!({"body": format!("nieuw {i}")}))
                .await;
            assert_eq!(r.status, 201);
            written.push(r.str("/id"));
            if i % 4 == 0 {
                let path = format!("/v1/posts/{}", before[i / 4]);
                let gone = writer_app
                    .call("DELETE", &path, Some(&writer), None, &[])
                    .await;
                assert_eq!(gone.status, 204);
            }
        }
        done.set(true);
        written
    };
    let read = async {
        let (listed, mut token) = list_feed(&app, &s.circle, &reader).await;
        let unique: HashSet<_> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "no post twice in a listing");
        let mut copy: HashMap<String, String> = listed
            .into_iter()
            .map(|id| (id, "visible".to_owned()))
            .collect();
        let mut syncs = 0;
        while !done.get() {
            token = sync_feed(&app, &s.circle, &reader, &token, &mut copy).await;
            syncs += 1;
        }
        (copy, token, syncs)
    };
    let (written, (mut copy, token, syncs)) = tokio::join!(write, read);
    sync_feed(&app, &s.circle, &reader, &token, &mut copy).await;
    assert!(syncs > 1, "the reader synced while posts arrived");

    let mine: HashSet<String> = copy
        .iter()
        .filter(|(_, status)| status.as_str() != "deleted")
        .map(|(id, _)| id.clone())
        .collect();
    let deleted: HashSet<String> = before.iter().take(10).cloned().collect();
    let expected: HashSet<String> = before
        .iter()
        .chain(&written)
        .filter(|id| !deleted.contains(*id))
        .cloned()
        .collect();
    assert_eq!(mine, expected, "no gaps: the copy is exactly the circle");
    let (fresh, _) = list_feed(&app, &s.circle, &reader).await;
    assert_eq!(fresh.iter().cloned().collect::<HashSet<_>>(), expected);
    server.stop().await;
}
both_backends!(feed_and_sync_while_posts_arrive);

/// A member's rights: after a worker read their check-ins, the member sees
/// it in their access log, exports their data (the document matches the
/// spec's `DataExport`), and asks to be erased.
async fn a_member_reads_their_access_log_and_exports(backend: Backend) {
    let server = Server::start(backend).await;
    let app = App::new(&server);
    let s = setup(&server, &app).await;
    let (member, _, membership) = join(&app, &s, "Zonnebloem").await;
    let r = app
        .post(
            &format!("/v1/circles/{}/checkins", s.circle),
            Some(&member),
            json!({"mood": 3, "note": "Het gaat wel."}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .get(
            &format!("/v1/circles/{}/checkins", s.circle),
            Some(&s.worker),
        )
        .await;
    assert_eq!(r.status, 200);
    let log = app.get("/v1/me/access-log", Some(&member)).await;
    assert_eq!(log.status, 200);
    let entry = &log.body["items"][0];
    assert_eq!(entry["kind"], "checkins");
    assert_eq!(entry["staff"]["display_name"], "Sam");
    assert_eq!(entry["membership_id"], membership.as_str());

    let started = app
        .call(
            "POST",
            "/v1/me/export",
            Some(&member),
            None,
            &[("idempotency-key", "export-1")],
        )
        .await;
    assert_eq!(started.status, 202);
    assert_eq!(started.body["status"], "pending");
    let id = started.str("/id");
    // The server's builder runs with the clock's jobs.
    app.advance(1).await;
    let status = app
        .get(&format!("/v1/me/exports/{id}"), Some(&member))
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "ready");
    let download = status.str("/download");
    let doc = app.get(&download, Some(&member)).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["format"], "kring-export/1");
    assert_eq!(doc.body["memberships"][0]["pseudonym"], "Zonnebloem");
    assert_eq!(doc.body["checkins"][0]["note"], "Het gaat wel.");
    assert_eq!(doc.body["access_log"][0]["kind"], "checkins");

    // Then the member asks to be erased: the worker sees them leaving, and
    // after the grace period the account and its name are gone.
    let asked = app
        .call(
            "POST",
            "/v1/me/erasure",
            Some(&member),
            Some(json!({"confirmation": "wis mijn gegevens"})),
            &[("idempotency-key", "erase-zonnebloem")],
        )
        .await;
    assert_eq!(asked.status, 202);
    let members = format!("/v1/circles/{}/members", s.circle);
    let listed = app.get(&members, Some(&s.worker)).await;
    let me = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == membership.as_str())
        .cloned()
        .unwrap();
    assert_eq!(me["leaving_at"], asked.body["due_at"]);
    app.advance(8 * DAY).await;
    assert_eq!(app.get("/v1/me", Some(&member)).await.status, 401);
    let listed = app.get(&members, Some(&s.worker)).await;
    assert!(!listed.body.to_string().contains("Zonnebloem"));
    server.stop().await;
}
both_backends!(a_member_reads_their_access_log_and_exports);

/// Answers the member's open questionnaire `id` with `option` for every
/// item (Idempotency-Key as the app sends it); returns the result.
async fn answer_all(app: &App, member: &str, id: &str, option: &str) -> serde_json::Value {
    let q = app
        .get(&format!("/v1/me/questionnaires/{id}"), Some(member))
        .await;
    assert_eq!(q.status, 200);
    assert!(!q.body["voluntary"].as_str().unwrap().is_empty());
    let answers: serde_json::Map<String, serde_json::Value> = q.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let offered = item["options"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["value"] == option);
            assert!(offered, "{option} is not an option of {item}");
            (item["id"].as_str().unwrap().to_owned(), json!(option))
        })
        .collect();
    let key = format!("answer-{id}");
    let r = app
        .call(
            "POST",
            &format!("/v1/me/questionnaires/{id}/answers"),
            Some(member),
            Some(json!({ "answers": answers })),
            &[("idempotency-key", &key)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["result"].clone()
}

/// Outcome measurement as a member and a coordinator live it: the member
/// answers the WHO-5 right after joining, is asked again at six weeks on
/// her phone, reminded three days later, answers, and the coordinator
/// downloads the organisation's report as CSV (one member: every cell
/// suppressed) while the circle's worker sees the unsuppressed figures.
async fn outcome_measurement(backend: Backend) {
    let push = PushService::start().await;
    let server = Server::start_with_push(backend, &push).await;
    let app = App::new(&server);
    monday_morning(&app).await;
    let s = setup(&server, &app).await;
    app.keep_fresh(&s.coordinator, &s.coordinator_refresh);
    app.keep_fresh(&s.worker, &s.worker_refresh);
    let (member, member_refresh, membership) = join_circle(&app, &s, "Zonnebloem").await;
    app.keep_fresh(&member, &member_refresh);
    let phone = push.phone();
    let device = app.post("/v1/devices", Some(&member), phone.device()).await;
    assert_eq!(device.status, 201);
    // She wants no reminders to write, so only questionnaires reach her.
    let quiet = app
        .call(
            "PATCH",
            &format!("/v1/circles/{}/membership", s.circle),
            Some(&member),
            Some(json!({"nudges_enabled": false})),
            &[],
        )
        .await;
    assert_eq!(quiet.status, 200, "{}", quiet.body);

    // The intake waits in the app right after joining; she answers it.
    let open = app.get("/v1/me/questionnaires", Some(&member)).await;
    let items = open.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", open.body);
    assert_eq!(items[0]["instrument"], "who5");
    assert_eq!(items[0]["moment"], "intake");
    let intake = answer_all(
        &app,
        &member,
        items[0]["id"].as_str().unwrap(),
        "some_of_the_time",
    )
    .await;
    // 5 × 1 = 5 raw, × 4 = 20 %: very low well-being, said in Dutch.
    assert_eq!(intake["raw"], 5);
    assert_eq!(intake["score"], 20);
    assert_eq!(intake["band"]["key"], "very_low");
    assert_eq!(phone.take(), Vec::<serde_json::Value>::new());

    // Six weeks on, her phone asks for the next one.
    let mut day = 0;
    let ask = loop {
        app.advance(DAY).await;
        day += 1;
        let pushes = phone.take();
        if !pushes.is_empty() {
            assert_eq!(kinds(&pushes), ["questionnaire"], "day {day}: {pushes:?}");
            break pushes[0].clone();
        }
        assert!(day < 44, "no questionnaire asked by day {day}");
    };
    assert!(day >= 42, "asked on day {day}, before six weeks");
    assert_eq!(ask["locale"], "nl");
    let open = app.get("/v1/me/questionnaires", Some(&member)).await;
    let items = open.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", open.body);
    assert_eq!(items[0]["moment"], "week_6");
    let week_6 = items[0]["id"].as_str().unwrap().to_owned();

    // Unanswered, one gentle reminder three days after the ask.
    let asked_on = day;
    let reminder = loop {
        app.advance(DAY).await;
        day += 1;
        let pushes = phone.take();
        if !pushes.is_empty() {
            break pushes;
        }
        assert!(day < asked_on + 5, "no reminder by day {day}");
    };
    assert_eq!(kinds(&reminder), ["questionnaire"]);
    assert_eq!(day - asked_on, 3, "the reminder came on day {day}");

    // She answers; nothing more is asked of her for this moment.
    let later = answer_all(&app, &member, &week_6, "more_than_half").await;
    assert_eq!(later["score"], 60);
    for _ in 0..7 {
        app.advance(DAY).await;
    }
    assert_eq!(phone.take(), Vec::<serde_json::Value>::new());
    let mine = app.get("/v1/me/outcomes", Some(&member)).await;
    assert_eq!(mine.status, 200);

    // The circle's worker sees her figures unsuppressed.
    let report = app
        .get(
            &format!("/v1/circles/{}/outcomes/report?instrument=who5", s.circle),
            Some(&s.worker),
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.body);
    let moments = report.body["moments"].as_array().unwrap();
    let at = |name: &str| {
        moments
            .iter()
            .find(|m| m["moment"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(at("intake")["score"]["mean"]["value"], 20.0);
    assert_eq!(at("week_6")["score"]["mean"]["value"], 60.0);
    assert_eq!(at("week_6")["change"]["mean"]["value"], 40.0);
    let _ = membership;

    // The coordinator downloads the organisation's report as CSV: with one
    // member, every figure about her is hidden.
    let csv = app
        .call(
            "GET",
            "/v1/organisation/outcomes?instrument=who5",
            Some(&s.coordinator),
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        csv.headers
    );
    let text = csv.body.as_str().unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("moment,anchor,offset_days,figure,value,suppressed")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let cell = |moment: &str, figure: &str| {
        rows.iter()
            .find(|r| r.len() == 6 && r[0] == moment && r[3] == figure)
            .unwrap_or_else(|| panic!("no {moment} {figure} row in\n{text}"))
            .clone()
    };
    let invited = cell("intake", "invited");
    assert_eq!((invited[4], invited[5]), ("", "fewer_than_k"), "{text}");
    let mean = cell("week_6", "score_mean");
    assert_eq!((mean[4], mean[5]), ("", "fewer_than_k"), "{text}");
    server.stop().await;
}
both_backends!(outcome_measurement);
