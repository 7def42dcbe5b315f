//! The registry of problem `code`s: every code the server can answer with,
//! its HTTP status and what it means for an app.
//!
//! A code is part of the API contract (apps switch on it), so it exists only
//! here: [`super::ApiError`] takes a [`Code`], never a string, and its status
//! comes from this table. The spec lists, per operation and status, the codes
//! that operation can answer with (`x-problem-codes`, see
//! [`crate::openapi::Problems`]), and the README's table of codes is
//! [`markdown_table`]. A new code goes here, with a line in
//! `openapi/CHANGELOG.md`.

use axum::http::StatusCode;
use serde::{Serialize, Serializer};

/// Where a code can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Named by the operations that can answer with it.
    Operation,
    /// From the HTTP layer, before any operation is chosen: any request
    /// can meet it, so the spec names it once, not per operation.
    AnyRequest,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $status:ident, $reach:ident, $meaning:literal;)*) => {
        /// A problem `code`: stable, machine-readable, snake_case.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The HTTP status that always comes with this code.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }

            /// What the code means, and what an app should do.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)*
                }
            }

            pub fn reach(self) -> Reach {
                match self {
                    $(Code::$variant => Reach::$reach,)*
                }
            }
        }
    };
}

codes! {
    // 400
    MalformedJson = "malformed_json", BAD_REQUEST, Operation,
        "The body is not valid JSON. Nothing was done.";
    DuplicateKey = "duplicate_key", BAD_REQUEST, Operation,
        "A JSON object in the body names the same key twice (`detail` says which); it is refused, never read as one of the two values.";
    UnreadableBody = "unreadable_body", BAD_REQUEST, Operation,
        "The body could not be read to its end (the connection broke while sending it). Retry.";
    InvalidQuery = "invalid_query", BAD_REQUEST, Operation,
        "The query string holds control characters.";
    InvalidIdempotencyKey = "invalid_idempotency_key", BAD_REQUEST, Operation,
        "`Idempotency-Key` is not 1 to 255 printable ASCII characters.";
    MalformedRequest = "malformed_request", BAD_REQUEST, AnyRequest,
        "The request is not valid HTTP (for example control bytes in a header). The connection closes after this answer.";
    // 401
    Unauthenticated = "unauthenticated", UNAUTHORIZED, Operation,
        "No bearer access token was sent: sign in.";
    InvalidToken = "invalid_token", UNAUTHORIZED, Operation,
        "The access token is unknown, or its session was signed out or its account removed: sign in again.";
    TokenExpired = "token_expired", UNAUTHORIZED, Operation,
        "The access token has expired: refresh it (`POST /v1/auth/refresh`) and retry the request.";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, Operation,
        "The login name or e-mail address and password do not match an account.";
    InvalidRefreshToken = "invalid_refresh_token", UNAUTHORIZED, Operation,
        "The refresh token is unknown: sign in again.";
    RefreshTokenExpired = "refresh_token_expired", UNAUTHORIZED, Operation,
        "The refresh token has expired: sign in again.";
    RefreshTokenReused = "refresh_token_reused", UNAUTHORIZED, Operation,
        "This refresh token was already used (outside the 30 seconds in which a retry gets the same new pair), so the session was signed out for safety: sign in again.";
    SessionRevoked = "session_revoked", UNAUTHORIZED, Operation,
        "The session was signed out (logout, sign-out everywhere, account recovery or removal): sign in again.";
    // 403
    StaffOnly = "staff_only", FORBIDDEN, Operation,
        "Only workers and coordinators may do this.";
    CoordinatorOnly = "coordinator_only", FORBIDDEN, Operation,
        "Only coordinators may do this.";
    MembersOnly = "members_only", FORBIDDEN, Operation,
        "Only members (not staff) do this.";
    NotInCircle = "not_in_circle", FORBIDDEN, Operation,
        "A coordinator who is not one of the circle's workers may see the circle but not take part in it: add yourself as a worker first.";
    NotAuthor = "not_author", FORBIDDEN, Operation,
        "Only the author of a post may change or delete it.";
    StaffCannotJoin = "staff_cannot_join", FORBIDDEN, Operation,
        "Staff accounts do not join with an invite; a coordinator adds them to a circle as a worker.";
    ExportMembersOnly = "export_members_only", FORBIDDEN, Operation,
        "Exports are of members' data: a staff account holds none to export.";
    // 404
    NotFound = "not_found", NOT_FOUND, Operation,
        "It does not exist, or you may not see it (Kring answers 404, never 403, for what you may not see).";
    // 405
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, AnyRequest,
        "The path exists, but not with this method.";
    // 408
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, AnyRequest,
        "The request took too long to arrive or to answer. Retry (with the same `Idempotency-Key`, if it had one).";
    // 409
    AlreadyInCircle = "already_in_circle", CONFLICT, Operation,
        "The account is already in this circle.";
    PseudonymTaken = "pseudonym_taken", CONFLICT, Operation,
        "Someone in the circle already uses this pseudonym, or one that looks the same: choose another.";
    LoginNameTaken = "login_name_taken", CONFLICT, Operation,
        "This login name is taken: choose another.";
    EmailTaken = "email_taken", CONFLICT, Operation,
        "An account with this e-mail address exists.";
    AgreementChanged = "agreement_changed", CONFLICT, Operation,
        "The circle's agreement changed since you read it: load it again (`detail` names the current version) and consent to that version.";
    OtherOrganisation = "other_organisation", CONFLICT, Operation,
        "The invite is for a circle of another organisation than the signed-in account's: join without a bearer token, which makes a separate account.";
    AlertResolved = "alert_resolved", CONFLICT, Operation,
        "The alert is already resolved and cannot change any more.";
    CannotRemoveSelf = "cannot_remove_self", CONFLICT, Operation,
        "A coordinator cannot remove their own account; another coordinator can.";
    DeviceKindChanged = "device_kind_changed", CONFLICT, Operation,
        "A device keeps its kind (`apns`, `fcm`, `webpush`): register the new device instead.";
    PostDeleted = "post_deleted", CONFLICT, Operation,
        "The post was deleted and cannot change any more.";
    PostUnavailable = "post_unavailable", CONFLICT, Operation,
        "The post was deleted or hidden: it takes no new reactions.";
    ErasureScheduled = "erasure_scheduled", CONFLICT, Operation,
        "An erasure of this account is already scheduled: cancel it first to change it.";
    ExportInProgress = "export_in_progress", CONFLICT, Operation,
        "An export of this account is still being built: wait until it is ready (one at a time).";
    ExportNotReady = "export_not_ready", CONFLICT, Operation,
        "The export is still being built: check its status again shortly.";
    ExportFailed = "export_failed", CONFLICT, Operation,
        "The export could not be built: ask for a new one.";
    QuestionnaireAnswered = "questionnaire_answered", CONFLICT, Operation,
        "The questionnaire is already answered; answers never change. A retry with the same `Idempotency-Key` gets the first answer's response.";
    QuestionnaireDeclined = "questionnaire_declined", CONFLICT, Operation,
        "You declined this questionnaire; it takes no answers any more.";
    QuestionnaireExpired = "questionnaire_expired", CONFLICT, Operation,
        "The questionnaire's window has closed; it can no longer be answered or declined.";
    IdempotencyInProgress = "idempotency_in_progress", CONFLICT, Operation,
        "A request with this `Idempotency-Key` is still running: retry shortly with the same key to get its response.";
    IdempotencyReplayRefused = "idempotency_replay_refused", CONFLICT, Operation,
        "A request with this `Idempotency-Key` already succeeded, and its response held a secret (tokens or a one-time code) that is never kept for replay, so nothing was done again. `detail` says what to do instead (sign in, or make a new code).";
    // 410
    CodeExpired = "code_expired", GONE, Operation,
        "The setup or recovery code has expired: ask for a new one.";
    CodeRevoked = "code_revoked", GONE, Operation,
        "The setup or recovery code was revoked (its account was removed).";
    CodeUsed = "code_used", GONE, Operation,
        "The setup or recovery code was already used (or replaced by a newer one): ask for a new one.";
    InviteExpired = "invite_expired", GONE, Operation,
        "The invite has expired: ask the worker for a new one.";
    InviteRevoked = "invite_revoked", GONE, Operation,
        "The invite was withdrawn: ask the worker for a new one.";
    InviteUsedUp = "invite_used_up", GONE, Operation,
        "The invite has been used as often as it may: ask the worker for a new one.";
    ExportExpired = "export_expired", GONE, Operation,
        "The export's download period is over and its document was deleted: ask for a new one.";
    ResyncRequired = "resync_required", GONE, Operation,
        "The `since` token is ahead of this server (its data was restored from an older backup): drop your copy of the list and load it again from the first page, without `since`.";
    // 413
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, Operation,
        "The request body is larger than the server accepts.";
    // 414
    UriTooLong = "uri_too_long", URI_TOO_LONG, AnyRequest,
        "The request's URI is too long. The connection closes after this answer.";
    // 415
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, Operation,
        "The body must be JSON, sent with `Content-Type: application/json`.";
    // 422
    ValidationFailed = "validation_failed", UNPROCESSABLE_ENTITY, Operation,
        "Fields of the body, query or path failed validation: `errors` lists each field (as a path such as `steps[1].after_hours`) and why.";
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY, Operation,
        "This `Idempotency-Key` was used (within 24 hours) for a different request: make a new key for a new action.";
    // 429
    TooManyRequests = "too_many_requests", TOO_MANY_REQUESTS, Operation,
        "Too many failed attempts: wait for the `Retry-After` seconds before trying again.";
    // 431
    HeadersTooLarge = "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, AnyRequest,
        "The request has too many header fields, or they are too large.";
    // 500
    InternalError = "internal_error", INTERNAL_SERVER_ERROR, Operation,
        "Something went wrong on the server; retry later (with the same `Idempotency-Key`, if the request had one).";
    // 503
    Busy = "busy", SERVICE_UNAVAILABLE, Operation,
        "The server is hashing too many passwords at this moment: wait for the `Retry-After` seconds and retry.";
    TooManyConnections = "too_many_connections", SERVICE_UNAVAILABLE, AnyRequest,
        "The server has too many open connections: wait for the `Retry-After` seconds and retry. The connection closes after this answer.";
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code a string names, if it is registered.
pub fn lookup(code: &str) -> Option<Code> {
    Code::ALL.iter().copied().find(|c| c.as_str() == code)
}

/// The registry as a Markdown table (code, status, meaning), as the README
/// shows it.
pub fn markdown_table() -> String {
    let mut out = String::from("| `code` | Status | Meaning |\n|---|---|---|\n");
    for code in Code::ALL {
        let scope = match code.reach() {
            Reach::Operation => "",
            Reach::AnyRequest => " (Any request.)",
        };
        out.push_str(&format!(
            "| `{}` | {} | {}{scope} |\n",
            code.as_str(),
            code.status().as_u16(),
            code.meaning()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_errors() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}: snake case"
            );
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{s}: an error status"
            );
            assert!(code.meaning().ends_with('.'), "{s}: a sentence");
            assert_eq!(lookup(s), Some(*code));
        }
    }
}
