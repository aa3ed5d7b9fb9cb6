//! Live capacity benchmark (run with `scripts/bench-capacity`): how many
//! recordings uploaded at real time one server holds, transcoding (VP8 →
//! H.264, what Firefox and default Chromium cost) against copying (H.264
//! with 1 s keyframes, what the record page asks Chromium and Safari for).
//!
//! For each size (640x360, 1280x720), mode and count N, N recordings of the
//! same source are uploaded at once, each in 0.25 s chunks at real-time
//! pace (the record page's timeslice), to one segcast served in this
//! process. Reported per run:
//! - CPU: this process (server + uploaders) and its reaped children (every
//!   ffmpeg and ffprobe) over the run, per recording and per second of
//!   media, so `0.50` means half a core per live recording;
//! - lag: media uploaded minus media published when the last chunk went in
//!   (what a viewer is behind beyond the normal pipeline), worst recording;
//! - tail: finish → `ready`, worst recording.
//!
//! Lag that grows with N is where the machine stops keeping up.
//! `--quick` runs a short smoke version (6 s: fixed costs such as the
//! first-chunk probes and the poster weigh more than in a real recording);
//! `--counts 1,2` runs only those N. Figures go to docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;
use common::cpu_s;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECS: u32 = 30;
const SLICE_MS: u64 = 250;
const COUNTS: [usize; 5] = [1, 2, 4, 6, 8];

#[derive(Clone, Copy, Debug)]
enum Mode {
    Transcode,
    Copy,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--counts 1,2`: only these N (a per-recording cost needs N = 1 only).
    let chosen: Option<Vec<usize>> = args
        .iter()
        .position(|a| a == "--counts")
        .and_then(|i| args.get(i + 1))
        .map(|list| {
            list.split(',')
                .map(|n| n.parse().expect("--counts 1,2,4"))
                .collect()
        });
    let (secs, default_counts): (u32, &[usize]) =
        if quick { (6, &[1, 2]) } else { (SECS, &COUNTS) };
    let counts = chosen.as_deref().unwrap_or(default_counts);
    let work = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("size      mode       N  cpu/rec/media-s  lag max s  tail max s  video");
    for size in ["640x360", "1280x720"] {
        for mode in [Mode::Transcode, Mode::Copy] {
            let source = make_source(work.path(), size, mode, secs);
            let bytes = std::fs::read(&source).unwrap();
            for &n in counts {
                let run = rt.block_on(run(&bytes, secs, n));
                println!(
                    "{size:<9} {:<10} {n:<2} {:>15.3}  {:>9.2}  {:>10.2}  {}",
                    format!("{mode:?}").to_lowercase(),
                    run.cpu_s / n as f64 / f64::from(secs),
                    run.lag_max_s,
                    run.tail_max_s,
                    run.video
                );
            }
        }
    }
}

/// H.264 (Constrained Baseline, a keyframe a second, as Chromium with
/// `videoKeyFrameIntervalDuration: 1000`) or VP8, with Opus, in Matroska.
fn make_source(dir: &Path, size: &str, mode: Mode, secs: u32) -> PathBuf {
    let path = dir.join(format!("{size}-{mode:?}.webm"));
    let video: &[&str] = match mode {
        Mode::Copy => &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-b:v",
            "2M",
        ],
        Mode::Transcode => &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "150",
            "-b:v",
            "2M",
        ],
    };
    let audio = [
        "-c:a", "libopus", "-b:a", "64k", "-f", "matroska", "-live", "1",
    ];
    common::make_test_media(&path, size, secs, &[video, &audio].concat());
    path
}

struct Run {
    cpu_s: f64,
    lag_max_s: f64,
    tail_max_s: f64,
    video: String,
}

async fn run(bytes: &[u8], secs: u32, n: usize) -> Run {
    let data = tempfile::tempdir().unwrap();
    let mut config = segcast::Config::with_data_dir(data.path());
    config.max_live_recordings = n.max(16);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = common::Api::new(format!("http://{}", listener.local_addr().unwrap()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(segcast::serve(listener, config, async {
        let _ = stopped.await;
    }));
    // Real-time pieces: each carries a slice's share of the bytes.
    let slices = (u64::from(secs) * 1000 / SLICE_MS) as usize;
    let piece = bytes.len().div_ceil(slices);
    let chunks: Vec<Vec<u8>> = bytes.chunks(piece).map(<[u8]>::to_vec).collect();
    let before = cpu_s();
    let recordings = (0..n).map(|i| record(&api, format!("capacity {i}"), &chunks, secs));
    let results = futures_util::future::join_all(recordings).await;
    let cpu = cpu_s() - before;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    Run {
        cpu_s: cpu,
        lag_max_s: results.iter().map(|r| r.0).fold(0.0, f64::max),
        tail_max_s: results.iter().map(|r| r.1).fold(0.0, f64::max),
        video: results[0].2.clone(),
    }
}

/// One recording at real-time pace; (lag at the last chunk, finish →
/// ready, what became of the video).
async fn record(
    api: &common::Api,
    title: String,
    chunks: &[Vec<u8>],
    secs: u32,
) -> (f64, f64, String) {
    let (id, token) = api.create(&title).await;
    let start = Instant::now();
    for (seq, chunk) in chunks.iter().enumerate() {
        let due = start + Duration::from_millis(seq as u64 * SLICE_MS);
        tokio::time::sleep_until(due.into()).await;
        let status = api
            .put(&id, &token, seq as u64, chunk.clone())
            .await
            .status();
        assert_eq!(status, 201, "chunk {seq}");
    }
    let uploaded_s = f64::from(secs);
    let published = api.status(&id).await["duration_s"].as_f64().unwrap_or(0.0);
    let finished = Instant::now();
    api.finish(&id, &token, chunks.len() as u64).await;
    let ready = api
        .wait_for(&id, Duration::from_secs(600), |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    assert_eq!(ready["state"], "ready", "{ready:#}");
    let video = ready["video"].as_str().unwrap_or("none").to_string();
    (
        uploaded_s - published,
        finished.elapsed().as_secs_f64(),
        video,
    )
}
