//! The OpenAPI document: metadata, conventions (`openapi/description.md`),
//! security and tags here; every operation's error responses, made from the
//! problem codes it can answer with, in [`problems`]; the response headers
//! in [`headers`]; links between operations in [`links`]; open enums in
//! [`open_enums`]; and the field schemas that state the validators' rules in
//! [`fields`].

mod fields;
mod headers;
mod links;
mod open_enums;
mod problems;

use utoipa::openapi::RefOr;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, Required, Response};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};

pub use fields::{
    AgreementText, DeviceLabel, HideReason, InstrumentKey, MessageText, MomentName, Name, Note,
    PostBody, Statement, Theme, Weekday, free_text_pattern, lines_pattern, plain_text_pattern,
};
pub use headers::ResponseHeaders;
pub use links::Links;
pub use open_enums::{OPEN_ENUM_RULE, OpenEnums, open_enum, schema_uses};
pub use problems::{PROBLEM_CODES, Problems};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kring API",
        version = env!("CARGO_PKG_VERSION"),
        license(name = "EUPL-1.2", identifier = "EUPL-1.2"),
        contact(name = "The Kring maintainers"),
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
        (name = "outcomes", description = "Outcome measurement: the organisation's outcome reports (aggregates, small cells suppressed), a circle's own report for its staff, comparison cohorts and the instruments an organisation may use"),
        (name = "questionnaires", description = "Outcome measurement: a circle's measurement plan, the validated questionnaires members are asked at set moments (voluntary: decline one, or turn measurement off), their answers and scores over time, and each member's trend for the circle's staff"),
        (name = "operations", description = "Health checks, metrics and the spec"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.description = Some(include_str!("openapi/description.md").trim().to_owned());
        openapi.webhooks = Some(
            PathsBuilder::new()
                .path("push_notification", push_notification())
                .build(),
        );
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

/// The push payload contract, as an OpenAPI webhook: what the app receives
/// (through APNs, FCM or Web Push, not from Kring directly).
fn push_notification() -> PathItem {
    let operation = OperationBuilder::new()
        .tag("notifications")
        .operation_id(Some("push_notification_receive"))
        .summary(Some("A push notification, as the app receives it"))
        .description(Some(
            "Not an endpoint: the data of every push message Kring sends to a registered \
             device (`devices_register`), whatever the provider. FCM delivers it as the \
             message's `data`, APNs as the custom keys beside `aps`, Web Push as the \
             decrypted body. A push is a copy of an inbox item and may come more than once: \
             drop duplicates by `notification_id`, and read the inbox (`notifications_list`) \
             when the app opens, since pushes can be lost. The same schema is published as \
             `push-payload.schema.json`.",
        ))
        .securities(Some(Vec::<SecurityRequirement>::new()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("PushPayload"))),
                )
                .build(),
        ))
        .response(
            "200",
            Response::new("Nothing is answered to Kring: the push provider delivers the message."),
        )
        .build();
    PathItem::new(HttpMethod::Post, operation)
}

/// A bearer token for every operation unless it says otherwise: the
/// document requires one at its root, and a public operation declares
/// `security: []` (none) instead of an empty requirement (`[{}]`, which
/// reads as "a requirement that asks for nothing"). An operation that takes
/// a token optionally keeps both (`[{}, {"bearer": []}]`).
pub struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        for item in openapi.paths.paths.values_mut() {
            for (_, op) in operations(item) {
                if let Some(requirements) = &mut op.security
                    && !requirements.is_empty()
                    && requirements.iter().all(is_empty_requirement)
                {
                    requirements.clear();
                }
            }
        }
    }
}

/// Field descriptions where utoipa leaves them out or puts them aside: a
/// field that may be null is `oneOf` its schema and `null`, and utoipa puts
/// the field's description on the schema branch; it goes on the field
/// itself, where generators and documentation read it. The tag of a
/// tagged union (a `kind` with one value per variant) says what it selects.
pub struct FieldDescriptions;

impl Modify for FieldDescriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for schema in components.schemas.values_mut() {
            let RefOr::T(schema) = schema else {
                continue;
            };
            let variants: Vec<&mut RefOr<Schema>> = match schema {
                Schema::OneOf(one_of) => one_of.items.iter_mut().collect(),
                // A flattened struct: its own fields are the inline part.
                Schema::AllOf(all_of) => all_of.items.iter_mut().collect(),
                _ => Vec::new(),
            };
            for variant in variants {
                if let RefOr::T(Schema::Object(object)) = variant {
                    describe_fields(object);
                }
            }
            if let Schema::Object(object) = schema {
                describe_fields(object);
            }
        }
    }
}

fn describe_fields(object: &mut utoipa::openapi::schema::Object) {
    for property in object.properties.values_mut() {
        match property {
            RefOr::T(Schema::OneOf(one_of)) if one_of.description.is_none() => {
                for item in &mut one_of.items {
                    if let RefOr::Ref(r) = item
                        && !r.description.is_empty()
                    {
                        one_of.description = Some(std::mem::take(&mut r.description));
                    }
                }
            }
            RefOr::T(Schema::Object(tag)) if tag.description.is_none() => {
                if let Some([serde_json::Value::String(value)]) = tag.enum_values.as_deref() {
                    tag.description = Some(format!("`{value}`: selects this variant."));
                }
            }
            _ => {}
        }
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
