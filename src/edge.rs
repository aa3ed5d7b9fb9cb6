//! The live edge of one recording, held in memory: the playlists as last
//! rendered, the bytes of the newest parts and segments, and a watch that
//! blocking playlist reloads and preload-hinted part requests wait on
//! (RFC 8216bis §6.2.5.2, §6.2.6).
//!
//! The packager thread writes it ([`crate::publish::HlsPublisher`]), the
//! HTTP handlers read it. Live viewers all want the same few files at the
//! same moment, so those are answered from here without touching the disk;
//! anything older is on disk (a part of a closed segment is a byte range of
//! its segment file, see [`crate::media::timeline::Timeline::locate_part`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::media::hls::{self, PlaylistSettings};
use crate::media::timeline::{LivePosition, Part, Timeline};

/// Closed segments (and their parts) kept in memory besides the open one:
/// the part window of a playlist spans three target durations, and a part
/// must stay fetchable a while after it leaves it. Older ones are served
/// from their files.
pub const RECENT_SEGMENTS: usize = 4;

/// A rendered playlist with its validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playlist {
    pub bytes: Bytes,
    /// Strong `ETag` (RFC 9110 §8.8.3): a hash of the bytes, so a CDN or
    /// player revalidating an unchanged playlist gets `304`.
    pub etag: String,
}

impl Playlist {
    pub fn new(text: String) -> Self {
        // A content hash, not a counter: a restarted server (or another
        // node) answers the same validator for the same bytes.
        let digest = Sha256::digest(text.as_bytes());
        Self {
            etag: format!("\"{}\"", hex::encode(&digest[..12])),
            bytes: Bytes::from(text),
        }
    }
}

/// What a reader sees of the edge at one moment.
#[derive(Debug, Clone, Default)]
pub struct EdgeView {
    /// `None` until the task publishes anything (the file on disk, if any,
    /// is served then: a finished recording after a restart).
    pub media: Option<Playlist>,
    /// `None` until the codecs are known (the init segment).
    pub multivariant: Option<Playlist>,
    pub position: LivePosition,
    pub target_duration_s: u64,
}

#[derive(Default)]
struct Recent {
    /// Part index → bytes.
    parts: BTreeMap<u64, Bytes>,
    /// Segment seq → (index of its first part, number of parts).
    segments: BTreeMap<u64, (u64, u64)>,
    /// Closed segment seq → its file's bytes.
    closed: BTreeMap<u64, Bytes>,
}

pub struct LiveEdge {
    view: watch::Sender<Arc<EdgeView>>,
    recent: Mutex<Recent>,
}

impl Default for LiveEdge {
    fn default() -> Self {
        Self {
            view: watch::Sender::new(Arc::default()),
            recent: Mutex::default(),
        }
    }
}

impl LiveEdge {
    pub fn view(&self) -> Arc<EdgeView> {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<EdgeView>> {
        self.view.subscribe()
    }

    /// Renders the playlists of `timeline` and wakes every waiting request.
    /// `multivariant` is given when it changed; otherwise the last stays.
    pub fn publish(
        &self,
        timeline: &Timeline,
        settings: &PlaylistSettings,
        multivariant: Option<String>,
    ) {
        let media = Playlist::new(hls::render_media_playlist(timeline, settings));
        let previous = self.view();
        let multivariant = multivariant
            .map(Playlist::new)
            .or_else(|| previous.multivariant.clone());
        self.view.send_replace(Arc::new(EdgeView {
            media: Some(media),
            multivariant,
            position: LivePosition::of(timeline),
            target_duration_s: hls::target_duration_s(timeline, settings.segment_target_ms),
        }));
    }

    /// Forgets everything (an import that failed is unpublished).
    pub fn clear(&self) {
        *self.recent.lock().expect("edge lock") = Recent::default();
        self.view.send_replace(Arc::default());
    }

    /// Keeps the bytes of part `index`, which belongs to segment `seq`.
    pub fn add_part(&self, index: u64, seq: u64, bytes: Bytes) {
        let mut recent = self.recent.lock().expect("edge lock");
        recent.parts.insert(index, bytes);
        let entry = recent.segments.entry(seq).or_insert((index, 0));
        entry.1 = entry.1.max(index + 1 - entry.0);
        while recent.segments.len() > RECENT_SEGMENTS + 1 {
            let (_, (first, count)) = recent.segments.pop_first().expect("not empty");
            for index in first..first + count {
                recent.parts.remove(&index);
            }
        }
    }

    pub fn part(&self, index: u64) -> Option<Bytes> {
        self.recent
            .lock()
            .expect("edge lock")
            .parts
            .get(&index)
            .cloned()
    }

    /// Segment `seq` was closed and written as `bytes`: its parts become
    /// slices of that one buffer, so memory holds each byte once.
    pub fn close_segment(&self, seq: u64, bytes: Bytes, parts: &[Part]) {
        let mut recent = self.recent.lock().expect("edge lock");
        let Some(&(first, _)) = recent.segments.get(&seq) else {
            return;
        };
        for (index, part) in (first..).zip(parts) {
            let range = part.offset_bytes as usize..(part.offset_bytes + part.len_bytes) as usize;
            if let Some(slice) = bytes.get(range.clone()).map(|_| bytes.slice(range)) {
                recent.parts.insert(index, slice);
            }
        }
        recent.closed.insert(seq, bytes);
        while recent.closed.len() > RECENT_SEGMENTS {
            recent.closed.pop_first();
        }
    }

    /// A closed segment's bytes, if it is one of the newest.
    pub fn segment(&self, seq: u64) -> Option<Bytes> {
        self.recent
            .lock()
            .expect("edge lock")
            .closed
            .get(&seq)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_parts_of_the_newest_segments_only() {
        let edge = LiveEdge::default();
        let mut index = 0;
        let parts: Vec<Part> = (0..3)
            .map(|i| Part {
                dur_ticks: 1,
                independent: i == 0,
                offset_bytes: i * 2,
                len_bytes: 2,
            })
            .collect();
        for seq in 0..8u64 {
            for i in 0..3u8 {
                edge.add_part(index, seq, Bytes::from(vec![i; 2]));
                index += 1;
            }
            if seq < 7 {
                edge.close_segment(seq, Bytes::from(vec![seq as u8; 6]), &parts);
            }
        }
        assert_eq!(
            edge.part(22).unwrap(),
            vec![1, 1],
            "the open segment's part"
        );
        assert_eq!(
            edge.part(19).unwrap(),
            vec![6, 6],
            "a closed segment's part is a slice of its bytes"
        );
        assert_eq!(edge.segment(6).unwrap(), vec![6; 6]);
        let oldest_kept = 7 - RECENT_SEGMENTS as u64;
        assert!(edge.segment(oldest_kept).is_some());
        assert!(edge.segment(oldest_kept - 1).is_none());
        assert!(edge.part(0).is_none());
    }

    #[test]
    fn the_same_bytes_get_the_same_etag() {
        let a = Playlist::new("#EXTM3U\n".into());
        assert_eq!(a, Playlist::new("#EXTM3U\n".into()));
        assert_ne!(a.etag, Playlist::new("#EXTM3U\n#\n".into()).etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
    }
}
