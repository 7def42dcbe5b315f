//! The committed spec is the served spec, and it documents every operation.
//!
//! After changing the API, regenerate it with
//! `cargo run -- openapi > openapi/openapi.json`.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestApp};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[tokio::test]
async fn served_spec_matches_the_committed_file() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        served == COMMITTED,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
    );
    assert_eq!(kring::app::spec_json(), COMMITTED);
    app.stop().await;
}

#[test]
fn push_payload_schema_matches_the_committed_file() {
    assert!(
        kring::push::payload::json_schema()
            == include_str!("../../openapi/push-payload.schema.json"),
        "openapi/push-payload.schema.json is out of date: run `cargo run -- push-payload-schema > openapi/push-payload.schema.json`"
    );
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(
        spec["components"]["schemas"]["PushPayload"].is_object(),
        "the spec carries the payload schema"
    );
}

#[test]
fn every_operation_is_documented() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut count = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let name = format!("{} {path}", method.to_uppercase());
            assert!(
                op["operationId"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: operationId"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: summary"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{name}: tags"
            );
            let responses = op["responses"].as_object().unwrap();
            let public = ["/healthz", "/readyz", "/openapi.json"].contains(&path.as_str());
            if !public {
                assert!(
                    responses.keys().any(|s| s.starts_with('4')),
                    "{name}: documents its 4xx errors"
                );
                assert!(responses.contains_key("500"), "{name}: documents 500");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = response["$ref"].as_str().unwrap_or("");
                    let inline = response
                        .pointer("/content/application~1problem+json")
                        .is_some();
                    assert!(
                        reference.starts_with("#/components/responses/")
                            || inline
                            || status == "503",
                        "{name} {status}: problem+json"
                    );
                }
            }
            // Named schemas: every JSON body an app sends or receives is a
            // component (or a list of one), so generated clients get types
            // with names instead of `InlineObject17`.
            let mut bodies: Vec<(String, &Value)> = Vec::new();
            let json = |(media, _): &(&String, &Value)| media.ends_with("json");
            if let Some(content) = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
            {
                bodies.extend(
                    content
                        .iter()
                        .filter(json)
                        .map(|(_, c)| ("request".to_owned(), c)),
                );
            }
            for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('2')) {
                if let Some(content) = response.get("content").and_then(Value::as_object) {
                    bodies.extend(
                        content
                            .iter()
                            .filter(json)
                            .map(|(_, c)| (status.clone(), c)),
                    );
                }
            }
            // The spec itself is the one body without a schema.
            for (which, media) in bodies.into_iter().filter(|_| path != "/openapi.json") {
                let schema = &media["schema"];
                let named = schema.get("$ref").is_some()
                    || (schema["type"] == "array" && schema["items"].get("$ref").is_some());
                assert!(named, "{name} {which}: a named schema, not {schema}");
            }
            let security = op
                .get("security")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let bearer = security.iter().any(|s| s.get("bearer").is_some());
            if responses.contains_key("401") && !path.starts_with("/v1/auth/") {
                assert!(bearer, "{name}: a 401 route declares bearer security");
            }
            if method == "post" && responses.contains_key("201") {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
                    "{name}: creating POSTs take Idempotency-Key"
                );
            }
        }
    }
    assert!(count >= 40, "only {count} operations");
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}

/// operationIds are the method names of generated clients: `resource_action`
/// in snake case, unique, and stable, so each one is recorded in the spec's
/// changelog (which every later spec change updates).
#[test]
fn operation_ids_name_resource_and_action_and_are_recorded() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let changelog = include_str!("../../openapi/CHANGELOG.md");
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            let name = format!("{} {path}", method.to_uppercase());
            let words: Vec<&str> = id.split('_').collect();
            assert!(
                words.len() >= 2
                    && words
                        .iter()
                        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{name}: operationId {id:?} is not resource_action in snake case"
            );
            assert!(seen.insert(id.to_owned()), "{name}: operationId {id} twice");
            assert!(
                changelog.contains(&format!("`{id}`")),
                "{name}: operationId {id} is not recorded in openapi/CHANGELOG.md"
            );
        }
    }
}

/// A time zone is a string the server checks, not a list of the server's
/// zones: a name the spec's pattern admits but no database knows is 422
/// `validation_failed` on `time_zone`, wherever an app sends one.
async fn time_zones_are_strings_the_server_checks(backend: Backend) {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let zone = &spec["components"]["schemas"]["TimeZone"];
    assert_eq!(zone["type"], "string");
    assert!(zone.get("enum").is_none(), "no list of zones: {zone}");
    assert!(zone["description"].as_str().unwrap().contains("IANA"));
    assert_eq!(zone["examples"][0], "Europe/Amsterdam");

    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "coordinator@example.org")
        .await;
    let worker = app.worker(&org, "worker@example.org").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    let code = app.invite(&worker, &circle, 1).await;
    for unknown in ["Europe/Atlantis", "Mars/Olympus_Mons", "Etc/GMT+99"] {
        let r = app
            .patch("/v1/me", member.token(), json!({"time_zone": unknown}))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["time_zone"]);
        let r = app
            .post(
                "/v1/join",
                None,
                json!({"code": code, "pseudonym": "Klaproos", "consent_version": 1, "time_zone": unknown}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["time_zone"]);
        let r = app
            .post(
                "/v1/organisation/staff",
                org.coordinator.token(),
                json!({"role": "worker", "email": "sam@example.org", "display_name": "Sam", "time_zone": unknown}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["time_zone"]);
    }
    // A zone the server knows is kept as sent.
    let r = app
        .patch(
            "/v1/me",
            member.token(),
            json!({"time_zone": "America/Paramaribo"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["time_zone"], "America/Paramaribo");
    app.stop().await;
}
both_backends!(time_zones_are_strings_the_server_checks);

/// An open enum: `anyOf` the known values and any string, with the rule
/// for apps in its description.
fn is_open(schema: &Value) -> bool {
    let items = schema["anyOf"].as_array().cloned().unwrap_or_default();
    items.len() == 2
        && items[0]["type"] == "string"
        && items[0]["enum"].as_array().is_some_and(|e| !e.is_empty())
        && items[1] == json!({"type": "string"})
        && schema["description"]
            .as_str()
            .is_some_and(|d| d.ends_with(kring::openapi::OPEN_ENUM_RULE))
}

/// Enums only the server sends may grow, and say so in a way generators
/// understand; enums an app sends are closed (the server refuses other
/// values). The push payload's `kind` and `actions` are open too.
#[test]
fn response_enums_are_open_and_request_enums_closed() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let (requests, responses) = kring::openapi::schema_uses(&spec);
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let (mut open, mut closed) = (0, 0);
    for (name, schema) in schemas {
        let is_enum = schema.get("enum").is_some() || is_open(schema);
        if !is_enum {
            continue;
        }
        if requests.contains(name) {
            assert!(schema["enum"].is_array(), "{name} is in a request: closed");
            closed += 1;
        } else {
            assert!(responses.contains(name), "{name} is used");
            assert!(is_open(schema), "{name} is only in responses: open");
            open += 1;
        }
    }
    assert!(open >= 10 && closed >= 5, "{open} open, {closed} closed");
    assert!(is_open(&schemas["NotificationKind"]));
    assert!(is_open(&schemas["AlertStatus"]));
    let payload: Value =
        serde_json::from_str(include_str!("../../openapi/push-payload.schema.json")).unwrap();
    for schema in [&schemas["PushPayload"], &payload] {
        assert!(is_open(&schema["properties"]["kind"]), "kind: {schema}");
        assert!(is_open(&schema["properties"]["actions"]["items"]));
    }
}

/// Problem codes are part of the contract. Every code the server can answer
/// with is in the registry (`kring::error::Code`: an `ApiError` takes no
/// other), and every registered code is in the spec: under the error
/// responses of the operations that answer with it (with the code's own
/// status), or at the root among the codes any request can meet. Every
/// error response lists its codes and says what each means. (That each
/// code a test meets is listed for its operation is checked on every
/// request, in `support::TestApp::request_with`.)
#[test]
fn every_problem_code_is_registered_and_documented() {
    use kring::error::codes::{Code, Reach, lookup};
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                if !(status.starts_with('4') || status.starts_with('5'))
                    || response
                        .pointer("/content/application~1problem+json")
                        .is_none()
                {
                    continue;
                }
                let name = format!("{} {path} {status}", method.to_uppercase());
                let codes = response["x-problem-codes"].as_array();
                assert!(
                    codes.is_some_and(|c| !c.is_empty()),
                    "{name}: lists its codes"
                );
                for code in codes.into_iter().flatten() {
                    let code = code.as_str().unwrap();
                    let registered = lookup(code).unwrap_or_else(|| panic!("{name}: {code}"));
                    assert_eq!(registered.status().as_str(), status, "{name}: {code}");
                    assert_eq!(registered.reach(), Reach::Operation, "{name}: {code}");
                    let description = response["description"].as_str().unwrap();
                    assert!(
                        description.contains(&format!("`{code}`: {}", registered.meaning())),
                        "{name}: says what {code} means"
                    );
                    documented.insert(registered);
                }
            }
        }
    }
    for code in spec["x-problem-codes"].as_array().unwrap() {
        let registered = lookup(code.as_str().unwrap()).unwrap();
        assert_eq!(registered.reach(), Reach::AnyRequest, "{code}");
        documented.insert(registered);
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !documented.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "codes the spec does not name: {missing:?}"
    );
}

/// The README's table of problem codes is the registry's.
#[test]
fn the_readme_lists_every_problem_code() {
    let readme = include_str!("../../README.md");
    let start = "<!-- problem-codes: generated from src/error/codes.rs -->\n";
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("<!-- /problem-codes -->"))
        .map(|(table, _)| table)
        .expect("README marks its table of problem codes");
    assert!(
        table == kring::error::codes::markdown_table(),
        "the README's problem codes differ from the registry; replace the table with:\n{}",
        kring::error::codes::markdown_table()
    );
}

/// The schema at `pointer` (`/a/b`) inside `schema`, through references,
/// `anyOf`/`oneOf` branches and object properties.
fn has_field(spec: &Value, schema: &Value, pointer: &[&str]) -> bool {
    let schema = match schema["$ref"].as_str() {
        Some(r) => spec
            .pointer(r.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => schema,
    };
    let Some((first, rest)) = pointer.split_first() else {
        return true;
    };
    let branches = ["anyOf", "oneOf", "allOf"]
        .iter()
        .filter_map(|k| schema[*k].as_array())
        .flatten();
    schema["properties"]
        .get(*first)
        .is_some_and(|p| has_field(spec, p, rest))
        || branches.into_iter().any(|b| has_field(spec, b, pointer))
}

/// The main flows are links between operations (create → get, join → me,
/// feed → sync and next page); each names a real operation, its real
/// parameters, and fields the response or request really has.
#[test]
fn links_lead_to_real_operations_with_real_values() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let mut ops = std::collections::BTreeMap::new();
    for item in spec["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ops.insert(op["operationId"].as_str().unwrap().to_owned(), op);
        }
    }
    let has_param = |op: &Value, place: &str, name: &str| {
        op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == place))
    };
    let mut count = 0;
    for (id, op) in &ops {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(links) = response["links"].as_object() else {
                continue;
            };
            for (name, link) in links {
                count += 1;
                let at = format!("{id} {status} link {name}");
                assert!(
                    link["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{at}"
                );
                let target = link["operationId"].as_str().unwrap();
                let target = ops.get(target).unwrap_or_else(|| panic!("{at}: {target}"));
                for (param, expression) in link["parameters"].as_object().into_iter().flatten() {
                    let expression = expression.as_str().unwrap();
                    assert!(
                        ["path", "query", "header"]
                            .iter()
                            .any(|place| has_param(target, place, param)),
                        "{at}: the target has no parameter {param}"
                    );
                    if let Some(pointer) = expression.strip_prefix("$response.body#/") {
                        let schema = &response["content"]["application/json"]["schema"];
                        let pointer: Vec<&str> = pointer.split('/').collect();
                        assert!(has_field(&spec, schema, &pointer), "{at}: {expression}");
                    } else if let Some(p) = expression.strip_prefix("$request.path.") {
                        assert!(has_param(op, "path", p), "{at}: {expression}");
                    } else if let Some(q) = expression.strip_prefix("$request.query.") {
                        assert!(has_param(op, "query", q), "{at}: {expression}");
                    } else {
                        panic!("{at}: unexpected expression {expression}");
                    }
                }
            }
        }
    }
    assert!(count >= 20, "only {count} links");
    let links = |id: &str, status: &str| {
        ops[id]["responses"][status]["links"]
            .as_object()
            .map(|l| {
                l.values()
                    .map(|v| v["operationId"].as_str().unwrap().to_owned())
            })
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
    };
    assert!(links("circles_create", "201").contains(&"circle_get".to_owned()));
    assert!(links("invite_join", "201").contains(&"me_get".to_owned()));
    assert!(links("circle_posts_list", "200").contains(&"circle_posts_list".to_owned()));
}

/// The document states its conventions and who to contact; public
/// operations declare no security (`[]`) under a root that requires a
/// bearer token; the headers the server sends are declared where they
/// occur; the push payload is the one webhook.
#[test]
fn conventions_security_and_headers_are_declared() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let info = &spec["info"];
    assert!(info["contact"]["name"].is_string());
    assert_eq!(info["license"]["identifier"], "EUPL-1.2");
    let description = info["description"].as_str().unwrap();
    for section in [
        "## Authentication",
        "## Errors",
        "## Idempotency",
        "## Pagination",
        "## Sync",
        "## Push notifications",
    ] {
        assert!(description.contains(section), "info.description: {section}");
    }
    assert_eq!(spec["security"], json!([{"bearer": []}]));
    let webhook = &spec["webhooks"]["push_notification"]["post"];
    assert_eq!(
        webhook.pointer("/requestBody/content/application~1json/schema/$ref"),
        Some(&json!("#/components/schemas/PushPayload"))
    );
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let security = op["security"].as_array().unwrap();
            assert!(
                !security.iter().any(|s| s == &json!({})) || security.len() > 1,
                "{name}: a public operation says security: [], not [{{}}]"
            );
            for (status, response) in op["responses"].as_object().unwrap() {
                let headers = &response["headers"];
                let problem = response
                    .pointer("/content/application~1problem+json")
                    .is_some();
                if problem && (status == "429" || status == "503") {
                    assert!(headers["Retry-After"].is_object(), "{name} {status}");
                }
                if status == "401" {
                    assert!(headers["WWW-Authenticate"].is_object(), "{name} {status}");
                }
                if method == "post" && status.starts_with('2') {
                    assert!(
                        headers["Idempotent-Replayed"].is_object(),
                        "{name} {status}"
                    );
                }
            }
        }
    }
}

/// Every example in the spec, with the schema it illustrates: schema
/// `example`/`examples` (components, properties, items, branches,
/// parameters, headers) and media type examples.
fn examples(spec: &Value) -> Vec<(String, Value, Value)> {
    fn schema(at: String, s: &Value, out: &mut Vec<(String, Value, Value)>) {
        let Some(object) = s.as_object() else {
            return;
        };
        if let Some(example) = object.get("example") {
            out.push((at.clone(), s.clone(), example.clone()));
        }
        for example in object
            .get("examples")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push((at.clone(), s.clone(), example.clone()));
        }
        for (name, p) in object
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            schema(format!("{at}.{name}"), p, out);
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(sub) = object.get(key) {
                schema(format!("{at}/{key}"), sub, out);
            }
        }
        for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
            for (i, sub) in object
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                schema(format!("{at}/{key}[{i}]"), sub, out);
            }
        }
    }
    fn media(at: String, content: &Value, out: &mut Vec<(String, Value, Value)>) {
        for (kind, m) in content.as_object().into_iter().flatten() {
            let at = format!("{at} {kind}");
            let s = &m["schema"];
            if let Some(example) = m.get("example") {
                out.push((at.clone(), s.clone(), example.clone()));
            }
            for (name, e) in m
                .get("examples")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                out.push((format!("{at} {name}"), s.clone(), e["value"].clone()));
            }
            schema(at, s, out);
        }
    }
    let mut out = Vec::new();
    for (name, s) in spec["components"]["schemas"].as_object().unwrap() {
        schema(name.clone(), s, &mut out);
    }
    for root in ["paths", "webhooks"] {
        for (path, item) in spec[root].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().unwrap() {
                let at = format!("{} {path}", method.to_uppercase());
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let at = format!("{at} parameter {}", p["name"]);
                    if let Some(example) = p.get("example") {
                        out.push((at.clone(), p["schema"].clone(), example.clone()));
                    }
                    schema(at, &p["schema"], &mut out);
                }
                media(
                    format!("{at} request"),
                    &op["requestBody"]["content"],
                    &mut out,
                );
                for (status, r) in op["responses"].as_object().unwrap() {
                    media(format!("{at} {status}"), &r["content"], &mut out);
                    for (name, h) in r["headers"].as_object().into_iter().flatten() {
                        let at = format!("{at} {status} header {name}");
                        if let Some(example) = h.get("example") {
                            out.push((at.clone(), h["schema"].clone(), example.clone()));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Every example in the spec is valid against its own schema, so an app
/// team can trust them (and a mock server can serve them).
#[test]
fn every_example_matches_its_schema() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let all = examples(&spec);
    let failures: Vec<String> = all
        .iter()
        .filter_map(|(at, schema, example)| {
            crate::support::spec()
                .validate(schema, example)
                .err()
                .map(|e| format!("{at}: {e}\n  example: {example}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} examples fail:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    assert!(all.len() >= 100, "only {} examples", all.len());
    // The check can fail: a wrong example is caught.
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    assert!(
        crate::support::spec()
            .validate(&problem, &json!({"code": 1}))
            .is_err()
    );
}

/// The spec is documentation an app team can build from alone: every
/// operation has a one-line summary and a description (who may call it,
/// what it changes, its edge cases), every schema, property and parameter
/// has a description, and every request body and 2xx response has an
/// example (checked against its schema by `every_example_matches_its_schema`).
#[test]
fn everything_is_described_and_every_body_has_an_example() {
    let spec: Value = serde_json::from_str(COMMITTED).unwrap();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str() {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => s.clone(),
        }
    };
    let described = |s: &Value| {
        s["description"]
            .as_str()
            .is_some_and(|d| !d.trim().is_empty())
            || (s.get("$ref").is_some() && resolve(s)["description"].is_string())
    };
    let mut missing = Vec::new();
    for (name, schema) in schemas {
        if !described(schema) {
            missing.push(format!("schema {name}"));
        }
        let mut objects = vec![schema.clone()];
        for key in ["oneOf", "anyOf", "allOf"] {
            objects.extend(schema[key].as_array().into_iter().flatten().cloned());
        }
        for object in objects {
            for (property, s) in object["properties"].as_object().into_iter().flatten() {
                if !described(s) {
                    missing.push(format!("property {name}.{property}"));
                }
            }
        }
    }
    let has_example = |media: &Value| {
        let schema = resolve(&media["schema"]);
        let schema = if schema["type"] == "array" {
            resolve(&schema["items"])
        } else {
            schema
        };
        media.get("example").is_some()
            || media.get("examples").is_some()
            || schema.get("example").is_some()
            || schema.get("examples").is_some()
    };
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let summary = op["summary"].as_str().unwrap_or_default();
            if summary.is_empty() || summary.contains('\n') {
                missing.push(format!("{name}: a one-line summary"));
            }
            if !described(op) {
                missing.push(format!("{name}: description"));
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if !described(p) {
                    missing.push(format!("{name}: parameter {}", p["name"]));
                }
            }
            if let Some(media) = op.pointer("/requestBody/content/application~1json")
                && !has_example(media)
            {
                missing.push(format!("{name}: request example"));
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if !described(response) {
                    missing.push(format!("{name} {status}: description"));
                }
                if let Some(media) = response.pointer("/content/application~1json")
                    && status.starts_with('2')
                    && path != "/openapi.json"
                    && !has_example(media)
                {
                    missing.push(format!("{name} {status}: example"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not documented:\n{}",
        missing.join("\n")
    );
}
