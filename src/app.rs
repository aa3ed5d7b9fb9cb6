//! Wiring: every part of a server made from its [`Config`] and put
//! together — the bucket mirror, the library of recording tasks, the
//! watchers, the HTTP app. The one place that knows all the layers.

use std::sync::Arc;
use std::time::Duration;

use base::metrics::Metrics;
use pipeline::comments::hub::CommentHub;
use pipeline::{Library, Shared};
use store::catalog::{Catalog, CatalogOptions, Heard};
use store::mirror::Mirror;
use store::Store;

use crate::config::Config;
use crate::http;
use crate::node::NodeLease;

/// A built server: its routes, its library, and `/metrics` alone (for
/// `--metrics-listen`).
pub struct App {
    pub router: axum::Router,
    pub library: Arc<Library>,
    pub metrics_router: axum::Router,
    /// This node's `--node-url`, held while it runs (a cluster only).
    pub node: Option<NodeLease>,
}

/// Opens the catalog and the library under `config.data_dir`, starts its
/// watchers (the inbox, recordings imported by the CLI) and the bucket
/// mirror, and builds the HTTP app.
pub async fn build(mut config: Config) -> std::io::Result<App> {
    store::staging::clean(&config.data_dir);
    crate::node::check_node_url(&mut config)?;
    let catalog = open_catalog(&config)
        .await?
        .as_node(config.node_url.as_deref());
    let node = match config.node_url.clone() {
        Some(url) => Some(NodeLease::claim(&catalog, url, config.node_lease_s).await?),
        None => None,
    };
    let metrics = Metrics::new();
    let objects = open_mirror(&config, &catalog, &metrics)?;
    let shared = Shared {
        store: Store::open(&config.data_dir)?,
        catalog,
        settings: Arc::new(pipeline::Settings::from(&config)),
        metrics,
        mirror: objects,
    };
    let library = Library::open(shared).await?;
    if let (Some(objects), Some(url)) = (library.objects(), &config.store) {
        tracing::info!(bucket = %url.bucket, prefix = %url.prefix, "mirroring published media to object storage");
        objects.start();
    }
    // Both need inotify; without it the server still serves, and says why
    // imports by folder and CLI are not picked up.
    let inbox = pipeline::ingest::inbox::run(library.clone());
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
    let state = http::AppState::new(Arc::new(config), library.clone()).await?;
    tokio::spawn(follow_other_nodes(
        library.catalog().clone(),
        state.comments.clone(),
    ));
    Ok(App {
        metrics_router: http::metrics::standalone(state.clone()),
        router: http::router(state),
        library,
        node,
    })
}

/// Other nodes' changes to the catalog (PostgreSQL's notices): comments
/// posted or deleted through them reach this node's sockets. Runs for the
/// server's life; a lost connection is made again, and what may have been
/// missed meanwhile is read again.
async fn follow_other_nodes(catalog: Catalog, comments: Arc<CommentHub>) {
    const BACKOFF_MAX: Duration = Duration::from_secs(30);
    let mut backoff = Duration::from_secs(1);
    let mut listener = loop {
        match catalog.listen().await {
            Ok(Some(listener)) => break listener,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(error = %base::error::chain(&error), "not hearing other nodes' comments yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    };
    tracing::info!("hearing other nodes' changes");
    loop {
        let applied = match listener.next().await {
            Ok(Heard::Change(change)) => comments.apply(change).await,
            Ok(Heard::Lost) => {
                tracing::warn!("other nodes' changes may have been missed; reading comments again");
                comments.reload().await
            }
            Err(error) => Err(error),
        };
        match applied {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(error) => {
                tracing::warn!(error = %base::error::chain(&error), "following other nodes' changes");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// `--database` (the embedded one by default), its schema brought up to
/// date, and a v2 data directory's files brought in on first start. Every
/// refusal is a clear error before anything is changed.
pub async fn open_catalog(config: &Config) -> std::io::Result<Catalog> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    let url = config
        .database_url()
        .map_err(|e| invalid(format!("--database: {e}")))?;
    let options = CatalogOptions {
        url: &url,
        key_secret: config.key_secret.as_deref(),
        data_dir: &config.data_dir,
    };
    let catalog = Catalog::open(options)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    match store::catalog::v2::import(&catalog, &config.data_dir).await {
        Ok(Some(report)) if report.recordings > 0 || report.share_secret => tracing::info!(
            recordings = report.recordings,
            comments = report.comments,
            keys = report.keys,
            share_secret = report.share_secret,
            "the v2 data directory was brought into the catalog"
        ),
        Ok(_) => {}
        Err(e) => return Err(std::io::Error::other(e)),
    }
    tracing::info!(database = %catalog.shown(), "catalog open");
    Ok(catalog)
}

/// `--store`: the bucket's mirror; `--public-media-url` needs one.
fn open_mirror(
    config: &Config,
    catalog: &Catalog,
    metrics: &Metrics,
) -> std::io::Result<Option<Arc<Mirror>>> {
    match &config.store {
        Some(url) => Ok(Some(Mirror::open(
            url,
            &config.data_dir,
            config.public_media_url.is_some(),
            catalog.clone(),
            metrics.clone(),
        )?)),
        None if config.public_media_url.is_some() => Err(std::io::Error::other(
            "--public-media-url needs --store (the CDN serves the bucket)",
        )),
        None => Ok(None),
    }
}
