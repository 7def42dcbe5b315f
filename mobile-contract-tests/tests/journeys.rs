//! Journeys, played over HTTP the way a phone app plays them, against the
//! real `kring` binary. Every response is checked against the committed spec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mobile_contract_tests::{App, Backend, Server};
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
    worker: String,
    circle: String,
}

async fn setup(server: &Server, app: &App) -> Setup {
    let code = server.create_organisation("Buurtwerk", "anna@buurtwerk.example");
    let coordinator = app
        .post(
            "/v1/auth/setup",
            None,
            json!({"code": code, "password": PASSWORD}),
        )
        .await
        .str("/tokens/access_token");
    let worker_code = app
        .post(
            "/v1/organisation/staff",
            Some(&coordinator),
            json!({"role": "worker", "email": "sam@buurtwerk.example", "display_name": "Sam"}),
        )
        .await
        .str("/setup_code");
    let worker = app
        .post(
            "/v1/auth/setup",
            None,
            json!({"code": worker_code, "password": PASSWORD}),
        )
        .await
        .str("/tokens/access_token");
    let circle = app
        .post("/v1/circles", Some(&worker), json!({"name": "Samen sterk"}))
        .await
        .str("/id");
    Setup { worker, circle }
}

/// A member joins the way the app does it; returns (access, refresh, membership).
async fn join(app: &App, s: &Setup, pseudonym: &str) -> (String, String, String) {
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
    assert_eq!(
        app.checked.get(),
        14,
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
