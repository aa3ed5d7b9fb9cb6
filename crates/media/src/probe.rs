//! What a media file contains, as ffprobe reports it, and what to do with
//! each stream: copy it or encode it.
//!
//! ffmpeg-sidecar can only parse ffmpeg's human-readable log for stream
//! info, which drops profiles and the attached-picture flag the
//! copy-or-transcode decision needs; ffprobe's JSON
//! (`-print_format json -show_format -show_streams`) is ffmpeg's own
//! machine-readable answer, read here with serde. Running ffprobe is the
//! pipeline's job; this module only reads its answer.
//!
//! [`plan`] is pure: H.264 video and AAC audio that every HLS client decodes
//! are copied into the fMP4 segments (RFC 8216 §3.3, ISO/IEC 23000-19 CMAF
//! media profiles), anything else is transcoded like a live recording.

use serde::Deserialize;

/// What ffprobe found, reduced to what the import needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format_name: String,
    pub duration_ms: Option<u64>,
    pub video: Option<StreamInfo>,
    pub audio: Option<StreamInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamInfo {
    pub codec: String,
    pub profile: Option<String>,
    pub pix_fmt: Option<String>,
    pub channels: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamAction {
    /// Remuxed as is (`-c copy`): no quality loss, hundreds of times real time.
    Copy,
    /// Encoded with the live recording settings.
    Transcode,
}

/// What ffmpeg is told to do with the first video and first audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportPlan {
    pub video: Option<StreamAction>,
    pub audio: Option<StreamAction>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("not a media file ({0})")]
    NotMedia(String),
    #[error("no video or audio stream (found: {0})")]
    NoStreams(String),
    #[error("cannot run ffprobe ({0})")]
    Spawn(String),
}

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    pix_fmt: Option<String>,
    channels: Option<u32>,
    #[serde(default)]
    disposition: RawDisposition,
}

#[derive(Deserialize, Default)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
}

impl Probe {
    /// Parses `ffprobe -print_format json -show_format -show_streams`.
    pub fn from_json(json: &[u8]) -> Result<Self, ProbeError> {
        let raw: RawProbe = serde_json::from_slice(json)
            .map_err(|e| ProbeError::NotMedia(format!("unreadable ffprobe answer: {e}")))?;
        let Some(format) = raw.format else {
            return Err(ProbeError::NotMedia("ffprobe found no container".into()));
        };
        let first = |kind: &str| {
            raw.streams
                .iter()
                // Cover art is a one-frame "video" stream; it is not the video.
                .find(|s| s.codec_type.as_deref() == Some(kind) && s.disposition.attached_pic == 0)
                .map(|s| StreamInfo {
                    codec: s.codec_name.clone().unwrap_or_default(),
                    profile: s.profile.clone(),
                    pix_fmt: s.pix_fmt.clone(),
                    channels: s.channels,
                })
        };
        let (video, audio) = (first("video"), first("audio"));
        if video.is_none() && audio.is_none() {
            let kinds: Vec<&str> = raw
                .streams
                .iter()
                .filter_map(|s| s.codec_type.as_deref())
                .collect();
            let found = if kinds.is_empty() {
                "no streams".to_string()
            } else {
                kinds.join(", ")
            };
            return Err(ProbeError::NoStreams(found));
        }
        Ok(Self {
            format_name: format.format_name.unwrap_or_default(),
            duration_ms: format.duration.as_deref().and_then(seconds_to_ms),
            video,
            audio,
        })
    }
}

/// `"12.345000"` → 12345; ffprobe prints seconds as decimal text.
pub fn seconds_to_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

/// H.264 profiles every HLS client decodes (8-bit 4:2:0).
const COPYABLE_H264_PROFILES: [&str; 4] = ["Baseline", "Constrained Baseline", "Main", "High"];
const COPYABLE_PIX_FMTS: [&str; 2] = ["yuv420p", "yuvj420p"];
/// AAC object types HLS clients decode; stereo at most, like live output.
const COPYABLE_AAC_PROFILES: [&str; 3] = ["LC", "HE-AAC", "HE-AACv2"];

pub fn plan(probe: &Probe) -> ImportPlan {
    ImportPlan {
        video: probe.video.as_ref().map(|v| action(video_copyable(v))),
        audio: probe.audio.as_ref().map(|a| action(audio_copyable(a))),
        duration_ms: probe.duration_ms,
    }
}

fn action(copyable: bool) -> StreamAction {
    if copyable {
        StreamAction::Copy
    } else {
        StreamAction::Transcode
    }
}

fn video_copyable(v: &StreamInfo) -> bool {
    v.codec == "h264"
        && v.profile
            .as_deref()
            .is_some_and(|p| COPYABLE_H264_PROFILES.contains(&p))
        && v.pix_fmt
            .as_deref()
            .is_some_and(|f| COPYABLE_PIX_FMTS.contains(&f))
}

fn audio_copyable(a: &StreamInfo) -> bool {
    a.codec == "aac"
        && a.profile
            .as_deref()
            .is_some_and(|p| COPYABLE_AAC_PROFILES.contains(&p))
        && a.channels.is_some_and(|c| (1..=2).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(kind: &str, codec: &str, extra: &str) -> String {
        format!(r#"{{"codec_type":"{kind}","codec_name":"{codec}"{extra}}}"#)
    }

    fn probe_of(streams: &[String]) -> Result<Probe, ProbeError> {
        let json = format!(
            r#"{{"streams":[{}],"format":{{"format_name":"mov,mp4","duration":"4.021000"}}}}"#,
            streams.join(",")
        );
        Probe::from_json(json.as_bytes())
    }

    fn h264(profile: &str, pix_fmt: &str) -> String {
        stream(
            "video",
            "h264",
            &format!(r#","profile":"{profile}","pix_fmt":"{pix_fmt}""#),
        )
    }

    fn aac(profile: &str, channels: u32) -> String {
        stream(
            "audio",
            "aac",
            &format!(r#","profile":"{profile}","channels":{channels}"#),
        )
    }

    #[test]
    fn h264_and_aac_are_copied() {
        let p = probe_of(&[h264("High", "yuv420p"), aac("LC", 2)]).unwrap();
        assert_eq!(p.duration_ms, Some(4021));
        let plan = plan(&p);
        assert_eq!(plan.video, Some(StreamAction::Copy));
        assert_eq!(plan.audio, Some(StreamAction::Copy));
    }

    #[test]
    fn what_players_may_not_decode_is_transcoded() {
        for (video, audio) in [
            (h264("High 10", "yuv420p10le"), aac("LC", 6)),
            (h264("High 4:4:4 Predictive", "yuv444p"), aac("Main", 2)),
            (stream("video", "vp9", ""), stream("audio", "opus", "")),
            (
                stream("video", "hevc", ""),
                stream("audio", "pcm_s16le", ""),
            ),
        ] {
            let plan = plan(&probe_of(&[video.clone(), audio.clone()]).unwrap());
            assert_eq!(plan.video, Some(StreamAction::Transcode), "{video}");
            assert_eq!(plan.audio, Some(StreamAction::Transcode), "{audio}");
        }
        let mixed =
            plan(&probe_of(&[h264("Main", "yuvj420p"), stream("audio", "mp3", "")]).unwrap());
        assert_eq!(mixed.video, Some(StreamAction::Copy));
        assert_eq!(mixed.audio, Some(StreamAction::Transcode));
    }

    #[test]
    fn single_stream_files_and_cover_art() {
        let video_only = plan(&probe_of(&[h264("High", "yuv420p")]).unwrap());
        assert_eq!((video_only.video.is_some(), video_only.audio), (true, None));
        let cover = stream("video", "mjpeg", r#","disposition":{"attached_pic":1}"#);
        let song = probe_of(&[cover, stream("audio", "mp3", "")]).unwrap();
        assert_eq!(song.video, None, "cover art is not a video stream");
        assert_eq!(plan(&song).audio, Some(StreamAction::Transcode));
    }

    #[test]
    fn files_without_audio_or_video_are_refused_with_what_they_hold() {
        let subs = probe_of(&[stream("subtitle", "subrip", "")]);
        assert_eq!(subs, Err(ProbeError::NoStreams("subtitle".into())));
        assert_eq!(
            subs.unwrap_err().to_string(),
            "no video or audio stream (found: subtitle)"
        );
        assert_eq!(
            probe_of(&[]),
            Err(ProbeError::NoStreams("no streams".into()))
        );
        assert!(matches!(
            Probe::from_json(b"{}"),
            Err(ProbeError::NotMedia(_))
        ));
    }

    #[test]
    fn ffprobe_seconds_become_milliseconds() {
        assert_eq!(seconds_to_ms("0.0415"), Some(42));
        assert_eq!(seconds_to_ms("12.345000"), Some(12345));
        assert_eq!(seconds_to_ms("N/A"), None);
        assert_eq!(seconds_to_ms("-1"), None);
    }
}
