//! What the pipeline needs of the server's configuration: narrow structs
//! with plain fields, so this layer knows nothing of flags or environment
//! variables (segcast's `Config` converts to them, one `From` each).

use std::path::PathBuf;

use crate::transcode::args::EncodeSettings;

/// Settings of the recording and import tasks and the library.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The data directory: recordings, keys, the inbox, staging.
    pub data_dir: PathBuf,
    /// The ffmpeg binary (never downloaded).
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
    /// How ffmpeg encodes and how segments and parts are cut.
    pub encode: EncodeSettings,
    /// ffmpeg starts per recording before it is marked failed.
    pub ffmpeg_attempts: u32,
    /// Browser recordings being recorded or processed at once.
    pub max_live_recordings: usize,
    /// Bytes of chunks one recording may store.
    pub max_recording_bytes: u64,
    /// Highest seq + 1 a recording may declare.
    pub max_chunks: u64,
    /// New recordings and imports are refused (507) while the data
    /// directory's file system has less free than this.
    pub min_free_bytes: u64,
    /// A recording without chunks this long is finalized from what it has.
    pub idle_timeout_s: u64,
    /// Imports processed at once.
    pub import_jobs: u64,
    /// New recordings and imports are encrypted unless they say otherwise.
    pub encrypt_by_default: bool,
    /// An inbox file found by a scan is taken once unchanged this long.
    pub inbox_settle_ms: u64,
}
