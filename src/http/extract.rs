//! `Json` and `Query` extractors whose rejections are problem+json like every
//! other error, with the failing field's path.

use std::cell::RefCell;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde_json::{Map, Number, Value};

use crate::error::{ApiError, Code, FieldError};

/// A JSON request body. Requires `Content-Type: application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::new(Code::UnreadableBody, "The request body could not be read")
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON, reporting the path of a field with the wrong type or value.
/// Strings with control characters other than tab and newline are refused
/// in every field that is read (unknown fields are ignored unread): no text in Kring needs them, PostgreSQL cannot store NUL,
/// and an escape or a lone carriage return would drive whatever shows the
/// text later (a terminal reading a log or an export). Every request body is a JSON object. A key
/// named twice in one object is refused: serde would keep the last value,
/// while a proxy or a log reader may see the first.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = UniqueKeys {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    let value = match (parsed, duplicate.into_inner()) {
        (Ok(value), _) => value,
        (Err(_), Some(path)) => {
            return Err(ApiError::new(
                Code::DuplicateKey,
                format!("The body names `{path}` more than once"),
            ));
        }
        (Err(e), None) => {
            return Err(ApiError::new(
                Code::MalformedJson,
                format!("The body is not valid JSON: {e}"),
            ));
        }
    };
    if !value.is_object() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "",
            "the body must be a JSON object",
        )]));
    }
    match serde_path_to_error::deserialize(Strict(&value)) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." { String::new() } else { path };
                    Err(ApiError::Validation(vec![FieldError::new(
                        field,
                        strip_position(&inner.to_string()),
                    )]))
                }
                _ => Err(ApiError::new(
                    Code::MalformedJson,
                    format!("The body is not valid JSON: {inner}"),
                )),
            }
        }
    }
}

/// Reads a JSON value as serde_json does, but fails on an object that names
/// a key twice, noting that key's path in `duplicate`.
struct UniqueKeys<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl UniqueKeys<'_> {
    fn child(&self, path: String) -> Self {
        UniqueKeys {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(self.child(format!("{}[{}]", self.path, items.len())))?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self.child(path))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Deserializes a parsed JSON value as serde_json does, but as JSON Schema
/// (and so the spec) reads JSON: a struct must be a JSON object (serde would
/// also take an array of its fields in order), and a number with a zero
/// fraction, such as `4.0`, is an integer.
struct Strict<'de>(&'de Value);

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (None, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> de::Deserializer<'de> for Strict<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                // i64::MAX as f64 is 2^63, just out of range.
                (None, None, Some(f))
                    if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 =>
                {
                    visitor.visit_i64(f as i64)
                }
                (None, None, f) => visitor.visit_f64(f.unwrap_or(f64::NAN)),
            },
            // Only strings that land in a field are read here; unknown
            // fields are skipped unread (`deserialize_ignored_any`).
            Value::String(s) if s.chars().any(crate::http::text::is_forbidden_control) => Err(
                de::Error::custom("must not contain control characters (tab and newline are fine)"),
            ),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => {
                let mut seq = StrictSeq(items.iter());
                let out = visitor.visit_seq(&mut seq)?;
                match seq.0.len() {
                    0 => Ok(out),
                    _ => Err(de::Error::invalid_length(items.len(), &"fewer elements")),
                }
            }
            Value::Object(map) => visitor.visit_map(StrictMap {
                entries: map.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    /// Field names and enum tags are strings in JSON: serde would also take
    /// a variant's index, so `"kind": 0` would pick the first kind.
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map
    }
}

struct StrictSeq<'de>(std::slice::Iter<'de, Value>);

impl<'de> de::SeqAccess<'de> for StrictSeq<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap<'de> {
    entries: serde_json::map::Iter<'de>,
    value: Option<&'de Value>,
}

impl<'de> de::MapAccess<'de> for StrictMap<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(BorrowedStrDeserializer::new(key))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(Strict(value)),
            None => Err(de::Error::custom(
                "a map value was asked for before its key",
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// True when a percent-encoded URI part decodes to a control character.
pub fn has_encoded_control(part: &str) -> bool {
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(decoded) => {
                    i += 3;
                    decoded
                }
                None => {
                    i += 1;
                    b'%'
                }
            }
        } else {
            i += 1;
            bytes[i - 1]
        };
        if b < 0x20 || b == 0x7f {
            return true;
        }
    }
    false
}

/// serde_json appends " at line 1 column 17"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters, with problem+json rejections naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded_deserializer(query);
        match de {
            Ok(v) => Ok(Query(v)),
            Err(message) => Err(ApiError::Validation(vec![FieldError::new(
                "query", message,
            )])),
        }
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| "unreadable query string".to_owned())?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        e.body_text()
            .replace("Failed to deserialize query string: ", "")
    })
}

/// For PATCH fields that may be set to null: absent → `None`, `null` →
/// `Some(None)`, a value → `Some(Some(v))`. Use with `#[serde(default)]`.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u8,
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"name":"a","inner":{"count":"x"}}"#).unwrap_err();
        match err {
            ApiError::Validation(errors) => assert_eq!(errors[0].field, "inner.count"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn control_characters_in_unknown_fields_are_ignored_unread() {
        let body: Body =
            parse_json(br#"{"name":"a","x\u0010":"\u001b","inner":{"count":1,"y":"\r"}}"#).unwrap();
        assert_eq!(body.name, "a");
        let err = parse_json::<Body>(br#"{"name":"a\rb","inner":{"count":1}}"#).unwrap_err();
        match err {
            ApiError::Validation(errors) => assert_eq!(errors[0].field, "name"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nul_characters_are_refused_with_their_path() {
        let err = parse_json::<Body>(br#"{"name":"a\u0000","inner":{"count":1}}"#).unwrap_err();
        match err {
            ApiError::Validation(errors) => assert_eq!(errors[0].field, "name"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn encoded_control_characters_are_found() {
        assert!(has_encoded_control("/v1/posts/%00"));
        assert!(has_encoded_control("/v1/posts/a%1fb"));
        assert!(!has_encoded_control("/v1/posts/abc%20def"));
        assert!(!has_encoded_control("/v1/posts/100%"));
        assert!(!has_encoded_control("/v1/posts/%zz"));
    }

    #[test]
    fn bodies_and_structs_must_be_objects() {
        let err = parse_json::<Body>(b"[null, null]").unwrap_err();
        match err {
            ApiError::Validation(errors) => assert_eq!(errors[0].field, ""),
            other => panic!("unexpected {other:?}"),
        }
        // serde alone would read `[7]` as `Inner { count: 7 }`.
        let err = parse_json::<Body>(br#"{"name":"a","inner":[7]}"#).unwrap_err();
        match err {
            ApiError::Validation(errors) => assert_eq!(errors[0].field, "inner"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn integral_numbers_are_integers_whatever_their_notation() {
        let body = parse_json::<Body>(br#"{"name":"a","inner":{"count":4.0}}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(body.inner.count, 4);
        let body = parse_json::<Body>(br#"{"name":"a","inner":{"count":2e1}}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(body.inner.count, 20);
        for bad in [
            &br#"{"name":"a","inner":{"count":4.5}}"#[..],
            br#"{"name":"a","inner":{"count":256.0}}"#,
        ] {
            let err = parse_json::<Body>(bad).unwrap_err();
            match err {
                ApiError::Validation(errors) => assert_eq!(errors[0].field, "inner.count"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn options_enums_and_unknown_fields_read_as_before() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Big,
            Small,
        }
        #[derive(Debug, serde::Deserialize)]
        struct Wide {
            kind: Kind,
            note: Option<String>,
            tags: Vec<String>,
            #[serde(default, deserialize_with = "double_option")]
            until: Option<Option<String>>,
        }
        let w = parse_json::<Wide>(
            br#"{"kind":"small","note":null,"tags":["x"],"until":null,"extra":[1,{"a":2}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(w.kind, Kind::Small);
        assert_eq!(w.note, None);
        assert_eq!(w.tags, vec!["x".to_owned()]);
        assert_eq!(w.until, Some(None));
        let w =
            parse_json::<Wide>(br#"{"kind":"big","tags":[]}"#).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((w.kind, w.until), (Kind::Big, None));
        assert!(parse_json::<Wide>(br#"{"kind":"huge","tags":[]}"#).is_err());
        assert!(parse_json::<Wide>(br#"{"kind":0,"tags":[]}"#).is_err());
    }

    #[test]
    fn tags_are_names_not_indexes() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Tagged {
            First { n: u8 },
            Second { n: u8 },
        }
        assert_eq!(
            parse_json::<Tagged>(br#"{"kind":"second","n":2.0}"#)
                .unwrap_or_else(|e| panic!("{e:?}")),
            Tagged::Second { n: 2 }
        );
        assert!(parse_json::<Tagged>(br#"{"kind":0,"n":1}"#).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        let err = parse_json::<Body>(br#"{"name":"a","inner":{"count":1,"count":2}}"#).unwrap_err();
        assert_eq!(err.code(), Code::DuplicateKey);
        assert!(err.to_string().contains("`inner.count`"), "{err}");
        let err = parse_json::<Value>(br#"{"a":[{"b":1},{"b":1,"b":2}]}"#).unwrap_err();
        assert!(err.to_string().contains("`a[1].b`"), "{err}");
        // The same key in different objects, and trailing garbage.
        assert!(parse_json::<Value>(br#"{"a":{"b":1},"c":{"b":1}}"#).is_ok());
        assert_eq!(
            parse_json::<Value>(br#"{"a":1} x"#).unwrap_err().code(),
            Code::MalformedJson
        );
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.code(), Code::MalformedJson);
    }
}

/// The client's address, for throttles: the peer of the connection, or the
/// last address in the header named by `KRING_CLIENT_ADDRESS_HEADER` (the
/// one the reverse proxy appended). `None` when neither is known (requests
/// served without the connection layer, as in some tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl axum::extract::FromRequestParts<crate::state::AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(name) = &state.config.client_address_header {
            let forwarded = parts
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse().ok())
                .next_back();
            if forwarded.is_some() {
                return Ok(Self(forwarded));
            }
        }
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// No id, path or query value in Kring contains control characters; a URI
/// that decodes to one cannot name anything (and NUL cannot reach the database).
pub async fn reject_control_characters(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = req.uri();
    if has_encoded_control(uri.path()) {
        return axum::response::IntoResponse::into_response(ApiError::NotFound("route"));
    }
    if uri.query().is_some_and(has_encoded_control) {
        return axum::response::IntoResponse::into_response(ApiError::new(
            Code::InvalidQuery,
            "The query string holds control characters",
        ));
    }
    next.run(req).await
}
