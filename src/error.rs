//! One error type for the API, mapped once to RFC 9457 problem+json.
//!
//! Every error carries a stable machine-readable `code` from the registry in
//! [`codes`], which also gives its HTTP status; internal errors are logged
//! with their cause and shown to the caller only as `internal_error`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub mod codes;

pub use codes::Code;

/// A field that failed validation, and why.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path in the request, e.g. `pseudonym` or `steps[1].after_hours`.
    #[schema(example = "pseudonym")]
    pub field: String,
    /// Why, in English (for people; do not parse it).
    #[schema(example = "must be 2 to 40 characters")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:kring:problem:validation_failed",
    "title": "Unprocessable Content",
    "status": 422,
    "code": "validation_failed",
    "detail": "The request has invalid fields.",
    "errors": [{"field": "pseudonym", "message": "must be 2 to 40 characters"}]
}))]
pub struct Problem {
    /// `urn:kring:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The HTTP status text.
    pub title: String,
    /// The HTTP status of the response.
    #[schema(example = 422)]
    pub status: u16,
    /// Stable machine-readable error code; switch on this, not on `detail`.
    /// Each error response of an operation lists the codes it can carry
    /// (`x-problem-codes`); the spec's root lists those any request can
    /// meet.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// A human-readable explanation (English).
    pub detail: String,
    /// For `validation_failed`: every field that failed and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub errors: Vec<FieldError>,
}

/// Marks the answer of [`ApiError::KeyTaken`], for the idempotency layer
/// to replace with the stored response.
#[derive(Debug, Clone, Copy)]
pub struct KeyTaken;

/// An error the API answers with. Its `code`, and with it the HTTP status,
/// comes from the registry in [`codes`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// A registered code with an explanation for people.
    #[error("{detail}")]
    Problem { code: Code, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("too many attempts; try again in {retry_after_secs} seconds")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the request took too long to arrive")]
    RequestTimeout,
    #[error("the request has more than {0} header fields")]
    HeadersTooLarge(usize),
    #[error("{detail}")]
    Unavailable {
        code: Code,
        detail: String,
        retry_after_secs: u64,
    },
    /// A copy of this request with the same `Idempotency-Key` committed
    /// first; the idempotency layer answers with its stored response.
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    KeyTaken,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The problem `code` with `detail`; its status is the code's.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self::Problem {
            code,
            detail: detail.into(),
        }
    }

    /// A write's error: a unique-constraint violation (the name, address
    /// or code is already used) is the conflict `code`; anything else stays
    /// a database error. The one place such violations are told apart.
    pub fn conflict_if_taken(err: sqlx::Error, code: Code, detail: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::new(code, detail),
            _ => Self::Database(err),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    pub fn code(&self) -> Code {
        match self {
            Self::Validation(_) => Code::ValidationFailed,
            Self::Problem { code, .. } | Self::Unavailable { code, .. } => *code,
            Self::NotFound(_) => Code::NotFound,
            Self::KeyTaken => Code::IdempotencyInProgress,
            Self::MethodNotAllowed => Code::MethodNotAllowed,
            Self::PayloadTooLarge => Code::PayloadTooLarge,
            Self::UnsupportedMediaType => Code::UnsupportedMediaType,
            Self::TooManyRequests { .. } => Code::TooManyRequests,
            Self::RequestTimeout => Code::RequestTimeout,
            Self::HeadersTooLarge(_) => Code::HeadersTooLarge,
            Self::Database(_) | Self::Internal(_) => Code::InternalError,
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            Self::Validation(_) => "The request has invalid fields.".to_owned(),
            Self::Database(_) | Self::Internal(_) => {
                "Something went wrong on our side; please try again.".to_owned()
            }
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                if !s.ends_with('.') {
                    s.push('.');
                }
                s
            }
        };
        Problem {
            type_: format!("urn:kring:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code().as_str().to_owned(),
            detail,
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, Self::Database(_) | Self::Internal(_)) {
            // The cause goes to the log, never to the caller.
            tracing::error!(error = %self, "request failed");
        }
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        match &self {
            Self::KeyTaken => {
                response.extensions_mut().insert(KeyTaken);
            }
            Self::TooManyRequests { retry_after_secs }
            | Self::Unavailable {
                retry_after_secs, ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Collects field errors so that one response lists every bad field.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Keeps the parsed value, or records why `field` failed.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(message) => {
                self.errors.push(FieldError::new(field, message));
                None
            }
        }
    }

    /// Records a failure that is not tied to one parse.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The error to return once some field failed.
    pub fn into_error(self) -> ApiError {
        if self.errors.is_empty() {
            ApiError::Internal("validator finished without errors".into())
        } else {
            ApiError::Validation(self.errors)
        }
    }

    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}
