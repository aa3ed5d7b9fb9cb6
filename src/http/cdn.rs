//! `--public-media-url`: finished public recordings are served by a CDN in
//! front of the `--store` bucket (docs/http-contract.md, "Operations";
//! redirects per RFC 9110 §15.4.3).
//!
//! Only what the bucket already holds in its final form goes there: a
//! recording that is `ready`, public, not encrypted, and complete in the
//! bucket ([`crate::objects::Mirror::is_complete`]: every file, playlists
//! in their final form, and the original). For such a recording the
//! status' `hls`, `dash` and `poster` point at `URL/<id>/<file>`, and a
//! `GET /media/<id>/<file>` of a file the bucket holds answers `302` to the
//! same place. Playlists and the MPD list their files by relative URI, so
//! a player that came here first fetches every further file from the CDN.
//!
//! What stays here, and why:
//! - live recordings: blocking playlist reloads (`_HLS_msn`), parts and
//!   the preload hint are answered from memory as media arrives, which a
//!   bucket cannot do; their playlists change every part.
//! - private recordings: the CDN checks no share token (and they are not
//!   in the bucket at all, see `objects`).
//! - encrypted recordings: the key is served by this server only, to
//!   those who may watch; a playlist at the CDN would name `key` there.
//! - parts (never objects), the DASH clock, and a recording whose last
//!   files are still on their way to the bucket (or a bucket that is down).

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use media::layout::MediaFile;
use pipeline::Recording;
use pipeline::RecordingStatus;
use store::State as RecState;

/// The CDN base that serves this recording now, if any.
pub fn public_base<'a>(state: &'a AppState, status: &RecordingStatus) -> Option<&'a str> {
    let base = state.config.public_media_url.as_deref()?;
    let objects = state.library.objects()?;
    let final_and_public =
        status.state == RecState::Ready && !status.access.is_private() && !status.encrypted;
    (final_and_public && objects.is_complete(&status.id)).then_some(base)
}

/// The status with its media URLs at the CDN when the recording is
/// served from there (the `watch` page stays here).
pub fn status_urls(state: &AppState, mut status: RecordingStatus) -> RecordingStatus {
    let Some(base) = public_base(state, &status) else {
        return status;
    };
    let at_cdn = |url: &mut String| {
        if let Some(rest) = url.strip_prefix("/media/") {
            *url = format!("{base}/{rest}");
        }
    };
    at_cdn(&mut status.hls);
    status.dash.as_mut().map(at_cdn);
    status.poster.as_mut().map(at_cdn);
    status
}

/// Whether a file of this name is an object in the bucket once the
/// recording is complete there.
fn in_bucket(name: &str) -> bool {
    store::mirror::object_kind(name).is_some()
        || MediaFile::parse(name) == Some(MediaFile::Original)
}

/// `302` to the CDN when it serves this file of `recording` (checked
/// after access: a private recording is never there anyway).
pub fn redirect(
    state: &AppState,
    recording: &Recording,
    id: &str,
    name: &str,
    method: &Method,
) -> Option<Response> {
    // Without the flag this costs one check per media request.
    state.config.public_media_url.as_ref()?;
    if !matches!(*method, Method::GET | Method::HEAD) || !in_bucket(name) {
        return None;
    }
    let base = public_base(state, &recording.status())?;
    let location = HeaderValue::from_str(&format!("{base}/{id}/{name}")).ok()?;
    Some(
        (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                // Checked again on each request: a deleted recording's
                // redirect must not outlive it in caches.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_of_the_bucket_are_redirected() {
        for name in [
            "index.m3u8",
            "media.m3u8",
            "audio.m3u8",
            "manifest.mpd",
            "init.mp4",
            "seg-00001.m4s",
            "audio-seg-00001.m4s",
            "poster.jpg",
            "original",
        ] {
            assert!(in_bucket(name), "{name}");
        }
        for name in ["part-000001.m4s", "key", "timeline.json", "../x", "time"] {
            assert!(!in_bucket(name), "{name}");
        }
    }
}
