//! Which node runs each recording (docs/http-contract.md, v3 "One library
//! for many nodes"). A recording's task — ffmpeg, the live edge, the chunks
//! on disk — lives in one process; in a cluster the catalog records that
//! node's `--node-url` in the row when the recording is created, so every
//! other node knows whom to hand its requests to, and whether that node
//! still holds its lease (table `nodes`).
//!
//! A row without an owner (the single-node default, rows from before
//! ownership, `segcast import`'s) is run by whichever server loads it.

use std::collections::HashMap;
use std::sync::Arc;

use base::Result;
use sqlx::Row;

use super::{db_error, on_db, Catalog};

/// Who runs a recording, as the catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No node named: the server that loads it runs it.
    Anyone,
    /// The node with this `--node-url`, whose lease (Unix ms) runs until
    /// `lease_until_ms` (`0`: it has no lease row at all).
    Node { url: String, lease_until_ms: u64 },
}

impl Catalog {
    /// This catalog as used by the node `url` (a cluster): recordings it
    /// creates are recorded as its own.
    pub fn as_node(mut self, url: Option<&str>) -> Self {
        self.node_url = url.map(Arc::from);
        self
    }

    /// The `--node-url` this catalog creates recordings for, if any.
    pub fn node_url(&self) -> Option<&str> {
        self.node_url.as_deref()
    }

    /// Ids of the recordings some node owns, with its URL.
    pub async fn owners(&self) -> Result<HashMap<String, String>> {
        const SQL: &str = "SELECT id, owner_url FROM recordings WHERE owner_url IS NOT NULL";
        let rows = on_db!(self, read, |pool| {
            match sqlx::query(SQL).fetch_all(pool).await {
                Ok(rows) => rows
                    .iter()
                    .map(|row| Ok((row.try_get("id")?, row.try_get("owner_url")?)))
                    .collect::<Result<Vec<(String, String)>, sqlx::Error>>(),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading who runs the recordings", e))?;
        Ok(rows.into_iter().collect())
    }

    /// Who runs recording `id`; `None` when there is no such row.
    pub async fn owner(&self, id: &str) -> Result<Option<Owner>> {
        const SQL: &str = "SELECT r.owner_url, n.lease_until_ms FROM recordings r \
            LEFT JOIN nodes n ON n.url = r.owner_url WHERE r.id = $1";
        let row = on_db!(self, read, |pool| {
            match sqlx::query(SQL).bind(id).fetch_optional(pool).await {
                Ok(Some(row)) => row
                    .try_get::<Option<String>, _>("owner_url")
                    .and_then(|url| Ok((url, row.try_get::<Option<i64>, _>("lease_until_ms")?)))
                    .map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| db_error("reading who runs a recording", e))?;
        Ok(row.map(|(url, until)| match url {
            None => Owner::Anyone,
            Some(url) => Owner::Node {
                url,
                lease_until_ms: until.map_or(0, |u| u64::try_from(u).unwrap_or(0)),
            },
        }))
    }
    /// Makes recording `id` this node's (`me`), if its owner's lease ran
    /// out before `now_ms`: one conditional update, so of nodes taking
    /// it over at once one wins. Returns whether this one did.
    pub async fn take_over_recording(&self, id: &str, me: &str, now_ms: u64) -> Result<bool> {
        const SQL: &str = "UPDATE recordings SET owner_url = $1 \
            WHERE id = $2 AND owner_url IS NOT NULL AND owner_url <> $1 \
            AND NOT EXISTS (SELECT 1 FROM nodes n \
                WHERE n.url = recordings.owner_url AND n.lease_until_ms >= $3)";
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let rows = on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(me)
            .bind(id)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("taking a recording over", e))?;
        Ok(rows > 0)
    }
}
