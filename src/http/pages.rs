//! The record, watch and library pages and their assets: `pages/*.html` at
//! `/`, `/record` and `/watch/{id}`, `public/*` under `/assets/`, and hls.js
//! and dash.js from npm under `/assets/vendor/`, so nothing is loaded from a
//! CDN. They are inside the binary (`build.rs`), so `segcast serve` works
//! from any directory; `--player-dir` serves a directory of the same shape
//! instead, for working on the pages without a rebuild.

use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::error::Result;
use super::AppState;
use base::Error;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_player.rs"));
}

/// The players from npm: (URL, path under the embedded files, path under
/// a `--player-dir` once `npm ci` has run there).
const VENDOR: [(&str, &str, &str); 2] = [
    (
        "/assets/vendor/hls.min.js",
        "vendor/hls.min.js",
        "node_modules/hls.js/dist/hls.min.js",
    ),
    (
        "/assets/vendor/dash.all.min.js",
        "vendor/dash.all.min.js",
        "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|s, r| page(s, r, "index.html")))
        .route("/record", get(|s, r| page(s, r, "record.html")))
        .route("/watch/{id}", get(|s, r| page(s, r, "watch.html")))
        .route(VENDOR[0].0, get(|s, r| vendor(s, r, &VENDOR[0])))
        .route(VENDOR[1].0, get(|s, r| vendor(s, r, &VENDOR[1])))
        .route("/assets/{*path}", get(asset))
}

async fn page(State(state): State<AppState>, request: Request, name: &str) -> Result<Response> {
    let Some(dir) = &state.config.player_dir else {
        return embedded(&request, &format!("pages/{name}"));
    };
    let path = dir.join("pages").join(name);
    let missing = "the pages are missing from --player-dir (pages/*.html)";
    serve(ServeFile::new(&path), request, &path, missing).await
}

async fn vendor(
    State(state): State<AppState>,
    request: Request,
    &(_, inside, below_dir): &(&str, &str, &str),
) -> Result<Response> {
    let Some(dir) = &state.config.player_dir else {
        return embedded(&request, inside);
    };
    let path = dir.join(below_dir);
    let missing = "the players are not installed in --player-dir: run `npm ci` there";
    serve(ServeFile::new(&path), request, &path, missing).await
}

async fn asset(State(state): State<AppState>, request: Request) -> Result<Response> {
    let rest = request
        .uri()
        .path()
        .trim_start_matches("/assets")
        .to_string();
    let Some(dir) = &state.config.player_dir else {
        return embedded(&request, &embedded_asset(&rest)?);
    };
    // ServeDir resolves the rest of the path below `public/` and refuses
    // `..` and absolute components.
    let dir: PathBuf = dir.join("public");
    let (mut parts, body) = request.into_parts();
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

/// `public/…` for an `/assets/…` path, after percent-decoding, refusing
/// any `..` or empty segment (the embedded names have neither).
fn embedded_asset(rest: &str) -> Result<String> {
    let no_such = || Error::NotFound("no such asset".into());
    let decoded = percent_decode(rest).ok_or_else(no_such)?;
    let segments: Vec<&str> = decoded.trim_start_matches('/').split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('\\'))
    {
        return Err(no_such().into());
    }
    Ok(format!("public/{}", segments.join("/")))
}

fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One embedded file, with its ETag; `304` when the browser has it.
fn embedded(request: &Request, name: &str) -> Result<Response> {
    let Some(&(_, bytes, etag)) = embedded::FILES.iter().find(|(n, _, _)| *n == name) else {
        return Err(Error::NotFound(format!("no such page or asset: {name}")).into());
    };
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_static(etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if if_none_match(request.headers(), etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let content_type = HeaderValue::from_str(mime.essence_str())
        .map_err(|e| Error::internal("content type", e))?;
    headers.insert(header::CONTENT_TYPE, content_type);
    Ok((headers, bytes).into_response())
}

/// RFC 9110 §13.1.2: the list names this ETag (weakly), or is `*`.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_player_is_embedded() {
        let names: Vec<&str> = embedded::FILES.iter().map(|(n, _, _)| *n).collect();
        for name in [
            "pages/index.html",
            "pages/record.html",
            "pages/watch.html",
            "public/watch.js",
            "vendor/hls.min.js",
            "vendor/dash.all.min.js",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let hls = embedded::FILES
            .iter()
            .find(|(n, _, _)| *n == "vendor/hls.min.js");
        assert!(
            hls.unwrap().1.len() > 100_000,
            "the real hls.js, not a stub"
        );
    }

    #[test]
    fn asset_paths_stay_below_public() {
        assert_eq!(embedded_asset("/watch.js").unwrap(), "public/watch.js");
        for bad in [
            "/../pages/index.html",
            "/%2e%2e/x",
            "/a//b",
            "/..%2Fx",
            "/%zz",
            "/a\\b",
        ] {
            assert!(embedded_asset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&headers, "\"b\""));
        assert!(!if_none_match(&headers, "\"c\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"c\""));
    }
}
