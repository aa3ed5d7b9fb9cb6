//! HLS playlists rendered from a [`Timeline`] (RFC 8216), through `m3u8-rs`.
//!
//! - Media playlist (§4.3.3): `EXT-X-VERSION:7` because fMP4 segments need
//!   `EXT-X-MAP` (§4.3.2.5, §7); `EXT-X-PLAYLIST-TYPE:EVENT` while recording
//!   (§4.3.3.5: segments are only appended) and `EXT-X-ENDLIST` once ended.
//! - Multivariant playlist (§4.3.4.2): one variant with `CODECS`,
//!   `RESOLUTION` and a measured `BANDWIDTH`, so players can pick decoders
//!   before fetching any media.

use m3u8_rs::{
    MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream,
    WRITE_OPT_FLOAT_PRECISION,
};

use super::timeline::{Segment, Timeline};

/// File names of the HLS rendition, relative to each other.
pub const MULTIVARIANT_FILE: &str = "index.m3u8";
pub const MEDIA_PLAYLIST_FILE: &str = "media.m3u8";
pub const INIT_FILE: &str = "init.mp4";

/// fMP4 segments in HLS need protocol version 7 (RFC 8216 §7).
const HLS_VERSION: usize = 7;

/// Milliseconds are finer than any frame duration and keep EXTINF short.
const EXTINF_DECIMALS: usize = 3;

/// `EXT-X-TARGETDURATION` in whole seconds: at least the configured target
/// and at least every EXTINF rounded to the nearest integer (§4.3.3.1).
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

pub fn render_media_playlist(timeline: &Timeline, configured_target_ms: u64) -> String {
    let timescale = f64::from(timeline.info.timescale.max(1));
    let segments = timeline
        .segments
        .iter()
        .map(|s| MediaSegment {
            uri: Segment::file_name(s.seq),
            duration: (s.dur_ticks as f64 / timescale) as f32,
            map: (s.seq == timeline.segments[0].seq).then(|| m3u8_rs::Map {
                uri: INIT_FILE.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let playlist = MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: target_duration_s(timeline, configured_target_ms),
        media_sequence: timeline.segments.first().map_or(0, |s| s.seq),
        segments,
        end_list: timeline.ended,
        playlist_type: Some(MediaPlaylistType::Event),
        independent_segments: true,
        ..Default::default()
    };
    // m3u8-rs only offers a process-wide precision; every writer here wants
    // the same value, so setting it on each render is race-free in effect.
    WRITE_OPT_FLOAT_PRECISION.store(EXTINF_DECIMALS, std::sync::atomic::Ordering::Relaxed);
    write_text(|w| playlist.write_to(w))
}

/// The multivariant playlist; `declared_bits_per_s` bounds BANDWIDTH from
/// below while live, when only the first segments have been measured.
pub fn render_multivariant(timeline: &Timeline, declared_bits_per_s: u64) -> String {
    let info = &timeline.info;
    let resolution = match (info.width, info.height) {
        (Some(w), Some(h)) => Some(Resolution {
            width: w.into(),
            height: h.into(),
        }),
        _ => None,
    };
    let peak = timeline.peak_bits_per_s();
    let variant = VariantStream {
        uri: MEDIA_PLAYLIST_FILE.into(),
        bandwidth: if timeline.ended {
            peak
        } else {
            peak.max(declared_bits_per_s)
        },
        average_bandwidth: timeline.ended.then(|| timeline.average_bits_per_s()),
        codecs: (!info.codecs.is_empty()).then(|| info.codecs.clone()),
        resolution,
        ..Default::default()
    };
    let playlist = MasterPlaylist {
        version: Some(HLS_VERSION),
        independent_segments: true,
        variants: vec![variant],
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
    use crate::media::timeline::{Part, StreamInfo};

    /// Compares with `tests/golden/NAME`; `SEGCAST_UPDATE_GOLDEN=1` rewrites it.
    pub(crate) fn assert_golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("SEGCAST_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set SEGCAST_UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(actual, expected, "golden file {name} differs");
    }

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
        }
    }

    #[test]
    fn live_playlist_is_event_without_endlist() {
        let text = render_media_playlist(&timeline(&[180_000, 183_000, 180_000], false), 2000);
        assert_golden("media-live.m3u8", &text);
    }

    #[test]
    fn ended_playlist_has_endlist_and_round_trips() {
        let tl = timeline(&[180_000, 183_000, 180_000, 45_000], true);
        let text = render_media_playlist(&tl, 2000);
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
        let text = render_media_playlist(&timeline(&[], false), 2000);
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(parsed.segments.is_empty() && !parsed.end_list);
    }

    #[test]
    fn multivariant_declares_codecs_resolution_and_bandwidth() {
        assert_golden(
            "multivariant-live.m3u8",
            &render_multivariant(&timeline(&[180_000], false), 3_000_000),
        );
        assert_golden(
            "multivariant-ended.m3u8",
            &render_multivariant(&timeline(&[180_000, 90_000], true), 3_000_000),
        );
    }
}
