//! The library: every recording the server knows, each with its task.
//! Loaded from disk at start-up, so a restarted server lists what it had.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use base::access::Access;
use base::ids::{is_valid_id, random_bytes};
use base::metrics::Metrics;
use base::{Error, Result};
use store::keys::KeyStore;
use store::mirror::Mirror;
use store::{ImportInfo, ImportOrigin, PutOutcome, RecordingMeta, State, Store};

use super::import::{self, Placement};
use super::live;
use super::status::{ChunkReceipt, RecordingStatus};
use super::task::Command;
use crate::edge::LiveEdge;
use crate::settings::Settings;
use base::error::RETRY_AFTER_S;
/// Upload tokens carry 128 random bits.
const TOKEN_BYTES: usize = 16;
/// Longest title kept; longer ones are cut at a character boundary.
pub const MAX_TITLE_CHARS: usize = 200;

/// Who may watch a new recording, and whether its media is encrypted
/// (`None`: the server's `--encrypt` default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Protection {
    pub access: Access,
    pub encrypt: Option<bool>,
}

/// A handle to one recording's task.
#[derive(Clone)]
pub struct Recording {
    import: Option<Arc<ImportInfo>>,
    access: Access,
    encrypted: bool,
    token_sha256: [u8; 32],
    cmds: mpsc::Sender<Command>,
    status: watch::Receiver<RecordingStatus>,
    edge: Arc<LiveEdge>,
}

impl Recording {
    /// Media type of the original upload (a live recording created
    /// without one takes it from its chunk 0).
    pub fn mime(&self) -> String {
        self.status.borrow().mime.clone()
    }

    /// Where the file came from, for imported recordings.
    pub fn import(&self) -> Option<&ImportInfo> {
        self.import.as_deref()
    }

    pub fn status(&self) -> RecordingStatus {
        self.status.borrow().clone()
    }

    /// Who may watch it.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether its HLS media is AES-128 encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Whether `token` is this recording's upload token (constant time).
    pub fn is_upload_token(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&self.token_sha256))
    }

    /// Playlists, parts and newest segments in memory (live recordings).
    pub fn edge(&self) -> &Arc<LiveEdge> {
        &self.edge
    }

    /// A watch on the status, for whoever waits for a state change.
    pub fn subscribe(&self) -> watch::Receiver<RecordingStatus> {
        self.status.clone()
    }

    /// Checks an upload token in constant time (hash first, then ct_eq).
    pub fn authorize(&self, token: Option<&str>) -> Result<()> {
        let token = token.ok_or_else(|| {
            Error::Unauthenticated("missing upload token (Authorization: Bearer …)".into())
        })?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.token_sha256)) {
            Ok(())
        } else {
            Err(Error::Unauthenticated(
                "wrong upload token for this recording".into(),
            ))
        }
    }

    pub async fn put(&self, seq: u64, bytes: Bytes) -> Result<(PutOutcome, ChunkReceipt)> {
        self.ask(|reply| Command::Put { seq, bytes, reply }).await
    }

    pub async fn finish(&self, total: u64) -> Result<RecordingStatus> {
        self.ask(|reply| Command::Finish { total, reply }).await
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::Gone("this recording was deleted".into());
        self.cmds.send(make(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

pub struct Library {
    store: Store,
    settings: Arc<Settings>,
    /// Slots for imports running ffmpeg (`--import-jobs`).
    import_jobs: Arc<Semaphore>,
    recordings: RwLock<HashMap<String, Recording>>,
    /// Ids deleted since start-up, answered 410 instead of 404.
    deleted: Mutex<HashSet<String>>,
    /// The server's counters (`GET /metrics`).
    metrics: Metrics,
    /// `--store`: the bucket published media is mirrored to.
    objects: Option<Arc<Mirror>>,
}

impl Library {
    /// Opens the data directory and starts a task per stored recording.
    /// `objects`: the bucket published media is mirrored to, if any.
    pub async fn open(
        settings: Arc<Settings>,
        metrics: Metrics,
        objects: Option<Arc<Mirror>>,
    ) -> std::io::Result<Arc<Self>> {
        let store = Store::open(&settings.data_dir)?;
        let loaded = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.load_all())
                .await
                .map_err(std::io::Error::other)??
        };
        let library = Self {
            store,
            import_jobs: Arc::new(Semaphore::new(settings.import_jobs as usize)),
            settings,
            recordings: RwLock::default(),
            deleted: Mutex::default(),
            metrics,
            objects,
        };
        for (meta, seqs) in loaded {
            library.start(meta, seqs);
        }
        let count = library.recordings.read().expect("lock").len();
        tracing::info!(recordings = count, data = %library.settings.data_dir.display(), "library opened");
        Ok(Arc::new(library))
    }

    /// Starts the task of a stored recording and lists it. Idempotent per
    /// id (checked and inserted under one lock): a recording this server
    /// is creating may also be seen by the rescan in `adopt_moved_in`, and
    /// must still get exactly one task.
    fn start(&self, meta: RecordingMeta, seqs: Vec<u64>) -> Recording {
        let mut recordings = self.recordings.write().expect("lock");
        if let Some(existing) = recordings.get(&meta.id) {
            return existing.clone();
        }
        let token_sha256 = parse_digest(&meta.token_sha256);
        let (meta_access, meta_encrypt) = (meta.access, meta.encrypt);
        let id = meta.id.clone();
        let import = meta.import.clone().map(Arc::new);
        let (store, settings) = (self.store.clone(), self.settings.clone());
        let metrics = self.metrics.clone();
        let handle = match &import {
            Some(_) => import::spawn(meta, store, settings, self.import_jobs.clone(), metrics),
            None => live::spawn(meta, seqs, store, settings, metrics),
        };
        let recording = Recording {
            import,
            access: meta_access,
            encrypted: meta_encrypt,
            token_sha256,
            cmds: handle.cmds,
            status: handle.status,
            edge: handle.edge,
        };
        recordings.insert(id, recording.clone());
        recording
    }

    /// Lists a recording another process put into the data directory (the
    /// `segcast import` CLI moves finished imports in); known ids are left
    /// alone. Returns whether it was new.
    pub async fn adopt(&self, id: &str) -> std::io::Result<bool> {
        let known = |lib: &Self| {
            lib.recordings.read().expect("lock").contains_key(id)
                || lib.deleted.lock().expect("lock").contains(id)
        };
        if !is_valid_id(id) || known(self) {
            return Ok(false);
        }
        let (store, owned_id) = (self.store.clone(), id.to_string());
        let loaded = tokio::task::spawn_blocking(move || store.load(&owned_id))
            .await
            .map_err(std::io::Error::other)??;
        match loaded {
            Some((meta, seqs)) if !known(self) => {
                tracing::info!(%id, "recording added to the library");
                self.start(meta, seqs);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server's counters (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The `--store` bucket's mirror, if there is one.
    pub fn objects(&self) -> Option<&Arc<Mirror>> {
        self.objects.as_ref()
    }

    /// Creates a recording; returns its status and its upload token.
    pub async fn create(
        &self,
        title: Option<String>,
        mime: Option<String>,
        protection: Protection,
    ) -> Result<(RecordingStatus, String)> {
        let live = self
            .list()
            .iter()
            .filter(|r| r.source == "recording")
            .filter(|r| matches!(r.state, State::Recording | State::Processing))
            .count();
        if live >= self.settings.max_live_recordings {
            return Err(Error::Busy {
                message: format!(
                    "the server is at its limit of {live} live recordings; retry later"
                ),
                retry_after_s: RETRY_AFTER_S,
            });
        }
        let (mut meta, token) = new_meta(title, mime, "Recording", State::Recording);
        self.protect(&mut meta, protection).await?;
        let store = self.store.clone();
        let to_store = meta.clone();
        tokio::task::spawn_blocking(move || store.create(&to_store))
            .await
            .map_err(|e| Error::internal("create task", e))??;
        let id = meta.id.clone();
        let initial = self.start(meta, Vec::new()).status();
        tracing::info!(%id, "recording created");
        Ok((initial, token))
    }

    /// Creates an imported recording from the file at `source`, which
    /// becomes its `original`; processing starts when a job slot is free.
    pub async fn create_import(
        &self,
        title: Option<String>,
        info: ImportInfo,
        source: PathBuf,
        placement: Placement,
        protection: Protection,
    ) -> Result<(RecordingStatus, String)> {
        let (mut meta, token) = new_import_meta(title, info);
        self.protect(&mut meta, protection).await?;
        let store = self.store.clone();
        let to_store = meta.clone();
        tokio::task::spawn_blocking(move || {
            import::create_files(&store, &to_store, &source, placement)
        })
        .await
        .map_err(|e| Error::internal("import create task", e))??;
        let id = meta.id.clone();
        let initial = self.start(meta, Vec::new()).status();
        tracing::info!(%id, "import created");
        Ok((initial, token))
    }

    /// Sets who may watch a new recording and, when it is encrypted, makes
    /// its key (stored before the recording exists, so no media is ever
    /// published in the clear by mistake).
    async fn protect(&self, meta: &mut RecordingMeta, protection: Protection) -> Result<()> {
        meta.access = protection.access;
        meta.encrypt = protection
            .encrypt
            .unwrap_or(self.settings.encrypt_by_default);
        if meta.encrypt {
            let (keys, id) = (self.keys(), meta.id.clone());
            tokio::task::spawn_blocking(move || keys.create(&id))
                .await
                .map_err(|e| Error::internal("key task", e))?
                .map_err(|e| Error::storage("the recording's key could not be stored", &e))?;
        }
        Ok(())
    }

    /// The content keys of encrypted recordings.
    pub fn keys(&self) -> KeyStore {
        KeyStore::new(&self.settings.data_dir)
    }

    /// The recording with this id: 404 when unknown, 410 when deleted.
    pub fn get(&self, id: &str) -> Result<Recording> {
        let not_found = || Error::NotFound(format!("no recording with id '{id}'"));
        if !is_valid_id(id) {
            return Err(not_found());
        }
        if let Some(rec) = self.recordings.read().expect("lock").get(id) {
            return Ok(rec.clone());
        }
        if self.deleted.lock().expect("lock").contains(id) {
            return Err(Error::Gone(format!("recording '{id}' was deleted")));
        }
        Err(not_found())
    }

    /// All recordings, newest first.
    pub fn list(&self) -> Vec<RecordingStatus> {
        let mut all: Vec<_> = self
            .recordings
            .read()
            .expect("lock")
            .values()
            .map(Recording::status)
            .collect();
        all.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        all
    }

    /// Imported recordings that came through `origin`.
    pub fn recordings_from(&self, origin: ImportOrigin) -> Vec<Recording> {
        self.recordings
            .read()
            .expect("lock")
            .values()
            .filter(|r| r.import().is_some_and(|i| i.origin == origin))
            .cloned()
            .collect()
    }

    /// Lists recordings that other processes move into the data directory
    /// (`segcast import` builds each one aside, then renames it in). Only
    /// renames count: directories this server creates itself are listed
    /// by [`Library::create`] before any watcher could race it.
    pub async fn adopt_moved_in(self: Arc<Self>) -> std::io::Result<()> {
        use notify::event::{ModifyKind, RenameMode};
        use notify::EventKind;
        let (_watcher, mut events) =
            super::watch::watch_dir(self.store.root()).map_err(std::io::Error::other)?;
        // What arrived between loading the library and watching: a rescan
        // (known ids are skipped).
        for entry in std::fs::read_dir(self.store.root())?.flatten() {
            if let Some(id) = entry.file_name().to_str() {
                self.adopt(id).await?;
            }
        }
        while let Some(event) = events.recv().await {
            let moved_in = matches!(
                event.kind,
                EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            );
            let Some(id) = event.paths.last().and_then(|p| p.file_name()?.to_str()) else {
                continue;
            };
            if moved_in {
                if let Err(e) = self.adopt(id).await {
                    tracing::warn!(%id, error = %e, "cannot add a moved-in recording");
                }
            }
        }
        Ok(())
    }

    /// Stops every task's ffmpeg (SIGTERM to its process group, then
    /// SIGKILL) and waits until each was reaped. Files stay as they are:
    /// the next start continues unfinished recordings and imports.
    pub async fn shutdown(&self) {
        let recordings: Vec<Recording> = self
            .recordings
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        let stops = recordings.iter().map(|r| async move {
            let (reply, done) = oneshot::channel();
            if r.cmds.send(Command::Shutdown { reply }).await.is_ok() {
                let _ = done.await;
            }
        });
        futures_util::future::join_all(stops).await;
        if let Some(objects) = &self.objects {
            objects.stop();
        }
        tracing::info!(recordings = recordings.len(), "all recording tasks stopped");
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        let recording = self.get(id)?;
        recording.ask(|reply| Command::Delete { reply }).await?;
        // Without its key, no copy of an encrypted recording's media left
        // anywhere (a backup, a bucket) can be played.
        let keys = self.keys();
        let owned_id = id.to_string();
        let forgotten = tokio::task::spawn_blocking(move || keys.delete(&owned_id)).await;
        if let Ok(Err(e)) | Err(e) = forgotten.map_err(std::io::Error::other) {
            tracing::error!(%id, error = %e, "cannot delete the recording's key");
        }
        // Its local files are gone: no pass can upload them again.
        if let Some(objects) = &self.objects {
            objects.forget(id).await;
        }
        self.recordings.write().expect("lock").remove(id);
        self.deleted.lock().expect("lock").insert(id.to_string());
        Ok(())
    }
}

/// Metadata and upload token of a new recording. A missing or blank title
/// becomes "<kind> <date time>".
pub fn new_meta(
    title: Option<String>,
    mime: Option<String>,
    kind: &str,
    state: State,
) -> (RecordingMeta, String) {
    let id = base::ids::new_id();
    let token =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>());
    let created_at = base::clock::rfc3339_now();
    let title = title.map(|t| t.trim().chars().take(MAX_TITLE_CHARS).collect::<String>());
    let meta = RecordingMeta {
        id,
        title: title
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("{kind} {}", &created_at[..16])),
        // Undeclared: chunk 0 says what it is (`ingest::format`).
        mime: mime
            .filter(|m| is_plain_mime(m))
            .unwrap_or_else(|| media::container::UNDECLARED_MIME.into()),
        created_at,
        token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
        total: None,
        state,
        error: None,
        duration_ms: 0,
        segments: 0,
        incomplete: false,
        import: None,
        access: Access::Public,
        encrypt: false,
        live_plan: None,
    };
    (meta, token)
}

/// Metadata of a new import: titled after its file unless told otherwise,
/// `processing` from the start.
pub fn new_import_meta(title: Option<String>, info: ImportInfo) -> (RecordingMeta, String) {
    let title = title.filter(|t| !t.trim().is_empty()).or_else(|| {
        std::path::Path::new(&info.file_name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
    });
    let mime = import::guess_mime(&info.file_name);
    let (mut meta, token) = new_meta(title, Some(mime), "Import", State::Processing);
    meta.import = Some(info);
    (meta, token)
}

fn parse_digest(hex_digest: &str) -> [u8; 32] {
    // An unreadable stored digest matches no token: uploads are refused.
    hex::decode(hex_digest)
        .ok()
        .and_then(|d| d.try_into().ok())
        .unwrap_or([0xff; 32])
}

/// A media type we can echo back in Content-Type without header injection.
fn is_plain_mime(mime: &str) -> bool {
    mime.len() <= 128
        && mime.contains('/')
        && mime.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_media_types_are_kept() {
        assert!(is_plain_mime("video/webm;codecs=vp8,opus"));
        assert!(!is_plain_mime("video/webm\r\nX-Evil: 1"));
        assert!(!is_plain_mime("webm"));
    }
}
