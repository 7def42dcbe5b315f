//! Role × route: who may reach what. Circle content is visible only to its
//! members and workers (and the organisation's coordinators); everyone else
//! gets 404, never a hint that it exists.

use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestApp};

struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn route(method: Method, path: String, body: Option<Value>) -> Route {
    Route { method, path, body }
}

async fn role_by_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zon").await;
    let other_circle = app.circle(&worker, "Geldzorgen").await;
    let outsider = app.member(&worker, &other_circle, "Buur").await;
    let elsewhere = app.organisation("Elders", "eva@elders.example").await;
    let foreign_worker = app.worker(&elsewhere, "olaf@elders.example").await;

    let post = app
        .post(
            &format!("/v1/circles/{circle}/posts"),
            member.token(),
            json!({"body": "Hallo"}),
        )
        .await
        .expect(201)
        .str("/id");
    let invite_id = app
        .post(
            &format!("/v1/circles/{circle}/invites"),
            worker.token(),
            json!({}),
        )
        .await
        .expect(201)
        .str("/id");
    let m = member.membership();

    let circle_routes = vec![
        route(Method::GET, format!("/v1/circles/{circle}"), None),
        route(
            Method::PATCH,
            format!("/v1/circles/{circle}"),
            Some(json!({"name": "Overgenomen"})),
        ),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/workers"),
            Some(json!({"account_id": worker.account_id})),
        ),
        route(
            Method::DELETE,
            format!("/v1/circles/{circle}/workers/{}", worker.account_id),
            None,
        ),
        route(Method::GET, format!("/v1/circles/{circle}/members"), None),
        route(
            Method::GET,
            format!("/v1/circles/{circle}/membership"),
            None,
        ),
        route(
            Method::PATCH,
            format!("/v1/circles/{circle}/membership"),
            Some(json!({"nudges_enabled": false})),
        ),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/membership/consent"),
            Some(json!({"version": 1})),
        ),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/membership/leave"),
            None,
        ),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/members/{m}/recovery-code"),
            None,
        ),
        route(Method::GET, format!("/v1/circles/{circle}/invites"), None),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/invites"),
            Some(json!({})),
        ),
        route(
            Method::DELETE,
            format!("/v1/circles/{circle}/invites/{invite_id}"),
            None,
        ),
        route(Method::GET, format!("/v1/circles/{circle}/posts"), None),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/posts"),
            Some(json!({"body": "Ik ook"})),
        ),
        route(
            Method::PUT,
            format!("/v1/circles/{circle}/read-position"),
            Some(json!({"post_id": post})),
        ),
        route(Method::GET, format!("/v1/posts/{post}"), None),
        route(
            Method::PATCH,
            format!("/v1/posts/{post}"),
            Some(json!({"body": "Van mij"})),
        ),
        route(Method::DELETE, format!("/v1/posts/{post}"), None),
        route(
            Method::POST,
            format!("/v1/posts/{post}/hide"),
            Some(json!({"reason": "x"})),
        ),
        route(Method::DELETE, format!("/v1/posts/{post}/hide"), None),
        route(Method::PUT, format!("/v1/posts/{post}/reactions/hug"), None),
        route(
            Method::DELETE,
            format!("/v1/posts/{post}/reactions/hug"),
            None,
        ),
        route(Method::GET, format!("/v1/circles/{circle}/checkins"), None),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/checkins"),
            Some(json!({"mood": 3})),
        ),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/checkins/ok"),
            None,
        ),
        route(
            Method::POST,
            format!("/v1/circles/{circle}/members/{m}/messages"),
            Some(json!({"text": "Hoi"})),
        ),
        route(Method::GET, format!("/v1/circles/{circle}/overview"), None),
    ];
    let account_routes = vec![
        route(Method::GET, "/v1/me".into(), None),
        route(
            Method::PATCH,
            "/v1/me".into(),
            Some(json!({"locale": "en"})),
        ),
        route(Method::POST, "/v1/auth/logout".into(), None),
        route(Method::POST, "/v1/auth/logout-all".into(), None),
        route(Method::GET, "/v1/organisation".into(), None),
        route(Method::GET, "/v1/organisation/staff".into(), None),
        route(
            Method::POST,
            "/v1/organisation/staff".into(),
            Some(json!({"role": "worker", "email": "x@y.example", "display_name": "X"})),
        ),
        route(
            Method::POST,
            format!("/v1/organisation/staff/{}/setup-code", worker.account_id),
            None,
        ),
        route(Method::GET, "/v1/circles".into(), None),
        route(
            Method::POST,
            "/v1/circles".into(),
            Some(json!({"name": "Nieuw"})),
        ),
        route(Method::GET, "/v1/devices".into(), None),
        route(
            Method::POST,
            "/v1/devices".into(),
            Some(json!({"kind": "fcm", "token": "fcm-token-0000000000000000000"})),
        ),
        route(Method::GET, "/v1/notifications".into(), None),
        route(Method::GET, "/v1/notifications/unread-count".into(), None),
        route(Method::POST, "/v1/notifications/read-all".into(), None),
        route(Method::GET, "/v1/me/notification-preferences".into(), None),
        route(
            Method::PATCH,
            "/v1/me/notification-preferences".into(),
            Some(json!({"replies": false})),
        ),
        route(Method::GET, "/v1/alerts".into(), None),
    ];

    // No token: 401 everywhere.
    for r in circle_routes.iter().chain(&account_routes) {
        app.request(r.method.clone(), &r.path, None, r.body.clone())
            .await
            .expect_problem(401, "unauthenticated");
    }

    // A member of another circle, a worker and a coordinator of another
    // organisation: the circle, its posts and its members do not exist.
    let strangers = [
        ("member of another circle", &outsider.access),
        ("worker of another organisation", &foreign_worker.access),
        (
            "coordinator of another organisation",
            &elsewhere.coordinator.access,
        ),
    ];
    for (who, token) in strangers {
        for r in &circle_routes {
            let resp = app
                .request(r.method.clone(), &r.path, Some(token), r.body.clone())
                .await;
            assert_eq!(
                resp.status, 404,
                "{who}: {} {} gave {}",
                r.method, r.path, resp.body
            );
            assert_eq!(resp.body["code"], "not_found");
        }
    }
    // Staff of another organisation cannot touch this organisation's staff.
    app.post(
        &format!("/v1/organisation/staff/{}/setup-code", worker.account_id),
        Some(&elsewhere.coordinator.access),
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");

    // Members can see their circle but not manage it.
    let staff_only = [
        (
            Method::PATCH,
            format!("/v1/circles/{circle}"),
            Some(json!({"name": "x"})),
            "staff_only",
        ),
        (
            Method::POST,
            format!("/v1/circles/{circle}/invites"),
            Some(json!({})),
            "staff_only",
        ),
        (
            Method::GET,
            format!("/v1/circles/{circle}/invites"),
            None,
            "staff_only",
        ),
        (
            Method::POST,
            format!("/v1/posts/{post}/hide"),
            Some(json!({"reason": "x"})),
            "staff_only",
        ),
        (
            Method::POST,
            format!("/v1/circles/{circle}/workers"),
            Some(json!({"account_id": worker.account_id})),
            "coordinator_only",
        ),
        (
            Method::GET,
            "/v1/organisation/staff".into(),
            None,
            "staff_only",
        ),
        (
            Method::POST,
            "/v1/organisation/staff".into(),
            Some(json!({"role": "worker", "email": "x@y.example", "display_name": "X"})),
            "coordinator_only",
        ),
        (
            Method::POST,
            "/v1/circles".into(),
            Some(json!({"name": "Eigen"})),
            "staff_only",
        ),
        (
            Method::POST,
            format!("/v1/circles/{circle}/members/{m}/messages"),
            Some(json!({"text": "Hoi"})),
            "staff_only",
        ),
        (
            Method::GET,
            format!("/v1/circles/{circle}/overview"),
            None,
            "staff_only",
        ),
        (Method::GET, "/v1/alerts".into(), None, "staff_only"),
    ];
    for (method, path, body, code) in staff_only {
        app.request(method, &path, member.token(), body)
            .await
            .expect_problem(403, code);
    }
    // Workers cannot do what only coordinators do.
    app.post(
        "/v1/organisation/staff",
        worker.token(),
        json!({"role": "worker", "email": "x@y.example", "display_name": "X"}),
    )
    .await
    .expect_problem(403, "coordinator_only");
    // The coordinator of this organisation sees the circle without being in it.
    app.get(
        &format!("/v1/circles/{circle}/posts"),
        org.coordinator.token(),
    )
    .await
    .expect(200);
    // The member reads their own circle.
    for r in circle_routes.iter().filter(|r| {
        r.method == Method::GET && !r.path.ends_with("/invites") && !r.path.ends_with("/overview")
    }) {
        let resp = app
            .request(r.method.clone(), &r.path, member.token(), None)
            .await;
        assert_eq!(
            resp.status, 200,
            "member: GET {} gave {}",
            r.path, resp.body
        );
    }

    // An expired token: 401 token_expired everywhere, so apps know to refresh.
    app.advance(SignedDuration::from_mins(16));
    for r in circle_routes.iter().chain(&account_routes) {
        app.request(r.method.clone(), &r.path, member.token(), r.body.clone())
            .await
            .expect_problem(401, "token_expired");
    }
    app.stop().await;
}
both_backends!(role_by_route);
