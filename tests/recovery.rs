//! Nothing lost: the server killed mid-recording, ffmpeg crashing, and an
//! input that makes ffmpeg fail every time. Real ffmpeg, real HTTP.

mod common;

use std::time::Duration;

use common::{
    assert_contiguous_media, cut_randomly, decode_errors, make_webm, spawn_server_process,
    spawn_server_process_with, Api, Server,
};

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

/// Live ffmpeg processes whose parent is `pid` (from /proc).
fn ffmpeg_children(pid: u32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces, so split at ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "ffmpeg" && ppid == Some(pid) {
            found.extend(
                head.split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<i32>().ok()),
            );
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_ffmpeg_and_the_recording_continues_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let source = make_webm(data.path(), 6, "320x240");
    let bytes = std::fs::read(&source).unwrap();
    let chunks = cut_randomly(&bytes, 8, 11);
    let half = chunks.len() / 2;

    let (mut first, base) = spawn_server_process(data.path(), &[]);
    let api = Api::new(base);
    let (id, token) = api.create("stopped mid-recording").await;
    for (seq, chunk) in chunks.iter().enumerate().take(half) {
        api.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    api.wait_for(&id, LIMIT, |s| s["segments"].as_u64() >= Some(1))
        .await;
    let pid = first.0.id();
    let ffmpegs = ffmpeg_children(pid);
    assert!(!ffmpegs.is_empty(), "ffmpeg runs for the live recording");

    // SAFETY: signalling the child process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let exit = tokio::task::spawn_blocking(move || first.0.wait().map(|s| (s, first)))
        .await
        .unwrap()
        .unwrap();
    assert!(exit.0.success(), "graceful exit: {:?}", exit.0);
    for ffmpeg in ffmpegs {
        // SAFETY: signal 0 only asks whether the pid exists.
        let alive = unsafe { libc::kill(ffmpeg, 0) } == 0;
        assert!(
            !alive,
            "ffmpeg {ffmpeg} was stopped and reaped before the server exited"
        );
    }

    let (mut second, base) = spawn_server_process(data.path(), &[]);
    let api = Api::new(base);
    let status = api.status(&id).await;
    assert_eq!(status["state"], "recording", "{status:#}");
    assert_eq!(status["chunks"]["received"], half);
    let playlist = api.text(&format!("/media/{id}/media.m3u8")).await;
    assert!(
        !playlist.contains("#EXT-X-ENDLIST"),
        "still live: {playlist}"
    );
    for (seq, chunk) in chunks.iter().enumerate().skip(half) {
        api.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    api.finish_ok(&id, &token, chunks.len() as u64).await;
    let ready = api
        .wait_for(&id, LIMIT, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(ready["state"], "ready", "{ready:#}");
    let media_s = assert_contiguous_media(&api.client, &api.base, &id).await;
    assert!(
        (media_s - 6.0).abs() <= 0.1,
        "{media_s} s of media for 6 s of source"
    );
    second.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_recording_loses_no_acknowledged_chunk_and_no_published_segment() {
    let data = tempfile::tempdir().unwrap();
    let source = make_webm(data.path(), 8, "320x240");
    let bytes = std::fs::read(&source).unwrap();
    let chunks = cut_randomly(&bytes, 16, 7);

    let (mut first, base) = spawn_server_process(data.path(), &[]);
    let api = Api::new(base);
    let (id, token) = api.create("killed mid-recording").await;
    // Crash once ~3/4 of the bytes (~6 s of media, so at least 2 complete
    // 2 s segments) are acknowledged.
    let acknowledged = (1..=chunks.len())
        .find(|&k| chunks[..k].iter().map(Vec::len).sum::<usize>() * 4 >= bytes.len() * 3)
        .unwrap();
    for (seq, chunk) in chunks.iter().enumerate().take(acknowledged) {
        api.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    api.wait_for(&id, LIMIT, |s| s["segments"].as_u64() >= Some(2))
        .await;
    let before = listed(&api.text(&format!("/media/{id}/media.m3u8")).await);
    // Segments after the first are saved as journal lines, not a new
    // snapshot: the restart must replay them.
    let journal = data
        .path()
        .join(format!("recordings/{id}/hls/timeline.log"));
    let lines = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(lines.lines().count() >= 2, "journal: {lines:?}");
    first.kill(); // SIGKILL: no shutdown path runs

    let (mut second, base) = spawn_server_process(data.path(), &[]);
    let api = Api::new(base);
    let status = api.status(&id).await;
    assert_eq!(
        status["chunks"]["received"], acknowledged,
        "every acknowledged chunk survived"
    );
    assert_eq!(status["chunks"]["contiguous"], acknowledged);
    assert_eq!(status["state"], "recording");
    let after_restart = listed(&api.text(&format!("/media/{id}/media.m3u8")).await);
    assert_eq!(
        after_restart[..before.len()],
        before[..],
        "published segments kept at once"
    );

    // The client resumes: a retried chunk is a duplicate, the rest are new.
    let last_acked = acknowledged - 1;
    assert_eq!(
        api.put(&id, &token, last_acked as u64, chunks[last_acked].clone())
            .await
            .status(),
        200
    );
    for (seq, chunk) in chunks.iter().enumerate().skip(acknowledged) {
        api.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    api.finish_ok(&id, &token, chunks.len() as u64).await;
    let ready = api
        .wait_for(&id, LIMIT, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(ready["state"], "ready", "{ready:#}");

    let ended = listed(&api.text(&format!("/media/{id}/media.m3u8")).await);
    assert_eq!(
        ended[..before.len()],
        before[..],
        "same URIs and durations after the crash"
    );
    let media_s = assert_contiguous_media(&api.client, &api.base, &id).await;
    assert!(
        (media_s - 8.0).abs() <= 0.1,
        "{media_s} s of media for 8 s of source"
    );
    let errors = decode_errors(&api.url(&format!("/media/{id}/index.m3u8")));
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
        server.put_ok(&id, &token, seq as u64, chunk.clone()).await;
    }
    server.finish_ok(&id, &token, chunks.len() as u64).await;
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

#[tokio::test]
async fn a_chunk_that_cannot_be_written_gets_507_and_is_not_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    // Room for the catalog's database and its write-ahead log (a few
    // hundred KB), not for a 3 MB chunk.
    let (mut server, base) = spawn_server_process_with(data.path(), &[], Some(2 << 20));
    let api = Api::new(base);
    let (id, token) = api.create("disk full").await;
    // Seqs above 0 start no ffmpeg: this is storage alone.
    api.put_ok(&id, &token, 5, vec![5; 10_000]).await;
    let refused = api.put(&id, &token, 6, vec![6; 3_000_000]).await;
    assert_eq!(refused.status(), 507);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not acknowledged"),
        "{body}"
    );

    let status = api.status(&id).await;
    assert_eq!(
        status["chunks"]["received"], 1,
        "the refused chunk is not counted"
    );
    let chunk_files: Vec<_> =
        std::fs::read_dir(data.path().join(format!("recordings/{id}/chunks")))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    assert_eq!(
        chunk_files,
        ["00000005.chunk"],
        "no partial file left behind"
    );
    // The server keeps serving, and smaller chunks still go in.
    api.put_ok(&id, &token, 7, vec![7; 1_000]).await;
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_uploader_gets_its_recording_finalized_from_what_arrived() {
    // Several seconds: the five PUTs below must all land before it runs
    // out, also on a loaded machine (1 s was seen to finalize early).
    let server = Server::start(|c| c.idle_timeout_s = 5).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mediarecorder-vp8-opus");
    let chunk = |seq: u64| std::fs::read(dir.join(format!("{seq:04}.webm"))).unwrap();
    let (id, token) = server.create("tab closed").await;
    // Chunk 4 never arrives; 5 does; then the uploader goes silent.
    for seq in [0, 1, 2, 3, 5] {
        server.put_ok(&id, &token, seq, chunk(seq)).await;
    }
    let done = server
        .wait_for(&id, LIMIT, |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(done["state"], "ready", "{done:#}");
    assert_eq!(done["incomplete"], true);
    assert_eq!(done["chunks"]["total"], 4, "finalized at the first gap");
    assert_eq!(done["chunks"]["missing"], serde_json::json!([4]));
    assert_eq!(
        done["chunks"]["received"], 5,
        "the chunk beyond the gap is kept"
    );
    assert!(server
        .data
        .path()
        .join(format!("recordings/{id}/chunks/00000005.chunk"))
        .exists());
    let playlist = server.text(&format!("/media/{id}/media.m3u8")).await;
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let duration_s = done["duration_s"].as_f64().unwrap();
    assert!(
        (3.0..5.0).contains(&duration_s),
        "4 one-second chunks gave {duration_s} s"
    );
    let errors = decode_errors(&server.url(&format!("/media/{id}/index.m3u8")));
    assert!(errors.is_empty(), "{errors}");
    // The late chunk is refused with a reason, nothing is overwritten.
    assert_eq!(server.put(&id, &token, 4, chunk(4)).await.status(), 409);
}
