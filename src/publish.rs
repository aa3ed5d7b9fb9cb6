//! Turns ffmpeg's fMP4 byte stream into published HLS files: the pure
//! splitter and segmenter decide, this module writes.
//!
//! Every fragment is a part (LL-HLS, RFC 8216bis §4.4.4.9): its bytes go to
//! the recording's [`LiveEdge`] in memory and the live playlist there lists
//! it at once. A segment, once closed, is also written to disk; parts are
//! never files of their own (a part of a closed segment is a byte range of
//! its file), so live low latency costs no extra disk.
//!
//! Publication order is what keeps players safe (RFC 8216 §6.2.1: a
//! playlist must only list segments that can be fetched): init and segment
//! files are renamed into place first, the media playlist that lists them
//! after. Every file appears atomically (write, then rename).
//!
//! Recovery: the timeline is saved beside the playlists (`timeline.json`,
//! integer ticks). When ffmpeg is re-run over the stored chunks (after a
//! server restart or an ffmpeg crash), [`HlsPublisher::resume`] replays the
//! segments already published without rewriting them: URIs and durations
//! stay as players saw them, and the playlist never shrinks (RFC 8216
//! §6.2.1 forbids removing segments from an EVENT playlist).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::edge::LiveEdge;
use crate::media::fmp4::{Fragment, Piece, SplitError, Splitter};
use crate::media::hls::{
    self, PlaylistSettings, INIT_FILE, MEDIA_PLAYLIST_FILE, MULTIVARIANT_FILE,
};
use crate::media::timeline::{ClosedSegment, Segment, Segmenter, StreamInfo, Timeline};
use crate::store::write_atomic;

/// The saved timeline of a rendition, for recovery.
pub const TIMELINE_FILE: &str = "timeline.json";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("ffmpeg output is not usable fMP4: {0}")]
    Split(#[from] SplitError),
    #[error("ffmpeg output has no tracks")]
    NoTracks,
    #[error("writing media files: {0}")]
    Io(#[from] io::Error),
}

/// Settings for one rendition's files.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    pub dir: PathBuf,
    pub segment_target_ms: u64,
    /// `PART-TARGET` of the live playlist: the encoder's fragment duration.
    pub part_target_ms: u64,
    /// BANDWIDTH floor while live (see [`hls::render_multivariant`]).
    pub declared_bits_per_s: u64,
    /// Set when the encoder forces keyframes every this many ms, so
    /// segments can close without waiting for the next keyframe's fragment.
    pub keyframe_grid_ms: Option<u64>,
    /// Playlists (and the saved timeline) are rewritten at most this often
    /// while media keeps coming; 0 rewrites them for every segment. Live
    /// input yields a segment every couple of seconds, so it uses 0; a file
    /// imported at hundreds of times real time would otherwise rewrite a
    /// growing playlist for every segment: quadratic work in its length.
    pub playlist_interval_ms: u64,
}

pub struct HlsPublisher {
    settings: PublishSettings,
    splitter: Splitter,
    segmenter: Option<Segmenter>,
    timeline: Timeline,
    /// Segments below this seq were published by an earlier run: the
    /// re-encoded ones are checked and dropped, not written.
    replay_until: u64,
    /// Parts of the segments closed so far: the index of the open
    /// segment's first part.
    closed_parts: u64,
    /// When the playlists were last written.
    playlists_written: Option<std::time::Instant>,
    /// Segments were written that no playlist on disk lists yet.
    unlisted_segments: bool,
    /// Where live viewers are served from; `None` for the CLI importer.
    edge: Option<Arc<LiveEdge>>,
}

impl HlsPublisher {
    pub fn new(settings: PublishSettings) -> Self {
        Self::resume(settings, Timeline::default())
    }

    /// Continues a rendition whose first segments `published` lists.
    pub fn resume(settings: PublishSettings, published: Timeline) -> Self {
        let replay_until = published.segments.len() as u64;
        Self {
            settings,
            splitter: Splitter::default(),
            segmenter: None,
            closed_parts: published.closed_parts(),
            timeline: Timeline {
                ended: false,
                open: None,
                ..published
            },
            replay_until,
            playlists_written: None,
            unlisted_segments: false,
            edge: None,
        }
    }

    /// Also publishes every part and playlist to `edge`, for live viewers.
    pub fn with_edge(mut self, edge: Arc<LiveEdge>) -> Self {
        self.edge = Some(edge);
        self
    }

    fn playlist_settings(&self) -> PlaylistSettings {
        PlaylistSettings {
            segment_target_ms: self.settings.segment_target_ms,
            part_target_ms: self.settings.part_target_ms,
        }
    }

    /// Reads a saved timeline; `None` when there is none (or it is unusable,
    /// in which case the rendition is rebuilt from scratch).
    pub fn load_timeline(dir: &std::path::Path) -> Option<Timeline> {
        let bytes = std::fs::read(dir.join(TIMELINE_FILE)).ok()?;
        serde_json::from_slice(&bytes)
            .map_err(|e| tracing::warn!(error = %e, "ignoring an unreadable timeline"))
            .ok()
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Feeds ffmpeg output; returns true when a new segment was listed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, PublishError> {
        let mut segments = false;
        let mut parts = false;
        for piece in self.splitter.push(bytes)? {
            match piece {
                Piece::Init(init) => {
                    let primary = init.primary_track().ok_or(PublishError::NoTracks)?;
                    self.timeline.info = StreamInfo::from_init(&init);
                    let replaying = self.replay_until > 0;
                    let target_ticks =
                        self.settings.segment_target_ms * u64::from(primary.timescale) / 1000;
                    let mut segmenter = Segmenter::new(primary.track_id, target_ticks, 0);
                    if let Some(grid_ms) = self.settings.keyframe_grid_ms {
                        segmenter = segmenter
                            .with_keyframe_grid(grid_ms * u64::from(primary.timescale) / 1000);
                    }
                    self.segmenter = Some(segmenter);
                    write_atomic(&self.settings.dir.join(INIT_FILE), &init.bytes, false)?;
                    // Playlists exist from here on, so the hls URL works
                    // (empty, live) before the first segment is complete.
                    if !replaying {
                        self.write_playlists()?;
                    }
                }
                Piece::Fragment(fragment) => {
                    let (segment, part) = self.push_fragment(fragment)?;
                    segments |= segment;
                    parts |= part;
                }
            }
        }
        self.unlisted_segments |= segments;
        // Rendered once per read of ffmpeg's output, after every piece in
        // it: the first segment at once, then at most every interval.
        let first = segments && self.timeline.segments.len() <= 1;
        if !(segments || parts) || !(first || self.playlists_due()) {
            return Ok(false);
        }
        if self.unlisted_segments {
            self.write_playlists()?;
            return Ok(true);
        }
        self.publish_edge(None);
        Ok(false)
    }

    /// One fragment = one part: kept in memory for live viewers, and the
    /// segments it closes written. Returns (a new segment was written, a
    /// new part was added).
    fn push_fragment(&mut self, fragment: Fragment) -> Result<(bool, bool), PublishError> {
        let bytes = self
            .edge
            .is_some()
            .then(|| Bytes::copy_from_slice(&fragment.bytes));
        let segmenter = self.segmenter.as_mut().expect("splitter yields init first");
        let pushed = segmenter.push(fragment);
        let place = pushed.part;
        let mut listed = false;
        let mut closes_own = None;
        for closed in pushed.closed {
            if closed.segment.seq < place.seq {
                listed |= self.publish(closed)?;
            } else {
                closes_own = Some(closed);
            }
        }
        // Parts of a replayed segment were published by an earlier run.
        let new_part = place.seq >= self.replay_until;
        if let (true, Some(edge), Some(bytes)) = (new_part, &self.edge, bytes) {
            edge.add_part(self.closed_parts + place.index as u64, place.seq, bytes);
        }
        self.timeline.open = self
            .segmenter
            .as_ref()
            .and_then(Segmenter::open_segment)
            .filter(|open| open.seq >= self.replay_until)
            .cloned();
        if let Some(closed) = closes_own {
            listed |= self.publish(closed)?;
        }
        Ok((listed, new_part))
    }

    /// End of ffmpeg output: publishes the last segment and the final
    /// playlists with `EXT-X-ENDLIST`.
    pub fn finish(mut self) -> Result<Timeline, PublishError> {
        self.splitter.finish()?;
        if let Some(last) = self.segmenter.as_mut().and_then(Segmenter::finish) {
            self.publish(last)?;
        }
        self.timeline.ended = true;
        self.timeline.open = None;
        self.write_playlists()?;
        Ok(self.timeline)
    }

    /// Writes a closed segment; returns false when the segment was already
    /// published by an earlier run.
    fn publish(&mut self, closed: ClosedSegment) -> Result<bool, PublishError> {
        let seq = closed.segment.seq;
        if seq < self.replay_until {
            let earlier = &self.timeline.segments[seq as usize];
            if earlier.dur_ticks != closed.segment.dur_ticks {
                // Kept as published: players may hold it already.
                tracing::warn!(
                    seq,
                    before = earlier.dur_ticks,
                    now = closed.segment.dur_ticks,
                    "re-encoded segment differs"
                );
            }
            return Ok(false);
        }
        let path = self.settings.dir.join(Segment::file_name(seq));
        write_atomic(&path, &closed.bytes, false)?;
        if let Some(edge) = &self.edge {
            edge.close_segment(seq, Bytes::from(closed.bytes), &closed.segment.parts);
        }
        self.closed_parts += closed.segment.parts.len() as u64;
        self.timeline.segments.push(closed.segment);
        Ok(true)
    }

    /// Playlists are rewritten at most every `playlist_interval_ms`.
    fn playlists_due(&self) -> bool {
        let interval = std::time::Duration::from_millis(self.settings.playlist_interval_ms);
        self.playlists_written
            .is_none_or(|at| at.elapsed() >= interval)
    }

    /// Writes the saved timeline and the playlists to disk, then the edge.
    /// The file keeps the playlist as of the last closed segment (what a
    /// restart or a plain file server can vouch for); live viewers get the
    /// edge's, which also lists the parts.
    fn write_playlists(&mut self) -> Result<(), PublishError> {
        self.unlisted_segments = false;
        let dir = &self.settings.dir;
        let timeline = serde_json::to_vec(&self.timeline).map_err(io::Error::other)?;
        write_atomic(&dir.join(TIMELINE_FILE), &timeline, false)?;
        let on_disk = Timeline {
            open: None,
            ..self.timeline.clone()
        };
        let media = hls::render_media_playlist(&on_disk, &self.playlist_settings());
        write_atomic(&dir.join(MEDIA_PLAYLIST_FILE), media.as_bytes(), false)?;
        // The multivariant playlist changes only when the codecs become
        // known (init), with the first measured segment, and at the end.
        let mut multivariant = None;
        if self.timeline.segments.len() <= 1 || self.timeline.ended {
            let text = hls::render_multivariant(&self.timeline, self.settings.declared_bits_per_s);
            write_atomic(&dir.join(MULTIVARIANT_FILE), text.as_bytes(), false)?;
            multivariant = Some(text);
        }
        self.publish_edge(multivariant);
        Ok(())
    }

    fn publish_edge(&mut self, multivariant: Option<String>) {
        self.playlists_written = Some(std::time::Instant::now());
        if let Some(edge) = &self.edge {
            edge.publish(&self.timeline, &self.playlist_settings(), multivariant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/frag-3s-kf1s.mp4");

    #[test]
    fn publishes_segments_then_playlists_and_ends_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut publisher = HlsPublisher::new(PublishSettings {
            dir: tmp.path().to_path_buf(),
            segment_target_ms: 1000,
            part_target_ms: 500,
            declared_bits_per_s: 1,
            keyframe_grid_ms: None,
            playlist_interval_ms: 0,
        });
        let mut published = 0;
        for chunk in FIXTURE.chunks(5000) {
            published += usize::from(publisher.push(chunk).unwrap());
        }
        // Keyframes at 0, 1, 2 s: two segments closed; the third closes at the end.
        assert_eq!(published, 2);
        let live = std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
        assert!(
            live.contains("seg-00001.m4s") && !live.contains("#EXT-X-ENDLIST"),
            "{live}"
        );

        let timeline = publisher.finish().unwrap();
        assert_eq!(timeline.segments.len(), 3);
        assert!(
            (3000..=3033).contains(&timeline.duration_ms()),
            "{}",
            timeline.duration_ms()
        );
        let ended = std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
        assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
        for seg in &timeline.segments {
            let bytes = std::fs::read(tmp.path().join(Segment::file_name(seg.seq))).unwrap();
            assert_eq!(bytes.len() as u64, seg.len_bytes);
            assert_eq!(&bytes[4..8], b"moof");
        }
        let multivariant = std::fs::read_to_string(tmp.path().join(MULTIVARIANT_FILE)).unwrap();
        assert!(multivariant.contains("RESOLUTION=160x90"), "{multivariant}");
    }

    fn settings(dir: &std::path::Path) -> PublishSettings {
        PublishSettings {
            dir: dir.to_path_buf(),
            segment_target_ms: 1000,
            part_target_ms: 500,
            declared_bits_per_s: 1,
            keyframe_grid_ms: None,
            playlist_interval_ms: 0,
        }
    }

    #[test]
    fn resuming_replays_published_segments_without_rewriting_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut first = HlsPublisher::new(settings(tmp.path()));
        first.push(&FIXTURE[..FIXTURE.len() * 2 / 3]).unwrap();
        let before_crash = HlsPublisher::load_timeline(tmp.path()).unwrap();
        assert_eq!(
            before_crash.segments.len(),
            1,
            "one segment published before the 'crash'"
        );
        let listed = |dir: &std::path::Path| {
            let text = std::fs::read(dir.join(MEDIA_PLAYLIST_FILE)).unwrap();
            let playlist = m3u8_rs::parse_media_playlist_res(&text).unwrap();
            playlist
                .segments
                .into_iter()
                .map(|s| (s.uri, s.duration.to_string()))
                .collect::<Vec<_>>()
        };
        let listed_before = listed(tmp.path());
        // Proof of skipping: a replayed segment's file is never written again.
        std::fs::remove_file(tmp.path().join(Segment::file_name(0))).unwrap();

        let mut resumed = HlsPublisher::resume(settings(tmp.path()), before_crash.clone());
        let mut announced = 0;
        for chunk in FIXTURE.chunks(7000) {
            announced += usize::from(resumed.push(chunk).unwrap());
            assert!(
                listed(tmp.path()).starts_with(&listed_before),
                "the playlist never loses or changes a segment"
            );
        }
        let timeline = resumed.finish().unwrap();
        assert_eq!(announced, 1, "only segment 1 is new before the end");
        assert_eq!(timeline.segments[0], before_crash.segments[0]);
        assert_eq!(timeline.segments.len(), 3);
        assert!(!tmp.path().join(Segment::file_name(0)).exists());
        assert!(tmp.path().join(Segment::file_name(2)).exists());

        let from_scratch = {
            let other = tempfile::tempdir().unwrap();
            let mut p = HlsPublisher::new(settings(other.path()));
            p.push(FIXTURE).unwrap();
            p.finish().unwrap()
        };
        assert_eq!(
            timeline, from_scratch,
            "same segments as one uninterrupted run"
        );
    }

    #[test]
    fn every_fragment_is_listed_as_a_part_before_its_segment_closes() {
        let tmp = tempfile::tempdir().unwrap();
        let edge = Arc::new(LiveEdge::default());
        let mut publisher = HlsPublisher::new(settings(tmp.path())).with_edge(edge.clone());
        let mut most_open_parts = 0;
        for chunk in FIXTURE.chunks(3000) {
            publisher.push(chunk).unwrap();
            let view = edge.view();
            let Some(media) = &view.media else { continue };
            let text = std::str::from_utf8(&media.bytes).unwrap();
            // Every part the live playlist names can be fetched right now.
            for uri in text.split("URI=\"part-").skip(1) {
                let index: u64 = uri[..6].parse().unwrap();
                let listed_as_hint =
                    text.contains(&format!("PRELOAD-HINT:TYPE=PART,URI=\"part-{}", &uri[..6]));
                assert!(
                    listed_as_hint || edge.part(index).is_some(),
                    "part {index}\n{text}"
                );
            }
            most_open_parts = most_open_parts.max(view.position.open_parts);
        }
        assert!(
            most_open_parts >= 1,
            "parts were listed before a segment closed"
        );
        let timeline = publisher.finish().unwrap();
        let mut index = 0;
        for segment in &timeline.segments {
            let file = std::fs::read(tmp.path().join(Segment::file_name(segment.seq))).unwrap();
            let parts: Vec<u8> = (index..index + segment.parts.len() as u64)
                .flat_map(|i| edge.part(i).unwrap().to_vec())
                .collect();
            assert_eq!(parts, file, "segment {} is its parts", segment.seq);
            assert_eq!(edge.segment(segment.seq).unwrap(), file);
            index += segment.parts.len() as u64;
        }
        assert!(edge.view().position.ended);
        let text = edge.view().media.clone().unwrap().bytes;
        assert!(
            !std::str::from_utf8(&text).unwrap().contains("PART"),
            "finished: no parts"
        );
    }

    #[test]
    fn fast_input_rewrites_playlists_at_most_every_interval() {
        let tmp = tempfile::tempdir().unwrap();
        let mut publisher = HlsPublisher::new(PublishSettings {
            playlist_interval_ms: 3_600_000,
            ..settings(tmp.path())
        });
        let mut listed = 0;
        for chunk in FIXTURE.chunks(5000) {
            listed += usize::from(publisher.push(chunk).unwrap());
        }
        assert_eq!(
            listed, 1,
            "the first segment at once, then not within the hour"
        );
        let playlist = std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
        assert!(!playlist.contains("seg-00001.m4s"), "{playlist}");
        assert!(
            tmp.path().join(Segment::file_name(1)).exists(),
            "written, not yet listed"
        );
        let timeline = publisher.finish().unwrap();
        let ended = std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
        assert_eq!(timeline.segments.len(), 3);
        assert!(ended.contains("seg-00002.m4s") && ended.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(HlsPublisher::load_timeline(tmp.path()).unwrap(), timeline);
    }

    #[test]
    fn truncated_output_fails_at_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let mut publisher = HlsPublisher::new(PublishSettings {
            dir: tmp.path().to_path_buf(),
            segment_target_ms: 1000,
            part_target_ms: 500,
            declared_bits_per_s: 1,
            keyframe_grid_ms: None,
            playlist_interval_ms: 0,
        });
        publisher.push(&FIXTURE[..FIXTURE.len() / 2]).unwrap();
        assert!(matches!(
            publisher.finish(),
            Err(PublishError::Split(SplitError::Truncated(_)))
        ));
    }
}
