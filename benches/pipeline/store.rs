//! `--store`: an `s3s-fs` bucket on loopback (as tests/store.rs starts
//! it), and followers that poll a media playlist on local disk and in the
//! bucket, noting when each change of the media listed in whole segments
//! was first seen.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3;
use object_store::ObjectStore;

use super::common::{self, PlaylistEdge};

pub const BUCKET: &str = "bench";
pub const PREFIX: &str = "lag";
/// How often the followers look; the resolution of their figures.
pub const POLL: Duration = Duration::from_millis(10);
/// Followers stop by themselves after this long.
const FOLLOW_MAX: Duration = Duration::from_secs(300);

/// An s3s-fs on a free loopback port (tests/common/s3.rs), the `AWS_*`
/// variables pointing at it; killed when dropped.
pub struct S3 {
    _server: common::s3::S3,
    _site: common::s3::S3Site,
}

impl S3 {
    pub fn start() -> Self {
        let site = common::s3::S3Site::new(BUCKET);
        Self {
            _server: site.start(),
            _site: site,
        }
    }

    pub fn store_url() -> store::mirror::StoreUrl {
        format!("s3://{BUCKET}/{PREFIX}").parse().unwrap()
    }
}

fn bucket() -> AmazonS3 {
    common::s3::S3::bucket(BUCKET)
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
