//! Apple's rules for one request: the provider token, ids, the payload;
//! and Apple's form of an error answer.

use std::collections::HashSet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::Team;

/// An APNs error: the status, `{"reason": …}`, and for 410 the time the
/// token stopped being valid (milliseconds).
pub(super) fn refusal(status: StatusCode, reason: &str, timestamp: Option<i64>) -> Response {
    let mut body = json!({ "reason": reason });
    if let Some(ms) = timestamp {
        body["timestamp"] = json!(ms);
    }
    (status, [("apns-id", uuid_like())], axum::Json(body)).into_response()
}

/// A random id in the UUID form APNs uses for `apns-id`.
pub(super) fn uuid_like() -> String {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).unwrap();
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub(super) fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Verifies an ES256 JWT's signature with the team's key and reads its
/// `kid` (header), `iss` and `iat` (claims).
pub(super) fn verify_provider_token(jwt: &str, team: &Team) -> Result<(String, i64), &'static str> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| "not base64url");
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| "header")?;
    let claims_json: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| "claims")?;
    if header["alg"] != "ES256" {
        return Err("alg is not ES256");
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    if kid != team.key_id {
        return Err("unknown kid");
    }
    let raw = decode(signature)?;
    if raw.len() != 64 {
        return Err("signature length");
    }
    let sig = openssl::ecdsa::EcdsaSig::from_private_components(
        openssl::bn::BigNum::from_slice(&raw[..32]).map_err(|_| "r")?,
        openssl::bn::BigNum::from_slice(&raw[32..]).map_err(|_| "s")?,
    )
    .map_err(|_| "signature")?;
    let digest =
        openssl::sha::sha256(format!("{}.{}", jwt_part(jwt, 0), jwt_part(jwt, 1)).as_bytes());
    let key = team.public_key.ec_key().map_err(|_| "key")?;
    if !sig.verify(&digest, &key).unwrap_or(false) {
        return Err("bad signature");
    }
    if claims_json["iss"] != team.team_id.as_str() {
        return Err("iss is not the team id");
    }
    let iat = claims_json["iat"].as_i64().ok_or("no iat")?;
    Ok((kid.to_owned(), iat))
}

fn jwt_part(jwt: &str, n: usize) -> &str {
    jwt.split('.').nth(n).unwrap_or("")
}

/// The `aps` dictionary as Apple defines it for this push type.
pub(super) fn check_aps(payload: &Value, push_type: &str) -> Result<(), String> {
    let aps = payload
        .get("aps")
        .and_then(Value::as_object)
        .ok_or("no aps dictionary")?;
    let known: HashSet<&str> = [
        "alert",
        "badge",
        "sound",
        "thread-id",
        "category",
        "content-available",
        "mutable-content",
        "target-content-id",
        "interruption-level",
        "relevance-score",
    ]
    .into();
    if let Some(key) = aps.keys().find(|k| !known.contains(k.as_str())) {
        return Err(format!("unknown aps key {key}"));
    }
    if push_type == "background" {
        if aps.get("content-available") != Some(&json!(1)) || aps.contains_key("alert") {
            return Err("a background push has content-available 1 and no alert".into());
        }
        return Ok(());
    }
    match aps.get("alert") {
        Some(Value::String(_)) => {}
        Some(Value::Object(alert)) => {
            for (k, v) in alert {
                if matches!(k.as_str(), "title" | "subtitle" | "body") && !v.is_string() {
                    return Err(format!("aps.alert.{k} is not a string"));
                }
            }
        }
        _ => return Err("an alert push has aps.alert".into()),
    }
    if aps.get("badge").is_some_and(|b| b.as_u64().is_none()) {
        return Err("aps.badge is not a non-negative integer".into());
    }
    for key in ["thread-id", "category", "sound"] {
        if aps.get(key).is_some_and(|v| !v.is_string()) {
            return Err(format!("aps.{key} is not a string"));
        }
    }
    Ok(())
}
