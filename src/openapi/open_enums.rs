//! Open enums: the lists that only the server sends, which may grow.

use std::collections::BTreeSet;

use utoipa::Modify;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};

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
