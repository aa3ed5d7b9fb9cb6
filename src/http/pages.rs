//! The record, watch and library pages and their assets, served from the
//! player directory (`--player-dir`): `pages/*.html`, `public/*` under
//! `/assets/`, and hls.js and dash.js from npm under `/assets/vendor/`, so
//! nothing is loaded from a CDN.

use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::error::Result;
use super::AppState;
use base::Error;

/// The players from npm inside the player directory, once `npm ci` has
/// run there: (URL, file).
const VENDOR: [(&str, &str); 2] = [
    (
        "/assets/vendor/hls.min.js",
        "node_modules/hls.js/dist/hls.min.js",
    ),
    (
        "/assets/vendor/dash.all.min.js",
        "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|s, r| page(s, r, "index.html")))
        .route("/record", get(|s, r| page(s, r, "record.html")))
        .route("/watch/{id}", get(|s, r| page(s, r, "watch.html")))
        .route(VENDOR[0].0, get(|s, r| vendor(s, r, VENDOR[0].1)))
        .route(VENDOR[1].0, get(|s, r| vendor(s, r, VENDOR[1].1)))
        .route("/assets/{*path}", get(asset))
}

fn player_dir(state: &AppState) -> PathBuf {
    state.config.player_dir.clone()
}

async fn page(State(state): State<AppState>, request: Request, name: &str) -> Result<Response> {
    let path = player_dir(&state).join("pages").join(name);
    serve(
        ServeFile::new(&path),
        request,
        &path,
        "the pages are missing: start segcast from its repository or set --player-dir",
    )
    .await
}

async fn vendor(State(state): State<AppState>, request: Request, file: &str) -> Result<Response> {
    let path = player_dir(&state).join(file);
    serve(
        ServeFile::new(&path),
        request,
        &path,
        "the players are not installed: run `npm ci --prefix player` (scripts/setup does)",
    )
    .await
}

async fn asset(State(state): State<AppState>, request: Request) -> Result<Response> {
    // ServeDir resolves the rest of the path below `public/` and refuses
    // `..` and absolute components.
    let dir = player_dir(&state).join("public");
    let (mut parts, body) = request.into_parts();
    let rest = parts.uri.path().trim_start_matches("/assets").to_string();
    parts.uri = rest
        .parse()
        .map_err(|_| Error::NotFound("no such asset".into()))?;
    serve(
        ServeDir::new(&dir),
        Request::from_parts(parts, body),
        &dir,
        "no such asset",
    )
    .await
}

async fn serve<S>(service: S, request: Request, path: &Path, missing: &str) -> Result<Response>
where
    S: tower::Service<
        Request,
        Response = Response<tower_http::services::fs::ServeFileSystemResponseBody>,
    >,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut response = service
        .oneshot(request)
        .await
        .map_err(|e| Error::internal("serving a page", e))?;
    if response.status() == StatusCode::NOT_FOUND {
        tracing::debug!(path = %path.display(), "page or asset not found");
        return Err(Error::NotFound(missing.into()).into());
    }
    // Pages change with deployments: revalidate (ETag / Last-Modified).
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response.map(axum::body::Body::new))
}
