//! The committed spec is the served spec, and it documents every operation.
//!
//! After changing the API, regenerate it with
//! `cargo run -- openapi > openapi/openapi.json`.

use serde_json::Value;

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
