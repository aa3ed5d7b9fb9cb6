//! A recording complete in the bucket brought back to a node's disk, for a
//! node that takes over a finished recording whose own node is gone
//! (docs/http-contract.md, v3 "One library for many nodes"). The bucket
//! says a recording is complete with `<prefix>/<id>/in-bucket.json`,
//! written after everything else of it (see the module above); only such a
//! recording is restored, so a node never serves half of one.
//!
//! What comes back is what `/media` serves: playlists, manifest, init and
//! media segments, poster. The original stays in the bucket, and the
//! timeline (never in the bucket) is not needed once a recording is ready.

use futures_util::TryStreamExt;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use super::{object_kind, InBucket, Mirror, IN_BUCKET_FILE};
use crate::recordings::HLS_DIR;

impl Mirror {
    /// The marker object that says recording `id` is complete here.
    pub(super) async fn put_marker(&self, id: &str, json: Vec<u8>) -> object_store::Result<()> {
        let path = object_store::path::Path::from(self.key(id, IN_BUCKET_FILE));
        self.objects.put(&path, json.into()).await.map(drop)
    }

    /// Copies recording `id`'s published files from the bucket into its
    /// local folder, once the bucket holds it complete; `Ok(false)` when
    /// it does not (not mirrored, or not finished there).
    pub async fn restore(&self, id: &str) -> std::io::Result<bool> {
        let io = |e: object_store::Error| std::io::Error::other(format!("--store: {e}"));
        let marker_key = object_store::path::Path::from(self.key(id, IN_BUCKET_FILE));
        let marker = match self.objects.get(&marker_key).await {
            Ok(got) => got.bytes().await.map_err(io)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(io(e)),
        };
        let said: InBucket = serde_json::from_slice(&marker).map_err(std::io::Error::other)?;
        if said.bucket != self.url.bucket || said.prefix != self.url.prefix {
            return Ok(false);
        }
        let dir = self.root.join(id).join(HLS_DIR);
        tokio::fs::create_dir_all(&dir).await?;
        let folder = object_store::path::Path::from(self.key(id, ""));
        let listed: Vec<_> = self
            .objects
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(io)?;
        let mut restored = 0;
        for object in listed {
            let Some(name) = object.location.filename().map(str::to_string) else {
                continue;
            };
            if object_kind(&name).is_none() {
                continue; // the original, the marker
            }
            let bytes = self.objects.get(&object.location).await.map_err(io)?;
            let bytes = bytes.bytes().await.map_err(io)?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            let path = dir.join(&name);
            tokio::task::spawn_blocking(move || base::files::write_atomic(&path, &bytes, true))
                .await
                .map_err(std::io::Error::other)??;
            // In the bucket already: never uploaded again from here.
            let mut mirrored = self.mirrored.lock().expect("lock");
            mirrored
                .entry(id.to_string())
                .or_default()
                .insert(name, digest);
            restored += 1;
        }
        let local_marker = self.root.join(id).join(IN_BUCKET_FILE);
        tokio::task::spawn_blocking(move || {
            base::files::write_atomic(&local_marker, &marker, true)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.complete.lock().expect("lock").insert(id.to_string());
        tracing::info!(%id, files = restored, "--store: restored from the bucket");
        Ok(true)
    }
}
