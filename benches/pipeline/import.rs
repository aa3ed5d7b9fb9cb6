//! (c) Import: a 60 s 1080p30 H.264/AAC MP4 through segcast's import
//!     (probe → `-c copy` → packaging → ready) versus plain
//!     `ffmpeg -c copy -f hls -hls_segment_type fmp4`; and a 60 s VP9/Opus
//!     WebM, transcoded, versus plain ffmpeg with the same encoder arguments.
//!     segcast is timed twice: from a file dropped into the inbox (the
//!     pipeline plain ffmpeg is compared with: the file is already on disk)
//!     and from the start of an HTTP upload (what a user waits for).
//!     Alternating runs, medians of wall and CPU time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipeline::transcode::args::{encode_args, EncodeSettings};

use super::check::Targets;
use super::common::cpu_s;
use super::{run_plain_hls, wait_status, Cost, InProcess};

/// Status polling: fine enough not to blur sub-second imports. Each poll
/// is an HTTP request served in this process, so the waits for ready use
/// [`poll_after`], which backs off: 6000 polls over a 30 s transcode
/// would cost more CPU than segcast's packaging.
const POLL: Duration = Duration::from_millis(5);

/// 5 ms for the first second, then 5 % of the time waited so far.
fn poll_after(waited: Duration) -> Duration {
    POLL.max(waited / 20)
}

/// The two imports measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Copy,
    Transcode,
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    work: &Path,
    secs: u32,
    runs: usize,
    targets: &mut Targets,
) {
    let config = segcast::Config::with_data_dir(work.join("data"));
    for kind in [Kind::Copy, Kind::Transcode] {
        let source = make_source(work, kind, secs);
        let size = std::fs::metadata(&source).unwrap().len();
        let label = match kind {
            Kind::Copy => "1920x1080@30 H.264/AAC MP4",
            Kind::Transcode => "1920x1080@30 VP9/Opus WebM",
        };
        println!("\nsource: {secs} s {label}, {size} bytes");
        let (mut plain, mut ours, mut http) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let out = work.join(format!("plain-import-{run}"));
            plain.push(run_plain(
                &source,
                kind,
                &EncodeSettings::from(&config),
                &out,
            ));
            ours.push(rt.block_on(run_import(&source, config.clone(), Door::Inbox)));
            http.push(rt.block_on(run_import(&source, config.clone(), Door::Http)));
            println!(
                "run {run}: plain {}  segcast inbox {}  segcast http {}",
                plain[run], ours[run], http[run]
            );
        }
        let (plain, ours, http) = (
            Cost::median(&plain),
            Cost::median(&ours),
            Cost::median(&http),
        );
        let (what, target) = match kind {
            Kind::Copy => ("(c) import with -c copy", "≤ 1.1, and ≥ 100× real time"),
            Kind::Transcode => ("(d) import with transcoding", "≤ 1.05"),
        };
        println!("\n{what}, {secs} s of 1080p30, median of {runs}");
        println!("    plain ffmpeg -f hls fmp4     : {plain}");
        println!("    segcast, file in the inbox   : {ours}");
        println!("    segcast, HTTP upload + import: {http}");
        println!(
            "    ratio segcast/plain          : wall {:.3}, cpu {:.3}  (target {target})",
            ours.wall_s / plain.wall_s,
            ours.cpu_s / plain.cpu_s
        );
        let speed = |c: &Cost| f64::from(secs) / c.wall_s;
        println!(
            "    speed (× real time)          : plain {:.0}, segcast {:.0}, with upload {:.0}",
            speed(&plain),
            speed(&ours),
            speed(&http)
        );
        // The targets are on wall time (docs/benchmarks.md, "Imports").
        let wall = ours.wall_s / plain.wall_s;
        let met = match kind {
            Kind::Copy => wall <= 1.1 && speed(&ours) >= 100.0,
            Kind::Transcode => wall <= 1.05,
        };
        targets.expect(
            met,
            format!(
                "{what}: wall {wall:.3} of plain ffmpeg's, {:.0}× real time (target {target})",
                speed(&ours)
            ),
        );
    }
}

fn make_source(dir: &Path, kind: Kind, secs: u32) -> PathBuf {
    let (name, codecs): (&str, &[&str]) = match kind {
        // A camera-like GOP of 2 s.
        Kind::Copy => (
            "import.mp4",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "60",
                "-b:v",
                "8M",
                "-c:a",
                "aac",
            ],
        ),
        Kind::Transcode => (
            "import.webm",
            &[
                &super::common::VP9_FAST[..],
                &["-row-mt", "1", "-b:v", "4M", "-c:a", "libopus"],
            ]
            .concat(),
        ),
    };
    let path = dir.join(name);
    super::common::make_test_media(&path, "1920x1080", secs, codecs);
    path
}

fn run_plain(source: &Path, kind: Kind, settings: &EncodeSettings, out: &Path) -> Cost {
    let codec_args = match kind {
        Kind::Copy => vec!["-c".to_string(), "copy".to_string()],
        Kind::Transcode => encode_args(settings),
    };
    run_plain_hls(&[], source, &["0:v:0", "0:a:0"], &codec_args, settings, out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    Inbox,
    Http,
}

/// Imports `source` into an in-process segcast, until `ready`.
async fn run_import(source: &Path, mut config: segcast::Config, door: Door) -> Cost {
    // Whether the watcher or the start-up scan sees the file first, it is
    // taken at once (it is complete).
    config.inbox_settle_ms = 0;
    let server = InProcess::start(config).await;
    let (base, data) = (server.base.clone(), &server.data);
    // Same file system as the inbox, so dropping it in is a rename.
    let staged = data.path().join(source.file_name().unwrap());
    std::fs::copy(source, &staged).unwrap();
    let client = reqwest::Client::new();
    let name = source.file_name().unwrap().to_str().unwrap();
    // The server is up once it answers; the inbox is watched by then.
    wait_status(&client, &format!("{base}/api/recordings"), POLL, |_| true).await;
    while !data.path().join("inbox/done").exists() {
        tokio::time::sleep(POLL).await;
    }
    let (start, cpu) = (Instant::now(), cpu_s());
    let id = match door {
        Door::Inbox => {
            std::fs::rename(&staged, data.path().join("inbox").join(name)).unwrap();
            let listed = wait_status(&client, &format!("{base}/api/recordings"), POLL, |l| {
                l.as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
            listed[0]["id"].as_str().unwrap().to_string()
        }
        Door::Http => {
            // Streamed from the file in 64 KiB pieces, as curl sends it.
            let file = tokio::fs::File::open(&staged).await.unwrap();
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
            let body = reqwest::Body::wrap_stream(stream);
            let created: serde_json::Value = client
                .post(format!("{base}/api/imports?name={name}"))
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            created["id"].as_str().expect("import created").to_string()
        }
    };
    let url = format!("{base}/api/recordings/{id}");
    let done = loop {
        let status: serde_json::Value =
            client.get(&url).send().await.unwrap().json().await.unwrap();
        if status["state"] == "ready" || status["state"] == "failed" {
            break status;
        }
        tokio::time::sleep(poll_after(start.elapsed())).await;
    };
    assert_eq!(done["state"], "ready", "{done}");
    let cost = Cost {
        wall_s: start.elapsed().as_secs_f64(),
        cpu_s: cpu_s() - cpu,
        ..Default::default()
    };
    server.stop().await;
    cost
}
