//! The ffmpeg sidecar of one recording: a child process fed on stdin, read
//! on stdout, logged from stderr.
//!
//! ffmpeg-sidecar's event iterator blocks, and so do the pipes, so each runs
//! on its own OS thread, never on the async runtime:
//!
//! ```text
//! feeder thread     chunk files ──▶ ffmpeg stdin
//! packager thread   ffmpeg stdout ──▶ Packager ──▶ TranscodeEvent::Published
//! supervisor thread ffmpeg stderr events ──▶ tracing; exit ──▶ TranscodeEvent::Exited
//! ```
//!
//! ffmpeg runs in its own process group so that [`Transcoder::kill`] stops it
//! and anything it spawned.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};
use tokio::sync::mpsc::UnboundedSender;
use tracing::Span;

use media::timeline::{Progress, Rendition};

/// How long ffmpeg gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// ffmpeg stdout is read in pieces of up to this size.
const READ_BYTES: usize = 1 << 20;
/// Capacity asked for ffmpeg's stdout pipe (Linux allows up to 1 MiB to
/// anyone): with the default 64 KiB, a copying import switches between
/// ffmpeg and the packager every 64 KiB, which costs more than the copy.
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Where ffmpeg's output goes, read by the packager thread as it comes:
/// the publisher ([`crate::publish::HlsPublisher`]) in the server; a test
/// double where a test injects faults.
pub trait Packager: Send + 'static {
    /// Takes the next bytes of ffmpeg's stdout; true when a new segment
    /// was listed.
    fn push(&mut self, bytes: &[u8]) -> Result<bool, String>;
    /// What is published so far.
    fn progress(&self) -> Progress;
    /// ffmpeg ended cleanly: publishes the rest and ends the playlists.
    fn finish(self: Box<Self>) -> Result<Rendition, String>;
}

#[derive(Debug)]
pub enum TranscodeEvent {
    /// A segment was published; how far the rendition is.
    Published(Progress),
    /// ffmpeg exited and its output was packaged (Ok), or something failed.
    Exited(Result<Rendition, String>),
    /// The poster frame job ended (see [`crate::poster`]).
    Poster(Result<(), String>),
    /// ffmpeg's progress line: output written up to this media time.
    Progress { out_time_ms: u64 },
}

enum Feed {
    Chunk(PathBuf),
    End,
}

/// Handle to a running ffmpeg. Dropping it closes ffmpeg's input.
pub struct Transcoder {
    feed: mpsc::Sender<Feed>,
    pid: u32,
}

impl Transcoder {
    /// Starts `ffmpeg args…`, packaging its output with `packager` and
    /// reporting to `events`. `span` is the recording's tracing span.
    pub fn spawn(
        ffmpeg: &Path,
        args: &[String],
        packager: Box<dyn Packager>,
        events: UnboundedSender<TranscodeEvent>,
        span: Span,
    ) -> std::io::Result<Self> {
        let mut command = FfmpegCommand::new_with_path(ffmpeg);
        command.args(args);
        command.as_inner_mut().process_group(0);
        tracing::debug!(parent: &span, ?args, "starting ffmpeg");
        let mut child = command.spawn()?;
        let pid = child.as_inner().id();
        let stdin = child.take_stdin().expect("stdin is piped");
        let stdout = child.take_stdout().expect("stdout is piped");
        enlarge_pipe(&stdout);
        let (feed, feed_rx) = mpsc::channel();

        let feeder_span = span.clone();
        thread::Builder::new()
            .name(format!("ffmpeg-feed-{pid}"))
            .spawn(move || feeder_span.in_scope(|| feed_stdin(stdin, feed_rx)))?;

        let packager_span = span.clone();
        let packager_events = events.clone();
        let packager = thread::Builder::new()
            .name(format!("ffmpeg-out-{pid}"))
            .spawn(move || {
                packager_span.in_scope(|| package_stdout(stdout, packager, packager_events))
            })?;

        thread::Builder::new()
            .name(format!("ffmpeg-log-{pid}"))
            .spawn(move || {
                span.in_scope(|| {
                    let last_error = log_events(&mut child, &events);
                    let status = child.wait();
                    let packaged = packager
                        .join()
                        .unwrap_or_else(|_| Err("packager panicked".into()));
                    // Only a clean exit ends the rendition (last segment,
                    // ENDLIST): after a crash or a stop, what was published
                    // stays as it was, to be continued. A packager that gave
                    // up closed ffmpeg's stdout, so ffmpeg's own complaint
                    // (a broken pipe) is not the reason: the packager's is.
                    let outcome = match (status, packaged) {
                        (_, Err(reason)) => Err(reason),
                        (Ok(s), Ok(p)) if s.success() => p.finish(),
                        (Ok(s), Ok(_)) => Err(exit_message(&s.to_string(), last_error)),
                        (Err(e), Ok(_)) => Err(format!("waiting for ffmpeg: {e}")),
                    };
                    tracing::info!(ok = outcome.is_ok(), "ffmpeg finished");
                    let _ = events.send(TranscodeEvent::Exited(outcome));
                })
            })?;
        Ok(Self { feed, pid })
    }

    /// Queues a stored chunk for ffmpeg's input (never blocks).
    pub fn feed(&self, chunk: PathBuf) {
        let _ = self.feed.send(Feed::Chunk(chunk));
    }

    /// Closes ffmpeg's input once the queued chunks are written.
    pub fn end_input(&self) {
        let _ = self.feed.send(Feed::End);
    }

    /// Kills ffmpeg's whole process group.
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain syscall on a pid we spawned; a negative pid names its group.
        unsafe {
            libc::kill(-(self.pid as i32), signal);
        }
    }

    /// Stops ffmpeg for a server shutdown: SIGTERM to its process group,
    /// SIGKILL after [`STOP_GRACE`], and returns once it was reaped (its
    /// `Exited` event, taken from `events`, is the proof). Its output is
    /// not finished: the recording continues after a restart.
    pub async fn stop(self, events: &mut tokio::sync::mpsc::UnboundedReceiver<TranscodeEvent>) {
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, exited(events))
            .await
            .is_err()
        {
            tracing::warn!("ffmpeg ignored SIGTERM; killing it");
            self.kill();
            let _ = tokio::time::timeout(STOP_GRACE, exited(events)).await;
        }
    }
}

/// Waits for the `Exited` event, dropping the others.
async fn exited(events: &mut tokio::sync::mpsc::UnboundedReceiver<TranscodeEvent>) {
    while let Some(event) = events.recv().await {
        if matches!(event, TranscodeEvent::Exited(_)) {
            return;
        }
    }
}

fn enlarge_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a pipe fd we own; failure only leaves the default.
    let set = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
    if set < 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "pipe keeps its default size");
    }
}

fn feed_stdin(mut stdin: std::process::ChildStdin, feed: mpsc::Receiver<Feed>) {
    while let Ok(Feed::Chunk(path)) = feed.recv() {
        let written = std::fs::read(&path).and_then(|bytes| stdin.write_all(&bytes));
        if let Err(error) = written {
            // ffmpeg exited (broken pipe) or the chunk vanished; the
            // supervisor reports ffmpeg's own reason.
            tracing::debug!(%error, chunk = %path.display(), "stopped feeding ffmpeg");
            return;
        }
    }
    // Feed::End, or the handle was dropped: dropping stdin closes it.
}

/// Publishes ffmpeg's output as it comes; at its end, hands the packager
/// back unfinished (see the supervisor for why).
fn package_stdout(
    mut stdout: std::process::ChildStdout,
    mut packager: Box<dyn Packager>,
    events: UnboundedSender<TranscodeEvent>,
) -> Result<Box<dyn Packager>, String> {
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading ffmpeg output: {e}")),
        };
        match packager.push(&buf[..n]) {
            Ok(true) => {
                let _ = events.send(TranscodeEvent::Published(packager.progress()));
            }
            Ok(false) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(packager)
}

/// Logs ffmpeg's events until it closes stderr, forwarding its progress;
/// returns its last error line.
fn log_events(
    child: &mut ffmpeg_sidecar::child::FfmpegChild,
    sink: &UnboundedSender<TranscodeEvent>,
) -> Option<String> {
    let events = match child.iter() {
        Ok(events) => events,
        Err(e) => return Some(format!("cannot read ffmpeg's log: {e}")),
    };
    let mut last_error = None;
    for event in events {
        match event {
            FfmpegEvent::Log(LogLevel::Error | LogLevel::Fatal, line) => {
                tracing::warn!(target: "ffmpeg", "{line}");
                last_error = Some(line);
            }
            FfmpegEvent::Log(LogLevel::Warning, line) => {
                tracing::debug!(target: "ffmpeg", "{line}")
            }
            FfmpegEvent::Log(_, line) => tracing::trace!(target: "ffmpeg", "{line}"),
            FfmpegEvent::Progress(p) => {
                tracing::trace!(target: "ffmpeg", time = %p.time, fps = p.fps, "progress");
                if let Some(out_time_ms) = clock_to_ms(&p.time) {
                    let _ = sink.send(TranscodeEvent::Progress { out_time_ms });
                }
            }
            FfmpegEvent::Error(e) => tracing::debug!(target: "ffmpeg", "{e}"),
            _ => {}
        }
    }
    last_error
}

/// ffmpeg's `time=00:03:29.04` clock as milliseconds; `None` for `N/A`
/// and the negative times ffmpeg prints before the first packet.
pub fn clock_to_ms(clock: &str) -> Option<u64> {
    let mut fields = clock.trim().split(':');
    let (h, m, s) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some()
        || [h, m]
            .iter()
            .any(|f| !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let (whole_s, frac) = s.split_once('.').unwrap_or((s, ""));
    if !whole_s
        .bytes()
        .chain(frac.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_ms: u64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let seconds = h.parse::<u64>().ok()? * 3600
        + m.parse::<u64>().ok()? * 60
        + whole_s.parse::<u64>().ok()?;
    Some(seconds * 1000 + frac_ms)
}

/// A readable reason from ffmpeg's exit status and its last error line
/// (without the `[matroska,webm @ 0x…]` context prefix).
pub fn exit_message(status: &str, last_error: Option<String>) -> String {
    match last_error {
        Some(line) => {
            let line = line.trim();
            let reason = match line
                .strip_prefix('[')
                .and_then(|rest| rest.split_once("] "))
            {
                Some((_, reason)) => reason,
                None => line,
            };
            format!("ffmpeg could not process the recording: {reason}")
        }
        None => format!("ffmpeg failed ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packager double: counts ffmpeg's output, and fails once it has
    /// taken `fail_after` bytes (a fault the publisher could meet: a full
    /// disk, output that is not fMP4).
    struct Counting {
        taken: usize,
        fail_after: usize,
    }

    impl Packager for Counting {
        fn push(&mut self, bytes: &[u8]) -> Result<bool, String> {
            self.taken += bytes.len();
            if self.taken > self.fail_after {
                return Err(format!("refused after {} bytes", self.taken));
            }
            Ok(false)
        }

        fn progress(&self) -> Progress {
            Progress::default()
        }

        fn finish(self: Box<Self>) -> Result<Rendition, String> {
            assert!(self.taken > 0, "ffmpeg wrote nothing");
            Ok(Rendition::default())
        }
    }

    /// Ten seconds of a test picture, fragmented MP4 on stdout.
    fn test_source_args() -> Vec<String> {
        "-f lavfi -i testsrc2=size=320x180:rate=25 -t 10 -c:v libx264 -preset ultrafast \
         -f mp4 -movflags empty_moov+frag_keyframe -frag_duration 200000 pipe:1"
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    async fn exit_of(fail_after: usize) -> Result<Rendition, String> {
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let packager = Box::new(Counting {
            taken: 0,
            fail_after,
        });
        let transcoder = Transcoder::spawn(
            Path::new("ffmpeg"),
            &test_source_args(),
            packager,
            events,
            Span::none(),
        )
        .unwrap();
        transcoder.end_input();
        loop {
            match received.recv().await.expect("an exit event") {
                TranscodeEvent::Exited(outcome) => return outcome,
                _ => continue,
            }
        }
    }

    #[tokio::test]
    async fn ffmpeg_output_reaches_the_packager_and_a_clean_exit_finishes_it() {
        assert!(exit_of(usize::MAX).await.is_ok());
    }

    #[tokio::test]
    async fn a_packager_that_fails_stops_ffmpeg_and_the_exit_says_so() {
        let outcome = exit_of(20_000).await;
        let reason = outcome.expect_err("the packager refused");
        assert!(
            reason.starts_with("refused after"),
            "the packager's reason: {reason}"
        );
    }

    #[test]
    fn progress_clock_reads_as_milliseconds() {
        assert_eq!(clock_to_ms("00:03:29.04"), Some(209_040));
        assert_eq!(clock_to_ms("01:00:00.5"), Some(3_600_500));
        assert_eq!(clock_to_ms("00:00:07"), Some(7_000));
        for bad in ["N/A", "-00:00:00.02", "1:2", "", "00:00:0x.1"] {
            assert_eq!(clock_to_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn exit_message_keeps_ffmpegs_reason_without_context() {
        let msg = exit_message(
            "exit status: 1",
            Some("[matroska,webm @ 0x5581] EBML header parsing failed".into()),
        );
        assert_eq!(
            msg,
            "ffmpeg could not process the recording: EBML header parsing failed"
        );
        let msg = exit_message(
            "exit status: 1",
            Some("pipe:0: Invalid data found when processing input".into()),
        );
        assert_eq!(msg, "ffmpeg could not process the recording: pipe:0: Invalid data found when processing input");
        assert_eq!(exit_message("signal: 9", None), "ffmpeg failed (signal: 9)");
    }
}
