//! The segment still being produced, sent as it grows: low-latency DASH
//! (DASH-IF IOP low-latency modes; ISO/IEC 23009-1 §5.3.9.5
//! `availabilityTimeOffset` with `availabilityTimeComplete="false"`) has the
//! player ask for a segment before it is complete, and read its CMAF chunks
//! as they come. The chunks are the LL-HLS parts the edge already holds, so
//! the answer is those parts in order, each written when the packager
//! publishes it, with chunked transfer (no length is known); it ends when
//! the segment closes. The bytes are the segment file's bytes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use media::layout::TrackFiles;
use pipeline::edge::{EdgeView, LiveEdge};
use tokio::sync::watch;

use super::clients::SlotGuard;
use super::live::{not_yet, wait_for, WaitSlot};
use base::Error;

/// How far ahead of the open segment a request may be, and wait for it:
/// a player whose clock runs a little ahead asks for the next one early.
const SEGMENT_LOOKAHEAD: u64 = 1;

/// The open segment `seq` of a track (or the next one, once it starts) as a
/// growing answer; `None` when it is closed, not live here, or there is no
/// DASH manifest to have announced it (the segment file answers, or `404`).
/// A segment not started yet is waited for before anything is sent.
pub async fn open_segment(
    edge: &Arc<LiveEdge>,
    slot: WaitSlot<'_>,
    files: TrackFiles,
    seq: u64,
) -> super::error::Result<Option<Response>> {
    let view = edge.view();
    let Some(track) = view.track(files).filter(|_| view.mpd.is_some()) else {
        return Ok(None);
    };
    let open = track.position.segments;
    if seq < open || track.position.ended {
        return Ok(None);
    }
    if seq > open + SEGMENT_LOOKAHEAD {
        return Err(Error::NotFound(format!("segment {seq} is not published")).into());
    }
    let started = |v: &EdgeView| {
        v.track(files).is_some_and(|t| {
            let p = &t.position;
            p.segments > seq || (p.segments == seq && p.open_parts > 0) || p.ended
        })
    };
    let Some(view) = wait_for(edge, slot, started).await? else {
        return Err(not_yet("the segment's first part").into());
    };
    if view.track(files).is_some_and(|t| t.position.segments > seq) {
        // Closed meanwhile: the whole file answers.
        return Ok(None);
    }
    let limit = Duration::from_secs(3 * view.target_duration_s.max(1));
    let growing = Growing {
        edge: edge.clone(),
        views: edge.subscribe(),
        files,
        seq,
        next: None,
        limit,
        done: false,
        _slot: slot()?,
    };
    let body = Body::from_stream(futures_util::stream::unfold(growing, Growing::next_chunk));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("video/iso.segment"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(Some(response))
}

/// Where a growing answer stands.
struct Growing {
    edge: Arc<LiveEdge>,
    views: watch::Receiver<Arc<EdgeView>>,
    files: TrackFiles,
    seq: u64,
    /// Index of the next part to send, once the segment's first is known.
    next: Option<u64>,
    /// Longest wait for the next part: then the answer is cut short.
    limit: Duration,
    /// Ended by an error: nothing more is sent.
    done: bool,
    /// A waiting slot of the client, for as long as the answer grows.
    _slot: Option<SlotGuard>,
}

impl Growing {
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.done {
            return None;
        }
        loop {
            // Marked seen before looking, so a part published meanwhile
            // wakes the wait below.
            let view = self.views.borrow_and_update().clone();
            if let Some((first, count)) = self.edge.segment_span(self.files, self.seq) {
                let next = *self.next.get_or_insert(first);
                if next < first + count {
                    if let Some(bytes) = self.edge.part(self.files, next) {
                        self.next = Some(next + 1);
                        return Some((Ok(bytes), self));
                    }
                    // It left memory (a very slow reader): the rest of
                    // the answer cannot be the segment's bytes.
                    return Some((Err(cut("its parts left memory")), self.stop()));
                }
            }
            let track = view.track(self.files)?;
            if track.position.segments > self.seq || track.position.ended {
                // Closed with every part sent (the span was final).
                return None;
            }
            match tokio::time::timeout(self.limit, self.views.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Some((Err(cut("no new part in time")), self.stop())),
            }
        }
    }

    /// After an error the stream ends.
    fn stop(mut self) -> Self {
        self.done = true;
        self
    }
}

fn cut(why: &str) -> std::io::Error {
    std::io::Error::other(format!("growing segment cut short: {why}"))
}
