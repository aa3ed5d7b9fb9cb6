//! Deleting a recording deletes its objects, even when the bucket is down
//! at the time: the deletion is first written down as a tombstone file
//! (`<data>/store-deletes/<id>`, fsynced), retried with the mirror's
//! backoff until the bucket has none of the recording's objects, and only
//! then forgotten. A restart reads the tombstones left and goes on.

use futures_util::StreamExt;
use object_store::ObjectStore;

use super::{Mirror, PassError};
use base::ids::is_valid_id;

pub(super) const TOMBSTONES_DIR: &str = "store-deletes";

impl Mirror {
    /// The recording was deleted (its local files are gone): its objects
    /// go too. Returns once the deletion is written down; a tombstone that
    /// cannot be written still queues it, but a restart would forget it.
    pub async fn forget(&self, id: &str) {
        let (dir, owned) = (self.tombstones.clone(), id.to_string());
        let written = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            base::files::write_atomic(&dir.join(&owned), b"", true)
        })
        .await
        .map_err(std::io::Error::other);
        if let Ok(Err(error)) | Err(error) = written {
            tracing::error!(%id, %error, "--store: the deletion of this recording's objects is not written down; a restart before it is done would leave them");
        }
        self.mirrored.lock().expect("lock").remove(id);
        self.complete.lock().expect("lock").remove(id);
        self.requeue_delete(id);
    }

    pub(super) fn requeue_delete(&self, id: &str) {
        let mut deletes = self.deletes.lock().expect("lock");
        deletes.insert(id.to_string());
        self.metrics.store_pending_deletes.set(deletes.len() as i64);
        self.wake.notify_one();
    }

    pub(super) fn next_delete(&self) -> Option<String> {
        let mut deletes = self.deletes.lock().expect("lock");
        let next = deletes.pop_first();
        self.metrics.store_pending_deletes.set(deletes.len() as i64);
        next
    }

    /// Deletions a previous run left undone.
    pub(super) fn load_tombstones(&self) {
        let Ok(entries) = std::fs::read_dir(&self.tombstones) else {
            return;
        };
        for entry in entries.flatten() {
            if let Some(id) = entry.file_name().to_str().filter(|id| is_valid_id(id)) {
                self.requeue_delete(id);
            }
        }
    }

    /// Deletes every object under `prefix/id/`, then the tombstone.
    pub(super) async fn delete_objects(&self, id: &str) -> Result<(), PassError> {
        let count = self.delete_prefix(id).await?;
        let tombstone = self.tombstones.join(id);
        match tokio::fs::remove_file(&tombstone).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        tracing::info!(%id, objects = count, "--store: the recording's objects are deleted");
        Ok(())
    }

    /// Deletes every object under `prefix/id/`; returns how many.
    pub(super) async fn delete_prefix(&self, id: &str) -> Result<u64, PassError> {
        let prefix = object_store::path::Path::from(self.key(id, "").trim_end_matches('/'));
        let listed: Vec<_> = self.objects.list(Some(&prefix)).collect().await;
        let locations =
            futures_util::stream::iter(listed.into_iter().map(|meta| meta.map(|m| m.location)));
        let deleted: Vec<_> = self
            .objects
            .delete_stream(locations.boxed())
            .collect()
            .await;
        let mut count = 0;
        for outcome in deleted {
            match outcome {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => count += 1,
                Err(error) => return Err(error.into()),
            }
        }
        self.metrics.store_deletes.inc_by(count);
        Ok(count)
    }
}
