//! The task that owns one recording: its stored chunks, its declared total,
//! its ffmpeg and its published state. HTTP handlers send it [`Command`]s;
//! it answers and publishes a [`RecordingStatus`] on a watch channel, so
//! reading status never waits behind an upload.
//!
//! Commands are handled one at a time, which is what makes "same seq,
//! different bytes → 409" race-free without locks.

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::publish::{HlsPublisher, PublishSettings};
use crate::transcode::args::{declared_bits_per_s, live_args};
use crate::transcode::probe::probe_prefix;
use crate::transcode::sidecar::{TranscodeEvent, Transcoder};
use base::metrics::{ChunkOutcome, LagQueue};
use base::{Error, Result};
use media::aes::ContentKey;
use media::live_plan::{self, LivePlan, PROBE_MAX_BYTES};
use media::probe::StreamAction;
use media::timeline::Rendition;
use store::{PutOutcome, RecordingMeta, State};

use media::container::{self as format, Container};

use super::reorder::ChunkSet;
use super::status::{ChunkReceipt, RecordingStatus};
use super::task::{Command, Shared, TaskCore, TaskHandle};

/// Enough of a recording's first bytes to tell its container, and to see
/// a fragmented MP4's `moov` start (`format::sniff`).
const HEAD_BYTES: usize = 4096;

pub struct LiveTask {
    core: TaskCore,
    /// What has been published so far; a restarted ffmpeg resumes from it.
    timeline: Rendition,
    ffmpeg_starts: u32,
    chunks: ChunkSet,
    /// Sum of the stored chunks' sizes, against `--max-recording-bytes`.
    stored_bytes: u64,
    transcoder: Option<Transcoder>,
    input_ended: bool,
    /// What chunk 0 is, once it is stored.
    container: Option<Container>,
    /// The first chunks were last probed when this many were contiguous
    /// (and whether that was all of them): probe again only on news.
    probed: Option<(u64, bool)>,
    /// Chunks acknowledged whose media is not listed yet (publish lag).
    lag: LagQueue,
}

/// Starts the task of a recording; returns its command channel and status.
pub fn spawn(
    meta: RecordingMeta,
    key: Option<ContentKey>,
    stored_seqs: Vec<u64>,
    shared: &Shared,
) -> TaskHandle {
    let chunks = ChunkSet::from_stored(stored_seqs);
    let span = tracing::info_span!("recording", id = %meta.id);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let fresh = meta.state == State::Recording && chunks.received() == 0;
    let (core, handle, events_rx) = TaskCore::new(meta, key, &chunks, shared, cmd_tx);
    if fresh {
        // Before the creator even has the id: the playlist URL answers
        // (empty, live, hinting part 0) from the first request on.
        core.resume_edge(&Rendition::default());
    }
    let task = LiveTask {
        core,
        timeline: Rendition::default(),
        ffmpeg_starts: 0,
        chunks,
        stored_bytes: 0,
        transcoder: None,
        input_ended: false,
        container: None,
        probed: None,
        lag: LagQueue::default(),
    };
    tokio::spawn(task.run(cmd_rx, events_rx).instrument(span));
    handle
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
                base::error::chain(&e)
            ))
            .await;
        }
        self.plan_if_needed().await;
        let idle = std::time::Duration::from_secs(self.core.settings.idle_timeout_s);
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let mut listings = self.core.edge.subscribe();
        loop {
            let waiting_for_chunks = self.core.state() == State::Recording;
            tokio::select! {
                () = tokio::time::sleep_until(idle_deadline), if waiting_for_chunks => {
                    self.abandon().await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(Command::Put { seq, bytes, reply }) => {
                        idle_deadline = tokio::time::Instant::now() + idle;
                        let len = bytes.len() as u64;
                        let answer = self.put(seq, bytes).await;
                        self.core.metrics.chunk(chunk_outcome(&answer), len);
                        let _ = reply.send(answer);
                    }
                    Some(Command::Finish { total, reply }) => {
                        let _ = reply.send(self.finish(total).await);
                    }
                    Some(Command::Delete { reply }) => {
                        let _ = reply.send(self.delete().await);
                        return;
                    }
                    Some(Command::Shutdown { reply }) => {
                        if let Some(t) = self.transcoder.take() {
                            t.stop(&mut events).await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => break,
                },
                Some(event) = events.recv() => self.on_transcode_event(event).await,
                Ok(()) = listings.changed() => {
                    for lag_s in self.lag.listed(std::time::Instant::now()) {
                        self.core.metrics.publish_lag.observe(lag_s);
                    }
                }
            }
            self.plan_if_needed().await;
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
        if !matches!(self.core.state(), State::Recording | State::Processing) {
            return Ok(());
        }
        let (store, id) = (self.core.store.clone(), self.core.meta.id.clone());
        self.stored_bytes = tokio::task::spawn_blocking(move || store.chunk_bytes(&id))
            .await
            .map_err(std::io::Error::other)??;
        let owed = (self.core.meta.total).is_some_and(|t| !self.chunks.is_complete(t));
        if owed && self.core.state() == State::Processing {
            // Declared finished with chunks missing (before that kept it
            // `recording`): wait for them, under the idle timeout.
            self.core.meta.state = State::Recording;
        }
        let dir = self.core.store.hls_dir(self.core.id());
        let saved = tokio::task::spawn_blocking(move || HlsPublisher::load_rendition(&dir))
            .await
            .map_err(std::io::Error::other)?;
        self.timeline = saved.unwrap_or_default();
        if self.chunks.contains(0) {
            self.container = self.head_container().await.ok().flatten();
        }
        if self.core.meta.live_plan.is_none() && !self.timeline.primary().segments.is_empty() {
            // Published before plans existed: WebM, transcoded; go on so.
            let container = self.container.unwrap_or(Container::Webm);
            self.core.meta.live_plan = Some(LivePlan::transcode_all(container));
        }
        self.core.on_published(&self.timeline.progress());
        self.core.resume_edge(&self.timeline);
        if self.chunks.received() > 0 {
            let contiguous = self.chunks.contiguous();
            tracing::info!(
                segments = self.timeline.primary().segments.len(),
                contiguous,
                "resuming from stored chunks"
            );
        }
        self.feed_new(0);
        if self.core.meta.total == Some(0) {
            self.fail("the recording has no chunks".into()).await;
        }
        self.publish_status();
        Ok(())
    }

    async fn put(&mut self, seq: u64, bytes: Bytes) -> Result<(PutOutcome, ChunkReceipt)> {
        if let Some(total) = self.core.meta.total {
            if seq >= total {
                return Err(Error::Conflict(format!(
                    "chunk {seq} is beyond the declared total of {total} chunks"
                )));
            }
        }
        let limit = self.core.settings.max_recording_bytes;
        let len = bytes.len() as u64;
        if !self.chunks.contains(seq) && self.stored_bytes + len > limit {
            return Err(Error::TooLarge(format!(
                "chunk {seq} would take the recording over its limit of {limit} bytes \
                 ({} stored); finish it and start a new one",
                self.stored_bytes
            )));
        }
        let first = (seq == 0 && !self.chunks.contains(0))
            .then(|| format::check_first_chunk(&self.core.meta.mime, &bytes))
            .transpose()
            .map_err(|reason| {
                let head: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
                tracing::info!(%reason, len = bytes.len(), %head, "chunk 0 refused");
                Error::Unsupported(reason)
            })?;
        let (store, id) = (self.core.store.clone(), self.core.meta.id.clone());
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
                self.stored_bytes += len;
                self.lag.acknowledged(std::time::Instant::now());
                let before = self.chunks.contiguous();
                let grew = self.chunks.insert(seq) > 0;
                match first.flatten() {
                    Some(container) => self.container_known(container).await,
                    None if grew && self.container.is_none() => self.learn_container().await,
                    None => {}
                }
                if grew {
                    self.uploaded_all().await;
                    self.feed_new(before);
                }
                tracing::debug!(seq, contiguous = self.chunks.contiguous(), "chunk stored");
            }
            PutOutcome::Duplicate => tracing::debug!(seq, "duplicate chunk"),
        }
        Ok((
            outcome,
            ChunkReceipt::new(seq, &self.chunks, self.core.meta.total),
        ))
    }

    /// The last chunk owed after `finish` arrived: the upload is over.
    async fn uploaded_all(&mut self) {
        let complete = (self.core.meta.total).is_some_and(|t| self.chunks.is_complete(t));
        if complete && self.core.state() == State::Recording {
            self.core.meta.state = State::Processing;
            self.core.save_or_log().await;
        }
    }

    /// Hands chunks `from..contiguous` to ffmpeg, starting it on first use,
    /// and closes its input once every declared chunk is in.
    fn feed_new(&mut self, from: u64) {
        let contiguous = self.chunks.contiguous();
        let Some(plan) = self.core.meta.live_plan else {
            // `plan_if_needed` starts ffmpeg once the first chunks tell.
            return;
        };
        if contiguous > from && self.transcoder.is_none() && self.core.state() != State::Failed {
            self.ffmpeg_starts += 1;
            self.core.metrics.ffmpeg_starts.inc();
            if self.ffmpeg_starts > 1 {
                self.core.metrics.ffmpeg_restarts.inc();
            }
            match self.start_transcoder(&plan) {
                Ok(t) => self.transcoder = Some(t),
                Err(e) => {
                    self.core.metrics.ffmpeg_failures.inc();
                    self.core.meta.state = State::Failed;
                    self.core.meta.error = Some(format!(
                        "cannot start ffmpeg ({}): {e}",
                        self.core.settings.ffmpeg.display()
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
            transcoder.feed(self.core.store.chunk_path(self.core.id(), seq));
        }
        self.lag.fed();
        let complete = self
            .core
            .meta
            .total
            .is_some_and(|t| self.chunks.is_complete(t));
        if complete && !self.input_ended {
            transcoder.end_input();
            self.input_ended = true;
        }
    }

    fn start_transcoder(&self, plan: &LivePlan) -> std::io::Result<Transcoder> {
        let settings = self.core.settings.encode.clone();
        let publish = PublishSettings {
            dir: self.core.store.hls_dir(self.core.id()),
            segment_target_ms: settings.segment_target_ms,
            part_target_ms: settings.fragment_ms,
            declared_bits_per_s: declared_bits_per_s(&settings),
            // Encoded video has keyframes forced on the segment grid;
            // copied video has the browser's, and segments follow those.
            keyframe_grid_ms: (plan.video == Some(StreamAction::Transcode))
                .then_some(settings.segment_target_ms),
            // A segment every couple of seconds: list each at once.
            playlist_interval_ms: 0,
            key: self.core.content_key()?,
        };
        let publisher = HlsPublisher::resume(publish, self.timeline.clone())
            .with_edge(self.core.edge.clone())
            .with_metrics(self.core.metrics.clone());
        Transcoder::spawn(
            &self.core.settings.ffmpeg,
            &live_args(&settings, plan),
            Box::new(publisher),
            self.core.events_tx.clone(),
            tracing::Span::current(),
        )
    }

    /// The container is known: remember it, and take its media type when
    /// the creator declared none. Published before the chunk's answer, as
    /// the original's type changes.
    async fn container_known(&mut self, container: Container) {
        self.container = Some(container);
        if format::declared_container(&self.core.meta.mime) == Ok(None) {
            self.core.meta.mime = container.mime().to_string();
            self.core.save_or_log().await;
        }
        self.publish_status();
    }

    /// Chunk 0 was too short to tell (a browser's first blob can be one
    /// byte): reads the contiguous head again now that it has grown. Bytes
    /// that turn out to be no recording fail it with the reason.
    async fn learn_container(&mut self) {
        match self.head_container().await {
            Ok(Some(container)) => self.container_known(container).await,
            Ok(None) => {}
            Err(reason) => {
                tracing::info!(%reason, "the recording's first bytes are refused");
                self.fail(reason).await;
            }
        }
    }

    /// What the first stored bytes are, read across the contiguous chunks.
    async fn head_container(&self) -> Result<Option<Container>, String> {
        let (store, id) = (self.core.store.clone(), self.core.meta.id.clone());
        let contiguous = self.chunks.contiguous();
        let head = tokio::task::spawn_blocking(move || {
            let mut head = Vec::new();
            for seq in 0..contiguous {
                if head.len() >= HEAD_BYTES {
                    break;
                }
                head.extend(std::fs::read(store.chunk_path(&id, seq))?);
            }
            std::io::Result::Ok(head)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the first chunks: {e}"))?;
        format::check_first_chunk(&self.core.meta.mime, &head)
    }

    /// Before ffmpeg first starts: probes the first chunks until they say
    /// what to copy and what to encode ([`live_plan`]), saves that plan
    /// (a restart must cut the same segments), then starts ffmpeg. Runs
    /// in the task, between commands: a probe takes ~0.1 s, and only
    /// while the first second or two of a recording arrive.
    async fn plan_if_needed(&mut self) {
        if self.core.meta.live_plan.is_some() || self.core.state() == State::Failed {
            return;
        }
        let contiguous = self.chunks.contiguous();
        let complete = self
            .core
            .meta
            .total
            .is_some_and(|t| self.chunks.is_complete(t));
        if contiguous == 0 || self.probed == Some((contiguous, complete)) {
            return;
        }
        self.probed = Some((contiguous, complete));
        let container = match self.container {
            Some(c) => c,
            // Too few bytes to tell yet: more chunks will.
            None if !complete => return,
            None => Container::Webm,
        };
        let (paths, all_in) = self.prefix_paths(contiguous);
        let ffprobe = self.core.settings.ffprobe.clone();
        let probed = tokio::task::spawn_blocking(move || probe_prefix(&ffprobe, container, &paths))
            .await
            .map_err(|e| e.to_string())
            .and_then(|p| p.map_err(|e| e.to_string()));
        let whole = complete && all_in;
        let target_ms = self.core.settings.encode.segment_target_ms;
        let plan = match &probed {
            Ok(prefix) => live_plan::decide(container, prefix, whole, target_ms),
            Err(error) => {
                tracing::debug!(%error, "the first chunks tell nothing yet");
                None
            }
        };
        // Nothing more will tell: encode, and let ffmpeg judge the input.
        let plan = plan.or_else(|| (whole || !all_in).then(|| LivePlan::transcode_all(container)));
        let Some(plan) = plan else {
            return;
        };
        tracing::info!(?plan, chunks = contiguous, "live plan decided");
        self.core.meta.live_plan = Some(plan);
        if let Err(e) = self.core.save_meta().await {
            tracing::error!(error = %base::error::chain(&e), "cannot save the live plan");
            self.core.meta.live_plan = None;
            self.probed = None;
            return;
        }
        self.feed_new(0);
        self.publish_status();
    }

    /// Chunks `0..contiguous` up to [`PROBE_MAX_BYTES`]; and whether that
    /// is all of them.
    fn prefix_paths(&self, contiguous: u64) -> (Vec<std::path::PathBuf>, bool) {
        let mut paths = Vec::new();
        let mut bytes = 0;
        for seq in 0..contiguous {
            let path = self.core.store.chunk_path(self.core.id(), seq);
            bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
            paths.push(path);
            if bytes > PROBE_MAX_BYTES {
                // Over the budget: this probe is the last one.
                return (paths, false);
            }
        }
        (paths, true)
    }

    async fn finish(&mut self, total: u64) -> Result<RecordingStatus> {
        let end = self.chunks.end();
        if total < end {
            return Err(Error::Conflict(format!(
                "total {total} is smaller than stored chunk {} + 1",
                end - 1
            )));
        }
        if total > self.core.settings.max_chunks {
            return Err(Error::Invalid(format!(
                "total {total} is over the limit of {} chunks",
                self.core.settings.max_chunks
            )));
        }
        match self.core.meta.total {
            Some(t) if t == total => return Ok(self.core.status()),
            Some(t) => {
                return Err(Error::Conflict(format!(
                    "total was already declared as {t}"
                )))
            }
            None => {}
        }
        self.core.meta.total = Some(total);
        // Chunks still owed keep the recording `recording` (and its idle
        // timeout running): the uploader may yet send them.
        if self.core.state() == State::Recording && self.chunks.is_complete(total) {
            self.core.meta.state = State::Processing;
        }
        if total == 0 {
            self.fail("the recording has no chunks".into()).await;
        } else {
            self.core.save_meta().await?;
            self.feed_new(self.chunks.contiguous());
        }
        tracing::info!(total, "finish declared");
        self.publish_status();
        Ok(self.core.status())
    }

    async fn on_transcode_event(&mut self, event: TranscodeEvent) {
        match event {
            TranscodeEvent::Published(progress) => self.core.on_published(&progress),
            TranscodeEvent::Poster(outcome) => self.core.on_poster(outcome),
            // Live input has no known end to measure progress against.
            TranscodeEvent::Progress { .. } => {}
            TranscodeEvent::Exited(outcome) => {
                self.transcoder = None;
                match outcome {
                    Ok(timeline) if self.input_ended => self.core.mark_ready(&timeline).await,
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
        self.core.meta.total = Some(total);
        self.core.meta.incomplete = true;
        self.core.meta.state = State::Processing;
        self.core.save_or_log().await;
        self.feed_new(total);
    }

    /// ffmpeg died or gave up: run it again over the stored chunks (what was
    /// published is replayed, not repeated), up to `--ffmpeg-attempts`.
    async fn ffmpeg_failed(&mut self, reason: String) {
        if self.core.state() == State::Failed {
            return;
        }
        self.core.metrics.ffmpeg_failures.inc();
        let attempts = self.core.settings.ffmpeg_attempts;
        if self.ffmpeg_starts >= attempts {
            let plural = if attempts == 1 { "" } else { "s" };
            self.fail(format!("{reason} ({attempts} attempt{plural})"))
                .await;
            return;
        }
        tracing::warn!(%reason, starts = self.ffmpeg_starts, "ffmpeg failed; restarting it");
        // What the failed run published, saved as it went: the next run
        // continues it.
        let dir = self.core.store.hls_dir(self.core.id());
        if let Ok(Some(saved)) =
            tokio::task::spawn_blocking(move || HlsPublisher::load_rendition(&dir)).await
        {
            self.timeline = saved;
        }
        self.input_ended = false;
        self.feed_new(0);
    }

    async fn fail(&mut self, reason: String) {
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
        self.core.fail(reason).await;
    }

    async fn delete(&mut self) -> Result<()> {
        if let Some(t) = self.transcoder.take() {
            t.kill();
        }
        self.core.delete_files().await
    }

    fn publish_status(&self) {
        self.core.publish_status(&self.chunks);
    }
}

/// A chunk that could not be stored is not acknowledged: the client keeps
/// it and retries (5xx). A full disk or quota says so with 507.
/// How a chunk upload ended, for the chunks counter.
fn chunk_outcome(answer: &Result<(PutOutcome, ChunkReceipt)>) -> ChunkOutcome {
    match answer {
        Ok((PutOutcome::Stored, _)) => ChunkOutcome::Stored,
        Ok((PutOutcome::Duplicate, _)) => ChunkOutcome::Duplicate,
        Ok((PutOutcome::Conflict, _)) | Err(_) => ChunkOutcome::Refused,
    }
}

fn storage_error(seq: u64, err: std::io::Error) -> Error {
    tracing::error!(seq, error = %err, "cannot store chunk");
    Error::storage(
        format_args!("chunk {seq} could not be stored; it was not acknowledged, retry later"),
        &err,
    )
}
