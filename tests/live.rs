//! The live pipeline end to end: real HTTP on loopback, real ffmpeg.
//! A WebM is cut at random offsets and uploaded shuffled with duplicates,
//! the way a flaky network delivers MediaRecorder chunks.

mod common;

use std::time::Duration;

use common::{cut_randomly, decode_errors, make_webm, Server};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::Value;

const READY_LIMIT: Duration = Duration::from_secs(90);

fn parse_media_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("unparsable playlist: {e:?}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_duplicated_chunks_become_a_growing_then_finished_playlist() {
    let server = Server::start(|_| {}).await;
    let source = make_webm(server.data.path(), 8, "320x240");
    let bytes = std::fs::read(&source).unwrap();
    let seed = 20261121;
    let chunks = cut_randomly(&bytes, 14, seed);
    let (id, token) = server.create("shuffled").await;

    // Every chunk once, a third of them twice, in a seeded random order.
    let mut order: Vec<usize> = (0..chunks.len())
        .chain((0..chunks.len()).step_by(3))
        .collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut first_seen = vec![false; chunks.len()];
    for seq in order {
        let resp = server
            .put(&id, &token, seq as u64, chunks[seq].clone())
            .await;
        let expected = if first_seen[seq] { 200 } else { 201 };
        first_seen[seq] = true;
        assert_eq!(resp.status(), expected, "chunk {seq} (seed {seed})");
        let receipt: Value = resp.json().await.unwrap();
        assert_eq!(receipt["seq"], seq);
    }

    // Before finish: the playlist already lists segments, as a live EVENT.
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["segments"].as_u64() >= Some(2))
        .await;
    assert_eq!(status["state"], "recording");
    assert_eq!(status["chunks"]["contiguous"], chunks.len());
    let live = server.text(&format!("/media/{id}/media.m3u8")).await;
    let playlist = parse_media_playlist(&live);
    assert!(!playlist.end_list, "{live}");
    assert_eq!(
        playlist.playlist_type,
        Some(m3u8_rs::MediaPlaylistType::Event)
    );
    assert!(playlist.segments.len() >= 2, "{live}");

    let resp = server.finish(&id, &token, chunks.len() as u64).await;
    assert_eq!(resp.status(), 202);
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] != "processing")
        .await;
    assert_eq!(status["state"], "ready", "{status:#}");

    let ended = server.text(&format!("/media/{id}/media.m3u8")).await;
    let on_disk = server
        .data
        .path()
        .join(format!("recordings/{id}/hls/media.m3u8"));
    assert_eq!(
        ended,
        std::fs::read_to_string(on_disk).unwrap(),
        "the playlist served from memory is the published file"
    );
    let playlist = parse_media_playlist(&ended);
    assert!(playlist.end_list);
    let extinf_sum: f64 = playlist
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum();
    assert!(
        (extinf_sum - 8.0).abs() <= 0.1,
        "EXTINF sum {extinf_sum} for 8 s of source"
    );
    assert!((status["duration_s"].as_f64().unwrap() - extinf_sum).abs() < 0.01);
    for segment in &playlist.segments {
        assert!((segment.duration.round() as u64) <= playlist.target_duration);
    }
    let errors = decode_errors(&server.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "decoding the playlist: {errors}");

    // The original upload comes back byte for byte.
    let original = server.get(&format!("/media/{id}/original")).await;
    assert_eq!(original.headers()["content-type"], "video/webm");
    assert!(
        original.bytes().await.unwrap() == bytes,
        "original differs from the upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_served_with_types_caching_ranges_and_cors() {
    let server = Server::start(|_| {}).await;
    let chunk_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mediarecorder-vp8-opus");
    let (id, token) = server.create("real mediarecorder").await;
    for seq in 0..6u64 {
        let bytes = std::fs::read(chunk_dir.join(format!("{seq:04}.webm"))).unwrap();
        assert_eq!(server.put(&id, &token, seq, bytes).await.status(), 201);
    }
    assert_eq!(server.finish(&id, &token, 6).await.status(), 202);
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] != "processing")
        .await;
    assert_eq!(status["state"], "ready", "{status:#}");
    assert!(
        (status["duration_s"].as_f64().unwrap() - 6.0).abs() < 0.1,
        "{status}"
    );

    let get = |path: String| {
        server
            .client
            .get(server.url(&path))
            .header("origin", "http://example.org")
            .send()
    };
    let playlist = get(format!("/media/{id}/index.m3u8")).await.unwrap();
    assert_eq!(
        playlist.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(playlist.headers()["cache-control"], "no-cache");
    assert_eq!(playlist.headers()["access-control-allow-origin"], "*");
    let multivariant = playlist.text().await.unwrap();
    assert!(
        multivariant.contains("RESOLUTION=640x360"),
        "{multivariant}"
    );
    assert!(multivariant.contains("CODECS=\"avc1."), "{multivariant}");

    let init = get(format!("/media/{id}/init.mp4")).await.unwrap();
    assert_eq!(init.headers()["content-type"], "video/mp4");
    assert_eq!(
        init.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let segment_path = format!("/media/{id}/seg-00000.m4s");
    let segment = get(segment_path.clone()).await.unwrap();
    assert_eq!(segment.headers()["content-type"], "video/iso.segment");
    let whole = segment.bytes().await.unwrap();

    let ranged = server
        .client
        .get(server.url(&segment_path))
        .header("range", "bytes=8-15")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 8-15/{}", whole.len())
    );
    assert_eq!(ranged.bytes().await.unwrap(), whole[8..16]);

    let errors = decode_errors(&server.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "decoding the playlist: {errors}");

    // The library's poster frame: a JPEG made from the first segment.
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["poster"].is_string())
        .await;
    let poster = get(status["poster"].as_str().unwrap().to_string())
        .await
        .unwrap();
    assert_eq!(poster.headers()["content-type"], "image/jpeg");
    assert_eq!(&poster.bytes().await.unwrap()[..2], b"\xff\xd8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_lists_and_serves_its_recordings() {
    let server = Server::start(|_| {}).await;
    let chunk_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mediarecorder-vp8-opus");
    let (id, token) = server.create("survives restarts").await;
    for seq in 0..6u64 {
        let bytes = std::fs::read(chunk_dir.join(format!("{seq:04}.webm"))).unwrap();
        server.put(&id, &token, seq, bytes).await;
    }
    server.finish(&id, &token, 6).await;
    let before = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;
    let playlist_before = server.text(&format!("/media/{id}/media.m3u8")).await;

    let server = Server::start_in(server.stop().await, |_| {}).await;
    let after = server.status(&id).await;
    assert_eq!(after, before);
    let list: Vec<Value> = server.get("/api/recordings").await.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        server.text(&format!("/media/{id}/media.m3u8")).await,
        playlist_before
    );
    // The token still works after the restart: a retried chunk is a duplicate.
    let bytes = std::fs::read(chunk_dir.join("0000.webm")).unwrap();
    assert_eq!(server.put(&id, &token, 0, bytes).await.status(), 200);
}
