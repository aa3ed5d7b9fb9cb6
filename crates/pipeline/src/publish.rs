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
//! Recovery: the timeline is saved beside the playlists (`timeline.json`
//! and its journal, integer ticks: [`crate::saved`]). When ffmpeg is re-run over the stored chunks (after a
//! server restart or an ffmpeg crash), [`HlsPublisher::resume`] replays the
//! segments already published without rewriting them: URIs and durations
//! stay as players saw them, and the playlist never shrinks (RFC 8216
//! §6.2.1 forbids removing segments from an EVENT playlist).
//!
//! Encryption (RFC 8216 §5.2): with a content key, every segment file and
//! every part is AES-128-CBC encrypted on its own, under its segment's IV
//! ([`media::aes`]); init segments stay in the clear. A part is then
//! no longer a byte range of its encrypted segment file, so the edge keeps
//! the encrypted parts as they are, and a part read back from disk is cut
//! from the decrypted segment and encrypted again (the same bytes: the IV
//! is derived). No DASH manifest is written for encrypted media.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use base::clock::unix_ms;
use base::files::write_atomic;
use base::metrics::Metrics;
use base::zero_copy;
use media::aes::ContentKey;
use media::cmaf::{track_fragment, track_init};
use media::dash::{self, MpdSettings};
use media::fmp4::{Fragment, InitSegment, Piece, SplitError, Splitter, TrackInfo, TrackKind};
use media::hls::{self, MediaPlaylistWriter, PlaylistSettings};
use media::layout::{TrackFiles, MPD_FILE, MULTIVARIANT_FILE};
use media::timeline::{
    ClosedSegment, Progress, Rendition, Segmenter, StreamInfo, Timeline, TrackSegments,
};

use crate::edge::{EdgeChanges, LiveEdge};
use crate::saved::{self, TimelineFiles};
use crate::transcode::sidecar::Packager;

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
    /// Encrypts segments and parts (AES-128) when set.
    pub key: Option<ContentKey>,
}

/// One track's output: its segments in the making, its timeline, and
/// where its files go.
struct TrackOut {
    files: TrackFiles,
    /// `None` for muxed media (every track in one file).
    track: Option<TrackInfo>,
    cut: TrackSegments,
    timeline: Timeline,
    /// Parts of the segments closed so far: the index of the open
    /// segment's first part.
    closed_parts: u64,
    /// The playlist on disk, rendered without a pass over every segment.
    disk_playlist: MediaPlaylistWriter,
}

impl TrackOut {
    fn is_audio(&self) -> bool {
        self.track
            .as_ref()
            .is_some_and(|t| matches!(t.kind, TrackKind::Audio { .. }))
    }
}

pub struct HlsPublisher {
    settings: PublishSettings,
    splitter: Splitter,
    segmenter: Option<Segmenter>,
    /// Each track in files of its own (always, for new media).
    separate: bool,
    tracks: Vec<TrackOut>,
    /// What an earlier run published, until the init segment says which
    /// tracks there are.
    resumed: Vec<Timeline>,
    /// Segments below this seq were published by an earlier run: the
    /// re-encoded ones are checked and dropped, not written.
    replay_until: u64,
    /// When the playlists were last written.
    playlists_written: Option<std::time::Instant>,
    /// Segments were written that no playlist on disk lists yet.
    unlisted_segments: bool,
    /// Where live viewers are served from; `None` for the CLI importer.
    edge: Option<Arc<LiveEdge>>,
    /// See [`Rendition::available_from_ms`].
    available_from_ms: Option<u64>,
    /// Counts segments and parts published; `None` for the CLI importer.
    metrics: Option<Metrics>,
    /// The saved timeline, for a restart.
    saved: TimelineFiles,
}

impl HlsPublisher {
    pub fn new(settings: PublishSettings) -> Self {
        Self::resume(settings, Rendition::default())
    }

    /// Continues a rendition whose first segments `published` lists.
    pub fn resume(settings: PublishSettings, published: Rendition) -> Self {
        let replay_until = published.primary().segments.len() as u64;
        // A rendition begun before tracks were separate stays muxed.
        let separate = published.separate || published.tracks.is_empty();
        Self {
            saved: TimelineFiles::new(settings.dir.clone()),
            settings,
            splitter: Splitter::default(),
            segmenter: None,
            separate,
            tracks: Vec::new(),
            resumed: published.tracks,
            available_from_ms: published.available_from_ms,
            replay_until,
            playlists_written: None,
            unlisted_segments: false,
            edge: None,
            metrics: None,
        }
    }

    /// Counts the segments and parts this publisher lists.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
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
            key: self.settings.key,
        }
    }

    /// Reads a saved rendition; `None` when there is none (or it is
    /// unusable, in which case the media is rebuilt from scratch).
    pub fn load_rendition(dir: &std::path::Path) -> Option<Rendition> {
        saved::read(dir)
            .map_err(|e| tracing::warn!(error = %e, "ignoring an unreadable timeline"))
            .ok()
            .flatten()
    }

    /// What is published so far, every track.
    pub fn rendition(&self) -> Rendition {
        let tracks = if self.tracks.is_empty() {
            self.resumed.clone()
        } else {
            self.tracks.iter().map(|t| t.timeline.clone()).collect()
        };
        Rendition {
            separate: self.separate,
            tracks,
            available_from_ms: self.available_from_ms,
        }
    }

    /// Feeds ffmpeg output; returns true when a new segment was listed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, PublishError> {
        let mut segments = false;
        let mut parts = false;
        for piece in self.splitter.push(bytes)? {
            match piece {
                Piece::Init(init) => self.start(&init)?,
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
        let first = segments && self.tracks[0].timeline.segments.len() <= 1;
        if !(segments || parts) || !(first || self.playlists_due()) {
            return Ok(false);
        }
        if self.unlisted_segments {
            self.write_playlists()?;
            return Ok(true);
        }
        self.publish_edge(None, None);
        Ok(false)
    }

    /// The init segment says which tracks there are: one output each (the
    /// primary track and the first audio track), or one muxed output.
    fn start(&mut self, init: &InitSegment) -> Result<(), PublishError> {
        let primary = init.primary_track().ok_or(PublishError::NoTracks)?;
        let replaying = self.replay_until > 0;
        let target_ticks = self.settings.segment_target_ms * u64::from(primary.timescale) / 1000;
        let mut segmenter = Segmenter::new(primary.track_id, target_ticks, 0);
        if let Some(grid_ms) = self.settings.keyframe_grid_ms {
            segmenter = segmenter.with_keyframe_grid(grid_ms * u64::from(primary.timescale) / 1000);
        }
        self.segmenter = Some(segmenter);
        let chosen: Vec<Option<&TrackInfo>> = if self.separate {
            let audio = init.tracks.iter().find(|t| {
                t.track_id != primary.track_id && matches!(t.kind, TrackKind::Audio { .. })
            });
            std::iter::once(primary).chain(audio).map(Some).collect()
        } else {
            vec![None]
        };
        let mut resumed = std::mem::take(&mut self.resumed).into_iter();
        self.tracks.clear();
        for (index, track) in chosen.into_iter().enumerate() {
            let files = TrackFiles::at(index);
            let (info, init_bytes) = match track {
                Some(t) => (
                    StreamInfo::from_track(t),
                    track_init(&init.bytes, t.track_id)?,
                ),
                None => (StreamInfo::from_init(init), init.bytes.clone()),
            };
            write_atomic(&self.settings.dir.join(files.init()), &init_bytes, false)?;
            let published = resumed.next().unwrap_or_default();
            self.tracks.push(TrackOut {
                files,
                track: track.cloned(),
                cut: TrackSegments::new(track.map(|t| t.track_id)),
                closed_parts: published.closed_parts(),
                disk_playlist: MediaPlaylistWriter::new(files),
                timeline: Timeline {
                    info,
                    ended: false,
                    open: None,
                    ..published
                },
            });
        }
        // Playlists exist from here on, so the hls URL works (empty, live)
        // before the first segment is complete.
        if !replaying {
            self.write_playlists()?;
        }
        Ok(())
    }

    /// One fragment = one part of each track: kept in memory for live
    /// viewers, and the segments it closes written. Returns (a new segment
    /// was written, a new part was added).
    fn push_fragment(&mut self, fragment: Fragment) -> Result<(bool, bool), PublishError> {
        let primary_run = *fragment
            .runs
            .first()
            .expect("the splitter only yields fragments with a traf");
        let mut own_bytes = Vec::with_capacity(self.tracks.len());
        for out in &self.tracks {
            own_bytes.push(match &out.track {
                Some(track) => track_fragment(&fragment.bytes, track)?
                    .map(|bytes| (bytes, *fragment.run(track.track_id).expect("has a traf"))),
                None => Some((fragment.bytes.clone(), primary_run)),
            });
        }
        let segmenter = self.segmenter.as_mut().expect("splitter yields init first");
        let pushed = segmenter.push(fragment);
        let place = pushed.part;
        let closes_before = pushed.closed.iter().any(|c| c.segment.seq < place.seq);
        let closes_own = pushed.closed.iter().any(|c| c.segment.seq == place.seq);
        // Parts of a replayed segment were published by an earlier run.
        let new_part = place.seq >= self.replay_until;
        let mut listed = false;
        for (index, own) in own_bytes.into_iter().enumerate() {
            if closes_before {
                listed |= self.close(index)?;
            }
            let out = &mut self.tracks[index];
            if let Some((bytes, run)) = own {
                let audio = out.is_audio();
                let part = out.cut.add(place.seq, &bytes, &run, audio);
                if let (true, Some(edge)) = (new_part, &self.edge) {
                    let part_index = out.closed_parts + part as u64;
                    let bytes = match &self.settings.key {
                        Some(key) => key.encrypt(&key.iv(out.files.index(), place.seq), &bytes),
                        None => bytes,
                    };
                    // Sealed in memory, so the edge sends it without a copy.
                    edge.add_part(out.files, part_index, place.seq, zero_copy::seal(bytes));
                    if let Some(metrics) = &self.metrics {
                        metrics.parts_published.inc();
                    }
                }
            }
            out.timeline.open = out
                .cut
                .open_segment()
                .filter(|open| open.seq >= self.replay_until)
                .cloned();
            if closes_own {
                listed |= self.close(index)?;
            }
        }
        Ok((listed, new_part))
    }

    /// Closes track `index`'s open segment and writes it.
    fn close(&mut self, index: usize) -> Result<bool, PublishError> {
        let closed = self.tracks[index].cut.close();
        self.tracks[index].timeline.open = None;
        match closed {
            Some(closed) => self.publish(index, closed),
            None => Ok(false),
        }
    }

    /// End of ffmpeg output: publishes the last segment and the final
    /// playlists with `EXT-X-ENDLIST`.
    pub fn finish(mut self) -> Result<Rendition, PublishError> {
        self.splitter.finish()?;
        if let Some(segmenter) = self.segmenter.as_mut() {
            segmenter.finish();
        }
        for index in 0..self.tracks.len() {
            self.close(index)?;
        }
        for out in &mut self.tracks {
            out.timeline.ended = true;
            out.timeline.open = None;
        }
        self.write_playlists()?;
        Ok(self.rendition())
    }

    /// Writes a closed segment of track `index`; returns false when the
    /// segment was already published by an earlier run.
    fn publish(&mut self, index: usize, closed: ClosedSegment) -> Result<bool, PublishError> {
        let seq = closed.segment.seq;
        let out = &mut self.tracks[index];
        if seq < self.replay_until {
            if let Some(earlier) = out.timeline.segments.get(seq as usize) {
                if earlier.dur_ticks != closed.segment.dur_ticks {
                    // Kept as published: players may hold it already.
                    tracing::warn!(
                        seq,
                        before = earlier.dur_ticks,
                        now = closed.segment.dur_ticks,
                        "re-encoded segment differs"
                    );
                }
            }
            return Ok(false);
        }
        let path = self.settings.dir.join(out.files.segment(seq));
        match &self.settings.key {
            Some(key) => {
                let encrypted = key.encrypt(&key.iv(out.files.index(), seq), &closed.bytes);
                write_atomic(&path, &encrypted, false)?;
                if let Some(edge) = &self.edge {
                    // Its parts were encrypted one by one: kept as they are.
                    let bytes = edge_bytes(&path, encrypted);
                    edge.close_segment(out.files, seq, bytes, &[]);
                }
            }
            None => {
                write_atomic(&path, &closed.bytes, false)?;
                if let Some(edge) = &self.edge {
                    let parts = &closed.segment.parts;
                    edge.close_segment(out.files, seq, edge_bytes(&path, closed.bytes), parts);
                }
            }
        }
        out.closed_parts += closed.segment.parts.len() as u64;
        if index == 0 && self.available_from_ms.is_none() {
            let timescale = u64::from(out.timeline.info.timescale.max(1));
            let dur_ms = closed.segment.dur_ticks * 1000 / timescale;
            self.available_from_ms = Some(unix_ms().saturating_sub(dur_ms));
        }
        out.timeline.segments.push(closed.segment);
        if let Some(metrics) = &self.metrics {
            metrics.segments_published.inc();
        }
        Ok(true)
    }

    /// Playlists are rewritten at most every `playlist_interval_ms`.
    fn playlists_due(&self) -> bool {
        let interval = std::time::Duration::from_millis(self.settings.playlist_interval_ms);
        self.playlists_written
            .is_none_or(|at| at.elapsed() >= interval)
    }

    /// Writes the saved timeline and the playlists to disk, then the edge.
    /// The files keep the playlists as of the last closed segment (what a
    /// restart or a plain file server can vouch for); live viewers get the
    /// edge's, which also list the parts.
    fn write_playlists(&mut self) -> Result<(), PublishError> {
        self.unlisted_segments = false;
        let (multivariant, mpd) = self.with_rendition(|publisher, rendition| {
            publisher.saved.save(rendition)?;
            publisher.write_manifests(rendition)
        })?;
        let dir = &self.settings.dir;
        let settings = self.playlist_settings();
        for out in &mut self.tracks {
            // Without the open segment: taken out for the render (no copy
            // of the timeline), put back after.
            let open = out.timeline.open.take();
            let media = out.disk_playlist.render(&out.timeline, &settings).full;
            out.timeline.open = open;
            write_atomic(&dir.join(out.files.playlist()), media.as_bytes(), false)?;
        }
        self.publish_edge(multivariant, mpd);
        Ok(())
    }

    /// Lends every track's timeline as one rendition, without a copy: a
    /// copy of a two-hour timeline per segment was O(length) each time.
    fn with_rendition<R>(&mut self, f: impl FnOnce(&mut Self, &Rendition) -> R) -> R {
        let tracks = self
            .tracks
            .iter_mut()
            .map(|t| std::mem::take(&mut t.timeline))
            .collect();
        let rendition = Rendition {
            separate: self.separate,
            tracks,
            available_from_ms: self.available_from_ms,
        };
        let answer = f(self, &rendition);
        for (out, timeline) in self.tracks.iter_mut().zip(rendition.tracks) {
            out.timeline = timeline;
        }
        answer
    }

    /// The multivariant playlist (when it changes) and the DASH manifest,
    /// written to disk and returned for the edge.
    fn write_manifests(
        &self,
        rendition: &Rendition,
    ) -> Result<(Option<String>, Option<String>), PublishError> {
        let dir = &self.settings.dir;
        // The multivariant playlist changes only when the codecs become
        // known (init), with the first measured segment, and at the end.
        let mut multivariant = None;
        let primary = rendition.primary();
        if primary.segments.len() <= 1 || primary.ended {
            let text = hls::render_multivariant(rendition, self.settings.declared_bits_per_s);
            write_atomic(&dir.join(MULTIVARIANT_FILE), text.as_bytes(), false)?;
            multivariant = Some(text);
        }
        // DASH lists segments, not parts: it changes with them. Encrypted
        // media has none (docs/architecture.md, decision 11).
        let mpd = match self.settings.key {
            Some(_) => None,
            None => dash::render_mpd(rendition, &self.mpd_settings()),
        };
        if let Some(mpd) = &mpd {
            write_atomic(&dir.join(MPD_FILE), mpd.as_bytes(), false)?;
        }
        Ok((multivariant, mpd))
    }

    fn mpd_settings(&self) -> MpdSettings {
        MpdSettings {
            segment_target_ms: self.settings.segment_target_ms,
            availability_start_ms: self.available_from_ms.unwrap_or(0),
            publish_ms: unix_ms(),
            declared_bits_per_s: self.settings.declared_bits_per_s,
            grid_part_ms: self
                .settings
                .keyframe_grid_ms
                .map(|_| self.settings.part_target_ms),
        }
    }

    fn publish_edge(&mut self, multivariant: Option<String>, mpd: Option<String>) {
        self.playlists_written = Some(std::time::Instant::now());
        if let Some(edge) = &self.edge {
            let changes = EdgeChanges { multivariant, mpd };
            // The tracks' own timelines: a copy of a two-hour timeline for
            // every part was the largest cost of a long recording's part.
            let timelines: Vec<&Timeline> = self.tracks.iter().map(|t| &t.timeline).collect();
            edge.publish_tracks(&timelines, &self.playlist_settings(), changes);
        }
    }
}

impl Packager for HlsPublisher {
    fn push(&mut self, bytes: &[u8]) -> Result<bool, String> {
        HlsPublisher::push(self, bytes).map_err(|e| e.to_string())
    }

    fn progress(&self) -> Progress {
        let primary = self.tracks.first().map(|t| &t.timeline);
        match primary {
            Some(timeline) => Progress {
                separate: self.separate,
                segments: timeline.segments.len() as u64,
                duration_ms: timeline.duration_ms(),
                has_video: timeline.info.has_video,
            },
            None => Progress {
                separate: self.separate,
                ..Progress::default()
            },
        }
    }

    fn finish(self: Box<Self>) -> Result<Rendition, String> {
        HlsPublisher::finish(*self).map_err(|e| e.to_string())
    }
}

/// A segment just written to `path`, for the live edge: a map of the file
/// (no second copy in memory, sent from the page cache), or its bytes when
/// it cannot be mapped.
fn edge_bytes(path: &std::path::Path, bytes: Vec<u8>) -> Bytes {
    let len = bytes.len() as u64;
    if len < zero_copy::MAP_MIN_BYTES {
        return Bytes::from(bytes);
    }
    match std::fs::File::open(path).and_then(|file| zero_copy::map(file, len)) {
        Ok(mapped) if mapped.len() as u64 == len => mapped,
        _ => Bytes::from(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::layout::MEDIA_PLAYLIST_FILE;

    const PRIMARY: TrackFiles = TrackFiles::Primary;
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/frag-3s-kf1s.mp4");

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
            key: None,
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

        let rendition = publisher.finish().unwrap();
        assert!(rendition.separate);
        assert_eq!(rendition.tracks.len(), 2, "video and audio apart");
        for (index, timeline) in rendition.tracks.iter().enumerate() {
            let files = TrackFiles::at(index);
            assert_eq!(timeline.segments.len(), 3);
            assert!(
                (2980..=3033).contains(&timeline.duration_ms()),
                "{}",
                timeline.duration_ms()
            );
            let ended = std::fs::read_to_string(tmp.path().join(files.playlist())).unwrap();
            assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
            for seg in &timeline.segments {
                let bytes = std::fs::read(tmp.path().join(files.segment(seg.seq))).unwrap();
                assert_eq!(bytes.len() as u64, seg.len_bytes);
                assert_eq!(&bytes[4..8], b"moof");
            }
        }
        assert_eq!(rendition.tracks[0].info.codecs, "avc1.64000b");
        assert_eq!(rendition.tracks[1].info.codecs, "mp4a.40.2");
        let multivariant = std::fs::read_to_string(tmp.path().join(MULTIVARIANT_FILE)).unwrap();
        assert!(multivariant.contains("RESOLUTION=160x90"), "{multivariant}");
        assert!(
            multivariant.contains("CODECS=\"avc1.64000b,mp4a.40.2\""),
            "{multivariant}"
        );
        assert!(
            multivariant.contains("URI=\"audio.m3u8\""),
            "{multivariant}"
        );
    }

    fn settings(dir: &std::path::Path) -> PublishSettings {
        PublishSettings {
            dir: dir.to_path_buf(),
            segment_target_ms: 1000,
            part_target_ms: 500,
            declared_bits_per_s: 1,
            keyframe_grid_ms: None,
            playlist_interval_ms: 0,
            key: None,
        }
    }

    #[test]
    fn resuming_replays_published_segments_without_rewriting_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut first = HlsPublisher::new(settings(tmp.path()));
        first.push(&FIXTURE[..FIXTURE.len() * 2 / 3]).unwrap();
        let before_crash = HlsPublisher::load_rendition(tmp.path()).unwrap();
        assert_eq!(
            before_crash.primary().segments.len(),
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
        std::fs::remove_file(tmp.path().join(PRIMARY.segment(0))).unwrap();

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
        for (index, track) in timeline.tracks.iter().enumerate() {
            assert_eq!(track.segments[0], before_crash.tracks[index].segments[0]);
            assert_eq!(track.segments.len(), 3);
        }
        assert!(!tmp.path().join(PRIMARY.segment(0)).exists());
        assert!(tmp.path().join(PRIMARY.segment(2)).exists());
        assert!(tmp.path().join(TrackFiles::Audio.segment(2)).exists());

        let from_scratch = {
            let other = tempfile::tempdir().unwrap();
            let mut p = HlsPublisher::new(settings(other.path()));
            p.push(FIXTURE).unwrap();
            p.finish().unwrap()
        };
        assert_eq!(
            timeline.tracks, from_scratch.tracks,
            "same segments as one uninterrupted run"
        );
        assert_eq!(
            timeline.available_from_ms, before_crash.available_from_ms,
            "DASH's availabilityStartTime survives a restart"
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
            for (track, files) in view.tracks.iter().zip(TrackFiles::ALL) {
                let text = std::str::from_utf8(&track.media.bytes).unwrap();
                // Every part the live playlist names can be fetched right now.
                let uri_start = format!("URI=\"{}", files.part(0).trim_end_matches("000000.m4s"));
                for uri in text.split(&uri_start).skip(1) {
                    let index: u64 = uri[..6].parse().unwrap();
                    let hint = format!("PRELOAD-HINT:TYPE=PART,{uri_start}{}", &uri[..6]);
                    assert!(
                        text.contains(&hint) || edge.part(files, index).is_some(),
                        "part {index}\n{text}"
                    );
                }
                most_open_parts = most_open_parts.max(track.position.open_parts);
            }
        }
        assert!(
            most_open_parts >= 1,
            "parts were listed before a segment closed"
        );
        let rendition = publisher.finish().unwrap();
        for (timeline, files) in rendition.tracks.iter().zip(TrackFiles::ALL) {
            let mut index = 0;
            for segment in &timeline.segments {
                let file = std::fs::read(tmp.path().join(files.segment(segment.seq))).unwrap();
                let parts: Vec<u8> = (index..index + segment.parts.len() as u64)
                    .flat_map(|i| edge.part(files, i).unwrap().to_vec())
                    .collect();
                assert_eq!(parts, file, "segment {} is its parts", segment.seq);
                assert_eq!(edge.segment(files, segment.seq).unwrap(), file);
                index += segment.parts.len() as u64;
            }
            let view = edge.view();
            let track = view.track(files).unwrap();
            assert!(track.position.ended);
            let text = std::str::from_utf8(&track.media.bytes).unwrap();
            assert!(!text.contains("PART"), "finished: no parts");
        }
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
            tmp.path().join(PRIMARY.segment(1)).exists(),
            "written, not yet listed"
        );
        let rendition = publisher.finish().unwrap();
        let ended = std::fs::read_to_string(tmp.path().join(MEDIA_PLAYLIST_FILE)).unwrap();
        assert_eq!(rendition.primary().segments.len(), 3);
        assert!(ended.contains("seg-00002.m4s") && ended.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(HlsPublisher::load_rendition(tmp.path()).unwrap(), rendition);
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
            key: None,
        });
        publisher.push(&FIXTURE[..FIXTURE.len() / 2]).unwrap();
        assert!(matches!(
            publisher.finish(),
            Err(PublishError::Split(SplitError::Truncated(_)))
        ));
    }
}
