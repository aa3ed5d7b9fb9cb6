//! Serving benchmark (run with `scripts/bench-serve`): segcast against nginx
//! serving the same files in the same run, on loopback, with wrk as the
//! client. One connection gives the p50 latency a lone viewer sees; 32
//! connections give requests/s (and p50/p99) under a crowd.
//!
//! segcast runs as its own process (the release build) on a data directory;
//! nginx runs beside it with a generated config whose root is that
//! directory's `recordings/`, so `/media/<id>/<file>` on segcast and
//! `/<id>/hls/<file>` on nginx are the same file. A live recording is
//! uploaded at real-time pace in 0.25 s chunks while the live rows are
//! measured; then the rest goes up at once and it is finished, segcast is
//! restarted on the same data directory (nothing in memory), and the
//! finished rows are measured.
//!
//! Rows: the live media playlist (segcast: memory; nginx: the file segcast
//! rewrites), a blocking playlist reload that is already satisfied (segcast
//! only), a part (segcast: memory; nginx has no part files, so it serves the
//! same bytes as a `Range` of the segment file), the newest segment of the
//! live recording (segcast: memory), then a segment and the playlist of the
//! finished recording after the restart (both from disk). Last, the wake-up
//! spread: K requests blocked on the next part, the time from the first
//! answer to the last, for R parts in a row (reqwest: wrk cannot time
//! single requests).
//!
//! Each nginx/segcast comparison takes turns: three rounds per cell, each
//! server's cell its median round, so drift in the machine's load falls on
//! both alike. Besides wrk's figures, each cell has the server's own CPU
//! time per answer (`/proc/<pid>/stat` around the run; nginx: its
//! workers), which is steadier than requests/s when wrk shares the cores.
//!
//! `--cell-seconds S` (8), `--size WxH` (640x360), `--waiters K` (32),
//! `--wake-rounds R` (20); `--check` exits non-zero when a target is
//! missed. `SEGCAST_BENCH_NGINX` and `SEGCAST_BENCH_WRK`
//! name the binaries (default `nginx`, `wrk`).
//!
//! Here: the flow (the live phase, the restart, the finished rows) and the
//! report. [`live`] uploads the live recording and measures its rows,
//! [`cells`] measures one row's cells, [`wrk`] runs wrk, [`nginx`] starts
//! nginx, and [`procs`] reads `/proc` and looks after the processes.

#[path = "../support/check.rs"]
mod check;
#[path = "../../tests/common/mod.rs"]
mod common;

mod cells;
mod live;
mod nginx;
mod procs;
mod wrk;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cells::{measure_pair, Row, Server, ROUNDS};
use live::{fetch, listing, live_rows, upload, wake_up, CHUNK_MS};
use nginx::Nginx;
use procs::{children, first_line, load_average, stop, watchdog, CHILDREN};
use wrk::{Load, WRK_SCRIPT};

/// The live edge keeps the 4 newest closed segments (8 s of 2 s segments):
/// a cell on what segcast holds in memory must end before it leaves.
const EDGE_CELL_MAX_S: u64 = 6;
/// Segments listed before the live rows start.
const WARM_SEGMENTS: usize = 3;

struct Args {
    cell_s: u64,
    size: String,
    waiters: usize,
    wake_rounds: usize,
}

fn args() -> Args {
    let (value, number) = (common::cli_value, common::cli_number);
    Args {
        cell_s: number("--cell-seconds", 8) as u64,
        size: value("--size").unwrap_or_else(|| "640x360".into()),
        waiters: number("--waiters", 32),
        wake_rounds: number("--wake-rounds", 20),
    }
}

/// What the measuring code shares. Its fields stay private: the modules
/// of the benchmark sit below this crate root, so they see them anyway.
pub(crate) struct Ctx {
    wrk: String,
    wrk_script: PathBuf,
    cores: usize,
    cell_s: u64,
    /// One turn of a server in a comparison: [`ROUNDS`] of them fill a cell.
    round_s: u64,
    /// The same for what segcast holds in memory, where both servers' turns
    /// must fit in the time it stays there.
    edge_round_s: u64,
    nginx: String,
    data: PathBuf,
    client: reqwest::Client,
    notes: Mutex<Vec<String>>,
    /// nginx's master process: its children do the work.
    nginx_master: u32,
    /// segcast's process (replaced on restart).
    segcast_pid: Mutex<u32>,
}

impl Ctx {
    /// The processes that do `server`'s work.
    pub(crate) fn pids(&self, server: Server) -> Vec<u32> {
        match server {
            Server::Nginx => children(self.nginx_master),
            Server::Segcast => vec![*self.segcast_pid.lock().unwrap()],
        }
    }
}

impl Ctx {
    pub(crate) fn note(&self, note: String) {
        eprintln!("bench-serve: {note}");
        self.notes.lock().unwrap().push(note);
    }

    pub(crate) fn hls_dir(&self, id: &str) -> PathBuf {
        self.data.join("recordings").join(id).join("hls")
    }
}

/// wrk's 32 connections and the waiters all come from 127.0.0.1: the
/// per-client caps, meant for one real client, are lifted.
const LIFTED_CAPS: [&str; 4] = [
    "--max-connections-per-client",
    "100000",
    "--max-waiting-per-client",
    "100000",
];

fn main() {
    let args = args();
    watchdog();
    let work = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = work.path().join("data");
    let edge_cell_s = args.cell_s.min(EDGE_CELL_MAX_S);
    // Startup, the live cells with their alignments, the wake-up rounds,
    // and a margin: the recording must stay live until they are done.
    let live_s = 15 + 6 * args.cell_s + 8 * edge_cell_s + 16 + args.wake_rounds as u64 / 2 + 40;
    println!(
        "bench-serve: making {live_s} s of {} VP8/Opus, uploaded in {CHUNK_MS} ms chunks",
        args.size
    );
    let source = common::make_webm(work.path(), live_s as u32, &args.size);
    let bytes = std::fs::read(&source).unwrap();
    let pieces = (live_s * 1000 / CHUNK_MS) as usize;
    let chunks = Arc::new(common::cut_randomly(&bytes, pieces, 9));

    let (mut server, base) = common::spawn_server_process(&data, &LIFTED_CAPS);
    CHILDREN.lock().unwrap().push(server.0.id());
    let recordings = data.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let nginx_dir = work.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let nginx_binary = std::env::var("SEGCAST_BENCH_NGINX").unwrap_or_else(|_| "nginx".into());
    let nginx = Nginx::start(&nginx_binary, &nginx_dir, &recordings, cores);
    let ctx = Arc::new(Ctx {
        wrk: std::env::var("SEGCAST_BENCH_WRK").unwrap_or_else(|_| "wrk".into()),
        wrk_script: work.path().join("report.lua"),
        cores,
        cell_s: args.cell_s,
        round_s: (args.cell_s / ROUNDS as u64).max(1),
        edge_round_s: (edge_cell_s / (2 * ROUNDS as u64)).max(1),
        nginx: nginx.base.clone(),
        data,
        client: reqwest::Client::new(),
        notes: Mutex::default(),
        nginx_master: nginx.child.id(),
        segcast_pid: Mutex::new(server.0.id()),
    });
    std::fs::write(&ctx.wrk_script, WRK_SCRIPT).unwrap();
    let load_before = load_average();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (id, mut rows, wake) = rt.block_on(live_phase(&ctx, &base, chunks, &args));

    // Restart on the same data directory: nothing of it in memory.
    stop(&mut server.0, Duration::from_secs(20));
    let (server, base) = common::spawn_server_process(&ctx.data, &LIFTED_CAPS);
    CHILDREN.lock().unwrap().push(server.0.id());
    *ctx.segcast_pid.lock().unwrap() = server.0.id();
    rows.extend(rt.block_on(finished_rows(&ctx, &base, &id)));
    let load_after = load_average();
    drop(server);
    drop(nginx);
    let loads = [load_before.as_str(), load_after.as_str()];
    print_report(&ctx, &args, &rows, &wake, loads, &nginx_binary);
}

async fn live_phase(
    ctx: &Arc<Ctx>,
    base: &str,
    chunks: Arc<Vec<Vec<u8>>>,
    args: &Args,
) -> (String, Vec<Row>, (Vec<Duration>, Duration)) {
    let api = common::Api::new(base.to_string());
    let (id, token) = api.create("bench-serve").await;
    let hurry = Arc::new(AtomicBool::new(false));
    let uploader = tokio::spawn(upload(
        base.into(),
        id.clone(),
        token,
        chunks,
        hurry.clone(),
    ));
    let media = format!("{base}/media/{id}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    while listing(ctx, &media).await.segments.len() < WARM_SEGMENTS {
        assert!(Instant::now() < deadline, "no segments after 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rows = live_rows(ctx, base, &id).await;
    let wake = wake_up(ctx, &media, args.waiters, args.wake_rounds).await;
    if uploader.is_finished() || listing(ctx, &media).await.ended {
        ctx.note("the recording ended before the live rows did: make the source longer".into());
    }
    hurry.store(true, Ordering::Relaxed);
    uploader.await.unwrap();
    let status = api
        .wait_for(&id, Duration::from_secs(180), |s| {
            s["state"] != "recording" && s["state"] != "processing"
        })
        .await;
    if status["state"] != "ready" {
        ctx.note(format!(
            "the recording ended {}, not ready",
            status["state"]
        ));
    }
    (id, rows, wake)
}

/// A finished recording after a restart: the playlist and a segment in
/// its middle, both from disk for both servers.
async fn finished_rows(ctx: &Arc<Ctx>, base: &str, id: &str) -> Vec<Row> {
    let media = format!("{base}/media/{id}/");
    let nginx_media = format!("{}/{id}/hls/", ctx.nginx);
    let listing = listing(ctx, &media).await;
    assert!(listing.ended, "the finished playlist has ENDLIST");
    let middle = listing.segments[listing.segments.len() / 2].clone();
    let mut rows = Vec::new();
    for (name, file, target) in [
        ("finished segment, after restart", middle.as_str(), true),
        ("finished playlist, after restart", "media.m3u8", false),
    ] {
        let mut row = Row::new(name, target);
        let url = format!("{media}{file}");
        if !fetch(&ctx.client, &url, None).await.from_disk {
            ctx.note(format!(
                "{name}: segcast answered without Last-Modified (not from disk?)"
            ));
        }
        let nginx_url = format!("{nginx_media}{file}");
        for level in 0..2 {
            let sides = [
                (Server::Nginx, nginx_url.as_str(), None),
                (Server::Segcast, url.as_str(), None),
            ];
            let [by_nginx, by_segcast] =
                measure_pair(ctx, &mut row, level, sides, ctx.round_s).await;
            assert_eq!(by_nginx, by_segcast, "{file}: the same bytes from both");
        }
        rows.push(row);
    }
    rows
}

pub(crate) fn latency(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

fn rate(rps: f64) -> String {
    if rps >= 1000.0 {
        format!("{:.1}k", rps / 1000.0)
    } else {
        format!("{rps:.0}")
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 10_000 {
        format!("{} KB", (bytes + 500) / 1000)
    } else {
        format!("{bytes} B")
    }
}

fn print_report(
    ctx: &Ctx,
    args: &Args,
    rows: &[Row],
    wake: &(Vec<Duration>, Duration),
    load: [&str; 2],
    nginx_binary: &str,
) {
    let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    let commit = first_line("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
    let dirty = !first_line("git", &["-C", repo, "status", "--porcelain", "src"]).is_empty();
    let wrk = first_line(&ctx.wrk, &["-v"]);
    let wrk = wrk.split(" Copyright").next().unwrap_or_default();
    println!(
        "\n{date}; {} cores; load average {} before, {} after",
        ctx.cores, load[0], load[1]
    );
    println!(
        "segcast {commit}{} (release); {}; {}; nginx worker_processes {}, wrk threads = min(connections, cores)",
        if dirty { " + uncommitted changes in src/" } else { "" },
        first_line(nginx_binary, &["-v"]),
        wrk,
        ctx.cores
    );
    println!(
        "each cell: the median of {ROUNDS} turns of {} s, nginx and segcast alternating ({} s for what segcast holds in memory; the blocking reload one run of {} s); live source {} VP8/Opus → x264\n",
        ctx.round_s, ctx.edge_round_s, ctx.cell_s, args.size
    );
    println!("| resource | nginx p50 @1 | segcast p50 @1 | ratio | nginx req/s @32 | segcast req/s @32 | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        print_main_row(row);
    }
    println!("\n| resource | size | nginx p50 / p99 @32 | segcast p50 / p99 @32 | server CPU per answer @32: nginx / segcast |");
    println!("|---|---|---|---|---|");
    for row in rows {
        let pair = |server| {
            row.cell(server, 1).map_or("n/a".to_string(), |l| {
                format!("{} / {}", latency(l.p50_us), latency(l.p99_us))
            })
        };
        let sizes = |server: Server| {
            let mut sizes: Vec<String> = row.cells[server as usize]
                .iter()
                .flatten()
                .map(|l| size(l.size))
                .collect();
            sizes.dedup();
            sizes.join(", ")
        };
        let (ours, theirs) = (sizes(Server::Segcast), sizes(Server::Nginx));
        let size = if theirs.is_empty() || theirs == ours {
            ours
        } else {
            format!("{ours} (nginx: {theirs})")
        };
        let cpu = |server| {
            row.cell(server, 1)
                .map_or("n/a".into(), |l| format!("{:.1} µs", l.cpu_us))
        };
        println!(
            "| {} | {size} | {} | {} | {} / {} |",
            row.name,
            pair(Server::Nginx),
            pair(Server::Segcast),
            cpu(Server::Nginx),
            cpu(Server::Segcast)
        );
    }
    print_wake_and_targets(ctx, args, rows, wake);
}

fn print_main_row(row: &Row) {
    let p50 = |server| row.cell(server, 0).map(|l| l.p50_us);
    let rps = |server| row.cell(server, 1).map(Load::rps);
    let show = |v: Option<f64>, f: fn(f64) -> String| v.map_or("n/a".into(), f);
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".into(),
    };
    println!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        row.name,
        show(p50(Server::Nginx), latency),
        show(p50(Server::Segcast), latency),
        ratio(p50(Server::Segcast), p50(Server::Nginx)),
        show(rps(Server::Nginx), rate),
        show(rps(Server::Segcast), rate),
        ratio(rps(Server::Segcast), rps(Server::Nginx)),
    );
}

fn print_wake_and_targets(ctx: &Ctx, args: &Args, rows: &[Row], wake: &(Vec<Duration>, Duration)) {
    let mut spreads = wake.0.clone();
    spreads.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if spreads.is_empty() {
        spreads.push(Duration::ZERO);
    }
    println!(
        "\nwake-up: {} requests blocked on the next part, first → last answer, over {} parts: p50 {:.2} ms, max {:.2} ms (shortest wait {:.0} ms: all were blocked)",
        args.waiters,
        spreads.len(),
        ms(spreads[spreads.len() / 2]),
        ms(*spreads.last().unwrap()),
        ms(wake.1)
    );
    let mut targets = check::Targets::from_args();
    for row in rows {
        let (Some(n1), Some(s1)) = (row.cell(Server::Nginx, 0), row.cell(Server::Segcast, 0))
        else {
            continue;
        };
        let slower = s1.p50_us / n1.p50_us;
        targets.expect(
            slower <= 3.0,
            format!("{}: p50 @1 is {slower:.1}× nginx's (target ≤ 3×)", row.name),
        );
        let (Some(n32), Some(s32)) = (row.cell(Server::Nginx, 1), row.cell(Server::Segcast, 1))
        else {
            continue;
        };
        let share = s32.rps() / n32.rps();
        if row.throughput_target {
            targets.expect(
                share >= 0.9,
                format!(
                    "{}: {share:.2}× nginx's req/s @32 (target ≥ 0.9×); server CPU per answer {:.2}× nginx's",
                    row.name,
                    s32.cpu_us / n32.cpu_us.max(f64::MIN_POSITIVE)
                ),
            );
        }
    }
    for note in ctx.notes.lock().unwrap().iter() {
        println!("note: {note}");
    }
    targets.finish();
}
