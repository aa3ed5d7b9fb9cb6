//! The task that owns one imported file: every door (HTTP upload, CLI,
//! inbox folder) stores the file as the recording's `original`, then this
//! task probes it, runs ffmpeg over it (copying H.264/AAC, transcoding the
//! rest, see [`crate::transcode::probe`]) and publishes through the same
//! [`HlsPublisher`] as live recordings, so imports play exactly like them.
//!
//! Imports wait for one of `--import-jobs` slots, so a folder of a hundred
//! files queues instead of starting a hundred ffmpegs. A server restarted
//! mid-import runs it again and replays what was published.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::publish::{HlsPublisher, PublishSettings};
use crate::transcode::args::{declared_bits_per_s, import_args};
use crate::transcode::probe;
use crate::transcode::sidecar::{TranscodeEvent, Transcoder};
use base::Error;
use media::aes::ContentKey;
use media::probe::{plan, ImportPlan, StreamAction};
use media::timeline::Rendition;
use store::{ImportInfo, ImportOrigin, RecordingMeta, State, Store};

use super::reorder::ChunkSet;
use super::task::{Command, Shared, TaskCore, TaskHandle};

/// Shortfall from the declared duration that marks an import incomplete
/// (at least this, or 5 %): containers round, and encoders pad audio.
const MIN_SHORTFALL_MS: u64 = 1000;

/// While an import runs faster than real time, its playlist is rewritten
/// at most this often (see [`PublishSettings::playlist_interval_ms`]).
const IMPORT_PLAYLIST_INTERVAL_MS: u64 = 500;

/// How a new import's file becomes the recording's `original`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Renamed into place: the file is ours (an HTTP upload, an inbox file).
    Move,
    /// Copied: the file stays the user's (CLI).
    Copy,
}

/// Stores `source` as the original of the import `meta` describes and
/// creates its directory. Blocking.
///
/// Durability: a copy is fsynced (it is new data); a moved file keeps the
/// durability its writer gave it (an HTTP upload is fsynced as received),
/// and both directories are fsynced so that after a crash the file is in
/// exactly one place and is not imported twice.
pub fn create_files(
    store: &Store,
    meta: &RecordingMeta,
    source: &Path,
    placement: Placement,
) -> io::Result<()> {
    store.create(&meta.id)?;
    let original = store.original_path(&meta.id);
    let placed = match placement {
        Placement::Move => std::fs::rename(source, &original).and_then(|()| {
            let synced = sync_parent(&original).and_then(|()| sync_parent(source));
            if synced.is_err() {
                // Never lose the caller's file: put it back.
                let _ = std::fs::rename(&original, source);
            }
            synced
        }),
        Placement::Copy => std::fs::copy(source, &original)
            .and_then(|_| std::fs::File::open(&original)?.sync_all())
            .and_then(|()| sync_parent(&original)),
    };
    if let Err(e) = placed {
        let _ = store.delete(&meta.id);
        return Err(e);
    }
    Ok(())
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The metadata of a new import of `file_name` (`bytes` long).
pub fn import_info(file_name: &str, bytes: u64, origin: ImportOrigin) -> ImportInfo {
    ImportInfo {
        file_name: file_name.to_string(),
        bytes,
        origin,
    }
}

/// A media type for the original, from its name (what browsers and VLC
/// go by when it is downloaded again).
pub fn guess_mime(file_name: &str) -> String {
    mime_guess::from_path(file_name)
        .first()
        .filter(|m| matches!(m.type_(), mime::VIDEO | mime::AUDIO))
        .map_or_else(|| "application/octet-stream".into(), |m| m.to_string())
}

pub struct ImportTask {
    core: TaskCore,
    transcoder: Option<Transcoder>,
    /// The probed duration, for progress.
    source_duration_ms: Option<u64>,
    jobs: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    /// All media is published, waiting for the poster job: `ready` means
    /// the recording's folder is complete (the CLI moves it right after).
    finished: Option<Rendition>,
    /// Failed while the poster job runs: the failure is recorded once it
    /// ended, so unpublishing does not race its file.
    failing: Option<String>,
}

/// Starts the task of an imported recording.
pub fn spawn(
    meta: RecordingMeta,
    key: Option<ContentKey>,
    shared: &Shared,
    jobs: Arc<Semaphore>,
) -> TaskHandle {
    let span = tracing::info_span!("import", id = %meta.id);
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (core, handle, events_rx) = TaskCore::new(meta, key, &ChunkSet::default(), shared, cmd_tx);
    let task = ImportTask {
        core,
        transcoder: None,
        source_duration_ms: None,
        jobs,
        permit: None,
        finished: None,
        failing: None,
    };
    tokio::spawn(task.run(cmd_rx, events_rx).instrument(span));
    handle
}

impl ImportTask {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<TranscodeEvent>,
    ) {
        if self.core.state() == State::Processing {
            // Queue for a job slot, still answering (a delete, say).
            let queued = base::metrics::Metrics::hold(&self.core.metrics.import_queue);
            let acquire = self.jobs.clone().acquire_owned();
            tokio::pin!(acquire);
            loop {
                tokio::select! {
                    permit = &mut acquire => {
                        self.permit = permit.ok();
                        drop(queued);
                        break;
                    }
                    cmd = cmds.recv() => if !self.on_command(cmd, &mut events).await {
                        return;
                    },
                }
            }
            self.start().await;
            self.publish_status();
        }
        loop {
            tokio::select! {
                cmd = cmds.recv() => if !self.on_command(cmd, &mut events).await {
                    break;
                },
                Some(event) = events.recv() => self.on_event(event).await,
            }
            self.publish_status();
        }
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
    }

    /// Answers a command; false when the task should end.
    async fn on_command(
        &mut self,
        cmd: Option<Command>,
        events: &mut mpsc::UnboundedReceiver<TranscodeEvent>,
    ) -> bool {
        let not_live = || {
            Error::Conflict(format!(
                "recording '{}' was imported from a file; it takes no chunks",
                self.core.id()
            ))
        };
        match cmd {
            Some(Command::Put { reply, .. }) => {
                let _ = reply.send(Err(not_live()));
                true
            }
            Some(Command::Finish { reply, .. }) => {
                let _ = reply.send(Err(not_live()));
                true
            }
            Some(Command::Delete { reply }) => {
                if let Some(t) = self.transcoder.take() {
                    t.kill();
                }
                let _ = reply.send(self.core.delete_files().await);
                false
            }
            Some(Command::Shutdown { reply }) => {
                // Still `processing` on disk: a restart runs it again.
                if let Some(t) = self.transcoder.take() {
                    t.stop(events).await;
                }
                let _ = reply.send(());
                false
            }
            None => false,
        }
    }

    /// Probes the original and starts ffmpeg on it.
    async fn start(&mut self) {
        let (ffprobe, original) = (
            self.core.settings.ffprobe.clone(),
            self.core.store.original_path(self.core.id()),
        );
        let probed = tokio::task::spawn_blocking(move || probe::probe(&ffprobe, &original))
            .await
            .map_err(|e| e.to_string())
            .and_then(|p| p.map_err(|e| e.to_string()));
        let probe = match probed {
            Ok(probe) => probe,
            Err(reason) => return self.fail(reason).await,
        };
        let plan = plan(&probe);
        tracing::info!(
            format = %probe.format_name,
            video = ?probe.video.as_ref().map(|v| &v.codec),
            audio = ?probe.audio.as_ref().map(|a| &a.codec),
            ?plan,
            "probed"
        );
        self.source_duration_ms = plan.duration_ms;
        self.core.video = plan.video;
        let dir = self.core.store.hls_dir(self.core.id());
        let saved = tokio::task::spawn_blocking(move || HlsPublisher::load_rendition(&dir))
            .await
            .ok()
            .flatten();
        self.core.metrics.ffmpeg_starts.inc();
        match self.start_transcoder(&plan, saved.unwrap_or_default()) {
            Ok(t) => {
                // Everything ffmpeg reads comes from the file.
                t.end_input();
                self.transcoder = Some(t);
            }
            Err(e) => {
                self.core.metrics.ffmpeg_failures.inc();
                let ffmpeg = self.core.settings.ffmpeg.display().to_string();
                self.fail(format!("cannot start ffmpeg ({ffmpeg}): {e}"))
                    .await
            }
        }
    }

    fn start_transcoder(&self, plan: &ImportPlan, published: Rendition) -> io::Result<Transcoder> {
        let settings = self.core.settings.encode.clone();
        let publish = PublishSettings {
            dir: self.core.store.hls_dir(self.core.id()),
            segment_target_ms: settings.segment_target_ms,
            part_target_ms: settings.fragment_ms,
            declared_bits_per_s: declared_bits_per_s(&settings),
            // Encoded video has keyframes on the grid; copied video has
            // them where the source has, and segments follow those.
            keyframe_grid_ms: (plan.video == Some(StreamAction::Transcode))
                .then_some(settings.segment_target_ms),
            playlist_interval_ms: IMPORT_PLAYLIST_INTERVAL_MS,
            key: self.core.content_key()?,
        };
        let input: PathBuf = self.core.store.original_path(self.core.id());
        Transcoder::spawn(
            &self.core.settings.ffmpeg,
            &import_args(&input, plan, &settings),
            Box::new(
                HlsPublisher::resume(publish, published)
                    .with_edge(self.core.edge.clone())
                    .with_metrics(self.core.metrics.clone()),
            ),
            self.core.events_tx.clone(),
            tracing::Span::current(),
        )
    }

    async fn on_event(&mut self, event: TranscodeEvent) {
        match event {
            TranscodeEvent::Published(progress) => self.core.on_published(&progress),
            TranscodeEvent::Poster(outcome) => {
                self.core.on_poster(outcome);
                if let Some(reason) = self.failing.take() {
                    self.core.unpublish().await;
                    self.core.fail(reason).await;
                } else if let Some(timeline) = self.finished.take() {
                    self.core.mark_ready(&timeline).await;
                }
            }
            TranscodeEvent::Progress { out_time_ms } => {
                if let Some(total_ms) = self.source_duration_ms.filter(|&d| d > 0) {
                    // Never 1 before the last segment is published.
                    let done = out_time_ms as f64 / total_ms as f64;
                    self.core.progress = Some(done.min(0.999));
                }
            }
            TranscodeEvent::Exited(outcome) => {
                self.transcoder = None;
                self.permit = None;
                match outcome {
                    Ok(timeline) if timeline.primary().segments.is_empty() => {
                        self.core.metrics.ffmpeg_failures.inc();
                        self.fail("ffmpeg produced no media from this file".into())
                            .await
                    }
                    Ok(timeline) => {
                        self.check_complete(timeline.primary().duration_ms());
                        self.core.on_published(&timeline.progress());
                        if self.core.poster_pending() {
                            self.finished = Some(timeline);
                        } else {
                            self.core.mark_ready(&timeline).await;
                        }
                    }
                    Err(reason) => {
                        self.core.metrics.ffmpeg_failures.inc();
                        self.fail(reason).await
                    }
                }
            }
        }
    }

    /// A file that ends well before the duration its container declares
    /// (a truncated download, say) is kept, as far as it plays, and marked
    /// `incomplete`.
    fn check_complete(&mut self, published_ms: u64) {
        let Some(declared_ms) = self.source_duration_ms else {
            return;
        };
        let tolerance_ms = (declared_ms / 20).max(MIN_SHORTFALL_MS);
        if published_ms + tolerance_ms < declared_ms {
            tracing::warn!(published_ms, declared_ms, "the file ends early");
            self.core.meta.incomplete = true;
        }
    }

    /// A failed import publishes nothing: whatever was published is
    /// removed, so no playlist is left that would never end.
    async fn fail(&mut self, reason: String) {
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
        self.permit = None;
        if self.core.poster_pending() {
            self.failing = Some(reason);
            return;
        }
        self.core.unpublish().await;
        self.core.fail(reason).await;
    }

    fn publish_status(&self) {
        self.core.publish_status(&ChunkSet::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_keep_a_media_type_from_their_name() {
        assert_eq!(guess_mime("holiday.MP4"), "video/mp4");
        assert_eq!(guess_mime("clip.webm"), "video/webm");
        assert_eq!(guess_mime("clip.mov"), "video/quicktime");
        assert_eq!(guess_mime("song.mp3"), "audio/mpeg");
        assert_eq!(guess_mime("notes.txt"), "application/octet-stream");
        assert_eq!(guess_mime("no-extension"), "application/octet-stream");
    }
}
