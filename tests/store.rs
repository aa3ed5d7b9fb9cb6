//! `--store s3://bucket/prefix` and `--public-media-url` against a real S3
//! server: `s3s-fs` (`scripts/setup` with `SEGCAST_TEST_TOOLS=1` installs
//! it), started on a free loopback port. The bucket is read back with
//! `object_store`, the client segcast itself uses, and compared with what
//! `/media` served.
//!
//! One test in phases, sharing one s3s-fs and one data directory (the
//! process environment carries the bucket's address, and CI time counts):
//! a live recording and imports (one over a multipart piece) finish while
//! the bucket is down, arrive whole once it is back, are then redirected to the CDN base (only what
//! may be), and are deleted from the bucket with their recording, also
//! when the bucket is down at the time and segcast restarts meanwhile.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::{Attribute, ObjectStore};
use serde_json::Value;

use common::s3::{S3Site, S3};
use common::{make_test_media, make_webm, Api, Server};

const READY_LIMIT: Duration = Duration::from_secs(90);
const BUCKET: &str = "media";
const PREFIX: &str = "vod";
/// Never fetched: the test reads the bucket behind it directly.
const CDN: &str = "https://cdn.segcast.test/vod";

fn configure(c: &mut segcast::Config) {
    c.segment_target_ms = 1000;
    c.store = Some(format!("s3://{BUCKET}/{PREFIX}").parse().unwrap());
    c.public_media_url = Some(CDN.into());
}

/// A file as `/media` served it: name, bytes, content type, cache policy.
type Served = (String, bytes::Bytes, String, String);

/// Every file of the recording that goes to the bucket (its `hls/` folder
/// and the original), as `/media` serves it now, from this server (a
/// redirect fails the test: the recording is not complete in the bucket).
async fn served(api: &Api, data: &Path, id: &str) -> Vec<Served> {
    let dir = data.join("recordings").join(id).join("hls");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !n.starts_with("timeline."))
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.ends_with(".m4s")), "{names:?}");
    names.push("original".into());
    let mut files = Vec::new();
    for name in names {
        let resp = api.get(&format!("/media/{id}/{name}")).await;
        assert_eq!(resp.status(), 200, "{name}");
        let header = |h: &str| resp.headers()[h].to_str().unwrap().to_string();
        let (kind, cache) = (header("content-type"), header("cache-control"));
        files.push((name, resp.bytes().await.unwrap(), kind, cache));
    }
    files
}

/// What of `files` the bucket lacks or holds otherwise (bytes, content
/// type, cache policy).
async fn differences(bucket: &AmazonS3, id: &str, files: &[Served]) -> Vec<String> {
    let mut differ = Vec::new();
    for (name, bytes, kind, cache) in files {
        let key = object_store::path::Path::from(format!("{PREFIX}/{id}/{name}"));
        let Ok(object) = bucket.get(&key).await else {
            differ.push(format!("{name}: missing"));
            continue;
        };
        let attributes = object.attributes.clone();
        let stored = object.bytes().await.unwrap();
        if stored != bytes {
            differ.push(format!(
                "{name}: {} bytes in the bucket, {} served",
                stored.len(),
                bytes.len()
            ));
        }
        let attribute = |a: &Attribute| attributes.get(a).map(|v| v.as_ref().to_string());
        if attribute(&Attribute::ContentType).as_ref() != Some(kind) {
            differ.push(format!("{name}: type {attributes:?}, served {kind}"));
        }
        if attribute(&Attribute::CacheControl).as_ref() != Some(cache) {
            differ.push(format!("{name}: cache {attributes:?}, served {cache}"));
        }
    }
    differ
}

async fn keys(bucket: &AmazonS3, under: &str) -> Vec<String> {
    let prefix = object_store::path::Path::from(under);
    let mut listing = bucket.list(Some(&prefix));
    let mut keys = Vec::new();
    while let Some(meta) = listing.next().await {
        keys.push(meta.unwrap().location.to_string());
    }
    keys.sort();
    keys
}

async fn metric(api: &Api, name: &str) -> f64 {
    let text = api.text("/metrics").await;
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn wait_metric(api: &Api, name: &str, at_least: f64) {
    let deadline = Instant::now() + READY_LIMIT;
    while metric(api, name).await < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Imports `file` over HTTP with `query`; returns (id, upload token).
async fn import(api: &Api, file: &Path, query: &str) -> (String, String) {
    let resp = api
        .client
        .post(api.url(&format!("/api/imports?{query}")))
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    (
        body["id"].as_str().unwrap().into(),
        body["upload_token"].as_str().unwrap().into(),
    )
}

/// `GET path` without following redirects: (status, Location).
async fn get_once(client: &reqwest::Client, api: &Api, path: &str) -> (u16, Option<String>) {
    let resp = client.get(api.url(path)).send().await.unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), location)
}

async fn wait_gone(bucket: &AmazonS3, id: &str) {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let left = keys(bucket, &format!("{PREFIX}/{id}")).await;
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never deleted: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_holds_what_segcast_serves_and_the_cdn_only_what_it_may() {
    // The only test in this binary: the process environment is its own.
    let site = S3Site::new(BUCKET);
    let mut s3 = site.start();
    let server = Server::start(configure).await;
    let bucket = S3::bucket(BUCKET);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mp4 = scratch.path().join("clip.mp4");
    let h264_aac = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"];
    make_test_media(
        &mp4,
        "320x240",
        3,
        &[&h264_aac[..], &["-c:a", "aac"]].concat(),
    );
    // Over one 8 MiB piece: its original goes up as a multipart upload.
    // Noise at near-lossless quality, still H.264 that imports copy.
    let big = scratch.path().join("big.mp4");
    let noisy = ["-vf", "noise=alls=60:allf=t", "-qp", "4", "-c:a", "aac"];
    make_test_media(&big, "320x240", 3, &[&h264_aac[..], &noisy[..]].concat());
    let big_bytes = std::fs::metadata(&big).unwrap().len();
    assert!(big_bytes > 9 << 20, "{big_bytes} bytes: one piece");

    // A live recording: segments reach the bucket while it is made, and
    // it is served here (blocking reloads, parts), not at the CDN.
    let source = std::fs::read(make_webm(server.data.path(), 6, "320x240")).unwrap();
    let pieces: Vec<Vec<u8>> = source
        .chunks(source.len() / 8 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let (live, live_token) = server.create("to the bucket").await;
    let half = pieces.len() / 2;
    for (seq, piece) in pieces[..half].iter().enumerate() {
        let put = server.put(&live, &live_token, seq as u64, piece.clone());
        assert_eq!(put.await.status(), 201);
    }
    server
        .wait_for(&live, READY_LIMIT, |s| s["segments"].as_u64() >= Some(1))
        .await;
    wait_metric(&server, "segcast_store_uploads_total", 3.0).await;
    assert_eq!(
        server.status(&live).await["hls"],
        format!("/media/{live}/index.m3u8")
    );
    let playlist = format!("/media/{live}/media.m3u8");
    assert_eq!(get_once(&no_redirects, &server, &playlist).await.0, 200);

    // The bucket goes down: the recording is still taken and finished,
    // and imports (public, private, encrypted) are made meanwhile.
    s3.stop();
    let (public, public_token) = import(&server, &big, "name=big.mp4").await;
    let (private, private_token) = import(&server, &mp4, "name=clip.mp4&access=private").await;
    let (encrypted, _) = import(&server, &mp4, "name=clip.mp4&encrypt=true").await;
    for (seq, piece) in pieces.iter().enumerate().skip(half) {
        let put = server.put(&live, &live_token, seq as u64, piece.clone());
        assert_eq!(put.await.status(), 201);
    }
    let finished = server.finish(&live, &live_token, pieces.len() as u64);
    assert_eq!(finished.await.status(), 202);
    for id in [&live, &public, &encrypted] {
        let status = server
            .wait_for(id, READY_LIMIT, |s| s["state"] != "processing")
            .await;
        assert_eq!(status["state"], "ready", "{status:#}");
    }
    wait_metric(&server, "segcast_store_failures_total", 1.0).await;
    assert!(metric(&server, "segcast_store_pending_recordings").await >= 1.0);

    // Ready, but not yet in the bucket: served here, status URLs here.
    let mut expected = Vec::new();
    for id in [&live, &public] {
        let status = server.status(id).await;
        assert_eq!(status["hls"], format!("/media/{id}/index.m3u8"));
        expected.push((id.clone(), served(&server, server.data.path(), id).await));
    }
    let original = &expected[0].1.last().unwrap();
    assert_eq!(original.1, source, "the live original is the upload");
    assert_eq!(original.2, "video/webm");
    let big_original = expected[1].1.last().unwrap();
    assert_eq!(big_original.2, "video/mp4");
    assert_eq!(big_original.1.len() as u64, big_bytes);

    // Back up: everything arrives, identical to what segcast served.
    let _s3 = site.start();
    let deadline = Instant::now() + READY_LIMIT;
    for (id, files) in &expected {
        loop {
            let differ = differences(&bucket, id, files).await;
            if differ.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never arrived: {differ:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Complete in the bucket: finished public media is the CDN's.
    for id in [&live, &public] {
        let status = server
            .wait_for(id, READY_LIMIT, |s| {
                s["hls"].as_str().is_some_and(|u| u.starts_with(CDN))
            })
            .await;
        assert_eq!(status["hls"], format!("{CDN}/{id}/index.m3u8"));
        assert_eq!(status["dash"], format!("{CDN}/{id}/manifest.mpd"));
        assert_eq!(status["poster"], format!("{CDN}/{id}/poster.jpg"));
        assert_eq!(status["watch"], format!("/watch/{id}"));
        for name in ["index.m3u8", "manifest.mpd", "seg-00000.m4s", "original"] {
            let (code, location) =
                get_once(&no_redirects, &server, &format!("/media/{id}/{name}")).await;
            assert_eq!(code, 302, "{name}");
            assert_eq!(location, Some(format!("{CDN}/{id}/{name}")), "{name}");
        }
    }
    let listed = server.text("/api/recordings").await;
    assert!(
        listed.contains(&format!("{CDN}/{live}/index.m3u8")),
        "{listed}"
    );
    // Parts are never objects: still answered here.
    let part = format!("/media/{live}/part-000000.m4s");
    assert_eq!(get_once(&no_redirects, &server, &part).await.0, 200);

    // Encrypted: in the bucket, never at the CDN (the key is served here).
    let deadline = Instant::now() + READY_LIMIT;
    while !keys(&bucket, &format!("{PREFIX}/{encrypted}"))
        .await
        .iter()
        .any(|k| k.ends_with("/original"))
    {
        assert!(
            Instant::now() < deadline,
            "the encrypted import never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = server.status(&encrypted).await;
    assert_eq!(status["hls"], format!("/media/{encrypted}/index.m3u8"));
    let playlist = format!("/media/{encrypted}/media.m3u8");
    assert_eq!(get_once(&no_redirects, &server, &playlist).await.0, 200);

    // Private: served here to its owner, and not in the bucket at all.
    let anonymous = server.get(&format!("/api/recordings/{private}")).await;
    assert_eq!(anonymous.status(), 401);
    let deadline = Instant::now() + READY_LIMIT;
    let status = loop {
        let status = server.status_as(&private, &private_token).await;
        if status["state"] != "processing" {
            break status;
        }
        assert!(Instant::now() < deadline, "{status:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["state"], "ready", "{status:#}");
    assert_eq!(status["hls"], format!("/media/{private}/index.m3u8"));
    let resp = no_redirects
        .get(server.url(&format!("/media/{private}/index.m3u8")))
        .bearer_auth(&private_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        keys(&bucket, &format!("{PREFIX}/{private}")).await,
        Vec::<String>::new()
    );

    // Deleted while the bucket is up: its objects go.
    assert_eq!(server.delete(&public, &public_token).await.status(), 204);
    wait_gone(&bucket, &public).await;
    assert!(metric(&server, "segcast_store_deletes_total").await >= expected[1].1.len() as f64);

    // Deleted while the bucket is down, and segcast restarted before it is
    // back: the deletion is written down and done after the restart.
    // As if the private recording had been mirrored before the prefix was
    // public: segcast withdraws it (at the latest after the restart).
    let stray = object_store::path::Path::from(format!("{PREFIX}/{private}/seg-00000.m4s"));
    bucket.put(&stray, b"stray".to_vec().into()).await.unwrap();
    drop(_s3);
    assert_eq!(server.delete(&live, &live_token).await.status(), 204);
    wait_metric(&server, "segcast_store_pending_deletes", 1.0).await;
    let data = server.stop().await;
    let tombstone = data.path().join("store-deletes").join(&live);
    assert!(tombstone.exists());
    let server = Server::start_in(data, configure).await;
    let _s3 = site.start();
    wait_gone(&bucket, &live).await;
    wait_gone(&bucket, &private).await;
    let deadline = Instant::now() + READY_LIMIT;
    while tombstone.exists() {
        assert!(Instant::now() < deadline, "the tombstone stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // What is left: the encrypted import's objects, and no chunk, part
    // or local-only file anywhere.
    let left = keys(&bucket, PREFIX).await;
    assert!(!left.is_empty());
    assert!(
        left.iter()
            .all(|k| k.starts_with(&format!("{PREFIX}/{encrypted}/"))),
        "{left:?}"
    );
    // JSON only as the marker that says the recording is complete there.
    let local_only = |k: &String| {
        k.contains("chunk")
            || k.contains("part-")
            || k.ends_with(".json") && !k.ends_with("/in-bucket.json")
    };
    assert!(!left.iter().any(local_only), "{left:?}");
    assert!(
        left.iter().any(|k| k.ends_with("/in-bucket.json")),
        "{left:?}"
    );
    assert!(left.iter().any(|k| k.ends_with(".mpd")) || left.iter().any(|k| k.ends_with(".m3u8")));
    drop(server);
}
