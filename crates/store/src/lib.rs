//! Where a recording's bytes and secrets are kept: the library's folders on
//! local disk, the content keys and the share-token secret, the staging
//! folder, the catalog of the library's metadata, and the copy of published
//! media in an S3-compatible bucket.
//!
//! # Layout
//! - [`recordings`]: `<data>/recordings/<id>/` — metadata, chunks (fsynced
//!   before they are acknowledged), the published media folder.
//! - [`catalog`]: metadata, comments, wrapped keys, the share secret — in
//!   SQLite (`<data>/segcast.db`) or PostgreSQL (`--database`).
//! - [`share`]: share tokens (HMAC).
//! - [`staging`]: files being made before they join the library.
//! - [`mirror`]: published media copied to the bucket (`--store`).
//!
//! May use: [`base`], [`media`] (file names, plans, keys), blocking file
//! I/O, and tokio with `object_store` for the bucket. Never HTTP handlers,
//! ffmpeg or the recording tasks: those are above.

pub mod catalog;
pub mod mirror;
pub mod recordings;
pub mod share;
pub mod staging;

pub use recordings::{ImportInfo, ImportOrigin, PutOutcome, RecordingMeta, State, Store};
