//! The live edge of one recording, held in memory: the playlists as last
//! rendered, the bytes of the newest parts and segments, and a watch that
//! blocking playlist reloads and preload-hinted part requests wait on
//! (RFC 8216bis §6.2.5.2, §6.2.6).
//!
//! The packager thread writes it ([`crate::publish::HlsPublisher`]), the
//! HTTP handlers read it. Live viewers all want the same few files at the
//! same moment, so those are answered from here without touching the disk;
//! anything older is on disk (a part of a closed segment is a byte range of
//! its segment file, see [`media::timeline::Timeline::locate_part`]).
//!
//! Each playlist version is rendered once, whole and as a delta update
//! (RFC 8216bis §6.2.5.1), by one [`MediaPlaylistWriter`] per track that
//! keeps the lines of older segments; every waiting viewer is then sent
//! the same bytes, and a gzip copy is made at most once per version, when
//! the first viewer asks for one ([`Playlist::gzip`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use media::hls::{MediaPlaylistWriter, PlaylistSettings};
use media::layout::TrackFiles;
use media::timeline::{LivePosition, Part, Rendition, Timeline};

/// Closed segments (and their parts) kept in memory besides the open one:
/// the part window of a playlist spans three target durations, and a part
/// must stay fetchable a while after it leaves it. Older ones are served
/// from their files.
pub const RECENT_SEGMENTS: usize = 4;

/// A rendered playlist (or manifest) with its validator.
#[derive(Debug, Clone)]
pub struct Playlist {
    pub bytes: Bytes,
    /// Strong `ETag` (RFC 9110 §8.8.3): a hash of the bytes, so a CDN or
    /// player revalidating an unchanged playlist gets `304`.
    pub etag: String,
    /// The gzip copy, made once for all viewers of this version.
    gzip: Arc<OnceLock<Bytes>>,
}

impl PartialEq for Playlist {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes && self.etag == other.etag
    }
}

impl Eq for Playlist {}

/// nginx's default (`gzip_comp_level 1`): a playlist is mostly repeated
/// lines, which the fastest level already takes to about a tenth
/// (docs/benchmarks.md, "Long live recordings").
const GZIP_LEVEL: u32 = 1;

impl Playlist {
    pub fn new(text: String) -> Self {
        // A content hash, not a counter: a restarted server (or another
        // node) answers the same validator for the same bytes.
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        Self::with_digest(text, &digest)
    }

    /// With a digest computed along with the text (see
    /// [`media::hls::RenderedPlaylist::full_digest`]).
    pub fn with_digest(text: String, digest: &[u8; 32]) -> Self {
        Self {
            etag: format!("\"{}\"", hex::encode(&digest[..12])),
            bytes: Bytes::from(text),
            gzip: Arc::default(),
        }
    }

    /// The bytes gzipped (RFC 1952), compressed by the first caller only.
    pub fn gzip(&self) -> Bytes {
        self.gzip.get_or_init(|| gzip(&self.bytes)).clone()
    }

    /// The `ETag` of the gzip copy: another representation, another
    /// validator (RFC 9110 §8.8.3), as nginx does.
    pub fn gzip_etag(&self) -> String {
        format!("{}-gzip\"", self.etag.trim_end_matches('"'))
    }
}

/// `bytes` gzipped.
pub fn gzip(bytes: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
}

/// What a reader sees of the edge at one moment.
#[derive(Debug, Clone, Default)]
pub struct EdgeView {
    /// Each track's media playlist and position, primary first. Empty
    /// until the task publishes anything (the files on disk, if any, are
    /// served then: a finished recording after a restart).
    pub tracks: Vec<TrackView>,
    /// `None` until the codecs are known (the init segment).
    pub multivariant: Option<Playlist>,
    /// The DASH manifest, once there is a segment (and tracks apart).
    pub mpd: Option<Playlist>,
    pub target_duration_s: u64,
}

/// What changed besides the media playlists (`None`: as it was).
#[derive(Debug, Default)]
pub struct EdgeChanges {
    pub multivariant: Option<String>,
    pub mpd: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TrackView {
    pub media: Playlist,
    /// The answer to `_HLS_skip=YES` (RFC 8216bis §6.2.5.1); `None` while
    /// nothing is old enough to skip (the full playlist answers then).
    pub delta: Option<Playlist>,
    pub position: LivePosition,
}

impl EdgeView {
    /// Whether this server publishes the recording (else: disk).
    pub fn is_live(&self) -> bool {
        !self.tracks.is_empty()
    }

    pub fn track(&self, files: TrackFiles) -> Option<&TrackView> {
        self.tracks.get(files.index())
    }
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
    /// Per track, by [`TrackFiles::index`].
    recent: [Mutex<Recent>; 2],
    /// Per track: what is kept of its playlist between versions.
    writers: Mutex<Vec<MediaPlaylistWriter>>,
}

impl Default for LiveEdge {
    fn default() -> Self {
        Self {
            view: watch::Sender::new(Arc::default()),
            recent: Default::default(),
            writers: Mutex::default(),
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

    /// Renders the playlists of every track and wakes every waiting
    /// request; the multivariant playlist and the manifest change only when
    /// `changes` brings them.
    pub fn publish(
        &self,
        rendition: &Rendition,
        settings: &PlaylistSettings,
        changes: EdgeChanges,
    ) {
        let tracks: Vec<&Timeline> = rendition.tracks.iter().collect();
        self.publish_tracks(&tracks, settings, changes);
    }

    /// [`Self::publish`] for the timelines of a rendition's tracks,
    /// primary first (the packager's own, not copied).
    pub fn publish_tracks(
        &self,
        timelines: &[&Timeline],
        settings: &PlaylistSettings,
        changes: EdgeChanges,
    ) {
        let mut writers = self.writers.lock().expect("edge lock");
        let mut target_duration_s = 1;
        let tracks = timelines
            .iter()
            .enumerate()
            .map(|(index, timeline)| {
                if writers.len() <= index {
                    writers.push(MediaPlaylistWriter::new(TrackFiles::at(index)));
                }
                let rendered = writers[index].render(timeline, settings);
                if index == 0 {
                    target_duration_s = rendered.target_duration_s;
                }
                TrackView {
                    media: Playlist::with_digest(rendered.full, &rendered.full_digest),
                    delta: rendered.delta.map(|d| Playlist::new(d.text)),
                    position: LivePosition::counted(
                        timeline,
                        writers[index].closed_parts(timeline),
                    ),
                }
            })
            .collect();
        drop(writers);
        let previous = self.view();
        let multivariant = changes
            .multivariant
            .map(Playlist::new)
            .or_else(|| previous.multivariant.clone());
        let mpd = changes
            .mpd
            .map(Playlist::new)
            .or_else(|| previous.mpd.clone());
        self.view.send_replace(Arc::new(EdgeView {
            tracks,
            multivariant,
            mpd,
            target_duration_s,
        }));
    }

    /// Forgets everything (an import that failed is unpublished).
    pub fn clear(&self) {
        for recent in &self.recent {
            *recent.lock().expect("edge lock") = Recent::default();
        }
        self.writers.lock().expect("edge lock").clear();
        self.view.send_replace(Arc::default());
    }

    fn recent(&self, files: TrackFiles) -> std::sync::MutexGuard<'_, Recent> {
        self.recent[files.index()].lock().expect("edge lock")
    }

    /// Keeps the bytes of part `index`, which belongs to segment `seq`.
    pub fn add_part(&self, files: TrackFiles, index: u64, seq: u64, bytes: Bytes) {
        let mut recent = self.recent(files);
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

    pub fn part(&self, files: TrackFiles, index: u64) -> Option<Bytes> {
        self.recent(files).parts.get(&index).cloned()
    }

    /// Segment `seq` was closed and written as `bytes`: its parts become
    /// slices of that one buffer, so memory holds each byte once.
    pub fn close_segment(&self, files: TrackFiles, seq: u64, bytes: Bytes, parts: &[Part]) {
        let mut recent = self.recent(files);
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

    /// Index of segment `seq`'s first part and how many it has so far, if
    /// it is one of the newest (the open one included).
    pub fn segment_span(&self, files: TrackFiles, seq: u64) -> Option<(u64, u64)> {
        self.recent(files).segments.get(&seq).copied()
    }

    /// A closed segment's bytes, if it is one of the newest.
    pub fn segment(&self, files: TrackFiles, seq: u64) -> Option<Bytes> {
        self.recent(files).closed.get(&seq).cloned()
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
                edge.add_part(TrackFiles::Audio, index, seq, Bytes::from(vec![i; 2]));
                index += 1;
            }
            if seq < 7 {
                edge.close_segment(
                    TrackFiles::Audio,
                    seq,
                    Bytes::from(vec![seq as u8; 6]),
                    &parts,
                );
            }
        }
        let audio = TrackFiles::Audio;
        assert_eq!(
            edge.part(audio, 22).unwrap(),
            vec![1, 1],
            "the open segment's part"
        );
        assert_eq!(
            edge.part(audio, 19).unwrap(),
            vec![6, 6],
            "a closed segment's part is a slice of its bytes"
        );
        assert_eq!(edge.segment(audio, 6).unwrap(), vec![6; 6]);
        let oldest_kept = 7 - RECENT_SEGMENTS as u64;
        assert!(edge.segment(audio, oldest_kept).is_some());
        assert!(edge.segment(audio, oldest_kept - 1).is_none());
        assert!(edge.part(audio, 0).is_none());
        assert!(
            edge.part(TrackFiles::Primary, 22).is_none(),
            "tracks are apart"
        );
    }

    #[test]
    fn the_same_bytes_get_the_same_etag() {
        let a = Playlist::new("#EXTM3U\n".into());
        assert_eq!(a, Playlist::new("#EXTM3U\n".into()));
        assert_ne!(a.etag, Playlist::new("#EXTM3U\n#\n".into()).etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
    }
}
