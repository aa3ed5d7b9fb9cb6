//! The one error type of every layer: a kind and a message a client may
//! read. Nothing here knows HTTP; the HTTP layer maps each kind to a status
//! in one place (`segcast::http::error`). Internal errors carry their cause,
//! which is logged, never shown.

/// What went wrong, by kind. The message is for the client: it says what
/// was refused and, where it helps, what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule: malformed, out of range, inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A credential is missing or wrong (an upload token, the publish key).
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential was given but does not open this resource (a share
    /// token tampered with, expired, or for another recording).
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (other bytes under a seq, a
    /// total declared twice).
    #[error("{0}")]
    Conflict(String),
    /// It existed and was deleted.
    #[error("{0}")]
    Gone(String),
    /// The client took too long (a stalled body).
    #[error("{0}")]
    Timeout(String),
    /// Over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Not a media format the server takes.
    #[error("{0}")]
    Unsupported(String),
    /// Could not be done now (storage failing, shutting down); a retry may
    /// succeed.
    #[error("{0}")]
    Unavailable(String),
    /// Over a capacity limit: come back in `retry_after_s`.
    #[error("{message}")]
    Busy { message: String, retry_after_s: u32 },
    /// One client holds or asks too much (connections, long-lived
    /// requests, a rate): come back in `retry_after_s`.
    #[error("{message}")]
    RateLimited { message: String, retry_after_s: u32 },
    /// The disk or a quota is full: nothing was stored.
    #[error("{0}")]
    NoSpace(String),
    /// A bug or an unexpected failure below: the cause is logged.
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a client told to come back later ([`Error::Busy`]) waits, in
/// seconds, unless the refusal knows better.
pub const RETRY_AFTER_S: u32 = 30;

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

    /// Something could not be written: a full disk or quota is
    /// [`Error::NoSpace`], any other failure [`Error::Unavailable`]; either
    /// way nothing was accepted and a retry may succeed. `message` says what was not stored.
    pub fn storage(message: impl std::fmt::Display, err: &std::io::Error) -> Self {
        use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
        let message = format!("{message} ({err})");
        match err.kind() {
            StorageFull | QuotaExceeded | FileTooLarge => Self::NoSpace(message),
            _ => Self::Unavailable(message),
        }
    }

    /// Seconds a client should wait before trying again, for the kinds
    /// that say so.
    pub fn retry_after_s(&self) -> Option<u32> {
        match self {
            Self::Busy { retry_after_s, .. } | Self::RateLimited { retry_after_s, .. } => {
                Some(*retry_after_s)
            }
            _ => None,
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

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::internal("i/o", err)
    }
}
