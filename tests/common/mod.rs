//! Shared helpers for the integration tests: a real segcast on a loopback
//! port with its own data directory, an HTTP client, and test media made by
//! the system ffmpeg.
#![allow(dead_code)] // each test binary uses a different subset

pub mod db;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// The HTTP API of a segcast at `base`, for whichever way it was started.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

/// An in-process segcast; derefs to its [`Api`].
pub struct Server {
    pub api: Api,
    pub data: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(configure: impl FnOnce(&mut segcast::Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        Self::start_in(data, configure).await
    }

    /// Starts a server on an existing data directory (e.g. after a stop).
    pub async fn start_in(
        data: tempfile::TempDir,
        configure: impl FnOnce(&mut segcast::Config),
    ) -> Self {
        Self::start_listening(data, |config, _| configure(config)).await
    }

    /// Starts a server told its own address (`http://127.0.0.1:<port>`)
    /// before it starts: a cluster's node needs it as its `--node-url`.
    pub async fn start_listening(
        data: tempfile::TempDir,
        configure: impl FnOnce(&mut segcast::Config, &str),
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("segcast=debug,ffmpeg=warn")
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = segcast::Config::with_data_dir(data.path());
        configure(&mut config, &base);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(segcast::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            api: Api::new(base),
            data,
            stop: Some(stop),
            task,
        }
    }

    /// Stops the server gracefully and hands back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
        self.data
    }
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a recording; returns (id, upload token).
    pub async fn create(&self, title: &str) -> (String, String) {
        self.create_with(serde_json::json!({ "title": title }), None)
            .await
    }

    /// Creates a recording from a JSON body, with the publish key if given;
    /// returns (id, upload token).
    pub async fn create_with(&self, body: Value, publish_key: Option<&str>) -> (String, String) {
        let mut request = self.client.post(self.url("/api/recordings")).json(&body);
        if let Some(key) = publish_key {
            request = request.bearer_auth(key);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        (
            body["id"].as_str().unwrap().into(),
            body["upload_token"].as_str().unwrap().into(),
        )
    }

    /// PUTs a chunk with its sha-256 Content-Digest.
    pub async fn put(&self, id: &str, token: &str, seq: u64, bytes: Vec<u8>) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/api/recordings/{id}/chunks/{seq}")))
            .bearer_auth(token)
            .header("content-digest", content_digest(&bytes))
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// PUTs a new chunk and asserts the documented answer, 201 Created with
    /// a receipt naming its seq (docs/api.md); returns the receipt.
    pub async fn put_ok(&self, id: &str, token: &str, seq: u64, bytes: Vec<u8>) -> Value {
        let resp = self.put(id, token, seq, bytes).await;
        assert_eq!(resp.status(), 201, "PUT chunk {seq} of {id}");
        let receipt: Value = resp.json().await.unwrap();
        assert_eq!(receipt["seq"], seq, "{receipt}");
        receipt
    }

    /// PUTs every chunk in order from seq 0, each answered 201.
    pub async fn put_all_ok(&self, id: &str, token: &str, chunks: &[Vec<u8>]) {
        for (seq, chunk) in chunks.iter().enumerate() {
            self.put_ok(id, token, seq as u64, chunk.clone()).await;
        }
    }

    /// PUTs a chunk whose body is streamed: no Content-Length, no digest,
    /// as a client sending chunked transfer encoding does.
    pub async fn put_streamed<S>(
        &self,
        id: &str,
        token: &str,
        seq: u64,
        body: S,
    ) -> reqwest::Response
    where
        S: futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + Sync + 'static,
    {
        self.client
            .put(self.url(&format!("/api/recordings/{id}/chunks/{seq}")))
            .bearer_auth(token)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap()
    }

    pub async fn finish(&self, id: &str, token: &str, total: u64) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/recordings/{id}/finish")))
            .bearer_auth(token)
            .json(&serde_json::json!({ "chunks": total }))
            .send()
            .await
            .unwrap()
    }

    /// Finishes a recording of `total` chunks and asserts the documented
    /// answer, 202 Accepted.
    pub async fn finish_ok(&self, id: &str, token: &str, total: u64) {
        let resp = self.finish(id, token, total).await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 202, "finish {id} with {total} chunks: {body}");
    }

    pub async fn status(&self, id: &str) -> Value {
        let resp = self
            .client
            .get(self.url(&format!("/api/recordings/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// `DELETE /api/recordings/{id}` with `Authorization: Bearer token`.
    pub async fn delete(&self, id: &str, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/api/recordings/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The status as read with `Authorization: Bearer token` (a private
    /// recording's owner or a share-link holder).
    pub async fn status_as(&self, id: &str, token: &str) -> Value {
        let resp = self
            .client
            .get(self.url(&format!("/api/recordings/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn text(&self, path: &str) -> String {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.unwrap()
    }

    /// Polls the recording's status until `done` holds; panics with the
    /// last status after `limit`. Polling an observable state is the
    /// synchronisation here: no fixed sleeps.
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(id).await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; last status: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

pub fn content_digest(bytes: &[u8]) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
    )
}

/// VP9 at libvpx's fastest: test and benchmark sources are made in seconds.
pub const VP9_FAST: [&str; 6] = [
    "-c:v",
    "libvpx-vp9",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
];

/// Makes `out`: `secs` of ffmpeg's `testsrc2` picture at `size` and 30 fps
/// with a 440 Hz tone, encoded with `codec_args` (codecs and format).
pub fn make_test_media(out: &Path, size: &str, secs: u32, codec_args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(codec_args)
        .arg(out)
        .status()
        .expect("ffmpeg must be installed (scripts/test installs it)");
    assert!(status.success(), "ffmpeg could not make {}", out.display());
}

/// A WebM like MediaRecorder's: VP8 + Opus, live (no duration, no cues).
pub fn make_webm(dir: &Path, secs: u32, size: &str) -> PathBuf {
    let path = dir.join(format!("source-{secs}s-{size}.webm"));
    let vp8 = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"];
    let rate = ["-b:v", "400k", "-g", "30"];
    let opus = ["-c:a", "libopus", "-b:a", "64k", "-f", "webm", "-live", "1"];
    make_test_media(&path, size, secs, &[&vp8[..], &rate, &opus].concat());
    path
}

/// A live Matroska like Chromium's `video/webm;codecs=h264` recording:
/// H.264 with a keyframe every 25 frames (0.83 s), so segments follow the
/// keyframes and their durations differ (the server copies the video).
pub fn make_h264_mkv(dir: &Path, secs: u32, size: &str) -> PathBuf {
    let path = dir.join(format!("source-{secs}s-{size}.mkv"));
    let h264 = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-sc_threshold",
        "0",
    ];
    let opus = [
        "-c:a", "libopus", "-b:a", "64k", "-f", "matroska", "-live", "1",
    ];
    make_test_media(&path, size, secs, &[&h264[..], &opus].concat());
    path
}

/// Cuts `bytes` at `pieces - 1` distinct pseudo-random offsets.
pub fn cut_randomly(bytes: &[u8], pieces: usize, seed: u64) -> Vec<Vec<u8>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cuts: Vec<usize> = (1..pieces).map(|_| rng.gen_range(1..bytes.len())).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(bytes[start..cut].to_vec());
        start = cut;
    }
    out
}

/// Decodes a URL with ffmpeg; returns its error output (empty when clean).
pub fn decode_errors(url: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i", url, "-f", "null", "-"])
        .output()
        .unwrap();
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        errors.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    errors
}

/// A segcast process, SIGKILLed when dropped (also when a test panics).
pub struct ServerProcess(pub std::process::Child);

impl ServerProcess {
    /// SIGKILL: no shutdown path of the server runs.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The segcast binary as a separate process (so it can be SIGKILLed);
/// returns it and its base URL once it listens. Its log goes to the test's
/// output.
pub fn spawn_server_process(data: &Path, extra: &[&str]) -> (ServerProcess, String) {
    spawn_server_process_with(data, extra, None)
}

/// Like [`spawn_server_process`]; with `max_file_bytes`, the server cannot
/// write a file larger than that (RLIMIT_FSIZE, SIGXFSZ ignored): writes
/// fail with EFBIG, as they would on a full disk.
pub fn spawn_server_process_with(
    data: &Path,
    extra: &[&str],
    max_file_bytes: Option<u64>,
) -> (ServerProcess, String) {
    let limits = ProcessLimits {
        max_file_bytes,
        ..ProcessLimits::default()
    };
    spawn_server_process_limited(data, extra, limits)
}

/// Resource limits a server process starts under.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessLimits {
    /// RLIMIT_FSIZE, with SIGXFSZ ignored.
    pub max_file_bytes: Option<u64>,
    /// RLIMIT_NOFILE, soft and hard (`ulimit -n`).
    pub open_files: Option<u64>,
}

/// Like [`spawn_server_process`], under `limits`. `SEGCAST_SERVER_BIN`
/// names another build to start (a benchmark comparing two commits).
pub fn spawn_server_process_limited(
    data: &Path,
    extra: &[&str],
    limits: ProcessLimits,
) -> (ServerProcess, String) {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    let binary = std::env::var_os("SEGCAST_SERVER_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_segcast").into());
    let mut command = Command::new(binary);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let set = |resource, limit| {
                let rlim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(resource, &rlim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            if let Some(limit) = limits.max_file_bytes {
                set(libc::RLIMIT_FSIZE, limit)?;
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            if let Some(limit) = limits.open_files {
                set(libc::RLIMIT_NOFILE, limit)?;
            }
            Ok(())
        });
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("NO_COLOR", "1")
        .env("SEGCAST_LOG", "info,ffmpeg=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let child = ServerProcess(child);
    let base = loop {
        let line = lines
            .next()
            .expect("segcast exited before listening")
            .unwrap();
        eprintln!("server: {line}");
        if let Some(addr) = line.split("serving addr=").nth(1) {
            break format!("http://{}", addr.trim());
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .for_each(|l| eprintln!("server: {l}"))
    });
    (child, base)
}

/// Checks every track a recording lists (the primary track of
/// `media.m3u8`, and the audio rendition of `audio.m3u8` when there is
/// one): decode times run on without gap or overlap across all segments,
/// and each EXTINF is its segment's media. Returns the primary track's
/// media duration in seconds; the audio track must end within 0.1 s of it.
pub async fn assert_contiguous_media(client: &reqwest::Client, base: &str, id: &str) -> f64 {
    let primary = contiguous_track(client, base, id, "media.m3u8", "init.mp4").await;
    let audio = client
        .get(format!("{base}/media/{id}/audio.m3u8"))
        .send()
        .await
        .unwrap();
    if audio.status() == 200 {
        let audio_s = contiguous_track(client, base, id, "audio.m3u8", "audio-init.mp4").await;
        assert!(
            (audio_s - primary).abs() <= 0.1,
            "audio ends at {audio_s} s, video at {primary} s"
        );
    }
    primary
}

async fn contiguous_track(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    playlist: &str,
    init: &str,
) -> f64 {
    use media::fmp4::{Piece, Splitter};
    let get = |path: String| async move {
        let resp = client
            .get(format!("{base}/media/{id}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.bytes().await.unwrap()
    };
    let playlist = get(playlist.into()).await;
    let playlist = m3u8_rs::parse_media_playlist_res(&playlist).unwrap();
    let mut splitter = Splitter::default();
    let mut track = None;
    let mut timescale = 1;
    for piece in splitter.push(&get(init.into()).await).unwrap() {
        if let Piece::Init(init) = piece {
            let primary = init.primary_track().unwrap();
            track = Some(primary.track_id);
            timescale = primary.timescale;
        }
    }
    let track = track.expect("init segment");
    let mut next_ticks = None;
    for segment in &playlist.segments {
        let mut seg_ticks = 0;
        for piece in splitter.push(&get(segment.uri.clone()).await).unwrap() {
            let Piece::Fragment(fragment) = piece else {
                panic!("init inside a segment")
            };
            let Some(run) = fragment.run(track) else {
                continue;
            };
            if let Some(expected) = next_ticks {
                assert_eq!(
                    run.base_decode_ticks, expected,
                    "gap or overlap in {}",
                    segment.uri
                );
            }
            next_ticks = Some(run.base_decode_ticks + run.dur_ticks);
            seg_ticks += run.dur_ticks;
        }
        let extinf_ms = (f64::from(segment.duration) * 1000.0).round();
        let media_ms = (seg_ticks * 1000 / u64::from(timescale)) as f64;
        assert!(
            (extinf_ms - media_ms).abs() <= 1.0,
            "{}: EXTINF {extinf_ms} ms, media {media_ms} ms",
            segment.uri
        );
    }
    next_ticks.unwrap() as f64 / f64::from(timescale)
}

/// VLC waits forever on some broken input (a wrong AES key): a test that
/// meets one fails with VLC's output after this, rather than hanging CI.
const VLC_LIMIT: [&str; 3] = ["-s", "KILL", "180"];

/// Plays `url` with VLC 3 (`cvlc`, no window, no sound card), remuxing what
/// it plays into `dir/vlc.mkv`; returns that file. (Matroska: VLC's TS
/// muxer cuts the last audio packet short when it exits at the end.) VLC refuses to run as
/// root, so as root it runs as the unprivileged `segcast-vlc` user, made
/// here if missing (`dir` is opened to it).
pub fn vlc_remux(url: &str, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let out = dir.join("vlc.mkv");
    let sout = format!("#std{{access=file,mux=mkv,dst={}}}", out.display());
    let mut command = if unsafe { libc::geteuid() } == 0 {
        const USER: &str = "segcast-vlc";
        let known = Command::new("id")
            .arg(USER)
            .output()
            .unwrap()
            .status
            .success();
        if !known {
            let made = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .status()
                .unwrap();
            assert!(made.success(), "cannot create the {USER} user for VLC");
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = Command::new("timeout");
        c.args(VLC_LIMIT)
            .args(["runuser", "-u", USER, "--", "cvlc"]);
        c
    } else {
        let mut c = Command::new("timeout");
        c.args(VLC_LIMIT).arg("cvlc");
        c
    };
    let output = command
        .args(["-I", "dummy", "--play-and-exit", url, "--sout", &sout])
        .output()
        .expect("VLC must be installed (scripts/test installs vlc-bin)");
    assert!(
        output.status.success(),
        "cvlc failed ({}; killed after {} s if it hung): {}",
        output.status,
        VLC_LIMIT[2],
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// What VLC played of `url` (see [`vlc_remux`]), from an async test: the
/// sorted kinds of its streams and its duration in seconds.
pub async fn vlc_played(url: &str, dir: &Path) -> (PathBuf, Vec<String>, f64) {
    let (url, dir) = (url.to_string(), dir.to_path_buf());
    let played = tokio::task::spawn_blocking(move || vlc_remux(&url, &dir))
        .await
        .unwrap();
    let mut kinds = stream_kinds(&played);
    kinds.sort();
    let played_s = probe_duration_s(&played);
    (played, kinds, played_s)
}

/// The kinds of a media file's streams (`["video", "audio"]`), as ffprobe
/// lists them.
pub fn stream_kinds(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The longest stretch between consecutive video packets of a media file,
/// in seconds: a skipped segment shows as a gap of its duration.
pub fn longest_video_gap_s(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(times.len() > 1, "no video packets in {}", path.display());
    times.sort_by(f64::total_cmp);
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// Duration of a media file in seconds, as ffprobe reads it.
pub fn probe_duration_s(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}: {text}", path.display()))
}

/// What a player reads from a live LL-HLS playlist (RFC 8216bis): the
/// parts it lists, the part to block for next, and how much media it lists.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistEdge {
    /// Indices of the `part-NNNNNN.m4s` it lists, in order.
    pub parts: Vec<u64>,
    /// `_HLS_msn` / `_HLS_part` of the next part (§6.2.5.2).
    pub next_msn: u64,
    pub next_part: u64,
    /// Media listed: whole segments, and with the open segment's parts.
    pub segments_end_s: f64,
    pub parts_end_s: f64,
    pub ended: bool,
}

impl PlaylistEdge {
    pub fn parse(text: &str) -> Self {
        let mut edge = Self {
            parts: Vec::new(),
            next_msn: 0,
            next_part: 0,
            segments_end_s: 0.0,
            parts_end_s: 0.0,
            ended: text.contains("#EXT-X-ENDLIST"),
        };
        let mut open_s = 0.0;
        for line in text.lines() {
            if let Some(extinf) = line.strip_prefix("#EXTINF:") {
                let duration: f64 = extinf.trim_end_matches(',').parse().unwrap_or(0.0);
                edge.segments_end_s += duration;
                edge.next_msn += 1;
                edge.next_part = 0;
                open_s = 0.0;
            } else if let Some(attributes) = line.strip_prefix("#EXT-X-PART:") {
                edge.next_part += 1;
                let attribute = |name: &str| {
                    let rest = attributes.split(name).nth(1)?;
                    Some(rest.split([',', '"']).find(|s| !s.is_empty())?.to_string())
                };
                open_s += attribute("DURATION=")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0.0);
                let index = attribute("URI=\"part-").and_then(|i| i[..6].parse::<u64>().ok());
                edge.parts.extend(index);
            }
        }
        edge.parts_end_s = edge.segments_end_s + open_s;
        edge
    }

    /// The query of the blocking reload for the next part.
    pub fn blocking_query(&self) -> String {
        format!("?_HLS_msn={}&_HLS_part={}", self.next_msn, self.next_part)
    }
}

/// Asserts the status and that the body is `{"error": "<non-empty>"}`;
/// returns the message.
/// The server's gauge of requests waiting now (blocking reloads, parts
/// not yet produced): what a test reads to know that a request is held.
pub async fn waiting_requests(server: &Server) -> f64 {
    let metrics = server.text("/metrics").await;
    metrics
        .lines()
        .find(|l| l.starts_with("segcast_http_waiting_requests "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .expect("the metrics name segcast_http_waiting_requests")
}

pub async fn assert_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"));
    assert!(!message.is_empty());
    message.to_string()
}

/// The value after `flag` on a benchmark's command line.
pub fn cli_value(flag: &str) -> Option<String> {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1).cloned())
}

/// A number after `flag` on a benchmark's command line, or `default`.
pub fn cli_number(flag: &str, default: usize) -> usize {
    cli_value(flag).map_or(default, |v| v.parse().expect("a number"))
}

/// CPU seconds used so far by this process and its waited-for children
/// (every ffmpeg and ffprobe it reaped): the benchmarks' cost measure.
pub fn cpu_s() -> f64 {
    let usage = |who| {
        // SAFETY: getrusage fills the struct we own.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}
