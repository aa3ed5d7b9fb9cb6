//! HLS playlists rendered from a [`Timeline`] (RFC 8216).
//!
//! - Media playlists (§4.3.3), with the LL-HLS tags of RFC 8216bis while
//!   live and delta updates (§6.2.5.1): [`crate::hls_media`], re-exported
//!   here.
//! - Multivariant playlist (§4.3.4.2), through `m3u8-rs`: one variant with
//!   `CODECS`, `RESOLUTION` and a measured `BANDWIDTH`, so players can pick
//!   decoders before fetching any media; when audio is a track of its own,
//!   an `EXT-X-MEDIA` audio rendition (§4.3.4.1) that the variant names in
//!   `AUDIO`, so HLS lists the very files the DASH manifest lists.

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ClosedCaptionGroupId, MasterPlaylist, Resolution,
    VariantStream,
};

pub use crate::hls_media::{
    render_media_playlist, DeltaUpdate, MediaPlaylistWriter, PlaylistSettings, RenderedPlaylist,
    SKIP_BOUNDARY_TARGETS,
};
use crate::layout::{TrackFiles, MEDIA_PLAYLIST_FILE};
use crate::timeline::{Rendition, Timeline};

/// `GROUP-ID` of the audio rendition.
const AUDIO_GROUP: &str = "audio";

/// fMP4 segments in HLS need protocol version 7 (RFC 8216 §7).
const HLS_VERSION: usize = 7;

/// `EXT-X-TARGETDURATION` in whole seconds: at least the configured target
/// and at least every EXTINF rounded to the nearest integer (§4.3.3.1).
/// (A [`MediaPlaylistWriter`] keeps this as it renders, without a pass
/// over every segment.)
pub fn target_duration_s(timeline: &Timeline, configured_target_ms: u64) -> u64 {
    let timescale = u64::from(timeline.info.timescale.max(1));
    let longest = timeline
        .segments
        .iter()
        .map(|s| (s.dur_ticks + timescale / 2) / timescale)
        .max()
        .unwrap_or(0);
    longest.max(configured_target_ms.div_ceil(1000)).max(1)
}

/// `PART-TARGET` in milliseconds: the configured part duration, or the
/// longest part published if one came out longer (every part must fit).
/// Rounded up: a part of 200.4 ms needs a target of 201.
pub fn part_target_ms(timeline: &Timeline, configured_part_ms: u64) -> u64 {
    let timescale = u64::from(timeline.info.timescale.max(1));
    let longest_ms = (timeline.longest_part_ticks() * 1000).div_ceil(timescale);
    longest_ms.max(configured_part_ms).max(1)
}

/// The multivariant playlist; `declared_bits_per_s` bounds BANDWIDTH from
/// below while live, when only the first segments have been measured.
pub fn render_multivariant(rendition: &Rendition, declared_bits_per_s: u64) -> String {
    let primary = rendition.primary();
    let info = &primary.info;
    let resolution = match (info.width, info.height) {
        (Some(w), Some(h)) => Some(Resolution {
            width: w.into(),
            height: h.into(),
        }),
        _ => None,
    };
    // Audio in a rendition of its own: the variant plays both at once.
    let audio = (rendition.separate && rendition.tracks.len() > 1).then(|| AlternativeMedia {
        media_type: AlternativeMediaType::Audio,
        uri: Some(TrackFiles::Audio.playlist().into()),
        group_id: AUDIO_GROUP.into(),
        name: "audio".into(),
        default: true,
        autoselect: true,
        ..Default::default()
    });
    let peak: u64 = rendition.tracks.iter().map(Timeline::peak_bits_per_s).sum();
    let average: u64 = rendition
        .tracks
        .iter()
        .map(Timeline::average_bits_per_s)
        .sum();
    let ended = rendition.ended();
    let codecs = rendition.codecs();
    let variant = VariantStream {
        uri: MEDIA_PLAYLIST_FILE.into(),
        bandwidth: if ended {
            peak
        } else {
            peak.max(declared_bits_per_s)
        },
        average_bandwidth: ended.then_some(average),
        codecs: (!codecs.is_empty()).then_some(codecs),
        resolution,
        audio: audio.as_ref().map(|_| AUDIO_GROUP.into()),
        // The video carries no CEA-608/708 captions (RFC 8216bis §4.4.6.2).
        // Said outright, because Shaka 5.2.8+ otherwise probes segments for
        // them while live and picks the open segment, which has parts but
        // no URI yet, and fails to start (`getScheme` of undefined).
        closed_captions: Some(ClosedCaptionGroupId::None),
        ..Default::default()
    };
    let playlist = MasterPlaylist {
        version: Some(HLS_VERSION),
        independent_segments: true,
        variants: vec![variant],
        alternatives: audio.into_iter().collect(),
        ..Default::default()
    };
    write_text(|w| playlist.write_to(w))
}

fn write_text(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("m3u8-rs writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::INIT_FILE;
    use crate::timeline::{Part, Segment, StreamInfo};

    pub(crate) use crate::fixtures::assert_golden;

    const SETTINGS: PlaylistSettings = PlaylistSettings {
        segment_target_ms: 2000,
        part_target_ms: 500,
        key: None,
    };

    fn timeline(durs_ticks: &[u64], ended: bool) -> Timeline {
        let mut start_ticks = 0;
        let segments = durs_ticks
            .iter()
            .enumerate()
            .map(|(seq, &dur_ticks)| {
                let seg = Segment {
                    seq: seq as u64,
                    start_ticks,
                    dur_ticks,
                    len_bytes: dur_ticks / 90 * 125, // 1 Mbit/s
                    parts: vec![Part {
                        dur_ticks,
                        independent: true,
                        offset_bytes: 0,
                        len_bytes: 1,
                    }],
                };
                start_ticks += dur_ticks;
                seg
            })
            .collect();
        Timeline {
            info: StreamInfo {
                timescale: 90_000,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                width: Some(1280),
                height: Some(720),
                has_video: true,
                has_audio: true,
            },
            segments,
            ended,
            open: None,
        }
    }

    /// Like [`timeline`], but each segment in 0.5 s parts (keyframe first)
    /// and an open segment of `open_parts` parts after them.
    fn ll_timeline(segments: usize, open_parts: usize) -> Timeline {
        let seg = |seq: u64, parts: usize| Segment {
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
        };
        let mut tl = timeline(&[], false);
        tl.segments = (0..segments as u64).map(|s| seg(s, 4)).collect();
        tl.open = (open_parts > 0).then(|| seg(segments as u64, open_parts));
        tl
    }

    #[test]
    fn live_playlist_is_event_without_endlist() {
        let text = render_media_playlist(
            &timeline(&[180_000, 183_000, 180_000], false),
            &SETTINGS,
            TrackFiles::Primary,
        );
        assert_golden("media-live.m3u8", &text);
    }

    #[test]
    fn ended_playlist_has_endlist_and_round_trips() {
        let tl = timeline(&[180_000, 183_000, 180_000, 45_000], true);
        let text = render_media_playlist(&tl, &SETTINGS, TrackFiles::Primary);
        assert_golden("media-ended.m3u8", &text);
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(parsed.end_list);
        let sum_ms: f64 = parsed
            .segments
            .iter()
            .map(|s| f64::from(s.duration) * 1000.0)
            .sum();
        assert!((sum_ms - tl.duration_ms() as f64).abs() < 1.0, "{sum_ms}");
        assert_eq!(parsed.segments[0].map.as_ref().unwrap().uri, INIT_FILE);
    }

    #[test]
    fn target_duration_covers_every_rounded_extinf() {
        // 2.6 s rounds to 3: the target must grow past the configured 2 s.
        assert_eq!(
            target_duration_s(&timeline(&[180_000, 234_000], false), 2000),
            3
        );
        // 2.4 s rounds to 2.
        assert_eq!(target_duration_s(&timeline(&[216_000], false), 2000), 2);
        assert_eq!(target_duration_s(&timeline(&[], false), 2000), 2);
    }

    #[test]
    fn empty_live_playlist_is_still_valid() {
        let text = render_media_playlist(&timeline(&[], false), &SETTINGS, TrackFiles::Primary);
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(parsed.segments.is_empty() && !parsed.end_list);
    }

    #[test]
    fn the_tracks_of_one_rendition_list_their_own_files() {
        for ended in [false, true] {
            let rendition = crate::fixtures::rendition(ended);
            let state = if ended { "ended" } else { "live" };
            for (index, track) in rendition.tracks.iter().enumerate() {
                let files = TrackFiles::at(index);
                let text = render_media_playlist(track, &SETTINGS, files);
                let name = files.playlist().trim_end_matches(".m3u8");
                assert_golden(&format!("separate-{name}-{state}.m3u8"), &text);
            }
        }
    }

    #[test]
    fn live_playlist_lists_recent_parts_the_open_segment_and_a_hint() {
        // 5 closed segments of 2 s and 2 parts of the open one: the part
        // window (3 × 2 s back from 10.5 s) reaches into segment 2.
        let text = render_media_playlist(&ll_timeline(5, 2), &SETTINGS, TrackFiles::Primary);
        assert_golden("media-live-ll.m3u8", &text);
        assert!(
            !text.contains("part-000007.m4s"),
            "segment 1 is outside the window"
        );
        assert!(text.contains("part-000008.m4s"), "segment 2 ends inside it");
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.segments.len(), 5, "parts are not segments");
        assert!(!parsed.end_list);
    }

    #[test]
    fn the_first_parts_come_with_the_init_segment() {
        let text = render_media_playlist(&ll_timeline(0, 1), &SETTINGS, TrackFiles::Primary);
        let map = text.find("#EXT-X-MAP:URI=\"init.mp4\"").expect(&text);
        let part = text.find("#EXT-X-PART:DURATION=0.500,URI=\"part-000000.m4s\",INDEPENDENT=YES");
        assert!(part.is_some_and(|p| p > map), "{text}");
        assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-000001.m4s\"\n"));
        // Before any media: valid, empty, already hinting part 0.
        let empty = render_media_playlist(&ll_timeline(0, 0), &SETTINGS, TrackFiles::Primary);
        assert!(!empty.contains("#EXT-X-MAP"), "{empty}");
        assert!(empty.contains("URI=\"part-000000.m4s\""), "{empty}");
    }

    #[test]
    fn part_target_covers_the_longest_part_and_hold_back_is_three_of_them() {
        let mut tl = ll_timeline(1, 1);
        assert_eq!(part_target_ms(&tl, 500), 500);
        tl.open.as_mut().unwrap().parts[0].dur_ticks = 45_036; // 500.4 ms
        assert_eq!(part_target_ms(&tl, 500), 501);
        let text = render_media_playlist(&tl, &SETTINGS, TrackFiles::Primary);
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.501\n"),
            "{text}"
        );
        assert!(
            text.contains("CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=1.503\n"),
            "{text}"
        );
    }

    #[test]
    fn a_finished_playlist_has_no_low_latency_tags() {
        let mut tl = ll_timeline(3, 0);
        tl.ended = true;
        let text = render_media_playlist(&tl, &SETTINGS, TrackFiles::Primary);
        for tag in ["PART", "SERVER-CONTROL", "PRELOAD-HINT"] {
            assert!(!text.contains(tag), "{tag} in {text}");
        }
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn parts_are_located_in_their_segment_files() {
        let tl = ll_timeline(3, 2);
        assert_eq!(tl.closed_parts(), 12);
        assert_eq!(tl.locate_part(0), Some((0, 0, 1000)));
        assert_eq!(tl.locate_part(6), Some((1, 2000, 1000)));
        assert_eq!(tl.locate_part(12), None, "open parts have no file yet");
    }

    #[test]
    fn multivariant_declares_codecs_resolution_and_bandwidth() {
        let muxed = |timeline: Timeline| Rendition {
            separate: false,
            tracks: vec![timeline],
            ..Default::default()
        };
        assert_golden(
            "multivariant-live.m3u8",
            &render_multivariant(&muxed(timeline(&[180_000], false)), 3_000_000),
        );
        assert_golden(
            "multivariant-ended.m3u8",
            &render_multivariant(&muxed(timeline(&[180_000, 90_000], true)), 3_000_000),
        );
        // Audio apart: an EXT-X-MEDIA rendition the variant names.
        let mut video = timeline(&[180_000, 90_000], true);
        video.info.codecs = "avc1.64001f".into();
        let mut audio = timeline(&[180_000, 90_000], true);
        audio.info = StreamInfo {
            timescale: 48_000,
            codecs: "mp4a.40.2".into(),
            has_audio: true,
            ..Default::default()
        };
        let separate = Rendition {
            separate: true,
            tracks: vec![video, audio],
            ..Default::default()
        };
        let text = render_multivariant(&separate, 3_000_000);
        assert_golden("multivariant-separate.m3u8", &text);
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.alternatives[0].uri.as_deref(), Some("audio.m3u8"));
        assert_eq!(parsed.variants[0].audio.as_deref(), Some("audio"));
        assert_eq!(
            parsed.variants[0].codecs.as_deref(),
            Some("avc1.64001f,mp4a.40.2")
        );
    }
}
