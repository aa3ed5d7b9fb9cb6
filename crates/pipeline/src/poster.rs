//! A poster frame for the library: the first video frame of a recording,
//! decoded by ffmpeg from the init segment and the first media segment
//! (which starts with a keyframe, so one frame is enough).

use std::io::Write;
use std::path::Path;

use ffmpeg_sidecar::command::FfmpegCommand;

use media::layout::{TrackFiles, INIT_FILE, POSTER_FILE};

/// Library cards are ~240-480 px wide.
const POSTER_WIDTH_PX: u32 = 480;

/// Arguments: fMP4 on stdin, one scaled JPEG frame to `out`.
pub fn poster_args(out: &Path) -> Vec<String> {
    vec![
        "-f".into(),
        "mp4".into(),
        "-i".into(),
        "pipe:0".into(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        format!("scale={POSTER_WIDTH_PX}:-2"),
        "-q:v".into(),
        "4".into(),
        "-f".into(),
        "image2".into(),
        "-c:v".into(),
        "mjpeg".into(),
        "-y".into(),
        out.to_string_lossy().into_owned(),
    ]
}

/// Writes `poster.jpg` into an HLS directory that has its first segment.
/// Blocking; the file appears atomically.
pub fn make_poster(ffmpeg: &Path, hls_dir: &Path) -> Result<(), String> {
    let mut input = std::fs::read(hls_dir.join(INIT_FILE)).map_err(|e| e.to_string())?;
    input.extend(
        std::fs::read(hls_dir.join(TrackFiles::Primary.segment(0))).map_err(|e| e.to_string())?,
    );
    let tmp = hls_dir.join(format!(".{POSTER_FILE}.tmp"));
    let mut child = FfmpegCommand::new_with_path(ffmpeg)
        .args(poster_args(&tmp))
        .spawn()
        .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
    let mut stdin = child.take_stdin().expect("stdin is piped");
    // ffmpeg may stop reading once it has its frame: a broken pipe is fine.
    let _ = stdin.write_all(&input);
    drop(stdin);
    let errors: Vec<String> = child
        .iter()
        .map_err(|e| e.to_string())?
        .filter_errors()
        .collect();
    let status = child.wait().map_err(|e| e.to_string())?;
    let made = if status.success() {
        std::fs::rename(&tmp, hls_dir.join(POSTER_FILE)).map_err(|e| e.to_string())
    } else {
        Err(errors.last().cloned().unwrap_or_else(|| status.to_string()))
    };
    if made.is_err() {
        // No half-written JPEG left beside the media.
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scaled_jpeg_frame_from_stdin() {
        let args = poster_args(Path::new("/x/.poster.jpg.tmp"));
        let after = |flag: &str| &args[args.iter().position(|a| a == flag).unwrap() + 1];
        assert_eq!(after("-i"), "pipe:0");
        assert_eq!(after("-frames:v"), "1");
        assert_eq!(after("-vf"), "scale=480:-2");
        assert_eq!(after("-c:v"), "mjpeg");
        assert_eq!(args.last().unwrap(), "/x/.poster.jpg.tmp");
    }

    #[test]
    fn poster_of_a_real_segment_is_a_jpeg() {
        let fixture = include_bytes!("../../../tests/fixtures/frag-3s-kf1s.mp4");
        let tmp = tempfile::tempdir().unwrap();
        let mut publisher = crate::publish::HlsPublisher::new(crate::publish::PublishSettings {
            dir: tmp.path().to_path_buf(),
            segment_target_ms: 1000,
            part_target_ms: 500,
            declared_bits_per_s: 1,
            keyframe_grid_ms: None,
            playlist_interval_ms: 0,
            key: None,
        });
        publisher.push(fixture).unwrap();
        publisher.finish().unwrap();
        make_poster(Path::new("ffmpeg"), tmp.path()).unwrap();
        let jpeg = std::fs::read(tmp.path().join(POSTER_FILE)).unwrap();
        assert_eq!(&jpeg[..3], b"\xff\xd8\xff", "JPEG start-of-image marker");
    }
}
