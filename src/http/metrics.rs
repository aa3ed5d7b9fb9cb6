//! `GET /metrics` (contract section "Operations"; docs/api.md "Metrics"),
//! and the layer that counts every request by its route template.

use std::net::SocketAddr;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::config::Config;
use store::State as RecordingState;

/// The exposition's media type (OpenMetrics 1.0 text, which Prometheus
/// asks for and reads natively).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` on the main listener, unless `--metrics-listen` puts it apart.
pub fn router(config: &Config) -> Router<AppState> {
    match config.metrics_listen {
        Some(_) => Router::new(),
        None => Router::new().route("/metrics", get(scrape)),
    }
}

/// `/metrics` alone, for its own listener.
pub fn standalone(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// Serves `app` on `addr` until the task is aborted.
pub async fn serve_apart(
    addr: SocketAddr,
    app: Router,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for metrics: {e}"),
        )
    })?;
    tracing::info!(%addr, "serving /metrics");
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    }))
}

async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    // Gauges of what is, read when asked rather than kept in step.
    let live = state
        .library
        .list()
        .iter()
        .filter(|r| r.source == "recording" && r.state == RecordingState::Recording)
        .count();
    metrics.live_recordings.set(live as i64);
    let cached = state.file_cache.weighted_bytes();
    metrics
        .media_cache_bytes
        .set(i64::try_from(cached).unwrap_or(i64::MAX));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()).into_response()
}

/// Counts a request under its route template (never the raw path: ids
/// would make a series per recording) once its answer is ready.
pub async fn count_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    state.metrics.http_request(
        route,
        base::metrics::Method::from_name(method.as_str()),
        response.status().as_u16(),
    );
    response
}
