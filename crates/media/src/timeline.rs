//! The timeline of one recording: the ordered segments (and their parts)
//! from which every playlist is rendered.
//!
//! A [`Segment`] is a run of fragments that starts with a sync sample of the
//! primary track, so each one is independently decodable (RFC 8216 §4.3.3.5
//! `EXT-X-INDEPENDENT-SEGMENTS`; ISO/IEC 23009-1 §5.3.9.6 SegmentTimeline).
//! Each fragment inside a segment is kept as a [`Part`] with its byte range:
//! LL-HLS `EXT-X-PART` (RFC 8216bis §4.4.4.9) and DASH chunks can be
//! rendered from the same timeline without reshaping it.
//!
//! While a recording is live, the segment being filled is kept as
//! [`Timeline::open`]: its parts are listed (LL-HLS) before the segment
//! itself can be. Every part has one URI for its whole life, numbered across
//! the recording ([`Part::file_name`]), so a preload hint always names the
//! next part, whichever segment it turns out to belong to. File names are
//! in [`crate::layout`].
//!
//! All time is integer ticks of the primary track's timescale.

use serde::{Deserialize, Serialize};

use crate::fmp4::{Fragment, InitSegment, TrackInfo, TrackRun};

/// What every playlist needs from the init segment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamInfo {
    pub timescale: u32,
    /// RFC 6381 codec strings of all tracks, comma separated.
    pub codecs: String,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub has_video: bool,
    pub has_audio: bool,
}

impl StreamInfo {
    /// One track on its own (a CMAF track file).
    pub fn from_track(track: &TrackInfo) -> Self {
        use crate::fmp4::TrackKind;
        let (width, height) = match track.kind {
            TrackKind::Video { width, height } => (Some(width), Some(height)),
            _ => (None, None),
        };
        Self {
            timescale: track.timescale.max(1),
            codecs: track.codec.clone(),
            width,
            height,
            has_video: width.is_some(),
            has_audio: matches!(track.kind, TrackKind::Audio { .. }),
        }
    }

    /// All tracks of an init segment together (muxed files).
    pub fn from_init(init: &InitSegment) -> Self {
        use crate::fmp4::TrackKind;
        let primary = init.primary_track();
        let video = init.tracks.iter().find_map(|t| match t.kind {
            TrackKind::Video { width, height } => Some((width, height)),
            _ => None,
        });
        Self {
            timescale: primary.map_or(1, |t| t.timescale.max(1)),
            codecs: init
                .tracks
                .iter()
                .map(|t| t.codec.as_str())
                .collect::<Vec<_>>()
                .join(","),
            width: video.map(|v| v.0),
            height: video.map(|v| v.1),
            has_video: video.is_some(),
            has_audio: init
                .tracks
                .iter()
                .any(|t| matches!(t.kind, TrackKind::Audio { .. })),
        }
    }
}

/// One fragment inside a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub dur_ticks: u64,
    pub independent: bool,
    pub offset_bytes: u64,
    pub len_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Position in the recording, from 0; also its media sequence number.
    pub seq: u64,
    pub start_ticks: u64,
    pub dur_ticks: u64,
    pub len_bytes: u64,
    pub parts: Vec<Part>,
}

impl Segment {
    pub fn end_ticks(&self) -> u64 {
        self.start_ticks + self.dur_ticks
    }
}

/// Published state of one recording's media.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timeline {
    pub info: StreamInfo,
    pub segments: Vec<Segment>,
    /// No segment will be added: playlists carry `EXT-X-ENDLIST`.
    pub ended: bool,
    /// The segment being filled, with the parts it has so far. Never
    /// saved: its bytes exist only in memory until it closes.
    #[serde(skip)]
    pub open: Option<Segment>,
}

impl Timeline {
    pub fn duration_ticks(&self) -> u64 {
        self.segments.iter().map(|s| s.dur_ticks).sum()
    }

    pub fn duration_ms(&self) -> u64 {
        self.duration_ticks() * 1000 / u64::from(self.info.timescale.max(1))
    }

    /// Peak bit rate of any segment (RFC 8216 §4.3.4.2 `BANDWIDTH`).
    pub fn peak_bits_per_s(&self) -> u64 {
        let timescale = u64::from(self.info.timescale.max(1));
        self.segments
            .iter()
            .filter(|s| s.dur_ticks > 0)
            .map(|s| s.len_bytes * 8 * timescale / s.dur_ticks)
            .max()
            .unwrap_or(0)
    }

    /// Parts of all closed segments: the index of the open segment's first.
    pub fn closed_parts(&self) -> u64 {
        self.segments.iter().map(|s| s.parts.len() as u64).sum()
    }

    /// Longest part so far (closed or open), in ticks.
    pub fn longest_part_ticks(&self) -> u64 {
        self.segments
            .iter()
            .chain(&self.open)
            .flat_map(|s| &s.parts)
            .map(|p| p.dur_ticks)
            .max()
            .unwrap_or(0)
    }

    /// Where a part's bytes are: (segment seq, byte offset, length), for a
    /// part of a closed segment (whose file exists).
    pub fn locate_part(&self, index: u64) -> Option<(u64, u64, u64)> {
        let mut first = 0;
        for segment in &self.segments {
            let count = segment.parts.len() as u64;
            if index < first + count {
                let part = segment.parts[(index - first) as usize];
                return Some((segment.seq, part.offset_bytes, part.len_bytes));
            }
            first += count;
        }
        None
    }

    pub fn average_bits_per_s(&self) -> u64 {
        let ticks = self.duration_ticks();
        let bytes: u64 = self.segments.iter().map(|s| s.len_bytes).sum();
        if ticks == 0 {
            return 0;
        }
        bytes * 8 * u64::from(self.info.timescale.max(1)) / ticks
    }
}

/// Every track of a recording's media, each with its own timeline: the
/// primary track first (video when there is any, see
/// [`InitSegment::primary_track`]), then audio. Their segments are cut from
/// the same fragments, so they have the same numbers and boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rendition {
    /// Each track in files of its own (CMAF). `false` for media packaged
    /// before segcast 0.2: one track of muxed audio and video.
    pub separate: bool,
    pub tracks: Vec<Timeline>,
    /// When media time 0 became available (Unix ms): the first segment's
    /// publication less its duration. DASH's `availabilityStartTime`.
    #[serde(default)]
    pub available_from_ms: Option<u64>,
}

impl Rendition {
    /// Reads `timeline.json`: a rendition, or the single muxed timeline
    /// that earlier versions saved (still played, still continued).
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice::<Self>(bytes).or_else(|_| {
            let muxed: Timeline = serde_json::from_slice(bytes)?;
            Ok(Self {
                separate: false,
                tracks: vec![muxed],
                available_from_ms: None,
            })
        })
    }

    /// The primary track's timeline (empty before the init segment).
    pub fn primary(&self) -> &Timeline {
        static EMPTY: std::sync::OnceLock<Timeline> = std::sync::OnceLock::new();
        self.tracks
            .first()
            .unwrap_or_else(|| EMPTY.get_or_init(Timeline::default))
    }

    /// Codecs of all tracks, for the multivariant playlist's `CODECS`.
    pub fn codecs(&self) -> String {
        self.tracks
            .iter()
            .map(|t| t.info.codecs.as_str())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn ended(&self) -> bool {
        self.tracks.first().is_some_and(|t| t.ended)
    }

    /// What a recording's status says of it.
    pub fn progress(&self) -> Progress {
        let primary = self.primary();
        Progress {
            separate: self.separate,
            segments: primary.segments.len() as u64,
            duration_ms: primary.duration_ms(),
            has_video: primary.info.has_video,
        }
    }
}

/// What the recording task learns of a rendition as it grows: a few
/// numbers, not the timeline (whose copy per segment grew with the
/// recording's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub separate: bool,
    /// The primary track's segments published.
    pub segments: u64,
    pub duration_ms: u64,
    pub has_video: bool,
}

/// Builds one track's segments from its own fragment bytes, closing them
/// where the [`Segmenter`] closes the primary track's (so every track's
/// segment `n` covers the same fragments).
#[derive(Debug)]
pub struct TrackSegments {
    /// `None`: every track, muxed, as ffmpeg wrote them.
    pub track_id: Option<u32>,
    open: Option<ClosedSegment>,
}

impl TrackSegments {
    pub fn new(track_id: Option<u32>) -> Self {
        Self {
            track_id,
            open: None,
        }
    }

    /// Adds this track's bytes of one fragment as the next part of segment
    /// `seq`; returns the part's index within it. `run` is the track's
    /// timing in that fragment (or the primary's, for muxed files).
    pub fn add(&mut self, seq: u64, bytes: &[u8], run: &TrackRun, audio: bool) -> usize {
        let open = self.open.get_or_insert_with(|| ClosedSegment {
            segment: Segment {
                seq,
                start_ticks: run.base_decode_ticks,
                dur_ticks: 0,
                len_bytes: 0,
                parts: Vec::new(),
            },
            bytes: Vec::new(),
        });
        let segment = &mut open.segment;
        segment.parts.push(Part {
            dur_ticks: run.dur_ticks,
            // Every audio frame decodes on its own.
            independent: audio || (run.starts_with_sync && run.samples > 0),
            offset_bytes: segment.len_bytes,
            len_bytes: bytes.len() as u64,
        });
        segment.dur_ticks += run.dur_ticks;
        segment.len_bytes += bytes.len() as u64;
        open.bytes.extend_from_slice(bytes);
        segment.parts.len() - 1
    }

    /// The segment being filled, if any.
    pub fn open_segment(&self) -> Option<&Segment> {
        self.open.as_ref().map(|o| &o.segment)
    }

    /// Closes the open segment (the primary track's closed there).
    pub fn close(&mut self) -> Option<ClosedSegment> {
        self.open.take()
    }
}

/// Where the fragment just pushed went: part `index` of segment `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlace {
    pub seq: u64,
    pub index: usize,
}

/// What one [`Segmenter::push`] did.
#[derive(Debug)]
pub struct Pushed {
    /// Segments closed by this fragment (at most two: the open one at this
    /// keyframe, and this one if it reaches the keyframe grid).
    pub closed: Vec<ClosedSegment>,
    /// Where the fragment is now a part.
    pub part: PartPlace,
}

/// How far a live timeline has got, in the terms of a blocking playlist
/// reload (RFC 8216bis §6.2.5.2, `_HLS_msn` / `_HLS_part`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LivePosition {
    /// Closed segments: media sequence numbers `0..segments` are listed.
    pub segments: u64,
    /// Parts of the newest closed segment.
    pub last_segment_parts: u64,
    /// Parts of the open segment (media sequence number `segments`).
    pub open_parts: u64,
    /// Index of the next part to come, counted over the whole recording.
    pub next_part: u64,
    pub ended: bool,
}

/// `_HLS_msn` more than this past the newest segment is a client error
/// (RFC 8216bis §6.2.5.2: "plus two" → 400).
const MSN_LOOKAHEAD: u64 = 2;

impl LivePosition {
    pub fn of(timeline: &Timeline) -> Self {
        Self::counted(timeline, timeline.closed_parts())
    }

    /// [`Self::of`] with the closed segments' parts already counted (by a
    /// [`crate::hls_media::MediaPlaylistWriter`]): a count over every
    /// segment, for every part, grew with the recording's length.
    pub fn counted(timeline: &Timeline, closed_parts: u64) -> Self {
        let open_parts = timeline.open.as_ref().map_or(0, |s| s.parts.len() as u64);
        Self {
            segments: timeline.segments.len() as u64,
            last_segment_parts: timeline.segments.last().map_or(0, |s| s.parts.len() as u64),
            open_parts,
            next_part: closed_parts + open_parts,
            ended: timeline.ended,
        }
    }

    /// Does a playlist at this position satisfy a request for segment
    /// `msn` (complete), or for its part `part`? A part index past the
    /// last part of a closed segment means part 0 of the next (§6.2.5.2).
    /// A finished playlist satisfies everything: nothing more will come.
    pub fn contains(&self, msn: u64, part: Option<u64>) -> bool {
        if self.ended {
            return true;
        }
        match part {
            None => msn < self.segments,
            Some(_) if msn + 1 < self.segments => true,
            Some(part) if msn + 1 == self.segments => {
                part < self.last_segment_parts || self.open_parts > 0
            }
            Some(part) => msn == self.segments && part < self.open_parts,
        }
    }

    /// A request so far ahead that waiting for it makes no sense: 400.
    pub fn too_far_ahead(&self, msn: u64) -> bool {
        let newest = if self.open_parts > 0 {
            self.segments
        } else {
            self.segments.saturating_sub(1)
        };
        !self.ended && msn > newest + MSN_LOOKAHEAD
    }
}

/// A segment the segmenter has closed, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSegment {
    pub segment: Segment,
    pub bytes: Vec<u8>,
}

/// Groups fragments into segments that start at sync samples of the
/// primary track and last at least `min_dur_ticks` (except the last one).
#[derive(Debug)]
pub struct Segmenter {
    primary_track_id: u32,
    min_dur_ticks: u64,
    /// Where the encoder is known to place keyframes (every N ticks from
    /// the first sample); see [`Segmenter::with_keyframe_grid`].
    grid_ticks: Option<u64>,
    origin_ticks: Option<u64>,
    next_seq: u64,
    open: Option<ClosedSegment>,
}

impl Segmenter {
    /// `target_dur_ticks` is the wanted segment duration; a segment closes at
    /// the first sync sample at or after 90% of it, so encoder keyframes that
    /// land a frame early still start a new segment.
    pub fn new(primary_track_id: u32, target_dur_ticks: u64, first_seq: u64) -> Self {
        Self {
            primary_track_id,
            min_dur_ticks: target_dur_ticks * 9 / 10,
            grid_ticks: None,
            origin_ticks: None,
            next_seq: first_seq,
            open: None,
        }
    }

    /// Declares that the encoder forces a keyframe on the first frame at or
    /// after every multiple of `grid_ticks` (ffmpeg `-force_key_frames
    /// expr:gte(t,n_forced*T)`). A segment then closes as soon as a fragment
    /// reaches the next grid point, instead of when the following keyframe
    /// fragment arrives: ffmpeg writes that one only after another fragment
    /// duration of media, which would hold every segment back that long.
    pub fn with_keyframe_grid(mut self, grid_ticks: u64) -> Self {
        self.grid_ticks = (grid_ticks > 0).then_some(grid_ticks);
        self
    }

    /// Adds a fragment as the next part; says which segments it closed.
    pub fn push(&mut self, fragment: Fragment) -> Pushed {
        let mut closed: Vec<ClosedSegment> = self.append(fragment).into_iter().collect();
        let open = self.open.as_ref().expect("append leaves a segment open");
        let part = PartPlace {
            seq: open.segment.seq,
            index: open.segment.parts.len() - 1,
        };
        if self.reaches_grid(&open.segment) {
            closed.extend(self.open.take());
        }
        Pushed { closed, part }
    }

    /// The segment being filled, if any: its parts can be listed already.
    pub fn open_segment(&self) -> Option<&Segment> {
        self.open.as_ref().map(|o| &o.segment)
    }

    fn reaches_grid(&self, segment: &Segment) -> bool {
        let (Some(grid), Some(origin)) = (self.grid_ticks, self.origin_ticks) else {
            return false;
        };
        let start = segment.start_ticks.saturating_sub(origin);
        let next_point = (start / grid + 1) * grid;
        start + segment.dur_ticks >= next_point
    }

    fn append(&mut self, fragment: Fragment) -> Option<ClosedSegment> {
        let run = fragment.run(self.primary_track_id).copied();
        if let Some(run) = run {
            self.origin_ticks.get_or_insert(run.base_decode_ticks);
        }
        let dur_ticks = run.map_or(0, |r| r.dur_ticks);
        let independent = run.is_some_and(|r| r.starts_with_sync && r.samples > 0);
        let closes = self
            .open
            .as_ref()
            .is_some_and(|open| independent && open.segment.dur_ticks >= self.min_dur_ticks);
        let closed = if closes { self.open.take() } else { None };

        let open = self.open.get_or_insert_with(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            ClosedSegment {
                segment: Segment {
                    seq,
                    start_ticks: run.map_or(0, |r| r.base_decode_ticks),
                    dur_ticks: 0,
                    len_bytes: 0,
                    parts: Vec::new(),
                },
                bytes: Vec::new(),
            }
        });
        let len_bytes = fragment.bytes.len() as u64;
        open.segment.parts.push(Part {
            dur_ticks,
            independent,
            offset_bytes: open.segment.len_bytes,
            len_bytes,
        });
        open.segment.dur_ticks += dur_ticks;
        open.segment.len_bytes += len_bytes;
        open.bytes.extend_from_slice(&fragment.bytes);
        closed
    }

    /// Closes the last segment at the end of the stream.
    pub fn finish(&mut self) -> Option<ClosedSegment> {
        self.open
            .take()
            .filter(|s| s.segment.dur_ticks > 0 || !s.bytes.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::TrackRun;

    fn frag(start_ticks: u64, dur_ticks: u64, sync: bool) -> Fragment {
        Fragment {
            bytes: vec![0; 100],
            runs: vec![
                TrackRun {
                    track_id: 2,
                    base_decode_ticks: start_ticks,
                    dur_ticks,
                    samples: 5,
                    starts_with_sync: sync,
                },
                TrackRun {
                    track_id: 1,
                    base_decode_ticks: 0,
                    dur_ticks: 999,
                    samples: 3,
                    starts_with_sync: true,
                },
            ],
        }
    }

    /// Feeds `(dur, sync)` fragments back to back; returns (start, dur, parts).
    fn segment(target: u64, frags: &[(u64, bool)]) -> Vec<(u64, u64, usize)> {
        let mut segmenter = Segmenter::new(2, target, 0);
        let mut start = 0;
        let mut out = Vec::new();
        for &(dur, sync) in frags {
            out.extend(segmenter.push(frag(start, dur, sync)).closed);
            start += dur;
        }
        out.extend(segmenter.finish());
        for (i, s) in out.iter().enumerate() {
            assert_eq!(s.segment.seq, i as u64);
            assert_eq!(s.bytes.len() as u64, s.segment.len_bytes);
        }
        out.iter()
            .map(|s| {
                (
                    s.segment.start_ticks,
                    s.segment.dur_ticks,
                    s.segment.parts.len(),
                )
            })
            .collect()
    }

    #[test]
    fn segments_start_at_sync_fragments_once_long_enough() {
        // Keyframes every 1 s (sync every other 0.5 s fragment), target 2 s.
        let frags = [
            (45, true),
            (45, false),
            (45, true),
            (45, false),
            (45, true),
            (45, false),
        ];
        assert_eq!(segment(180, &frags), [(0, 180, 4), (180, 90, 2)]);
    }

    #[test]
    fn a_non_sync_fragment_never_starts_a_segment() {
        // Long GOP: no sync sample for 4 s; the segment grows past the target.
        let frags = [
            (100, true),
            (100, false),
            (100, false),
            (100, false),
            (100, true),
        ];
        assert_eq!(segment(200, &frags), [(0, 400, 4), (400, 100, 1)]);
    }

    #[test]
    fn keyframe_a_frame_early_still_cuts() {
        // 2 s target at 90 kHz; the keyframe lands 1/30 s early.
        let frags = [(177_000, true), (180_000, true), (90_000, true)];
        assert_eq!(
            segment(180_000, &frags),
            [(0, 177_000, 1), (177_000, 180_000, 1), (357_000, 90_000, 1)]
        );
    }

    #[test]
    fn with_a_keyframe_grid_a_segment_closes_on_the_fragment_reaching_it() {
        // ffmpeg-style: 0.5 s fragments, keyframes forced at the 2 s grid,
        // frames of 3000 ticks so the keyframe lands at 2.0333 s.
        let mut segmenter = Segmenter::new(2, 180_000, 0).with_keyframe_grid(180_000);
        let frags = [
            (0, 45_000, true),
            (45_000, 45_000, false),
            (90_000, 45_000, false),
        ];
        for (start, dur, sync) in frags {
            assert!(segmenter.push(frag(start, dur, sync)).closed.is_empty());
        }
        // This fragment ends at 183_000 ≥ 180_000: closed now, not when the
        // next keyframe fragment arrives.
        let pushed = segmenter.push(frag(135_000, 48_000, false));
        assert_eq!(pushed.part, PartPlace { seq: 0, index: 3 });
        let closed = pushed.closed;
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].segment.start_ticks, closed[0].segment.dur_ticks),
            (0, 183_000)
        );
        // The next segment starts at the keyframe and targets the 360_000 point.
        assert!(segmenter
            .push(frag(183_000, 90_000, true))
            .closed
            .is_empty());
        assert_eq!(segmenter.open_segment().unwrap().parts.len(), 1);
        let closed = segmenter.push(frag(273_000, 90_000, false)).closed;
        assert_eq!(
            (closed[0].segment.seq, closed[0].segment.dur_ticks),
            (1, 180_000)
        );
        assert!(segmenter.finish().is_none());
    }

    #[test]
    fn the_grid_counts_from_the_first_sample() {
        let mut segmenter = Segmenter::new(2, 1000, 0).with_keyframe_grid(1000);
        assert!(segmenter.push(frag(5000, 600, true)).closed.is_empty());
        assert_eq!(
            segmenter.push(frag(5600, 400, false)).closed[0]
                .segment
                .dur_ticks,
            1000
        );
    }

    #[test]
    fn parts_record_byte_ranges_and_independence() {
        let mut segmenter = Segmenter::new(2, 1000, 7);
        assert!(segmenter.push(frag(0, 50, true)).closed.is_empty());
        let pushed = segmenter.push(frag(50, 50, false));
        assert_eq!(pushed.part, PartPlace { seq: 7, index: 1 });
        let seg = segmenter.finish().unwrap().segment;
        assert_eq!(seg.seq, 7);
        assert_eq!(
            seg.parts,
            [
                Part {
                    dur_ticks: 50,
                    independent: true,
                    offset_bytes: 0,
                    len_bytes: 100
                },
                Part {
                    dur_ticks: 50,
                    independent: false,
                    offset_bytes: 100,
                    len_bytes: 100
                },
            ]
        );
    }

    fn position(segments: u64, last_parts: u64, open_parts: u64) -> LivePosition {
        LivePosition {
            segments,
            last_segment_parts: last_parts,
            open_parts,
            next_part: 0,
            ended: false,
        }
    }

    #[test]
    fn blocking_requests_are_satisfied_by_whole_segments_or_parts() {
        // Segments 0..=2 closed (2 has 4 parts), segment 3 open with 2 parts.
        let at = position(3, 4, 2);
        assert!(at.contains(2, None));
        assert!(!at.contains(3, None), "segment 3 is not complete");
        assert!(at.contains(3, Some(1)));
        assert!(!at.contains(3, Some(2)), "part 3.2 does not exist yet");
        assert!(at.contains(0, Some(9)), "old segments are complete");
        // Past the last part of a closed segment = part 0 of the next one.
        assert!(at.contains(2, Some(4)));
        assert!(!position(3, 4, 0).contains(2, Some(4)));
        assert!(!at.contains(4, Some(0)));
        let ended = LivePosition { ended: true, ..at };
        assert!(
            ended.contains(99, Some(0)),
            "the final playlist answers all"
        );
    }

    #[test]
    fn more_than_two_segments_ahead_is_refused() {
        let at = position(3, 4, 2); // newest segment: 3 (open)
        assert!(!at.too_far_ahead(5));
        assert!(at.too_far_ahead(6));
        let fresh = position(0, 0, 0);
        assert!(!fresh.too_far_ahead(2) && fresh.too_far_ahead(3));
    }

    #[test]
    fn bitrates_come_from_bytes_over_duration() {
        let mut tl = Timeline {
            info: StreamInfo {
                timescale: 1000,
                ..Default::default()
            },
            ..Default::default()
        };
        for (seq, (dur, len)) in [(2000, 250_000), (1000, 250_000)].into_iter().enumerate() {
            tl.segments.push(Segment {
                seq: seq as u64,
                start_ticks: 0,
                dur_ticks: dur,
                len_bytes: len,
                parts: vec![],
            });
        }
        assert_eq!(tl.peak_bits_per_s(), 2_000_000);
        assert_eq!(tl.average_bits_per_s(), 500_000 * 8 * 1000 / 3000);
        assert_eq!(tl.duration_ms(), 3000);
    }
}
