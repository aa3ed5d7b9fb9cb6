//! Viewers' comments in the catalog (docs/http-contract.md, "Comments"):
//! one row each, in posting order (`seq`), deleted with their recording.
//! A post returns once committed, so a `201` survives a crash.

use base::{Error, Result};
use sqlx::Row;

use super::{db_error, on_db, Catalog};

/// A comment as stored: `media_time_ms` in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredComment {
    pub id: String,
    pub author: String,
    pub text: String,
    pub media_time_ms: u64,
    /// RFC 3339 UTC, millisecond precision.
    pub created_at: String,
}

impl Catalog {
    /// A recording's comments, oldest first.
    pub async fn comments(&self, recording_id: &str) -> Result<Vec<StoredComment>> {
        const SQL: &str = "SELECT id, author, body, media_time_ms, created_at FROM comments \
                           WHERE recording_id = $1 ORDER BY seq";
        on_db!(self, read, |pool| {
            match sqlx::query(SQL).bind(recording_id).fetch_all(pool).await {
                Ok(rows) => rows
                    .iter()
                    .map(|row| {
                        Ok(StoredComment {
                            id: row.try_get("id")?,
                            author: row.try_get("author")?,
                            text: row.try_get("body")?,
                            media_time_ms: u64::try_from(row.try_get::<i64, _>("media_time_ms")?)
                                .unwrap_or(0),
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>(),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading comments", e))
    }

    /// Stores a comment. `410` when the recording's row is gone (deleted
    /// meanwhile: the foreign key refuses the row).
    pub async fn add_comment(&self, recording_id: &str, comment: &StoredComment) -> Result<()> {
        const SQL: &str = "INSERT INTO comments \
            (recording_id, id, author, body, media_time_ms, created_at) \
            SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM recordings WHERE id = $1)";
        let media_time_ms = i64::try_from(comment.media_time_ms).unwrap_or(i64::MAX);
        let rows = on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(recording_id)
            .bind(&comment.id)
            .bind(&comment.author)
            .bind(&comment.text)
            .bind(media_time_ms)
            .bind(&comment.created_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("storing the comment", e))?;
        match rows {
            0 => Err(Error::Gone("this recording was deleted".into())),
            _ => Ok(()),
        }
    }

    /// Removes a comment; returns whether it existed.
    pub async fn delete_comment(&self, recording_id: &str, comment_id: &str) -> Result<bool> {
        const SQL: &str = "DELETE FROM comments WHERE recording_id = $1 AND id = $2";
        let rows = on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(recording_id)
            .bind(comment_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("deleting the comment", e))?;
        Ok(rows > 0)
    }
}
