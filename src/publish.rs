//! Turns ffmpeg's fMP4 byte stream into published HLS files: the pure
//! splitter and segmenter decide, this module writes.
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

use crate::media::fmp4::{Piece, SplitError, Splitter};
use crate::media::hls::{self, INIT_FILE, MEDIA_PLAYLIST_FILE, MULTIVARIANT_FILE};

/// The saved timeline of a rendition, for recovery.
pub const TIMELINE_FILE: &str = "timeline.json";
use crate::media::timeline::{ClosedSegment, Segment, Segmenter, StreamInfo, Timeline};
use crate::store::write_atomic;

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
    /// When the playlists were last written.
    playlists_written: Option<std::time::Instant>,
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
            timeline: Timeline {
                ended: false,
                ..published
            },
            replay_until,
            playlists_written: None,
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

    /// Feeds ffmpeg output; returns true when the playlists changed (a
    /// segment was published and listed).
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, PublishError> {
        let mut published = false;
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
                    let segmenter = self.segmenter.as_mut().expect("splitter yields init first");
                    for closed in segmenter.push(fragment) {
                        published |= self.publish(closed)?;
                    }
                }
            }
        }
        Ok(published)
    }

    /// End of ffmpeg output: publishes the last segment and the final
    /// playlists with `EXT-X-ENDLIST`.
    pub fn finish(mut self) -> Result<Timeline, PublishError> {
        self.splitter.finish()?;
        if let Some(last) = self.segmenter.as_mut().and_then(Segmenter::finish) {
            self.publish(last)?;
        }
        self.timeline.ended = true;
        self.write_playlists()?;
        Ok(self.timeline)
    }

    /// Writes a closed segment and the playlists listing it; returns false
    /// when the segment was already published by an earlier run.
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
        self.timeline.segments.push(closed.segment);
        let interval = std::time::Duration::from_millis(self.settings.playlist_interval_ms);
        let due = self.timeline.segments.len() <= 1
            || self
                .playlists_written
                .is_none_or(|at| at.elapsed() >= interval);
        if due {
            self.write_playlists()?;
        }
        Ok(due)
    }

    fn write_playlists(&mut self) -> Result<(), PublishError> {
        self.playlists_written = Some(std::time::Instant::now());
        let dir = &self.settings.dir;
        let timeline = serde_json::to_vec(&self.timeline).map_err(io::Error::other)?;
        write_atomic(&dir.join(TIMELINE_FILE), &timeline, false)?;
        let media = hls::render_media_playlist(&self.timeline, self.settings.segment_target_ms);
        write_atomic(&dir.join(MEDIA_PLAYLIST_FILE), media.as_bytes(), false)?;
        // The multivariant playlist changes only when the codecs become
        // known (init), with the first measured segment, and at the end.
        if self.timeline.segments.len() <= 1 || self.timeline.ended {
            let multivariant =
                hls::render_multivariant(&self.timeline, self.settings.declared_bits_per_s);
            write_atomic(&dir.join(MULTIVARIANT_FILE), multivariant.as_bytes(), false)?;
        }
        Ok(())
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
        let playlist_before =
            std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
        // Proof of skipping: a replayed segment's file is never written again.
        std::fs::remove_file(tmp.path().join(Segment::file_name(0))).unwrap();

        let mut resumed = HlsPublisher::resume(settings(tmp.path()), before_crash.clone());
        let mut announced = 0;
        for chunk in FIXTURE.chunks(7000) {
            announced += usize::from(resumed.push(chunk).unwrap());
            let playlist = std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
            assert!(
                playlist.starts_with(playlist_before.trim_end()),
                "the playlist never loses a segment"
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
