//! Random ids, bearer tokens, human-friendly codes, and how they are stored.
//!
//! Tokens and codes are high-entropy random values, so a SHA-256 hash is a safe
//! way to store them (a slow hash adds nothing there). Passwords are chosen by
//! people and get Argon2id.

use argon2::Argon2;

use crate::error::{ApiError, Code};
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

/// Runs password hashes (Argon2id: 19 MiB and tens of milliseconds of CPU
/// each) a few at a time, so a burst of sign-ins cannot take the process's
/// memory: at most `concurrency` hashes hold their memory at once, up to
/// `queue` more requests wait their turn, and the rest, or one that waited
/// [`Hashing::MAX_WAIT`], get 503 `busy` with `Retry-After`.
pub struct Hashing {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
    /// Hashes computed (`kring_password_hashes_total`).
    hashed: prometheus_client::metrics::counter::Counter,
    /// Requests refused as busy (`kring_password_hashes_refused_total`).
    refused: prometheus_client::metrics::counter::Counter,
}

impl Hashing {
    /// The longest a request waits for its turn.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// `concurrency` 0: one per CPU core. `hashed` and `refused` count
    /// hashes computed and requests refused as busy.
    pub fn new(
        concurrency: usize,
        queue: usize,
        hashed: prometheus_client::metrics::counter::Counter,
        refused: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            concurrency
        };
        Self {
            permits: tokio::sync::Semaphore::new(concurrency),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue,
            hashed,
            refused,
        }
    }

    /// An Argon2id hash of `password`, in PHC string form.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_password(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Whether `password` matches the stored hash. Without one (no such
    /// account, or no password set) it is checked against a dummy hash and
    /// fails, so that case takes as long as a wrong password.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        self.run(move || match stored {
            Some(stored) => verify_password(&password, &stored),
            None => {
                verify_password(&password, dummy_password_hash());
                false
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        use std::sync::atomic::Ordering;
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                // Count ourselves into the queue, or leave if it is full.
                let queued = self
                    .waiting
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                        (w < self.queue).then_some(w + 1)
                    })
                    .is_ok();
                if !queued {
                    return Err(self.busy());
                }
                let waited = tokio::time::timeout(Self::MAX_WAIT, self.permits.acquire()).await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(self.busy()),
                }
            }
        };
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()));
        drop(permit);
        self.hashed.inc();
        result
    }

    fn busy(&self) -> ApiError {
        self.refused.inc();
        ApiError::Unavailable {
            code: Code::Busy,
            detail: "Too many sign-ins at this moment; try again in a few seconds".into(),
            retry_after_secs: 2,
        }
    }
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

    /// However many ask at once, at most `concurrency` hashes run, and the
    /// ones that fit in the queue all get their turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_runs_a_few_at_a_time() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let metrics = crate::metrics::Metrics::default();
        let gate = Arc::new(Hashing::new(
            2,
            100,
            metrics.password_hashes.clone(),
            metrics.password_hashes_refused.clone(),
        ));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("got its turn");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(metrics.password_hashes.get(), 12);
        assert_eq!(metrics.password_hashes_refused.get(), 0);
    }

    /// Beyond the queue, a request is refused at once with 503 `busy`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_refuses_beyond_its_queue() {
        use std::sync::Arc;
        let metrics = crate::metrics::Metrics::default();
        let gate = Arc::new(Hashing::new(
            1,
            1,
            metrics.password_hashes.clone(),
            metrics.password_hashes_refused.clone(),
        ));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(move || hold.recv().ok()).await })
        };
        while gate.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let second = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(|| ()).await })
        };
        while gate.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let third = gate.run(|| ()).await;
        assert!(matches!(
            third,
            Err(ApiError::Unavailable {
                code: Code::Busy,
                ..
            })
        ));
        release.send(()).expect("release");
        first.await.expect("first").expect("ran");
        second.await.expect("second").expect("waited its turn");
        assert_eq!(metrics.password_hashes_refused.get(), 1);
    }

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
