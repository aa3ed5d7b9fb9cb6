//! The HTTP surface (docs/http-contract.md): one router per resource,
//! merged here, over a shared [`AppState`].

mod comments;
pub mod digest;
pub mod imports;
mod live;
mod media;
mod pages;
pub mod recordings;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::trace::TraceLayer;

use crate::comments::hub::CommentHub;
use crate::error::Error;
use crate::ingest::library::Library;

#[derive(Clone)]
pub struct AppState {
    pub library: Arc<Library>,
    pub comments: Arc<CommentHub>,
}

impl AppState {
    pub fn new(library: Arc<Library>) -> Self {
        let comments = CommentHub::new(library.store().clone(), library.config());
        Self {
            library,
            comments: Arc::new(comments),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(recordings::router())
        .merge(comments::router())
        .merge(imports::router())
        .merge(media::router())
        .merge(pages::router())
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> Error {
    Error::NotFound("no such resource".into())
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({ "error": "method not allowed here" })),
    )
}
