//! `/api/recordings…`: create a recording, upload its chunks, finish it,
//! read its status, delete it (docs/http-contract.md, "Recordings").

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tower_http::timeout::TimeoutError;

use super::access::{Viewer, TOKEN_PARAM};
use super::error::Result;
use super::AppState;
use base::Error;
use pipeline::ingest::library::MAX_PAGE;
use pipeline::RecordingStatus;
use pipeline::{Page, Protection};
use store::PutOutcome;

/// Largest JSON body accepted by the small JSON endpoints.
const MAX_JSON_BYTES: usize = 64 * 1024;
/// Of a refused body, at most this much more is read (see [`drain`]).
const DRAIN_MAX_BYTES: usize = 8 << 20;
const DRAIN_MAX: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/recordings", post(create).get(list))
        .route("/api/recordings/{id}", get(status).delete(delete))
        .route("/api/recordings/{id}/chunks/{seq}", put(put_chunk))
        .route("/api/recordings/{id}/finish", post(finish))
}

#[derive(Debug, Default, Deserialize)]
struct CreateRequest {
    title: Option<String>,
    mime: Option<String>,
    /// `"public"` (default) or `"private"`.
    access: Option<base::access::Access>,
    /// Default: `--encrypt`.
    encrypt: Option<bool>,
}

/// A new recording or import: its status and the token that lets its
/// creator upload to it and delete it.
#[derive(Serialize)]
pub(super) struct Created {
    #[serde(flatten)]
    status: RecordingStatus,
    upload_token: String,
}

impl Created {
    /// `201 Created` with the recording's URL in `Location`.
    pub(super) fn response((status, upload_token): (RecordingStatus, String)) -> Response {
        let location = format!("/api/recordings/{}", status.id);
        (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(Self {
                status,
                upload_token,
            }),
        )
            .into_response()
    }
}

/// With `--publish-key` set, creating anything takes that key as bearer
/// token (compared in constant time).
pub(super) fn check_publish_key(state: &AppState, headers: &HeaderMap, what: &str) -> Result<()> {
    match &state.config.publish_key {
        Some(_) if !holds_publish_key(state, headers) => Err(Error::Unauthenticated(format!(
            "a valid publish key is required to create {what}"
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Whether the request carries the configured publish key.
/// The recording's owner (its upload token) or the operator (the publish
/// key, which may act on any recording): 401/403 otherwise.
pub(super) fn authorize_owner(
    state: &AppState,
    headers: &HeaderMap,
    recording: &pipeline::Recording,
) -> Result<()> {
    if holds_publish_key(state, headers) {
        return Ok(());
    }
    Ok(recording.authorize(bearer(headers))?)
}

pub(super) fn holds_publish_key(state: &AppState, headers: &HeaderMap) -> bool {
    let sent = bearer(headers).unwrap_or_default();
    state
        .config
        .publish_key
        .as_ref()
        .is_some_and(|key| bool::from(sent.as_bytes().ct_eq(key.as_bytes())))
}

async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    check_publish_key(&state, &headers, "recordings")?;
    let idle = body_idle(&state);
    let request: CreateRequest = read_json(body, idle).await?.unwrap_or_default();
    let protection = Protection {
        access: request.access.unwrap_or_default(),
        encrypt: request.encrypt,
    };
    let created = state
        .library
        .create(request.title, request.mime, protection)
        .await?;
    Ok(Created::response(created))
}

/// `?limit=&before=`: one page, newest first.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// The library, newest first; private recordings are listed to the
/// publish key only. Still one JSON array: with `limit`, a
/// `Link: <…?limit=N&before=ID>; rel="next"` header says where the next
/// page starts, and its absence that this was the last.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response> {
    let limit = query.limit.as_deref().map(parse_limit).transpose()?;
    let page = Page {
        limit,
        before: query.before.as_deref(),
        private: holds_publish_key(&state, &headers),
    };
    let (listed, more) = match state.config.node_url {
        Some(_) => state.library.list_cluster_page(page).await?,
        None => state.library.list_page(page)?,
    };
    let next = match (limit, listed.last()) {
        (Some(limit), Some(last)) if more => Some(format!(
            "</api/recordings?limit={limit}&before={}>; rel=\"next\"",
            last.id
        )),
        _ => None,
    };
    let body: Vec<RecordingStatus> = listed
        .into_iter()
        .map(|r| super::cdn::status_urls(&state, r))
        .collect();
    let mut response = Json(body).into_response();
    if let Some(link) = next.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

fn parse_limit(text: &str) -> Result<usize, Error> {
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "limit must be a whole number from 1 to {MAX_PAGE}, got '{text}'"
            ))
        })
}

/// A viewer who came with `?token=` gets URLs that carry it; a finished
/// public recording's media URLs may point at the CDN (`--public-media-url`).
async fn status(State(state): State<AppState>, viewer: Viewer) -> Json<RecordingStatus> {
    let status = super::cdn::status_urls(&state, viewer.recording.status());
    Json(match &viewer.carried {
        Some(token) => status.with_query(&format!("{TOKEN_PARAM}={token}")),
        None => status,
    })
}

async fn put_chunk(
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let recording = state.library.get(&id)?;
    recording.authorize(bearer(&headers))?;
    let config = &state.config;
    let seq = media::upload::parse_seq(&seq, config.max_chunks)?;
    let bytes = read_limited(body, &headers, config.max_chunk_bytes, body_idle(&state)).await?;
    if let Some(digest) = headers.get("content-digest") {
        let digest = digest
            .to_str()
            .map_err(|_| Error::Invalid("Content-Digest is not ASCII".into()))?;
        media::upload::verify(digest, &bytes)?;
    }
    let (outcome, receipt) = recording.put(seq, bytes.clone()).await?;
    in_bucket_too(&state, &id, &recording, seq, bytes).await?;
    let status = match outcome {
        PutOutcome::Stored => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(receipt)).into_response())
}

/// In a cluster with `--store`, a chunk is acknowledged only once it is in
/// the bucket as well (`store::mirror::chunks`): stored here but not there,
/// it is `503` and the uploader's retry (answered from disk as a duplicate)
/// uploads it again.
async fn in_bucket_too(
    state: &AppState,
    id: &str,
    recording: &pipeline::Recording,
    seq: u64,
    bytes: bytes::Bytes,
) -> Result<()> {
    let Some(mirror) = state.library.objects() else {
        return Ok(());
    };
    if state.config.node_url.is_none() || !mirror.mirrors(recording.access()) {
        return Ok(());
    }
    mirror.put_chunk(id, seq, bytes).await.map_err(|error| {
        tracing::warn!(%id, seq, %error, "--store: a chunk is not in the bucket; not acknowledged");
        Error::Busy {
            message: format!(
                "chunk {seq} is stored on this node but not yet in the bucket (--store); retry"
            ),
            retry_after_s: store::catalog::DATABASE_RETRY_AFTER_S,
        }
    })?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct FinishRequest {
    chunks: u64,
}

async fn finish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let recording = state.library.get(&id)?;
    recording.authorize(bearer(&headers))?;
    let request: FinishRequest = read_json(body, body_idle(&state))
        .await?
        .ok_or_else(|| Error::Invalid("body must be JSON like {\"chunks\": 12}".into()))?;
    let status = recording.finish(request.chunks).await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let recording = state.library.get(&id)?;
    // The publish key is the operator's: it may delete any recording.
    authorize_owner(&state, &headers, &recording)?;
    state.library.delete(&id).await?;
    state.comments.forget(&id).await;
    state.file_cache.forget_dir(&state.library.store().dir(&id));
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn body_idle(state: &AppState) -> Duration {
    Duration::from_secs(state.config.body_timeout_s)
}

/// The token of an `Authorization: Bearer <token>` header.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Reads a body of at most `limit` bytes. axum's `DefaultBodyLimit` does not
/// apply to a raw `Body`, so the limit is enforced here: by Content-Length
/// up front, and while reading for bodies that do not declare one.
async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    idle: Duration,
) -> Result<Bytes> {
    let too_large = || Error::TooLarge(format!("body is over the limit of {limit} bytes"));
    // A body that stalls is cut off (the server holds every request body
    // to `--body-timeout-s`, src/http/connection.rs), so slow clients
    // cannot hold connections and their buffers open indefinitely.
    let mut stream = body.into_data_stream();
    if declared_length(headers).is_some_and(|len| len > limit) {
        if !headers.contains_key(header::EXPECT) {
            drain(&mut stream).await;
        }
        return Err(too_large().into());
    }
    let mut received = bytes::BytesMut::new();
    while let Some(frame) = stream.next().await {
        let data = frame.map_err(|e| body_error(&e, idle))?;
        if (received.len() + data.len()) as u64 > limit {
            drain(&mut stream).await;
            return Err(too_large().into());
        }
        received.extend_from_slice(&data);
    }
    Ok(received.freeze())
}

/// What a failed body read means for the client: it stalled (408) or was
/// cut short (400). Nothing of it was kept.
pub(super) fn body_error(err: &axum::Error, idle: Duration) -> Error {
    if caused_by::<TimeoutError>(err) {
        Error::Timeout(format!(
            "the request body stalled for {} s; nothing was stored",
            idle.as_secs()
        ))
    } else {
        Error::Invalid(format!("could not read the request body: {err}"))
    }
}

/// Reads and drops a little more of a refused body before the error is
/// sent. hyper closes a connection whose request body was left unread, and
/// closing with unread bytes makes the kernel reset it: a client still
/// sending would see "connection reset" instead of the 413 and its message
/// (and an upload client would retry it as a network error). Written here
/// because hyper has no such "lingering close" (nginx's term); bounded in
/// bytes and time, so a refused body costs little.
pub(super) async fn drain<S, E>(stream: &mut S)
where
    S: futures_util::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + DRAIN_MAX;
    let mut drained = 0;
    while drained < DRAIN_MAX_BYTES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(data))) => drained += data.len(),
            _ => return,
        }
    }
}

/// The request's Content-Length, when it declares a valid one.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

pub(super) fn caused_by<E: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A JSON body, or `None` when the body is empty.
pub(super) async fn read_json<T: DeserializeOwned>(
    body: Body,
    idle: Duration,
) -> Result<Option<T>> {
    let bytes = read_limited(body, &HeaderMap::new(), MAX_JSON_BYTES as u64, idle).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("invalid JSON body: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
