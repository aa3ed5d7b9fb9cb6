//! This process as a node of a cluster (docs/http-contract.md, v3 "One
//! library for many nodes"): with a PostgreSQL `--database`, the node holds
//! its `--node-url` in the catalog under a lease it renews every third of
//! `--node-lease-s`, and gives it back when it stops cleanly. A second
//! process started with the same URL while the first runs is refused; one
//! started after a crash waits for the crashed one's lease to lapse.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base::clock::unix_ms;
use store::catalog::{Catalog, Claim};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::clients::Trusted;

/// What a claim waits beyond the lease before deciding the URL is held by
/// a node that is running (it renewed the lease meanwhile).
const CLAIM_GRACE: Duration = Duration::from_secs(2);

/// This node's hold on its `--node-url`.
pub struct NodeLease {
    url: String,
    catalog: Catalog,
    renewer: JoinHandle<()>,
}

/// Checks `--node-url` against `--database` before anything is opened,
/// and keeps it normalised (no trailing `/`).
pub fn check_node_url(config: &mut Config) -> io::Result<()> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let database = config
        .database_url()
        .map_err(|e| invalid(format!("--database: {e}")))?;
    let postgres = matches!(database, store::catalog::DatabaseUrl::Postgres(_));
    config.node_url = node_url(config, postgres).map_err(invalid)?;
    Ok(())
}

/// `--node-url` checked against `--database`: required for a cluster
/// (PostgreSQL), refused without one.
pub fn node_url(config: &Config, postgres: bool) -> Result<Option<String>, String> {
    match (&config.node_url, postgres) {
        (None, false) => Ok(None),
        (None, true) => Err(
            "--node-url: required with a PostgreSQL --database (the address other nodes \
             and clients reach this node at, e.g. http://10.0.0.11:8080)"
                .into(),
        ),
        (Some(_), false) => Err(
            "--node-url: only for a cluster, which needs a PostgreSQL --database; the \
             embedded database has one node"
                .into(),
        ),
        (Some(url), true) => {
            let url =
                store::mirror::parse_public_url(url).map_err(|e| format!("--node-url: {e}"))?;
            if url
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/'))
            {
                return Err(format!("--node-url: '{url}' must have no path"));
            }
            Ok(Some(url))
        }
    }
}

impl NodeLease {
    /// Claims `url` (waiting out the lease of a process that died with
    /// it) and starts renewing it. An error when another node runs with it.
    pub async fn claim(catalog: &Catalog, url: String, lease_s: u64) -> io::Result<Self> {
        let lease_ms = lease_s * 1000;
        let give_up = tokio::time::Instant::now() + Duration::from_millis(lease_ms) + CLAIM_GRACE;
        loop {
            let now = unix_ms();
            let claim = catalog
                .claim_node(&url, now, now + lease_ms)
                .await
                .map_err(|e| io::Error::other(base::error::chain(&e)))?;
            let Claim::Taken { until_ms } = claim else {
                break;
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "--node-url {url} is held by another running node (it renewed its \
                         lease meanwhile); give each node its own --node-url"
                    ),
                ));
            }
            tracing::info!(%url, "--node-url is held by an earlier process; waiting for its lease to lapse");
            let wait = Duration::from_millis(until_ms.saturating_sub(now) + 100);
            tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(give_up)).await;
        }
        tracing::info!(%url, lease_s, "node registered");
        let renewer = tokio::spawn(renew(catalog.clone(), url.clone(), lease_ms));
        Ok(Self {
            url,
            catalog: catalog.clone(),
            renewer,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops renewing and gives the URL back.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.catalog.release_node(&self.url).await {
            tracing::warn!(error = %base::error::chain(&e), "the node URL's lease was not released; it lapses by itself");
        }
    }
}

async fn renew(catalog: Catalog, url: String, lease_ms: u64) {
    let mut every = tokio::time::interval(Duration::from_millis(lease_ms / 3));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match catalog.renew_node(&url, unix_ms() + lease_ms).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                %url,
                "another node holds this node's --node-url: this node's lease lapsed (the \
                 database did not answer for longer than --node-lease-s)"
            ),
            Err(e) => {
                tracing::warn!(error = %base::error::chain(&e), "the node's lease was not renewed")
            }
        }
    }
}

/// Keeps `trusted` holding the addresses of the cluster's nodes (those with
/// a live lease): read once before this node serves, then every `every`.
/// A node hands other nodes its viewers' requests (`http::forward`), so
/// each node must read their `X-Forwarded-For` and must not hold them to
/// one client's limits.
pub async fn trust_peers(
    catalog: Catalog,
    trusted: Arc<Trusted>,
    every: Duration,
) -> JoinHandle<()> {
    refresh_peers(&catalog, &trusted).await;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            refresh_peers(&catalog, &trusted).await;
        }
    })
}

async fn refresh_peers(catalog: &Catalog, trusted: &Trusted) {
    match catalog.live_nodes(unix_ms()).await {
        Ok(urls) => trusted.set_nodes(addresses(&urls).await),
        Err(e) => {
            tracing::warn!(error = %base::error::chain(&e), "the cluster's nodes were not read; their addresses are trusted as before")
        }
    }
}

/// The IP addresses the node URLs' hosts resolve to (a name that does not
/// resolve now is left out until it does).
async fn addresses(urls: &[String]) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for url in urls {
        let Some(authority) = authority(url) else {
            continue;
        };
        let resolved = tokio::net::lookup_host(authority.as_str()).await;
        match resolved {
            Ok(addrs) => found.extend(addrs.map(|a| a.ip())),
            Err(e) => tracing::warn!(%url, error = %e, "a node's address does not resolve"),
        }
    }
    found.sort();
    found.dedup();
    found
}

/// `host:port` of an `http(s)://host[:port]` URL, with the scheme's port.
fn authority(url: &str) -> Option<String> {
    let (rest, port) = match url.split_once("://")? {
        ("http", rest) => (rest, 80),
        ("https", rest) => (rest, 443),
        _ => return None,
    };
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    let bracketed_v6 = host.starts_with('[') && host.ends_with(']');
    let has_port = !bracketed_v6
        && host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    Some(if has_port {
        host.to_string()
    } else {
        format!("{host}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_name_the_host_and_port_to_resolve() {
        assert_eq!(
            authority("http://10.0.0.1:8080").as_deref(),
            Some("10.0.0.1:8080")
        );
        assert_eq!(
            authority("https://node.example").as_deref(),
            Some("node.example:443")
        );
        assert_eq!(authority("http://[::1]").as_deref(), Some("[::1]:80"));
        assert_eq!(authority("http://[::1]:81").as_deref(), Some("[::1]:81"));
        assert_eq!(authority("ftp://x"), None);
    }
}
