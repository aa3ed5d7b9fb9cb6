//! Long live recordings (docs/benchmarks.md, "Long live recordings"): what
//! an LL-HLS viewer costs in playlist bytes per second, and the server in
//! CPU per blocking reload, at 1, 20 and 120 minutes of a recording that
//! is still live.
//!
//! One recording (a tiny test picture, keyframes every second) is uploaded
//! as fast as the server takes it up to each length, then at real-time
//! pace for `--seconds` while `--viewers` simulated players reload both
//! media playlists the way hls.js does in low-latency mode: a blocking
//! reload for the next part (RFC 8216bis §6.2.5.2), one after the other.
//! Each cell runs twice: "full" (no `_HLS_skip`, no gzip: what every
//! reload cost before delta updates) and "delta+gzip" (`_HLS_skip=YES`
//! and `Accept-Encoding: gzip`, what hls.js and a browser send now). The
//! server's CPU (its own process, from `/proc`, not ffmpeg's) during a
//! window with no viewers is taken off, so the figure is per reload.
//! Beside them, the full playlist gzipped at nginx's default level: what
//! nginx with `gzip on` would send per reload for the same files.
//!
//!   scripts/bench-long-live [--minutes 1,20,120] [--viewers 20] [--seconds 15]
//!
//! `SEGCAST_SERVER_BIN=path` runs another build of the server (an earlier
//! commit's, for a before/after in one session).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Media per uploaded chunk at the real-time pace (about 1 s of it).
const CHUNK_BYTES: usize = 12 * 1024;

fn make_webm(path: &Path, secs: u64) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=96x64:rate=10")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"])
        .args([
            "-b:v", "70k", "-minrate", "70k", "-maxrate", "70k", "-g", "10",
        ])
        .args(["-c:a", "libopus", "-b:a", "24k", "-f", "webm", "-live", "1"])
        .arg(path)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let field = |n: usize| -> u64 {
        rest.split_whitespace()
            .nth(n - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Resident memory of process `pid`, MiB (`VmRSS`).
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn gzip_level_1(text: &str) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap().len()
}

/// `_HLS_msn`/`_HLS_part` of the part after the newest a playlist lists.
fn next_part(text: &str) -> (u64, u64) {
    let skipped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .map_or(0, |n| n.parse().unwrap());
    let edge = common::PlaylistEdge::parse(text);
    (skipped + edge.next_msn, edge.next_part)
}

struct Totals {
    reloads: AtomicU64,
    bytes: AtomicU64,
}

/// One simulated player: blocking reloads of `playlist` until `until`.
async fn viewer(
    client: reqwest::Client,
    base: String,
    playlist: String,
    delta: bool,
    until: Instant,
    totals: Arc<Totals>,
) {
    let first = client
        .get(format!("{base}{playlist}"))
        .send()
        .await
        .unwrap();
    let (mut msn, mut part) = next_part(&first.text().await.unwrap());
    while Instant::now() < until {
        let query = format!("_HLS_msn={msn}&_HLS_part={part}");
        let request = if delta {
            let url = format!("{base}{playlist}?{query}&_HLS_skip=YES");
            client.get(url).header("accept-encoding", "gzip")
        } else {
            client.get(format!("{base}{playlist}?{query}"))
        };
        let response = match request.send().await {
            Ok(response) if response.status() == 200 => response,
            other => {
                eprintln!("reload: {:?}", other.map(|r| r.status()));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let zipped = response.headers().contains_key("content-encoding");
        let body = response.bytes().await.unwrap();
        totals.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        totals.reloads.fetch_add(1, Ordering::Relaxed);
        let text = if zipped {
            gunzip(&body)
        } else {
            String::from_utf8(body.to_vec()).unwrap()
        };
        (msn, part) = next_part(&text);
    }
}

struct Uploader {
    api: common::Api,
    id: String,
    token: String,
    chunks: Vec<Vec<u8>>,
    next: usize,
    bytes_per_s: f64,
}

impl Uploader {
    async fn put(&mut self) {
        let seq = self.next;
        assert!(seq < self.chunks.len(), "the test media ran out: make more");
        let answer = self
            .api
            .put(&self.id, &self.token, seq as u64, self.chunks[seq].clone())
            .await;
        assert!(answer.status().is_success(), "chunk {seq}");
        self.next += 1;
    }

    /// Uploads as fast as taken until `minutes` of media are sent.
    async fn fast_until(&mut self, minutes: f64) {
        let wanted = (minutes * 60.0 * self.bytes_per_s / CHUNK_BYTES as f64) as usize;
        while self.next < wanted.min(self.chunks.len()) {
            self.put().await;
        }
    }

    /// Uploads at real-time pace for `secs`.
    async fn real_time(&mut self, secs: f64) {
        let start = Instant::now();
        let per_chunk = CHUNK_BYTES as f64 / self.bytes_per_s;
        let mut sent = 0.0;
        while start.elapsed().as_secs_f64() < secs {
            self.put().await;
            sent += per_chunk;
            let due = start + Duration::from_secs_f64(sent);
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes: Vec<f64> = common::cli_value("--minutes")
        .unwrap_or("1,20,120".into())
        .split(',')
        .map(|m| m.parse().unwrap())
        .collect();
    let viewers = common::cli_number("--viewers", 20);
    let seconds = common::cli_number("--seconds", 15) as f64;
    let longest = minutes.iter().cloned().fold(0.0, f64::max);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("long.webm");
    // Beyond the longest length: three windows of real-time upload per
    // length, and the catch-up before them.
    let media_s = (longest * 60.0) as u64 + 8 * seconds as u64 + 600;
    eprintln!("making {media_s} s of test media");
    make_webm(&source, media_s);
    let bytes = std::fs::read(&source).unwrap();
    let bytes_per_s = bytes.len() as f64 / media_s as f64;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Every simulated viewer is on loopback, one client address as far as
    // the per-client limits go: they are raised above the viewers' count.
    let limit = (4 * viewers + 16).to_string();
    let (server, base) = common::spawn_server_process(
        &data,
        &[
            "--idle-timeout-s",
            "3600",
            "--max-connections-per-client",
            &limit,
            "--max-waiting-per-client",
            &limit,
        ],
    );
    let pid = server.0.id();
    let api = common::Api::new(base.clone());
    let (id, token) = api.create("long live benchmark").await;
    let mut uploader = Uploader {
        api: common::Api::new(base.clone()),
        id: id.clone(),
        token,
        chunks: bytes.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect(),
        next: 0,
        bytes_per_s,
    };
    println!(
        "| media | segments | full playlist | gzip -1 (nginx) | delta | delta gzip | \
         mode | reloads/s per viewer | bytes/s per viewer | server CPU per reload |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut idle_rows = Vec::new();
    for &at in &minutes {
        uploader.fast_until(at).await;
        // Let the packager catch up with what was sent, at real-time pace.
        let status = loop {
            uploader.real_time(3.0).await;
            let status = api.status(&id).await;
            let listed_s = status["duration_s"].as_f64().unwrap_or(0.0);
            if listed_s >= at * 60.0 - 10.0 {
                break status;
            }
        };
        let playlist = format!("/media/{id}/media.m3u8");
        let full = api.text(&playlist).await;
        let delta = api.text(&format!("{playlist}?_HLS_skip=YES")).await;
        let delta_gzip = gzip_level_1(&delta);
        let idle_start = cpu_ticks(pid);
        uploader.real_time(seconds).await;
        let idle_per_s = (cpu_ticks(pid) - idle_start) as f64 / ticks_per_s() / seconds;
        for delta_mode in [false, true] {
            let totals = Arc::new(Totals {
                reloads: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            });
            let until = Instant::now() + Duration::from_secs_f64(seconds);
            let client = reqwest::Client::new();
            let mut tasks = Vec::new();
            for _ in 0..viewers {
                for name in ["media.m3u8", "audio.m3u8"] {
                    let path = format!("/media/{id}/{name}");
                    let task = viewer(
                        client.clone(),
                        base.clone(),
                        path,
                        delta_mode,
                        until,
                        totals.clone(),
                    );
                    tasks.push(tokio::spawn(task));
                }
            }
            let cpu_start = cpu_ticks(pid);
            let started = Instant::now();
            uploader.real_time(seconds).await;
            for task in tasks {
                task.await.unwrap();
            }
            let elapsed = started.elapsed().as_secs_f64();
            let cpu_s = (cpu_ticks(pid) - cpu_start) as f64 / ticks_per_s();
            let reloads = totals.reloads.load(Ordering::Relaxed) as f64;
            let extra_cpu_s = (cpu_s - idle_per_s * elapsed).max(0.0);
            println!(
                "| {at} min | {} | {} B | {} B | {} B | {delta_gzip} B | {} | {:.1} | {:.0} | {:.0} µs |",
                status["segments"],
                full.len(),
                gzip_level_1(&full),
                delta.len(),
                if delta_mode { "delta+gzip" } else { "full" },
                reloads / elapsed / viewers as f64,
                totals.bytes.load(Ordering::Relaxed) as f64 / elapsed / viewers as f64,
                extra_cpu_s / reloads.max(1.0) * 1e6,
            );
        }
        idle_rows.push((at, status["segments"].clone(), idle_per_s, rss_mib(pid)));
    }
    println!();
    println!("| media | segments | server CPU, no viewers (CPU-s per s) | server RSS after the viewers |");
    println!("|---|---|---|---|");
    for (at, segments, cpu, rss) in idle_rows {
        println!("| {at} min | {segments} | {cpu:.4} | {rss:.1} MiB |");
    }
    drop(server);
}
