//! HLS media playlists of one track, rendered whole and as delta updates,
//! at a cost that does not grow with the recording's length.
//!
//! - Media playlist (RFC 8216 §4.3.3): `EXT-X-MAP` because segments are
//!   fMP4 (§4.3.2.5); `EXT-X-PLAYLIST-TYPE:EVENT` while recording (§4.3.3.5:
//!   segments are only appended) and `EXT-X-ENDLIST` once ended. A finished
//!   playlist is version 7 (fMP4, §7) and has no LL tags: there is no live
//!   edge to be near.
//! - Low-Latency HLS while live (RFC 8216bis, draft-pantos-hls-rfc8216bis
//!   §4.4.3.7-8, §4.4.4.9, §4.4.5.3): `EXT-X-SERVER-CONTROL` (blocking
//!   reload, `PART-HOLD-BACK`, `CAN-SKIP-UNTIL`), `EXT-X-PART-INF`,
//!   `EXT-X-PART` for the segments of the last three target durations and
//!   for the open segment, and one `EXT-X-PRELOAD-HINT` for the next part.
//!   Version 9 (§7: `CAN-SKIP-UNTIL` and `EXT-X-SKIP`); VLC 3.0 and ffmpeg
//!   5.1 play such a playlist in full (../shared/design/player-facts.md).
//! - Delta updates (§4.4.3.8 `CAN-SKIP-UNTIL`, §4.4.5.2 `EXT-X-SKIP`,
//!   §6.2.5.1 Playlist Delta Updates): the skip boundary is six target
//!   durations, the least §4.4.3.8 allows; the answer to `_HLS_skip=YES`
//!   replaces the segments that end at least that long before the last one
//!   ends with `#EXT-X-SKIP:SKIPPED-SEGMENTS=n`, keeps `EXT-X-MEDIA-SEQUENCE`
//!   (§6.2.5.1: the skipped segments still count), and repeats the
//!   `EXT-X-MAP` the first listed segment is under (hls.js 1.x takes the
//!   init segment of a fragment from the tags before it in the text it
//!   parses). There are no `EXT-X-DATERANGE` tags, so `_HLS_skip=v2` gets
//!   the same answer and `CAN-SKIP-DATERANGES` is not offered.
//! - Encrypted recordings (RFC 8216 §5.2, §4.3.2.4): an
//!   `EXT-X-KEY:METHOD=AES-128` with the segment's own IV before each
//!   segment (and before its parts), always after `EXT-X-MAP`: the init
//!   segment stays in the clear, which every player the project supports
//!   plays (VLC 3.0 plays nothing when it is under a key).
//!
//! # Cost
//! A segment's lines never change once it has left the part window: a
//! [`MediaPlaylistWriter`] keeps them rendered, with where each one
//! starts, and a hash state over them. A new part then renders only the
//! header, the segments of the part window and the open segment; the full
//! playlist copies the kept text once, and the delta update slices it from
//! the first listed segment. The `ETag` of the full playlist is finished
//! from the kept hash state (see [`RenderedPlaylist::full_digest`]), so
//! nothing is hashed twice either.
//!
//! The lines are written here rather than through `m3u8-rs` (6.x), which
//! renders a whole playlist at once and has none of the LL tags; the
//! format is the one it writes (`EXTINF` with three decimals of the
//! duration as `f32`, tags in its order), so the golden files of playlists
//! written before did not change but for the LL header.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::aes::{iv_attribute, ContentKey};
use crate::layout::TrackFiles;
use crate::timeline::{Part, Segment, Timeline};

/// fMP4 segments in HLS need protocol version 7 (RFC 8216 §7).
const HLS_VERSION: usize = 7;

/// `CAN-SKIP-UNTIL` and `EXT-X-SKIP` need version 9 (RFC 8216bis §7).
const LL_HLS_VERSION: usize = 9;

/// Milliseconds are finer than any frame duration and keep EXTINF short.
const EXTINF_DECIMALS: usize = 3;

/// Parts are listed for segments ending within this many target durations
/// of the live edge (RFC 8216bis §4.4.4.9: at least three; MediaMTX and
/// Apple's reference tools use the same window).
const PART_WINDOW_TARGETS: u64 = 3;

/// The skip boundary of delta updates, in target durations: §4.4.3.8 asks
/// for at least six; more would only list more in every delta.
pub const SKIP_BOUNDARY_TARGETS: u64 = 6;

/// How a media playlist is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistSettings {
    pub segment_target_ms: u64,
    /// The part duration the encoder aims at (its fragment duration).
    pub part_target_ms: u64,
    /// The content key of an encrypted recording (its IVs are derived
    /// from it; the key itself is never written into a playlist).
    pub key: Option<ContentKey>,
}

/// One version of a track's media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPlaylist {
    pub full: String,
    /// SHA-256 over the kept segment lines, then the rest of the text in
    /// order: a function of the bytes alone (the same timeline renders the
    /// same digest in any server), computed without hashing the kept lines
    /// again. Not the SHA-256 of `full` itself.
    pub full_digest: [u8; 32],
    /// `None` when nothing is old enough to skip (the full playlist is
    /// the answer to `_HLS_skip` then) or the recording has ended.
    pub delta: Option<DeltaUpdate>,
    /// `EXT-X-TARGETDURATION`.
    pub target_duration_s: u64,
}

/// A Playlist Delta Update (RFC 8216bis §6.2.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaUpdate {
    pub text: String,
    /// `SKIPPED-SEGMENTS`: listed + skipped = the full playlist's segments.
    pub skipped_segments: u64,
}

/// The media playlist of one track, rendered from scratch.
pub fn render_media_playlist(
    timeline: &Timeline,
    settings: &PlaylistSettings,
    files: TrackFiles,
) -> String {
    MediaPlaylistWriter::new(files)
        .render(timeline, settings)
        .full
}

/// Renders one track's media playlist again and again as its timeline
/// grows, keeping the lines of the segments that can no longer change.
///
/// A timeline only grows (RFC 8216 §6.2.1: an EVENT playlist never loses
/// or changes a segment): the kept lines are dropped and rendered anew
/// when it does not look like the one they came from (fewer segments,
/// another first segment, timescale or settings), or when the target
/// duration changes (it widens the part window).
#[derive(Debug, Clone)]
pub struct MediaPlaylistWriter {
    files: TrackFiles,
    kept: Kept,
}

/// What is kept of the segments left of the part window.
#[derive(Debug, Clone, Default)]
struct Kept {
    /// What the lines were rendered for.
    settings: Option<PlaylistSettings>,
    timescale: u32,
    first_seq: u64,
    target_s: u64,
    /// The lines of the kept segments, oldest first.
    text: String,
    /// Where in `text` each kept segment's lines start.
    starts: Vec<usize>,
    /// SHA-256 state over `text`.
    hash: Sha256,
    /// Parts of the kept segments: the first part index after them.
    parts: u64,
    /// The longest kept segment's EXTINF, rounded to whole seconds.
    longest_s: u64,
    longest_part_ticks: u64,
    /// The last kept segment's end (the part window's left edge is later).
    end_ticks: u64,
}

impl Kept {
    fn fits(&self, timeline: &Timeline, settings: &PlaylistSettings) -> bool {
        let count = self.starts.len();
        self.settings.as_ref() == Some(settings)
            && self.timescale == timeline.info.timescale
            && timeline.segments.len() >= count
            && (count == 0
                || (timeline.segments[0].seq == self.first_seq
                    && timeline.segments[count - 1].end_ticks() == self.end_ticks))
    }
}

impl MediaPlaylistWriter {
    pub fn new(files: TrackFiles) -> Self {
        Self {
            files,
            kept: Kept::default(),
        }
    }

    /// Parts of `timeline`'s closed segments, as of the last render of it:
    /// the kept segments' count and the few after them.
    pub fn closed_parts(&self, timeline: &Timeline) -> u64 {
        let kept = self.kept.starts.len().min(timeline.segments.len());
        let recent: u64 = timeline.segments[kept..]
            .iter()
            .map(|s| s.parts.len() as u64)
            .sum();
        self.kept.parts + recent
    }

    /// The playlist as of `timeline`, whole and (live) as a delta update.
    pub fn render(&mut self, timeline: &Timeline, settings: &PlaylistSettings) -> RenderedPlaylist {
        if !self.kept.fits(timeline, settings) {
            self.reset(timeline, settings);
        }
        let mut target_s = self.target_duration_s(timeline, settings);
        if target_s != self.kept.target_s {
            self.reset(timeline, settings);
            target_s = self.target_duration_s(timeline, settings);
            self.kept.target_s = target_s;
        }
        let live = !timeline.ended;
        let window = live.then(|| PartWindow::new(timeline, target_s));
        self.keep(timeline, settings, window.as_ref());
        let head = self.header(timeline, settings, target_s);
        let kept = self.kept.starts.len();
        let mut recent = String::new();
        let mut next_part = self.kept.parts;
        for segment in &timeline.segments[kept..] {
            let listed = window.as_ref().is_some_and(|w| w.lists(segment));
            let first_part = listed.then_some(next_part);
            self.segment_lines(&mut recent, timeline, settings, segment, first_part);
            next_part += segment.parts.len() as u64;
        }
        let tail = if live {
            self.low_latency_tail(timeline, settings, next_part)
        } else {
            "#EXT-X-ENDLIST\n".to_string()
        };
        let mut full = String::with_capacity(head.len() + self.kept.text.len() + recent.len() + 64);
        for piece in [&head, &self.kept.text, &recent, &tail] {
            full.push_str(piece);
        }
        let mut hash = self.kept.hash.clone();
        for piece in [&head, &recent, &tail] {
            hash.update(piece.as_bytes());
        }
        let delta = live
            .then(|| self.delta(timeline, target_s, &head, &recent, &tail))
            .flatten();
        RenderedPlaylist {
            full,
            full_digest: hash.finalize().into(),
            delta,
            target_duration_s: target_s,
        }
    }

    fn reset(&mut self, timeline: &Timeline, settings: &PlaylistSettings) {
        self.kept = Kept {
            settings: Some(*settings),
            timescale: timeline.info.timescale,
            first_seq: timeline.segments.first().map_or(0, |s| s.seq),
            ..Kept::default()
        };
    }

    /// `EXT-X-TARGETDURATION` in whole seconds: at least the configured
    /// target and every EXTINF rounded to the nearest integer (§4.3.3.1).
    fn target_duration_s(&self, timeline: &Timeline, settings: &PlaylistSettings) -> u64 {
        let timescale = u64::from(timeline.info.timescale.max(1));
        let recent = timeline.segments[self.kept.starts.len()..]
            .iter()
            .map(|s| (s.dur_ticks + timescale / 2) / timescale)
            .max()
            .unwrap_or(0);
        recent
            .max(self.kept.longest_s)
            .max(settings.segment_target_ms.div_ceil(1000))
            .max(1)
    }

    /// Keeps the lines of the segments that have left the part window
    /// (all of them once the recording has ended: no parts are listed).
    fn keep(
        &mut self,
        timeline: &Timeline,
        settings: &PlaylistSettings,
        window: Option<&PartWindow>,
    ) {
        let timescale = u64::from(timeline.info.timescale.max(1));
        let mut text = std::mem::take(&mut self.kept.text);
        let from = text.len();
        for segment in &timeline.segments[self.kept.starts.len()..] {
            if window.is_some_and(|w| w.lists(segment)) {
                break;
            }
            self.kept.starts.push(text.len());
            self.segment_lines(&mut text, timeline, settings, segment, None);
            let kept = &mut self.kept;
            kept.parts += segment.parts.len() as u64;
            kept.longest_s = kept
                .longest_s
                .max((segment.dur_ticks + timescale / 2) / timescale);
            let longest_part = segment.parts.iter().map(|p| p.dur_ticks).max();
            kept.longest_part_ticks = kept.longest_part_ticks.max(longest_part.unwrap_or(0));
            kept.end_ticks = segment.end_ticks();
        }
        self.kept.hash.update(&text.as_bytes()[from..]);
        self.kept.text = text;
    }

    /// `PART-TARGET` in milliseconds: the configured part duration, or the
    /// longest part published if one came out longer (every part must
    /// fit). Rounded up: a part of 200.4 ms needs a target of 201.
    fn part_target_ms(&self, timeline: &Timeline, settings: &PlaylistSettings) -> u64 {
        let timescale = u64::from(timeline.info.timescale.max(1));
        let recent = timeline.segments[self.kept.starts.len()..]
            .iter()
            .chain(&timeline.open)
            .flat_map(|s| &s.parts)
            .map(|p| p.dur_ticks)
            .max()
            .unwrap_or(0);
        let longest_ms = (recent.max(self.kept.longest_part_ticks) * 1000).div_ceil(timescale);
        longest_ms.max(settings.part_target_ms).max(1)
    }

    /// From `#EXTM3U` to the last line before the first segment.
    fn header(&self, timeline: &Timeline, settings: &PlaylistSettings, target_s: u64) -> String {
        let live = !timeline.ended;
        let mut out = String::with_capacity(320);
        let version = if live { LL_HLS_VERSION } else { HLS_VERSION };
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:{target_s}\n"
        );
        if live {
            let part_target = self.part_target_ms(timeline, settings);
            // Three part targets: what RFC 8216bis §4.4.3.8 recommends,
            // and the least that lets a player ride out one late part.
            let _ = write!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},\
                 PART-HOLD-BACK={}\n#EXT-X-PART-INF:PART-TARGET={}\n",
                seconds(SKIP_BOUNDARY_TARGETS * target_s * 1000),
                seconds(3 * part_target),
                seconds(part_target)
            );
        }
        let first_seq = timeline.segments.first().map_or(0, |s| s.seq);
        if first_seq != 0 {
            let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_seq}");
        }
        out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        out
    }

    /// A segment's lines: `EXT-X-MAP` (first segment), `EXT-X-KEY`, its
    /// parts when `first_part` (the index of its first part) is given,
    /// `EXTINF` and the URI.
    fn segment_lines(
        &self,
        out: &mut String,
        timeline: &Timeline,
        settings: &PlaylistSettings,
        segment: &Segment,
        first_part: Option<u64>,
    ) {
        let files = self.files;
        if timeline.segments.first().map(|s| s.seq) == Some(segment.seq) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", files.init());
        }
        if let Some(key) = &settings.key {
            key_line(out, key, files, segment.seq);
        }
        let timescale = u64::from(timeline.info.timescale.max(1));
        for (part, index) in first_part
            .into_iter()
            .flat_map(|first| segment.parts.iter().zip(first..))
        {
            part_line(out, part, &files.part(index), timescale);
        }
        let duration = (segment.dur_ticks as f64 / timescale as f64) as f32;
        let _ = write!(
            out,
            "#EXTINF:{duration:.EXTINF_DECIMALS$},\n{}\n",
            files.segment(segment.seq)
        );
    }

    /// The open segment's parts and the preload hint. `next_part` is the
    /// index of the open segment's first part.
    fn low_latency_tail(
        &self,
        timeline: &Timeline,
        settings: &PlaylistSettings,
        mut next_part: u64,
    ) -> String {
        let files = self.files;
        let mut out = String::with_capacity(512);
        let timescale = u64::from(timeline.info.timescale.max(1));
        if timeline.segments.is_empty() && timeline.open.is_some() {
            // The first parts come before there is a segment to carry it.
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", files.init());
        }
        if let Some(key) = &settings.key {
            // The open segment's parts, and the hinted one, are under the
            // next segment's IV (hls.js decrypts the parts of the segment
            // still being written with the last EXT-X-KEY of the playlist).
            let next_seq = timeline
                .open
                .as_ref()
                .map(|s| s.seq)
                .or_else(|| timeline.segments.last().map(|s| s.seq + 1))
                .unwrap_or(0);
            key_line(&mut out, key, files, next_seq);
        }
        for part in timeline.open.iter().flat_map(|s| &s.parts) {
            part_line(&mut out, part, &files.part(next_part), timescale);
            next_part += 1;
        }
        // Always present, even before the first part: without it hls.js
        // (1.5-1.7) polls instead of blocking on the next part (gohlslib
        // notes the same).
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            files.part(next_part)
        );
        out
    }

    /// The delta update: the header, `EXT-X-SKIP` for the segments that
    /// end a skip boundary or more before the last one ends, then the rest.
    /// Those are always kept ones (the skip boundary is wider than the part
    /// window), so the rest is a slice of the kept text.
    fn delta(
        &self,
        timeline: &Timeline,
        target_s: u64,
        head: &str,
        recent: &str,
        tail: &str,
    ) -> Option<DeltaUpdate> {
        let end_ticks = timeline.segments.last()?.end_ticks();
        let timescale = u64::from(timeline.info.timescale.max(1));
        let boundary_ticks = SKIP_BOUNDARY_TARGETS * target_s * timescale;
        let skipped = timeline
            .segments
            .partition_point(|s| s.end_ticks() + boundary_ticks <= end_ticks)
            .min(self.kept.starts.len());
        if skipped == 0 {
            return None;
        }
        let listed = &self.kept.text[self.kept.starts[skipped]..];
        let mut text = String::with_capacity(head.len() + listed.len() + recent.len() + 128);
        text.push_str(head);
        let _ = write!(
            text,
            "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n#EXT-X-MAP:URI=\"{}\"\n",
            self.files.init()
        );
        for piece in [listed, recent, tail] {
            text.push_str(piece);
        }
        Some(DeltaUpdate {
            text,
            skipped_segments: skipped as u64,
        })
    }
}

/// Which closed segments get their parts listed: those ending within
/// [`PART_WINDOW_TARGETS`] target durations of the live edge.
struct PartWindow {
    from_ticks: u64,
}

impl PartWindow {
    fn new(timeline: &Timeline, target_s: u64) -> Self {
        let edge_ticks = timeline
            .open
            .as_ref()
            .or(timeline.segments.last())
            .map_or(0, Segment::end_ticks);
        let span = PART_WINDOW_TARGETS * target_s * u64::from(timeline.info.timescale.max(1));
        Self {
            from_ticks: edge_ticks.saturating_sub(span),
        }
    }

    fn lists(&self, segment: &Segment) -> bool {
        segment.end_ticks() > self.from_ticks
    }
}

/// The `EXT-X-KEY` line of segment `seq` of `files` (and of its parts).
fn key_line(out: &mut String, key: &ContentKey, files: TrackFiles, seq: u64) {
    let tag = m3u8_rs::Key {
        method: m3u8_rs::KeyMethod::AES128,
        uri: Some(crate::layout::KEY_FILE.into()),
        iv: Some(iv_attribute(&key.iv(files.index(), seq))),
        ..Default::default()
    };
    let mut attributes = Vec::new();
    tag.write_attributes_to(&mut attributes)
        .expect("writing to a Vec cannot fail");
    out.push_str("#EXT-X-KEY:");
    out.push_str(std::str::from_utf8(&attributes).expect("m3u8-rs writes UTF-8"));
    out.push('\n');
}

fn part_line(out: &mut String, part: &Part, uri: &str, timescale: u64) {
    let independent = if part.independent {
        ",INDEPENDENT=YES"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{uri}\"{independent}",
        seconds((part.dur_ticks * 1000 + timescale / 2) / timescale),
    );
}

/// Milliseconds as decimal seconds with three digits.
pub(crate) fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::assert_golden;
    use crate::timeline::StreamInfo;

    const SETTINGS: PlaylistSettings = PlaylistSettings {
        segment_target_ms: 2000,
        part_target_ms: 500,
        key: None,
    };

    /// A 2 s segment `seq` of 0.5 s parts (90 kHz), or `parts` of it.
    fn segment(seq: u64, parts: usize) -> Segment {
        Segment {
            seq,
            start_ticks: seq * 180_000,
            dur_ticks: parts as u64 * 45_000,
            len_bytes: parts as u64 * 1000,
            parts: (0..parts)
                .map(|i| Part {
                    dur_ticks: 45_000,
                    independent: i == 0,
                    offset_bytes: i as u64 * 1000,
                    len_bytes: 1000,
                })
                .collect(),
        }
    }

    fn live(segments: u64, open_parts: usize) -> Timeline {
        Timeline {
            info: StreamInfo {
                timescale: 90_000,
                codecs: "avc1.64001f".into(),
                width: Some(1280),
                height: Some(720),
                has_video: true,
                has_audio: false,
            },
            segments: (0..segments).map(|s| segment(s, 4)).collect(),
            ended: false,
            open: (open_parts > 0).then(|| segment(segments, open_parts)),
        }
    }

    /// Listed segment URIs (`EXTINF` lines are followed by one).
    fn uris(text: &str) -> Vec<&str> {
        let lines: Vec<&str> = text.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].starts_with("#EXTINF:"))
            .map(|w| w[1])
            .collect()
    }

    #[test]
    fn kept_lines_render_what_a_fresh_writer_renders() {
        let mut writer = MediaPlaylistWriter::new(TrackFiles::Audio);
        let key = ContentKey::from_bytes([7; 16]);
        for settings in [
            SETTINGS,
            PlaylistSettings {
                key: Some(key),
                ..SETTINGS
            },
        ] {
            for segments in 0..30 {
                for open in 0..4 {
                    let mut tl = live(segments, open);
                    if segments == 20 {
                        // A 3.6 s segment: the target duration grows to 4 s.
                        tl.segments[19].dur_ticks = 324_000;
                    }
                    if segments > 20 {
                        continue;
                    }
                    let kept = writer.render(&tl, &settings);
                    let fresh = MediaPlaylistWriter::new(TrackFiles::Audio).render(&tl, &settings);
                    assert_eq!(kept, fresh, "{segments} segments, {open} open parts");
                    assert_eq!(writer.closed_parts(&tl), tl.closed_parts(), "{segments}");
                }
            }
            let mut ended = live(12, 0);
            ended.ended = true;
            let kept = writer.render(&ended, &settings);
            assert_eq!(
                kept,
                MediaPlaylistWriter::new(TrackFiles::Audio).render(&ended, &settings)
            );
            assert!(kept.delta.is_none() && kept.full.ends_with("#EXT-X-ENDLIST\n"));
        }
    }

    #[test]
    fn the_full_digest_depends_on_every_byte() {
        let a = MediaPlaylistWriter::new(TrackFiles::Primary).render(&live(10, 1), &SETTINGS);
        let b = MediaPlaylistWriter::new(TrackFiles::Primary).render(&live(10, 2), &SETTINGS);
        let c = MediaPlaylistWriter::new(TrackFiles::Audio).render(&live(10, 1), &SETTINGS);
        assert_ne!(a.full_digest, b.full_digest);
        assert_ne!(a.full_digest, c.full_digest);
    }

    #[test]
    fn the_server_offers_delta_updates_six_targets_back() {
        let full = render_media_playlist(&live(2, 1), &SETTINGS, TrackFiles::Primary);
        assert!(full.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"), "{full}");
        assert!(
            full.contains(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,\
                 PART-HOLD-BACK=1.500\n"
            ),
            "{full}"
        );
        let rendered = MediaPlaylistWriter::new(TrackFiles::Primary).render(&live(2, 1), &SETTINGS);
        assert!(rendered.delta.is_none(), "nothing is 12 s old yet");
    }

    #[test]
    fn a_delta_update_skips_what_ends_twelve_seconds_before_the_last_segment() {
        // 12 closed segments (0-24 s) and 2 parts of the open one: segments
        // 0-5 end at or before 12 s, 24 s - 12 s.
        let rendered =
            MediaPlaylistWriter::new(TrackFiles::Primary).render(&live(12, 2), &SETTINGS);
        let delta = rendered.delta.expect("old segments to skip");
        assert_golden("media-live-ll-delta.m3u8", &delta.text);
        assert_eq!(delta.skipped_segments, 6);
        let (full, listed) = (uris(&rendered.full), uris(&delta.text));
        assert_eq!(delta.skipped_segments as usize + listed.len(), full.len());
        assert_eq!(
            &full[6..],
            &listed[..],
            "the newest segments, as listed in full"
        );
        let skip = delta.text.find("#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n").unwrap();
        let map = delta.text.find("#EXT-X-MAP:URI=\"init.mp4\"\n").unwrap();
        let first = delta.text.find("seg-00006.m4s").unwrap();
        assert!(skip < map && map < first, "{}", delta.text);
        // Everything after the skipped segments is the full playlist's.
        let tail = &rendered.full[rendered.full.find("#EXTINF:2.000,\nseg-00006").unwrap()..];
        assert!(delta.text.ends_with(tail));
        assert!(delta.text.len() < rendered.full.len() / 2 + 800);
    }

    #[test]
    fn an_encrypted_delta_keys_its_first_listed_segment() {
        let settings = PlaylistSettings {
            key: Some(ContentKey::from_bytes([7; 16])),
            ..SETTINGS
        };
        let rendered =
            MediaPlaylistWriter::new(TrackFiles::Primary).render(&live(12, 2), &settings);
        let delta = rendered.delta.unwrap().text;
        let map = delta.find("#EXT-X-MAP").unwrap();
        let key = delta.find("#EXT-X-KEY:METHOD=AES-128").unwrap();
        assert!(
            map < key && key < delta.find("seg-00006.m4s").unwrap(),
            "{delta}"
        );
    }
}
