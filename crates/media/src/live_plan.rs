//! What a live recording's ffmpeg copies and what it encodes, decided once
//! from the recording's first chunks and kept in its metadata, so that a
//! restarted ffmpeg cuts exactly the segments the first one published.
//!
//! The codec rules are the imports' ([`crate::probe::plan`]): H.264 8-bit
//! 4:2:0 and AAC are copied, the rest encoded. Live video has one more
//! condition: copied video is cut at the browser's keyframes (segments
//! start with a sync sample, RFC 8216 §3.3 / ISO/IEC 23000-19 §7.3.2), so
//! it is copied only when keyframes come at least every segment target.
//! A chunk 0 says the codec, never the keyframe interval; the interval is
//! measured on the first chunks (ffprobe over their bytes, the same tool
//! imports probe with) and the decision waits until it is known: a second
//! keyframe within the target means copy, a target's worth of video without
//! one means transcode. Chromium with `videoKeyFrameIntervalDuration: 1000`
//! decides after ~1 s of media; its default (~5 s) after ~2 s.
//!
//! [`decide`] is pure, as is reading ffprobe's packet list
//! ([`PrefixProbe::from_json`]); running ffprobe is the pipeline's.

use serde::{Deserialize, Serialize};

use crate::container::Container;
use crate::probe::{plan, seconds_to_ms, Probe, ProbeError, StreamAction};

/// The first chunks are probed up to this many bytes: with no decision by
/// then (a recorder sending huge chunks or no video packets), the video is
/// transcoded, which works whatever the keyframes do.
pub const PROBE_MAX_BYTES: u64 = 8 << 20;

/// Persisted in `recording.json` once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePlan {
    pub container: Container,
    pub video: Option<StreamAction>,
    pub audio: Option<StreamAction>,
}

impl LivePlan {
    /// Encode whatever streams there are: the plan of recordings made
    /// before plans existed, and the fallback when probing tells nothing
    /// (ffmpeg then reports what is wrong with the input itself).
    pub fn transcode_all(container: Container) -> Self {
        Self {
            container,
            video: Some(StreamAction::Transcode),
            audio: Some(StreamAction::Transcode),
        }
    }
}

/// What ffprobe saw in the first chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixProbe {
    pub probe: Probe,
    /// Presentation times of the video's keyframes, in ms, in order.
    pub keyframes_ms: Vec<u64>,
    /// The first video packet is a keyframe (else copying would start on
    /// pictures no decoder can show).
    pub starts_with_keyframe: bool,
    /// Presentation time of the first and the last video packet seen, ms.
    pub video_span_ms: Option<(u64, u64)>,
}

/// The plan for a recording whose first chunks `prefix` describes; `None`
/// while the keyframe interval cannot be known yet. `complete`: the prefix
/// is the whole recording.
pub fn decide(
    container: Container,
    prefix: &PrefixProbe,
    complete: bool,
    segment_target_ms: u64,
) -> Option<LivePlan> {
    // A header alone (an MP4 recorder's first blob) names the codec but
    // not the pixel format, which ffprobe learns from the first picture.
    let unknown = |v: &&crate::probe::StreamInfo| v.profile.is_none() || v.pix_fmt.is_none();
    if !complete && prefix.probe.video.as_ref().is_some_and(|v| unknown(&v)) {
        return None;
    }
    let by_codec = plan(&prefix.probe);
    let video = match by_codec.video {
        Some(StreamAction::Copy) => {
            let frequent = keyframes_frequent(prefix, complete, segment_target_ms)?;
            Some(if frequent {
                StreamAction::Copy
            } else {
                StreamAction::Transcode
            })
        }
        other => other,
    };
    Some(LivePlan {
        container,
        video,
        audio: by_codec.audio,
    })
}

/// Whether keyframes come at least every `target_ms` (measured between the
/// first two); `None` until the media seen can tell.
fn keyframes_frequent(prefix: &PrefixProbe, complete: bool, target_ms: u64) -> Option<bool> {
    let Some((first_ms, last_ms)) = prefix.video_span_ms else {
        return complete.then_some(false);
    };
    if !prefix.starts_with_keyframe {
        return Some(false);
    }
    match prefix.keyframes_ms.as_slice() {
        [a, b, ..] => Some(b - a <= target_ms),
        // One keyframe so far: the wait is over once a target's worth of
        // video has passed without another, or the recording is that short.
        _ if last_ms - first_ms > target_ms => Some(false),
        _ if complete => Some(true),
        _ => None,
    }
}

#[derive(Deserialize)]
struct RawPackets {
    #[serde(default)]
    streams: Vec<RawStream>,
    #[serde(default)]
    packets: Vec<RawPacket>,
}

#[derive(Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
}

#[derive(Deserialize)]
struct RawPacket {
    stream_index: u32,
    pts_time: Option<String>,
    #[serde(default)]
    flags: String,
}

impl PrefixProbe {
    /// Parses `ffprobe -print_format json -show_format -show_streams
    /// -show_entries packet=stream_index,pts_time,flags`.
    pub fn from_json(json: &[u8]) -> Result<Self, ProbeError> {
        let probe = Probe::from_json(json)?;
        let raw: RawPackets = serde_json::from_slice(json)
            .map_err(|e| ProbeError::NotMedia(format!("unreadable ffprobe answer: {e}")))?;
        let video_index = raw
            .streams
            .iter()
            .find(|s| s.codec_type.as_deref() == Some("video"))
            .map(|s| s.index);
        let mut prefix = Self {
            probe,
            keyframes_ms: Vec::new(),
            starts_with_keyframe: false,
            video_span_ms: None,
        };
        let video_packets = raw
            .packets
            .iter()
            .filter(|p| Some(p.stream_index) == video_index);
        for packet in video_packets {
            let Some(pts_ms) = packet.pts_time.as_deref().and_then(seconds_to_ms) else {
                continue;
            };
            let keyframe = packet.flags.starts_with('K');
            prefix.video_span_ms = Some(match prefix.video_span_ms {
                None => {
                    prefix.starts_with_keyframe = keyframe;
                    (pts_ms, pts_ms)
                }
                Some((first, last)) => (first, last.max(pts_ms)),
            });
            if keyframe {
                prefix.keyframes_ms.push(pts_ms);
            }
        }
        Ok(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET_MS: u64 = 2000;

    /// ffprobe's answer for an H.264 + Opus prefix whose video packets are
    /// `(pts_s, keyframe)`.
    fn prefix(codec: &str, packets: &[(f64, bool)]) -> PrefixProbe {
        let packets: Vec<String> = packets
            .iter()
            .map(|(pts, key)| {
                let flags = if *key { "K_" } else { "__" };
                format!(r#"{{"stream_index":1,"pts_time":"{pts:.6}","flags":"{flags}"}},{{"stream_index":0,"pts_time":"{pts:.6}","flags":"K_"}}"#)
            })
            .collect();
        let json = format!(
            r#"{{"streams":[{{"index":0,"codec_type":"audio","codec_name":"opus"}},
               {{"index":1,"codec_type":"video","codec_name":"{codec}","profile":"Constrained Baseline","pix_fmt":"yuv420p"}}],
               "packets":[{}],"format":{{"format_name":"matroska,webm"}}}}"#,
            packets.join(",")
        );
        PrefixProbe::from_json(json.as_bytes()).unwrap()
    }

    /// Frames every 50 ms up to `end_s`, keyframes at `keys_s`.
    fn frames(end_s: f64, keys_s: &[f64]) -> Vec<(f64, bool)> {
        (0..)
            .map(|i| f64::from(i) * 0.05)
            .take_while(|t| *t <= end_s + 1e-9)
            .map(|t| (t, keys_s.iter().any(|k| (k - t).abs() < 1e-6)))
            .collect()
    }

    #[test]
    fn h264_with_keyframes_every_second_is_copied_once_the_second_one_is_seen() {
        let early = prefix("h264", &frames(0.9, &[0.0]));
        assert_eq!(early.keyframes_ms, vec![0]);
        assert_eq!(decide(Container::Webm, &early, false, TARGET_MS), None);
        let seen = prefix("h264", &frames(1.1, &[0.0, 1.05]));
        let plan = decide(Container::Webm, &seen, false, TARGET_MS).unwrap();
        assert_eq!(plan.video, Some(StreamAction::Copy));
        assert_eq!(
            plan.audio,
            Some(StreamAction::Transcode),
            "Opus becomes AAC"
        );
    }

    #[test]
    fn h264_with_rare_keyframes_is_transcoded_after_a_target_without_one() {
        let waiting = prefix("h264", &frames(1.95, &[0.0]));
        assert_eq!(decide(Container::Mp4, &waiting, false, TARGET_MS), None);
        let rare = prefix("h264", &frames(2.05, &[0.0]));
        let plan = decide(Container::Mp4, &rare, false, TARGET_MS).unwrap();
        assert_eq!(plan.video, Some(StreamAction::Transcode));
        let gap = prefix("h264", &frames(5.1, &[0.0, 5.05]));
        assert_eq!(
            decide(Container::Mp4, &gap, false, TARGET_MS)
                .unwrap()
                .video,
            Some(StreamAction::Transcode)
        );
    }

    #[test]
    fn short_recordings_decide_at_their_end_and_odd_starts_are_transcoded() {
        let short = prefix("h264", &frames(0.5, &[0.0]));
        assert_eq!(
            decide(Container::Webm, &short, true, TARGET_MS)
                .unwrap()
                .video,
            Some(StreamAction::Copy)
        );
        let no_key_first = prefix("h264", &frames(1.5, &[0.5, 1.0]));
        assert!(!no_key_first.starts_with_keyframe);
        assert_eq!(
            decide(Container::Webm, &no_key_first, false, TARGET_MS)
                .unwrap()
                .video,
            Some(StreamAction::Transcode)
        );
        let header_only = prefix("h264", &[]);
        assert_eq!(decide(Container::Mp4, &header_only, false, TARGET_MS), None);
        let mut no_picture_yet = prefix("h264", &[]);
        no_picture_yet.probe.video.as_mut().unwrap().pix_fmt = None;
        assert_eq!(
            decide(Container::Mp4, &no_picture_yet, false, TARGET_MS),
            None
        );
    }

    #[test]
    fn other_codecs_are_transcoded_at_once() {
        let vp8 = prefix("vp8", &frames(0.2, &[0.0]));
        let plan = decide(Container::Webm, &vp8, false, TARGET_MS).unwrap();
        assert_eq!(plan.video, Some(StreamAction::Transcode));
        assert_eq!(plan.container, Container::Webm);
    }
}
