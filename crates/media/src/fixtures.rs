//! Test fixtures shared by the HLS and DASH renderers: one rendition that
//! both render, so a change to the timeline shows in both sets of golden
//! files (`tests/golden/`).

use crate::timeline::{Part, Rendition, Segment, StreamInfo, Timeline};

/// Compares with `tests/golden/NAME`; `SEGCAST_UPDATE_GOLDEN=1` rewrites it.
pub fn assert_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    if std::env::var_os("SEGCAST_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set SEGCAST_UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(actual, expected, "golden file {name} differs");
}

/// `count` segments of `dur_ticks` each in parts of `part_ticks`, from 0.
/// Every part is independent for audio, the first of a segment for video.
fn segments(
    count: u64,
    dur_ticks: &[u64],
    part_ticks: u64,
    bytes_per_tick: u64,
    audio: bool,
) -> Vec<Segment> {
    let mut start_ticks = 0;
    (0..count)
        .map(|seq| {
            let dur = dur_ticks[seq as usize % dur_ticks.len()];
            let parts: Vec<Part> = (0..dur.div_ceil(part_ticks))
                .map(|i| {
                    let this = part_ticks.min(dur - i * part_ticks);
                    Part {
                        dur_ticks: this,
                        independent: audio || i == 0,
                        offset_bytes: i * part_ticks * bytes_per_tick,
                        len_bytes: this * bytes_per_tick,
                    }
                })
                .collect();
            let segment = Segment {
                seq,
                start_ticks,
                dur_ticks: dur,
                len_bytes: dur * bytes_per_tick,
                parts,
            };
            start_ticks += dur;
            segment
        })
        .collect()
}

/// A 720p H.264 track (90 kHz, 2 s segments, one 2.033 s) and its AAC
/// track (48 kHz, the same segments in AAC frames), 4 segments; live (with
/// 2 parts of a fifth segment open) or ended.
pub fn rendition(ended: bool) -> Rendition {
    let mut video = Timeline {
        info: StreamInfo {
            timescale: 90_000,
            codecs: "avc1.64001f".into(),
            width: Some(1280),
            height: Some(720),
            has_video: true,
            has_audio: false,
        },
        segments: segments(4, &[180_000, 183_000], 18_000, 3, false),
        ended,
        open: None,
    };
    let mut audio = Timeline {
        info: StreamInfo {
            timescale: 48_000,
            codecs: "mp4a.40.2".into(),
            has_audio: true,
            ..Default::default()
        },
        // 2 s is 93.75 AAC frames: segments alternate 94 and 93 frames.
        segments: segments(4, &[94 * 1024, 93 * 1024], 10 * 1024, 2, true),
        ended,
        open: None,
    };
    if !ended {
        for track in [&mut video, &mut audio] {
            let last = track.segments.last().expect("segments");
            let part = last.parts[1];
            track.open = Some(Segment {
                seq: last.seq + 1,
                start_ticks: last.end_ticks(),
                dur_ticks: 2 * part.dur_ticks,
                len_bytes: 2 * part.len_bytes,
                parts: vec![last.parts[0], part],
            });
        }
    }
    Rendition {
        separate: true,
        tracks: vec![video, audio],
        available_from_ms: Some(1_795_000_000_000),
    }
}
