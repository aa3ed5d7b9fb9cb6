//! What every recording's task shares, whether its media comes from live
//! chunks ([`super::live`]) or an imported file ([`super::import`]): the
//! persisted metadata, the published media so far, the poster frame, and the
//! status everyone else reads from a watch channel.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::edge::{EdgeChanges, LiveEdge};
use crate::poster::make_poster;
use crate::settings::Settings;
use crate::transcode::args::declared_bits_per_s;
use crate::transcode::sidecar::TranscodeEvent;
use base::metrics::Metrics;
use base::{Error, Result};
use media::aes::ContentKey;
use media::dash::{render_mpd, MpdSettings};
use media::hls::{render_multivariant, PlaylistSettings};
use media::layout::{MPD_FILE, POSTER_FILE};
use media::probe::StreamAction;
use media::timeline::{Progress, Rendition};
use store::catalog::Catalog;
use store::mirror::Mirror;
use store::{PutOutcome, RecordingMeta, State, Store};

use super::reorder::ChunkSet;
use super::status::{ChunkReceipt, RecordingStatus};

/// What a recording's task is asked to do, one command at a time.
pub enum Command {
    Put {
        seq: u64,
        bytes: Bytes,
        reply: oneshot::Sender<Result<(PutOutcome, ChunkReceipt)>>,
    },
    Finish {
        total: u64,
        reply: oneshot::Sender<Result<RecordingStatus>>,
    },
    Delete {
        reply: oneshot::Sender<Result<()>>,
    },
    /// The server is stopping: stop ffmpeg, keep every file as it is (a
    /// restart continues from there), then end the task.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// What the rest of the server holds of a recording's task.
pub struct TaskHandle {
    pub cmds: mpsc::Sender<Command>,
    pub status: watch::Receiver<RecordingStatus>,
    /// Playlists, parts and newest segments in memory, so live viewers
    /// never wait on the disk, and blocking reloads wait on it.
    pub edge: Arc<LiveEdge>,
}

/// What every task of one library shares: where its files and its
/// metadata go, the settings, the counters, the bucket's mirror.
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub catalog: Catalog,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub mirror: Option<Arc<Mirror>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poster {
    Missing,
    Making,
    Ready,
}

pub struct TaskCore {
    pub meta: RecordingMeta,
    /// Encrypted recordings: the content key, from the catalog.
    key: Option<ContentKey>,
    pub store: Store,
    catalog: Catalog,
    mirror: Option<Arc<Mirror>>,
    pub settings: Arc<Settings>,
    /// Where ffmpeg, poster and progress events for this recording go.
    pub events_tx: mpsc::UnboundedSender<TranscodeEvent>,
    duration_ms: u64,
    segments: u64,
    /// Share of an import done, 0..1 (`None` for live recordings).
    pub progress: Option<f64>,
    poster: Poster,
    /// A DASH manifest is published.
    dash: bool,
    /// Imports: what their plan does with the video (live recordings
    /// report their saved plan's).
    pub video: Option<StreamAction>,
    status: watch::Sender<RecordingStatus>,
    pub edge: Arc<LiveEdge>,
    /// The server's counters (`GET /metrics`).
    pub metrics: Metrics,
}

impl TaskCore {
    /// The core of a task, the handle for everyone else (given `cmds`),
    /// and the receiving end of its event channel.
    pub fn new(
        meta: RecordingMeta,
        key: Option<ContentKey>,
        chunks: &ChunkSet,
        shared: &Shared,
        cmds: mpsc::Sender<Command>,
    ) -> (Self, TaskHandle, mpsc::UnboundedReceiver<TranscodeEvent>) {
        let store = &shared.store;
        let has_poster = store.hls_dir(&meta.id).join(POSTER_FILE).exists();
        let has_dash = store.hls_dir(&meta.id).join(MPD_FILE).exists();
        let progress = meta
            .import
            .as_ref()
            .map(|_| if meta.state == State::Ready { 1.0 } else { 0.0 });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let initial =
            RecordingStatus::new(&meta, chunks, meta.duration_ms, meta.segments, has_poster)
                .with_progress(progress)
                .with_dash(has_dash);
        let (status, status_rx) = watch::channel(initial);
        let edge = Arc::new(LiveEdge::default());
        let core = Self {
            duration_ms: meta.duration_ms,
            segments: meta.segments,
            meta,
            key,
            store: shared.store.clone(),
            catalog: shared.catalog.clone(),
            mirror: shared.mirror.clone(),
            settings: shared.settings.clone(),
            events_tx,
            progress,
            dash: has_dash,
            video: None,
            poster: if has_poster {
                Poster::Ready
            } else {
                Poster::Missing
            },
            status,
            edge: edge.clone(),
            metrics: shared.metrics.clone(),
        };
        let handle = TaskHandle {
            cmds,
            status: status_rx,
            edge,
        };
        (core, handle, events_rx)
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    pub fn state(&self) -> State {
        self.meta.state
    }

    pub fn status(&self) -> RecordingStatus {
        self.status.borrow().clone()
    }

    /// Media published so far; starts the poster once there is video.
    /// (The publisher itself keeps the edge's playlists up to date.)
    pub fn on_published(&mut self, progress: &Progress) {
        // Encrypted media has no DASH: see docs/architecture.md, decision 11.
        self.dash = progress.separate && progress.segments > 0 && !self.meta.encrypt;
        self.duration_ms = progress.duration_ms;
        self.segments = progress.segments;
        // A poster of an encrypted recording would be one of its frames in
        // the clear beside the media: it has none.
        if self.poster == Poster::Missing && progress.has_video && !self.meta.encrypt {
            self.start_poster();
        }
    }

    /// Puts a saved timeline's live playlists on the edge, while no
    /// publisher runs: before the first chunk (so the playlist URL answers
    /// at once), and when a restarted server resumes a recording.
    pub fn resume_edge(&self, rendition: &Rendition) {
        // Nothing published yet: one empty live track, so the media
        // playlist answers (and hints part 0) from the start.
        let empty = Rendition {
            separate: true,
            tracks: vec![Default::default()],
            available_from_ms: None,
        };
        let rendition = if rendition.tracks.is_empty() {
            &empty
        } else {
            rendition
        };
        let settings = PlaylistSettings {
            segment_target_ms: self.settings.encode.segment_target_ms,
            part_target_ms: self.settings.encode.fragment_ms,
            key: self.content_key().ok().flatten(),
        };
        let declared = declared_bits_per_s(&self.settings.encode);
        let multivariant = (rendition.primary().info.timescale > 0)
            .then(|| render_multivariant(rendition, declared));
        let mpd = (!self.meta.encrypt)
            .then(|| {
                render_mpd(
                    rendition,
                    &MpdSettings {
                        segment_target_ms: self.settings.encode.segment_target_ms,
                        availability_start_ms: rendition.available_from_ms.unwrap_or(0),
                        publish_ms: base::clock::unix_ms(),
                        declared_bits_per_s: declared,
                        // As the publisher will: encoded video is on the
                        // keyframe grid (checked against the segments).
                        grid_part_ms: (self.meta.live_plan.and_then(|p| p.video)
                            == Some(StreamAction::Transcode))
                        .then_some(self.settings.encode.fragment_ms),
                    },
                )
            })
            .flatten();
        let changes = EdgeChanges { multivariant, mpd };
        self.edge.publish(rendition, &settings, changes);
    }

    /// The content key of an encrypted recording (`None` for a clear one);
    /// an error when an encrypted recording's key is missing or unreadable:
    /// its media must then not be published at all.
    pub fn content_key(&self) -> std::io::Result<Option<media::aes::ContentKey>> {
        if !self.meta.encrypt {
            return Ok(None);
        }
        self.key.map(Some).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the recording's encryption key is missing",
            )
        })
    }

    /// A poster frame is being made (its job writes into the hls folder).
    pub fn poster_pending(&self) -> bool {
        self.poster == Poster::Making
    }

    pub fn on_poster(&mut self, outcome: std::result::Result<(), String>) {
        self.poster = match outcome {
            Ok(()) => Poster::Ready,
            Err(error) => {
                // A missing thumbnail is cosmetic: say so and go on.
                tracing::warn!(%error, "no poster frame");
                Poster::Missing
            }
        };
    }

    /// All media is published: the recording is `ready`.
    pub async fn mark_ready(&mut self, timeline: &Rendition) {
        self.on_published(&timeline.progress());
        self.meta.state = State::Ready;
        self.meta.duration_ms = self.duration_ms;
        self.meta.segments = self.segments;
        if self.progress.is_some() {
            self.progress = Some(1.0);
        }
        tracing::info!(
            duration_ms = self.duration_ms,
            segments = self.segments,
            "ready"
        );
        self.save_or_log().await;
    }

    /// Removes whatever media was published (an import that failed half way
    /// must not leave a playlist that never ends); the original stays.
    pub async fn unpublish(&mut self) {
        let dir = self.store.hls_dir(&self.meta.id);
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::create_dir_all(&dir),
        })
        .await;
        if let Ok(Err(e)) | Err(e) = removed.map_err(std::io::Error::other) {
            tracing::error!(error = %e, "cannot remove the half-published media");
        }
        self.edge.clear();
        self.dash = false;
        self.duration_ms = 0;
        self.segments = 0;
        self.poster = Poster::Missing;
    }

    /// Ends the recording as `failed` with a reason for its status.
    pub async fn fail(&mut self, reason: String) {
        tracing::warn!(%reason, "recording failed");
        self.meta.state = State::Failed;
        self.meta.error = Some(reason);
        self.save_or_log().await;
    }

    /// Saves the metadata to the catalog (committed before it returns),
    /// and has the bucket's mirror look at the recording again (a state
    /// change, such as ready, changes what goes there).
    pub async fn save_meta(&self) -> Result<()> {
        self.catalog.save_recording(&self.meta).await?;
        if let Some(mirror) = &self.mirror {
            mirror.mark(&self.meta.id);
        }
        Ok(())
    }

    /// Saves state a later restart needs; a failure is logged, since the
    /// media already published stays valid either way.
    pub async fn save_or_log(&self) {
        if let Err(e) = self.save_meta().await {
            tracing::error!(error = %base::error::chain(&e), "cannot save state");
        }
    }

    pub async fn delete_files(&self) -> Result<()> {
        let (store, id) = (self.store.clone(), self.meta.id.clone());
        tokio::task::spawn_blocking(move || store.delete(&id))
            .await
            .map_err(|e| Error::internal("delete task", e))??;
        tracing::info!("deleted");
        Ok(())
    }

    /// Makes the library's poster frame off the task, from the first segment.
    fn start_poster(&mut self) {
        self.poster = Poster::Making;
        let (ffmpeg, dir) = (
            self.settings.ffmpeg.clone(),
            self.store.hls_dir(&self.meta.id),
        );
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let outcome = tokio::task::spawn_blocking(move || make_poster(&ffmpeg, &dir))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let _ = events.send(TranscodeEvent::Poster(outcome));
        });
    }

    pub fn publish_status(&self, chunks: &ChunkSet) {
        let poster = self.poster == Poster::Ready;
        let status =
            RecordingStatus::new(&self.meta, chunks, self.duration_ms, self.segments, poster)
                .with_progress(self.progress)
                .with_dash(self.dash)
                .with_video(self.video);
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}
