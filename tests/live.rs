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

    server.finish_ok(&id, &token, chunks.len() as u64).await;
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
        server.put_ok(&id, &token, seq, bytes).await;
    }
    server.finish_ok(&id, &token, 6).await;
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
        server.put_ok(&id, &token, seq, bytes).await;
    }
    server.finish_ok(&id, &token, 6).await;
    // Settled: the poster is made beside the last segments and may come
    // just after `ready`.
    let before = server
        .wait_for(&id, READY_LIMIT, |s| {
            s["state"] == "ready" && s["poster"].is_string()
        })
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

/// Sends `GET path` in the background: a request that is meant to block.
fn spawn_get(server: &Server, path: String) -> tokio::task::JoinHandle<reqwest::Response> {
    let (client, url) = (server.client.clone(), server.url(&path));
    tokio::spawn(async move { client.get(url).send().await.unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_latency_requests_block_until_their_media_exists() {
    let server = Server::start(|c| c.segment_target_ms = 1000).await;
    let source = std::fs::read(make_webm(server.data.path(), 6, "320x240")).unwrap();
    let (id, token) = server.create("blocking").await;
    let media = |query: &str| format!("/media/{id}/media.m3u8{query}");

    // From the moment the recording exists: a valid, empty live playlist
    // that already hints the first part (never a 404).
    let empty = server.text(&media("")).await;
    assert!(parse_media_playlist(&empty).segments.is_empty(), "{empty}");
    assert!(empty.contains("CAN-BLOCK-RELOAD=YES"), "{empty}");
    assert!(
        empty.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-000000.m4s\""),
        "{empty}"
    );

    // Asked before any media exists, these wait.
    let hinted_part = spawn_get(&server, format!("/media/{id}/part-000000.m4s"));
    let first_part = spawn_get(&server, media("?_HLS_msn=0&_HLS_part=0"));
    let multivariant = spawn_get(&server, format!("/media/{id}/index.m3u8"));
    let never_made = spawn_get(&server, media("?_HLS_msn=2"));
    // More than two segments past the newest: refused at once.
    let too_far = server.get(&media("?_HLS_msn=3")).await;
    assert_eq!(too_far.status(), 400);
    assert!(too_far.text().await.unwrap().contains("\"error\""));
    assert_eq!(server.get(&media("?_HLS_part=1")).await.status(), 400);

    // Nothing ever comes to this one: 503 after 3 target durations.
    let (silent, _) = server.create("silent").await;
    let started = std::time::Instant::now();
    let unanswerable = spawn_get(&server, format!("/media/{silent}/media.m3u8?_HLS_msn=0"));

    for waiting in [&hinted_part, &first_part, &multivariant, &never_made] {
        assert!(!waiting.is_finished(), "answered before any media existed");
    }
    // About 0.9 s of media, so segment 2 (of 1 s segments) never exists.
    let head = source[..source.len() * 15 / 100].to_vec();
    server.put_ok(&id, &token, 0, head).await;

    let part = hinted_part.await.unwrap();
    assert_eq!(part.status(), 200);
    assert_eq!(part.headers()["content-type"], "video/iso.segment");
    let part = part.bytes().await.unwrap();
    assert_eq!(&part[4..8], b"moof", "a part is a CMAF chunk");
    let reload = first_part.await.unwrap().text().await.unwrap();
    assert!(reload.contains("URI=\"part-000000.m4s\""), "{reload}");
    assert!(reload.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{reload}");
    // Parts but no closed segment yet: the multivariant still waits (a
    // player starting from it would meet an empty media playlist).
    assert!(
        !multivariant.is_finished(),
        "answered before segment 0 closed"
    );

    // The recording ends while a request waits: it gets the final playlist.
    assert!(!never_made.is_finished());
    server.finish_ok(&id, &token, 1).await;
    let multivariant = multivariant.await.unwrap().text().await.unwrap();
    assert!(multivariant.contains("CODECS=\"avc1."), "{multivariant}");
    let last = never_made.await.unwrap().text().await.unwrap();
    let last = parse_media_playlist(&last);
    assert!(last.end_list && last.segments.len() < 3, "{last:?}");

    let unanswerable = unanswerable.await.unwrap();
    assert_eq!(unanswerable.status(), 503);
    assert_eq!(unanswerable.headers()["retry-after"], "1");
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_the_bytes_of_their_segments_from_memory_and_after_a_restart() {
    let server = Server::start(|_| {}).await;
    let source = std::fs::read(make_webm(server.data.path(), 6, "320x240")).unwrap();
    let (id, token) = server.create("parts").await;
    let chunks = cut_randomly(&source, 10, 7);
    // Half the recording: its live playlist lists parts, which play.
    server.put_all_ok(&id, &token, &chunks[..5]).await;
    let live = server
        .text(&format!("/media/{id}/media.m3u8?_HLS_msn=0&_HLS_part=3"))
        .await;
    assert!(live.contains("#EXT-X-PART:"), "{live}");
    for (seq, chunk) in chunks.iter().enumerate().skip(5) {
        server.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    server.finish_ok(&id, &token, chunks.len() as u64).await;
    server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;

    let hls = server.data.path().join(format!("recordings/{id}/hls"));
    let rendition: Value =
        serde_json::from_slice(&std::fs::read(hls.join("timeline.json")).unwrap()).unwrap();
    let tracks = rendition["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "video and audio, each in files of its own");
    // Every part of every track: (URL, the bytes of its segment file it is).
    let expected: Vec<(String, Vec<u8>)> = tracks
        .iter()
        .zip(["", "audio-"])
        .flat_map(|(track, prefix)| {
            let mut index = 0;
            let mut out = Vec::new();
            for segment in track["segments"].as_array().unwrap() {
                let seq = segment["seq"].as_u64().unwrap();
                let file = std::fs::read(hls.join(format!("{prefix}seg-{seq:05}.m4s"))).unwrap();
                for part in segment["parts"].as_array().unwrap() {
                    let offset = part["offset_bytes"].as_u64().unwrap() as usize;
                    let len = part["len_bytes"].as_u64().unwrap() as usize;
                    let url = format!("/media/{id}/{prefix}part-{index:06}.m4s");
                    out.push((url, file[offset..offset + len].to_vec()));
                    index += 1;
                }
            }
            out
        })
        .collect();
    let video_parts = expected
        .iter()
        .filter(|(url, _)| !url.contains("audio-"))
        .count();
    assert!(video_parts >= 15, "0.2 s parts of 6 s: {video_parts}");
    let fetch_all = |server: &Server| {
        let api = common::Api::new(server.base.clone());
        let urls: Vec<String> = expected.iter().map(|(url, _)| url.clone()).collect();
        async move {
            let mut out = Vec::new();
            for url in urls {
                let resp = api.get(&url).await;
                assert_eq!(resp.status(), 200, "{url}");
                out.push((url, resp.bytes().await.unwrap().to_vec()));
            }
            out
        }
    };
    assert!(fetch_all(&server).await == expected, "parts from memory");
    let server = Server::start_in(server.stop().await, |_| {}).await;
    assert!(fetch_all(&server).await == expected, "parts from disk");
    assert_eq!(
        server
            .get(&format!("/media/{id}/part-{video_parts:06}.m4s"))
            .await
            .status(),
        404,
        "a finished recording has no next part"
    );

    // Validators: an unchanged playlist or segment revalidates with 304.
    for file in ["media.m3u8", "seg-00000.m4s"] {
        let url = server.url(&format!("/media/{id}/{file}"));
        let first = server.client.get(&url).send().await.unwrap();
        let etag = first.headers()["etag"].clone();
        assert!(first.headers().contains_key("last-modified"), "{file}");
        let again = server.client.get(&url).header("if-none-match", etag).send();
        assert_eq!(again.await.unwrap().status(), 304, "{file}");
    }

    // What a finished recording served once stays in memory: the files
    // fetched above answer without the disk, one never fetched does not.
    let mut served = Vec::new();
    for file in ["media.m3u8", "seg-00000.m4s", "seg-00001.m4s"] {
        served.push(std::fs::read(hls.join(file)).unwrap());
        std::fs::remove_file(hls.join(file)).unwrap();
    }
    // A segment this large is mapped and sent with sendfile(2)
    // (crates/base/src/zero_copy.rs), here from a file already deleted.
    assert!(
        served[1].len() as u64 >= base::zero_copy::MAP_MIN_BYTES,
        "segment of {} bytes: too small to take the zero-copy path",
        served[1].len()
    );
    for (file, bytes) in ["media.m3u8", "seg-00000.m4s"].iter().zip(&served) {
        let resp = server.get(&format!("/media/{id}/{file}")).await;
        assert_eq!(resp.status(), 200, "{file} from memory");
        assert!(resp.bytes().await.unwrap() == bytes[..], "{file}");
    }
    let uncached = server.get(&format!("/media/{id}/seg-00001.m4s")).await;
    assert_eq!(uncached.status(), 404, "never served, so never cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_follows_a_live_playlist_and_vlc_plays_the_finished_one() {
    let server = Server::start(|_| {}).await;
    let out = tempfile::tempdir().unwrap();
    let source = std::fs::read(make_webm(server.data.path(), 8, "320x240")).unwrap();
    let (id, token) = server.create("followed").await;
    let url = server.url(&format!("/media/{id}/index.m3u8"));
    // Uploaded at the pace it is recorded: 32 quarter-second chunks.
    let pieces = source.len().div_ceil(32);
    let mut chunks = source.chunks(pieces).enumerate();
    let mut next_at = tokio::time::Instant::now();
    let mut upload_next = || {
        let (seq, chunk) = chunks.next()?;
        Some((seq as u64, chunk.to_vec()))
    };
    let mut follower = None;
    while let Some((seq, chunk)) = upload_next() {
        tokio::time::sleep_until(next_at).await;
        next_at += Duration::from_millis(250);
        server.put_ok(&id, &token, seq, chunk).await;
        if follower.is_none() && server.status(&id).await["segments"].as_u64() >= Some(1) {
            // ffmpeg reads the live LL-HLS playlist from its start, and ends
            // with the recording's ENDLIST.
            let (url, file) = (url.clone(), out.path().join("ffmpeg.mp4"));
            follower = Some(tokio::task::spawn_blocking(move || {
                let status = std::process::Command::new("ffmpeg")
                    .args([
                        "-v",
                        "error",
                        "-nostdin",
                        "-live_start_index",
                        "0",
                        "-i",
                        &url,
                    ])
                    .args(["-c", "copy", "-y"])
                    .arg(&file)
                    .status()
                    .unwrap();
                (status, file)
            }));
        }
    }
    let follower = follower.expect("a segment was published while uploading");
    assert!(
        !follower.is_finished(),
        "ffmpeg stopped while the recording was live"
    );
    server.finish_ok(&id, &token, 32).await;
    let status = server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;
    let duration_s = status["duration_s"].as_f64().unwrap();

    let (exit, followed) = follower.await.unwrap();
    assert!(exit.success(), "ffmpeg following the live playlist: {exit}");
    let mut kinds = common::stream_kinds(&followed);
    kinds.sort();
    assert_eq!(
        kinds,
        ["audio", "video"],
        "ffmpeg took the audio rendition too"
    );
    let followed_s = common::probe_duration_s(&followed);
    assert!(
        (followed_s - duration_s).abs() < 0.3,
        "ffmpeg got {followed_s} s of {duration_s} s"
    );
    let errors = decode_errors(&followed.display().to_string());
    assert!(errors.is_empty(), "{errors}");

    let (played, kinds, played_s) = common::vlc_played(&url, out.path()).await;
    assert_eq!(
        kinds,
        ["audio", "video"],
        "VLC played the audio rendition too"
    );
    assert!(
        (played_s - duration_s).abs() < 0.3,
        "VLC played {played_s} s of {duration_s} s"
    );
    let errors = decode_errors(&played.display().to_string());
    assert!(errors.is_empty(), "{errors}");
}

/// Polls the server's gauge of waiting requests until it reads `count`,
/// while every request of `waiters` is still waiting (one that ends was
/// not held, and fails the test with its status); panics after a generous
/// deadline.
async fn until_waiting(
    server: &Server,
    count: f64,
    waiters: &[&tokio::task::JoinHandle<reqwest::Response>],
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting = common::waiting_requests(server).await;
        if waiting == count {
            return;
        }
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "a waiter was answered instead of held ({waiting} waiting)"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never {count} waiting: {waiting}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_hold_a_client_slot_until_they_end() {
    // 10 s segments: a blocked request waits three target durations (30 s)
    // before its 503, far longer than this test takes on a loaded machine.
    let server = Server::start(|c| {
        c.max_waiting_per_client = 2;
        c.segment_target_ms = 10_000;
    })
    .await;
    let (id, _) = server.create("nothing yet").await;
    let blocking = format!("/media/{id}/media.m3u8?_HLS_msn=0");
    // Whether a request waits is read from the server's gauge of waiting
    // requests, never from how long a client waited.
    let first = spawn_get(&server, blocking.clone());
    let second = spawn_get(&server, format!("/media/{id}/part-000000.m4s"));
    until_waiting(&server, 2.0, &[&first, &second]).await;
    // A third would wait too: it is refused instead (without the cap it
    // would wait, and end 30 s later with a 503).
    let refused = server.get(&blocking).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // A request that does not wait needs no slot.
    assert_eq!(
        server
            .get(&format!("/media/{id}/media.m3u8"))
            .await
            .status(),
        200
    );
    // The client goes away: its slot is free again, and a new request waits.
    first.abort();
    let _ = first.await;
    until_waiting(&server, 1.0, &[&second]).await;
    let third = spawn_get(&server, blocking.clone());
    until_waiting(&server, 2.0, &[&second, &third]).await;
    second.abort();
    third.abort();
}
