//! Wiring: every part of a server made from its [`Config`] and put
//! together — the bucket mirror, the library of recording tasks, the
//! watchers, the HTTP app. The one place that knows all the layers.

use std::sync::Arc;

use base::metrics::Metrics;
use pipeline::Library;
use store::mirror::Mirror;

use crate::config::Config;
use crate::http;

/// A built server: its routes, its library, and `/metrics` alone (for
/// `--metrics-listen`).
pub struct App {
    pub router: axum::Router,
    pub library: Arc<Library>,
    pub metrics_router: axum::Router,
}

/// Opens the library under `config.data_dir`, starts its watchers (the
/// inbox, recordings imported by the CLI) and the bucket mirror, and
/// builds the HTTP app.
pub async fn build(config: Config) -> std::io::Result<App> {
    store::staging::clean(&config.data_dir);
    let metrics = Metrics::new();
    let objects = open_mirror(&config, &metrics)?;
    let settings = Arc::new(pipeline::Settings::from(&config));
    let library = Library::open(settings, metrics, objects).await?;
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
    let state = http::AppState::new(Arc::new(config), library.clone())?;
    Ok(App {
        metrics_router: http::metrics::standalone(state.clone()),
        router: http::router(state),
        library,
    })
}

/// `--store`: the bucket's mirror; `--public-media-url` needs one.
fn open_mirror(config: &Config, metrics: &Metrics) -> std::io::Result<Option<Arc<Mirror>>> {
    match &config.store {
        Some(url) => Ok(Some(Mirror::open(
            url,
            &config.data_dir,
            config.public_media_url.is_some(),
            metrics.clone(),
        )?)),
        None if config.public_media_url.is_some() => Err(std::io::Error::other(
            "--public-media-url needs --store (the CDN serves the bucket)",
        )),
        None => Ok(None),
    }
}
