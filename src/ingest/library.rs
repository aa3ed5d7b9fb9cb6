//! The library: every recording the server knows, each with its task.
//! Loaded from disk at start-up, so a restarted server lists what it had.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{is_valid_id, PutOutcome, RecordingMeta, State, Store};

use super::live::{self, Command};
use super::status::{ChunkReceipt, RecordingStatus};

/// Random bytes in a recording id: unguessable enough that knowing the id
/// is the capability to watch it.
const ID_BYTES: usize = 10;
/// Upload tokens carry 128 random bits.
const TOKEN_BYTES: usize = 16;
/// Longest title kept; longer ones are cut at a character boundary.
pub const MAX_TITLE_CHARS: usize = 200;

/// A handle to one recording's task.
#[derive(Clone)]
pub struct Recording {
    mime: Arc<str>,
    token_sha256: [u8; 32],
    cmds: mpsc::Sender<Command>,
    status: watch::Receiver<RecordingStatus>,
}

impl Recording {
    /// Media type of the original upload.
    pub fn mime(&self) -> &str {
        &self.mime
    }

    pub fn status(&self) -> RecordingStatus {
        self.status.borrow().clone()
    }

    /// A watch on the status, for whoever waits for a state change.
    pub fn subscribe(&self) -> watch::Receiver<RecordingStatus> {
        self.status.clone()
    }

    /// Checks an upload token in constant time (hash first, then ct_eq).
    pub fn authorize(&self, token: Option<&str>) -> Result<()> {
        let token = token.ok_or_else(|| {
            Error::Unauthorized("missing upload token (Authorization: Bearer …)".into())
        })?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.token_sha256)) {
            Ok(())
        } else {
            Err(Error::Unauthorized(
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
    config: Arc<Config>,
    recordings: RwLock<HashMap<String, Recording>>,
    /// Ids deleted since start-up, answered 410 instead of 404.
    deleted: Mutex<HashSet<String>>,
}

impl Library {
    /// Opens the data directory and starts a task per stored recording.
    pub async fn open(config: Arc<Config>) -> std::io::Result<Arc<Self>> {
        let store = Store::open(&config.data_dir)?;
        let loaded = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.load_all())
                .await
                .map_err(std::io::Error::other)??
        };
        let mut recordings = HashMap::new();
        for (meta, seqs) in loaded {
            let token_sha256 = parse_digest(&meta.token_sha256);
            let (id, mime) = (meta.id.clone(), Arc::from(meta.mime.as_str()));
            let (cmds, status) = live::spawn(meta, seqs, store.clone(), config.clone());
            recordings.insert(
                id,
                Recording {
                    mime,
                    token_sha256,
                    cmds,
                    status,
                },
            );
        }
        tracing::info!(recordings = recordings.len(), data = %config.data_dir.display(), "library opened");
        Ok(Arc::new(Self {
            store,
            config,
            recordings: RwLock::new(recordings),
            deleted: Mutex::default(),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a recording; returns its status and its upload token.
    pub async fn create(
        &self,
        title: Option<String>,
        mime: Option<String>,
    ) -> Result<(RecordingStatus, String)> {
        let live = self
            .list()
            .iter()
            .filter(|r| matches!(r.state, State::Recording | State::Processing))
            .count();
        if live >= self.config.max_live_recordings {
            return Err(Error::Busy {
                message: format!(
                    "the server is at its limit of {live} live recordings; retry later"
                ),
                retry_after_s: crate::config::RETRY_AFTER_S,
            });
        }
        let id = hex::encode(random_bytes::<ID_BYTES>());
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>());
        let created_at = now_rfc3339();
        let title = title.map(|t| t.trim().chars().take(MAX_TITLE_CHARS).collect::<String>());
        let meta = RecordingMeta {
            id: id.clone(),
            title: title
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("Recording {}", &created_at[..16])),
            mime: mime
                .filter(|m| is_plain_mime(m))
                .unwrap_or_else(|| "video/webm".into()),
            created_at,
            token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
            total: None,
            state: State::Recording,
            error: None,
            duration_ms: 0,
            segments: 0,
            incomplete: false,
        };
        let store = self.store.clone();
        let to_store = meta.clone();
        tokio::task::spawn_blocking(move || store.create(&to_store))
            .await
            .map_err(|e| Error::internal("create task", e))??;
        let token_sha256 = parse_digest(&meta.token_sha256);
        let mime = Arc::from(meta.mime.as_str());
        let (cmds, status) = live::spawn(meta, Vec::new(), self.store.clone(), self.config.clone());
        let recording = Recording {
            mime,
            token_sha256,
            cmds,
            status,
        };
        let initial = recording.status();
        self.recordings
            .write()
            .expect("lock")
            .insert(id.clone(), recording);
        tracing::info!(%id, "recording created");
        Ok((initial, token))
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

    pub async fn delete(&self, id: &str) -> Result<()> {
        let recording = self.get(id)?;
        recording.ask(|reply| Command::Delete { reply }).await?;
        self.recordings.write().expect("lock").remove(id);
        self.deleted.lock().expect("lock").insert(id.to_string());
        Ok(())
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn parse_digest(hex_digest: &str) -> [u8; 32] {
    // An unreadable stored digest matches no token: uploads are refused.
    hex::decode(hex_digest)
        .ok()
        .and_then(|d| d.try_into().ok())
        .unwrap_or([0xff; 32])
}

/// RFC 3339 UTC with millisecond precision: fixed width, so it sorts as text.
fn now_rfc3339() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("valid format")
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
    fn timestamps_are_fixed_width_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-11-21T14:32:11.123Z".len(), "{t}");
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }

    #[test]
    fn only_plain_media_types_are_kept() {
        assert!(is_plain_mime("video/webm;codecs=vp8,opus"));
        assert!(!is_plain_mime("video/webm\r\nX-Evil: 1"));
        assert!(!is_plain_mime("webm"));
    }
}
