//! `--store`: an `s3s-fs` bucket on loopback (as tests/store.rs starts
//! it), and followers that poll a media playlist on local disk and in the
//! bucket, noting when each change of the media listed in whole segments
//! was first seen.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::ObjectStore;

use super::common::PlaylistEdge;

pub const BUCKET: &str = "bench";
pub const PREFIX: &str = "lag";
/// How often the followers look; the resolution of their figures.
pub const POLL: Duration = Duration::from_millis(10);
/// Followers stop by themselves after this long.
const FOLLOW_MAX: Duration = Duration::from_secs(300);

/// An s3s-fs on a free loopback port, the `AWS_*` variables pointing at
/// it; killed when dropped.
pub struct S3 {
    child: Child,
    _root: tempfile::TempDir,
}

impl S3 {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "segcast");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "segcast-secret");
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "segcast", "--secret-key", "segcast-secret"])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("s3s-fs must be installed (SEGCAST_TEST_TOOLS=1 scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, _root: root }
    }

    pub fn store_url() -> segcast::objects::StoreUrl {
        format!("s3://{BUCKET}/{PREFIX}").parse().unwrap()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bucket() -> AmazonS3 {
    AmazonS3Builder::from_env()
        .with_endpoint(std::env::var("AWS_ENDPOINT_URL").unwrap())
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .build()
        .unwrap()
}

/// (when, seconds of media listed in whole segments), at each change.
pub type Listed = Vec<(Instant, f64)>;

/// Follows `<data>/recordings/<id>/hls/media.m3u8` until it ends.
pub async fn follow_file(data: PathBuf, id: String) -> Listed {
    let path = data.join("recordings").join(&id).join("hls/media.m3u8");
    follow(move || {
        let path = path.clone();
        async move { tokio::fs::read_to_string(&path).await.ok() }
    })
    .await
}

/// Follows the recording's `media.m3u8` in the bucket until it ends.
pub async fn follow_object(id: String) -> Listed {
    let bucket = std::sync::Arc::new(bucket());
    let key = object_store::path::Path::from(format!("{PREFIX}/{id}/media.m3u8"));
    follow(move || {
        let (bucket, key) = (bucket.clone(), key.clone());
        async move {
            let object = bucket.get(&key).await.ok()?;
            String::from_utf8(object.bytes().await.ok()?.to_vec()).ok()
        }
    })
    .await
}

async fn follow<F, Fut>(read: F) -> Listed
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let mut listed: Listed = Vec::new();
    let deadline = Instant::now() + FOLLOW_MAX;
    while Instant::now() < deadline {
        if let Some(text) = read().await {
            let edge = PlaylistEdge::parse(&text);
            if listed.last().is_none_or(|l| l.1 != edge.segments_end_s) {
                listed.push((Instant::now(), edge.segments_end_s));
            }
            if edge.ended {
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    listed
}
