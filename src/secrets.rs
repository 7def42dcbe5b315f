//! Random ids, bearer tokens, human-friendly codes, and how they are stored.
//!
//! Tokens and codes are high-entropy random values, so a SHA-256 hash is a safe
//! way to store them (a slow hash adds nothing there). Passwords are chosen by
//! people and get Argon2id.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A new opaque id: a UUIDv7 (time-ordered) in its compact form.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A new bearer token: `prefix` + 32 random bytes, base64url.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The access and refresh token that `refresh_token` is exchanged for, given
/// the random `salt` of that exchange (see [`new_token`]): HMAC-SHA256 keyed
/// with the refresh token. Only a holder of the refresh token can compute
/// them, and the database keeps that token only as a hash, so the salt may
/// be stored: a retry of the exchange gets the same pair without the pair
/// ever being stored.
pub fn successor_tokens(refresh_token: &str, salt: &str) -> Result<(String, String), String> {
    let derive = |prefix: &str, label: &[u8]| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(refresh_token.as_bytes()).map_err(|e| e.to_string())?;
        mac.update(label);
        mac.update(salt.as_bytes());
        Ok::<_, String>(format!(
            "{prefix}{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    };
    Ok((
        derive("kra_", b"kring successor access token\0")?,
        derive("krr_", b"kring successor refresh token\0")?,
    ))
}

/// How a token or code is stored: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Letters and digits that cannot be mistaken for one another when read aloud
/// or copied from paper: no 0/O, 1/I/L, 5/S, 8/B, 2/Z, U/V.
pub const CODE_ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTWXY34679";

/// A new human-friendly code of `groups` groups of four, e.g. `KX4M-7TQD-9HCA`.
/// Three groups carry about 54 bits.
pub fn new_code(groups: usize) -> String {
    let mut out = String::with_capacity(groups * 5);
    for g in 0..groups {
        if g > 0 {
            out.push('-');
        }
        for _ in 0..4 {
            // Rejection sampling keeps every character equally likely.
            let n = CODE_ALPHABET.len() as u32;
            let limit = u32::MAX - (u32::MAX % n);
            let mut r = OsRng.next_u32();
            while r >= limit {
                r = OsRng.next_u32();
            }
            out.push(char::from(CODE_ALPHABET[(r % n) as usize]));
        }
    }
    out
}

/// A code as typed by a person → its canonical form (upper case, no
/// separators), or an error when it holds characters no code has.
pub fn canonical_code(input: &str) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if c == '-' || c == ' ' {
            continue;
        }
        let c = c.to_ascii_uppercase();
        if !c.is_ascii() || !CODE_ALPHABET.contains(&(c as u8)) {
            return Err("is not a valid code".into());
        }
        out.push(c);
    }
    if out.len() < 8 || out.len() > 32 {
        return Err("is not a valid code".into());
    }
    Ok(out)
}

/// Argon2id hash of a password, in PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored Argon2id hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so that a login
/// for an unknown name costs as much time as one with a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_canonical_form() {
        let code = new_code(3);
        assert_eq!(code.len(), 14);
        let canonical = canonical_code(&code.to_lowercase()).expect("valid");
        assert_eq!(canonical, code.replace('-', ""));
    }

    #[test]
    fn look_alike_characters_are_rejected() {
        for bad in [
            "KX4M-0TQD-9HCA",
            "KX4M-ITQD-9HCA",
            "KX4M-OTQD-9HCA",
            "short",
        ] {
            assert!(canonical_code(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn passwords_verify_only_with_the_right_secret() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn token_hashes_are_stable_and_distinct() {
        let a = new_token("kra_");
        let b = new_token("kra_");
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
    }
}
