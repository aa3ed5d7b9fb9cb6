//! The MPEG-DASH manifest (ISO/IEC 23009-1), rendered from the same
//! [`Rendition`] as the HLS playlists and listing the very same files.
//!
//! - One `Period`; one `AdaptationSet` per track (§5.3.3): dash.js plays
//!   audio and video only as separate adaptation sets, which is why every
//!   track has files of its own ([`super::cmaf`]).
//! - `SegmentTemplate` with a `SegmentTimeline` (§5.3.9.4, §5.3.9.6) in the
//!   track's own timescale: every `S` is the integer ticks of a segment, so
//!   nothing is rounded, and `$Number$` names the same `seg-NNNNN.m4s`
//!   files HLS lists.
//! - While recording: `type="dynamic"` (§5.3.1.2) with `availabilityStartTime`
//!   (when media time 0 became available), `publishTime`,
//!   `minimumUpdatePeriod` of one segment, no `timeShiftBufferDepth` (an
//!   EVENT stream keeps everything), and `UTCTiming` (§5.8.4.11) pointing at
//!   this server's clock. Finished: `type="static"` with
//!   `mediaPresentationDuration`.
//!
//! - A live manifest stays small however long the recording (§5.3.9.6
//!   `r` runs; issue #25): audio is cut
//!   at the video's segment boundaries, so its segments differ from them
//!   by less than one AAC frame (21 ms), yet each one's exact duration
//!   differs from its neighbours' (2 s is 93.75 frames), which left an
//!   `S` entry per audio segment: 300 after 20 minutes. Every track after
//!   the primary is listed on the primary's segment grid (its boundaries
//!   in the track's timescale), so audio repeats (`r`) wherever video
//!   does: one `S` each for a transcoded recording's 2 s keyframe grid.
//!   `$Number$` names the files, so nothing is fetched by a time that is
//!   not exact; players place media by its own `tfdt`. The finished
//!   manifest lists the same entries, every segment of the recording:
//!   an MPD update never changes an entry already published (§5.4), and
//!   the static manifest is the last update of the dynamic one.
//!
//! Written by hand: a manifest is a few fixed elements, and an XML
//! serializer crate would add a dependency for what `format!` does here;
//! values are numbers, codec strings and file names we make ourselves, and
//! are escaped all the same.

use std::fmt::Write;

use crate::layout::{TrackFiles, TIME_PATH};
use crate::timeline::{Rendition, Segment, Timeline};

/// What a manifest needs besides the rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpdSettings {
    pub segment_target_ms: u64,
    /// `availabilityStartTime`, Unix milliseconds.
    pub availability_start_ms: u64,
    /// `publishTime`, Unix milliseconds: when this version was made.
    pub publish_ms: u64,
    /// `bandwidth` of a track before any of its segments was measured.
    pub declared_bits_per_s: u64,
    /// Set when segments are cut on a fixed grid of `segment_target_ms`
    /// (encoded video, keyframes forced on it), in parts of this length:
    /// then segments are addressed by number (`SegmentTemplate@duration`)
    /// and, while live, announced a part after they start
    /// (`availabilityTimeOffset`), so a low-latency player asks for the
    /// open one and reads it as it grows. `None`: a `SegmentTimeline`.
    pub grid_part_ms: Option<u64>,
}

/// dash.js's live latency target (from `availabilityStartTime`, which is
/// when the first media became available here, so the camera is about the
/// ingest delay further behind): `ServiceDescription` (ISO/IEC 23009-1
/// §5.13 / DASH-IF IOP low-latency), with the drift allowed before a seek.
const LOW_LATENCY_TARGET_MS: u64 = 1200;
const LOW_LATENCY_MAX_MS: u64 = 2500;
/// Segments that may differ from the grid by this much still fit it: one
/// video frame of rounding, AAC's frame-sized cuts.
const GRID_TOLERANCE_MS: u64 = 25;

/// The manifest; `None` for a rendition DASH players cannot play (muxed
/// tracks, made before tracks were separate) or one without media yet.
pub fn render_mpd(rendition: &Rendition, settings: &MpdSettings) -> Option<String> {
    let primary = rendition.primary();
    if !rendition.separate || primary.info.timescale == 0 || primary.segments.is_empty() {
        return None;
    }
    let ended = rendition.ended();
    // Finished, every manifest lists its exact timeline: the number scheme
    // would end on a guess (players count `ceil(duration / segment)`, and
    // ffmpeg 5.1 one more), and the segments the live one implied are the
    // timeline's first entries all the same.
    let addressing = match settings.grid_part_ms {
        Some(part_ms) if !ended && on_fixed_grid(primary, settings.segment_target_ms) => {
            Addressing::Number {
                segment_ms: settings.segment_target_ms,
                offset_ms: settings.segment_target_ms.saturating_sub(part_ms),
            }
        }
        _ => Addressing::Timeline,
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" minBufferTime=\"PT{}S\" \
         maxSegmentDuration=\"{}\"",
        seconds(settings.segment_target_ms),
        duration(longest_segment_ms(rendition).max(settings.segment_target_ms)),
    );
    if ended {
        let _ = writeln!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\">",
            duration(presentation_duration_ms(rendition))
        );
    } else {
        let _ = writeln!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"{}\">",
            date_time(settings.availability_start_ms),
            date_time(settings.publish_ms),
            duration(settings.segment_target_ms),
        );
    }
    if !ended {
        service_description(&mut out, &addressing, settings.segment_target_ms);
    }
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    let origin_s = primary.segments[0].start_ticks as f64 / f64::from(primary.info.timescale);
    for (index, track) in rendition.tracks.iter().enumerate() {
        let grid = (index > 0).then(|| on_grid(primary, track)).flatten();
        let segments = grid.as_deref().unwrap_or(&track.segments);
        let set = Set {
            index,
            track,
            segments,
            origin_s,
            addressing,
        };
        adaptation_set(&mut out, &set, settings);
    }
    out.push_str("  </Period>\n");
    if !ended {
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{TIME_PATH}\"/>"
        );
    }
    out.push_str("</MPD>\n");
    Some(out)
}

/// How a representation's segments are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressing {
    /// Every segment listed with its exact duration (§5.3.9.6).
    Timeline,
    /// `$Number$` on a fixed duration (§5.3.9.5.3), while live: each
    /// segment is available `offset_ms` before its end (its first part).
    Number { segment_ms: u64, offset_ms: u64 },
}

/// Whether the primary track's segments are `segment_ms` each (the last
/// apart: it ends where the recording does) and follow one another.
fn on_fixed_grid(primary: &Timeline, segment_ms: u64) -> bool {
    let timescale = u64::from(primary.info.timescale.max(1));
    let ms = |ticks: u64| ticks * 1000 / timescale;
    let full = primary.segments.len().saturating_sub(1);
    primary.segments[..full]
        .iter()
        .all(|s| ms(s.dur_ticks).abs_diff(segment_ms) <= GRID_TOLERANCE_MS)
        && primary
            .segments
            .windows(2)
            .all(|w| w[0].end_ticks() == w[1].start_ticks)
}

/// The latency dash.js aims at while live (§5.13): low for a manifest a
/// low-latency player can follow part by part, else 1.5 segments behind.
fn service_description(out: &mut String, addressing: &Addressing, segment_ms: u64) {
    let (target, min, max) = match addressing {
        Addressing::Number { .. } => (
            LOW_LATENCY_TARGET_MS,
            LOW_LATENCY_TARGET_MS * 2 / 3,
            LOW_LATENCY_MAX_MS,
        ),
        Addressing::Timeline => (segment_ms * 3 / 2, segment_ms, segment_ms * 3),
    };
    let _ = writeln!(
        out,
        "  <ServiceDescription id=\"0\">\n    \
         <Latency target=\"{target}\" min=\"{min}\" max=\"{max}\"/>\n    \
         <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  </ServiceDescription>"
    );
}

/// `track`'s segments on `primary`'s segment boundaries, in `track`'s
/// timescale; `None` when a segment of `track` has no primary one of the
/// same number (then its own durations are listed).
fn on_grid(primary: &Timeline, track: &Timeline) -> Option<Vec<Segment>> {
    let first = primary.segments.first()?.seq;
    let (from, to) = (
        u64::from(primary.info.timescale.max(1)),
        u64::from(track.info.timescale.max(1)),
    );
    let scale = |ticks: u64| {
        ((u128::from(ticks) * u128::from(to) + u128::from(from) / 2) / u128::from(from)) as u64
    };
    track
        .segments
        .iter()
        .map(|segment| {
            let grid = primary
                .segments
                .get(segment.seq.checked_sub(first)? as usize)?;
            (grid.seq == segment.seq).then(|| {
                let start_ticks = scale(grid.start_ticks);
                Segment {
                    seq: segment.seq,
                    start_ticks,
                    dur_ticks: scale(grid.end_ticks()) - start_ticks,
                    len_bytes: segment.len_bytes,
                    parts: Vec::new(),
                }
            })
        })
        .collect()
}

/// One track's adaptation set, and what it lists.
struct Set<'a> {
    index: usize,
    track: &'a Timeline,
    segments: &'a [Segment],
    origin_s: f64,
    addressing: Addressing,
}

fn adaptation_set(out: &mut String, set: &Set<'_>, settings: &MpdSettings) {
    let Set {
        index,
        track,
        segments,
        origin_s,
        addressing,
    } = *set;
    let files = TrackFiles::at(index);
    let info = &track.info;
    let (content, mime) = if info.has_video {
        ("video", "video/mp4")
    } else {
        ("audio", "audio/mp4")
    };
    let bandwidth = match track.peak_bits_per_s() {
        0 => settings.declared_bits_per_s,
        measured => measured,
    };
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{index}\" contentType=\"{content}\" mimeType=\"{mime}\" \
         segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    let _ = write!(
        out,
        "      <Representation id=\"{content}\" codecs=\"{}\" bandwidth=\"{bandwidth}\"",
        escape(&info.codecs)
    );
    match (info.width, info.height) {
        (Some(w), Some(h)) => {
            let _ = write!(out, " width=\"{w}\" height=\"{h}\"");
        }
        _ if info.has_audio => {
            let _ = write!(out, " audioSamplingRate=\"{}\"", info.timescale);
        }
        _ => {}
    }
    out.push_str(">\n");
    // The primary track's first sample is the period's time 0, for every
    // track alike, so audio and video keep their relative timing.
    let offset_ticks = (origin_s * f64::from(info.timescale)).round() as u64;
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{offset_ticks}\" \
         startNumber=\"{}\" initialization=\"{}\" media=\"{}\"",
        info.timescale,
        segments.first().map_or(0, |s| s.seq),
        escape(&files.init()),
        escape(&files.segment(0).replace("00000", "$Number%05d$")),
    );
    match addressing {
        Addressing::Timeline => {
            out.push_str(">\n          <SegmentTimeline>\n");
            timeline_entries(out, segments);
            out.push_str("          </SegmentTimeline>\n");
            out.push_str("        </SegmentTemplate>\n");
        }
        Addressing::Number {
            segment_ms,
            offset_ms,
        } => {
            let ticks = segment_ms * u64::from(info.timescale) / 1000;
            let _ = write!(
                out,
                " duration=\"{ticks}\" availabilityTimeOffset=\"{}\" \
                 availabilityTimeComplete=\"false\"/>",
                seconds(offset_ms)
            );
            out.push('\n');
        }
    }
    out.push_str("      </Representation>\n");
    out.push_str("    </AdaptationSet>\n");
}

/// `<S t d r>` entries: a run of equal durations is one entry with a
/// repeat count; `t` wherever a segment does not start where the last ended.
fn timeline_entries(out: &mut String, segments: &[Segment]) {
    let mut at = 0;
    while at < segments.len() {
        let first = &segments[at];
        let mut repeat = 0;
        while segments.get(at + repeat + 1).is_some_and(|next| {
            next.dur_ticks == first.dur_ticks
                && next.start_ticks == first.start_ticks + (repeat as u64 + 1) * first.dur_ticks
        }) {
            repeat += 1;
        }
        let contiguous = at > 0 && {
            let previous = &segments[at - 1];
            previous.end_ticks() == first.start_ticks
        };
        out.push_str("            <S");
        if !contiguous {
            let _ = write!(out, " t=\"{}\"", first.start_ticks);
        }
        let _ = write!(out, " d=\"{}\"", first.dur_ticks);
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        out.push_str("/>\n");
        at += repeat + 1;
    }
}

/// From the period's time 0 (the primary track's first sample) to the end
/// of whichever track ends last, rounded up. Not the primary track's own
/// duration: AAC's last frame usually runs a few milliseconds past the
/// video, the browser's media element then ends there, and dash.js, seeing
/// its clock pass the period's end first, "ends" playback itself by seeking
/// back half a second and pausing (StreamController's playback-ended timer).
///
fn presentation_duration_ms(rendition: &Rendition) -> u64 {
    let primary = rendition.primary();
    let origin_ms = primary.segments.first().map_or(0, |first| {
        first.start_ticks * 1000 / u64::from(primary.info.timescale.max(1))
    });
    rendition
        .tracks
        .iter()
        .filter_map(|track| {
            let last = track.segments.last()?;
            Some((last.end_ticks() * 1000).div_ceil(u64::from(track.info.timescale.max(1))))
        })
        .max()
        .unwrap_or(origin_ms)
        .saturating_sub(origin_ms)
}

fn longest_segment_ms(rendition: &Rendition) -> u64 {
    let primary = rendition.primary();
    let timescale = u64::from(primary.info.timescale.max(1));
    primary
        .segments
        .iter()
        .map(|s| (s.dur_ticks * 1000).div_ceil(timescale))
        .max()
        .unwrap_or(0)
}

/// Milliseconds as decimal seconds.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// An `xs:duration` (`PT12.345S`).
fn duration(ms: u64) -> String {
    format!("PT{}S", seconds(ms))
}

/// An `xs:dateTime` in UTC with milliseconds.
fn date_time(unix_ms: u64) -> String {
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(unix_ms as i64);
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC date formats")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{assert_golden, rendition};

    const SETTINGS: MpdSettings = MpdSettings {
        segment_target_ms: 2000,
        availability_start_ms: 1_795_000_000_000,
        publish_ms: 1_795_000_012_345,
        declared_bits_per_s: 2_628_000,
        grid_part_ms: None,
    };

    /// The fixture with every video segment 2 s: a fixed grid.
    fn on_a_grid(ended: bool) -> Rendition {
        let mut rendition = rendition(ended);
        let video = &mut rendition.tracks[0];
        let mut start_ticks = video.segments[0].start_ticks;
        for segment in &mut video.segments {
            segment.start_ticks = start_ticks;
            segment.dur_ticks = 180_000;
            start_ticks += 180_000;
        }
        rendition
    }

    const LOW_LATENCY: MpdSettings = MpdSettings {
        grid_part_ms: Some(200),
        ..SETTINGS
    };

    #[test]
    fn a_grid_is_addressed_by_number_and_announced_a_part_early_while_live() {
        let live = render_mpd(&on_a_grid(false), &LOW_LATENCY).unwrap();
        assert_golden("manifest-live-ll.mpd", &live);
        assert!(live.contains("duration=\"180000\" availabilityTimeOffset=\"1.800\" availabilityTimeComplete=\"false\""), "{live}");
        assert!(
            live.contains("duration=\"96000\""),
            "audio on the same grid: {live}"
        );
        assert!(live.contains("<Latency target=\"1200\""), "{live}");
        assert!(!live.contains("<S "), "{live}");
        // Finished: the exact timeline, whose entries are the segments the
        // live manifest implied (2 s each, numbered from 0).
        let ended = render_mpd(&on_a_grid(true), &LOW_LATENCY).unwrap();
        assert!(
            ended.contains("<S t=\"0\" d=\"180000\" r=\"3\"/>"),
            "{ended}"
        );
        assert!(!ended.contains("availabilityTimeOffset") && !ended.contains("ServiceDescription"));
    }

    #[test]
    fn segments_off_the_grid_keep_their_timeline() {
        // The fixture's video alternates 2 s and 2.033 s (browser keyframes).
        let live = render_mpd(&rendition(false), &LOW_LATENCY).unwrap();
        assert!(live.contains("<SegmentTimeline>") && !live.contains("availabilityTimeOffset"));
        assert!(
            live.contains("<Latency target=\"3000\""),
            "1.5 segments: {live}"
        );
    }

    #[test]
    fn live_and_finished_manifests_list_the_hls_files() {
        let live = render_mpd(&rendition(false), &SETTINGS).unwrap();
        assert_golden("manifest-live.mpd", &live);
        let ended = render_mpd(&rendition(true), &SETTINGS).unwrap();
        assert_golden("manifest-ended.mpd", &ended);
        assert!(live.contains("type=\"dynamic\"") && live.contains("UTCTiming"));
        assert!(ended.contains("type=\"static\"") && !ended.contains("UTCTiming"));
        for text in [&live, &ended] {
            assert!(text.contains("media=\"seg-$Number%05d$.m4s\""));
            assert!(text.contains("media=\"audio-seg-$Number%05d$.m4s\""));
        }
    }

    #[test]
    fn the_timeline_is_the_segments_in_ticks() {
        let mut out = String::new();
        let tl = rendition(true);
        timeline_entries(&mut out, &tl.tracks[0].segments);
        // 2.000 s, 2.033 s, 2.000 s, 2.033 s: no two equal neighbours.
        assert_eq!(out.matches("<S").count(), 4, "{out}");
        assert!(
            out.starts_with("            <S t=\"0\" d=\"180000\"/>"),
            "{out}"
        );
        let mut equal = tl.tracks[0].segments.clone();
        for (i, s) in equal.iter_mut().enumerate() {
            s.dur_ticks = 180_000;
            s.start_ticks = i as u64 * 180_000;
        }
        equal[3].start_ticks += 9; // a gap before the last
        out.clear();
        timeline_entries(&mut out, &equal);
        assert_eq!(
            out,
            "            <S t=\"0\" d=\"180000\" r=\"2\"/>\n            <S t=\"540009\" d=\"180000\"/>\n"
        );
    }

    #[test]
    fn the_presentation_lasts_until_the_last_track_ends() {
        let mut tl = rendition(true);
        // The fixture's video (8.0667 s) outlasts its audio: rounded up.
        let video_ms = tl.tracks[0].duration_ms();
        assert!(render_mpd(&tl, &SETTINGS).unwrap().contains(&format!(
            "mediaPresentationDuration=\"{}\"",
            duration(video_ms + 1)
        )));
        // Audio running 11 ms (and a fraction) past the video, as AAC does.
        let audio = &mut tl.tracks[1];
        let timescale = u64::from(audio.info.timescale);
        let video_end_ticks = video_ms * timescale / 1000;
        let last = audio.segments.last_mut().unwrap();
        last.dur_ticks = video_end_ticks + timescale * 113 / 10_000 - last.start_ticks;
        let ended = render_mpd(&tl, &SETTINGS).unwrap();
        assert!(
            ended.contains(&format!(
                "mediaPresentationDuration=\"{}\"",
                duration(video_ms + 12)
            )),
            "{ended}"
        );
    }

    #[test]
    fn a_live_manifest_lists_audio_on_the_video_grid_and_stays_small() {
        // 600 segments: video every 2 s exactly (a keyframe grid), audio
        // 94 and 93 AAC frames in turn, as the fixture's.
        let mut live = rendition(false);
        for track in &mut live.tracks {
            let pattern: Vec<u64> = track.segments[..2].iter().map(|s| s.dur_ticks).collect();
            let mut start = 0;
            track.segments = (0..600u64)
                .map(|seq| {
                    let dur_ticks = match track.info.has_video {
                        true => 180_000,
                        false => pattern[seq as usize % 2],
                    };
                    start += dur_ticks;
                    Segment {
                        seq,
                        start_ticks: start - dur_ticks,
                        dur_ticks,
                        len_bytes: 1,
                        parts: Vec::new(),
                    }
                })
                .collect();
        }
        let text = render_mpd(&live, &SETTINGS).unwrap();
        assert_eq!(text.matches("<S ").count(), 2, "{text}");
        assert!(
            text.contains("<S t=\"0\" d=\"96000\" r=\"599\"/>"),
            "{text}"
        );
        assert!(text.len() < 2500, "{} B", text.len());
        // Finished: the same entries, the whole recording.
        live.tracks.iter_mut().for_each(|t| t.ended = true);
        let ended = render_mpd(&live, &SETTINGS).unwrap();
        assert_eq!(ended.matches("<S ").count(), 2, "{ended}");
        assert!(ended.contains("type=\"static\""));
        // A track whose segments the primary does not have: its own.
        live.tracks[1].segments[5].seq = 9999;
        let own = render_mpd(&live, &SETTINGS).unwrap();
        assert!(own.matches("<S ").count() > 500);
    }

    #[test]
    fn muxed_or_empty_renditions_have_no_manifest() {
        let mut muxed = rendition(true);
        muxed.separate = false;
        assert!(render_mpd(&muxed, &SETTINGS).is_none());
        assert!(render_mpd(&Rendition::default(), &SETTINGS).is_none());
    }
}
