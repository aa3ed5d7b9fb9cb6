//! `--store s3://bucket/prefix` against a real S3 server: `s3s-fs`
//! (`scripts/setup` with `SEGCAST_TEST_TOOLS=1` installs it), started on a
//! free loopback port. The bucket is read back with `object_store`, the
//! client segcast itself uses, and compared with what `/media` serves.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{Attribute, ObjectStore};

use common::{make_webm, Api, Server};

const READY_LIMIT: Duration = Duration::from_secs(90);
const BUCKET: &str = "media";
const PREFIX: &str = "vod";

/// An s3s-fs serving `root` on `port`; killed when dropped.
struct S3 {
    child: Child,
}

impl S3 {
    fn start(root: &Path, port: u16) -> Self {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "segcast", "--secret-key", "segcast-secret"])
            .arg(root)
            .spawn()
            .expect("s3s-fs must be installed (SEGCAST_TEST_TOOLS=1 scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bucket_client() -> AmazonS3 {
    AmazonS3Builder::from_env()
        .with_endpoint(std::env::var("AWS_ENDPOINT_URL").unwrap())
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .build()
        .unwrap()
}

/// Whether every file of the recording's `hls/` folder that goes to the
/// bucket is there, byte-identical to what `/media` serves, with the same
/// content type and cache policy. Returns what differs.
async fn differences(api: &Api, bucket: &AmazonS3, data: &Path, id: &str) -> Vec<String> {
    let dir = data.join("recordings").join(id).join("hls");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "timeline.json")
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.ends_with(".m4s")), "{names:?}");
    let mut differ = Vec::new();
    for name in names {
        let served = api.get(&format!("/media/{id}/{name}")).await;
        assert_eq!(served.status(), 200, "{name}");
        let kind = served.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let cache = served.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_string();
        let served = served.bytes().await.unwrap();
        let key = object_store::path::Path::from(format!("{PREFIX}/{id}/{name}"));
        let Ok(object) = bucket.get(&key).await else {
            differ.push(format!("{name}: missing"));
            continue;
        };
        let attributes = object.attributes.clone();
        let stored = object.bytes().await.unwrap();
        if stored != served {
            differ.push(format!(
                "{name}: {} bytes in the bucket, {} served",
                stored.len(),
                served.len()
            ));
        }
        assert_eq!(
            attributes.get(&Attribute::ContentType).map(|v| v.as_ref()),
            Some(kind.as_str()),
            "{name}"
        );
        assert_eq!(
            attributes.get(&Attribute::CacheControl).map(|v| v.as_ref()),
            Some(cache.as_str()),
            "{name}"
        );
    }
    differ
}

async fn metric(api: &Api, name: &str) -> f64 {
    let text = api.text("/metrics").await;
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_reaches_the_bucket_whole_even_when_it_was_down_meanwhile() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    // The only test in this binary: the process environment is its own.
    std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "segcast");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "segcast-secret");
    let mut s3 = S3::start(root.path(), port);
    let server = Server::start(|c| {
        c.segment_target_ms = 1000;
        c.store = Some(format!("s3://{BUCKET}/{PREFIX}").parse().unwrap());
    })
    .await;
    let bucket = bucket_client();

    let source = std::fs::read(make_webm(server.data.path(), 6, "320x240")).unwrap();
    let pieces: Vec<Vec<u8>> = source
        .chunks(source.len() / 8 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let (id, token) = server.create("to the bucket").await;
    let half = pieces.len() / 2;
    for (seq, piece) in pieces[..half].iter().enumerate() {
        assert_eq!(
            server
                .put(&id, &token, seq as u64, piece.clone())
                .await
                .status(),
            201
        );
    }
    // Segments reach the bucket while recording.
    server
        .wait_for(&id, READY_LIMIT, |s| s["segments"].as_u64() >= Some(1))
        .await;
    let deadline = Instant::now() + READY_LIMIT;
    while metric(&server, "segcast_store_uploads_total").await < 3.0 {
        assert!(Instant::now() < deadline, "nothing reached the bucket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The bucket goes down: the recording is still taken and finished.
    s3.stop();
    for (seq, piece) in pieces.iter().enumerate().skip(half) {
        assert_eq!(
            server
                .put(&id, &token, seq as u64, piece.clone())
                .await
                .status(),
            201
        );
    }
    assert_eq!(
        server
            .finish(&id, &token, pieces.len() as u64)
            .await
            .status(),
        202
    );
    server
        .wait_for(&id, READY_LIMIT, |s| s["state"] == "ready")
        .await;
    let deadline = Instant::now() + READY_LIMIT;
    while metric(&server, "segcast_store_failures_total").await < 1.0 {
        assert!(Instant::now() < deadline, "the failing bucket never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&server, "segcast_store_pending_recordings").await >= 1.0);

    // Back up: everything arrives, identical to what segcast serves.
    let _s3 = S3::start(root.path(), port);
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let differ = differences(&server, &bucket, server.data.path(), &id).await;
        if differ.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bucket never caught up: {differ:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Chunks stay local, and no part is a file anywhere.
    let mut keys = Vec::new();
    let mut listing = bucket.list(Some(&object_store::path::Path::from(PREFIX)));
    while let Some(meta) = futures_util::StreamExt::next(&mut listing).await {
        keys.push(meta.unwrap().location.to_string());
    }
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{PREFIX}/{id}/"))),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("chunk") || k.contains("part-") || k.ends_with(".json")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.ends_with("manifest.mpd") || k.ends_with(".mpd")),
        "{keys:?}"
    );
}
