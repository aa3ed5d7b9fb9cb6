//! ffmpeg's argument list, built by a pure function so it can be tested and
//! logged. ffmpeg encodes; segcast packages: the output is one fragmented MP4
//! on stdout (ISO/IEC 14496-12 §8.8) that the splitter cuts into segments.

use std::path::Path;

use media::live_plan::LivePlan;
use media::probe::{ImportPlan, StreamAction};

/// How ffmpeg is asked to encode a live recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSettings {
    pub segment_target_ms: u64,
    pub fragment_ms: u64,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    pub x264_preset: String,
}

/// MP4 timescale for video: 90 kHz divides every common frame rate's
/// duration closely and matches MPEG-TS and RTP habits.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Arguments for a live recording: its chunks on stdin (WebM/Matroska or
/// fragmented MP4, as the plan says), fMP4 on stdout. Streams the plan
/// marks `Copy` are remuxed untouched; the others are encoded.
pub fn live_args(s: &EncodeSettings, plan: &LivePlan) -> Vec<String> {
    let mut args: Vec<String> = [
        // Input: MediaRecorder's output has no duration and arrives slowly;
        // its track headers describe the streams, so a small probe suffices
        // and the first segment is not held back by a 5 s default analysis.
        "-probesize",
        "500000",
        "-analyzeduration",
        "1000000",
        // A pipe: the demuxer is named, not guessed. ffmpeg 5.1's mov
        // demuxer reads fragmented MP4 (moov first, then moof+mdat) from a
        // pipe fragment by fragment (measured, docs/architecture.md).
        "-f",
        plan.container.ffmpeg_format(),
        "-i",
        "pipe:0",
    ]
    .map(String::from)
    .to_vec();
    // First video and first audio stream; `?`: either may be absent.
    args.extend(stream_args(plan.video, plan.audio, "0:v:0?", s));
    args.extend(fmp4_output_args(s));
    args
}

/// Arguments for an imported file: read from its path (seekable, so an MP4
/// whose index is at the end works), fMP4 on stdout. Streams the plan marks
/// `Copy` are remuxed untouched; the others get the live encoder settings.
pub fn import_args(input: &Path, plan: &ImportPlan, s: &EncodeSettings) -> Vec<String> {
    let mut args: Vec<String> = vec![
        // stdin is a pipe ffmpeg-sidecar opens; ffmpeg must not read keys from it.
        "-nostdin".into(),
        "-i".into(),
        input.display().to_string(),
    ];
    // `V`: video streams that are not attached pictures (cover art).
    args.extend(stream_args(plan.video, plan.audio, "0:V:0", s));
    args.extend(fmp4_output_args(s));
    args
}

/// `-map` and codec arguments for the first video (as `video_map` selects
/// it) and the first audio stream.
fn stream_args(
    video: Option<StreamAction>,
    audio: Option<StreamAction>,
    video_map: &str,
    s: &EncodeSettings,
) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(video) = video {
        args.extend(["-map".into(), video_map.into()]);
        match video {
            StreamAction::Copy => args.extend(["-c:v".into(), "copy".into()]),
            StreamAction::Transcode => args.extend(h264_args(s)),
        }
    }
    if let Some(audio) = audio {
        let audio_map = if video_map.ends_with('?') {
            "0:a:0?"
        } else {
            "0:a:0"
        };
        args.extend(["-map".into(), audio_map.into()]);
        match audio {
            StreamAction::Copy => args.extend(["-c:a".into(), "copy".into()]),
            StreamAction::Transcode => args.extend(aac_args(s)),
        }
    }
    args
}

/// The encoder half of the arguments (H.264 + AAC), shared by every
/// transcoding path and by benchmarks comparing against plain ffmpeg.
pub fn encode_args(s: &EncodeSettings) -> Vec<String> {
    let mut args = h264_args(s);
    args.extend(aac_args(s));
    args
}

fn h264_args(s: &EncodeSettings) -> Vec<String> {
    let gop_s = format!("{:.3}", s.segment_target_ms as f64 / 1000.0);
    let kbps = s.video_kbps;
    vec![
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        s.x264_preset.clone(),
        // No lookahead and no B-frames: a frame leaves the encoder as soon
        // as it enters, which is most of the live latency budget.
        "-tune".into(),
        "zerolatency".into(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-b:v".into(),
        format!("{kbps}k"),
        "-maxrate".into(),
        format!("{kbps}k"),
        "-bufsize".into(),
        format!("{}k", kbps * 2),
        // Keyframes exactly on the segment grid, never elsewhere, so every
        // segment has the target duration and starts independently.
        "-force_key_frames".into(),
        format!("expr:gte(t,n_forced*{gop_s})"),
        "-sc_threshold".into(),
        "0".into(),
    ]
}

fn aac_args(s: &EncodeSettings) -> Vec<String> {
    vec![
        "-c:a".into(),
        "aac".into(),
        "-b:a".into(),
        format!("{}k", s.audio_kbps),
        "-ac".into(),
        "2".into(),
        "-ar".into(),
        "48000".into(),
    ]
}

fn fmp4_output_args(s: &EncodeSettings) -> Vec<String> {
    vec![
        "-video_track_timescale".into(),
        VIDEO_TIMESCALE.to_string(),
        "-f".into(),
        "mp4".into(),
        // empty_moov: init segment first, written before any media;
        // default_base_moof: offsets relative to each moof (CMAF, §8.8.7);
        // frag_keyframe + frag_duration: a fragment per keyframe and at
        // least every fragment_ms, so segments can close promptly.
        "-movflags".into(),
        "empty_moov+default_base_moof+frag_keyframe".into(),
        "-frag_duration".into(),
        (s.fragment_ms * 1000).to_string(),
        // Hand each fragment to the pipe as soon as it is complete.
        "-flush_packets".into(),
        "1".into(),
        "pipe:1".into(),
    ]
}

/// The bit rate a variant declares before any segment was measured.
pub fn declared_bits_per_s(s: &EncodeSettings) -> u64 {
    (u64::from(s.video_kbps) + u64::from(s.audio_kbps)) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::container::Container;

    fn settings() -> EncodeSettings {
        EncodeSettings {
            segment_target_ms: 2000,
            fragment_ms: 500,
            video_kbps: 2500,
            audio_kbps: 128,
            x264_preset: "veryfast".into(),
        }
    }

    /// The value following `flag`, failing the test if the flag is absent.
    fn value<'a>(args: &'a [String], flag: &str) -> &'a str {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} missing"));
        &args[at + 1]
    }

    fn webm() -> LivePlan {
        LivePlan::transcode_all(Container::Webm)
    }

    #[test]
    fn reads_webm_from_stdin_and_writes_fmp4_to_stdout() {
        let args = live_args(&settings(), &webm());
        assert_eq!(value(&args, "-i"), "pipe:0");
        assert_eq!(value(&args, "-f"), "matroska", "input format comes first");
        assert_eq!(args.last().unwrap(), "pipe:1");
        let movflags = value(&args, "-movflags");
        for flag in ["empty_moov", "default_base_moof", "frag_keyframe"] {
            assert!(
                movflags.split('+').any(|f| f == flag),
                "{movflags} lacks {flag}"
            );
        }
    }

    #[test]
    fn keyframes_follow_the_segment_target() {
        let mut s = settings();
        s.segment_target_ms = 1500;
        s.fragment_ms = 250;
        let args = live_args(&s, &webm());
        assert_eq!(
            value(&args, "-force_key_frames"),
            "expr:gte(t,n_forced*1.500)"
        );
        assert_eq!(value(&args, "-sc_threshold"), "0");
        assert_eq!(value(&args, "-frag_duration"), "250000");
    }

    #[test]
    fn imports_copy_or_encode_each_stream_as_planned() {
        let plan = ImportPlan {
            video: Some(StreamAction::Copy),
            audio: Some(StreamAction::Transcode),
            duration_ms: None,
        };
        let args = import_args(Path::new("/data/x/original"), &plan, &settings());
        assert_eq!(value(&args, "-i"), "/data/x/original");
        assert_eq!(value(&args, "-c:v"), "copy");
        assert!(!args.contains(&"libx264".to_string()), "{args:?}");
        assert_eq!(value(&args, "-c:a"), "aac");
        assert_eq!(args.last().unwrap(), "pipe:1");

        let audio_only = ImportPlan {
            video: None,
            audio: Some(StreamAction::Copy),
            duration_ms: None,
        };
        let args = import_args(Path::new("a.m4a"), &audio_only, &settings());
        assert_eq!(value(&args, "-map"), "0:a:0");
        assert!(!args.contains(&"-c:v".to_string()), "{args:?}");
    }

    #[test]
    fn live_mp4_with_h264_copies_the_video_and_encodes_only_the_audio() {
        let plan = LivePlan {
            container: Container::Mp4,
            video: Some(StreamAction::Copy),
            audio: Some(StreamAction::Transcode),
        };
        let args = live_args(&settings(), &plan);
        assert_eq!(value(&args, "-f"), "mp4", "input format comes first");
        assert_eq!(value(&args, "-c:v"), "copy");
        assert!(!args
            .iter()
            .any(|a| a == "libx264" || a == "-force_key_frames"));
        assert_eq!(value(&args, "-c:a"), "aac");
        assert_eq!(value(&args, "-map"), "0:v:0?");
        let safari = LivePlan {
            audio: Some(StreamAction::Copy),
            ..plan
        };
        assert_eq!(value(&live_args(&settings(), &safari), "-c:a"), "copy");
    }

    #[test]
    fn encodes_h264_and_aac_at_the_configured_rates() {
        let args = live_args(&settings(), &webm());
        assert_eq!(value(&args, "-c:v"), "libx264");
        assert_eq!(value(&args, "-b:v"), "2500k");
        assert_eq!(value(&args, "-bufsize"), "5000k");
        assert_eq!(value(&args, "-c:a"), "aac");
        assert_eq!(value(&args, "-b:a"), "128k");
        assert_eq!(value(&args, "-tune"), "zerolatency");
        assert_eq!(declared_bits_per_s(&settings()), 2_628_000);
    }
}
