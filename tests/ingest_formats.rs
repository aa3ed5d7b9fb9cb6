//! Every browser's recording: WebM/Matroska and fragmented MP4 chunks read
//! by what their bytes are, H.264 copied when its keyframes allow, the rest
//! encoded; each survives a SIGKILL mid-recording. Real Chromium
//! MediaRecorder chunks (`../shared/media/mediarecorder`, copied into
//! tests/fixtures), Safari-shaped fMP4 made with ffmpeg, real HTTP, real
//! ffmpeg as the player.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    assert_contiguous_media, assert_error, cut_randomly, decode_errors, make_test_media,
    spawn_server_process, Api, Server,
};

const LIMIT: Duration = Duration::from_secs(120);

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mediarecorder")
        .join(name)
}

/// The chunks of a MediaRecorder fixture, in order.
fn fixture_chunks(name: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "webm" || e == "mp4"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no chunks in fixture {name}");
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// A recording declared as `mime`; returns (id, upload token).
async fn create(api: &Api, title: &str, mime: &str) -> (String, String) {
    let body = serde_json::json!({ "title": title, "mime": mime });
    api.create_with(body, None).await
}

/// Seconds of video in `bytes` (a whole recording): the end of its last
/// video packet, as ffprobe reads it.
fn source_video_s(bytes: &[u8]) -> f64 {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-of", "csv=p=0"])
        .args(["-show_entries", "packet=pts_time,duration_time"])
        .arg(file.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',').map(|v| v.trim().parse::<f64>().ok());
            Some(f.next()?? + f.next().flatten().unwrap_or(0.0))
        })
        .fold(0.0, f64::max)
}

/// Safari/iOS-shaped chunks: H.264 (Main) + AAC in fragmented MP4, a
/// fragment per keyframe (every second), cut at arbitrary offsets.
fn safari_like_chunks(dir: &Path, seed: u64) -> Vec<Vec<u8>> {
    let path = dir.join("safari-like.mp4");
    let codecs = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-profile:v",
        "main",
    ];
    let gop = [
        "-pix_fmt", "yuv420p", "-g", "30", "-c:a", "aac", "-b:a", "96k",
    ];
    let frag = [
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof",
        "-f",
        "mp4",
    ];
    make_test_media(&path, "640x360", 8, &[&codecs[..], &gop, &frag].concat());
    let chunks = cut_randomly(&std::fs::read(&path).unwrap(), 14, seed);
    // A recorder's chunk 0 carries at least the first box header.
    assert!(chunks[0].len() >= 8, "seed {seed} gives a usable chunk 0");
    chunks
}

#[tokio::test]
async fn chunk_0_is_read_by_its_bytes_and_checked_against_the_declared_type() {
    let server = Server::start(|_| {}).await;
    let webm = fixture_chunks("chrome-vp8-opus").swap_remove(0);
    let mp4 = fixture_chunks("chrome-mp4-h264-opus").swap_remove(0);

    let (id, token) = create(&server, "declared mp4", "video/mp4").await;
    let refused = assert_error(server.put(&id, &token, 0, webm.clone()).await, 415).await;
    assert!(
        refused.contains("WebM/Matroska") && refused.contains("video/mp4"),
        "{refused}"
    );
    let status = server.status(&id).await;
    assert_eq!(
        status["chunks"]["received"], 0,
        "nothing stored: {status:#}"
    );
    assert_eq!(status["state"], "recording");
    assert!(!server
        .data
        .path()
        .join(format!("recordings/{id}/chunks/00000000.chunk"))
        .exists());
    // The right bytes still go in.
    assert_eq!(server.put(&id, &token, 0, mp4.clone()).await.status(), 201);

    let (id, token) = create(&server, "declared webm", "video/webm;codecs=vp8").await;
    assert_error(server.put(&id, &token, 0, mp4.clone()).await, 415).await;
    let garbage = (0..5000u32).map(|i| ((i * 7919) >> 3) as u8).collect();
    let unknown = assert_error(server.put(&id, &token, 0, garbage).await, 415).await;
    assert!(unknown.contains("neither"), "{unknown}");

    // One byte of the EBML magic cannot be judged (Chromium's first blob
    // can be that short); bytes after it that are no recording fail it.
    let (id, token) = create(&server, "short head", "video/webm").await;
    assert_eq!(server.put(&id, &token, 0, vec![0x1a]).await.status(), 201);
    assert_eq!(
        server
            .put(&id, &token, 1, b"not media".to_vec())
            .await
            .status(),
        201
    );
    let failed = server
        .wait_for(&id, LIMIT, |s| s["state"] != "recording")
        .await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert!(
        failed["error"].as_str().unwrap().contains("neither"),
        "{failed:#}"
    );

    let (id, token) = create(&server, "ogg", "video/ogg").await;
    let ogg = assert_error(server.put(&id, &token, 0, webm.clone()).await, 415).await;
    assert!(ogg.contains("video/ogg"), "{ogg}");

    // Declared nothing: the bytes say what it is, and the original is
    // served as that.
    let (id, token) = server.create("undeclared").await;
    assert_eq!(server.put(&id, &token, 0, mp4.clone()).await.status(), 201);
    let original = server.get(&format!("/media/{id}/original")).await;
    assert_eq!(original.headers()["content-type"], "video/mp4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_mp4_chunks_with_an_empty_last_one_end_ready() {
    let server = Server::start(|_| {}).await;
    // Default keyframes (0 s, 5.1 s): transcoded; 1 s keyframes: copied.
    for (name, video) in [
        ("chrome-mp4-h264-opus", "transcode"),
        ("chrome-mp4-h264-opus-kf1s", "copy"),
    ] {
        let chunks = fixture_chunks(name);
        let (id, token) = create(&server, name, "video/mp4;codecs=avc1,opus").await;
        for (seq, chunk) in chunks.iter().enumerate() {
            assert_eq!(
                server
                    .put(&id, &token, seq as u64, chunk.clone())
                    .await
                    .status(),
                201,
                "{name} chunk {seq} ({} bytes)",
                chunk.len()
            );
        }
        let total = chunks.len() as u64;
        assert_eq!(server.finish(&id, &token, total).await.status(), 202);
        let done = server
            .wait_for(&id, LIMIT, |s| {
                s["state"] != "recording" && s["state"] != "processing"
            })
            .await;
        assert_eq!(done["state"], "ready", "{name}: {done:#}");
        assert_eq!(done["chunks"]["received"], total, "empty chunks count");
        assert_eq!(done["video"], video, "{name}: {done:#}");
        let expected_s = source_video_s(&chunks.concat());
        let media_s = assert_contiguous_media(&server.client, &server.base, &id).await;
        assert!(
            (media_s - expected_s).abs() <= 0.1,
            "{name}: {media_s} s of media for {expected_s} s of source"
        );
        let errors = decode_errors(&server.url(&format!("/media/{id}/index.m3u8")));
        assert!(errors.is_empty(), "{name}: {errors}");
    }
}

#[tokio::test]
async fn a_one_byte_first_blob_and_an_empty_one_still_make_a_recording() {
    let server = Server::start(|_| {}).await;
    // As Chromium sometimes cuts it: chunk 0 is the first byte of the EBML
    // magic, chunk 1 is empty, chunk 2 the rest of the header.
    let mut chunks = fixture_chunks("chrome-vp8-opus");
    let head = chunks.remove(0);
    let mut split = vec![head[..1].to_vec(), Vec::new(), head[1..].to_vec()];
    split.extend(chunks);
    let (id, token) = create(&server, "split head", "video/webm;codecs=vp8,opus").await;
    for (seq, chunk) in split.iter().enumerate() {
        let status = server
            .put(&id, &token, seq as u64, chunk.clone())
            .await
            .status();
        assert_eq!(status, 201, "chunk {seq} ({} bytes)", chunk.len());
    }
    let total = split.len() as u64;
    assert_eq!(server.finish(&id, &token, total).await.status(), 202);
    let done = server
        .wait_for(&id, LIMIT, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(done["state"], "ready", "{done:#}");
    assert_eq!(done["chunks"]["received"], total);
    let expected_s = source_video_s(&split.concat());
    let media_s = assert_contiguous_media(&server.client, &server.base, &id).await;
    assert!(
        (media_s - expected_s).abs() <= 0.1,
        "{media_s} s of {expected_s} s"
    );
}

/// Records `chunks` with a SIGKILL of the server once most are
/// acknowledged and a segment is published; checks that the restarted
/// server keeps what was published, ends `ready` with the whole source,
/// decodes cleanly, and did what `video` says with the video.
async fn record_through_a_crash(name: &str, chunks: &[Vec<u8>], mime: &str, video: &str) {
    let data = tempfile::tempdir().unwrap();
    let (mut first, base) = spawn_server_process(data.path(), &[]);
    let api = Api::new(base);
    let (id, token) = create(&api, name, mime).await;
    // Crash once 60 % of the bytes (over 3 s of media: a 2 s segment is
    // complete) are acknowledged.
    let total_bytes: usize = chunks.iter().map(Vec::len).sum();
    let half = (1..=chunks.len())
        .find(|&k| chunks[..k].iter().map(Vec::len).sum::<usize>() * 5 >= total_bytes * 3)
        .unwrap();
    for (seq, chunk) in chunks.iter().enumerate().take(half) {
        let status = api
            .put(&id, &token, seq as u64, chunk.clone())
            .await
            .status();
        assert_eq!(status, 201, "{name} chunk {seq}");
    }
    let live = api
        .wait_for(&id, LIMIT, |s| s["segments"].as_u64() >= Some(1))
        .await;
    assert_eq!(live["video"], video, "{name}, decided live: {live:#}");
    let before = api.text(&format!("/media/{id}/media.m3u8")).await;
    first.kill(); // SIGKILL: no shutdown path runs

    let (mut second, base) = spawn_server_process(data.path(), &[]);
    let api = Api::new(base);
    assert_eq!(api.status(&id).await["chunks"]["received"], half);
    for (seq, chunk) in chunks.iter().enumerate().skip(half) {
        let status = api
            .put(&id, &token, seq as u64, chunk.clone())
            .await
            .status();
        assert_eq!(status, 201, "{name} chunk {seq}");
    }
    let total = chunks.len() as u64;
    assert_eq!(api.finish(&id, &token, total).await.status(), 202);
    let done = api
        .wait_for(&id, LIMIT, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(done["state"], "ready", "{name}: {done:#}");
    assert_eq!(done["video"], video, "{name}: the plan survived the crash");

    let segments = |text: &str| -> Vec<(String, f32)> {
        m3u8_rs::parse_media_playlist_res(text.as_bytes())
            .unwrap()
            .segments
            .into_iter()
            .map(|s| (s.uri, s.duration))
            .collect()
    };
    let (before, ended) = (
        segments(&before),
        segments(&api.text(&format!("/media/{id}/media.m3u8")).await),
    );
    assert!(!before.is_empty());
    assert_eq!(
        ended[..before.len()],
        before[..],
        "{name}: kept as published"
    );
    let expected_s = source_video_s(&chunks.concat());
    let media_s = assert_contiguous_media(&api.client, &api.base, &id).await;
    assert!(
        (media_s - expected_s).abs() <= 0.1,
        "{name}: {media_s} s of media for {expected_s} s of source"
    );
    let errors = decode_errors(&api.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "{name}: {errors}");
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_h264_with_keyframes_every_second_is_copied_through_a_crash() {
    let chunks = fixture_chunks("chrome-h264-opus-kf1s");
    let mime = "video/webm;codecs=h264,opus";
    record_through_a_crash("chrome-h264-opus-kf1s", &chunks, mime, "copy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_h264_with_default_keyframes_is_transcoded_through_a_crash() {
    let chunks = fixture_chunks("chrome-h264-opus");
    let mime = "video/webm;codecs=h264,opus";
    record_through_a_crash("chrome-h264-opus", &chunks, mime, "transcode").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_vp8_is_transcoded_through_a_crash() {
    let chunks = fixture_chunks("chrome-vp8-opus");
    let mime = "video/webm;codecs=vp8,opus";
    record_through_a_crash("chrome-vp8-opus", &chunks, mime, "transcode").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safari_shaped_mp4_is_copied_through_a_crash() {
    let scratch = tempfile::tempdir().unwrap();
    let chunks = safari_like_chunks(scratch.path(), 5);
    record_through_a_crash("safari-like", &chunks, "video/mp4", "copy").await;
}
