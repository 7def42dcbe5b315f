//! The OpenAPI document: metadata, security scheme, tags, every
//! operation's problem+json error responses (made from the problem codes
//! it can answer with), and the field schemas that state the validators'
//! rules.

use std::collections::{BTreeMap, BTreeSet};

use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::codes::{self, Code, Reach};
use crate::error::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kring API",
        description = "The REST API behind Kring's phone apps: small asynchronous support circles \
                       with gentle reminders and worker alerts.\n\n\
                       Conventions: JSON with snake_case fields; ids are opaque strings; times are \
                       RFC 3339 UTC. Errors are RFC 9457 `application/problem+json` with a stable \
                       `code`. Lists use cursor pagination (`limit`, `cursor` → `next_cursor`) and \
                       `since` for incremental sync. Send `Idempotency-Key` on every POST that \
                       creates something: a retry returns the first response.",
        version = env!("CARGO_PKG_VERSION"),
        license(name = "EUPL-1.2", identifier = "EUPL-1.2"),
    ),
    servers((url = "/", description = "This Kring server")),
    modifiers(&SecurityAddon),
    components(
        schemas(Problem, FieldError, crate::push::PushPayload),
    ),
    tags(
        (name = "auth", description = "Sign-in, tokens and sessions"),
        (name = "me", description = "Your own account and settings"),
        (name = "organisation", description = "Coordinators: the organisation and its staff"),
        (name = "circles", description = "Circles, their rhythm and escalation policy"),
        (name = "invites", description = "Invite codes and joining a circle"),
        (name = "memberships", description = "Members of a circle and their own settings"),
        (name = "posts", description = "Posts, replies, reactions and read positions"),
        (name = "checkins", description = "How members are doing, and \"I'm OK\""),
        (name = "devices", description = "Devices that receive push notifications"),
        (name = "notifications", description = "The inbox, preferences and personal messages. Push payloads follow the `PushPayload` schema (also committed as `openapi/push-payload.schema.json`)."),
        (name = "alerts", description = "The silence engine's alerts for workers, and the circle overview"),
        (name = "access_log", description = "Who read or changed a member's data: every access by a worker or coordinator, for the member and for coordinators (NEN 7513)"),
        (name = "exports", description = "A member's copy of everything Kring holds about them (GDPR art. 15 and 20): started by the member or by a coordinator on their behalf, built by a job, downloadable until it expires"),
        (name = "operations", description = "Health checks, metrics and the spec"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from sign-in, join, setup, recovery or refresh. \
                         Expired tokens answer 401 `token_expired`: refresh and retry.",
                    ))
                    .build(),
            ),
        );
    }
}

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

/// Said of every open enum, in its description.
pub const OPEN_ENUM_RULE: &str = "Open list: Kring may add values at any time, without a new \
     API version (each is recorded in the spec's CHANGELOG). Apps must accept a value they do \
     not know, ignoring it or showing something neutral, and must not fail on it.";

/// An enum whose list may grow, as generators understand it: `anyOf` the
/// known values and any string. Clients get a type for the known values
/// and still read an unknown one (openapi-python-client: a union of the
/// enum and `str`; swift-openapi-generator: a value with the known case or
/// the string; openapi-typescript: the literals or `string`).
///
/// The description is `description`, or else the enum's own, followed by
/// [`OPEN_ENUM_RULE`].
pub fn open_enum(closed: RefOr<Schema>, description: Option<&str>) -> RefOr<Schema> {
    let (own, known) = match closed {
        RefOr::T(Schema::Object(mut known)) => (known.description.take(), RefOr::T(known.into())),
        other => (None, other),
    };
    let description = match description.map(str::to_owned).or(own) {
        Some(d) => format!("{d}\n\n{OPEN_ENUM_RULE}"),
        None => OPEN_ENUM_RULE.to_owned(),
    };
    AnyOfBuilder::new()
        .item(known)
        .item(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .into()
}

/// Enums that only the server sends (a notification's `kind`, an alert's
/// `status`, …) are open: one more value must not break an app built
/// before it ([`open_enum`]). Enums that appear in a request stay closed:
/// the server refuses other values, and the spec says so.
pub struct OpenEnums;

impl Modify for OpenEnums {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Ok(doc) = serde_json::to_value(&*openapi) else {
            return;
        };
        let (requests, responses) = schema_uses(&doc);
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, schema) in components.schemas.iter_mut() {
            let is_enum = matches!(schema, RefOr::T(Schema::Object(o)) if o.enum_values.is_some());
            if is_enum && responses.contains(name) && !requests.contains(name) {
                *schema = open_enum(schema.clone(), None);
            }
        }
    }
}

/// The component schemas that requests (bodies and parameters) and
/// responses use, directly or through other components.
pub fn schema_uses(doc: &serde_json::Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let schemas = &doc["components"]["schemas"];
    let (mut requests, mut responses) = (BTreeSet::new(), BTreeSet::new());
    for item in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|i| i.values()) {
            collect_refs(&op["requestBody"], schemas, &mut requests);
            collect_refs(&op["parameters"], schemas, &mut requests);
            collect_refs(&op["responses"], schemas, &mut responses);
        }
    }
    (requests, responses)
}

fn collect_refs(
    value: &serde_json::Value,
    schemas: &serde_json::Value,
    into: &mut BTreeSet<String>,
) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                && into.insert(name.to_owned())
            {
                collect_refs(&schemas[name], schemas, into);
            }
            map.values().for_each(|v| collect_refs(v, schemas, into));
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| collect_refs(v, schemas, into))
        }
        _ => {}
    }
}

/// Whether a security requirement asks for nothing (`{}`).
fn is_empty_requirement(requirement: &SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// A path's operations, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::Get, item.get.as_mut()),
        (Method::Put, item.put.as_mut()),
        (Method::Post, item.post.as_mut()),
        (Method::Delete, item.delete.as_mut()),
        (Method::Patch, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}

// Field schemas. Each names the rules that one of Kring's validators
// enforces, so that the spec states them and a client (or a fuzzer) that
// follows the spec sends what the server accepts. Limits count characters as
// sent; texts are trimmed only after that.

/// Unicode White_Space: what `str::trim` strips and `char::is_whitespace` finds.
const WHITE_SPACE: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Unicode Cc: what `char::is_control` finds.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// White_Space without the control characters among it.
const SPACES: &str = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters that no text field takes: all but tab and newline
/// (`crate::http::text::is_forbidden_control`).
const LINE_CONTROL: &str = r"\x00-\x08\x0b-\x1f\x7f-\x9f";

/// The invisible characters of the Basic Multilingual Plane
/// (`crate::http::text::is_invisible`) as ranges for a character class. The
/// few beyond it (tags, some format characters of historic scripts) need a
/// regex flag that JSON Schema does not give; the descriptions name them.
fn invisible_class() -> String {
    let mut out = String::new();
    let mut start: Option<u32> = None;
    let flush = |from: u32, to: u32, out: &mut String| {
        out.push_str(&format!("\\u{from:04x}"));
        if to > from {
            out.push_str(&format!("-\\u{to:04x}"));
        }
    };
    for cp in 0..=0xffff_u32 {
        let invisible = char::from_u32(cp).is_some_and(crate::http::text::is_invisible);
        match (invisible, start) {
            (true, None) => start = Some(cp),
            (false, Some(from)) => {
                flush(from, cp - 1, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        flush(from, 0xffff, &mut out);
    }
    out
}

/// Text that, trimmed, holds at least `min` characters (0, 1 or 2) and no
/// control or invisible characters.
pub fn plain_text_pattern(min: usize) -> String {
    let (w, c) = (WHITE_SPACE, format!("{CONTROL}{}", invisible_class()));
    let core = match min {
        0 => format!("([^{w}{c}]([^{c}]*[^{w}{c}])?)?"),
        1 => format!("[^{w}{c}]([^{c}]*[^{w}{c}])?"),
        _ => format!("[^{w}{c}][^{c}]*[^{w}{c}]"),
    };
    format!("^[{SPACES}]*{core}[{SPACES}]*$")
}

/// Lines of text: not blank, no control characters but tab and newline.
pub fn lines_pattern() -> String {
    free_text_pattern(true)
}

/// Free text without control characters but tab and newline; when
/// `required`, with something besides white space.
pub fn free_text_pattern(required: bool) -> String {
    let c = LINE_CONTROL;
    if required {
        format!("^[^{c}]*[^{WHITE_SPACE}{c}][^{c}]*$")
    } else {
        format!("^[^{c}]*$")
    }
}

fn text_schema(description: &str, max: usize, pattern: String, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

macro_rules! text_schemas {
    ($($name:ident: $description:literal, max $max:literal, $pattern:expr, $example:literal;)*) => {
        $(
            #[doc = $description]
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    text_schema($description, $max, $pattern, $example)
                }
            }

            impl ToSchema for $name {}
        )*
    };
}

text_schemas! {
    Name: "A name: up to 80 characters, not blank, no control or invisible characters (Unicode Cf such as zero-width characters and direction marks, Hangul fillers); stored in NFC.",
        max 80, plain_text_pattern(1), "Samen sterk";
    Theme: "What a circle is about: up to 200 characters, no control or invisible characters (Unicode Cf such as zero-width characters and direction marks, Hangul fillers); stored in NFC; may be blank.",
        max 200, plain_text_pattern(0), "Eenzaamheid na pensioen";
    DeviceLabel: "A name you recognise for a device: up to 60 characters, no control or invisible characters (Unicode Cf such as zero-width characters and direction marks, Hangul fillers); stored in NFC; blank means none.",
        max 60, plain_text_pattern(0), "iPhone";
    AgreementText: "A circle's agreement: up to 4000 characters, not blank, no control characters but tab and newline.",
        max 4000, free_text_pattern(true), "Jij bepaalt wanneer je schrijft.";
    PostBody: "A post: up to 4000 characters, not blank, no control characters but tab and newline.",
        max 4000, lines_pattern(), "Vandaag voor het eerst weer een wandeling gemaakt.";
    HideReason: "Why a post was hidden, for the other staff: up to 500 characters, not blank, no control characters but tab and newline.",
        max 500, free_text_pattern(true), "Persoonlijke gegevens van een ander lid";
    MessageText: "A personal message: up to 500 characters, not blank, no control characters but tab and newline.",
        max 500, free_text_pattern(true), "Ik dacht even aan je. Hoe gaat het?";
    Note: "A short note: up to 1000 characters, no control characters but tab and newline; blank means none.",
        max 1000, free_text_pattern(false), "Goed geslapen.";
}

/// An ISO weekday: 1 = Monday … 7 = Sunday.
pub struct Weekday;

impl PartialSchema for Weekday {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some("An ISO weekday: 1 = Monday … 7 = Sunday."))
            .minimum(Some(1))
            .maximum(Some(7))
            .into()
    }
}

impl ToSchema for Weekday {}

#[cfg(test)]
mod tests {
    /// The characters of `WHITE_SPACE` are exactly those Rust calls white
    /// space, so the patterns trim what the validators trim.
    #[test]
    fn white_space_is_what_trim_strips() {
        let listed = |c: char| {
            matches!(
                c,
                '\t' | '\n'
                    | '\u{b}'
                    | '\u{c}'
                    | '\r'
                    | ' '
                    | '\u{85}'
                    | '\u{a0}'
                    | '\u{1680}'
                    | '\u{2000}'
                    ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
            )
        };
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            assert_eq!(c.is_whitespace(), listed(c), "{c:?}");
        }
        assert_eq!(
            super::WHITE_SPACE,
            r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
        );
    }

    /// `CONTROL` is Unicode Cc, what `char::is_control` finds.
    #[test]
    fn control_is_what_is_control_finds() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let listed = matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
            assert_eq!(c.is_control(), listed, "{c:?}");
        }
        assert_eq!(super::CONTROL, r"\x00-\x1f\x7f-\x9f");
    }
}
