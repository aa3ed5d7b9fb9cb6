//! Changes every node must hear of at once, carried by PostgreSQL's
//! `NOTIFY` (docs/http-contract.md, v3 "One library for many nodes"): a
//! comment posted or deleted, a recording deleted. Each node keeps the
//! comments of the recordings it serves in memory and pushes them to its
//! WebSockets; without this, a comment posted through one node would reach
//! only that node's viewers.
//!
//! The notice is sent in the transaction that makes the change, so it is
//! delivered if and only if the change committed (PostgreSQL delivers
//! notifications at commit, in commit order). It names what changed, not
//! its content: a notice's payload is limited to 8,000 bytes, a comment's
//! text is not, and a node reads what it needs from the catalog.
//!
//! A listener's connection can drop; notices sent meanwhile are lost.
//! [`Listener::next`] then says [`Heard::Lost`], and the node reloads what
//! it holds instead of trusting its memory. The embedded database has one
//! node, which hears its own changes directly: no listener.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use base::Result;

use super::{db_error, Catalog, Db};

/// The `NOTIFY` channel.
pub const CHANNEL: &str = "segcast_changes";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    CommentAdded { recording: String, comment: String },
    CommentDeleted { recording: String, comment: String },
    RecordingDeleted { recording: String },
}

#[derive(Serialize, Deserialize)]
struct Notice {
    /// The node that made the change (it applied it already).
    node: String,
    #[serde(flatten)]
    change: Change,
}

/// What a listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Another node's change.
    Change(Change),
    /// The connection dropped and was made again: changes may have been
    /// missed.
    Lost,
}

/// Another node's changes, as they commit.
pub struct Listener {
    /// `None` after a failure: made anew at the next call.
    inner: Option<PgListener>,
    pool: PgPool,
    node: Arc<str>,
}

async fn connect(pool: &PgPool) -> Result<PgListener> {
    let failed = |e| db_error("listening for other nodes' changes", e);
    let mut listener = PgListener::connect_with(pool).await.map_err(failed)?;
    listener.listen(CHANNEL).await.map_err(failed)?;
    Ok(listener)
}

impl Listener {
    /// The next change made by another node (this node's own are left
    /// out), or word that some may have been missed, said once listening
    /// again (so what is read after it misses nothing). An error leaves
    /// it to be called again, after a pause.
    pub async fn next(&mut self) -> Result<Heard> {
        loop {
            let Some(inner) = self.inner.as_mut() else {
                // A failed connection: a new one, then a reload by the caller.
                self.inner = Some(connect(&self.pool).await?);
                return Ok(Heard::Lost);
            };
            let heard = match inner.try_recv().await {
                Ok(heard) => heard,
                Err(e) => {
                    self.inner = None;
                    return Err(db_error("listening for other nodes' changes", e));
                }
            };
            // sqlx made the connection again (and listens) before saying so.
            let Some(notification) = heard else {
                return Ok(Heard::Lost);
            };
            match serde_json::from_str::<Notice>(notification.payload()) {
                Ok(notice) if *notice.node == *self.node => continue,
                Ok(notice) => return Ok(Heard::Change(notice.change)),
                Err(e) => {
                    // A newer node's notice this one does not know: its
                    // memory may now be behind, as after a lost connection.
                    tracing::warn!(error = %e, "an unreadable change notice");
                    return Ok(Heard::Lost);
                }
            }
        }
    }
}

impl Catalog {
    /// Listens for other nodes' changes; `None` on the embedded database.
    pub async fn listen(&self) -> Result<Option<Listener>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        // A pool of its own: the listening connection is held for good,
        // and one made again after a failure is a new login, never a
        // request connection that kept listening.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(super::ACQUIRE_TIMEOUT)
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        Ok(Some(Listener {
            inner: Some(connect(&own).await?),
            pool: own,
            node: self.node.clone(),
        }))
    }

    /// Tells the other nodes of `change` when `tx` commits (PostgreSQL);
    /// nothing to do on the embedded database.
    pub(super) async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        change: Change,
    ) -> Result<(), sqlx::Error> {
        let notice = Notice {
            node: self.node.to_string(),
            change,
        };
        let payload = serde_json::to_string(&notice).expect("ids serialise");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await
            .map(drop)
    }
}
