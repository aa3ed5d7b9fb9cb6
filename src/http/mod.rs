//! The HTTP surface (docs/http-contract.md): one router per resource,
//! merged here, over a shared [`AppState`].

mod access;
mod cdn;
pub mod clients;
mod comments;
mod compress;
pub mod connection;
pub mod error;
mod file_cache;
mod forward;
mod forward_socket;
mod imports;
mod live;
mod media;
pub mod metrics;
mod open_segment;
mod pages;
mod private;
mod recordings;
pub mod sendfile;
pub mod server;
pub mod tls;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::trace::TraceLayer;

use base::metrics::Metrics;
use base::Error;
use pipeline::comments::hub::CommentHub;
use pipeline::Library;
use store::share::{configured_secret, ShareSigner};

use crate::config::Config;

/// What every handler shares. Cloned for each extractor and layer of every
/// request, so it is one `Arc` (one reference count) rather than the dozen
/// `Arc`s its parts hold: cloning those showed as 7 % of the CPU of serving
/// a playlist under load (perf, docs/benchmarks.md "Serving").
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    /// The server's settings, as given.
    pub config: Arc<Config>,
    pub library: Arc<Library>,
    /// Per-client slots for long-lived requests (`--max-waiting-per-client`):
    /// see [`clients::ClientSlots`].
    pub client_slots: Arc<clients::ClientSlots>,
    pub comments: Arc<CommentHub>,
    /// Finished media files in memory (`--media-cache-mb`).
    pub file_cache: file_cache::FileCache,
    /// Signs and checks share tokens (`--token-secret`, or the catalog's).
    pub signer: Arc<ShareSigner>,
    /// The server's counters (`GET /metrics`).
    pub metrics: Metrics,
    /// Reaches the other nodes of a cluster (see `forward`).
    pub peers: reqwest::Client,
}

impl AppState {
    pub async fn new(config: Arc<Config>, library: Arc<Library>) -> std::io::Result<Self> {
        let metrics = library.metrics().clone();
        let comments = CommentHub::new(library.catalog().clone(), (&*config).into())
            .with_posted_counter(metrics.comments_posted.clone());
        let waiting = config.max_waiting_per_client;
        let file_cache = file_cache::FileCache::new(config.media_cache_mb << 20);
        let secret = match config.token_secret.as_deref() {
            Some(secret) => configured_secret(secret)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            None => library
                .catalog()
                .share_secret()
                .await
                .map_err(|e| std::io::Error::other(base::error::chain(&e)))?,
        };
        Ok(Self(Arc::new(AppStateInner {
            signer: Arc::new(ShareSigner::new(secret)),
            config,
            library,
            client_slots: Arc::new(clients::ClientSlots::new(waiting)),
            comments: Arc::new(comments),
            file_cache,
            metrics,
            peers: forward::peer_client(),
        })))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(recordings::router())
        .merge(comments::router())
        .merge(imports::router())
        .merge(private::router())
        .merge(pages::router())
        .route("/healthz", get(healthz))
        .merge(metrics::router(&state.config))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // JSON answers (a recording's status, the library, comments) are
        // made per request: gzipped on the way out when the client asks.
        // Playlists and manifests are not here (media has its own route
        // and a compressed copy per version, see `compress`).
        .layer(
            tower_http::compression::CompressionLayer::new()
                .compress_when(compress::json_worth_compressing()),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_request,
        ))
        // The path only: a query may hold a share token, which must never
        // reach a log.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
            },
        ))
        // Media after the layers: its handler does their work itself,
        // cheaper (see `media::serve`).
        .merge(media::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::to_owner,
        ))
        .with_state(state)
}

/// `200` with the node while the catalog answers; `503` (the error body,
/// `Retry-After`) while it does not: a balancer takes the node out.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Response, error::ApiError> {
    state.library.catalog().check().await?;
    let node = state.config.node_url.as_deref().unwrap_or("local");
    Ok(Json(serde_json::json!({ "status": "ok", "node": node })).into_response())
}

async fn not_found() -> error::ApiError {
    Error::NotFound("no such resource".into()).into()
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({ "error": "method not allowed here" })),
    )
}
