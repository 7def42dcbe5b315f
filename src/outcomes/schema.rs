//! The JSON Schema of the instrument format, committed as
//! `openapi/instrument.schema.json` and printed by `kring instrument-schema`.
//! utoipa names nested types as OpenAPI components; here they become `$defs`
//! of one standalone document.

use std::collections::BTreeMap;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use super::instrument::Instrument;

/// The format's JSON Schema (draft 2020-12), as committed in
/// `openapi/instrument.schema.json`.
pub fn json_schema() -> String {
    let mut defs: Vec<(String, RefOr<Schema>)> = Vec::new();
    <Instrument as ToSchema>::schemas(&mut defs);
    let defs: BTreeMap<String, serde_json::Value> = defs
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default()))
        .collect();
    let root = serde_json::to_value(<Instrument as PartialSchema>::schema()).unwrap_or_default();
    let mut doc = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "instrument.schema.json",
        "title": "Kring instrument definition",
        "description": "A versioned questionnaire: items and answer scales per locale (nl, en), scoring, bands, missing-data rules, the reliability used for reliable change, source and licence. Kring validates more than this schema says (unique ids, references, bands that cover the score range); see `Instrument::from_json`."
    });
    if let (Some(doc), Some(root)) = (doc.as_object_mut(), root.as_object()) {
        for (k, v) in root {
            doc.entry(k.clone()).or_insert_with(|| v.clone());
        }
        doc.insert("$defs".into(), serde_json::json!(defs));
    }
    rewrite_refs(&mut doc);
    let mut json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    json.push('\n');
    json
}

/// Points utoipa's `#/components/schemas/X` references at `#/$defs/X`.
fn rewrite_refs(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref" {
                    if let Some(r) = v.as_str() {
                        *v = r.replace("#/components/schemas/", "#/$defs/").into();
                    }
                } else {
                    rewrite_refs(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema is the generated one: after changing the
    /// format, regenerate it with
    /// `cargo run -- instrument-schema > openapi/instrument.schema.json`.
    #[test]
    fn instrument_schema_matches_the_committed_file() {
        assert!(
            json_schema() == include_str!("../../openapi/instrument.schema.json"),
            "openapi/instrument.schema.json is out of date: run `cargo run -- instrument-schema > openapi/instrument.schema.json`"
        );
    }

    #[test]
    fn the_schema_is_standalone() {
        let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        let defs = schema["$defs"].as_object().unwrap();
        for name in [
            "Localized",
            "Item",
            "AnswerScale",
            "Band",
            "MissingRule",
            "Licence",
        ] {
            assert!(defs.contains_key(name), "{name} is in $defs");
        }
        let text = json_schema();
        assert!(
            !text.contains("#/components/"),
            "every reference points into $defs"
        );
        assert_eq!(
            schema["additionalProperties"], false,
            "unknown fields are refused"
        );
        assert_eq!(schema["$id"], "instrument.schema.json");
    }
}
