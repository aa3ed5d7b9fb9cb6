//! Viewers' comments in the catalog (docs/http-contract.md, "Comments"):
//! one row each, in posting order (`seq`), deleted with their recording.
//! A post returns once committed, so a `201` survives a crash.

use base::{Error, Result};
use sqlx::Row;

use super::changes::Change;
use super::{db_error, on_db, Catalog, Db};

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
                    .map(stored)
                    .collect::<Result<Vec<_>, sqlx::Error>>(),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading comments", e))
    }

    /// One comment of a recording, if it is there.
    pub async fn comment(
        &self,
        recording_id: &str,
        comment_id: &str,
    ) -> Result<Option<StoredComment>> {
        const SQL: &str = "SELECT id, author, body, media_time_ms, created_at FROM comments \
                           WHERE recording_id = $1 AND id = $2";
        on_db!(self, read, |pool| {
            match sqlx::query(SQL)
                .bind(recording_id)
                .bind(comment_id)
                .fetch_optional(pool)
                .await
            {
                Ok(Some(row)) => stored(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading a comment", e))
    }

    /// Stores a comment (and tells the other nodes). `410` when the
    /// recording's row is gone (deleted meanwhile: nothing is inserted).
    pub async fn add_comment(&self, recording_id: &str, comment: &StoredComment) -> Result<()> {
        const SQL: &str = "INSERT INTO comments \
            (recording_id, id, author, body, media_time_ms, created_at) \
            SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM recordings WHERE id = $1)";
        let media_time_ms = i64::try_from(comment.media_time_ms).unwrap_or(i64::MAX);
        macro_rules! insert {
            () => {
                sqlx::query(SQL)
                    .bind(recording_id)
                    .bind(&comment.id)
                    .bind(&comment.author)
                    .bind(&comment.text)
                    .bind(media_time_ms)
                    .bind(&comment.created_at)
            };
        }
        let rows = match &self.db {
            Db::Postgres(pool) => {
                async {
                    let mut tx = pool.begin().await?;
                    let rows = insert!().execute(&mut *tx).await?.rows_affected();
                    if rows > 0 {
                        let change = Change::CommentAdded {
                            recording: recording_id.to_string(),
                            comment: comment.id.clone(),
                        };
                        self.notify(&mut tx, change).await?;
                    }
                    tx.commit().await?;
                    Ok(rows)
                }
                .await
            }
            Db::Sqlite { writer, .. } => insert!().execute(writer).await.map(|r| r.rows_affected()),
        }
        .map_err(|e| db_error("storing the comment", e))?;
        match rows {
            0 => Err(Error::Gone("this recording was deleted".into())),
            _ => Ok(()),
        }
    }

    /// Removes a comment (and tells the other nodes); returns whether it
    /// existed.
    pub async fn delete_comment(&self, recording_id: &str, comment_id: &str) -> Result<bool> {
        const SQL: &str = "DELETE FROM comments WHERE recording_id = $1 AND id = $2";
        let rows = match &self.db {
            Db::Postgres(pool) => {
                async {
                    let mut tx = pool.begin().await?;
                    let rows = sqlx::query(SQL)
                        .bind(recording_id)
                        .bind(comment_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if rows > 0 {
                        let change = Change::CommentDeleted {
                            recording: recording_id.to_string(),
                            comment: comment_id.to_string(),
                        };
                        self.notify(&mut tx, change).await?;
                    }
                    tx.commit().await?;
                    Ok(rows)
                }
                .await
            }
            Db::Sqlite { writer, .. } => sqlx::query(SQL)
                .bind(recording_id)
                .bind(comment_id)
                .execute(writer)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(|e| db_error("deleting the comment", e))?;
        Ok(rows > 0)
    }
}

fn stored<R: Row>(row: &R) -> Result<StoredComment, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredComment {
        id: row.try_get("id")?,
        author: row.try_get("author")?,
        text: row.try_get("body")?,
        media_time_ms: u64::try_from(row.try_get::<i64, _>("media_time_ms")?).unwrap_or(0),
        created_at: row.try_get("created_at")?,
    })
}
