//! Every operation's problem+json error responses, made from the problem
//! codes it can answer with.

use std::collections::{BTreeMap, BTreeSet};

use utoipa::Modify;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

use super::{Method, is_empty_requirement, operations};
use crate::error::codes::{self, Code, Reach};

/// The extension that names problem `code`s. On an operation, in its
/// `#[utoipa::path(extensions(...))]`: the codes its handler answers with
/// (as [`Code`]s, so only registered ones compile). On each error response
/// of the finished spec: every code that operation answers with that status.
/// At the root of the spec: the codes any request can meet.
pub const PROBLEM_CODES: &str = "x-problem-codes";

/// Every operation's error responses, made from its problem codes: the ones
/// its handler names, and the ones that come with the mechanisms it uses (a
/// bearer token, a JSON body, path and query parameters, `since`,
/// `Idempotency-Key`, the database). Each error response lists its codes
/// with what they mean, so the spec never omits a code the server can send,
/// and no handler repeats the common ones.
pub struct Problems;

/// The operations that answer without the database and cannot fail.
const CANNOT_FAIL: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let global_security = openapi.security.clone();
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let mut codes = declared_codes(op);
                codes.extend(mechanism_codes(
                    path,
                    method,
                    op,
                    global_security.as_deref(),
                ));
                set_problem_responses(op, &codes);
            }
        }
        let anywhere: Vec<&str> = Code::ALL
            .iter()
            .filter(|c| c.reach() == Reach::AnyRequest)
            .map(|c| c.as_str())
            .collect();
        openapi
            .extensions
            .get_or_insert_with(Default::default)
            .insert(PROBLEM_CODES.into(), serde_json::json!(anywhere));
    }
}

/// The codes an operation's handler names, taken out of its extensions.
fn declared_codes(op: &mut Operation) -> BTreeSet<Code> {
    let declared = op.extensions.as_mut().and_then(|e| e.remove(PROBLEM_CODES));
    if op.extensions.as_ref().is_some_and(|e| e.is_empty()) {
        op.extensions = None;
    }
    declared
        .as_ref()
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().and_then(codes::lookup))
        .collect()
}

/// The codes that come with what an operation uses.
fn mechanism_codes(
    path: &str,
    method: Method,
    op: &Operation,
    global_security: Option<&[SecurityRequirement]>,
) -> Vec<Code> {
    // The control-character check on every query string.
    let mut codes = vec![Code::InvalidQuery];
    if !CANNOT_FAIL.contains(&path) {
        codes.push(Code::InternalError);
    }
    // A bearer token: required, or optional beside an empty requirement.
    let requirements = op.security.as_deref().or(global_security).unwrap_or(&[]);
    if requirements.iter().any(|r| !is_empty_requirement(r)) {
        codes.extend([Code::InvalidToken, Code::TokenExpired]);
        if !requirements.iter().any(is_empty_requirement) {
            codes.push(Code::Unauthenticated);
        }
    }
    for param in op.parameters.iter().flatten() {
        let RefOr::T(param) = param else { continue };
        match (&param.parameter_in, param.name.as_str()) {
            (ParameterIn::Path, _) => codes.push(Code::NotFound),
            (ParameterIn::Query, name) => {
                codes.push(Code::ValidationFailed);
                if name == "since" {
                    codes.push(Code::ResyncRequired);
                }
            }
            _ => {}
        }
    }
    // Every POST honours an `Idempotency-Key` when one is sent, whether
    // the operation asks for it or not.
    if method == Method::Post {
        codes.extend([
            Code::InvalidIdempotencyKey,
            Code::IdempotencyInProgress,
            Code::IdempotencyKeyReused,
        ]);
    }
    if op.request_body.is_some() {
        codes.extend([
            Code::MalformedJson,
            Code::DuplicateKey,
            Code::UnreadableBody,
            Code::PayloadTooLarge,
            Code::UnsupportedMediaType,
            Code::ValidationFailed,
        ]);
    }
    codes
}

/// Replaces the operation's problem responses with one per status of
/// `codes`, each listing its codes and what they mean.
fn set_problem_responses(op: &mut Operation, codes: &BTreeSet<Code>) {
    op.responses
        .responses
        .retain(|status, response| !(is_error(status) && is_problem(response)));
    let mut by_status: BTreeMap<u16, Vec<Code>> = BTreeMap::new();
    for code in codes {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(*code);
    }
    for (status, codes) in by_status {
        let description = codes
            .iter()
            .map(|c| format!("- `{}`: {}", c.as_str(), c.meaning()))
            .collect::<Vec<_>>()
            .join("\n");
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add(PROBLEM_CODES, serde_json::json!(names))
                    .build(),
            ))
            .build();
        op.responses
            .responses
            .insert(status.to_string(), response.into());
    }
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// A problem+json response (rather than, say, `/readyz`'s 503 health report).
fn is_problem(response: &RefOr<utoipa::openapi::Response>) -> bool {
    match response {
        RefOr::Ref(_) => true,
        RefOr::T(r) => r.content.contains_key("application/problem+json"),
    }
}
