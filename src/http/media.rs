//! `/media/{id}/{file}`: playlists, init and media segments, and the
//! original upload (docs/http-contract.md, "Media").
//!
//! Only names this server writes are served: a URL is parsed into a
//! [`MediaFile`] first ([`media::layout`], with its media type and cache
//! policy), so no request path ever reaches the file system; byte ranges
//! (RFC 9110 §14) come from tower-http's `ServeFile`.
//!
//! What live viewers fetch (playlists, parts, the newest segments) comes
//! from the recording's edge in memory ([`super::live`]); the rest from
//! disk, whole files in one trip to the blocking pool with `ETag` and
//! `Last-Modified` (RFC 9110 §8.8), ranges through `ServeFile`.

use std::path::PathBuf;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tracing::Instrument;

use super::access::{self, Viewer};
use super::cdn;
use super::clients::ClientAddr;
use super::error::Result;
use super::file_cache::CachedFile;
use super::live::{self, BlockingQuery};
use super::open_segment::open_segment;
use super::AppState;
use base::zero_copy;
use base::Error;
use media::layout::{CachePolicy, MediaFile, TrackFiles, TIME_PATH};
use pipeline::Recording;

/// Files up to this size are read whole in one blocking-pool trip; larger
/// ones (an imported original) stream through `ServeFile`.
const READ_WHOLE_MAX_BYTES: u64 = 16 << 20;

/// The route template of media, as `/metrics` counts it.
const MEDIA_ROUTE: &str = "/media/{id}/{file}";

/// The media routes. Mounted apart from the layers of the other routes
/// (request count, trace span, CORS, access, CDN redirect): [`serve`] does
/// all of that itself (see there why).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(MEDIA_ROUTE, get(serve).options(preflight))
        .route(TIME_PATH, get(time).options(preflight))
}

/// Media is readable from any origin (docs/http-contract.md, "Media"): the
/// watch page of another site, or a player on a CDN's domain.
///
/// Written here rather than with tower-http's `CorsLayer`: axum clones a
/// route's layers for every request, and the layer's header lists made that
/// clone one of the largest costs of a small file (docs/benchmarks.md,
/// "Serving"). With `*` and no credentials the rules are a few constants.
fn allow_any_origin(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("content-length, content-range, etag"),
    );
}

/// A CORS preflight (Fetch §3.2.2): what a cross-origin `Range` or
/// `If-None-Match` request may send. Cached by the browser for a day.
async fn preflight() -> Response {
    let mut response = (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("range, if-none-match"),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            ),
        ],
    )
        .into_response();
    allow_any_origin(&mut response);
    response
}

/// The server's clock for DASH players (`UTCTiming`, ISO/IEC 23009-1
/// §5.8.4.11, `urn:mpeg:dash:utc:http-iso:2014`): an ISO 8601 instant.
async fn time() -> Response {
    let now = time::OffsetDateTime::now_utc();
    let text = now
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC formats");
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        text,
    )
        .into_response();
    allow_any_origin(&mut response);
    response
}

/// The `Cache-Control` header of a policy.
fn cache_header(policy: CachePolicy) -> HeaderValue {
    HeaderValue::from_static(policy.as_str())
}

/// `GET /media/{id}/{file}`: who may read it, a CDN redirect, the file
/// itself, the share token carried into playlists, CORS and the request
/// count, in this one function.
///
/// They were four layers (`from_fn` middlewares and tower-http's CORS)
/// around the handler; each is a clone and a boxed future per request, and
/// together they cost a third of the throughput for a small file, where the
/// rest of the server does little else (docs/benchmarks.md, "Serving").
/// Parts and playlists of a live recording are exactly such files, fetched
/// by every viewer twice a second.
async fn serve(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    // The path only: a query may hold a share token, which must never
    // reach a log.
    let span = tracing::debug_span!("request", method = %method, path = %request.uri().path());
    let mut response = answer(&state, id, &name, request)
        .instrument(span)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    allow_any_origin(&mut response);
    state.metrics.http_request(
        MEDIA_ROUTE,
        base::metrics::Method::from_name(method.as_str()),
        response.status().as_u16(),
    );
    response
}

async fn answer(
    state: &AppState,
    id: String,
    name: &str,
    mut request: Request,
) -> Result<Response> {
    let viewer = Viewer::of(state, id, request.headers(), request.uri())?;
    if viewer.carried.is_some() {
        // Its playlists are rewritten for this viewer (the token in every
        // URI, `access::finish`): that needs the text, so they go as text.
        request.headers_mut().remove(header::ACCEPT_ENCODING);
    }
    if let Some(redirect) =
        cdn::redirect(state, &viewer.recording, &viewer.id, name, request.method())
    {
        return Ok(redirect);
    }
    let response = file(state, &viewer.recording, &viewer.id, name, request).await?;
    access::finish(&viewer, response).await
}

async fn file(
    state: &AppState,
    recording: &Recording,
    id: &str,
    name: &str,
    request: Request,
) -> Result<Response> {
    let file =
        MediaFile::parse(name).ok_or_else(|| Error::NotFound(format!("no media file '{name}'")))?;
    let blocking = Query::<BlockingQuery>::try_from_uri(request.uri())
        .map_err(|e| Error::Invalid(format!("bad query: {}", e.body_text())))?
        .0;
    let edge = recording.edge();
    // Blocking requests hold one of their client's waiting slots while
    // they wait (docs/architecture.md, threat model).
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    let (slots, waiting) = (
        state.client_slots.clone(),
        state.metrics.waiting_requests.clone(),
    );
    let slot = move || {
        client
            .map(|ip| slots.try_acquire(ip).map(|s| s.counted(&waiting)))
            .transpose()
    };
    let from_memory = match file {
        MediaFile::MediaPlaylist(files) => {
            let reload = blocking.reload()?;
            live::media_playlist(edge, &slot, files, reload, request.headers()).await?
        }
        MediaFile::Multivariant => live::multivariant(edge, &slot, request.headers()).await?,
        MediaFile::Manifest => live::manifest(edge, request.headers()),
        MediaFile::Part(files, index) => match live::part(edge, &slot, files, index).await? {
            Some(bytes) => Some(media_bytes(file, bytes)),
            None => return part_from_disk(state, recording, id, files, index).await,
        },
        // A closed segment is in memory (the newest only); the open one
        // is sent as it grows (low-latency DASH).
        MediaFile::Segment(files, seq) if !request.headers().contains_key(header::RANGE) => {
            match edge.segment(files, seq) {
                Some(bytes) => Some(media_bytes(file, bytes)),
                None => open_segment(edge, &slot, files, seq).await?,
            }
        }
        MediaFile::Original if recording.import().is_none() => {
            return original(state, recording, id).await;
        }
        _ => None,
    };
    match from_memory {
        Some(response) => Ok(response),
        None => from_disk(state, recording, id, file, request).await,
    }
}

fn media_bytes(file: MediaFile, bytes: Bytes) -> Response {
    answer_with(
        bytes,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(file.content_type()),
            ),
            (header::CACHE_CONTROL, cache_header(file.cache())),
        ],
    )
}

/// Headers of a media answer: ours, CORS, and `content-length` and `date`
/// added on the way out.
const ANSWER_HEADERS: usize = 10;

/// `bytes` with `headers`, the header map sized once for all of an
/// answer's headers: one that grows re-allocates, a cost that showed in
/// profiles of small files.
fn answer_with<const N: usize>(bytes: Bytes, headers: [(HeaderName, HeaderValue); N]) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let map = response.headers_mut();
    map.reserve(ANSWER_HEADERS);
    map.extend(headers);
    response
}

/// A part that left memory: the byte range of its segment file that the
/// saved timeline names (parts are never files of their own).
async fn part_from_disk(
    state: &AppState,
    recording: &Recording,
    id: &str,
    files: TrackFiles,
    index: u64,
) -> Result<Response> {
    let dir = state.library.store().hls_dir(id);
    // An encrypted part is not a byte range of its encrypted segment.
    let key = recording.encrypted().then(|| recording.content_key());
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        let Some(rendition) = pipeline::saved::read(&dir)? else {
            return Ok(None);
        };
        let located = rendition
            .tracks
            .get(files.index())
            .and_then(|timeline| timeline.locate_part(index));
        let Some((seq, offset, len)) = located else {
            return Ok(None);
        };
        if let Some(key) = key {
            let key =
                key.ok_or_else(|| std::io::Error::other("the recording's key cannot be read"))?;
            let segment = std::fs::read(dir.join(files.segment(seq)))?;
            let part = media::aes::part_of_encrypted_segment(
                &key,
                files.index(),
                seq,
                &segment,
                offset,
                len,
            );
            return part.map(Some).map_err(std::io::Error::other);
        }
        let file = std::fs::File::open(dir.join(files.segment(seq)))?;
        let mut bytes = vec![0; len as usize];
        file.read_exact_at(&mut bytes, offset)?;
        Ok(Some(bytes))
    })
    .await
    .map_err(|e| Error::internal("reading a part", e))?
    .map_err(|e| Error::internal("reading a part", e))?;
    let bytes = read.ok_or_else(|| Error::NotFound(format!("part {index} is not published")))?;
    Ok(media_bytes(
        MediaFile::Part(files, index),
        Bytes::from(bytes),
    ))
}

async fn from_disk(
    state: &AppState,
    recording: &Recording,
    id: &str,
    file: MediaFile,
    request: Request,
) -> Result<Response> {
    let original = file == MediaFile::Original;
    let path = if original {
        // An import's original is one file: served with ranges, like media.
        state.library.store().original_path(id)
    } else {
        state.library.store().hls_dir(id).join(file.file_name())
    };
    let content_type = |recording: &Recording| -> mime::Mime {
        if original {
            recording
                .mime()
                .parse()
                .unwrap_or(mime::APPLICATION_OCTET_STREAM)
        } else {
            file.content_type().parse().expect("static media type")
        }
    };
    let content_type_header = |recording: &Recording| -> HeaderValue {
        if original {
            HeaderValue::from_str(content_type(recording).as_ref()).expect("a valid media type")
        } else {
            HeaderValue::from_static(file.content_type())
        }
    };
    if !request.headers().contains_key(header::RANGE) {
        // The cache first: a hit is the common case under load, and needs
        // nothing else (no status copy, no media type parsed).
        if let Some(hit) = state.file_cache.get(&path) {
            return Ok(respond_whole(
                hit,
                file,
                content_type_header(recording),
                request.headers(),
            ));
        }
        // Only what can no longer change may be kept: a live recording's
        // playlists are rewritten (and served from its edge anyway).
        let keep = file.cache() == CachePolicy::Immutable
            || recording.status().state == store::State::Ready;
        let whole = whole_file(state, path.clone(), file, keep).await?;
        if let Some(read) = whole {
            return Ok(respond_whole(
                read,
                file,
                content_type_header(recording),
                request.headers(),
            ));
        }
    }
    let mut response = ServeFile::new_with_mime(&path, &content_type(recording))
        .oneshot(request)
        .await
        .map_err(|e| Error::internal("serving a media file", e))?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(
            Error::NotFound(format!("'{}' is not published (yet)", file.file_name())).into(),
        );
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, cache_header(file.cache()));
    Ok(response.map(Body::new))
}

/// A whole file read in one blocking-pool trip (open, stat, read), and
/// cached if `keep`. `None` for a file too large to read
/// at once.
async fn whole_file(
    state: &AppState,
    path: PathBuf,
    file: MediaFile,
    keep: bool,
) -> Result<Option<CachedFile>> {
    let from = path.clone();
    let read =
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<(Bytes, SystemTime)>> {
            use std::io::Read;
            let mut handle = std::fs::File::open(&from)?;
            let meta = handle.metadata()?;
            if meta.len() > READ_WHOLE_MAX_BYTES {
                return Ok(None);
            }
            let modified = meta.modified()?;
            // Segments are mapped, and sent from the page cache without a
            // copy on plain TCP (zero_copy); small files are read.
            if meta.len() >= zero_copy::MAP_MIN_BYTES {
                return Ok(Some((zero_copy::map(handle, meta.len())?, modified)));
            }
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            handle.read_to_end(&mut bytes)?;
            Ok(Some((Bytes::from(bytes), modified)))
        })
        .await
        .map_err(|e| Error::internal("reading a media file", e))?;
    let (bytes, modified) = match read {
        Ok(Some(read)) => read,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                Error::NotFound(format!("'{}' is not published (yet)", file.file_name())).into(),
            )
        }
        Err(e) => return Err(Error::internal("reading a media file", e).into()),
    };
    let etag = file_etag(bytes.len() as u64, modified);
    let cached = CachedFile {
        gzip: Default::default(),
        bytes,
        etag: HeaderValue::from_str(&etag).expect("hex"),
        last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
            .expect("http date"),
    };
    if keep {
        state.file_cache.insert(path, cached.clone());
    }
    Ok(Some(cached))
}

/// A whole file with its validators; `304` when the client's
/// `If-None-Match` still matches. A playlist or manifest goes gzipped
/// to a client that accepts it (media never: see `compress`).
fn respond_whole(
    cached: CachedFile,
    file: MediaFile,
    content_type: HeaderValue,
    headers: &HeaderMap,
) -> Response {
    if file.is_listing() {
        return respond_listing(cached, file, content_type, headers);
    }
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let etag = cached.etag.as_bytes();
            v.split(',').any(|tag| tag.trim().as_bytes() == etag)
        });
    let validators = [
        (header::ETAG, cached.etag),
        (header::LAST_MODIFIED, cached.last_modified),
        (header::CACHE_CONTROL, cache_header(file.cache())),
    ];
    if unchanged {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    let [etag, modified, cache] = validators;
    answer_with(
        cached.bytes,
        [etag, modified, cache, (header::CONTENT_TYPE, content_type)],
    )
}

/// A playlist or manifest file: gzipped from the cached copy (made once
/// per file) when the client accepts it, with `Vary: Accept-Encoding`.
fn respond_listing(
    cached: CachedFile,
    file: MediaFile,
    content_type: HeaderValue,
    headers: &HeaderMap,
) -> Response {
    let gzip = super::compress::accepts_gzip(headers);
    let etag = match (gzip, cached.etag.to_str()) {
        (true, Ok(etag)) => {
            HeaderValue::from_str(&format!("{}-gzip\"", etag.trim_end_matches('"')))
                .expect("hex in quotes")
        }
        _ => cached.etag.clone(),
    };
    let validators = [
        (header::ETAG, etag.clone()),
        (header::LAST_MODIFIED, cached.last_modified.clone()),
        (header::CACHE_CONTROL, cache_header(file.cache())),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    let etag = etag.to_str().unwrap_or_default();
    if super::compress::none_match_fails(headers, etag) {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    let [etag, modified, cache, vary] = validators;
    if gzip {
        let bytes = cached
            .gzip
            .get_or_init(|| pipeline::edge::gzip(&cached.bytes))
            .clone();
        return answer_with(
            bytes,
            [
                etag,
                modified,
                cache,
                vary,
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            ],
        );
    }
    answer_with(
        cached.bytes,
        [
            etag,
            modified,
            cache,
            vary,
            (header::CONTENT_TYPE, content_type),
        ],
    )
}

/// Size and modification time, as nginx and tower-http do: files are
/// replaced by rename, never rewritten in place, so a change shows in both.
fn file_etag(len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

/// The upload as received: the contiguous chunks, concatenated, streamed
/// one chunk at a time so memory stays flat for long recordings.
async fn original(state: &AppState, recording: &Recording, id: &str) -> Result<Response> {
    let contiguous = recording.status().chunks.contiguous;
    let store = state.library.store().clone();
    let id = id.to_string();
    let chunks = futures_util::stream::iter(0..contiguous)
        .then(move |seq| tokio::fs::read(store.chunk_path(&id, seq)))
        .map(|read| read.map(axum::body::Bytes::from));
    let mime = recording.mime();
    let content_type = HeaderValue::from_str(&mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache_header(CachePolicy::Revalidate)),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
