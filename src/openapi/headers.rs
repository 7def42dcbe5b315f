//! The response headers the server sends, declared where they occur:
//! `Idempotent-Replayed` on what a POST answers (a replay of a stored
//! answer), `Retry-After` with 429 and 503, `WWW-Authenticate` with 401.

use utoipa::Modify;
use utoipa::openapi::RefOr;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::{Method, operations};
use crate::http::idempotency::REPLAYED_HEADER;

/// Declares the headers on every response that can carry them. Runs after
/// [`super::Problems`], which makes the error responses.
pub struct ResponseHeaders;

impl Modify for ResponseHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for (method, op) in operations(item) {
                for (status, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let problem = response.content.contains_key("application/problem+json");
                    let headers = &mut response.headers;
                    // Every POST honours an Idempotency-Key; what it
                    // answers is stored and replayed, except a 401 or 5xx.
                    if method == Method::Post
                        && (status.starts_with('2') || status.starts_with('4'))
                        && status != "401"
                    {
                        headers.insert("Idempotent-Replayed".into(), replayed());
                    }
                    match status.as_str() {
                        "429" | "503" if problem => {
                            headers.insert("Retry-After".into(), retry_after());
                        }
                        "401" => {
                            headers.insert("WWW-Authenticate".into(), www_authenticate());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

fn replayed() -> RefOr<Header> {
    debug_assert_eq!(REPLAYED_HEADER, "idempotent-replayed");
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true", "false"])),
        ))
        .description(Some(
            "Sent when the request carried an `Idempotency-Key`: `true` when this is the \
             stored answer to an earlier request with the same key (and body), so nothing \
             was done again; `false` on the first answer.",
        ))
        .build()
        .into()
}

fn retry_after() -> RefOr<Header> {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        ))
        .description(Some("How many seconds to wait before trying again."))
        .example(Some(serde_json::json!(2)))
        .build()
        .into()
}

fn www_authenticate() -> RefOr<Header> {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some("`Bearer`: this needs a bearer access token."))
        .example(Some(serde_json::json!("Bearer")))
        .build()
        .into()
}
