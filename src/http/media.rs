//! `/media/{id}/{file}`: playlists, init and media segments, and the
//! original upload (docs/http-contract.md, "Media").
//!
//! Only names this server writes are served: a URL is parsed into a
//! [`MediaFile`] first, so no request path ever reaches the file system.
//! Content types follow RFC 8216 §4 (`application/vnd.apple.mpegurl`) and
//! RFC 8216 §3.3 / ISO/IEC 23000-19 (`video/mp4`, `video/iso.segment`);
//! byte ranges (RFC 9110 §14) come from tower-http's `ServeFile`.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use tower::ServiceExt;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeFile;

use super::AppState;
use crate::error::{Error, Result};
use crate::media::hls::{INIT_FILE, MEDIA_PLAYLIST_FILE, MULTIVARIANT_FILE};
use crate::media::timeline::Segment;
use crate::transcode::poster::POSTER_FILE;

pub fn router() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::RANGE])
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_RANGE]);
    Router::new()
        .route("/media/{id}/{file}", get(serve))
        .layer(cors)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaFile {
    Multivariant,
    MediaPlaylist,
    Init,
    Segment(u64),
    Poster,
    Original,
}

/// How long clients and CDNs may keep a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CachePolicy {
    /// Never changes once published (segments, init).
    Immutable,
    /// Grows while live: always revalidate.
    Revalidate,
}

impl CachePolicy {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Immutable => "public, max-age=31536000, immutable",
            Self::Revalidate => "no-cache",
        })
    }
}

impl MediaFile {
    fn parse(name: &str) -> Option<Self> {
        match name {
            MULTIVARIANT_FILE => Some(Self::Multivariant),
            MEDIA_PLAYLIST_FILE => Some(Self::MediaPlaylist),
            INIT_FILE => Some(Self::Init),
            POSTER_FILE => Some(Self::Poster),
            "original" => Some(Self::Original),
            _ => {
                let digits = name.strip_prefix("seg-")?.strip_suffix(".m4s")?;
                let seq = digits
                    .parse()
                    .ok()
                    .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))?;
                // Only the canonical spelling, so each segment has one URL.
                (Segment::file_name(seq) == name).then_some(Self::Segment(seq))
            }
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Multivariant | Self::MediaPlaylist => "application/vnd.apple.mpegurl",
            Self::Init => "video/mp4",
            Self::Segment(_) => "video/iso.segment",
            Self::Poster => "image/jpeg",
            Self::Original => "application/octet-stream",
        }
    }

    fn cache(self) -> CachePolicy {
        match self {
            Self::Init | Self::Segment(_) => CachePolicy::Immutable,
            _ => CachePolicy::Revalidate,
        }
    }

    fn file_name(self) -> String {
        match self {
            Self::Multivariant => MULTIVARIANT_FILE.into(),
            Self::MediaPlaylist => MEDIA_PLAYLIST_FILE.into(),
            Self::Init => INIT_FILE.into(),
            Self::Segment(seq) => Segment::file_name(seq),
            Self::Poster => POSTER_FILE.into(),
            Self::Original => "original".into(),
        }
    }
}

async fn serve(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response> {
    let recording = state.library.get(&id)?;
    let file = MediaFile::parse(&name)
        .ok_or_else(|| Error::NotFound(format!("no media file '{name}'")))?;
    if file == MediaFile::Original && recording.import().is_none() {
        return original(&state, &id, recording.mime()).await;
    }
    if file == MediaFile::MediaPlaylist {
        // The hot path of live viewing: from memory, no file system trip.
        if let Some(playlist) = recording.media_playlist() {
            return Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(file.content_type()),
                    ),
                    (header::CACHE_CONTROL, file.cache().header()),
                ],
                playlist,
            )
                .into_response());
        }
    }
    let (path, mime) = match file {
        // An import's original is one file: served with ranges, like media.
        MediaFile::Original => (
            state.library.store().original_path(&id),
            recording
                .mime()
                .parse()
                .unwrap_or(mime::APPLICATION_OCTET_STREAM),
        ),
        _ => (
            state.library.store().hls_dir(&id).join(file.file_name()),
            file.content_type().parse().expect("static media type"),
        ),
    };
    let mut response = ServeFile::new_with_mime(&path, &mime)
        .oneshot(request)
        .await
        .map_err(|e| Error::internal("serving a media file", e))?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err(Error::NotFound(format!("'{name}' is not published (yet)")));
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, file.cache().header());
    Ok(response.map(Body::new))
}

/// The upload as received: the contiguous chunks, concatenated, streamed
/// one chunk at a time so memory stays flat for long recordings.
async fn original(state: &AppState, id: &str, mime: &str) -> Result<Response> {
    let recording = state.library.get(id)?;
    let contiguous = recording.status().chunks.contiguous;
    let store = state.library.store().clone();
    let id = id.to_string();
    let chunks = futures_util::stream::iter(0..contiguous)
        .then(move |seq| tokio::fs::read(store.chunk_path(&id, seq)))
        .map(|read| read.map(axum::body::Bytes::from));
    let content_type =
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CachePolicy::Revalidate.header()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_the_server_writes_are_media_files() {
        assert_eq!(
            MediaFile::parse("index.m3u8"),
            Some(MediaFile::Multivariant)
        );
        assert_eq!(
            MediaFile::parse("seg-00042.m4s"),
            Some(MediaFile::Segment(42))
        );
        assert_eq!(
            MediaFile::parse("seg-123456.m4s"),
            Some(MediaFile::Segment(123_456))
        );
        for bad in [
            "seg-42.m4s",
            "seg-+0042.m4s",
            "seg-0004a.m4s",
            "..",
            "recording.json",
            "../chunks",
            "seg-.m4s",
            ".media.m3u8.tmp",
        ] {
            assert_eq!(MediaFile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn segments_are_immutable_and_playlists_revalidate() {
        assert_eq!(MediaFile::Segment(1).cache(), CachePolicy::Immutable);
        assert_eq!(MediaFile::Init.content_type(), "video/mp4");
        assert_eq!(MediaFile::Segment(1).content_type(), "video/iso.segment");
        assert_eq!(MediaFile::MediaPlaylist.cache().header(), "no-cache");
    }
}
