//! `POST /api/recordings/{id}/share` (signed, expiring share links) and
//! `GET /media/{id}/key` (the AES-128 key of an encrypted recording,
//! RFC 8216 §5.2), docs/http-contract.md "Private recordings, share links,
//! encryption, TLS".

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};

use super::access::{Viewer, TOKEN_PARAM};
use super::error::Result;
use super::recordings::{authorize_owner, body_idle, read_json};
use super::AppState;
use crate::config::DEFAULT_SHARE_EXPIRY_S;
use base::clock::unix_s;
use base::Error;
use media::layout::KEY_FILE;

pub fn router() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION]);
    Router::new()
        .route("/api/recordings/{id}/share", post(share))
        .route(&format!("/media/{{id}}/{KEY_FILE}"), get(key).layer(cors))
}

#[derive(Debug, Default, Deserialize)]
struct ShareRequest {
    expires_in_s: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Share {
    token: String,
    /// RFC 3339.
    expires_at: String,
    watch: String,
    hls: String,
    dash: Option<String>,
}

/// The owner (upload token or publish key) makes a link that opens the
/// recording until it expires.
async fn share(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let recording = state.library.get(&id)?;
    authorize_owner(&state, &headers, &recording)?;
    let request: ShareRequest = read_json(body, body_idle(&state))
        .await?
        .unwrap_or_default();
    let max = state.config.share_max_expiry_s;
    let expires_in_s = request
        .expires_in_s
        .unwrap_or(DEFAULT_SHARE_EXPIRY_S.min(max));
    if expires_in_s == 0 || expires_in_s > max {
        return Err(
            Error::Invalid(format!("expires_in_s must be between 1 and {max} seconds")).into(),
        );
    }
    let expires_at_s = unix_s() + expires_in_s;
    let token = state.signer.sign(&id, expires_at_s);
    let status = recording
        .status()
        .with_query(&format!("{TOKEN_PARAM}={token}"));
    let expires_at = time::OffsetDateTime::from_unix_timestamp(expires_at_s as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| Error::Invalid("expires_in_s is too far in the future".into()))?;
    tracing::info!(%id, expires_in_s, "share link made");
    let body = Share {
        token,
        expires_at,
        watch: status.watch,
        hls: status.hls,
        dash: status.dash,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The content key, only for whoever may watch, never kept by any cache.
async fn key(viewer: Viewer) -> Result<Response> {
    let not_encrypted = || Error::NotFound(format!("recording '{}' is not encrypted", viewer.id));
    if !viewer.recording.encrypted() {
        return Err(not_encrypted().into());
    }
    let key = viewer
        .recording
        .content_key()
        .ok_or_else(|| Error::Unavailable(format!("the key of '{}' cannot be read", viewer.id)))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        key.bytes().to_vec(),
    )
        .into_response())
}
