//! Playlists and parts of a recording from its live edge in memory, with
//! blocking playlist reload (RFC 8216bis §6.2.5.2: `_HLS_msn`, `_HLS_part`),
//! delta updates (§6.2.5.1: `_HLS_skip=YES` or `v2`, alone or with a
//! blocking reload) and blocking preload-hinted part requests (§6.2.6).
//!
//! Playlists and the manifest are sent gzipped to a client that accepts
//! it (RFC 9110 §8.4.1, §12.5.3), from the copy the edge keeps per version
//! ([`Playlist::gzip`]), with `Vary: Accept-Encoding` either way so a cache
//! in between keeps both. Media is never compressed (it does not shrink).
//!
//! Waiting is on the edge's `tokio::sync::watch`, never by polling: the
//! packager wakes every waiter when it lists a part. How long a request may
//! wait is three target durations (§6.2.5.2: a server that cannot answer
//! by then says so: 503).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::watch;

use super::clients::SlotGuard;
use super::error::Result;
use base::Error;
use media::layout::TrackFiles;
use pipeline::edge::{EdgeView, LiveEdge, Playlist, TrackView};

/// What a player waiting on a live playlist may be told to wait before
/// trying again, when nothing came within the blocking limit.
const RETRY_AFTER_S: u32 = 1;
/// A part request may wait for at most this many parts beyond the newest:
/// the preload hint names the next one, a player may be one ahead of it.
const PART_LOOKAHEAD: u64 = 2;

/// The query of a blocking playlist reload.
#[derive(Debug, Default, Deserialize)]
pub struct BlockingQuery {
    #[serde(rename = "_HLS_msn")]
    msn: Option<String>,
    #[serde(rename = "_HLS_part")]
    part: Option<String>,
    #[serde(rename = "_HLS_skip")]
    skip: Option<String>,
}

/// A validated blocking request: segment `msn`, or its part `part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    pub msn: u64,
    pub part: Option<u64>,
}

/// A validated live playlist request: whether it blocks, and whether it
/// asks for a delta update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reload {
    pub blocking: Option<Blocking>,
    /// `_HLS_skip=YES` or `_HLS_skip=v2` (§6.2.5.1; there are no date
    /// ranges to skip, so both get the same delta update).
    pub skip: bool,
}

impl BlockingQuery {
    /// [`Self::parse`] and `_HLS_skip`: 400 for any value but `YES`, `v2`.
    pub fn reload(&self) -> Result<Reload> {
        let skip = match self.skip.as_deref() {
            None => false,
            Some("YES" | "v2") => true,
            Some(_) => {
                return Err(Error::Invalid("_HLS_skip must be YES or v2".into()).into());
            }
        };
        Ok(Reload {
            blocking: self.parse()?,
            skip,
        })
    }

    /// `None` when the request does not block; 400 for values that are not
    /// plain integers, or `_HLS_part` without `_HLS_msn` (§6.2.5.2).
    pub fn parse(&self) -> Result<Option<Blocking>> {
        let number = |name: &str, value: &str| {
            value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Error::Invalid(format!("{name} must be a plain integer")))
        };
        match (&self.msn, &self.part) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Error::Invalid("_HLS_part needs _HLS_msn".into()).into()),
            (Some(msn), part) => Ok(Some(Blocking {
                msn: number("_HLS_msn", msn)?,
                part: part
                    .as_deref()
                    .map(|p| number("_HLS_part", p))
                    .transpose()?,
            })),
        }
    }
}

/// How long a blocked request waits: three target durations.
fn wait_limit(view: &EdgeView) -> Duration {
    Duration::from_secs(3 * view.target_duration_s.max(1))
}

/// Takes one of the client's waiting slots (`--max-waiting-per-client`)
/// for as long as a request waits: `429` when it has none left.
pub type WaitSlot<'a> = &'a (dyn Fn() -> base::Result<Option<SlotGuard>> + Send + Sync);

/// Waits until `ready` holds for the edge's view, or the limit passes,
/// holding a waiting slot of the client meanwhile.
pub(super) async fn wait_for(
    edge: &LiveEdge,
    slot: WaitSlot<'_>,
    ready: impl Fn(&EdgeView) -> bool,
) -> Result<Option<Arc<EdgeView>>> {
    if ready(&edge.view()) {
        return Ok(Some(edge.view()));
    }
    let _slot = slot()?;
    let mut views: watch::Receiver<Arc<EdgeView>> = edge.subscribe();
    let limit = wait_limit(&views.borrow());
    let waited = tokio::time::timeout(limit, views.wait_for(|view| ready(view))).await;
    Ok(match waited {
        Ok(Ok(view)) => Some(view.clone()),
        // The edge lives as long as the recording's handle we hold.
        Ok(Err(_)) | Err(_) => None,
    })
}

pub(super) fn not_yet(what: &str) -> Error {
    Error::Busy {
        message: format!("{what} did not appear within the blocking limit; ask again"),
        retry_after_s: RETRY_AFTER_S,
    }
}

/// A track's live media playlist, once it satisfies the request's
/// blocking directives; the delta update when it asks for one and there
/// is one. `None` when the edge holds no playlist (the file on disk is the
/// answer then).
pub async fn media_playlist(
    edge: &LiveEdge,
    slot: WaitSlot<'_>,
    files: TrackFiles,
    reload: Reload,
    headers: &HeaderMap,
) -> Result<Option<Response>> {
    let view = edge.view();
    let Some(track) = view.track(files) else {
        return Ok(None);
    };
    let view = match reload.blocking {
        None => view,
        Some(Blocking { msn, part }) => {
            if track.position.too_far_ahead(msn) {
                return Err(Error::Invalid(format!(
                    "_HLS_msn={msn} is more than two segments past the newest"
                ))
                .into());
            }
            let has = |v: &EdgeView| {
                v.track(files)
                    .is_some_and(|t| t.position.contains(msn, part))
            };
            wait_for(edge, slot, has)
                .await?
                .ok_or_else(|| not_yet("the requested segment or part"))?
        }
    };
    let track = view.track(files).expect("an edge never loses a track");
    let playlist = match (&track.delta, reload.skip) {
        (Some(delta), true) => delta,
        _ => &track.media,
    };
    Ok(Some(playlist_response(playlist, headers)))
}

/// The multivariant playlist: it needs the codecs, so a request made
/// before the first media waits for them (blocking, like a reload) — and
/// for every track's first closed segment, since Shaka 5 refuses a live
/// media playlist with parts but no segment (`HLS_EMPTY_MEDIA_PLAYLIST`).
pub async fn multivariant(
    edge: &LiveEdge,
    slot: WaitSlot<'_>,
    headers: &HeaderMap,
) -> Result<Option<Response>> {
    let view = edge.view();
    if !view.is_live() {
        return Ok(None);
    }
    let playable = |v: &EdgeView| {
        let segment = |t: &TrackView| t.position.segments > 0 || t.position.ended;
        v.multivariant.is_some() && v.tracks.iter().all(segment)
    };
    let view = if playable(&view) {
        view
    } else {
        wait_for(edge, slot, playable)
            .await?
            .ok_or_else(|| not_yet("the recording's first segment"))?
    };
    let playlist = view.multivariant.as_ref().expect("waited for it");
    Ok(Some(playlist_response(playlist, headers)))
}

/// The DASH manifest, when this server publishes the recording (`None`:
/// the file on disk answers).
pub fn manifest(edge: &LiveEdge, headers: &HeaderMap) -> Option<Response> {
    let view = edge.view();
    let mut response = playlist_response(view.mpd.as_ref()?, headers);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dash+xml"),
    );
    Some(response)
}

/// A part from memory, waiting for it if it is the next one to come.
/// `None` when it is not in memory but exists (it is read from its
/// segment file then).
pub async fn part(
    edge: &LiveEdge,
    slot: WaitSlot<'_>,
    files: TrackFiles,
    index: u64,
) -> Result<Option<Bytes>> {
    if let Some(bytes) = edge.part(files, index) {
        return Ok(Some(bytes));
    }
    let view = edge.view();
    // Not live in this server (e.g. finished before a restart), or an
    // older part: its segment file has it.
    let Some(next) = view.track(files).map(|t| t.position.next_part) else {
        return Ok(None);
    };
    if index < next {
        return Ok(None);
    }
    if index >= next + PART_LOOKAHEAD {
        return Err(Error::NotFound(format!("part {index} is not published")).into());
    }
    let arrived = |v: &EdgeView| {
        v.track(files)
            .is_some_and(|t| t.position.next_part > index || t.position.ended)
    };
    let view = wait_for(edge, slot, arrived)
        .await?
        .ok_or_else(|| not_yet("the part"))?;
    if view
        .track(files)
        .is_some_and(|t| t.position.next_part <= index)
    {
        return Err(
            Error::NotFound(format!("part {index} will not exist: the recording ended")).into(),
        );
    }
    Ok(edge.part(files, index))
}

/// A playlist answer, gzipped when the client accepts it: `304` when the
/// client's validator still matches the representation it would get.
fn playlist_response(playlist: &Playlist, headers: &HeaderMap) -> Response {
    let gzip = super::compress::accepts_gzip(headers);
    let etag = if gzip {
        playlist.gzip_etag()
    } else {
        playlist.etag.clone()
    };
    let base = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.apple.mpegurl"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex in quotes"),
        ),
    ];
    if super::compress::none_match_fails(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, base).into_response();
    }
    if gzip {
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (base, [encoding], playlist.gzip()).into_response();
    }
    (base, playlist.bytes.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(msn: Option<&str>, part: Option<&str>) -> BlockingQuery {
        BlockingQuery {
            msn: msn.map(Into::into),
            part: part.map(Into::into),
            skip: None,
        }
    }

    #[test]
    fn skip_is_yes_or_v2_with_or_without_blocking() {
        let with_skip = |skip: &str| BlockingQuery {
            skip: Some(skip.into()),
            ..query(Some("7"), Some("1"))
        };
        for skip in ["YES", "v2"] {
            let reload = with_skip(skip).reload().unwrap();
            assert!(reload.skip);
            assert_eq!(
                reload.blocking,
                Some(Blocking {
                    msn: 7,
                    part: Some(1)
                })
            );
        }
        for bad in ["yes", "NO", "v3", ""] {
            assert!(with_skip(bad).reload().is_err(), "{bad}");
        }
        assert_eq!(query(None, None).reload().unwrap(), Reload::default());
    }

    #[test]
    fn blocking_queries_are_plain_integers() {
        assert_eq!(query(None, None).parse().unwrap(), None);
        assert_eq!(
            query(Some("12"), Some("3")).parse().unwrap(),
            Some(Blocking {
                msn: 12,
                part: Some(3)
            })
        );
        for (msn, part) in [
            (Some("-1"), None),
            (Some("+1"), None),
            (Some("1.5"), None),
            (Some("1"), Some("x")),
            (None, Some("0")),
            (Some("99999999999999999999"), None),
        ] {
            assert!(query(msn, part).parse().is_err(), "{msn:?} {part:?}");
        }
    }
}
