//! The task that owns one recording: its stored chunks, its declared total,
//! its ffmpeg and its published state. HTTP handlers send it [`Command`]s;
//! it answers and publishes a [`RecordingStatus`] on a watch channel, so
//! reading status never waits behind an upload.
//!
//! Commands are handled one at a time, which is what makes "same seq,
//! different bytes → 409" race-free without locks.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::media::timeline::Timeline;
use crate::publish::{HlsPublisher, PublishSettings};
use crate::store::{PutOutcome, RecordingMeta, State, Store};
use crate::transcode::args::{declared_bits_per_s, live_args, EncodeSettings};
use crate::transcode::poster::{make_poster, POSTER_FILE};
use crate::transcode::sidecar::{TranscodeEvent, Transcoder};

use super::reorder::ChunkSet;
use super::status::{ChunkReceipt, RecordingStatus};

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
}

pub struct LiveTask {
    meta: RecordingMeta,
    /// What has been published so far; a restarted ffmpeg resumes from it.
    timeline: Timeline,
    ffmpeg_starts: u32,
    chunks: ChunkSet,
    store: Store,
    config: Arc<Config>,
    transcoder: Option<Transcoder>,
    input_ended: bool,
    events_tx: mpsc::UnboundedSender<TranscodeEvent>,
    duration_ms: u64,
    segments: u64,
    poster: Poster,
    status: watch::Sender<RecordingStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poster {
    Missing,
    Making,
    Ready,
}

/// Starts the task of a recording; returns its command channel and status.
pub fn spawn(
    meta: RecordingMeta,
    stored_seqs: Vec<u64>,
    store: Store,
    config: Arc<Config>,
) -> (mpsc::Sender<Command>, watch::Receiver<RecordingStatus>) {
    let chunks = ChunkSet::from_stored(stored_seqs);
    let (duration_ms, segments) = (meta.duration_ms, meta.segments);
    let has_poster = store.hls_dir(&meta.id).join(POSTER_FILE).exists();
    let poster = if has_poster {
        Poster::Ready
    } else {
        Poster::Missing
    };
    let initial = RecordingStatus::new(&meta, &chunks, duration_ms, segments, has_poster);
    let (status, status_rx) = watch::channel(initial);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("recording", id = %meta.id);
    let task = LiveTask {
        meta,
        timeline: Timeline::default(),
        ffmpeg_starts: 0,
        chunks,
        store,
        config,
        transcoder: None,
        input_ended: false,
        events_tx,
        duration_ms,
        segments,
        poster,
        status,
    };
    tokio::spawn(task.run(cmd_rx, events_rx).instrument(span));
    (cmd_tx, status_rx)
}

impl LiveTask {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<TranscodeEvent>,
    ) {
        if let Err(e) = self.resume().await {
            self.fail(format!(
                "cannot resume after restart: {}",
                crate::error::chain(&e)
            ))
            .await;
        }
        let idle = std::time::Duration::from_secs(self.config.idle_timeout_s);
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        loop {
            let waiting_for_chunks = self.meta.state == State::Recording;
            tokio::select! {
                () = tokio::time::sleep_until(idle_deadline), if waiting_for_chunks => {
                    self.abandon().await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Put { seq, bytes, reply }) => {
                        idle_deadline = tokio::time::Instant::now() + idle;
                        let _ = reply.send(self.put(seq, bytes).await);
                    }
                    Some(Command::Finish { total, reply }) => {
                        let _ = reply.send(self.finish(total).await);
                    }
                    Some(Command::Delete { reply }) => {
                        let _ = reply.send(self.delete().await);
                        return;
                    }
                    None => break,
                },
                Some(event) = events.recv() => self.on_transcode_event(event).await,
            }
            self.publish_status();
        }
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
    }

    /// After a restart, an unfinished recording is packaged again from its
    /// stored chunks (the source of truth); what was already published is
    /// kept as it was and replayed, not rewritten (see `publish`).
    async fn resume(&mut self) -> std::io::Result<()> {
        if !matches!(self.meta.state, State::Recording | State::Processing) {
            return Ok(());
        }
        let dir = self.store.hls_dir(&self.meta.id);
        let saved = tokio::task::spawn_blocking(move || HlsPublisher::load_timeline(&dir))
            .await
            .map_err(std::io::Error::other)?;
        self.timeline = saved.unwrap_or_default();
        self.duration_ms = self.timeline.duration_ms();
        self.segments = self.timeline.segments.len() as u64;
        if self.chunks.received() > 0 {
            let contiguous = self.chunks.contiguous();
            tracing::info!(
                segments = self.segments,
                contiguous,
                "resuming from stored chunks"
            );
        }
        self.feed_new(0);
        if self.meta.total == Some(0) {
            self.fail("the recording has no chunks".into()).await;
        }
        self.publish_status();
        Ok(())
    }

    async fn put(&mut self, seq: u64, bytes: Bytes) -> Result<(PutOutcome, ChunkReceipt)> {
        if let Some(total) = self.meta.total {
            if seq >= total {
                return Err(Error::Conflict(format!(
                    "chunk {seq} is beyond the declared total of {total} chunks"
                )));
            }
        }
        let (store, id) = (self.store.clone(), self.meta.id.clone());
        let outcome = tokio::task::spawn_blocking(move || store.put_chunk(&id, seq, &bytes))
            .await
            .map_err(|e| Error::internal("chunk write task", e))?
            .map_err(|e| storage_error(seq, e))?;
        match outcome {
            PutOutcome::Conflict => {
                return Err(Error::Conflict(format!(
                    "chunk {seq} is already stored with different bytes"
                )));
            }
            PutOutcome::Stored => {
                let before = self.chunks.contiguous();
                if self.chunks.insert(seq) > 0 {
                    self.feed_new(before);
                }
                tracing::debug!(seq, contiguous = self.chunks.contiguous(), "chunk stored");
            }
            PutOutcome::Duplicate => tracing::debug!(seq, "duplicate chunk"),
        }
        Ok((outcome, ChunkReceipt::new(seq, &self.chunks)))
    }

    /// Hands chunks `from..contiguous` to ffmpeg, starting it on first use,
    /// and closes its input once every declared chunk is in.
    fn feed_new(&mut self, from: u64) {
        let contiguous = self.chunks.contiguous();
        if contiguous > from && self.transcoder.is_none() && self.meta.state != State::Failed {
            self.ffmpeg_starts += 1;
            match self.start_transcoder() {
                Ok(t) => self.transcoder = Some(t),
                Err(e) => {
                    self.meta.state = State::Failed;
                    self.meta.error = Some(format!(
                        "cannot start ffmpeg ({}): {e}",
                        self.config.ffmpeg.display()
                    ));
                    tracing::error!(error = %e, "cannot start ffmpeg");
                    return;
                }
            }
        }
        let Some(transcoder) = &self.transcoder else {
            return;
        };
        for seq in from..contiguous {
            transcoder.feed(self.store.chunk_path(&self.meta.id, seq));
        }
        let complete = self.meta.total.is_some_and(|t| self.chunks.is_complete(t));
        if complete && !self.input_ended {
            transcoder.end_input();
            self.input_ended = true;
        }
    }

    fn start_transcoder(&self) -> std::io::Result<Transcoder> {
        let settings = EncodeSettings::from(&*self.config);
        let publish = PublishSettings {
            dir: self.store.hls_dir(&self.meta.id),
            segment_target_ms: settings.segment_target_ms,
            declared_bits_per_s: declared_bits_per_s(&settings),
            // live_args forces keyframes on the segment grid.
            keyframe_grid_ms: Some(settings.segment_target_ms),
        };
        let publisher = HlsPublisher::resume(publish, self.timeline.clone());
        Transcoder::spawn(
            &self.config.ffmpeg,
            &live_args(&settings),
            publisher,
            self.events_tx.clone(),
            tracing::Span::current(),
        )
    }

    async fn finish(&mut self, total: u64) -> Result<RecordingStatus> {
        let end = self.chunks.end();
        if total < end {
            return Err(Error::Conflict(format!(
                "total {total} is smaller than stored chunk {} + 1",
                end - 1
            )));
        }
        if total > self.config.max_chunks {
            return Err(Error::BadRequest(format!(
                "total {total} is over the limit of {} chunks",
                self.config.max_chunks
            )));
        }
        match self.meta.total {
            Some(t) if t == total => return Ok(self.status.borrow().clone()),
            Some(t) => {
                return Err(Error::Conflict(format!(
                    "total was already declared as {t}"
                )))
            }
            None => {}
        }
        self.meta.total = Some(total);
        if self.meta.state == State::Recording {
            self.meta.state = State::Processing;
        }
        if total == 0 {
            self.fail("the recording has no chunks".into()).await;
        } else {
            self.save_meta().await?;
            self.feed_new(self.chunks.contiguous());
        }
        tracing::info!(total, "finish declared");
        self.publish_status();
        Ok(self.status.borrow().clone())
    }

    async fn on_transcode_event(&mut self, event: TranscodeEvent) {
        match event {
            TranscodeEvent::Published(timeline) => {
                self.duration_ms = timeline.duration_ms();
                self.segments = timeline.segments.len() as u64;
                let has_video = timeline.info.has_video;
                self.timeline = timeline;
                if self.poster == Poster::Missing && has_video {
                    self.start_poster();
                }
            }
            TranscodeEvent::Poster(outcome) => {
                self.poster = match outcome {
                    Ok(()) => Poster::Ready,
                    Err(error) => {
                        // A missing thumbnail is cosmetic: say so and go on.
                        tracing::warn!(%error, "no poster frame");
                        Poster::Missing
                    }
                };
            }
            TranscodeEvent::Exited(outcome) => {
                self.transcoder = None;
                match outcome {
                    Ok(timeline) if self.input_ended => {
                        self.duration_ms = timeline.duration_ms();
                        self.segments = timeline.segments.len() as u64;
                        self.meta.state = State::Ready;
                        self.meta.duration_ms = self.duration_ms;
                        self.meta.segments = self.segments;
                        tracing::info!(
                            duration_ms = self.duration_ms,
                            segments = self.segments,
                            "ready"
                        );
                        if let Err(e) = self.save_meta().await {
                            tracing::error!(error = %crate::error::chain(&e), "cannot save state");
                        }
                    }
                    Ok(_) => {
                        self.ffmpeg_failed("ffmpeg stopped before the upload was complete".into())
                            .await
                    }
                    Err(reason) => self.ffmpeg_failed(reason).await,
                }
            }
        }
    }

    /// The uploader went silent: finalize from the contiguous chunks. Chunks
    /// beyond a gap stay stored (and listed as such), never thrown away.
    async fn abandon(&mut self) {
        let total = self.chunks.contiguous();
        tracing::warn!(
            total,
            received = self.chunks.received(),
            "no chunk for the idle timeout; finalizing"
        );
        if total == 0 {
            self.fail("abandoned: no chunk arrived from the start of the recording".into())
                .await;
            return;
        }
        self.meta.total = Some(total);
        self.meta.incomplete = true;
        self.meta.state = State::Processing;
        if let Err(e) = self.save_meta().await {
            tracing::error!(error = %crate::error::chain(&e), "cannot save state");
        }
        self.feed_new(total);
    }

    /// ffmpeg died or gave up: run it again over the stored chunks (what was
    /// published is replayed, not repeated), up to `--ffmpeg-attempts`.
    async fn ffmpeg_failed(&mut self, reason: String) {
        if self.meta.state == State::Failed {
            return;
        }
        let attempts = self.config.ffmpeg_attempts;
        if self.ffmpeg_starts >= attempts {
            let plural = if attempts == 1 { "" } else { "s" };
            self.fail(format!("{reason} ({attempts} attempt{plural})"))
                .await;
            return;
        }
        tracing::warn!(%reason, starts = self.ffmpeg_starts, "ffmpeg failed; restarting it");
        self.input_ended = false;
        self.feed_new(0);
    }

    /// Makes the library's poster frame off the task, from the first segment.
    fn start_poster(&mut self) {
        self.poster = Poster::Making;
        let (ffmpeg, dir) = (
            self.config.ffmpeg.clone(),
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

    async fn fail(&mut self, reason: String) {
        tracing::warn!(%reason, "recording failed");
        self.meta.state = State::Failed;
        self.meta.error = Some(reason);
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
        if let Err(e) = self.save_meta().await {
            tracing::error!(error = %crate::error::chain(&e), "cannot save state");
        }
    }

    async fn delete(&mut self) -> Result<()> {
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
        let (store, id) = (self.store.clone(), self.meta.id.clone());
        tokio::task::spawn_blocking(move || store.delete(&id))
            .await
            .map_err(|e| Error::internal("delete task", e))??;
        tracing::info!("deleted");
        Ok(())
    }

    async fn save_meta(&self) -> Result<()> {
        let (store, meta) = (self.store.clone(), self.meta.clone());
        tokio::task::spawn_blocking(move || store.save_meta(&meta))
            .await
            .map_err(|e| Error::internal("metadata write task", e))??;
        Ok(())
    }

    fn publish_status(&self) {
        let poster = self.poster == Poster::Ready;
        let status = RecordingStatus::new(
            &self.meta,
            &self.chunks,
            self.duration_ms,
            self.segments,
            poster,
        );
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

/// A chunk that could not be stored is not acknowledged: the client keeps
/// it and retries (5xx). A full disk or quota says so with 507.
fn storage_error(seq: u64, err: std::io::Error) -> Error {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    tracing::error!(seq, error = %err, "cannot store chunk");
    let message =
        format!("chunk {seq} could not be stored ({err}); it was not acknowledged, retry later");
    match err.kind() {
        StorageFull | QuotaExceeded | FileTooLarge => Error::InsufficientStorage(message),
        _ => Error::Unavailable(message),
    }
}
