//! The one place where an error kind becomes an HTTP status. Clients always
//! get `{"error": "<message>"}`; internal errors answer generically and log
//! their cause chain.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base::error::chain;
use base::Error;

/// An error on its way out as an HTTP answer.
#[derive(Debug)]
pub struct ApiError(pub Error);

/// What handlers return.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(error: std::io::Error) -> Self {
        Self(error.into())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The status of each kind (RFC 9110 §15, RFC 6585 §4 for 429,
/// RFC 4918 §11.5 for 507).
pub fn status(error: &Error) -> StatusCode {
    match error {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Denied(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Gone(_) => StatusCode::GONE,
        Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Unavailable(_) | Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        status(&self.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        if let Error::Internal { .. } = error {
            tracing::error!(error = %chain(&error), "request failed");
        }
        let body = axum::Json(serde_json::json!({ "error": error.client_message() }));
        let mut response = (status(&error), body).into_response();
        if let Some(retry_after_s) = error.retry_after_s() {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, retry_after_s.into());
        }
        response
    }
}
