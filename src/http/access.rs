//! The one place that decides who may read a recording (docs/http-contract.md,
//! "Private recordings, share links, encryption, TLS").
//!
//! [`Viewer`] is an extractor: a handler that takes one only runs for a
//! request allowed to watch the recording named by the route's `{id}`.
//! The media handler asks [`Viewer::of`] first and has [`finish`] complete
//! its answer: a playlist or manifest fetched with `?token=` lists every
//! URI with that token (so ffmpeg and VLC, which send no headers of their
//! own, play a shared link), and a private recording's media is never
//! `public` to shared caches.
//!
//! Credentials, in order: the recording's upload token or the publish key
//! as `Authorization: Bearer` (the owner); a share token in `?token=` or as
//! Bearer. A public recording needs none and ignores any. A private one
//! answers `401` with none and `403` when what was given opens nothing.

use axum::body::Body;
use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use http_body_util::BodyExt;
use serde::Deserialize;

use super::error::{ApiError, Result};
use super::recordings::{bearer, holds_publish_key};
use super::AppState;
use base::access::Access;
use base::clock::unix_s;
use base::Error;
use media::tokenize;
use pipeline::Recording;
use sha2::{Digest, Sha256};
use store::share::{looks_like_share_token, TokenError};
use store::RecordingMeta;
use subtle::ConstantTimeEq;

/// The query parameter that carries a share token.
pub const TOKEN_PARAM: &str = "token";
/// Playlists and manifests are small; anything larger is passed as is.
const REWRITE_MAX_BYTES: usize = 8 << 20;

/// Who is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A public recording: anyone.
    Anyone,
    /// A share token's holder.
    Viewer,
    /// The upload token or the publish key.
    Owner,
}

/// A request allowed to read the recording of the route's `{id}`.
pub struct Viewer {
    pub id: String,
    pub recording: Recording,
    pub role: Role,
    /// A valid share token from the URL's query: carried into the URIs of
    /// playlists and the status' URLs.
    pub carried: Option<String>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound("no such resource".into()))?;
        let id = params
            .iter()
            .find(|(name, _)| *name == "id")
            .map(|(_, value)| value.to_string())
            .ok_or_else(|| Error::NotFound("no such resource".into()))?;
        Self::of(state, id, &parts.headers, &parts.uri)
    }
}

impl Viewer {
    /// Who reads recording `id` with these headers and URL, or why they may not.
    pub fn of(
        state: &AppState,
        id: String,
        headers: &axum::http::HeaderMap,
        uri: &axum::http::Uri,
    ) -> Result<Self> {
        let recording = state.library.get(&id)?;
        let (role, carried) = role_for(state, &recording, &id, headers, uri)?;
        Ok(Self {
            id,
            recording,
            role,
            carried,
        })
    }
}

/// What the access rule reads of a recording: a running one, or its
/// catalog row (a node answering for a recording whose node is gone).
pub trait Guarded {
    fn access(&self) -> Access;
    fn is_upload_token(&self, token: &str) -> bool;
}

impl Guarded for Recording {
    fn access(&self) -> Access {
        Recording::access(self)
    }

    fn is_upload_token(&self, token: &str) -> bool {
        Recording::is_upload_token(self, token)
    }
}

impl Guarded for RecordingMeta {
    fn access(&self) -> Access {
        self.access
    }

    /// Constant time, as the running recording's check is.
    fn is_upload_token(&self, token: &str) -> bool {
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        bool::from(hex.as_bytes().ct_eq(self.token_sha256.as_bytes()))
    }
}

/// The role of a request for recording `id` with these headers and URL
/// (and the share token it carries), or why it may not read it.
pub fn role_for(
    state: &AppState,
    recording: &dyn Guarded,
    id: &str,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
) -> Result<(Role, Option<String>)> {
    let query = Query::<TokenQuery>::try_from_uri(uri)
        .map(|q| q.0.token)
        .unwrap_or_default();
    decide(state, recording, id, headers, query)
}

/// The access rule itself (see the module doc).
fn decide(
    state: &AppState,
    recording: &dyn Guarded,
    id: &str,
    headers: &axum::http::HeaderMap,
    query: Option<String>,
) -> Result<(Role, Option<String>)> {
    if !recording.access().is_private() {
        return Ok((Role::Anyone, None));
    }
    let sent = bearer(headers).filter(|t| !t.is_empty());
    if let Some(token) = sent {
        if holds_publish_key(state, headers) || recording.is_upload_token(token) {
            return Ok((Role::Owner, None));
        }
    }
    let check = |token: &str| {
        state
            .signer
            .verify(id, token, unix_s())
            .map_err(|e| match e {
                TokenError::Expired => Error::Denied("this share link expired".into()),
                TokenError::Invalid => {
                    Error::Denied("the token does not open this recording".into())
                }
            })
    };
    if let Some(token) = query.filter(|t| !t.is_empty()) {
        check(&token)?;
        return Ok((Role::Viewer, Some(token)));
    }
    match sent {
        Some(token) if looks_like_share_token(token) => {
            check(token)?;
            Ok((Role::Viewer, None))
        }
        Some(_) => Err(Error::Denied(
            "the bearer token is neither this recording's upload token nor a share token for it"
                .into(),
        ).into()),
        None => Err(Error::Unauthenticated(
            "this recording is private: a share token is needed (?token=… or Authorization: Bearer …)"
                .into(),
        ).into()),
    }
}

/// What a `/media/{id}/…` answer becomes for this viewer: private
/// caching for private media, and the share token carried into the URIs of
/// a playlist or manifest.
pub async fn finish(viewer: &Viewer, mut response: Response) -> Result<Response> {
    if viewer.role == Role::Anyone {
        return Ok(response);
    }
    privatize_cache(&mut response);
    let Some(token) = &viewer.carried else {
        return Ok(response);
    };
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let rewrite: fn(&str, &str, &str) -> String = match content_type {
        "application/vnd.apple.mpegurl" => tokenize::hls_with_param,
        "application/dash+xml" => tokenize::mpd_with_param,
        _ => return Ok(response),
    };
    if !response.status().is_success() {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = http_body_util::Limited::new(body, REWRITE_MAX_BYTES)
        .collect()
        .await
        .map_err(|e| Error::internal("reading a playlist", e))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let rewritten = rewrite(&text, TOKEN_PARAM, token);
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(rewritten)))
}

/// A private recording's answers may be kept by the viewer's own cache
/// only: a shared cache must never hand them to someone without a token.
fn privatize_cache(response: &mut Response) {
    let Some(value) = response.headers().get(header::CACHE_CONTROL) else {
        return;
    };
    let Ok(text) = value.to_str() else { return };
    let private = match text.strip_prefix("public") {
        Some(rest) => format!("private{rest}"),
        None if text.contains("private") || text.contains("no-store") => return,
        None => format!("private, {text}"),
    };
    if let Ok(value) = HeaderValue::from_str(&private) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalog_row_knows_its_upload_token_as_the_running_recording_does() {
        let (meta, token) =
            pipeline::ingest::library::new_meta(None, None, "Recording", store::State::Recording);
        assert!(Guarded::is_upload_token(&meta, &token));
        assert!(!Guarded::is_upload_token(&meta, "not the token"));
        assert!(!Guarded::is_upload_token(&meta, ""));
    }

    #[test]
    fn private_answers_are_never_public_in_caches() {
        for (before, after) in [
            (
                "public, max-age=31536000, immutable",
                "private, max-age=31536000, immutable",
            ),
            ("no-cache", "private, no-cache"),
            ("private, no-store", "private, no-store"),
        ] {
            let mut response = Response::new(Body::empty());
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(before));
            privatize_cache(&mut response);
            assert_eq!(response.headers()[header::CACHE_CONTROL], after);
        }
    }
}
