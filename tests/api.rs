//! Error paths of the HTTP contract: each bad request gets its status and a
//! JSON `{"error": …}` body, and nothing already stored is harmed.

mod common;

use std::time::Duration;

use common::{assert_error, content_digest, cut_randomly, make_webm, Server};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn uploads_need_the_recordings_own_token() {
    let server = Server::start(|_| {}).await;
    let (id, _token) = server.create("a").await;
    let (_other_id, other_token) = server.create("b").await;
    let url = server.url(&format!("/api/recordings/{id}/chunks/0"));

    let missing = server.client.put(&url).body("x").send().await.unwrap();
    assert!(assert_error(missing, 401).await.contains("missing"));
    assert_error(
        server
            .client
            .put(&url)
            .bearer_auth("nope")
            .body("x")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_error(server.put(&id, &other_token, 0, b"x".to_vec()).await, 401).await;
    let finish = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/finish")))
        .json(&serde_json::json!({"chunks": 1}));
    assert_error(finish.send().await.unwrap(), 401).await;
    assert_error(
        server
            .client
            .delete(server.url(&format!("/api/recordings/{id}")))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(server.status(&id).await["chunks"]["received"], 0);
}

#[tokio::test]
async fn a_digest_mismatch_stores_nothing() {
    let server = Server::start(|_| {}).await;
    let (id, token) = server.create("digest").await;
    let resp = server
        .client
        .put(server.url(&format!("/api/recordings/{id}/chunks/0")))
        .bearer_auth(&token)
        .header("content-digest", content_digest(b"other bytes"))
        .body("these bytes")
        .send()
        .await
        .unwrap();
    assert!(assert_error(resp, 400).await.contains("does not match"));
    let malformed = server
        .client
        .put(server.url(&format!("/api/recordings/{id}/chunks/0")))
        .bearer_auth(&token)
        .header("content-digest", "sha-256=nonsense")
        .body("these bytes")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400).await;
    assert_eq!(server.status(&id).await["chunks"]["received"], 0);
    assert!(!server
        .data
        .path()
        .join(format!("recordings/{id}/chunks/00000000.chunk"))
        .exists());
}

#[tokio::test]
async fn rewriting_a_chunk_with_other_bytes_conflicts_and_keeps_the_first() {
    let server = Server::start(|_| {}).await;
    let (id, token) = server.create("conflict").await;
    // Seq 1 only: no ffmpeg starts, this is pure bookkeeping.
    assert_eq!(
        server.put(&id, &token, 1, b"first".to_vec()).await.status(),
        201
    );
    assert_eq!(
        server.put(&id, &token, 1, b"first".to_vec()).await.status(),
        200
    );
    assert_error(server.put(&id, &token, 1, b"second".to_vec()).await, 409).await;
    let stored = std::fs::read(
        server
            .data
            .path()
            .join(format!("recordings/{id}/chunks/00000001.chunk")),
    )
    .unwrap();
    assert_eq!(stored, b"first");
    let status = server.status(&id).await;
    assert_eq!(
        status["chunks"],
        serde_json::json!({"received": 1, "contiguous": 0, "missing": [0], "total": null})
    );
}

#[tokio::test]
async fn oversize_chunks_are_refused_with_413() {
    let server = Server::start(|c| c.max_chunk_bytes = 1000).await;
    let (id, token) = server.create("big").await;
    assert_error(server.put(&id, &token, 3, vec![7; 1001]).await, 413).await;
    // Without Content-Length (chunked transfer) the limit holds while reading.
    let stream =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![1u8; 400])));
    let resp = server.put_streamed(&id, &token, 3, stream).await;
    assert_error(resp, 413).await;
    // A client still sending megabytes reads the 413, not a reset.
    let big =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![2u8; 64 * 1024])));
    assert_error(server.put_streamed(&id, &token, 3, big).await, 413).await;
    assert_eq!(
        server.put(&id, &token, 3, vec![7; 1000]).await.status(),
        201
    );
}

#[tokio::test]
async fn a_recording_over_its_size_limit_gets_413_and_keeps_what_it_has() {
    let server = Server::start(|c| c.max_recording_bytes = 2500).await;
    let (id, token) = server.create("sized").await;
    // Chunk 0 starts like WebM (EBML magic): it passes the format check.
    let mut first = vec![1; 1000];
    first[..4].copy_from_slice(&[0x1a, 0x45, 0xdf, 0xa3]);
    for seq in 0..2 {
        let bytes = if seq == 0 {
            first.clone()
        } else {
            vec![1; 1000]
        };
        assert_eq!(server.put(&id, &token, seq, bytes).await.status(), 201);
    }
    let over = assert_error(server.put(&id, &token, 2, vec![2; 1000]).await, 413).await;
    assert!(over.contains("limit of 2500 bytes (2000 stored)"), "{over}");
    // A retry of a stored chunk is not new data; what still fits is taken.
    assert_eq!(server.put(&id, &token, 0, first).await.status(), 200);
    assert_eq!(server.put(&id, &token, 2, vec![2; 500]).await.status(), 201);
    assert_error(server.put(&id, &token, 3, vec![3; 1]).await, 413).await;
    assert_eq!(server.status(&id).await["chunks"]["received"], 3);
}

#[tokio::test]
async fn seq_and_total_are_checked() {
    let server = Server::start(|c| c.max_chunks = 100).await;
    let (id, token) = server.create("seq").await;
    for bad in ["-1", "abc", "1.5", "100", "18446744073709551616"] {
        let resp = server
            .client
            .put(server.url(&format!("/api/recordings/{id}/chunks/{bad}")))
            .bearer_auth(&token)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_error(resp, 400).await;
    }
    assert_eq!(
        server.put(&id, &token, 5, b"five".to_vec()).await.status(),
        201
    );
    assert!(assert_error(server.finish(&id, &token, 3).await, 409)
        .await
        .contains("smaller"));
    let bad_json = server
        .client
        .post(server.url(&format!("/api/recordings/{id}/finish")))
        .bearer_auth(&token)
        .body("{\"chunks\": \"many\"}")
        .send()
        .await
        .unwrap();
    assert_error(bad_json, 400).await;
    assert_eq!(server.finish(&id, &token, 6).await.status(), 202);
    assert_eq!(
        server.finish(&id, &token, 6).await.status(),
        202,
        "finish is idempotent"
    );
    assert_error(server.finish(&id, &token, 7).await, 409).await;
    assert!(
        assert_error(server.put(&id, &token, 6, b"six".to_vec()).await, 409)
            .await
            .contains("beyond")
    );
    // Chunks 0-4 are still owed: the upload is not over.
    let status = server.status(&id).await;
    assert_eq!(status["state"], "recording", "{status}");
    assert_eq!(status["chunks"]["missing"], json!([0, 1, 2, 3, 4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_chunk_0_keeps_the_recording_waiting_for_it() {
    let server = Server::start(|c| c.idle_timeout_s = 3).await;
    let (id, token) = server.create("not media").await;
    assert_error(
        server
            .put(&id, &token, 0, b"not media at all".to_vec())
            .await,
        415,
    )
    .await;
    assert_eq!(server.finish(&id, &token, 1).await.status(), 202);
    let status = server.status(&id).await;
    assert_eq!(status["state"], "recording", "{status}");
    assert_eq!(status["chunks"]["missing"], json!([0]), "{status}");
    assert_eq!(status["chunks"]["total"], 1);
    // The uploader never sends it: the idle timeout ends it, saying why.
    let status = server
        .wait_for(&id, Duration::from_secs(30), |s| s["state"] != "recording")
        .await;
    assert_eq!(status["state"], "failed", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("no chunk arrived"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owed_chunk_ends_the_upload() {
    let server = Server::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let webm = std::fs::read(make_webm(dir.path(), 2, "320x240")).unwrap();
    let chunks = cut_randomly(&webm, 3, 7);
    let (id, token) = server.create("late chunk").await;
    server.put_ok(&id, &token, 1, chunks[1].clone()).await;
    server.put_ok(&id, &token, 2, chunks[2].clone()).await;
    server.finish_ok(&id, &token, 3).await;
    let status = server.status(&id).await;
    assert_eq!(status["state"], "recording", "{status}");
    assert_eq!(status["chunks"]["missing"], json!([0]));
    server.put_ok(&id, &token, 0, chunks[0].clone()).await;
    let status = server
        .wait_for(&id, Duration::from_secs(60), |s| s["state"] == "ready")
        .await;
    assert_eq!(status["chunks"]["missing"], json!([]), "{status}");
    assert_eq!(status["incomplete"], false);
}

#[tokio::test]
async fn creation_below_the_free_space_minimum_is_507_and_makes_nothing() {
    // More than any disk has: the check must refuse, whatever this machine.
    let server = Server::start(|c| c.min_free_mb = 1 << 40).await;
    let resp = server
        .client
        .post(server.url("/api/recordings"))
        .json(&json!({ "title": "full" }))
        .send()
        .await
        .unwrap();
    let message = assert_error(resp, 507).await;
    assert!(message.contains("--min-free-mb"), "{message}");
    let resp = server
        .client
        .post(server.url("/api/imports?name=full.mp4"))
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_error(resp, 507).await;
    let list: Value = server.get("/api/recordings").await.json().await.unwrap();
    assert_eq!(list, json!([]), "{list}");
    let dirs = std::fs::read_dir(server.data.path().join("recordings")).map_or(0, |d| d.count());
    assert_eq!(dirs, 0, "no folder was made");
}

#[tokio::test]
async fn unknown_ids_and_traversal_attempts_are_404() {
    let server = Server::start(|_| {}).await;
    let (id, token) = server.create("traversal").await;
    server.put_ok(&id, &token, 1, b"secret".to_vec()).await;
    // The files the probes below aim at are there to be found.
    let data = server.data.path();
    for file in [
        format!("recordings/{id}/chunks/00000001.chunk"),
        "segcast.db".into(),
    ] {
        assert!(data.join(&file).is_file(), "{file}");
    }
    assert_error(server.get("/api/recordings/0123456789").await, 404).await;
    assert_error(
        server.put("0123456789", &token, 0, b"x".to_vec()).await,
        404,
    )
    .await;
    for path in [
        format!("/media/{id}/..%2Fchunks%2F00000001.chunk"),
        format!("/media/{id}/%2e%2e%2fchunks%2f00000001.chunk"),
        format!("/media/{id}/..%2F..%2F..%2Fsegcast.db"),
        format!("/media/{id}/segcast.db"),
        format!("/media/{id}/seg-1.m4s"),
        "/media/..%2F..%2Fetc/passwd".to_string(),
        "/media/ABC/index.m3u8".to_string(),
        format!("/media/{id}/../chunks/00000001.chunk"),
        format!("/media/{id}/seg-00000.m4s"), // not published yet
        format!("/media/{id}/audio-seg-00000.m4s"),
    ] {
        let resp = server.get(&path).await;
        assert_ne!(resp.status(), StatusCode::OK, "{path}");
        assert_error(resp, 404).await;
    }
}

#[tokio::test]
async fn deleting_removes_files_and_answers_410_after() {
    let server = Server::start(|_| {}).await;
    let (id, token) = server.create("gone").await;
    server.put_ok(&id, &token, 2, b"two".to_vec()).await;
    let keep = server.create("kept").await;
    server.put_ok(&keep.0, &keep.1, 2, b"kept".to_vec()).await;

    assert_eq!(server.delete(&id, &token).await.status(), 204);
    assert!(!server.data.path().join(format!("recordings/{id}")).exists());
    assert_error(server.get(&format!("/api/recordings/{id}")).await, 410).await;
    assert_error(server.put(&id, &token, 3, b"x".to_vec()).await, 410).await;
    assert_eq!(
        server.status(&keep.0).await["chunks"]["received"],
        1,
        "other recordings are untouched"
    );
}

#[tokio::test]
async fn a_publish_key_guards_creation() {
    let server = Server::start(|c| c.publish_key = Some("s3cret".into())).await;
    let url = server.url("/api/recordings");
    assert_error(server.client.post(&url).send().await.unwrap(), 401).await;
    assert_error(
        server
            .client
            .post(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    let resp = server
        .client
        .post(&url)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/recordings/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["state"], "recording");
    assert!(
        body["upload_token"].as_str().unwrap().len() >= 22,
        "128-bit token"
    );
    // The publish key also deletes any recording (e.g. one imported by
    // `segcast import`, whose token nobody holds); a wrong key does not.
    let id = body["id"].as_str().unwrap();
    assert_error(server.delete(id, "wrong").await, 401).await;
    assert_eq!(server.delete(id, "s3cret").await.status(), 204);
}

#[tokio::test]
async fn bad_json_and_unknown_routes_answer_json_errors() {
    let server = Server::start(|_| {}).await;
    let resp = server
        .client
        .post(server.url("/api/recordings"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(assert_error(resp, 400).await.contains("JSON"));
    assert_error(server.get("/nope").await, 404).await;
    assert_error(
        server
            .client
            .patch(server.url("/api/recordings"))
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_input_fails_with_a_message_and_harms_no_one() {
    let server = Server::start(|_| {}).await;
    let (id, token) = server.create("garbage").await;
    // The EBML magic, then noise: chunk 0 passes the format check
    // (ingest_formats.rs refuses what is not even that), ffmpeg cannot read it.
    let garbage: Vec<u8> = [0x1a, 0x45, 0xdf, 0xa3]
        .into_iter()
        .chain((4..50_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8))
        .collect();
    assert_eq!(server.put(&id, &token, 0, garbage).await.status(), 201);
    assert_eq!(server.finish(&id, &token, 1).await.status(), 202);
    let status = server
        .wait_for(&id, Duration::from_secs(30), |s| s["state"] == "failed")
        .await;
    let error = status["error"].as_str().unwrap();
    assert!(
        error.starts_with("ffmpeg could not process the recording"),
        "{error}"
    );
    // The upload itself is kept: the source is never lost.
    let original = server.get(&format!("/media/{id}/original")).await;
    assert_eq!(original.bytes().await.unwrap().len(), 50_000);
}

#[tokio::test]
async fn pages_and_assets_are_served_without_escaping_the_player_dir() {
    let server = Server::start(|_| {}).await;
    for (path, needle) in [
        ("/", "Library"),
        ("/record", "Start recording"),
        ("/watch/abc", "Copy playlist URL"),
    ] {
        let resp = server.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(resp.text().await.unwrap().contains(needle), "{path}");
    }
    let js = server.get("/assets/upload-client.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let hls = server.get("/assets/vendor/hls.min.js").await;
    assert_eq!(hls.status(), 200, "hls.js is inside the binary (build.rs)");
    for path in [
        "/assets/../package.json",
        "/assets/..%2Fpackage.json",
        "/assets/%2e%2e/pages/index.html",
        "/assets/nope.js",
    ] {
        assert_error(server.get(path).await, 404).await;
    }
}

#[tokio::test]
async fn a_player_dir_overrides_the_pages_inside_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pages")).unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::write(
        dir.path().join("pages/index.html"),
        "<p>a page in the works</p>",
    )
    .unwrap();
    std::fs::write(dir.path().join("public/watch.js"), "// mine").unwrap();
    let path = dir.path().to_path_buf();
    let server = Server::start(|c| c.player_dir = Some(path)).await;
    assert_eq!(server.text("/").await, "<p>a page in the works</p>");
    assert_eq!(server.text("/assets/watch.js").await, "// mine");
    // What the directory lacks is missing, not taken from the binary.
    assert!(assert_error(server.get("/record").await, 404)
        .await
        .contains("--player-dir"));
    assert!(
        assert_error(server.get("/assets/vendor/hls.min.js").await, 404)
            .await
            .contains("npm ci")
    );
}

#[tokio::test]
async fn embedded_pages_revalidate_with_their_etag() {
    let server = Server::start(|_| {}).await;
    let first = server.get("/assets/vendor/hls.min.js").await;
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].clone();
    let again = server
        .client
        .get(server.url("/assets/vendor/hls.min.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let other = server
        .client
        .get(server.url("/assets/vendor/hls.min.js"))
        .header("if-none-match", "\"0000000000000000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert!(other.bytes().await.unwrap().len() > 100_000);
}

#[tokio::test]
async fn live_recordings_beyond_the_limit_get_503_with_retry_after() {
    let server = Server::start(|c| c.max_live_recordings = 1).await;
    let (id, token) = server.create("the only live one").await;
    let resp = server
        .client
        .post(server.url("/api/recordings"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "30");
    assert!(assert_error(resp, 503).await.contains("limit"));
    // A recording that ends (here: finished with no chunks → failed) frees its place.
    assert_eq!(server.finish(&id, &token, 0).await.status(), 202);
    assert_eq!(server.status(&id).await["state"], "failed");
    let resp = server
        .client
        .post(server.url("/api/recordings"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_stores_nothing() {
    let server = Server::start(|c| c.body_timeout_s = 1).await;
    let (id, token) = server.create("slow loris").await;
    // One piece of the body, then silence, as a slow-loris client does.
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(vec![1u8; 100])]);
    let stalled = first.chain(futures_util::stream::pending());
    let resp = server.put_streamed(&id, &token, 3, stalled).await;
    assert!(assert_error(resp, 408).await.contains("stalled"));
    assert_eq!(server.status(&id).await["chunks"]["received"], 0);
}

#[tokio::test]
async fn media_answers_cors_preflights_and_its_errors_carry_cors() {
    let server = Server::start(|_| {}).await;
    let (id, _) = server.create("cors").await;
    let preflight = server
        .client
        .request(
            reqwest::Method::OPTIONS,
            server.url(&format!("/media/{id}/media.m3u8")),
        )
        .header("origin", "https://elsewhere.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range, if-none-match")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed.contains("range") && allowed.contains("if-none-match"),
        "{allowed}"
    );
    // A page on another origin can read why a request failed.
    for (path, status) in [
        (format!("/media/{id}/seg-00000.m4s"), 404),
        ("/media/0123456789/index.m3u8".to_string(), 404),
        (format!("/media/{id}/media.m3u8?_HLS_msn=x"), 400),
    ] {
        let resp = server.get(&path).await;
        assert_eq!(resp.headers()["access-control-allow-origin"], "*", "{path}");
        assert_error(resp, status).await;
    }
}

/// `?limit=&before=` pages through the library newest first: the pages
/// together are the whole list, in order, each pointing at the next with
/// `Link`; private recordings stay out without the publish key.
#[tokio::test]
async fn the_library_pages_newest_first() {
    let server = Server::start(|c| c.publish_key = Some("pager".into())).await;
    let mut made = Vec::new();
    for n in 0..5 {
        let body = serde_json::json!({ "title": format!("page test {n}") });
        made.push(server.create_with(body, Some("pager")).await.0);
    }
    let body = serde_json::json!({ "title": "hidden", "access": "private" });
    let (hidden, _) = server.create_with(body, Some("pager")).await;
    let all: Vec<Value> = server.get("/api/recordings").await.json().await.unwrap();
    let all_ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(all_ids.len(), 5, "private ones are not listed to anyone");
    assert!(!all_ids.contains(&hidden.as_str()));
    let mut created_at: Vec<&str> = all
        .iter()
        .map(|r| r["created_at"].as_str().unwrap())
        .collect();
    let listed = created_at.clone();
    created_at.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, created_at, "newest first");

    let mut paged = Vec::new();
    let mut next = Some("/api/recordings?limit=2".to_string());
    while let Some(path) = next.take() {
        let resp = server.get(&path).await;
        assert_eq!(resp.status(), 200);
        next = resp.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            link[1..link.find('>').unwrap()].to_string()
        });
        let page: Vec<Value> = resp.json().await.unwrap();
        assert!(page.len() <= 2);
        paged.extend(
            page.into_iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(paged, all_ids, "the pages are the whole list, in order");

    let resp = server
        .client
        .get(server.url("/api/recordings?limit=10"))
        .bearer_auth("pager")
        .send()
        .await
        .unwrap();
    let operator: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(operator.len(), 6, "the publish key sees private ones too");
    for bad in ["limit=0", "limit=1001", "limit=two", "limit=-1"] {
        let message = assert_error(server.get(&format!("/api/recordings?{bad}")).await, 400).await;
        assert!(message.contains("limit"), "{bad}: {message}");
    }
    let resp = server
        .get("/api/recordings?limit=2&before=00000000000000000000")
        .await;
    assert!(assert_error(resp, 400).await.contains("before"));
}
