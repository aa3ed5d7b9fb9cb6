//! On-disk layout of the library, and the durability rules around it.
//!
//! ```text
//! <data>/recordings/<id>/recording.json   metadata (atomic replace, fsynced)
//! <data>/recordings/<id>/chunks/00000042.chunk   one uploaded chunk each (fsynced)
//! <data>/recordings/<id>/hls/index.m3u8   multivariant playlist
//!                            media.m3u8   media playlist
//!                            init.mp4, seg-00000.m4s …
//! <data>/recordings/<id>/comments.jsonl   viewers' comments, append-only (fsynced;
//!                                         see `comments::log`)
//! ```
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

pub const META_FILE: &str = "recording.json";
const CHUNKS_DIR: &str = "chunks";
pub const HLS_DIR: &str = "hls";
const CHUNK_SUFFIX: &str = ".chunk";
/// Viewers' comments: inside the recording's directory, so deleting the
/// recording deletes them.
const COMMENTS_FILE: &str = "comments.jsonl";

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

    pub fn comments_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(COMMENTS_FILE)
    }

    pub fn chunk_path(&self, id: &str, seq: u64) -> PathBuf {
        self.dir(id)
            .join(CHUNKS_DIR)
            .join(format!("{seq:08}{CHUNK_SUFFIX}"))
    }

    pub fn create(&self, meta: &RecordingMeta) -> io::Result<()> {
        let dir = self.dir(&meta.id);
        fs::create_dir_all(dir.join(CHUNKS_DIR))?;
        fs::create_dir_all(dir.join(HLS_DIR))?;
        self.save_meta(meta)?;
        sync_dir(&self.root)
    }

    pub fn save_meta(&self, meta: &RecordingMeta) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        write_atomic(&self.dir(&meta.id).join(META_FILE), &json, true)
    }

    /// Every recording with readable metadata, and the seqs of its chunks.
    pub fn load_all(&self) -> io::Result<Vec<(RecordingMeta, Vec<u64>)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name();
            if let Some(loaded) = name.to_str().and_then(|id| self.load(id).transpose()) {
                out.push(loaded?);
            }
        }
        Ok(out)
    }

    /// One recording, `None` (logged) when its metadata is unreadable.
    pub fn load(&self, id: &str) -> io::Result<Option<(RecordingMeta, Vec<u64>)>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let dir = self.dir(id);
        let meta = fs::read(dir.join(META_FILE))
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<RecordingMeta>(&bytes).map_err(|e| e.to_string())
            });
        match meta {
            Ok(meta) if meta.id == id => {
                let seqs = self.stored_seqs(id)?;
                Ok(Some((meta, seqs)))
            }
            Ok(_) => {
                tracing::warn!(dir = %dir.display(), "skipping recording whose id does not match its directory");
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "skipping unreadable recording");
                Ok(None)
            }
        }
    }

    /// A recording's metadata alone (no look at its chunks): `None` when
    /// it has none (not yet, or deleted) or it is unreadable.
    pub fn load_meta(&self, id: &str) -> io::Result<Option<RecordingMeta>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        match fs::read(self.dir(id).join(META_FILE)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
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

    fn stored_seqs(&self, id: &str) -> io::Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for entry in fs::read_dir(self.dir(id).join(CHUNKS_DIR))? {
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

    fn meta(id: &str) -> RecordingMeta {
        RecordingMeta {
            id: id.into(),
            title: "t".into(),
            mime: "video/webm".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            token_sha256: "00".into(),
            total: None,
            state: State::Recording,
            error: None,
            duration_ms: 0,
            segments: 0,
            incomplete: false,
            import: None,
            access: Default::default(),
            encrypt: false,
            live_plan: None,
        }
    }

    #[test]
    fn chunks_are_idempotent_and_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.create(&meta("abc")).unwrap();
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
        let all = store.load_all().unwrap();
        assert_eq!(all, vec![(meta("abc"), vec![0, 3])]);
    }
}
