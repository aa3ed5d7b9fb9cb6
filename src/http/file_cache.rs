//! Media files that will not change again, kept in memory after their
//! first read from disk: segments and init segments of any recording, and
//! the playlists, manifest and poster of a finished one.
//!
//! Viewers of the library all want the same few files; without this every
//! request paid a trip to tokio's blocking pool (open, stat, read into a
//! fresh buffer, then unmap it), which held segcast at under half of
//! nginx's throughput for finished segments (docs/benchmarks.md,
//! "Serving"). A hit is a reference-counted `Bytes`: no copy, no syscall
//! before the socket write. Files are replaced by rename, never rewritten,
//! and only ever change while a recording is live, when they are not cached.
//!
//! Bounded by total bytes (`--media-cache-mb`) with moka's TinyLFU policy,
//! so a crawl through the whole library cannot evict what viewers are
//! watching.

use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use bytes::Bytes;
use moka::sync::Cache;

/// A file's bytes and the validators it was first served with (RFC 9110
/// §8.8), so a hit answers exactly as the read from disk did.
#[derive(Debug, Clone)]
pub struct CachedFile {
    pub bytes: Bytes,
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    /// A playlist's or manifest's gzip copy, made by its first viewer
    /// that asks (`super::compress`); shared by every clone.
    pub gzip: std::sync::Arc<std::sync::OnceLock<Bytes>>,
}

#[derive(Clone)]
pub struct FileCache {
    files: Cache<PathBuf, CachedFile>,
}

impl FileCache {
    /// A cache holding at most `capacity_bytes` of file contents; 0 turns
    /// it off.
    pub fn new(capacity_bytes: u64) -> Self {
        let files = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_: &PathBuf, file: &CachedFile| {
                u32::try_from(file.bytes.len()).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        Self { files }
    }

    pub fn get(&self, path: &Path) -> Option<CachedFile> {
        self.files.get(path)
    }

    pub fn insert(&self, path: PathBuf, file: CachedFile) {
        self.files.insert(path, file);
    }

    /// Drops every file under `dir` (a deleted recording), so its memory
    /// is freed at once rather than when the policy gets to it.
    pub fn forget_dir(&self, dir: &Path) {
        let dir = dir.to_path_buf();
        // Only fails when closures are not enabled, which `new` does.
        let _ = self
            .files
            .invalidate_entries_if(move |path, _| path.starts_with(&dir));
    }

    /// Bytes held now (after pending bookkeeping), for tests and metrics.
    pub fn weighted_bytes(&self) -> u64 {
        self.files.run_pending_tasks();
        self.files.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> CachedFile {
        CachedFile {
            gzip: Default::default(),
            bytes: Bytes::from(vec![7; len]),
            etag: HeaderValue::from_static("\"e\""),
            last_modified: HeaderValue::from_static("Thu, 26 Nov 2026 04:00:00 GMT"),
        }
    }

    #[test]
    fn holds_no_more_bytes_than_its_capacity() {
        let cache = FileCache::new(10_000);
        for i in 0..50 {
            cache.insert(PathBuf::from(format!("/m/a/seg-{i:05}.m4s")), file(1_000));
        }
        let held = cache.weighted_bytes();
        assert!(held <= 10_000, "{held} bytes held");
        assert!(held >= 1_000, "nothing kept: {held}");
    }

    #[test]
    fn forgetting_a_directory_drops_only_its_files() {
        let cache = FileCache::new(1 << 20);
        cache.insert(PathBuf::from("/m/a/hls/seg-00001.m4s"), file(10));
        cache.insert(PathBuf::from("/m/ab/hls/seg-00001.m4s"), file(10));
        cache.forget_dir(Path::new("/m/a"));
        cache.weighted_bytes();
        assert!(cache.get(Path::new("/m/a/hls/seg-00001.m4s")).is_none());
        let kept = cache.get(Path::new("/m/ab/hls/seg-00001.m4s"));
        assert_eq!(kept.map(|f| f.bytes.len()), Some(10));
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let cache = FileCache::new(0);
        cache.insert(PathBuf::from("/m/a/init.mp4"), file(10));
        assert_eq!(cache.weighted_bytes(), 0);
        assert!(cache.get(Path::new("/m/a/init.mp4")).is_none());
    }
}
