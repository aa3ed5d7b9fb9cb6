//! The v2 data directory brought into the catalog at first start, with
//! nothing lost: every `recordings/<id>/recording.json`, its comment log
//! (`comments.jsonl`, replayed with its tombstones), its key
//! (`keys/<id>.key`, wrapped on the way in) and the share-token secret
//! (`token-secret`, so share links made before keep working).
//!
//! One transaction: a crash half way leaves the catalog as it was, and the
//! next start imports again. The `v2_imported` setting marks it done; the
//! old files stay where they were (the media still lives beside them), and
//! nothing reads them again.

use std::path::Path;

use media::aes::{ContentKey, KEY_BYTES};
use serde::Deserialize;

use super::comments::StoredComment;
use super::recordings::{bind_meta, COLUMNS};
use super::{on_db, Catalog, SHARE_SECRET};
use crate::recordings::RecordingMeta;

/// The `settings` row that says the import ran.
pub const IMPORTED: &str = "v2_imported";
const META_FILE: &str = "recording.json";
const COMMENTS_FILE: &str = "comments.jsonl";
const TOKEN_SECRET_FILE: &str = "token-secret";

/// What was brought in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub recordings: usize,
    pub comments: usize,
    pub keys: usize,
    pub share_secret: bool,
}

/// One recording of the old layout.
struct Old {
    meta: RecordingMeta,
    key: Option<ContentKey>,
    comments: Vec<StoredComment>,
}

/// Imports `data_dir`'s v2 files unless that was done; `None` when it was.
pub async fn import(catalog: &Catalog, data_dir: &Path) -> Result<Option<Report>, String> {
    let done = catalog.setting(IMPORTED).await.map_err(|e| e.to_string())?;
    if done.is_some() {
        return Ok(None);
    }
    let dir = data_dir.to_path_buf();
    let (old, secret) = tokio::task::spawn_blocking(move || read_v2(&dir))
        .await
        .map_err(|e| e.to_string())??;
    let report = Report {
        recordings: old.len(),
        comments: old.iter().map(|o| o.comments.len()).sum(),
        keys: old.iter().filter(|o| o.key.is_some()).count(),
        share_secret: secret.is_some(),
    };
    let wrapped: Vec<Option<Vec<u8>>> = old
        .iter()
        .map(|o| o.key.as_ref().map(|k| catalog.wrap.wrap(k)))
        .collect();
    let insert = format!(
        "INSERT INTO recordings ({COLUMNS}, wrapped_key) VALUES \
         ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) ON CONFLICT (id) DO NOTHING"
    );
    let comment =
        "INSERT INTO comments (recording_id, id, author, body, media_time_ms, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (recording_id, id) DO NOTHING";
    let setting =
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    let marker = base::clock::rfc3339_now();
    on_db!(catalog, write, |pool| {
        async {
            let mut tx = pool.begin().await?;
            for (o, wrapped) in old.iter().zip(&wrapped) {
                bind_meta!(sqlx::query(&insert), &o.meta)
                    .bind(wrapped)
                    .execute(&mut *tx)
                    .await?;
                for c in &o.comments {
                    sqlx::query(comment)
                        .bind(&o.meta.id)
                        .bind(&c.id)
                        .bind(&c.author)
                        .bind(&c.text)
                        .bind(i64::try_from(c.media_time_ms).unwrap_or(i64::MAX))
                        .bind(&c.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if let Some(secret) = &secret {
                sqlx::query(setting)
                    .bind(SHARE_SECRET)
                    .bind(secret)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(setting)
                .bind(IMPORTED)
                .bind(marker.as_bytes())
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await
    })
    .map_err(|e| format!("importing the v2 data directory: {e}"))?;
    Ok(Some(report))
}

/// Reads the old layout (blocking). A recording whose metadata does not
/// read is skipped with a warning, as v2 itself skipped it.
fn read_v2(data_dir: &Path) -> Result<(Vec<Old>, Option<Vec<u8>>), String> {
    let secret = read_optional(&data_dir.join(TOKEN_SECRET_FILE))?;
    let root = data_dir.join("recordings");
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), secret)),
        Err(e) => return Err(format!("cannot read {}: {e}", root.display())),
    };
    let mut old = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(bytes) = read_optional(&dir.join(META_FILE))? else {
            continue;
        };
        let meta = match serde_json::from_slice::<RecordingMeta>(&bytes) {
            Ok(meta) if dir.file_name().is_some_and(|n| n == meta.id.as_str()) => meta,
            _ => {
                tracing::warn!(dir = %dir.display(), "skipping unreadable v2 recording metadata");
                continue;
            }
        };
        let key = read_key(data_dir, &meta)?;
        let comments = read_optional(&dir.join(COMMENTS_FILE))?
            .map(|log| replay(&log))
            .unwrap_or_default();
        old.push(Old {
            meta,
            key,
            comments,
        });
    }
    Ok((old, secret))
}

fn read_key(data_dir: &Path, meta: &RecordingMeta) -> Result<Option<ContentKey>, String> {
    let path = data_dir.join("keys").join(format!("{}.key", meta.id));
    let Some(bytes) = read_optional(&path)? else {
        if meta.encrypt {
            tracing::warn!(id = %meta.id, "an encrypted v2 recording without its key: it stays unplayable");
        }
        return Ok(None);
    };
    let bytes: [u8; KEY_BYTES] = bytes
        .try_into()
        .map_err(|_| format!("{} is not {KEY_BYTES} bytes", path.display()))?;
    Ok(Some(ContentKey::from_bytes(bytes)))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// One line of the v2 comment log.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum LogEntry {
    Post(StoredComment),
    /// A tombstone: comment `id` was removed.
    Delete {
        id: String,
    },
}

/// The comments a v2 log leaves: posts in order, tombstones applied. Only
/// complete lines count (a torn last line was never acknowledged), and an
/// unreadable line is skipped, as v2 did.
fn replay(log: &[u8]) -> Vec<StoredComment> {
    let complete = log.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut comments: Vec<StoredComment> = Vec::new();
    for line in log[..complete].split(|&b| b == b'\n') {
        match serde_json::from_slice::<LogEntry>(line) {
            Ok(LogEntry::Post(c)) if !comments.iter().any(|k| k.id == c.id) => comments.push(c),
            Ok(LogEntry::Delete { id }) => comments.retain(|c| c.id != id),
            _ => {}
        }
    }
    comments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_log_replays_with_tombstones_and_a_torn_tail() {
        let post = |id: &str| {
            format!(
                r#"{{"op":"post","id":"{id}","author":"a","text":"t\nu","media_time_ms":1500,"created_at":"2026-01-01T00:00:00.000Z"}}"#
            )
        };
        let log = format!(
            "{}\nnot json\n{}\n{}\n{{\"op\":\"delete\",\"id\":\"a1\",\"deleted_at\":\"x\"}}\n{}\n{}",
            post("a1"),
            post("b2"),
            post("b2"),
            post("c3"),
            &post("d4")[..30],
        );
        let ids: Vec<_> = replay(log.as_bytes()).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["b2", "c3"]);
        assert_eq!(replay(log.as_bytes())[0].text, "t\nu");
    }
}
