//! On-disk layout of the library, and the durability rules around it.
//!
//! ```text
//! <data>/recordings/<id>/chunks/00000042.chunk   one uploaded chunk each (fsynced)
//! <data>/recordings/<id>/hls/index.m3u8   multivariant playlist
//!                            media.m3u8   media playlist
//!                            init.mp4, seg-00000.m4s …
//! ```
//! The metadata ([`RecordingMeta`]) and comments are in the catalog
//! ([`crate::catalog`]); v2 kept them here, as `recording.json` and
//! `comments.jsonl` (read once by [`crate::catalog::v2`]).
//!
//! A chunk is written to a temporary file, fsynced, renamed into place and
//! the directory fsynced before the upload is acknowledged: after a 2xx the
//! bytes survive a crash. Everything under `hls/` can be regenerated from the
//! chunks, so it is replaced atomically (rename) but not fsynced.
//! All functions here block; async callers use `spawn_blocking`.
//! Published file names are [`media::layout`]'s; these are the library's own.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base::access::Access;
use base::files::{sync_dir, write_atomic};
use base::ids::is_valid_id;
use media::layout::ORIGINAL_FILE;
use media::live_plan::LivePlan;
use serde::{Deserialize, Serialize};

const CHUNKS_DIR: &str = "chunks";
pub const HLS_DIR: &str = "hls";
pub const CHUNK_SUFFIX: &str = ".chunk";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Recording,
    Processing,
    Ready,
    Failed,
}

/// What is persisted about a recording besides its chunks and media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub id: String,
    pub title: String,
    pub mime: String,
    /// RFC 3339.
    pub created_at: String,
    /// SHA-256 of the upload token, hex: the token itself is never stored.
    pub token_sha256: String,
    pub total: Option<u64>,
    pub state: State,
    pub error: Option<String>,
    /// Published media, kept so a restarted server can report it.
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub segments: u64,
    /// Finalized by the server after the uploader went silent: chunks
    /// after the first gap are kept but not in the media.
    #[serde(default)]
    pub incomplete: bool,
    /// Set for recordings imported from a file (kept as `original`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportInfo>,
    /// Who may watch it (v1 recordings are public).
    #[serde(default)]
    pub access: Access,
    /// HLS media is AES-128 encrypted with the key in `<data>/keys/`.
    #[serde(default)]
    pub encrypt: bool,
    /// Live recordings: what ffmpeg copies and encodes, decided from the
    /// first chunks before it first starts (see `media::live_plan`).
    /// Absent in recordings made before plans existed: WebM, transcoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_plan: Option<LivePlan>,
}

/// Where an imported file came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportInfo {
    /// The file's name as the user knew it (no directories).
    pub file_name: String,
    pub bytes: u64,
    pub origin: ImportOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportOrigin {
    Http,
    Cli,
    Inbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// The same bytes were already stored under this seq.
    Duplicate,
    /// Different bytes are stored under this seq; nothing was changed.
    Conflict,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The library under `<data>/recordings`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        Self::open_root(data_dir.join("recordings"))
    }

    /// A store of recording directories directly under `root` (the CLI
    /// builds imports in a staging root before moving them in).
    pub fn open_root(root: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        debug_assert!(is_valid_id(id));
        self.root.join(id)
    }

    pub fn hls_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join(HLS_DIR)
    }

    pub fn original_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(ORIGINAL_FILE)
    }

    pub fn chunk_path(&self, id: &str, seq: u64) -> PathBuf {
        self.dir(id)
            .join(CHUNKS_DIR)
            .join(format!("{seq:08}{CHUNK_SUFFIX}"))
    }

    /// Makes a new recording's folders (its metadata goes to the catalog).
    pub fn create(&self, id: &str) -> io::Result<()> {
        let dir = self.dir(id);
        fs::create_dir_all(dir.join(CHUNKS_DIR))?;
        fs::create_dir_all(dir.join(HLS_DIR))?;
        sync_dir(&self.root)
    }

    /// Whether recording `id` has a folder here.
    pub fn exists(&self, id: &str) -> bool {
        is_valid_id(id) && self.dir(id).is_dir()
    }

    /// Ids of every recording folder here (whatever the catalog says).
    pub fn ids(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().filter(|id| is_valid_id(id)) {
                if entry.file_type()?.is_dir() {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(ids)
    }

    /// Moves a finished recording directory from another store (same file
    /// system) into this one, atomically: readers see all of it or nothing.
    pub fn adopt(&self, from: &Store, id: &str) -> io::Result<()> {
        fs::rename(from.dir(id), self.dir(id))?;
        sync_dir(&self.root)?;
        sync_dir(&from.root)
    }

    /// Total size of a recording's stored chunks.
    pub fn chunk_bytes(&self, id: &str) -> io::Result<u64> {
        let mut total = 0;
        for entry in fs::read_dir(self.dir(id).join(CHUNKS_DIR))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(CHUNK_SUFFIX) {
                total += entry.metadata()?.len();
            }
        }
        Ok(total)
    }

    /// The seqs of a recording's stored chunks, in order (none when it
    /// has no chunk folder: an import).
    pub fn stored_seqs(&self, id: &str) -> io::Result<Vec<u64>> {
        let mut seqs = Vec::new();
        let entries = match fs::read_dir(self.dir(id).join(CHUNKS_DIR)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(seqs),
            entries => entries?,
        };
        for entry in entries {
            let name = entry?.file_name();
            let seq = name
                .to_str()
                .and_then(|n| n.strip_suffix(CHUNK_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            seqs.extend(seq);
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Stores a chunk durably unless that seq already holds bytes.
    /// Callers serialize puts of one recording (its task does).
    pub fn put_chunk(&self, id: &str, seq: u64, bytes: &[u8]) -> io::Result<PutOutcome> {
        let path = self.chunk_path(id, seq);
        match fs::read(&path) {
            Ok(existing) if existing == bytes => return Ok(PutOutcome::Duplicate),
            Ok(_) => return Ok(PutOutcome::Conflict),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        write_atomic(&path, bytes, true)?;
        Ok(PutOutcome::Stored)
    }

    pub fn delete(&self, id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.dir(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_idempotent_and_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.create("abc").unwrap();
        assert_eq!(
            store.put_chunk("abc", 3, b"one").unwrap(),
            PutOutcome::Stored
        );
        assert_eq!(
            store.put_chunk("abc", 3, b"one").unwrap(),
            PutOutcome::Duplicate
        );
        assert_eq!(
            store.put_chunk("abc", 3, b"two").unwrap(),
            PutOutcome::Conflict
        );
        assert_eq!(fs::read(store.chunk_path("abc", 3)).unwrap(), b"one");
        store.put_chunk("abc", 0, b"zero").unwrap();
        assert_eq!(store.stored_seqs("abc").unwrap(), vec![0, 3]);
        assert_eq!(store.ids().unwrap(), vec!["abc".to_string()]);
        assert!(store.exists("abc") && !store.exists("abd"));
    }
}
