//! Published media mirrored to S3-compatible object storage
//! (`--store s3://bucket/prefix`; contract section "Operations").
//!
//! A seam after local publishing: the packager writes every file to local
//! disk exactly as without a bucket (its timeline logic does not know the
//! bucket exists), and this mirror watches the recordings' `hls/` folders
//! (inotify, `notify`) and copies what appears. Chunks stay local, but in
//! a cluster, where the chunk's request puts it in the bucket itself
//! ([`chunks`]).
//!
//! Order keeps a CDN safe (RFC 8216 §6.2.1: a playlist lists only what can
//! be fetched): a pass over a recording first reads its playlists and
//! manifest into memory, then uploads every media file on disk that the
//! bucket lacks — which includes everything those snapshots list, since
//! local publishing renames segments into place before the playlists that
//! list them — and only then uploads the snapshots.
//!
//! Failures: a pass that fails is retried with exponential backoff; what
//! it uploaded before the failure is remembered, so the next pass resumes.
//! A bucket that is down delays only this task (never the packager, never
//! an upload's acknowledgement) and shows in `/metrics`
//! (`segcast_store_*`).
//!
//! Each object carries the `Content-Type` and `Cache-Control` that
//! `/media` answers for the same file ([`media::layout::MediaFile`]).
//!
//! Once a recording is `ready`, a last pass also uploads its original (an
//! import's file, or a live recording's chunks end to end, streamed in
//! multipart pieces), checks its size in the bucket, and writes
//! `<id>/in-bucket.json` (locally, and as the recording's last object in
//! the bucket): from then on the recording is *complete* in the
//! bucket ([`Mirror::is_complete`], what `--public-media-url` redirects
//! rely on) and a restarted server does not upload it again. Chunks stay
//! on local disk all the same (docs/architecture.md, "Object storage").
//!
//! With `--public-media-url`, everything under the prefix is readable by
//! anyone through the CDN: private recordings then stay local only.
//! Deleting a recording deletes its objects ([`deletes`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::Watcher;
use object_store::aws::AmazonS3Builder;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use base::access::Access;
use base::files::write_atomic;
use base::ids::is_valid_id;
use base::metrics::Metrics;
use media::layout::{CachePolicy, MediaFile};

use crate::catalog::Catalog;
use crate::recordings::{State, Store, HLS_DIR};

mod chunks;
mod deletes;
mod original;
mod restore;

pub use chunks::chunk_name;

/// A pass's failure: the bucket's, or reading what goes there.
type PassError = Box<dyn std::error::Error + Send + Sync>;

/// `<id>/in-bucket.json`, locally and in the bucket: the recording is
/// complete there.
const IN_BUCKET_FILE: &str = "in-bucket.json";

/// First wait after a failed pass; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `s3://bucket/prefix`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("--store must look like s3://bucket/prefix, not '{url}'"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("--store '{url}' names no bucket"));
        }
        Ok(Self {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
        })
    }
}

/// `--public-media-url`: an absolute http(s) URL, kept without a trailing
/// `/` (file paths are appended to it), with no query or fragment.
pub fn parse_public_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "'{url}' must be an http:// or https:// URL with a host"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("'{url}' must have no query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// What a file of a recording's `hls/` folder is in the bucket, if it goes
/// there at all: (content type, cache control, is a playlist or manifest).
/// Parts are never files; `timeline.json` and temporary files stay local.
pub fn object_kind(name: &str) -> Option<(&'static str, &'static str, bool)> {
    let file = MediaFile::parse(name)?;
    match file {
        MediaFile::Part(..) | MediaFile::Original => None,
        _ => Some((
            file.content_type(),
            file.cache().as_str(),
            file.is_listing(),
        )),
    }
}

/// What `<id>/in-bucket.json` says: where the recording was completed.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct InBucket {
    bucket: String,
    prefix: String,
    original_bytes: u64,
}

/// The bucket and what of each recording is in it.
pub struct Mirror {
    objects: Arc<dyn ObjectStore>,
    url: StoreUrl,
    prefix: String,
    /// `<data>/recordings`: one folder per recording id.
    root: PathBuf,
    store: Store,
    /// Where a recording's state and access are read before each pass.
    catalog: Catalog,
    /// `<data>/store-deletes`: one empty file per recording whose objects
    /// are still to be deleted.
    tombstones: PathBuf,
    /// Private recordings are not mirrored (`--public-media-url`: the
    /// prefix is public).
    public_prefix: bool,
    /// Per recording: file name → SHA-256 of the bytes in the bucket.
    mirrored: Mutex<HashMap<String, HashMap<String, [u8; 32]>>>,
    /// Ready recordings whose every file and original are in the bucket.
    complete: Mutex<HashSet<String>>,
    dirty: Mutex<BTreeSet<String>>,
    /// Deleted recordings whose objects are still to be deleted.
    deletes: Mutex<BTreeSet<String>>,
    /// Private recordings checked for objects in a public prefix.
    withdrawn: Mutex<HashSet<String>>,
    wake: Notify,
    metrics: Metrics,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Mirror {
    /// The bucket of `url`, configured by the usual `AWS_*` variables
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`).
    ///
    /// `public_prefix`: the prefix is served to anyone (`--public-media-url`).
    pub fn open(
        url: &StoreUrl,
        data_dir: &Path,
        public_prefix: bool,
        catalog: Catalog,
        metrics: Metrics,
    ) -> std::io::Result<Arc<Self>> {
        let root = data_dir.join("recordings");
        // object_store's own retries (default: up to 3 minutes per request)
        // are cut short: a pass that fails is retried by [`Mirror::run`],
        // which counts the failure and backs off for the whole recording.
        let retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
            backoff: Default::default(),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_retry(retry);
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            // A plain-HTTP endpoint (MinIO, a bucket on loopback) is allowed
            // when it is the one configured.
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let objects = builder
            .build()
            .map_err(|e| std::io::Error::other(format!("--store: {e}")))?;
        Ok(Arc::new(Self {
            objects: Arc::new(objects),
            url: url.clone(),
            prefix: url.prefix.clone(),
            store: Store::open_root(root.clone())?,
            catalog,
            root,
            tombstones: data_dir.join(deletes::TOMBSTONES_DIR),
            public_prefix,
            mirrored: Mutex::default(),
            complete: Mutex::default(),
            dirty: Mutex::default(),
            deletes: Mutex::default(),
            withdrawn: Mutex::default(),
            wake: Notify::new(),
            metrics,
            task: Mutex::default(),
        }))
    }

    /// Runs [`Mirror::run`] until [`Mirror::stop`].
    pub fn start(self: &Arc<Self>) {
        let task = tokio::spawn(self.clone().run());
        *self.task.lock().expect("lock") = Some(task.abort_handle());
    }

    /// Stops the mirror; what is left is done after the next start.
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().expect("lock").take() {
            task.abort();
        }
    }

    /// Whether the recording is ready and all of it, original included,
    /// is in the bucket in its final form.
    pub fn is_complete(&self, id: &str) -> bool {
        self.complete.lock().expect("lock").contains(id)
    }

    /// Whether a recording with this access goes to the bucket at all.
    pub fn mirrors(&self, access: Access) -> bool {
        !(self.public_prefix && access.is_private())
    }

    /// A recording's files changed: mirror it on the next pass.
    pub fn mark(&self, id: &str) {
        let mut dirty = self.dirty.lock().expect("lock");
        dirty.insert(id.to_string());
        self.metrics.store_pending.set(dirty.len() as i64);
        self.wake.notify_one();
    }

    /// Watches the recordings and mirrors them until the task is aborted;
    /// every recording already on disk is checked once at start.
    pub async fn run(self: Arc<Self>) {
        // Held for as long as the mirror runs.
        let watcher = self.clone().watch();
        if let Err(error) = &watcher {
            tracing::error!(%error, "--store: recordings are not watched; only what exists now is mirrored");
        }
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                if let Some(id) = entry.file_name().to_str().filter(|id| is_valid_id(id)) {
                    self.mark(id);
                }
            }
        }
        self.load_tombstones();
        let mut backoff = FIRST_BACKOFF;
        loop {
            // Deletions first: a pass cannot bring a deleted recording's
            // objects back (its files are gone before it is queued).
            if let Some(id) = self.next_delete() {
                let deleted = self.delete_objects(&id).await;
                let requeue = || self.requeue_delete(&id);
                settle(
                    &self,
                    &id,
                    "deleting objects",
                    deleted,
                    &mut backoff,
                    requeue,
                )
                .await;
                continue;
            }
            let next = {
                let mut dirty = self.dirty.lock().expect("lock");
                let next = dirty.pop_first();
                self.metrics.store_pending.set(dirty.len() as i64);
                next
            };
            let Some(id) = next else {
                self.wake.notified().await;
                continue;
            };
            let synced = self.sync(&id).await;
            settle(&self, &id, "upload", synced, &mut backoff, || {
                self.mark(&id)
            })
            .await;
        }
    }

    /// Marks the recording of every file event under `root`.
    fn watch(self: Arc<Self>) -> notify::Result<notify::RecommendedWatcher> {
        let root = self.root.clone();
        let mirror = self.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                for path in &event.paths {
                    if let Some(id) = recording_of(&root, path) {
                        mirror.mark(&id);
                    }
                }
            })?;
        watcher.watch(&self.root, notify::RecursiveMode::Recursive)?;
        Ok(watcher)
    }

    /// One pass over a recording: media files first, listings last; for
    /// a ready recording, then its original.
    async fn sync(&self, id: &str) -> Result<(), PassError> {
        // Read before the listings: a recording read as ready has its
        // final listings on disk already (they are written before the
        // state is saved).
        let Some((meta, _)) = self.catalog.recording(id).await? else {
            return Ok(()); // not yet, or deleted
        };
        if !self.mirrors(meta.access) {
            // Mirrored before the prefix was made public: withdrawn, once.
            if !self.withdrawn.lock().expect("lock").contains(id) {
                let count = self.delete_prefix(id).await?;
                if count > 0 {
                    tracing::warn!(%id, objects = count, "--store: a private recording's objects were in the public prefix; deleted");
                }
                self.withdrawn.lock().expect("lock").insert(id.to_string());
            }
            return Ok(());
        }
        let ready = meta.state == State::Ready;
        if ready && (self.is_complete(id) || self.was_completed(id).await) {
            self.complete.lock().expect("lock").insert(id.to_string());
            return Ok(());
        }
        self.sync_media(id).await?;
        if ready {
            let original_bytes = self.put_original(&meta).await?;
            self.completed(id, original_bytes).await?;
        }
        Ok(())
    }

    /// Whether `<id>/in-bucket.json` says this bucket and prefix.
    async fn was_completed(&self, id: &str) -> bool {
        let path = self.root.join(id).join(IN_BUCKET_FILE);
        let Ok(bytes) = tokio::fs::read(path).await else {
            return false;
        };
        serde_json::from_slice::<InBucket>(&bytes)
            .is_ok_and(|m| m.bucket == self.url.bucket && m.prefix == self.url.prefix)
    }

    /// Notes that the recording is complete in the bucket (in memory, and
    /// in `<id>/in-bucket.json` for the next start).
    async fn completed(&self, id: &str, original_bytes: u64) -> Result<(), PassError> {
        let marker = InBucket {
            bucket: self.url.bucket.clone(),
            prefix: self.url.prefix.clone(),
            original_bytes,
        };
        let json = serde_json::to_vec(&marker)?;
        // Last of all the recording's objects: another node restores only
        // a recording whose marker is there (`restore`).
        self.put_marker(id, json.clone()).await?;
        let path = self.root.join(id).join(IN_BUCKET_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, &json, false)).await??;
        self.complete.lock().expect("lock").insert(id.to_string());
        tracing::info!(%id, original_bytes, "--store: recording complete in the bucket");
        Ok(())
    }

    /// Media files the bucket lacks, then the listings read before them.
    async fn sync_media(&self, id: &str) -> Result<(), PassError> {
        let dir = self.root.join(id).join(HLS_DIR);
        let listed = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || read_folder(&dir))
                .await
                .expect("folder read task")
        };
        let Ok((listings, media)) = listed else {
            return Ok(()); // no media yet, or deleted
        };
        for name in media {
            if self.has(id, &name)
                && object_kind(&name).is_some_and(|k| k.1 != CachePolicy::Revalidate.as_str())
            {
                continue; // immutable and already there
            }
            let Ok(bytes) = tokio::fs::read(dir.join(&name)).await else {
                continue;
            };
            self.put(id, &name, bytes).await?;
        }
        for (name, bytes) in listings {
            self.put(id, &name, bytes).await?;
        }
        Ok(())
    }

    fn has(&self, id: &str, name: &str) -> bool {
        let mirrored = self.mirrored.lock().expect("lock");
        mirrored
            .get(id)
            .is_some_and(|files| files.contains_key(name))
    }

    /// Uploads `bytes` as `name` of recording `id`, unless the bucket has
    /// these bytes already.
    async fn put(&self, id: &str, name: &str, bytes: Vec<u8>) -> Result<(), object_store::Error> {
        let Some((content_type, cache_control, _)) = object_kind(name) else {
            return Ok(());
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let same = {
            let mirrored = self.mirrored.lock().expect("lock");
            mirrored.get(id).and_then(|files| files.get(name)) == Some(&digest)
        };
        if same {
            return Ok(());
        }
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.into());
        attributes.insert(Attribute::CacheControl, cache_control.into());
        let options = PutOptions {
            attributes,
            ..Default::default()
        };
        let len = bytes.len() as u64;
        let path = object_store::path::Path::from(self.key(id, name));
        self.objects
            .put_opts(&path, PutPayload::from(bytes), options)
            .await?;
        self.metrics.store_uploads.inc();
        self.metrics.store_upload_bytes.inc_by(len);
        let mut mirrored = self.mirrored.lock().expect("lock");
        mirrored
            .entry(id.to_string())
            .or_default()
            .insert(name.to_string(), digest);
        Ok(())
    }

    /// `prefix/id/name`.
    pub fn key(&self, id: &str, name: &str) -> String {
        match self.prefix.as_str() {
            "" => format!("{id}/{name}"),
            prefix => format!("{prefix}/{id}/{name}"),
        }
    }
}

/// The recording id of a path under `<root>/<id>/hls/` (a state change,
/// such as ready, is marked by the recording's task when it saves it).
fn recording_of(root: &Path, path: &Path) -> Option<String> {
    let mut parts = path.strip_prefix(root).ok()?.components();
    let id = parts.next()?.as_os_str().to_str()?;
    let below = parts.next()?.as_os_str();
    let relevant = below == HLS_DIR;
    (relevant && is_valid_id(id)).then(|| id.to_string())
}

/// A snapshot of the listings (name, bytes) and the names of the media
/// files, in that order of reading.
type Folder = (Vec<(String, Vec<u8>)>, Vec<String>);

fn read_folder(dir: &Path) -> std::io::Result<Folder> {
    let names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| object_kind(name).is_some())
        .collect();
    let mut listings = Vec::new();
    for name in names.iter().filter(|n| object_kind(n).is_some_and(|k| k.2)) {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            listings.push((name.clone(), bytes));
        }
    }
    // Listed again after the snapshot: whatever the snapshots list is on
    // disk by now (segments are renamed into place before their listing).
    let media = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| object_kind(name).is_some_and(|k| !k.2))
        .collect();
    Ok((listings, media))
}

/// After a pass over recording `id`: on success the backoff starts over; a
/// failure is counted, logged, put back by `retry`, and waited out, the
/// wait doubling up to [`MAX_BACKOFF`] (a bucket that is down is not
/// hammered, and nothing is dropped).
async fn settle(
    mirror: &Mirror,
    id: &str,
    what: &str,
    result: Result<(), PassError>,
    backoff: &mut Duration,
    retry: impl FnOnce(),
) {
    let Err(error) = result else {
        *backoff = FIRST_BACKOFF;
        return;
    };
    mirror.metrics.store_failures.inc();
    tracing::warn!(%id, %error, retry_in_ms = backoff.as_millis() as u64, "--store: {what} failed");
    retry();
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_a_bucket_and_a_prefix() {
        let url: StoreUrl = "s3://media/live/v1/".parse().unwrap();
        assert_eq!(url.bucket, "media");
        assert_eq!(url.prefix, "live/v1");
        let bare: StoreUrl = "s3://media".parse().unwrap();
        assert_eq!(bare.prefix, "");
        assert!("media/x".parse::<StoreUrl>().is_err());
        assert!("s3:///x".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn public_media_urls_are_absolute_bases() {
        assert_eq!(
            parse_public_url("https://cdn.example.com/vod/").unwrap(),
            "https://cdn.example.com/vod"
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        for bad in [
            "/vod",
            "cdn.example.com",
            "ftp://x/y",
            "https://x/?a=1",
            "https://x/#a",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_published_files_go_to_the_bucket_with_their_types() {
        assert_eq!(
            object_kind("seg-00003.m4s"),
            Some((
                "video/iso.segment",
                "public, max-age=31536000, immutable",
                false
            ))
        );
        assert_eq!(object_kind("media.m3u8").map(|k| k.2), Some(true));
        assert_eq!(
            object_kind("manifest.mpd").map(|k| k.0),
            Some("application/dash+xml")
        );
        for local in [
            "timeline.json",
            "timeline.log",
            ".seg-00001.m4s.tmp",
            "part-000001.m4s",
            "original",
        ] {
            assert_eq!(object_kind(local), None, "{local}");
        }
    }
}
