//! The one error type of the server, and the one place where an error kind
//! becomes an HTTP status. Clients always get `{"error": "<message>"}`;
//! internal errors answer generically and log their cause chain.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// A credential was given but does not open this resource (a share
    /// token tampered with, expired, or for another recording).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    TooLarge(String),
    /// The body is not a media format the server takes (RFC 9110 §15.5.16).
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// Over a capacity limit: 503 with `Retry-After`.
    #[error("{message}")]
    Busy { message: String, retry_after_s: u32 },
    /// One client holds or asks too much (connections, long-lived
    /// requests, a rate): 429 with `Retry-After` (RFC 6585 §4).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: u32 },
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Internal {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Something could not be written: a full disk or quota is 507, any
    /// other failure 503; either way nothing was accepted and a retry may
    /// succeed. `message` says what was not stored.
    pub fn storage(message: impl std::fmt::Display, err: &std::io::Error) -> Self {
        use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        let message = format!("{message} ({err})");
        match err.kind() {
            StorageFull | QuotaExceeded | FileTooLarge => Self::InsufficientStorage(message),
            _ => Self::Unavailable(message),
        }
    }

    /// Seconds a client should wait before trying again, for the errors
    /// that carry `Retry-After`.
    pub fn retry_after_s(&self) -> Option<u32> {
        match self {
            Self::Busy { retry_after_s, .. } | Self::TooManyRequests { retry_after_s, .. } => {
                Some(*retry_after_s)
            }
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: the message, or a generic one for
    /// internal errors (whose cause chain goes to the log instead).
    pub fn client_message(&self) -> String {
        match self {
            Self::Internal { .. } => "internal error; see the server log".to_string(),
            other => other.to_string(),
        }
    }
}

/// Formats an error with its whole `source()` chain, for logs.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Self::Internal { .. } = self {
            tracing::error!(error = %chain(&self), "request failed");
        }
        let body = axum::Json(serde_json::json!({ "error": self.client_message() }));
        let mut response = (self.status(), body).into_response();
        if let Some(retry_after_s) = self.retry_after_s() {
            let headers = response.headers_mut();
            headers.insert(axum::http::header::RETRY_AFTER, retry_after_s.into());
        }
        response
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::internal("i/o", err)
    }
}
