//! What an imported file contains, and what to do with each stream.
//!
//! The file is probed with `ffprobe -print_format json` (part of every ffmpeg
//! install). ffmpeg-sidecar can only parse ffmpeg's human-readable log for
//! stream info, which drops profiles and the attached-picture flag the
//! copy-or-transcode decision needs; ffprobe's JSON is ffmpeg's own
//! machine-readable answer, read here with serde.
//!
//! The most common import, an MP4 or MOV from a phone or camera with H.264
//! and AAC, is read in-process first with the `mp4` crate, which reads
//! progressive MP4 headers well: starting ffprobe costs ~0.1 s, as much as
//! copying a whole minute of 1080p. Anything it does not fully recognise
//! goes to ffprobe.
//!
//! [`plan`] is pure: H.264 video and AAC audio that every HLS client decodes
//! are copied into the fMP4 segments (RFC 8216 §3.3, ISO/IEC 23000-19 CMAF
//! media profiles), anything else is transcoded like a live recording.

use std::path::Path;
use std::process::Command;

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

/// What `file` contains: from its MP4 header when that says everything,
/// else from ffprobe.
pub fn probe(ffprobe: &Path, file: &Path) -> Result<Probe, ProbeError> {
    match probe_mp4(file) {
        Some(probe) => Ok(probe),
        None => run_ffprobe(ffprobe, file),
    }
}

/// An MP4/MOV whose tracks are exactly one H.264 video and/or one AAC
/// audio, read with the `mp4` crate; `None` for anything else (other
/// codecs, extra tracks, unreadable), which ffprobe then looks at.
pub fn probe_mp4(file: &Path) -> Option<Probe> {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(file).ok()?.read_exact(&mut head).ok()?;
    if &head[4..8] != b"ftyp" {
        return None;
    }
    // Untrusted input: a parser panic means "ask ffprobe", never a crash.
    std::panic::catch_unwind(|| read_mp4_tracks(file))
        .ok()
        .flatten()
}

fn read_mp4_tracks(file: &Path) -> Option<Probe> {
    let size = std::fs::metadata(file).ok()?.len();
    let reader = std::io::BufReader::new(std::fs::File::open(file).ok()?);
    let mp4 = mp4::Mp4Reader::read_header(reader, size).ok()?;
    let (mut video, mut audio) = (None, None);
    for track in mp4.tracks().values() {
        match track.media_type().ok()? {
            mp4::MediaType::H264 if video.is_none() => {
                let profile = match track.video_profile().ok()? {
                    mp4::AvcProfile::AvcConstrainedBaseline => "Constrained Baseline",
                    mp4::AvcProfile::AvcBaseline => "Baseline",
                    mp4::AvcProfile::AvcMain => "Main",
                    // Profile 100 is 8-bit 4:2:0 by definition (H.264 A.2.4).
                    mp4::AvcProfile::AvcHigh => "High",
                    mp4::AvcProfile::AvcExtended => return None,
                };
                video = Some(StreamInfo {
                    codec: "h264".into(),
                    profile: Some(profile.into()),
                    pix_fmt: Some("yuv420p".into()),
                    channels: None,
                });
            }
            mp4::MediaType::AAC if audio.is_none() => {
                let profile = match track.audio_profile().ok()? {
                    mp4::AudioObjectType::AacLowComplexity => "LC",
                    mp4::AudioObjectType::SpectralBandReplication => "HE-AAC",
                    mp4::AudioObjectType::ParametricStereo => "HE-AACv2",
                    _ => return None,
                };
                let channels = match track.channel_config().ok()? {
                    mp4::ChannelConfig::Mono => 1,
                    mp4::ChannelConfig::Stereo => 2,
                    _ => return None,
                };
                audio = Some(StreamInfo {
                    codec: "aac".into(),
                    profile: Some(profile.into()),
                    pix_fmt: None,
                    channels: Some(channels),
                });
            }
            _ => return None,
        }
    }
    if video.is_none() && audio.is_none() {
        return None;
    }
    Some(Probe {
        format_name: "mp4 (header)".into(),
        duration_ms: Some(mp4.duration().as_millis() as u64),
        video,
        audio,
    })
}

/// Runs ffprobe on `file`.
pub fn run_ffprobe(ffprobe: &Path, file: &Path) -> Result<Probe, ProbeError> {
    let output = Command::new(ffprobe)
        .args(["-v", "error", "-print_format", "json"])
        .args(["-show_format", "-show_streams"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ProbeError::Spawn(format!("{}: {e}", ffprobe.display())))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(ProbeError::NotMedia(ffprobe_reason(&stderr, file)));
    }
    Probe::from_json(&output.stdout)
}

/// ffprobe's error lines without `[demuxer @ 0x…]` and `path: ` prefixes,
/// so the reason reads the same whatever the file was called.
fn ffprobe_reason(stderr: &str, file: &Path) -> String {
    let path_prefix = format!("{}: ", file.display());
    let mut reasons: Vec<&str> = Vec::new();
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
            Some((_, rest)) => rest,
            None => line,
        };
        let line = line.strip_prefix(path_prefix.as_str()).unwrap_or(line);
        if !reasons.contains(&line) {
            reasons.push(line);
        }
    }
    if reasons.is_empty() {
        "ffprobe could not read it".into()
    } else {
        reasons.join("; ")
    }
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
pub(crate) fn seconds_to_ms(text: &str) -> Option<u64> {
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
    fn ffprobe_reasons_lose_their_prefixes() {
        let file = Path::new("/in/box/x.mp4");
        let stderr = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55a6] moov atom not found\n\
                      /in/box/x.mp4: Invalid data found when processing input\n";
        assert_eq!(
            ffprobe_reason(stderr, file),
            "moov atom not found; Invalid data found when processing input"
        );
        assert_eq!(ffprobe_reason("", file), "ffprobe could not read it");
        assert_eq!(seconds_to_ms("0.0415"), Some(42));
        assert_eq!(seconds_to_ms("N/A"), None);
    }
}
