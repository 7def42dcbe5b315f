//! The OpenAPI document: metadata, security scheme and tags here; every
//! operation's error responses, made from the problem codes it can answer
//! with, in [`problems`]; open enums in [`open_enums`]; and the field
//! schemas that state the validators' rules in [`fields`].

mod fields;
mod open_enums;
mod problems;

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};

pub use fields::{
    AgreementText, DeviceLabel, HideReason, MessageText, Name, Note, PostBody, Theme, Weekday,
    free_text_pattern, lines_pattern, plain_text_pattern,
};
pub use open_enums::{OPEN_ENUM_RULE, OpenEnums, open_enum, schema_uses};
pub use problems::{PROBLEM_CODES, Problems};

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

/// Whether a security requirement asks for nothing (`{}`).
pub(crate) fn is_empty_requirement(requirement: &SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// A path's operations, with their methods.
pub(crate) fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
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
pub(crate) enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}
