//! A live recording's chunks in the bucket too, in a cluster
//! (docs/http-contract.md, v3 "One library for many nodes": "a chunk's
//! `2xx` comes only once the chunk is in the bucket as well as on local
//! disk"). What a node has acknowledged then survives the node: another
//! node can take the recording over from the bucket. The upload is the
//! request's, not the mirror's background pass, so that the `2xx` means it.
//!
//! `<prefix>/<id>/chunks/<seq>.chunk`, the name the chunk has on disk.
//! Deleting the recording deletes them with its other objects.

use object_store::{ObjectStore, PutPayload};

use super::Mirror;

impl Mirror {
    /// Stores chunk `seq` of recording `id` in the bucket (again, if it is
    /// there: a retried chunk is the same bytes).
    pub async fn put_chunk(
        &self,
        id: &str,
        seq: u64,
        bytes: bytes::Bytes,
    ) -> object_store::Result<()> {
        let len = bytes.len() as u64;
        let key = self.key(id, &chunk_name(seq));
        let path = object_store::path::Path::from(key);
        self.objects.put(&path, PutPayload::from(bytes)).await?;
        self.metrics.store_uploads.inc();
        self.metrics.store_upload_bytes.inc_by(len);
        Ok(())
    }
}

/// The chunk's object name under its recording.
pub fn chunk_name(seq: u64) -> String {
    format!("chunks/{seq:08}{}", crate::recordings::CHUNK_SUFFIX)
}
