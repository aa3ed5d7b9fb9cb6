//! `--database URL`: which engine holds the catalog, and where.
//!
//! - absent: `sqlite://<data>/segcast.db`, the embedded default;
//! - `sqlite:///absolute/path.db` or `sqlite://relative/path.db`;
//! - `postgres://user:pass@host:port/db` (or `postgresql://`), handed to
//!   the driver as given (its query parameters, `sslmode=…` included).
//!
//! The password never reaches a log or an error: [`DatabaseUrl::redacted`].

use std::path::{Path, PathBuf};

/// The embedded database's file, in the data directory.
pub const DEFAULT_FILE: &str = "segcast.db";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf },
    Postgres(String),
}

impl DatabaseUrl {
    /// The default: the embedded database in `data_dir`.
    pub fn embedded(data_dir: &Path) -> Self {
        Self::Sqlite {
            path: data_dir.join(DEFAULT_FILE),
        }
    }

    /// Parses `--database`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let accepted = "expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE";
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("'{}' is not a URL: {accepted}", redact(text)))?;
        match scheme {
            "sqlite" if !rest.is_empty() && !rest.contains('?') => Ok(Self::Sqlite {
                path: PathBuf::from(rest),
            }),
            "sqlite" => Err(format!(
                "'{text}' names no file (query parameters are not taken): {accepted}"
            )),
            "postgres" | "postgresql" => {
                let parsed = url::Url::parse(text)
                    .map_err(|e| format!("'{}': {e}: {accepted}", redact(text)))?;
                if parsed.host_str().is_none_or(str::is_empty) && !text.contains("host=") {
                    return Err(format!("'{}' names no host: {accepted}", redact(text)));
                }
                Ok(Self::Postgres(text.to_string()))
            }
            other => Err(format!("'{other}' databases are not supported: {accepted}")),
        }
    }

    /// For logs and errors: a PostgreSQL password is replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact(url),
        }
    }
}

/// `scheme://user:***@host…` when the URL has a password.
fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => text.to_string(),
        // Unparsable: show only the scheme, in case a password is inside.
        Err(_) => text
            .split_once("://")
            .map_or_else(|| "(unreadable)".into(), |(s, _)| format!("{s}://…")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_passwords_never_shown() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/segcast/x.db").unwrap(),
            DatabaseUrl::Sqlite {
                path: "/var/lib/segcast/x.db".into()
            }
        );
        let pg = DatabaseUrl::parse("postgres://seg:s3cret@db.local:5432/segcast").unwrap();
        assert_eq!(pg.redacted(), "postgres://seg:***@db.local:5432/segcast");
        assert!(DatabaseUrl::parse("postgresql://db.local/segcast").is_ok());
        for (bad, why) in [
            ("segcast.db", "not a URL"),
            ("mysql://u:p@h/db", "'mysql' databases are not supported"),
            ("sqlite://", "names no file"),
            ("postgres://u:hunter2@/db", "host"),
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert_eq!(
            DatabaseUrl::embedded(Path::new("media")).redacted(),
            "sqlite://media/segcast.db"
        );
    }
}
