//! A long recording still live (docs/http-contract.md, "Long live
//! recordings"): more than twenty minutes of media, uploaded as fast as
//! the server takes it (a tiny picture, keyframes every second), then
//! read the way LL-HLS players and caches read it: delta updates
//! (RFC 8216bis §6.2.5.1) alone and with a blocking reload, validators,
//! gzip for playlists, manifest and JSON; then finished, decoded whole by
//! ffmpeg and played whole by VLC.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{decode_errors, PlaylistEdge, Server};

/// More than 20 minutes of media: 600 segments of 2 s.
const MEDIA_S: u32 = 21 * 60;
const SEGMENTS_WANTED: u64 = 600;
/// Held back to test a delta update that waits for its part.
const HELD_BACK_CHUNKS: usize = 2;
/// The answer to `_HLS_skip=YES` at 20 minutes (issue #25).
const DELTA_MAX_BYTES: usize = 6 * 1024;
const PROCESS_LIMIT: Duration = Duration::from_secs(400);

/// `secs` of a 96x64, 10 fps test picture (a keyframe every second) and a
/// tone, as a live WebM (VP8 + Opus): MediaRecorder's shape, made fast.
fn make_long_webm(dir: &Path, secs: u32) -> PathBuf {
    let path = dir.join("long.webm");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=96x64:rate=10")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
        .args(["-b:v", "60k", "-g", "10"])
        .args(["-c:a", "libopus", "-b:a", "24k", "-f", "webm", "-live", "1"])
        .arg(&path)
        .status()
        .expect("ffmpeg must be installed (scripts/test installs it)");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
    path
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

/// The segment URIs a playlist lists (each `EXTINF` is followed by one).
fn segment_uris(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("#EXTINF:"))
        .map(|w| w[1].to_string())
        .collect()
}

fn skipped_segments(text: &str) -> Option<usize> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))?;
    Some(line.split(',').next()?.parse().expect("a count"))
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = server.client.get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap(),
    }
}

/// Waits until the recording lists `wanted` segments and its playlists
/// stop changing (all the uploaded media is published; it is still live).
async fn wait_until_settled(server: &Server, id: &str, wanted: u64) {
    let mut last = None;
    let deadline = std::time::Instant::now() + PROCESS_LIMIT;
    loop {
        let status = server.status(id).await;
        assert_eq!(status["state"], "recording", "{status:#}");
        let segments = status["segments"].as_u64().unwrap_or(0);
        if segments >= wanted && last == Some(segments) {
            return;
        }
        last = (segments >= wanted).then_some(segments);
        assert!(std::time::Instant::now() < deadline, "{status:#}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_minute_live_recording_answers_small_deltas_and_gzip() {
    // Chunks held back for a while must not end the recording.
    let server = Server::start(|c| c.idle_timeout_s = 3600).await;
    let source = make_long_webm(server.data.path(), MEDIA_S);
    let bytes = std::fs::read(&source).unwrap();
    let chunks: Vec<Vec<u8>> = bytes.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    let (id, token) = server.create("a long lecture").await;
    let sent = chunks.len() - HELD_BACK_CHUNKS;
    for (seq, chunk) in chunks[..sent].iter().enumerate() {
        let answer = server.put(&id, &token, seq as u64, chunk.clone()).await;
        assert!(answer.status().is_success(), "chunk {seq}");
    }
    wait_until_settled(&server, &id, SEGMENTS_WANTED).await;
    let playlist = format!("/media/{id}/media.m3u8");

    // The full playlist offers delta updates; the delta is small and
    // lists exactly the newest segments of the full one.
    let full = get(&server, &playlist, &[]).await;
    assert_eq!(full.status, 200);
    let full_text = full.text();
    assert!(
        full_text.contains("CAN-SKIP-UNTIL=12.000"),
        "{}",
        &full_text[..400]
    );
    let delta = get(&server, &format!("{playlist}?_HLS_skip=YES"), &[]).await;
    assert_eq!(delta.status, 200);
    let delta_text = delta.text();
    let skipped = skipped_segments(&delta_text).expect("an EXT-X-SKIP");
    let (all, listed) = (segment_uris(&full_text), segment_uris(&delta_text));
    assert!(all.len() as u64 >= SEGMENTS_WANTED, "{}", all.len());
    assert_eq!(skipped + listed.len(), all.len(), "skipped + listed = all");
    assert_eq!(&all[skipped..], &listed[..]);
    assert!(
        delta.body.len() < DELTA_MAX_BYTES,
        "delta {} B (full {} B)",
        delta.body.len(),
        full.body.len()
    );
    assert_eq!(
        PlaylistEdge::parse(&full_text).parts,
        PlaylistEdge::parse(&delta_text).parts,
        "the same parts and preload hint"
    );
    let v2 = get(&server, &format!("{playlist}?_HLS_skip=v2"), &[]).await;
    assert_eq!(v2.body, delta.body, "no date ranges: v2 is the same delta");
    let bad = get(&server, &format!("{playlist}?_HLS_skip=NO"), &[]).await;
    assert_eq!(bad.status, 400);
    let audio = get(
        &server,
        &format!("/media/{id}/audio.m3u8?_HLS_skip=YES"),
        &[],
    )
    .await;
    assert!(skipped_segments(&audio.text()).is_some(), "audio too");

    // Validators: each representation has its own, and 304 stays right.
    let (full_etag, delta_etag) = (full.header("etag"), delta.header("etag"));
    assert_ne!(full_etag, delta_etag);
    let again = get(
        &server,
        &format!("{playlist}?_HLS_skip=YES"),
        &[("if-none-match", delta_etag)],
    )
    .await;
    assert_eq!(again.status, 304);
    let stale = get(&server, &playlist, &[("if-none-match", delta_etag)]).await;
    assert_eq!(stale.status, 200, "the delta's tag is not the full one's");

    // gzip when asked, never for media; Vary either way.
    let zipped = get(&server, &playlist, &[("accept-encoding", "gzip")]).await;
    assert_eq!(zipped.header("content-encoding"), "gzip");
    assert_eq!(zipped.header("vary"), "accept-encoding");
    assert_eq!(full.header("vary"), "accept-encoding");
    assert_eq!(gunzip(&zipped.body), full_text);
    assert_ne!(zipped.header("etag"), full_etag);
    let zipped_304 = get(
        &server,
        &playlist,
        &[
            ("accept-encoding", "gzip"),
            ("if-none-match", zipped.header("etag")),
        ],
    )
    .await;
    assert_eq!(zipped_304.status, 304);
    println!(
        "at {} segments: full {} B, gzip {} B, delta {} B",
        all.len(),
        full.body.len(),
        zipped.body.len(),
        delta.body.len()
    );
    let mpd = get(
        &server,
        &format!("/media/{id}/manifest.mpd"),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(mpd.header("content-encoding"), "gzip");
    assert!(gunzip(&mpd.body).contains("type=\"dynamic\""));
    let status = get(
        &server,
        &format!("/api/recordings/{id}"),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(status.header("content-encoding"), "gzip", "JSON too");
    assert!(gunzip(&status.body).contains("\"recording\""));
    let segment = get(
        &server,
        &format!("/media/{id}/{}", listed[0]),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(segment.status, 200);
    assert_eq!(
        segment.header("content-encoding"),
        "",
        "media is never compressed"
    );

    // A delta update combined with a blocking reload waits for the next
    // part, then answers a delta that lists it.
    let next = PlaylistEdge::parse(&full_text).blocking_query();
    let blocked = {
        let url = server.url(&format!("{playlist}{next}&_HLS_skip=YES"));
        let client = server.client.clone();
        tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!blocked.is_finished(), "nothing new yet: it waits");
    for (seq, chunk) in chunks.iter().enumerate().skip(sent) {
        let answer = server.put(&id, &token, seq as u64, chunk.clone()).await;
        assert!(answer.status().is_success(), "chunk {seq}");
    }
    let woken = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("woken by the new part")
        .unwrap();
    assert!(skipped_segments(&woken).is_some(), "{}", &woken[..300]);
    let before = PlaylistEdge::parse(&full_text);
    let after = PlaylistEdge::parse(&woken);
    assert!(
        after.parts.last() > before.parts.last(),
        "lists the part it waited for"
    );

    // Finished: the whole timeline, no skip offered, ffmpeg plays it all.
    let total = chunks.len() as u64;
    assert_eq!(server.finish(&id, &token, total).await.status(), 202);
    let status = server
        .wait_for(&id, PROCESS_LIMIT, |s| s["state"] != "processing")
        .await;
    assert_eq!(status["state"], "ready", "{status:#}");
    let ended = get(&server, &format!("{playlist}?_HLS_skip=YES"), &[]).await;
    let ended_text = ended.text();
    assert!(ended_text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(skipped_segments(&ended_text).is_none() && !ended_text.contains("CAN-SKIP"));
    let zipped = get(&server, &playlist, &[("accept-encoding", "gzip")]).await;
    assert_eq!(zipped.header("content-encoding"), "gzip");
    assert_eq!(gunzip(&zipped.body), ended_text);
    let duration_s = status["duration_s"].as_f64().unwrap();
    assert!(
        (duration_s - f64::from(MEDIA_S)).abs() < 2.0,
        "{duration_s}"
    );
    let errors = decode_errors(&server.url(&format!("/media/{id}/index.m3u8")));
    assert!(
        errors.is_empty(),
        "decoding the finished recording: {errors}"
    );

    // VLC plays the whole of it too, both tracks (a remux: seconds, not
    // the recording's twenty minutes).
    let vlc_dir = tempfile::tempdir().unwrap();
    let url = server.url(&format!("/media/{id}/index.m3u8"));
    let (_, kinds, played_s) = common::vlc_played(&url, vlc_dir.path()).await;
    assert_eq!(kinds, ["audio", "video"]);
    assert!(
        (played_s - duration_s).abs() < 0.5,
        "VLC played {played_s} s of {duration_s} s"
    );
}
