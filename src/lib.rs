//! segcast: turns a webcam recording uploaded in chunks while it is made
//! into a live HLS and DASH stream, and keeps it as a library of playable
//! videos.
//!
//! # Layout
//! This crate is the top floor of the workspace (docs/architecture.md,
//! "Layers"): below it are `base` (errors, ids, clock, files, metrics),
//! `media` (the pure media core), `store` (disk, keys, the bucket) and
//! `pipeline` (ffmpeg, packaging, recording tasks, comments). Here:
//! - [`config`]: flags and environment variables, and the narrow settings
//!   of each layer made from them;
//! - [`app`]: the wiring;
//! - [`http`]: the only module that knows HTTP (axum, hyper);
//! - [`batch`]: the `segcast import` command.

pub mod app;
pub mod batch;
pub mod config;
pub mod http;
pub mod node;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::Config;

/// Serves until `shutdown` resolves; then stops accepting connections,
/// lets requests in flight finish (a chunk being written is stored and
/// acknowledged), and stops every ffmpeg before returning.
///
/// First raises the open-file limit as far as it goes; the connection caps
/// and timeouts (src/http/server.rs) are sized from it and the config.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open_files = base::fdlimit::raise_open_file_limit();
    let trusted = Arc::new(http::clients::Trusted::new(config.trusted_proxies.clone()));
    let admission = http::clients::Admission::from_config(&config, open_files, trusted.clone());
    let policy = http::connection::ConnectionPolicy::from_config(&config);
    tracing::info!(
        max_connections = admission.ceiling(),
        per_client = admission.per_client(),
        waiting_per_client = config.max_waiting_per_client,
        header_timeout_s = policy.header_timeout.as_secs(),
        keep_alive_timeout_s = policy.keep_alive_timeout.as_secs(),
        body_timeout_s = policy.body_idle_timeout.as_secs(),
        "connection limits"
    );
    let peers_every = Duration::from_millis(config.node_lease_s.saturating_mul(1000) / 3);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(http::tls::acceptor(cert, key)?),
        _ => None,
    };
    let metrics_listen = config.metrics_listen;
    let app::App {
        router,
        library,
        metrics_router,
        node,
    } = app::build(config).await?;
    let metrics_server = match metrics_listen {
        Some(addr) => Some(http::metrics::serve_apart(addr, metrics_router).await?),
        None => None,
    };
    let peers = match &node {
        Some(_) => {
            let catalog = library.catalog().clone();
            Some(node::trust_peers(catalog, trusted.clone(), peers_every).await)
        }
        None => None,
    };
    let shared = http::connection::Shared {
        router,
        policy,
        trusted_proxies: trusted,
    };
    if tls.is_some() {
        tracing::info!("HTTPS: every connection starts with a TLS handshake");
    }
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let served = http::server::run(listener, shared, admission, tls, shutdown).await;
    if let Some(task) = metrics_server {
        task.abort();
    }
    if let Some(peers) = peers {
        peers.abort();
    }
    library.shutdown().await;
    if let Some(node) = node {
        node.release().await;
    }
    served
}
