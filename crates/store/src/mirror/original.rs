//! A ready recording's original to the bucket, once: an import's file as
//! it was given, or a live recording's chunks `0..total` end to end (what
//! `GET /media/{id}/original` serves). Streamed in pieces: an original
//! may be gigabytes, and none of it is held in memory whole.

use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::{Attribute, Attributes, ObjectStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use media::layout::{CachePolicy, ORIGINAL_FILE};

use super::{Mirror, PassError};
use crate::recordings::RecordingMeta;

/// Read and sent in pieces of this size; an original larger than one
/// piece goes up as a multipart upload (S3 wants parts of at least 5 MiB).
const PIECE_BYTES: usize = 8 << 20;

/// The `Content-Type` `/media/{id}/original` answers with: an import's
/// declared type normalised by `mime` (as `ServeFile` sends it), a live
/// recording's as it was declared or read from chunk 0.
pub fn content_type(meta: &RecordingMeta) -> String {
    match meta.import {
        Some(_) => meta
            .mime
            .parse::<mime::Mime>()
            .unwrap_or(mime::APPLICATION_OCTET_STREAM)
            .to_string(),
        None => meta.mime.clone(),
    }
}

impl Mirror {
    /// Uploads the original unless an object of its size is there already
    /// (a pass retried after the upload, or a restart); checks the size in
    /// the bucket afterwards. Returns its size in bytes.
    pub(super) async fn put_original(&self, meta: &RecordingMeta) -> Result<u64, PassError> {
        let files = match meta.import {
            Some(_) => vec![self.store.original_path(&meta.id)],
            None => {
                let total = meta.total.unwrap_or(0);
                (0..total)
                    .map(|seq| self.store.chunk_path(&meta.id, seq))
                    .collect()
            }
        };
        let mut bytes = 0;
        for file in &files {
            bytes += tokio::fs::metadata(file).await?.len();
        }
        let path = object_store::path::Path::from(self.key(&meta.id, ORIGINAL_FILE));
        if self
            .objects
            .head(&path)
            .await
            .is_ok_and(|o| o.size == bytes)
        {
            return Ok(bytes);
        }
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type(meta).into());
        attributes.insert(
            Attribute::CacheControl,
            CachePolicy::Revalidate.as_str().into(),
        );
        let mut writer = BufWriter::with_capacity(self.objects.clone(), path.clone(), PIECE_BYTES)
            .with_attributes(attributes);
        if let Err(error) = write_files(&mut writer, &files).await {
            let _ = writer.abort().await;
            return Err(error);
        }
        writer.shutdown().await?;
        let stored = self.objects.head(&path).await?.size;
        if stored != bytes {
            return Err(
                format!("the original is {stored} bytes in the bucket, {bytes} here").into(),
            );
        }
        self.metrics.store_uploads.inc();
        self.metrics.store_upload_bytes.inc_by(bytes);
        Ok(bytes)
    }
}

async fn write_files(
    writer: &mut BufWriter,
    files: &[std::path::PathBuf],
) -> Result<(), PassError> {
    for file in files {
        let mut file = tokio::fs::File::open(file).await?;
        loop {
            let mut piece = Vec::with_capacity(PIECE_BYTES);
            let read = (&mut file)
                .take(PIECE_BYTES as u64)
                .read_to_end(&mut piece)
                .await?;
            if read == 0 {
                break;
            }
            writer.put(Bytes::from(piece)).await?;
        }
    }
    Ok(())
}
