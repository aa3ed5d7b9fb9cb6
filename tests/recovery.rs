//! Nothing lost: the server killed mid-recording, ffmpeg crashing, and an
//! input that makes ffmpeg fail every time. Real ffmpeg, real HTTP.

mod common;

use std::time::Duration;

use common::{
    assert_contiguous_media, cut_randomly, decode_errors, make_webm, spawn_server_process, Server,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

/// (uri, EXTINF) of each listed segment.
fn listed(playlist: &str) -> Vec<(String, f32)> {
    let parsed = m3u8_rs::parse_media_playlist_res(playlist.as_bytes()).unwrap();
    parsed
        .segments
        .into_iter()
        .map(|s| (s.uri, s.duration))
        .collect()
}

async fn wait_status(client: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let status: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn put(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    token: &str,
    seq: usize,
    bytes: &[u8],
) -> u16 {
    let resp = client
        .put(format!("{base}/api/recordings/{id}/chunks/{seq}"))
        .bearer_auth(token)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_recording_loses_no_acknowledged_chunk_and_no_published_segment() {
    let data = tempfile::tempdir().unwrap();
    let source = make_webm(data.path(), 8, "320x240");
    let bytes = std::fs::read(&source).unwrap();
    let chunks = cut_randomly(&bytes, 16, 7);
    let client = reqwest::Client::new();

    let (mut first, base) = spawn_server_process(data.path(), &[]);
    let created: Value = client
        .post(format!("{base}/api/recordings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, token) = (
        created["id"].as_str().unwrap().to_string(),
        created["upload_token"].as_str().unwrap().to_string(),
    );
    // Crash once ~3/4 of the bytes (~6 s of media, so at least 2 complete
    // 2 s segments) are acknowledged.
    let acknowledged = (1..=chunks.len())
        .find(|&k| chunks[..k].iter().map(Vec::len).sum::<usize>() * 4 >= bytes.len() * 3)
        .unwrap();
    for (seq, chunk) in chunks.iter().enumerate().take(acknowledged) {
        assert_eq!(put(&client, &base, &id, &token, seq, chunk).await, 201);
    }
    let status_url = format!("{base}/api/recordings/{id}");
    wait_status(&client, &status_url, |s| s["segments"].as_u64() >= Some(2)).await;
    let before: String = client
        .get(format!("{base}/media/{id}/media.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    first.kill(); // SIGKILL: no shutdown path runs

    let (mut second, base) = spawn_server_process(data.path(), &[]);
    let status_url = format!("{base}/api/recordings/{id}");
    let status: Value = client
        .get(&status_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["chunks"]["received"], acknowledged,
        "every acknowledged chunk survived"
    );
    assert_eq!(status["chunks"]["contiguous"], acknowledged);
    assert_eq!(status["state"], "recording");
    let after_restart: String = client
        .get(format!("{base}/media/{id}/media.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        listed(&after_restart)[..listed(&before).len()],
        listed(&before)[..],
        "published segments kept at once"
    );

    // The client resumes: a retried chunk is a duplicate, the rest are new.
    assert_eq!(
        put(
            &client,
            &base,
            &id,
            &token,
            acknowledged - 1,
            &chunks[acknowledged - 1]
        )
        .await,
        200
    );
    for (seq, chunk) in chunks.iter().enumerate().skip(acknowledged) {
        assert_eq!(put(&client, &base, &id, &token, seq, chunk).await, 201);
    }
    let finish = client
        .post(format!("{base}/api/recordings/{id}/finish"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "chunks": chunks.len() }))
        .send()
        .await
        .unwrap();
    assert_eq!(finish.status(), 202);
    let ready = wait_status(&client, &status_url, |s| {
        s["state"] != "recording" && s["state"] != "processing"
    })
    .await;
    assert_eq!(ready["state"], "ready", "{ready:#}");

    let ended: String = client
        .get(format!("{base}/media/{id}/media.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let before = listed(&before);
    assert_eq!(
        listed(&ended)[..before.len()],
        before[..],
        "same URIs and durations after the crash"
    );
    let media_s = assert_contiguous_media(&client, &base, &id).await;
    assert!(
        (media_s - 8.0).abs() <= 0.1,
        "{media_s} s of media for 8 s of source"
    );
    let errors = decode_errors(&format!("{base}/media/{id}/index.m3u8"));
    assert!(errors.is_empty(), "{errors}");
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_ffmpeg_is_restarted_and_the_recording_completes() {
    let scratch = tempfile::tempdir().unwrap();
    // The --ffmpeg seam: the first ffmpeg's output is cut mid-stream and it
    // dies of SIGPIPE, as if it crashed after publishing some segments.
    let wrapper = scratch.path().join("crashing-ffmpeg");
    let marker = scratch.path().join("crashed-once");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\nif [ ! -e {m} ]; then touch {m}; ffmpeg \"$@\" | head -c 120000; exit 1; fi\nexec ffmpeg \"$@\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&wrapper).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let server = Server::start(|c| c.ffmpeg = wrapper.clone()).await;
    let bytes = std::fs::read(make_webm(scratch.path(), 8, "320x240")).unwrap();
    let chunks = cut_randomly(&bytes, 10, 3);
    let (id, token) = server.create("ffmpeg crashes once").await;
    for (seq, chunk) in chunks.iter().enumerate() {
        assert_eq!(
            server
                .put(&id, &token, seq as u64, chunk.clone())
                .await
                .status(),
            201
        );
    }
    assert_eq!(
        server
            .finish(&id, &token, chunks.len() as u64)
            .await
            .status(),
        202
    );
    let ready = server
        .wait_for(&id, LIMIT, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert!(marker.exists(), "the first ffmpeg ran and crashed");
    assert_eq!(ready["state"], "ready", "{ready:#}");
    let media_s = assert_contiguous_media(&server.client, &server.base, &id).await;
    assert!(
        (media_s - 8.0).abs() <= 0.1,
        "{media_s} s of media for 8 s of source"
    );
    let errors = decode_errors(&server.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "{errors}");
}
