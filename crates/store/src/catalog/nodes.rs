//! The cluster's nodes in the catalog (docs/http-contract.md, v3 "One
//! library for many nodes"): a `--node-url` is held by one running node at
//! a time, for as long as that node renews its lease.
//!
//! A claim is one conditional upsert, so two nodes starting with the same
//! URL cannot both win: the row is taken when it is new, when its lease
//! lapsed, or when it is this process's own. Leases are in Unix ms by the
//! holder's clock; nodes are expected to keep their clocks in step (NTP),
//! and a lease of several seconds leaves room for the skew that remains.

use base::Result;

use super::{db_error, on_db, Catalog};

/// Who holds a node URL after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This process, until the lease it asked for.
    Held,
    /// Another running node, whose lease runs until then (Unix ms).
    Taken { until_ms: u64 },
}

impl Catalog {
    /// This process among the nodes sharing the catalog (random per start).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Claims `url` for this process until `until_ms`, unless another
    /// node's lease on it runs past `now_ms`.
    pub async fn claim_node(&self, url: &str, now_ms: u64, until_ms: u64) -> Result<Claim> {
        const SQL: &str = "INSERT INTO nodes (url, node_id, lease_until_ms, started_at) \
            VALUES ($1, $2, $3, $4) \
            ON CONFLICT (url) DO UPDATE SET node_id = excluded.node_id, \
            lease_until_ms = excluded.lease_until_ms, started_at = excluded.started_at \
            WHERE nodes.lease_until_ms < $5 OR nodes.node_id = excluded.node_id";
        let started_at = base::clock::rfc3339_now();
        let rows = on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(url)
            .bind(&*self.node)
            .bind(ms(until_ms))
            .bind(&started_at)
            .bind(ms(now_ms))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("claiming the node URL", e))?;
        if rows > 0 {
            return Ok(Claim::Held);
        }
        let until: Option<i64> = on_db!(self, read, |pool| sqlx::query_scalar(
            "SELECT lease_until_ms FROM nodes WHERE url = $1"
        )
        .bind(url)
        .fetch_optional(pool)
        .await)
        .map_err(|e| db_error("reading the node URL's lease", e))?;
        Ok(Claim::Taken {
            until_ms: until.map_or(0, |u| u64::try_from(u).unwrap_or(0)),
        })
    }

    /// Extends this process's lease on `url`; false when it no longer
    /// holds it (its lease lapsed and another node claimed the URL).
    pub async fn renew_node(&self, url: &str, until_ms: u64) -> Result<bool> {
        const SQL: &str = "UPDATE nodes SET lease_until_ms = $1 WHERE url = $2 AND node_id = $3";
        let rows = on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(ms(until_ms))
            .bind(url)
            .bind(&*self.node)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| db_error("renewing the node's lease", e))?;
        Ok(rows > 0)
    }

    /// Ends this process's lease on `url` (a clean shutdown): a node
    /// started next with the URL need not wait for it to lapse.
    pub async fn release_node(&self, url: &str) -> Result<()> {
        const SQL: &str = "UPDATE nodes SET lease_until_ms = 0 WHERE url = $1 AND node_id = $2";
        on_db!(self, write, |pool| sqlx::query(SQL)
            .bind(url)
            .bind(&*self.node)
            .execute(pool)
            .await
            .map(drop))
        .map_err(|e| db_error("releasing the node URL", e))
    }

    /// URLs of the nodes whose lease runs past `now_ms`, sorted.
    pub async fn live_nodes(&self, now_ms: u64) -> Result<Vec<String>> {
        const SQL: &str = "SELECT url FROM nodes WHERE lease_until_ms >= $1 ORDER BY url";
        on_db!(self, read, |pool| sqlx::query_scalar(SQL)
            .bind(ms(now_ms))
            .fetch_all(pool)
            .await)
        .map_err(|e| db_error("listing the nodes", e))
    }
}

fn ms(unix_ms: u64) -> i64 {
    i64::try_from(unix_ms).unwrap_or(i64::MAX)
}
