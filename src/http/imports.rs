//! `POST /api/imports?title=…&name=…`: a whole media file as the request body
//! becomes a recording (docs/http-contract.md, "Import").
//!
//! The body is streamed to a file under `<data>/staging/` as it arrives,
//! never held in memory, and only a complete, fsynced file is handed to the
//! library; a request cut short or over `--max-import-bytes` leaves nothing
//! behind.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::error::Result;
use super::recordings::{
    body_error, body_idle, check_publish_key, declared_length, drain, Created,
};
use super::AppState;
use base::access::Access;
use base::Error;
use pipeline::ingest::import::{import_info, Placement};
use pipeline::Protection;
use store::ImportOrigin;

/// Per upload in progress: memory is bounded by this, not by the file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/imports", post(create))
}

#[derive(Debug, Deserialize)]
struct ImportQuery {
    title: Option<String>,
    /// The file's own name (its extension tells the original's type).
    name: Option<String>,
    /// `public` (default) or `private`.
    access: Option<String>,
    /// `true` or `false` (default: `--encrypt`).
    encrypt: Option<String>,
}

impl ImportQuery {
    /// Checked before the body is read: a bad value costs no upload.
    fn protection(&self) -> Result<Protection> {
        let access = match self.access.as_deref() {
            None | Some("public") => Access::Public,
            Some("private") => Access::Private,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "access must be \"public\" or \"private\", not {other:?}"
                ))
                .into())
            }
        };
        let encrypt = match self.encrypt.as_deref() {
            None => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(other) => {
                return Err(
                    Error::Invalid(format!("encrypt must be true or false, not {other:?}")).into(),
                )
            }
        };
        Ok(Protection { access, encrypt })
    }
}

async fn create(
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    check_publish_key(&state, &headers, "imports")?;
    let protection = query.protection()?;
    let config = &state.config;
    let limit = config.max_import_bytes;
    let too_large = || {
        Error::TooLarge(format!(
            "the file is over the import limit of {limit} bytes"
        ))
    };
    if declared_length(&headers).is_some_and(|len| len > limit) {
        // A client waiting for `100 Continue` sends nothing more; any
        // other is already sending, and gets a moment to be read.
        if !headers.contains_key(header::EXPECT) {
            drain(&mut body.into_data_stream()).await;
        }
        return Err(too_large().into());
    }
    let declared = declared_length(&headers).unwrap_or(0);
    if let Err(e) = state.library.check_free_space(declared).await {
        if !headers.contains_key(header::EXPECT) {
            drain(&mut body.into_data_stream()).await;
        }
        return Err(e.into());
    }
    let staging = store::staging::dir(&config.data_dir);
    tokio::fs::create_dir_all(&staging).await?;
    let upload = Upload::new(&staging);
    let bytes = upload.receive(body, limit, body_idle(&state)).await?;
    if bytes == 0 {
        return Err(Error::Invalid(
            "the request body is empty: send the file itself as the body".into(),
        )
        .into());
    }
    let name = file_name(query.name.as_deref(), &headers);
    let info = import_info(&name, bytes, ImportOrigin::Http);
    let created = state
        .library
        .create_import(
            query.title,
            info,
            upload.path.clone(),
            Placement::Move,
            protection,
        )
        .await?;
    Ok(Created::response(created))
}

/// The original's file name: the `name` parameter without directories, or
/// `upload.<ext>` from the body's Content-Type.
fn file_name(name: Option<&str>, headers: &HeaderMap) -> String {
    let given = name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "." && *n != "..");
    if let Some(name) = given {
        return name.chars().take(255).collect();
    }
    let ext = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| mime_guess::get_mime_extensions_str(ct)?.first().copied());
    match ext {
        Some(ext) => format!("upload.{ext}"),
        None => "upload".into(),
    }
}

/// A file being received; removed when dropped unless it was handed over
/// (renamed away), so an aborted request leaves nothing behind.
struct Upload {
    path: PathBuf,
}

impl Upload {
    fn new(staging: &Path) -> Self {
        Self {
            path: store::staging::new_upload(staging),
        }
    }

    /// Streams `body` into the file (at most `limit` bytes, none of it
    /// stalling for longer than `idle`) and fsyncs it; returns its length.
    async fn receive(&self, body: Body, limit: u64, idle: std::time::Duration) -> Result<u64> {
        let not_stored = |e: std::io::Error| Error::storage("the file could not be stored", &e);
        let file = tokio::fs::File::create(&self.path)
            .await
            .map_err(not_stored)?;
        // Each write to a tokio File is a trip to the blocking pool: gather
        // the body's small frames (often 4-64 KiB) into large writes.
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        // The server holds the body to `idle` (src/http/connection.rs).
        let mut stream = body.into_data_stream();
        let mut received: u64 = 0;
        while let Some(frame) = stream.next().await {
            let data = frame.map_err(|e| body_error(&e, idle))?;
            received += data.len() as u64;
            if received > limit {
                drain(&mut stream).await;
                return Err(Error::TooLarge(format!(
                    "the file is over the import limit of {limit} bytes"
                ))
                .into());
            }
            file.write_all(&data).await.map_err(not_stored)?;
        }
        file.flush().await.map_err(not_stored)?;
        file.get_ref().sync_all().await.map_err(not_stored)?;
        Ok(received)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Already renamed into the library after a success: NotFound.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_names_lose_directories_and_fall_back_to_the_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(file_name(Some("../../etc/passwd"), &headers), "passwd");
        assert_eq!(file_name(Some("C:\\films\\a.mov"), &headers), "a.mov");
        assert_eq!(file_name(Some(".."), &headers), "upload");
        headers.insert(header::CONTENT_TYPE, "video/mp4".parse().unwrap());
        assert!(file_name(None, &headers).starts_with("upload."));
        assert_eq!(
            pipeline::ingest::import::guess_mime(&file_name(None, &headers)),
            "video/mp4"
        );
    }
}
