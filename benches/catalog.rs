//! The catalog's cost (`scripts/bench-catalog`): the same measurements on
//! two segcast binaries in the same run, taking turns — the v2 build
//! (metadata in files) and this one (metadata in the embedded database).
//!
//! - chunk `PUT` p50/p99: one recording, `--chunks N` 64 KB chunks with
//!   seq ≥ 1 (no ffmpeg starts: storage and acknowledgement alone), one
//!   after another on one connection;
//! - `GET /api/recordings` with `--library N` recordings (10,000): a page of
//!   50 (`?limit=50`; v2 has no paging and answers the whole list) and the
//!   whole list, p50 over 50 requests. The library is written straight
//!   into each build's storage (recording folders for v2, catalog rows for
//!   this one) before the server starts.
//!
//! `--v2 PATH` (required), `--v3 PATH` (default: this build's release
//! binary), `--rounds R` (2); `--check` exits non-zero when a target is
//! missed: PUT p50 within 1.1× of v2's, a page of 50 ≤ 20 ms p50.

#[path = "support/check.rs"]
mod check;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const CHUNK_BYTES: usize = 64 * 1024;

fn arg(flag: &str) -> Option<String> {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1).cloned())
}

fn number(flag: &str, default: usize) -> usize {
    arg(flag).map_or(default, |v| v.parse().expect("a number"))
}

struct Running(Child, String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(bin: &Path, data: &Path) -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "{} did not start", bin.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running(child, base)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Chunk PUT latencies, sorted.
async fn puts(bin: &Path, chunks: usize) -> Vec<Duration> {
    let data = tempfile::tempdir().unwrap();
    let server = start(bin, data.path()).await;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/api/recordings", server.1))
        .json(&serde_json::json!({ "title": "bench" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, token) = (
        created["id"].as_str().unwrap().to_string(),
        created["upload_token"].as_str().unwrap().to_string(),
    );
    let mut times = Vec::with_capacity(chunks);
    for seq in 1..=chunks {
        let body = vec![(seq % 251) as u8; CHUNK_BYTES];
        let started = Instant::now();
        let resp = client
            .put(format!("{}/api/recordings/{id}/chunks/{seq}", server.1))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_eq!(resp.status(), 201, "chunk {seq}");
    }
    times.sort();
    times
}

/// A v2 library: one folder with its `recording.json` per recording.
fn write_v2_library(data: &Path, n: usize) {
    for i in 0..n {
        let id = format!("{i:020}");
        let dir = data.join("recordings").join(&id);
        std::fs::create_dir_all(dir.join("chunks")).unwrap();
        std::fs::create_dir_all(dir.join("hls")).unwrap();
        std::fs::write(dir.join("recording.json"), meta_json(&id, i).to_string()).unwrap();
    }
}

fn meta_json(id: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": id, "title": format!("recording {i}"), "mime": "video/webm",
        "created_at": format!("2026-01-01T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60),
        "token_sha256": "00".repeat(32), "total": 1, "state": "failed",
        "error": "bench", "duration_ms": 0, "segments": 0,
    })
}

/// The same library as catalog rows: v3 brings a v2 directory in at its
/// first start, so the rows are made by the code under test itself.
async fn write_v3_library(bin: &Path, data: &Path, n: usize) {
    write_v2_library(data, n);
    drop(start(bin, data).await);
}

/// p50 of `path` over `tries` requests.
async fn get_p50(base: &str, path: &str, tries: usize) -> (Duration, usize) {
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    let mut listed = 0;
    for _ in 0..tries {
        let started = Instant::now();
        let body: Vec<serde_json::Value> = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        times.push(started.elapsed());
        listed = body.len();
    }
    times.sort();
    (percentile(&times, 0.5), listed)
}

#[tokio::main]
async fn main() {
    let v2 = PathBuf::from(arg("--v2").expect("--v2 PATH: a segcast built at the v2 commit"));
    let v3 = arg("--v3").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/segcast"),
        PathBuf::from,
    );
    let (chunks, library, rounds) = (
        number("--chunks", 300),
        number("--library", 10_000),
        number("--rounds", 2),
    );
    let mut targets = check::Targets::from_args();
    let builds = [("v2 (files)", &v2), ("v3 (catalog)", &v3)];
    let mut put_p50 = [Vec::new(), Vec::new()];
    println!(
        "chunk PUT, {chunks} × {} KB, one connection:",
        CHUNK_BYTES / 1024
    );
    for round in 1..=rounds {
        for (i, (name, bin)) in builds.iter().enumerate() {
            let times = puts(bin, chunks).await;
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            println!(
                "  round {round} {name:13} p50 {:6.2} ms  p99 {:6.2} ms",
                ms(p50),
                ms(p99)
            );
            put_p50[i].push(ms(p50));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (old, new) = (median(&mut put_p50[0]), median(&mut put_p50[1]));
    targets.expect(
        new <= old * 1.1,
        format!("chunk PUT p50 {new:.2} ms within 1.1× of v2's {old:.2} ms"),
    );

    println!("GET /api/recordings, {library} recordings, p50 of 50:");
    for (name, bin) in builds {
        let data = tempfile::tempdir().unwrap();
        if name.starts_with("v2") {
            write_v2_library(data.path(), library);
        } else {
            write_v3_library(bin, data.path(), library).await;
        }
        let server = start(bin, data.path()).await;
        let (page, paged) = get_p50(&server.1, "/api/recordings?limit=50", 50).await;
        let (all, listed) = get_p50(&server.1, "/api/recordings", 20).await;
        if listed != library {
            targets.broken(format!("{name} listed {listed} of {library}"));
        }
        println!(
            "  {name:13} ?limit=50: {:6.2} ms ({paged} listed)  whole list: {:7.2} ms",
            ms(page),
            ms(all)
        );
        if name.starts_with("v3") {
            targets.expect(
                ms(page) <= 20.0,
                format!("a page of 50 in {:.2} ms p50 (≤ 20 ms)", ms(page)),
            );
        }
    }
    targets.finish();
}
