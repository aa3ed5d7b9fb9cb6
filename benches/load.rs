//! Load test (run with `scripts/load-test`): on loopback, N recordings
//! upload at real-time pace (chunks out of order and some twice, as flaky
//! networks deliver them) while M Low-Latency HLS viewers follow them at
//! the live edge (blocking playlist reloads, every part). It stops by
//! itself once every recording has ended, and prints: recordings intact /
//! started, request errors, how long blocking reloads waited, and the
//! server's RSS (the segcast
//! process only; ffmpeg children are separate processes).
//!
//! `--recordings N` (8), `--pollers M` (200), `--seconds S` (60, the length
//! of each recording), `--size WxH` (640x360). A recording that did not end
//! intact fails the run; with `--check`, so does a missed target (no 5xx,
//! no other error, ≤ 10 MiB of the server's own memory per live recording).

#[path = "support/check.rs"]
mod check;
#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Viewers start spread over this long, and a viewer whose request failed
/// tries again after it.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Share of chunks sent a second time.
const DUPLICATE_SHARE: f64 = 0.15;

struct Args {
    recordings: usize,
    pollers: usize,
    seconds: u32,
    size: String,
}

fn args() -> Args {
    let (value, number) = (common::cli_value, common::cli_number);
    Args {
        recordings: number("--recordings", 8),
        pollers: number("--pollers", 200),
        seconds: number("--seconds", 60) as u32,
        size: value("--size").unwrap_or_else(|| "640x360".into()),
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    server_errors: AtomicU64,
    other_errors: AtomicU64,
    not_yet_published: AtomicU64,
    playlist_latencies_us: Mutex<Vec<u64>>,
    /// `/healthz` (no disk, no state) under the same load: the floor any
    /// request on this machine sees, to read the playlist figures against.
    floor_latencies_us: Mutex<Vec<u64>>,
}

impl Counters {
    /// Counts one response; true for a success.
    fn count(&self, result: &reqwest::Result<reqwest::Response>) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(r) if r.status().is_success() => true,
            Ok(r) if r.status().is_server_error() => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
            Ok(r) if r.status() == 404 => {
                self.not_yet_published.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => {
                self.other_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

fn main() {
    let args = args();
    let work = tempfile::tempdir().unwrap();
    let source = common::make_webm(work.path(), args.seconds, &args.size);
    let bytes = std::fs::read(&source).unwrap();
    // One chunk per second of media on average, cut anywhere, as
    // MediaRecorder's timeslices are.
    let chunks = Arc::new(common::cut_randomly(&bytes, args.seconds as usize, 1));
    let data = work.path().join("data");
    // Every simulated viewer and uploader comes from 127.0.0.1: the
    // per-client caps (connections, waiting blocking reloads), meant for
    // one real client, are lifted.
    let extra = [
        "--max-live-recordings",
        &args.recordings.to_string(),
        "--max-connections-per-client",
        "100000",
        "--max-waiting-per-client",
        "100000",
    ];
    let (mut server, base) = common::spawn_server_process(&data, &extra);
    let pid = server.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "load: {} recordings of {} s {} VP8/Opus in {} chunks, {} LL-HLS viewers (blocking reloads, every part; start spread over {:?})",
        args.recordings,
        args.seconds,
        args.size,
        chunks.len(),
        args.pollers,
        POLL_EVERY
    );
    let baseline = rss(pid);
    let report = rt.block_on(run(&args, base, chunks, pid));
    server.kill();
    print_report(&args, &report, baseline);
    judge(&args, &report, baseline).finish();
}

/// Issue 16's load targets, and whether every recording ended intact.
fn judge(args: &Args, report: &Report, baseline: Rss) -> check::Targets {
    let mut targets = check::Targets::from_args();
    if report.intact < args.recordings {
        targets.broken(format!(
            "{} of {} recordings intact",
            report.intact, args.recordings
        ));
    }
    let c = &report.counters;
    let server_errors = c.server_errors.load(Ordering::Relaxed);
    targets.expect(
        server_errors == 0,
        format!("{server_errors} 5xx (target 0)"),
    );
    let other_errors = c.other_errors.load(Ordering::Relaxed);
    targets.expect(
        other_errors == 0,
        format!("{other_errors} other request errors (target 0)"),
    );
    let growth_kib = report.peak.own_kib.saturating_sub(baseline.own_kib);
    let per_recording_mib = growth_kib as f64 / 1024.0 / args.recordings as f64;
    targets.expect(
        per_recording_mib <= 10.0,
        format!("{per_recording_mib:.1} MiB per live recording (target ≤ 10)"),
    );
    targets
}

struct Report {
    intact: usize,
    failures: Vec<String>,
    counters: Arc<Counters>,
    peak: Rss,
    wall: Duration,
}

async fn run(args: &Args, base: String, chunks: Arc<Vec<Vec<u8>>>, pid: u32) -> Report {
    let client = reqwest::Client::new();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    let mut ids = Vec::new();
    let mut uploads = Vec::new();
    let api = common::Api::new(base.clone());
    for r in 0..args.recordings {
        let (id, token) = api.create(&format!("load {r}")).await;
        ids.push(id.clone());
        let upload = upload(
            client.clone(),
            base.clone(),
            id,
            token,
            chunks.clone(),
            args.seconds,
            counters.clone(),
            r as u64,
        );
        uploads.push(tokio::spawn(upload));
    }
    let pollers: Vec<_> = (0..args.pollers)
        .map(|p| {
            let url = format!("{base}/media/{}/", ids[p % ids.len()]);
            // Players are not synchronised: each starts at its own phase.
            let phase = POLL_EVERY * p as u32 / args.pollers as u32;
            tokio::spawn(poll(
                client.clone(),
                url,
                phase,
                counters.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let floor = tokio::spawn({
        let (client, url, counters, stop) = (
            client.clone(),
            format!("{base}/healthz"),
            counters.clone(),
            stop.clone(),
        );
        async move {
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                if client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    let us = asked.elapsed().as_micros() as u64;
                    counters.floor_latencies_us.lock().unwrap().push(us);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak = Rss::default();
            while !stop.load(Ordering::Relaxed) {
                let now = rss(pid);
                peak.total_kib = peak.total_kib.max(now.total_kib);
                peak.own_kib = peak.own_kib.max(now.own_kib);
                peak.mapped_files_kib = peak.mapped_files_kib.max(now.mapped_files_kib);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            peak
        }
    });

    let (mut intact, mut failures) = (0, Vec::new());
    for (upload, id) in uploads.into_iter().zip(&ids) {
        match upload.await {
            Ok(Ok(())) => intact += 1,
            Ok(Err(why)) => failures.push(format!("{id}: {why}")),
            Err(panic) => failures.push(format!("{id}: {panic}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for poller in pollers {
        poller.await.unwrap();
    }
    floor.await.unwrap();
    Report {
        intact,
        failures,
        counters,
        peak: sampler.await.unwrap(),
        wall: start.elapsed(),
    }
}

/// Uploads one recording at real-time pace, in windows of three chunks sent
/// in shuffled order, some twice; finishes it and checks it is intact.
#[allow(clippy::too_many_arguments)]
async fn upload(
    client: reqwest::Client,
    base: String,
    id: String,
    token: String,
    chunks: Arc<Vec<Vec<u8>>>,
    seconds: u32,
    counters: Arc<Counters>,
    seed: u64,
) -> Result<(), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let start = tokio::time::Instant::now();
    let per_chunk = Duration::from_millis(u64::from(seconds) * 1000 / chunks.len() as u64);
    let seqs: Vec<usize> = (0..chunks.len()).collect();
    for window in seqs.chunks(3) {
        // A window is sent once its last chunk would have been recorded.
        let last = *window.last().unwrap() as u32;
        tokio::time::sleep_until(start + per_chunk * (last + 1)).await;
        let mut order = window.to_vec();
        order.shuffle(&mut rng);
        if rng.gen_bool(DUPLICATE_SHARE) {
            order.push(order[0]);
        }
        for seq in order {
            put_with_retry(&client, &base, &id, &token, seq, &chunks[seq], &counters).await?;
        }
    }
    let finish = client
        .post(format!("{base}/api/recordings/{id}/finish"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "chunks": chunks.len() }))
        .send()
        .await;
    if !counters.count(&finish) {
        return Err(format!("finish failed: {finish:?}"));
    }
    let status = loop {
        let status: Value = client
            .get(format!("{base}/api/recordings/{id}"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if status["state"] != "recording" && status["state"] != "processing" {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let duration_s = status["duration_s"].as_f64().unwrap_or(0.0);
    if status["state"] != "ready"
        || status["chunks"]["received"] != chunks.len()
        || (duration_s - f64::from(seconds)).abs() > 0.2
    {
        return Err(format!("not intact: {status}"));
    }
    // Every listed segment fetched, decode times without gap or overlap.
    let media_s = common::assert_contiguous_media(&client, &base, &id).await;
    if (media_s - f64::from(seconds)).abs() > 0.2 {
        return Err(format!("{media_s} s of media for {seconds} s"));
    }
    Ok(())
}

async fn put_with_retry(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    token: &str,
    seq: usize,
    bytes: &[u8],
    counters: &Counters,
) -> Result<(), String> {
    for attempt in 0..5u32 {
        let sent = client
            .put(format!("{base}/api/recordings/{id}/chunks/{seq}"))
            .bearer_auth(token)
            .header("content-digest", common::content_digest(bytes))
            .body(bytes.to_vec())
            .send()
            .await;
        if counters.count(&sent) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
    Err(format!("chunk {seq} was never accepted"))
}

/// A Low-Latency HLS viewer at the live edge, as hls.js in low-latency
/// mode is: a blocking reload for the part after the newest it knows
/// (`_HLS_msn`/`_HLS_part`), then every part it has not fetched yet; it
/// stops at `ENDLIST`. A first plain reload starts it at its phase.
async fn poll(
    client: reqwest::Client,
    media: String,
    phase: Duration,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    tokio::time::sleep(phase).await;
    let mut query = String::new();
    let mut fetched_parts = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let asked = Instant::now();
        let playlist = client.get(format!("{media}media.m3u8{query}")).send().await;
        if !counters.count(&playlist) {
            tokio::time::sleep(POLL_EVERY).await;
            continue;
        }
        let text = playlist.unwrap().text().await.unwrap_or_default();
        let waited_us = asked.elapsed().as_micros() as u64;
        counters
            .playlist_latencies_us
            .lock()
            .unwrap()
            .push(waited_us);
        let edge = common::PlaylistEdge::parse(&text);
        let new_parts: Vec<u64> = edge
            .parts
            .iter()
            .copied()
            .filter(|&i| i >= fetched_parts)
            .collect();
        for index in new_parts {
            let part = client
                .get(format!("{media}part-{index:06}.m4s"))
                .send()
                .await;
            if counters.count(&part) {
                let _ = part.unwrap().bytes().await;
            }
            fetched_parts = index + 1;
        }
        if edge.ended {
            return;
        }
        query = edge.blocking_query();
    }
}

/// Resident set of a process, KiB (0 once it is gone), and its parts:
/// the server's own memory (anonymous, plus the sealed in-memory files the
/// live edge keeps parts in) against pages of segment files it maps
/// (crates/base/src/zero_copy.rs), which are the page cache's and reclaimable.
#[derive(Debug, Default, Clone, Copy)]
struct Rss {
    total_kib: u64,
    own_kib: u64,
    mapped_files_kib: u64,
}

fn rss(pid: u32) -> Rss {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Rss {
        total_kib: field("VmRSS:"),
        own_kib: field("RssAnon:") + field("RssShmem:"),
        mapped_files_kib: field("RssFile:"),
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_report(args: &Args, report: &Report, baseline: Rss) {
    let c = &report.counters;
    let mut latencies = c.playlist_latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let mut floor = c.floor_latencies_us.lock().unwrap().clone();
    floor.sort_unstable();
    let growth_kib = report.peak.own_kib.saturating_sub(baseline.own_kib);
    println!("\nafter {:.1} s:", report.wall.as_secs_f64());
    println!(
        "  recordings intact          : {} / {} started",
        report.intact, args.recordings
    );
    for failure in &report.failures {
        println!("    {failure}");
    }
    println!(
        "  requests                   : {} ({} 5xx, {} other errors, {} 404)",
        c.requests.load(Ordering::Relaxed),
        c.server_errors.load(Ordering::Relaxed),
        c.other_errors.load(Ordering::Relaxed),
        c.not_yet_published.load(Ordering::Relaxed)
    );
    println!(
        "  playlist answer (blocking) : p50 {:.2} ms, p99 {:.2} ms (n={})",
        percentile(&latencies, 0.5) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
        latencies.len()
    );
    println!(
        "  /healthz latency, same load: p50 {:.2} ms, p99 {:.2} ms (n={})",
        percentile(&floor, 0.5) as f64 / 1000.0,
        percentile(&floor, 0.99) as f64 / 1000.0,
        floor.len()
    );
    println!(
        "  server RSS                 : {} MiB idle, {} MiB peak; its own memory {} MiB idle, {} MiB peak: {:.1} MiB per live recording (target ≤ 10); mapped segment files (page cache) peak {} MiB",
        baseline.total_kib / 1024,
        report.peak.total_kib / 1024,
        baseline.own_kib / 1024,
        report.peak.own_kib / 1024,
        growth_kib as f64 / 1024.0 / args.recordings as f64,
        report.peak.mapped_files_kib / 1024
    );
}
