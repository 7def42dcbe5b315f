//! Every provider response, classified by one table.
//!
//! The table is data: provider, status, an optional reason, and what it
//! means. The first matching row wins; anything unmatched is a retry for a
//! 5xx and a permanent failure otherwise.

use std::time::Duration;

/// What to do after a send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The push service accepted the message.
    Delivered,
    /// Try again later; honour `retry_after` when the service gave one.
    Retry { retry_after: Option<Duration> },
    /// The token or subscription is dead: forget the device.
    DropToken,
    /// Our credentials were refused: pause the provider, alarm, keep the token.
    FixCredentials,
    /// The service refused this message for good (a bug on our side).
    Failed,
}

impl Outcome {
    /// Its name in the outbox and in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry { .. } => "retry",
            Self::DropToken => "drop_token",
            Self::FixCredentials => "fix_credentials",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Delivered,
    Retry,
    DropToken,
    FixCredentials,
    Failed,
}

/// Which statuses a row matches.
#[derive(Debug, Clone, Copy)]
enum Status {
    Is(u16),
    Range(u16, u16),
}

impl Status {
    fn matches(self, status: u16) -> bool {
        match self {
            Self::Is(s) => s == status,
            Self::Range(lo, hi) => (lo..=hi).contains(&status),
        }
    }
}

/// Which reasons a row matches: any, or one of these (case-sensitive, as
/// the providers spell them), or a reason that contains this text.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Any,
    OneOf(&'static [&'static str]),
    Contains(&'static str),
}

impl Reason {
    fn matches(self, reason: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::OneOf(list) => reason.is_some_and(|r| list.contains(&r)),
            Self::Contains(part) => reason.is_some_and(|r| r.contains(part)),
        }
    }
}

/// The table. APNs reasons: Apple's "Handling notification responses from
/// APNs"; FCM: the v1 `ErrorCode` and `google.rpc.Status`; Web Push: RFC 8030
/// and the push services' documented statuses.
const TABLE: &[(&str, Status, Reason, Class)] = &[
    // APNs
    ("apns", Status::Is(200), Reason::Any, Class::Delivered),
    ("apns", Status::Is(410), Reason::Any, Class::DropToken),
    (
        "apns",
        Status::Is(400),
        Reason::OneOf(&["BadDeviceToken", "DeviceTokenNotForTopic"]),
        Class::DropToken,
    ),
    (
        "apns",
        Status::Is(403),
        Reason::OneOf(&[
            "ExpiredProviderToken",
            "InvalidProviderToken",
            "MissingProviderToken",
        ]),
        Class::FixCredentials,
    ),
    ("apns", Status::Is(429), Reason::Any, Class::Retry),
    ("apns", Status::Range(500, 599), Reason::Any, Class::Retry),
    // FCM HTTP v1
    ("fcm", Status::Is(200), Reason::Any, Class::Delivered),
    ("fcm", Status::Is(404), Reason::Any, Class::DropToken),
    (
        "fcm",
        Status::Is(403),
        Reason::OneOf(&["SENDER_ID_MISMATCH"]),
        Class::DropToken,
    ),
    (
        "fcm",
        Status::Is(400),
        Reason::Contains("registration token"),
        Class::DropToken,
    ),
    ("fcm", Status::Is(401), Reason::Any, Class::FixCredentials),
    ("fcm", Status::Is(403), Reason::Any, Class::FixCredentials),
    ("fcm", Status::Is(429), Reason::Any, Class::Retry),
    ("fcm", Status::Range(500, 599), Reason::Any, Class::Retry),
    // Web Push
    (
        "webpush",
        Status::Range(200, 202),
        Reason::Any,
        Class::Delivered,
    ),
    ("webpush", Status::Is(404), Reason::Any, Class::DropToken),
    ("webpush", Status::Is(410), Reason::Any, Class::DropToken),
    (
        "webpush",
        Status::Is(401),
        Reason::Any,
        Class::FixCredentials,
    ),
    (
        "webpush",
        Status::Is(403),
        Reason::Any,
        Class::FixCredentials,
    ),
    ("webpush", Status::Is(429), Reason::Any, Class::Retry),
    (
        "webpush",
        Status::Range(500, 599),
        Reason::Any,
        Class::Retry,
    ),
];

/// Classifies a provider's answer: its HTTP status, its reason code, and
/// its `Retry-After`, if any.
pub fn classify(
    provider: &str,
    status: u16,
    reason: Option<&str>,
    retry_after: Option<Duration>,
) -> Outcome {
    let class = TABLE
        .iter()
        .find(|(p, s, r, _)| *p == provider && s.matches(status) && r.matches(reason))
        .map(|(_, _, _, class)| *class)
        .unwrap_or(if status >= 500 || status == 408 {
            Class::Retry
        } else {
            Class::Failed
        });
    match class {
        Class::Delivered => Outcome::Delivered,
        Class::Retry => Outcome::Retry { retry_after },
        Class::DropToken => Outcome::DropToken,
        Class::FixCredentials => Outcome::FixCredentials,
        Class::Failed => Outcome::Failed,
    }
}

/// Parses a `Retry-After` header: seconds, or an HTTP date relative to `now`.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let secs = (at - now).get_seconds();
    u64::try_from(secs).ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_responses() {
        assert_eq!(classify("apns", 200, None, None), Outcome::Delivered);
        assert_eq!(
            classify("apns", 410, Some("Unregistered"), None),
            Outcome::DropToken
        );
        assert_eq!(
            classify("apns", 400, Some("BadDeviceToken"), None),
            Outcome::DropToken
        );
        assert_eq!(
            classify("apns", 400, Some("DeviceTokenNotForTopic"), None),
            Outcome::DropToken
        );
        assert_eq!(
            classify("apns", 400, Some("PayloadTooLarge"), None),
            Outcome::Failed
        );
        assert_eq!(
            classify("apns", 403, Some("ExpiredProviderToken"), None),
            Outcome::FixCredentials
        );
        assert_eq!(
            classify("apns", 403, Some("InvalidProviderToken"), None),
            Outcome::FixCredentials
        );
        let after = Some(Duration::from_secs(30));
        assert_eq!(
            classify("apns", 429, Some("TooManyRequests"), after),
            Outcome::Retry { retry_after: after }
        );
        assert_eq!(
            classify("apns", 503, None, None),
            Outcome::Retry { retry_after: None }
        );
    }

    #[test]
    fn fcm_responses() {
        assert_eq!(classify("fcm", 200, None, None), Outcome::Delivered);
        assert_eq!(
            classify("fcm", 404, Some("UNREGISTERED"), None),
            Outcome::DropToken
        );
        assert_eq!(
            classify(
                "fcm",
                400,
                Some(
                    "INVALID_ARGUMENT: The registration token is not a valid FCM registration token"
                ),
                None
            ),
            Outcome::DropToken
        );
        assert_eq!(
            classify(
                "fcm",
                400,
                Some("INVALID_ARGUMENT: Invalid JSON payload"),
                None
            ),
            Outcome::Failed
        );
        assert_eq!(
            classify("fcm", 401, Some("THIRD_PARTY_AUTH_ERROR"), None),
            Outcome::FixCredentials
        );
        assert_eq!(
            classify("fcm", 403, Some("SENDER_ID_MISMATCH"), None),
            Outcome::DropToken
        );
        assert_eq!(
            classify("fcm", 429, Some("QUOTA_EXCEEDED"), None),
            Outcome::Retry { retry_after: None }
        );
        assert_eq!(
            classify("fcm", 500, Some("INTERNAL"), None),
            Outcome::Retry { retry_after: None }
        );
    }

    #[test]
    fn webpush_responses() {
        assert_eq!(classify("webpush", 201, None, None), Outcome::Delivered);
        assert_eq!(classify("webpush", 404, None, None), Outcome::DropToken);
        assert_eq!(classify("webpush", 410, None, None), Outcome::DropToken);
        assert_eq!(
            classify("webpush", 403, None, None),
            Outcome::FixCredentials
        );
        assert_eq!(classify("webpush", 413, None, None), Outcome::Failed);
        assert_eq!(
            classify("webpush", 502, None, None),
            Outcome::Retry { retry_after: None }
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now: jiff::Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 02 Mar 2026 09:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
