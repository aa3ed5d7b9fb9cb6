//! segcast: turns a webcam recording uploaded in chunks while it is made
//! into a live HLS stream, and keeps it as a library of playable videos.
//!
//! Data flows one way (docs/architecture.md):
//! record page → [`ingest`] (durable chunks, reorder) → [`transcode`]
//! (ffmpeg sidecar) → [`publish`] (the pure [`media`] core: fMP4 splitter,
//! segmenter, timeline, playlists) → files under `<data>/` → [`http`].

pub mod access;
pub mod batch;
pub mod comments;
pub mod config;
pub mod edge;
pub mod error;
pub mod fdlimit;
pub mod http;
pub mod ingest;
pub mod media;
pub mod metrics;
pub mod objects;
pub mod publish;
pub mod secrets;
pub mod store;
pub mod transcode;
pub mod zero_copy;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;

/// The HTTP app, its library, and `/metrics` alone (for `--metrics-listen`).
pub type App = (axum::Router, Arc<ingest::library::Library>, axum::Router);

/// Opens the library under `config.data_dir`, starts its watchers (the
/// inbox, recordings imported by the CLI) and builds the HTTP app.
pub async fn app(config: Config) -> std::io::Result<App> {
    http::imports::clean_staging(&config.data_dir);
    let library = ingest::library::Library::open(Arc::new(config)).await?;
    if let Some(objects) = library.objects() {
        let url = library
            .config()
            .store
            .as_ref()
            .expect("a mirror has a store");
        tracing::info!(bucket = %url.bucket, prefix = %url.prefix, "mirroring published media to object storage");
        objects.start();
    }
    // Both need inotify; without it the server still serves, and says why
    // imports by folder and CLI are not picked up.
    let inbox = ingest::inbox::run(library.clone());
    tokio::spawn(async move {
        if let Err(error) = inbox.await {
            tracing::error!(%error, "the inbox is not watched");
        }
    });
    let adopt = library.clone().adopt_moved_in();
    tokio::spawn(async move {
        if let Err(error) = adopt.await {
            tracing::error!(%error, "recordings added by `segcast import` are not picked up until a restart");
        }
    });
    let state = http::AppState::new(library.clone())?;
    let metrics = http::metrics::standalone(state.clone());
    Ok((http::router(state), library, metrics))
}

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
    let open_files = fdlimit::raise_open_file_limit();
    let admission = http::clients::Admission::from_config(&config, open_files);
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
    let trusted_proxies = config.trusted_proxies.clone();
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(http::tls::acceptor(cert, key)?),
        _ => None,
    };
    let metrics_listen = config.metrics_listen;
    let (router, library, metrics) = app(config).await?;
    let metrics_server = match metrics_listen {
        Some(addr) => Some(http::metrics::serve_apart(addr, metrics).await?),
        None => None,
    };
    let shared = http::connection::Shared {
        router,
        policy,
        trusted_proxies,
    };
    if tls.is_some() {
        tracing::info!("HTTPS: every connection starts with a TLS handshake");
    }
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let served = http::server::run(listener, shared, admission, tls, shutdown).await;
    if let Some(task) = metrics_server {
        task.abort();
    }
    library.shutdown().await;
    served
}
