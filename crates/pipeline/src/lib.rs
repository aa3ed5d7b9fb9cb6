//! The moving parts: everything that runs while a recording is made or a
//! file imported — ffmpeg sidecars, the packager, the live edge in memory,
//! one task per recording, the inbox, and viewers' comments.
//!
//! # Layout (each module uses only those above it)
//! - [`edge`]: a live recording's newest parts, segments and playlists in
//!   memory, and the watch blocking reloads wait on.
//! - [`transcode`]: ffmpeg's argv (pure), ffprobe, and the sidecar process
//!   that feeds a [`transcode::sidecar::Packager`].
//! - [`saved`]: the saved timeline and its journal, for a restart.
//! - [`publish`]: the packager: ffmpeg's fMP4 → files on disk and the edge.
//! - [`poster`]: a frame for the library, made from published media.
//! - [`ingest`]: recording and import tasks, chunk reordering, the library
//!   of tasks, the inbox folder.
//! - [`comments`]: viewers' comments — rules, durable log, rate, broadcast.
//! - [`settings`]: the narrow settings the recording tasks take.
//!
//! May use: [`base`], [`media`], [`store`], tokio, ffmpeg through
//! `ffmpeg-sidecar`. Never HTTP: handlers are above, and call in.

pub mod comments;
pub mod edge;
pub mod ingest;
pub mod poster;
pub mod publish;
pub mod saved;
pub mod settings;
pub mod transcode;

pub use comments::CommentSettings;
pub use ingest::library::{Library, Page, Protection, Recording};
pub use ingest::status::RecordingStatus;
pub use ingest::task::Shared;
pub use settings::Settings;
