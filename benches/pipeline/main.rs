//! Pipeline benchmark (run with `scripts/bench-pipeline`).
//!
//! (a) Packaging cost: a 60 s 720p30 VP8/Opus WebM through segcast (upload
//!     as fast as possible, until `ready`) versus plain
//!     `ffmpeg … -f hls -hls_segment_type fmp4` with the same encoder
//!     arguments, alternating runs, medians of wall and CPU time.
//! (b) Live lag: the same kind of WebM cut into 0.25 s chunks at cluster
//!     boundaries (as the record page's MediaRecorder timeslice) and
//!     uploaded at real-time pace, followed by a player doing LL-HLS
//!     blocking reloads; for each chunk, the time from its upload until the
//!     playlist lists a part (and a segment) covering its media.
//!
//! (c), (d) Imports: see [`import`].
//!
//! (e) With `--store`: the live lag of (b) once on local disk alone and
//!     once with `--store` on an `s3s-fs` bucket on loopback, adding for
//!     each chunk the time until a segment covering its media is listed
//!     in the playlist file on disk and in the bucket's copy ([`store`]).
//!
//! Prints the figures; docs/benchmarks.md records them. `--quick` runs
//! short versions; `--lag-only` and `--import-only` run one part;
//! `--check` exits non-zero when a target is missed.

mod import;
mod store;

#[path = "../support/check.rs"]
mod check;

#[path = "../../tests/common/mod.rs"]
mod common;
use common::cpu_s;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pipeline::transcode::args::{encode_args, EncodeSettings};

const PACKAGE_SECS: u32 = 60;
const LAG_SECS: u32 = 30;
const RUNS: usize = 3;
/// The record page's MediaRecorder timeslice (player/public/record.js).
const LAG_SLICE_MS: u64 = 250;
/// Packaging runs upload as fast as they can: the cut size barely matters.
const PACKAGE_SLICE_MS: u64 = 1000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let lag_only = args.iter().any(|a| a == "--lag-only");
    let import_only = args.iter().any(|a| a == "--import-only");
    let with_store = args.iter().any(|a| a == "--store");
    let (package_secs, lag_secs, runs) = if quick {
        (10, 8, 1)
    } else {
        (PACKAGE_SECS, LAG_SECS, RUNS)
    };
    let work = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut targets = check::Targets::from_args();
    if import_only {
        import::run(&rt, work.path(), package_secs, runs, &mut targets);
        targets.finish();
        return;
    }
    let config = segcast::Config::with_data_dir(work.path().join("data"));
    let settings = EncodeSettings::from(&config);
    if !lag_only {
        let source = make_source(work.path(), package_secs, PACKAGE_SLICE_MS);
        let size = std::fs::metadata(&source).unwrap().len();
        println!("source: {package_secs} s 1280x720@30 VP8/Opus WebM, {size} bytes");
        let (mut plain, mut ours) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let out = work.path().join(format!("plain-{run}"));
            plain.push(run_plain_ffmpeg(&source, &settings, &out));
            ours.push(rt.block_on(run_segcast(
                &source,
                config.clone(),
                PACKAGE_SLICE_MS,
                false,
            )));
            println!("run {run}: plain {}  segcast {}", plain[run], ours[run]);
        }
        report_packaging(package_secs, runs, &plain, &ours, &mut targets);
    }

    let lag_source = make_source(work.path(), lag_secs, LAG_SLICE_MS);
    if with_store {
        report_store_lag(&rt, &lag_source, config, lag_secs);
        return;
    }
    let live = rt.block_on(run_segcast(&lag_source, config, LAG_SLICE_MS, true));
    println!(
        "\n(b) live lag, {lag_secs} s uploaded in ~{LAG_SLICE_MS} ms chunks at real-time pace, \
         {} ms segments, {} ms parts",
        settings.segment_target_ms, settings.fragment_ms
    );
    println!(
        "    chunk upload → a part covering its media listed    : {}   (target ≤ part + 200 ms = {} ms)",
        p50_max(&live.lags_ms),
        settings.fragment_ms + 200
    );
    println!(
        "    chunk upload → a segment covering its media listed : {}",
        p50_max(&live.segment_lags_ms)
    );
    let part_lag_ms = p50(&live.lags_ms);
    let wanted_ms = settings.fragment_ms + 200;
    targets.expect(
        part_lag_ms.is_some_and(|ms| ms <= wanted_ms),
        format!("(b) part listed p50 {part_lag_ms:?} ms (target ≤ {wanted_ms} ms)"),
    );
    if !lag_only {
        import::run(&rt, work.path(), package_secs, runs, &mut targets);
    }
    targets.finish();
}

fn p50(ms: &[u64]) -> Option<u64> {
    let mut sorted = ms.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

/// (e): the live lag on local disk alone, then with the bucket.
fn report_store_lag(
    rt: &tokio::runtime::Runtime,
    source: &Path,
    config: segcast::Config,
    secs: u32,
) {
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let local = rt.block_on(run_segcast(source, config.clone(), LAG_SLICE_MS, true));
    let s3 = store::S3::start();
    let mut stored = config;
    stored.store = Some(store::S3::store_url());
    let bucket = rt.block_on(run_segcast(source, stored, LAG_SLICE_MS, true));
    drop(s3);
    println!(
        "\n(e) publish lag, local disk vs --store (s3s-fs on loopback): {secs} s in \
         ~{LAG_SLICE_MS} ms chunks at real-time pace; per chunk, upload → media covering it \
         listed; followers poll every {} ms",
        store::POLL.as_millis()
    );
    println!(
        "    load average (1, 5, 15 min) before: {}; after: {}",
        load_before.trim(),
        load().trim()
    );
    println!(
        "    | {:<37} | {:<35} | {:<35} |",
        "listed where", "local disk only", "with --store"
    );
    println!("    |{:-<39}|{:-<37}|{:-<37}|", "", "", "");
    let row = |what: &str, a: &[u64], b: &[u64]| {
        println!(
            "    | {what:<37} | {:<35} | {:<35} |",
            p50_max(a),
            p50_max(b)
        );
    };
    row(
        "part, live playlist (memory)",
        &local.lags_ms,
        &bucket.lags_ms,
    );
    row(
        "segment, live playlist (memory)",
        &local.segment_lags_ms,
        &bucket.segment_lags_ms,
    );
    row(
        "segment, media.m3u8 on local disk",
        &local.disk_lags_ms,
        &bucket.disk_lags_ms,
    );
    row(
        "segment, media.m3u8 in the bucket",
        &[],
        &bucket.bucket_lags_ms,
    );
    row(
        "bucket behind disk, per new segment",
        &[],
        &bucket.mirror_lags_ms,
    );
}

fn report_packaging(
    secs: u32,
    runs: usize,
    plain: &[Cost],
    ours: &[Cost],
    targets: &mut check::Targets,
) {
    let (plain, ours) = (Cost::median(plain), Cost::median(ours));
    let (wall, cpu) = (ours.wall_s / plain.wall_s, ours.cpu_s / plain.cpu_s);
    println!("\n(a) packaging {secs} s of 720p30, median of {runs}");
    println!("    plain ffmpeg -f hls fmp4 : {plain}");
    println!("    segcast                  : {ours}");
    println!("    ratio segcast/plain      : wall {wall:.3}, cpu {cpu:.3}  (target ≤ 1.05)");
    targets.expect(
        wall <= 1.05 && cpu <= 1.05,
        format!("(a) packaging wall {wall:.3}, cpu {cpu:.3} of plain ffmpeg's (target ≤ 1.05)"),
    );
}

fn p50_max(ms: &[u64]) -> String {
    if ms.is_empty() {
        return "—".into();
    }
    let mut sorted = ms.to_vec();
    sorted.sort_unstable();
    format!(
        "p50 {:5} ms, max {:5} ms  (n={})",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        sorted.len()
    )
}

#[derive(Debug, Clone, Default)]
struct Cost {
    wall_s: f64,
    cpu_s: f64,
    /// Per chunk: upload → a listed part covers the chunk's media.
    lags_ms: Vec<u64>,
    /// Per chunk: upload → a listed segment covers the chunk's media.
    segment_lags_ms: Vec<u64>,
    /// The same, in `media.m3u8` on local disk and in the bucket.
    disk_lags_ms: Vec<u64>,
    bucket_lags_ms: Vec<u64>,
    /// Per change of `media.m3u8` on disk: until the bucket's lists as much.
    mirror_lags_ms: Vec<u64>,
}

impl Cost {
    fn median(costs: &[Cost]) -> Cost {
        let mid = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Cost {
            wall_s: mid(costs.iter().map(|c| c.wall_s).collect()),
            cpu_s: mid(costs.iter().map(|c| c.cpu_s).collect()),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wall {:6.2} s, cpu {:6.2} s", self.wall_s, self.cpu_s)
    }
}

/// A 720p VP8/Opus WebM whose clusters last `cluster_ms`, so it can be cut
/// at cluster starts like a MediaRecorder with that timeslice.
fn make_source(dir: &Path, secs: u32, cluster_ms: u64) -> PathBuf {
    let path = dir.join(format!("source-{secs}-{cluster_ms}.webm"));
    let vp8 = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"];
    let rate = ["-b:v", "2M", "-g", "150"];
    let cluster = cluster_ms.to_string();
    let webm = [
        "-c:a",
        "libopus",
        "-f",
        "webm",
        "-live",
        "1",
        "-cluster_time_limit",
        &cluster,
    ];
    common::make_test_media(&path, "1280x720", secs, &[&vp8[..], &rate, &webm].concat());
    path
}

fn run_plain_ffmpeg(source: &Path, settings: &EncodeSettings, out: &Path) -> Cost {
    let input = ["-f", "matroska"];
    let codecs = encode_args(settings);
    run_plain_hls(
        &input,
        source,
        &["0:v:0?", "0:a:0?"],
        &codecs,
        settings,
        out,
    )
}

/// Plain `ffmpeg -i SRC -map … CODECS -f hls -hls_segment_type fmp4`: the
/// reference every segcast figure is compared with.
fn run_plain_hls(
    input_args: &[&str],
    source: &Path,
    maps: &[&str],
    codec_args: &[String],
    settings: &EncodeSettings,
    out: &Path,
) -> Cost {
    std::fs::create_dir_all(out).unwrap();
    let (start, cpu) = (Instant::now(), cpu_s());
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-nostdin"])
        .args(input_args)
        .arg("-i")
        .arg(source);
    for map in maps {
        command.args(["-map", map]);
    }
    let status = command
        .args(codec_args)
        .args(["-f", "hls", "-hls_segment_type", "fmp4", "-hls_time"])
        .arg(format!("{:.3}", settings.segment_target_ms as f64 / 1000.0))
        .args(["-hls_playlist_type", "vod"])
        .arg(out.join("index.m3u8"))
        .status()
        .unwrap();
    assert!(status.success());
    Cost {
        wall_s: start.elapsed().as_secs_f64(),
        cpu_s: cpu_s() - cpu,
        ..Default::default()
    }
}

/// A segcast served in this process on a fresh data directory.
struct InProcess {
    base: String,
    data: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    async fn start(mut config: segcast::Config) -> Self {
        let data = tempfile::tempdir().unwrap();
        config.data_dir = data.path().to_path_buf();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(segcast::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            base,
            data,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Offsets and timecodes (ms) of Matroska Clusters (ID 0x1F43B675, whose
/// first child is Timecode, ID 0xE7). A byte pattern that is not followed by
/// a Timecode element is not a real cluster and is skipped.
fn clusters(bytes: &[u8]) -> Vec<(usize, u64)> {
    let vint = |b: &[u8]| -> Option<(u64, usize)> {
        let len = b.first()?.leading_zeros() as usize + 1;
        let mut value = u64::from(b[0] & (0xffu8 >> len));
        for &byte in b.get(1..len)? {
            value = value << 8 | u64::from(byte);
        }
        (len <= 8).then_some((value, len))
    };
    let timecode = |at: usize| -> Option<u64> {
        let (_, size_len) = vint(bytes.get(at + 4..)?)?;
        let child = at + 4 + size_len;
        if *bytes.get(child)? != 0xe7 {
            return None;
        }
        let (len, len_len) = vint(bytes.get(child + 1..)?)?;
        let start = child + 1 + len_len;
        Some(
            bytes
                .get(start..start + len as usize)?
                .iter()
                .fold(0, |v, &b| v << 8 | u64::from(b)),
        )
    };
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0x1f, 0x43, 0xb6, 0x75])
        .filter_map(|(at, _)| Some((at, timecode(at)?)))
        .collect()
}

/// Uploads `source` to an in-process segcast in chunks cut at clusters
/// every `slice_ms`; with `realtime`, each chunk is sent when its media
/// would be recorded, and a player follows the live playlist.
async fn run_segcast(
    source: &Path,
    config: segcast::Config,
    slice_ms: u64,
    realtime: bool,
) -> Cost {
    let config_has_store = config.store.is_some();
    let server = InProcess::start(config).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let bytes = std::fs::read(source).unwrap();
    // One chunk per timeslice of clusters, cut at a cluster start, as a
    // MediaRecorder would; the first carries the header. Cuts follow a
    // fixed clock, like a timeslice, so they do not drift.
    let mut cuts = vec![(0usize, 0u64)];
    let mut next_cut_ms = slice_ms;
    for (at, ms) in clusters(&bytes) {
        if ms >= next_cut_ms {
            cuts.push((at, ms));
            next_cut_ms = (ms / slice_ms + 1) * slice_ms;
        }
    }
    let total_ms = cuts.last().unwrap().1 + slice_ms;
    cuts.push((bytes.len(), total_ms));
    let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0].0..w[1].0]).collect();
    // Media end of chunk i: where chunk i + 1 starts.
    let media_end_ms: Vec<u64> = cuts[1..].iter().map(|&(_, ms)| ms).collect();

    let (id, token) = common::Api::new(base.clone()).create("bench").await;
    let status_url = format!("{base}/api/recordings/{id}");

    // Coarse status polling for cost: the poller runs in this process, so
    // its CPU would count as segcast's.
    let poll = Duration::from_millis(25);
    // What a live player sees, as it happens: blocking reloads, no polling.
    let follower = realtime.then(|| {
        let url = format!("{base}/media/{id}/media.m3u8");
        tokio::spawn(follow_playlist(client.clone(), url))
    });
    let on_disk = realtime.then(|| {
        let data = server.data.path().to_path_buf();
        tokio::spawn(store::follow_file(data, id.clone()))
    });
    let in_bucket =
        (realtime && config_has_store).then(|| tokio::spawn(store::follow_object(id.clone())));
    let (start, cpu) = (Instant::now(), cpu_s());
    let mut sent_at = Vec::new();
    for (seq, chunk) in chunks.iter().enumerate() {
        if realtime {
            // A recorder hands a chunk over once its media has been recorded.
            tokio::time::sleep_until((start + Duration::from_millis(media_end_ms[seq])).into())
                .await;
        }
        sent_at.push(Instant::now());
        let resp = client
            .put(format!("{base}/api/recordings/{id}/chunks/{seq}"))
            .bearer_auth(&token)
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    client
        .post(format!("{base}/api/recordings/{id}/finish"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "chunks": chunks.len() }))
        .send()
        .await
        .unwrap();
    let done = wait_status(&client, &status_url, poll, |s| {
        s["state"] != "recording" && s["state"] != "processing"
    })
    .await;
    assert_eq!(done["state"], "ready", "{done}");
    let (wall_s, cpu_s) = (start.elapsed().as_secs_f64(), cpu_s() - cpu);
    let seen = match follower {
        Some(follower) => follower.await.unwrap(),
        None => Vec::new(),
    };
    let joined = |task: Option<tokio::task::JoinHandle<store::Listed>>| async move {
        match task {
            Some(task) => task.await.unwrap(),
            None => Vec::new(),
        }
    };
    let (on_disk, in_bucket) = (joined(on_disk).await, joined(in_bucket).await);
    if std::env::var_os("BENCH_TRACE").is_some() {
        let rel = |t: &Instant| t.saturating_duration_since(start).as_millis();
        println!(
            "sent at ms: {:?}",
            sent_at.iter().map(rel).collect::<Vec<_>>()
        );
        println!("media end ms: {media_end_ms:?}");
        println!(
            "listed (ms, segments s, parts s): {:?}",
            seen.iter()
                .map(|(t, s, p)| (rel(t), *s, *p))
                .collect::<Vec<_>>()
        );
    }
    let lag = |listed: &[(Instant, f64)]| covered_lags(&sent_at, &media_end_ms, listed);
    let parts: Vec<(Instant, f64)> = seen.iter().map(|e| (e.0, e.2)).collect();
    let segments: Vec<(Instant, f64)> = seen.iter().map(|e| (e.0, e.1)).collect();
    let cost = Cost {
        wall_s,
        cpu_s,
        lags_ms: if realtime { lag(&parts) } else { Vec::new() },
        segment_lags_ms: if realtime { lag(&segments) } else { Vec::new() },
        disk_lags_ms: if realtime { lag(&on_disk) } else { Vec::new() },
        bucket_lags_ms: if config_has_store {
            lag(&in_bucket)
        } else {
            Vec::new()
        },
        mirror_lags_ms: if config_has_store {
            behind(&on_disk, &in_bucket)
        } else {
            Vec::new()
        },
    };
    server.stop().await;
    cost
}

/// Every chunk but the last (which only the finish can publish): the
/// first moment `listed` covered media up to the end of its media. A
/// frame's worth (1/30 s) short counts as covered: a part ends where its
/// last frame does, a chunk where the next one starts.
fn covered_lags(sent_at: &[Instant], media_end_ms: &[u64], listed: &[(Instant, f64)]) -> Vec<u64> {
    sent_at[..sent_at.len() - 1]
        .iter()
        .enumerate()
        .map(|(seq, sent)| {
            let media_end_s = media_end_ms[seq] as f64 / 1000.0 - 0.034;
            let covered = listed
                .iter()
                .find(|entry| entry.1 >= media_end_s)
                .map_or(Instant::now(), |&(t, _)| t);
            covered.saturating_duration_since(*sent).as_millis() as u64
        })
        .collect()
}

/// For each change of `first` (media listed growing), how much later
/// `then` listed as much.
fn behind(first: &[(Instant, f64)], then: &[(Instant, f64)]) -> Vec<u64> {
    first
        .iter()
        .filter(|(_, listed)| *listed > 0.0)
        .filter_map(|&(at, listed)| {
            let caught_up = then.iter().find(|entry| entry.1 >= listed)?;
            Some(caught_up.0.saturating_duration_since(at).as_millis() as u64)
        })
        .collect()
}

/// Follows a live media playlist as an LL-HLS player does (a blocking
/// reload for the next part each time) until `ENDLIST`; returns when each
/// change was seen, with the media listed in whole segments and in parts.
async fn follow_playlist(client: reqwest::Client, url: String) -> Vec<(Instant, f64, f64)> {
    let mut seen: Vec<(Instant, f64, f64)> = Vec::new();
    let mut query = String::new();
    loop {
        let resp = client.get(format!("{url}{query}")).send().await.unwrap();
        if resp.status() == 503 {
            continue; // waited its limit (a slow start): ask again
        }
        assert!(resp.status().is_success(), "{}", resp.status());
        let edge = common::PlaylistEdge::parse(&resp.text().await.unwrap());
        let now = (Instant::now(), edge.segments_end_s, edge.parts_end_s);
        if seen
            .last()
            .is_none_or(|last| (last.1, last.2) != (now.1, now.2))
        {
            seen.push(now);
        }
        if edge.ended {
            return seen;
        }
        query = edge.blocking_query();
    }
}

async fn wait_status(
    client: &reqwest::Client,
    url: &str,
    poll: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "timed out: {status}");
        tokio::time::sleep(poll).await;
    }
}
