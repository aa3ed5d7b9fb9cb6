//! The JSON shapes of the recordings API (docs/http-contract.md).

use serde::Serialize;

use base::access::Access;
use media::layout::{media_url, MPD_FILE, MULTIVARIANT_FILE, POSTER_FILE};
use media::probe::StreamAction;
use store::{RecordingMeta, State};

use super::reorder::{ChunkSet, MAX_MISSING_LISTED};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkStatus {
    pub received: u64,
    pub contiguous: u64,
    pub missing: Vec<u64>,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingStatus {
    pub id: String,
    pub title: String,
    pub state: State,
    /// `recording` (uploaded live in chunks) or `import` (a whole file).
    pub source: &'static str,
    /// Imports: share of the file processed, 0..1 (1 once ready).
    pub progress: Option<f64>,
    pub created_at: String,
    /// Media published so far, in seconds.
    pub duration_s: f64,
    pub chunks: ChunkStatus,
    pub segments: u64,
    /// The uploader went silent and the server finalized what it had;
    /// `chunks.missing` says what never arrived.
    pub incomplete: bool,
    pub hls: String,
    pub dash: Option<String>,
    pub watch: String,
    /// A JPEG of the first frame, once there is one.
    pub poster: Option<String>,
    pub error: Option<String>,
    /// `public` or `private` (a viewer token is needed).
    pub access: Access,
    /// HLS media is AES-128 encrypted (and there is no DASH).
    pub encrypted: bool,
    /// What became of the video: `copy` (the source's H.264 as it came,
    /// cut at its keyframes) or `transcode` (encoded here); `null` until
    /// decided (a live recording's first chunks) or without video.
    pub video: Option<StreamAction>,
    /// Media type of the original (declared, or read from chunk 0).
    #[serde(skip)]
    pub mime: String,
}

/// Answer to a chunk upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkReceipt {
    pub seq: u64,
    pub received: u64,
    pub contiguous: u64,
    pub missing: Vec<u64>,
}

impl ChunkReceipt {
    pub fn new(seq: u64, chunks: &ChunkSet, total: Option<u64>) -> Self {
        Self {
            seq,
            received: chunks.received(),
            contiguous: chunks.contiguous(),
            missing: chunks.missing(total, MAX_MISSING_LISTED),
        }
    }
}

pub fn hls_url(id: &str) -> String {
    media_url(id, MULTIVARIANT_FILE)
}

impl RecordingStatus {
    pub fn new(
        meta: &RecordingMeta,
        chunks: &ChunkSet,
        duration_ms: u64,
        segments: u64,
        poster: bool,
    ) -> Self {
        Self {
            id: meta.id.clone(),
            title: meta.title.clone(),
            state: meta.state,
            source: if meta.import.is_some() {
                "import"
            } else {
                "recording"
            },
            progress: None,
            created_at: meta.created_at.clone(),
            duration_s: duration_ms as f64 / 1000.0,
            chunks: ChunkStatus {
                received: chunks.received(),
                contiguous: chunks.contiguous(),
                missing: chunks.missing(meta.total, MAX_MISSING_LISTED),
                total: meta.total,
            },
            segments,
            incomplete: meta.incomplete,
            hls: hls_url(&meta.id),
            dash: None,
            watch: format!("/watch/{}", meta.id),
            poster: poster.then(|| media_url(&meta.id, POSTER_FILE)),
            error: meta.error.clone(),
            access: meta.access,
            encrypted: meta.encrypt,
            video: meta.live_plan.and_then(|p| p.video),
            mime: meta.mime.clone(),
        }
    }

    /// Says what became of the video (imports decide it per file).
    pub fn with_video(mut self, video: Option<StreamAction>) -> Self {
        self.video = video.or(self.video);
        self
    }

    /// Lists the DASH manifest (there is one only for media whose tracks
    /// are files of their own, once a segment exists).
    pub fn with_dash(mut self, dash: bool) -> Self {
        self.dash = dash.then(|| media_url(&self.id, MPD_FILE));
        self
    }

    /// The same status with `query` (`token=…`) added to each of its URLs,
    /// for a viewer who came with a share token.
    pub fn with_query(mut self, query: &str) -> Self {
        let add = |url: &mut String| {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(query);
        };
        add(&mut self.hls);
        add(&mut self.watch);
        self.dash.as_mut().map(add);
        self.poster.as_mut().map(add);
        self
    }

    pub fn with_progress(mut self, progress: Option<f64>) -> Self {
        // Three decimals: enough for a progress bar, and a status that
        // changes only when a watcher could see the difference.
        self.progress = progress.map(|p| (p.clamp(0.0, 1.0) * 1000.0).round() / 1000.0);
        self
    }
}
