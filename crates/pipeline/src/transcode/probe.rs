//! Looking into a file: the most common import, an MP4 or MOV from a
//! phone or camera with H.264 and AAC, is read in-process first with the
//! `mp4` crate, which reads progressive MP4 headers well (ISO/IEC 14496-12
//! §8.2 `moov`): starting ffprobe costs ~0.1 s, as much as copying a whole
//! minute of 1080p. Anything it does not fully recognise goes to ffprobe,
//! whose answer [`media::probe`] reads. Blocking: callers use
//! `spawn_blocking`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use media::container::Container;
use media::live_plan::PrefixProbe;
use media::probe::{Probe, ProbeError, StreamInfo};

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

/// Runs ffprobe over `chunks` (read in order, fed on its stdin as ffmpeg
/// will get them). Blocking.
pub fn probe_prefix(
    ffprobe: &Path,
    container: Container,
    chunks: &[PathBuf],
) -> Result<PrefixProbe, ProbeError> {
    let mut child = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-f",
            container.ffmpeg_format(),
            "-i",
            "pipe:0",
        ])
        .args(["-print_format", "json", "-show_format", "-show_streams"])
        .args(["-show_entries", "packet=stream_index,pts_time,flags"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ProbeError::Spawn(format!("{}: {e}", ffprobe.display())))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let paths = chunks.to_vec();
    // A writer of its own: ffprobe's answer may fill its stdout pipe
    // before it has read all of its input.
    let writer = std::thread::spawn(move || {
        for path in paths {
            let written = std::fs::read(&path).and_then(|b| stdin.write_all(&b));
            if written.is_err() {
                return;
            }
        }
    });
    let output = child
        .wait_with_output()
        .map_err(|e| ProbeError::Spawn(e.to_string()))?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(ProbeError::NotMedia(format!(
            "ffprobe failed ({})",
            output.status
        )));
    }
    PrefixProbe::from_json(&output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
