//! The library: every recording the server knows, each with its task.
//! Loaded from the catalog at start-up, so a restarted server lists what
//! it had; listed newest first from an index kept beside the tasks.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
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
use media::aes::ContentKey;
use store::catalog::Catalog;
use store::mirror::Mirror;
use store::{ImportInfo, ImportOrigin, PutOutcome, RecordingMeta, State, Store};

use super::import::{self, Placement};
use super::live;
use super::reorder::ChunkSet;
use super::status::{ChunkReceipt, RecordingStatus};
use super::task::{Command, Shared};
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

/// Most recordings one page of `GET /api/recordings` lists.
pub const MAX_PAGE: usize = 1000;

/// A handle to one recording's task.
#[derive(Clone)]
pub struct Recording {
    import: Option<Arc<ImportInfo>>,
    access: Access,
    encrypted: bool,
    key: Option<ContentKey>,
    created_at: Arc<str>,
    token_sha256: [u8; 32],
    catalog: Catalog,
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

    /// The content key of an encrypted recording (from the catalog).
    pub fn content_key(&self) -> Option<ContentKey> {
        self.key
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

    /// Stores a chunk. While the catalog does not answer, `503` with
    /// `Retry-After`: the library cannot record what it would acknowledge.
    pub async fn put(&self, seq: u64, bytes: Bytes) -> Result<(PutOutcome, ChunkReceipt)> {
        self.catalog.check().await?;
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
    shared: Shared,
    /// Slots for imports running ffmpeg (`--import-jobs`).
    import_jobs: Arc<Semaphore>,
    index: RwLock<Index>,
    /// Ids deleted (answered 410 instead of 404), kept by the catalog.
    deleted: Mutex<HashSet<String>>,
    /// One takeover at a time (they are rare: a node's loss).
    taking_over: tokio::sync::Mutex<()>,
}

/// The recordings with a task, by id and newest first.
#[derive(Default)]
struct Index {
    by_id: HashMap<String, Recording>,
    /// `(created_at, id)`, newest first, ties by id.
    newest: BTreeSet<(Reverse<Arc<str>>, String)>,
}

impl Index {
    fn remove(&mut self, id: &str) {
        if let Some(rec) = self.by_id.remove(id) {
            self.newest
                .remove(&(Reverse(rec.created_at), id.to_string()));
        }
    }
}

/// Which slice of the library `GET /api/recordings` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page<'a> {
    /// At most this many (`None`: all).
    pub limit: Option<usize>,
    /// Only recordings after (older than) this one.
    pub before: Option<&'a str>,
    /// Private recordings too (the operator asks).
    pub private: bool,
}

impl Library {
    /// Loads the library from the catalog and starts a task per recording
    /// this node runs (all of them, but in a cluster).
    /// Folders of recordings the catalog says were deleted (a delete cut
    /// short by a crash) are removed.
    pub async fn open(shared: Shared) -> std::io::Result<Arc<Self>> {
        let io = |e: Error| std::io::Error::other(base::error::chain(&e));
        let mut rows = shared.catalog.recordings().await.map_err(io)?;
        // Another node's recordings run there (their requests are handed
        // to it); a task here too would take chunks twice.
        let owners = shared.catalog.owners().await.map_err(io)?;
        let me = shared.catalog.node_url();
        rows.retain(|(meta, _)| owners.get(&meta.id).is_none_or(|o| Some(o.as_str()) == me));
        let deleted: HashSet<String> = shared
            .catalog
            .deleted_ids()
            .await
            .map_err(io)?
            .into_iter()
            .collect();
        let store = shared.store.clone();
        let doomed: Vec<String> = deleted.iter().cloned().collect();
        let seqs = tokio::task::spawn_blocking(move || load_chunks(&store, &rows, &doomed))
            .await
            .map_err(std::io::Error::other)??;
        let library = Self {
            import_jobs: Arc::new(Semaphore::new(shared.settings.import_jobs as usize)),
            shared,
            index: RwLock::default(),
            deleted: Mutex::new(deleted),
            taking_over: tokio::sync::Mutex::new(()),
        };
        for (meta, key, seqs) in seqs {
            library.start(meta, key, seqs);
        }
        let count = library.index.read().expect("lock").by_id.len();
        tracing::info!(recordings = count, catalog = %library.shared.catalog.shown(), "library opened");
        Ok(Arc::new(library))
    }

    /// Starts the task of a stored recording and lists it. Idempotent per
    /// id (checked and inserted under one lock): a recording this server
    /// is creating may also be seen by the rescan in `adopt_moved_in`, and
    /// must still get exactly one task.
    fn start(&self, meta: RecordingMeta, key: Option<ContentKey>, seqs: Vec<u64>) -> Recording {
        let mut index = self.index.write().expect("lock");
        if let Some(existing) = index.by_id.get(&meta.id) {
            return existing.clone();
        }
        let token_sha256 = parse_digest(&meta.token_sha256);
        let (access, encrypted) = (meta.access, meta.encrypt);
        let id = meta.id.clone();
        let created_at: Arc<str> = meta.created_at.as_str().into();
        let import = meta.import.clone().map(Arc::new);
        let handle = match &import {
            Some(_) => import::spawn(meta, key, &self.shared, self.import_jobs.clone()),
            None => live::spawn(meta, key, seqs, &self.shared),
        };
        let recording = Recording {
            import,
            access,
            encrypted,
            key,
            created_at: created_at.clone(),
            token_sha256,
            catalog: self.shared.catalog.clone(),
            cmds: handle.cmds,
            status: handle.status,
            edge: handle.edge,
        };
        index.newest.insert((Reverse(created_at), id.clone()));
        index.by_id.insert(id, recording.clone());
        recording
    }

    fn is_known(&self, id: &str) -> bool {
        self.index.read().expect("lock").by_id.contains_key(id)
            || self.deleted.lock().expect("lock").contains(id)
    }

    /// Lists a recording another process put into the data directory (the
    /// `segcast import` CLI adds its row to the catalog, then moves the
    /// finished folder in); known ids are left alone. Returns whether it
    /// was new.
    pub async fn adopt(&self, id: &str) -> std::io::Result<bool> {
        if !is_valid_id(id) || self.is_known(id) {
            return Ok(false);
        }
        let row = self.shared.catalog.recording(id).await;
        let row = row.map_err(|e| std::io::Error::other(base::error::chain(&e)))?;
        let Some((meta, key)) = row else {
            return Ok(false);
        };
        let (store, owned_id) = (self.shared.store.clone(), id.to_string());
        let seqs = tokio::task::spawn_blocking(move || store.stored_seqs(&owned_id))
            .await
            .map_err(std::io::Error::other)??;
        if self.is_known(id) {
            return Ok(false);
        }
        tracing::info!(%id, "recording added to the library");
        self.start(meta, key, seqs);
        Ok(true)
    }

    /// Takes over a finished recording whose node is gone (its lease ran
    /// out): its files come back from the bucket, the catalog makes it this
    /// node's, and it is served here from then on. `Ok(false)` when it
    /// cannot be: no bucket, not ready, not complete in the bucket, or
    /// another node took it first. Live recordings are not taken over (yet).
    pub async fn take_over_finished(&self, id: &str) -> Result<bool> {
        let _one = self.taking_over.lock().await;
        if self.is_known(id) {
            return Ok(true);
        }
        let (Some(mirror), Some(me)) = (self.objects(), self.shared.catalog.node_url()) else {
            return Ok(false);
        };
        let Some((meta, key)) = self.shared.catalog.recording(id).await? else {
            return Ok(false);
        };
        if meta.state != State::Ready {
            return Ok(false);
        }
        let (store, owned) = (self.shared.store.clone(), id.to_string());
        let remove = || {
            let (store, owned) = (store.clone(), owned.clone());
            tokio::task::spawn_blocking(move || store.delete(&owned))
        };
        let restored = mirror.restore(id).await;
        let won = match restored {
            Ok(true) => {
                let now = base::clock::unix_ms();
                self.shared.catalog.take_over_recording(id, me, now).await
            }
            Ok(false) => Ok(false),
            Err(e) => Err(Error::internal("restoring from the bucket", e)),
        };
        if !matches!(won, Ok(true)) {
            let _ = remove().await;
            return won;
        }
        tracing::info!(%id, "finished recording taken over from a node that is gone");
        self.start(meta, key, Vec::new());
        Ok(true)
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Where the library's metadata lives.
    pub fn catalog(&self) -> &Catalog {
        &self.shared.catalog
    }

    /// The server's counters (`GET /metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The `--store` bucket's mirror, if there is one.
    pub fn objects(&self) -> Option<&Arc<Mirror>> {
        self.shared.mirror.as_ref()
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
        if live >= self.shared.settings.max_live_recordings {
            return Err(Error::Busy {
                message: format!(
                    "the server is at its limit of {live} live recordings; retry later"
                ),
                retry_after_s: RETRY_AFTER_S,
            });
        }
        self.check_free_space(0).await?;
        let (mut meta, token) = new_meta(title, mime, "Recording", State::Recording);
        let key = self.protect(&mut meta, protection);
        let (store, id) = (self.shared.store.clone(), meta.id.clone());
        tokio::task::spawn_blocking(move || store.create(&id))
            .await
            .map_err(|e| Error::internal("create task", e))??;
        self.add_row(&meta, key.as_ref()).await?;
        let id = meta.id.clone();
        let initial = self.start(meta, key, Vec::new()).status();
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
        self.check_free_space(0).await?;
        let (mut meta, token) = new_import_meta(title, info);
        let key = self.protect(&mut meta, protection);
        let store = self.shared.store.clone();
        let to_store = meta.clone();
        tokio::task::spawn_blocking(move || {
            import::create_files(&store, &to_store, &source, placement)
        })
        .await
        .map_err(|e| Error::internal("import create task", e))??;
        self.add_row(&meta, key.as_ref()).await?;
        let id = meta.id.clone();
        let initial = self.start(meta, key, Vec::new()).status();
        tracing::info!(%id, "import created");
        Ok((initial, token))
    }

    /// Refuses new work (`needed_bytes` of it, when known) that would leave
    /// the data directory's file system below `--min-free-mb`, so the
    /// recordings already under way keep their room.
    pub async fn check_free_space(&self, needed_bytes: u64) -> Result<()> {
        let (dir, min) = (
            self.shared.settings.data_dir.clone(),
            self.shared.settings.min_free_bytes,
        );
        let free = tokio::task::spawn_blocking(move || base::files::free_bytes(&dir))
            .await
            .map_err(|e| Error::internal("free space task", e))?
            .map_err(|e| Error::storage("cannot tell the data directory's free space", &e))?;
        if free < min.saturating_add(needed_bytes) {
            return Err(Error::NoSpace(format!(
                "the data directory has {} MiB free; new recordings need {} MiB \
                 more than they bring (--min-free-mb)",
                free >> 20,
                min >> 20
            )));
        }
        Ok(())
    }

    /// The new recording's row, after its folder exists; if the catalog
    /// refuses it, the folder goes again (nothing half-made stays).
    async fn add_row(&self, meta: &RecordingMeta, key: Option<&ContentKey>) -> Result<()> {
        let added = self.shared.catalog.create_recording(meta, key).await;
        if added.is_err() {
            let (store, id) = (self.shared.store.clone(), meta.id.clone());
            let _ = tokio::task::spawn_blocking(move || store.delete(&id)).await;
        }
        added
    }

    /// Sets who may watch a new recording and, when it is encrypted, makes
    /// its key (stored in the same catalog row, so no media is ever
    /// published in the clear by mistake).
    fn protect(&self, meta: &mut RecordingMeta, protection: Protection) -> Option<ContentKey> {
        meta.access = protection.access;
        meta.encrypt = protection
            .encrypt
            .unwrap_or(self.shared.settings.encrypt_by_default);
        meta.encrypt.then(ContentKey::generate)
    }

    /// The recording with this id: 404 when unknown, 410 when deleted.
    pub fn get(&self, id: &str) -> Result<Recording> {
        let not_found = || Error::NotFound(format!("no recording with id '{id}'"));
        if !is_valid_id(id) {
            return Err(not_found());
        }
        if let Some(rec) = self.index.read().expect("lock").by_id.get(id) {
            return Ok(rec.clone());
        }
        if self.deleted.lock().expect("lock").contains(id) {
            return Err(Error::Gone(format!("recording '{id}' was deleted")));
        }
        Err(not_found())
    }

    /// All recordings, newest first.
    pub fn list(&self) -> Vec<RecordingStatus> {
        let index = self.index.read().expect("lock");
        index
            .newest
            .iter()
            .filter_map(|(_, id)| index.by_id.get(id))
            .map(Recording::status)
            .collect()
    }

    /// One page of the library, newest first, and whether more follow.
    /// `400` for a `before` that names no listed recording.
    pub fn list_page(&self, page: Page<'_>) -> Result<(Vec<RecordingStatus>, bool)> {
        let index = self.index.read().expect("lock");
        let start = match page.before {
            None => Bound::Unbounded,
            Some(id) => {
                let rec = index.by_id.get(id).ok_or_else(|| {
                    Error::Invalid(format!("before: no recording with id '{id}' is listed"))
                })?;
                Bound::Excluded((Reverse(rec.created_at.clone()), id.to_string()))
            }
        };
        let limit = page.limit.unwrap_or(usize::MAX);
        let mut listed = index
            .newest
            .range((start, Bound::Unbounded))
            .filter_map(|(_, id)| index.by_id.get(id))
            .filter(|rec| page.private || !rec.access.is_private());
        let out: Vec<RecordingStatus> =
            listed.by_ref().take(limit).map(Recording::status).collect();
        let more = listed.next().is_some();
        Ok((out, more))
    }

    /// [`Self::list_page`] across a cluster: every row of the catalog, this
    /// node's recordings with their live status, the others' as their
    /// rows say (their owners keep the rows current).
    pub async fn list_cluster_page(&self, page: Page<'_>) -> Result<(Vec<RecordingStatus>, bool)> {
        let rows = self.shared.catalog.recordings().await?;
        let index = self.index.read().expect("lock");
        let mut listed = rows
            .iter()
            .filter(|(meta, _)| page.private || !meta.access.is_private())
            .map(|(meta, _)| match index.by_id.get(&meta.id) {
                Some(here) => here.status(),
                None => status_of_row(meta),
            })
            .peekable();
        if let Some(before) = page.before {
            if !rows.iter().any(|(meta, _)| meta.id == before) {
                let message = format!("before: no recording with id '{before}' is listed");
                return Err(Error::Invalid(message));
            }
            listed.by_ref().find(|status| status.id == before);
        }
        let limit = page.limit.unwrap_or(usize::MAX);
        let out: Vec<RecordingStatus> = listed.by_ref().take(limit).collect();
        let more = listed.peek().is_some();
        Ok((out, more))
    }

    /// Imported recordings that came through `origin`.
    pub fn recordings_from(&self, origin: ImportOrigin) -> Vec<Recording> {
        self.index
            .read()
            .expect("lock")
            .by_id
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
        let root = self.shared.store.root().to_path_buf();
        let (_watcher, mut events) =
            super::watch::watch_dir(&root).map_err(std::io::Error::other)?;
        // What arrived between loading the library and watching: a rescan
        // (known ids are skipped).
        for entry in std::fs::read_dir(&root)?.flatten() {
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
            .index
            .read()
            .expect("lock")
            .by_id
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
        if let Some(objects) = &self.shared.mirror {
            objects.stop();
        }
        tracing::info!(recordings = recordings.len(), "all recording tasks stopped");
    }

    /// Deletes a recording: its row first (with its comments and its key:
    /// without the key, no copy of an encrypted recording's media left
    /// anywhere can be played), then its files. A crash in between leaves
    /// a folder the next start removes.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let recording = self.get(id)?;
        self.shared.catalog.delete_recording(id).await?;
        self.deleted.lock().expect("lock").insert(id.to_string());
        recording.ask(|reply| Command::Delete { reply }).await?;
        // Its local files are gone: no pass can upload them again.
        if let Some(objects) = &self.shared.mirror {
            objects.forget(id).await;
        }
        self.index.write().expect("lock").remove(id);
        Ok(())
    }
}

/// A recording as stored: its row, its key, the seqs of its chunks.
type Stored = (RecordingMeta, Option<ContentKey>, Vec<u64>);

/// Each row with its stored chunks; removes the folders of deleted
/// recordings. Blocking.
fn load_chunks(
    store: &Store,
    rows: &[(RecordingMeta, Option<ContentKey>)],
    deleted: &[String],
) -> std::io::Result<Vec<Stored>> {
    for id in deleted.iter().filter(|id| store.exists(id)) {
        tracing::info!(%id, "removing the files of a recording deleted before a crash");
        store.delete(id)?;
    }
    rows.iter()
        .map(|(meta, key)| Ok((meta.clone(), *key, store.stored_seqs(&meta.id)?)))
        .collect()
}

/// Metadata and upload token of a new recording. A missing or blank title
/// becomes "<kind> <date time>".
/// A recording's status as its catalog row says it, for one run by another
/// node (that node keeps the row current).
pub fn status_of_row(meta: &RecordingMeta) -> RecordingStatus {
    RecordingStatus::new(
        meta,
        &ChunkSet::default(),
        meta.duration_ms,
        meta.segments,
        meta.segments > 0,
    )
}

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
