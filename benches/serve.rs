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
//! `--wake-rounds R` (20). `SEGCAST_BENCH_NGINX` and `SEGCAST_BENCH_WRK`
//! name the binaries (default `nginx`, `wrk`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Media per uploaded chunk, like the record page's MediaRecorder slices.
const CHUNK_MS: u64 = 250;
/// The live edge keeps the 4 newest closed segments (8 s of 2 s segments):
/// a cell on what segcast holds in memory must end before it leaves.
const EDGE_CELL_MAX_S: u64 = 6;
/// Load levels: a lone viewer, and a crowd one address may open.
const CONNS: [usize; 2] = [1, 32];
/// Turns nginx and segcast take at each cell of a comparison.
const ROUNDS: usize = 3;
/// Segments listed before the live rows start.
const WARM_SEGMENTS: usize = 3;
/// Beyond this the benchmark is stuck: children are killed, exit 2.
const WATCHDOG: Duration = Duration::from_secs(20 * 60);

/// Prints wrk's figures in a form this file parses (µs, exact percentiles).
const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f errors=%.0f non_2xx=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#;

/// Processes to kill if the watchdog fires.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

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

/// What the measuring code shares.
struct Ctx {
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
    fn pids(&self, server: Server) -> Vec<u32> {
        match server {
            Server::Nginx => children(self.nginx_master),
            Server::Segcast => vec![*self.segcast_pid.lock().unwrap()],
        }
    }
}

impl Ctx {
    fn note(&self, note: String) {
        eprintln!("bench-serve: {note}");
        self.notes.lock().unwrap().push(note);
    }

    fn hls_dir(&self, id: &str) -> PathBuf {
        self.data.join("recordings").join(id).join("hls")
    }
}

// ---------------------------------------------------------------- wrk

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
struct Load {
    requests: u64,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    non_2xx: u64,
    /// Body bytes of one answer.
    size: usize,
    /// The server's CPU time (user + system) per answer, µs: what it
    /// costs to serve one, apart from how wrk, sharing the cores, fared.
    cpu_us: f64,
}

impl Load {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

fn run_wrk(ctx: &Ctx, url: &str, conns: usize, secs: u64, range: Option<(u64, u64)>) -> Load {
    let threads = conns.min(ctx.cores).max(1);
    let mut command = Command::new(&ctx.wrk);
    command
        .args(["-t", &threads.to_string(), "-c", &conns.to_string()])
        .args(["-d", &format!("{secs}s"), "--timeout", "5s", "-s"])
        .arg(&ctx.wrk_script);
    if let Some((first, last)) = range {
        command.args(["-H", &format!("Range: bytes={first}-{last}")]);
    }
    die_with_parent(&mut command, libc::SIGKILL);
    let out = command.arg(url).output().expect("wrk runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .unwrap_or_else(|| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            panic!("wrk gave no result for {url}: {stdout}{stderr}")
        });
    let field = |name: &str| -> f64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    Load {
        requests: field("requests") as u64,
        secs: field("duration_us") / 1e6,
        p50_us: field("p50_us"),
        p99_us: field("p99_us"),
        errors: field("errors") as u64,
        non_2xx: field("non_2xx") as u64,
        size: 0,
        cpu_us: 0.0,
    }
}

/// CPU time (user + system) the processes have used, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command's closing parenthesis: fields 3…; utime and
            // stime are fields 14 and 15 (proc(5)).
            let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let field = |n: usize| -> u64 {
                rest.split_whitespace()
                    .nth(n - 3)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            field(14) + field(15)
        })
        .sum()
}

/// nginx's worker processes: the master's children.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Which server a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Nginx,
    Segcast,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Self::Nginx => "nginx",
            Self::Segcast => "segcast",
        })
    }
}

/// A measured resource: `[server][load level]`.
struct Row {
    name: String,
    cells: [[Option<Load>; 2]; 2],
    /// The issue's throughput target applies (segments and parts).
    throughput_target: bool,
}

impl Row {
    fn new(name: impl Into<String>, throughput_target: bool) -> Self {
        Self {
            name: name.into(),
            cells: [[None; 2]; 2],
            throughput_target,
        }
    }

    fn cell(&self, server: Server, level: usize) -> Option<&Load> {
        self.cells[server as usize][level].as_ref()
    }
}

/// Runs wrk on the whole file at `url` for one cell of `row`; returns the
/// body of one answer.
async fn measure(
    ctx: &Arc<Ctx>,
    row: &mut Row,
    (server, level): (Server, usize),
    url: &str,
    secs: u64,
) -> Bytes {
    let (load, body) = run_cell(ctx, &row.name, (server, level), url, None, secs).await;
    row.cells[server as usize][level] = Some(load);
    body
}

/// One side of a comparison: which server, its URL, and the bytes `range`
/// (inclusive) when it serves a part of a file.
type Side<'a> = (Server, &'a str, Option<(u64, u64)>);

/// nginx and segcast take turns, [`ROUNDS`] times `round_s` each, and each
/// cell is its median round: a drift in the machine's load (the live
/// encode, the host) falls on both alike. Returns one answer's body of each.
async fn measure_pair(
    ctx: &Arc<Ctx>,
    row: &mut Row,
    level: usize,
    sides: [Side<'_>; 2],
    round_s: u64,
) -> [Bytes; 2] {
    let mut runs: [Vec<Load>; 2] = Default::default();
    let mut bodies: [Bytes; 2] = Default::default();
    for _ in 0..ROUNDS {
        for (i, &(server, url, range)) in sides.iter().enumerate() {
            let (load, body) = run_cell(ctx, &row.name, (server, level), url, range, round_s).await;
            runs[i].push(load);
            bodies[i] = body;
        }
    }
    for (i, &(server, ..)) in sides.iter().enumerate() {
        row.cells[server as usize][level] = Some(median(&mut runs[i]));
    }
    bodies
}

/// The round with the median requests/s, with the median CPU per answer.
fn median(runs: &mut [Load]) -> Load {
    runs.sort_by(|a, b| a.cpu_us.total_cmp(&b.cpu_us));
    let cpu_us = runs[runs.len() / 2].cpu_us;
    runs.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
    Load {
        cpu_us,
        ..runs[runs.len() / 2]
    }
}

/// One wrk run of `secs` on `url` (the bytes `range`, inclusive, when
/// given); a single request checks the answer first (200, or 206 for a
/// range) and is returned.
async fn run_cell(
    ctx: &Arc<Ctx>,
    name: &str,
    (server, level): (Server, usize),
    url: &str,
    range: Option<(u64, u64)>,
    secs: u64,
) -> (Load, Bytes) {
    let probe = fetch(&ctx.client, url, range).await;
    let wanted = if range.is_some() { 206 } else { 200 };
    assert_eq!(probe.status, wanted, "GET {url} {range:?}");
    let conns = CONNS[level];
    let (task_ctx, task_url) = (ctx.clone(), url.to_string());
    let pids = ctx.pids(server);
    let before = cpu_ticks(&pids);
    let mut load =
        tokio::task::spawn_blocking(move || run_wrk(&task_ctx, &task_url, conns, secs, range))
            .await
            .unwrap();
    let ticks = cpu_ticks(&pids).saturating_sub(before);
    // SAFETY: sysconf(3) with a valid name.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    load.cpu_us = ticks as f64 / per_s * 1e6 / load.requests.max(1) as f64;
    load.size = probe.bytes.len();
    if load.errors + load.non_2xx > 0 {
        ctx.note(format!(
            "{name} {server} @{conns}: {} socket errors, {} non-2xx answers",
            load.errors, load.non_2xx
        ));
    }
    eprintln!(
        "bench-serve: {name} {server} @{conns}: {:.0} req/s, p50 {}, p99 {}, {:.1} µs CPU per answer",
        load.rps(),
        latency(load.p50_us),
        latency(load.p99_us),
        load.cpu_us
    );
    (load, probe.bytes)
}

// ---------------------------------------------------------------- HTTP

struct Fetched {
    status: u16,
    bytes: Bytes,
    /// Answers from disk carry `Last-Modified`; those from memory do not.
    from_disk: bool,
}

async fn fetch(client: &reqwest::Client, url: &str, range: Option<(u64, u64)>) -> Fetched {
    let mut request = client.get(url);
    if let Some((first, last)) = range {
        request = request.header("range", format!("bytes={first}-{last}"));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let from_disk = response.headers().contains_key("last-modified");
    let bytes = response.bytes().await.unwrap();
    Fetched {
        status,
        bytes,
        from_disk,
    }
}

/// What the benchmark reads from a live media playlist.
#[derive(Debug, Default)]
struct Listing {
    media_sequence: u64,
    segments: Vec<String>,
    /// `EXT-X-PART`s after the last segment: the open segment's parts.
    open_parts: u64,
    newest_part: Option<String>,
    ended: bool,
}

impl Listing {
    fn parse(text: &str) -> Self {
        let mut listing = Self::default();
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                listing.media_sequence = n.trim().parse().unwrap_or(0);
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
                listing.open_parts += 1;
                listing.newest_part = attrs
                    .split("URI=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(String::from);
            } else if line == "#EXT-X-ENDLIST" {
                listing.ended = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                listing.segments.push(line.to_string());
                listing.open_parts = 0;
            }
        }
        listing
    }

    /// Media sequence number of the open segment (the next to close).
    fn open_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    /// The segment the newest part belongs to.
    fn newest_part_msn(&self) -> u64 {
        if self.open_parts > 0 {
            self.open_msn()
        } else {
            self.open_msn() - 1
        }
    }
}

/// The media playlist once it holds segment `msn` (or its part `part`):
/// a blocking reload, asked again if the server says 503 (not yet).
async fn blocking_listing(ctx: &Ctx, media: &str, msn: u64, part: Option<u64>) -> Listing {
    let mut url = format!("{media}media.m3u8?_HLS_msn={msn}");
    if let Some(part) = part {
        url.push_str(&format!("&_HLS_part={part}"));
    }
    for _ in 0..5 {
        let answer = fetch(&ctx.client, &url, None).await;
        match answer.status {
            200 => return Listing::parse(&String::from_utf8_lossy(&answer.bytes)),
            503 => continue,
            other => panic!("GET {url}: {other}"),
        }
    }
    panic!("GET {url}: never satisfied")
}

async fn listing(ctx: &Ctx, media: &str) -> Listing {
    let answer = fetch(&ctx.client, &format!("{media}media.m3u8"), None).await;
    assert_eq!(answer.status, 200, "the live playlist");
    Listing::parse(&String::from_utf8_lossy(&answer.bytes))
}

// ---------------------------------------------------------------- processes

/// The child gets `signal` when this process dies, however it dies.
fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
}

/// SIGTERM, then SIGKILL if the process has not exited after `grace`.
fn stop(child: &mut Child, grace: Duration) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("bench-serve: still running after {WATCHDOG:?}: killing children, giving up");
        for &pid in CHILDREN.lock().unwrap().iter() {
            // SAFETY: kill(2) on pids of children this process started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::process::exit(2);
    });
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// nginx as a plain static file server over segcast's recordings.
struct Nginx {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Nginx {
    fn start(binary: &str, dir: &Path, root: &Path, workers: usize) -> Self {
        let temp = dir.join("tmp");
        std::fs::create_dir_all(&temp).unwrap();
        let port = free_port();
        let conf = nginx_conf(port, root, dir, workers, &temp_paths(binary, &temp));
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(log);
        die_with_parent(&mut command, libc::SIGTERM);
        let mut child = command.spawn().expect("nginx starts");
        CHILDREN.lock().unwrap().push(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                let errors = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx did not start ({exited:?}): {log}{errors}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
        let errors = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        if !errors.trim().is_empty() {
            eprintln!("bench-serve: nginx error.log:\n{errors}");
        }
    }
}

/// `*_temp_path` directives for the modules this nginx was built with, so
/// it writes nothing outside `temp` (and needs no root for it).
fn temp_paths(binary: &str, temp: &Path) -> String {
    let out = Command::new(binary).arg("-V").output().expect("nginx -V");
    let built = String::from_utf8_lossy(&out.stderr);
    let mut directives = String::new();
    for name in ["client-body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let module = name.replace('-', "_");
        let compiled = built.contains(&format!("--http-{name}-temp-path"))
            && !built.contains(&format!("--without-http_{module}_module"));
        if name == "client-body" || compiled {
            let path = temp.join(&module);
            directives.push_str(&format!("    {module}_temp_path {};\n", path.display()));
        }
    }
    directives
}

fn nginx_conf(port: u16, root: &Path, dir: &Path, workers: usize, temp_paths: &str) -> String {
    // SAFETY: geteuid(2) cannot fail.
    let root_user = if unsafe { libc::geteuid() } == 0 {
        // Workers would switch to www-data, which cannot enter a 0700 temp dir.
        "user root;\n"
    } else {
        ""
    };
    format!(
        r#"# Generated by benches/serve.rs: nginx as a plain static server.
{root_user}worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/iso.segment m4s;
        video/mp4 mp4;
    }}
    default_type application/octet-stream;
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        # Segments never change once written: keep their descriptors.
        open_file_cache max=1000 inactive=60s;
        open_file_cache_valid 60s;
        open_file_cache_errors off;
        # Playlists are renamed over as they grow: a cached descriptor
        # would serve the old file, so each request opens the file.
        location ~ \.m3u8$ {{
            open_file_cache off;
        }}
    }}
}}
"#,
        dir = dir.display(),
        root = root.display(),
    )
}

/// The first line a command prints, on stdout or stderr (`nginx -v`
/// writes to stderr, `wrk -v` to stdout and exits 1).
fn first_line(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output();
    out.map(|o| {
        let text = String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned();
        text.lines().next().unwrap_or("").trim().to_string()
    })
    .unwrap_or_else(|e| format!("{program}: {e}"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- upload

/// Uploads `chunks` at real-time pace until `hurry`, then the rest at once,
/// and finishes the recording. Returns when finish was answered.
async fn upload(
    base: String,
    id: String,
    token: String,
    chunks: Arc<Vec<Vec<u8>>>,
    hurry: Arc<AtomicBool>,
) {
    let api = common::Api::new(base);
    let start = tokio::time::Instant::now();
    for (seq, chunk) in chunks.iter().enumerate() {
        if !hurry.load(Ordering::Relaxed) {
            // Sent once its last media would have been recorded.
            let due = start + Duration::from_millis(CHUNK_MS * (seq as u64 + 1));
            tokio::time::sleep_until(due).await;
        }
        let answer = api.put(&id, &token, seq as u64, chunk.clone()).await;
        assert!(answer.status().is_success(), "chunk {seq}: {answer:?}");
    }
    let finished = api.finish(&id, &token, chunks.len() as u64).await;
    assert!(finished.status().is_success(), "finish: {finished:?}");
}

// ---------------------------------------------------------------- live rows

/// The live rows, measured while the recording uploads at real-time pace.
async fn live_rows(ctx: &Arc<Ctx>, base: &str, id: &str) -> Vec<Row> {
    let media = format!("{base}/media/{id}/");
    let nginx_media = format!("{}/{id}/hls/", ctx.nginx);
    let (nginx, segcast) = (Server::Nginx, Server::Segcast);
    let mut rows = Vec::new();

    let mut row = Row::new("live media playlist", false);
    let (url, nginx_url) = (
        format!("{media}media.m3u8"),
        format!("{nginx_media}media.m3u8"),
    );
    for level in 0..2 {
        let sides = [
            (nginx, nginx_url.as_str(), None),
            (segcast, url.as_str(), None),
        ];
        measure_pair(ctx, &mut row, level, sides, ctx.round_s).await;
    }
    rows.push(row);

    let msn = listing(ctx, &media).await.open_msn() - 1;
    let name = "blocking reload, satisfied (_HLS_msn=<closed>&_HLS_part=0)";
    let mut row = Row::new(name, false);
    let url = format!("{media}media.m3u8?_HLS_msn={msn}&_HLS_part=0");
    for level in 0..2 {
        measure(ctx, &mut row, (segcast, level), &url, ctx.cell_s).await;
    }
    rows.push(row);

    let mut row = Row::new("part (nginx: its bytes as a Range of the segment)", true);
    for level in 0..2 {
        part_cells(ctx, &mut row, level, (&media, &nginx_media), id).await;
    }
    rows.push(row);

    let mut row = Row::new("live segment, the newest", true);
    for level in 0..2 {
        // Just closed: it stays in memory while 4 more segments close.
        let open = listing(ctx, &media).await.open_msn();
        let newest = blocking_listing(ctx, &media, open, None).await;
        let uri = newest.segments.last().expect("a closed segment").clone();
        let url = format!("{media}{uri}");
        check_memory(ctx, &url, &uri, "before").await;
        let nginx_url = format!("{nginx_media}{uri}");
        let sides = [
            (segcast, url.as_str(), None),
            (nginx, nginx_url.as_str(), None),
        ];
        measure_pair(ctx, &mut row, level, sides, ctx.edge_round_s).await;
        check_memory(ctx, &url, &uri, "after").await;
    }
    rows.push(row);
    rows
}

/// Notes it if segcast answers `url` from disk: the cell was meant to
/// measure its memory.
async fn check_memory(ctx: &Ctx, url: &str, what: &str, when: &str) {
    if fetch(&ctx.client, url, None).await.from_disk {
        ctx.note(format!("{what} came from disk {when} its cell"));
    }
}

/// A part from segcast's memory, then the same bytes from nginx as a range
/// of the segment file they end up in.
async fn part_cells(
    ctx: &Arc<Ctx>,
    row: &mut Row,
    level: usize,
    (media, nginx_media): (&str, &str),
    id: &str,
) {
    // The first part of a new segment: in memory while 5 more segments start.
    let open = listing(ctx, media).await.open_msn();
    let fresh = blocking_listing(ctx, media, open + 1, Some(0)).await;
    let uri = fresh.newest_part.clone().expect("a listed part");
    let url = format!("{media}{uri}");
    check_memory(ctx, &url, &uri, "before").await;
    let bytes = fetch(&ctx.client, &url, None).await.bytes;
    // Its segment is on disk once closed; the part is a slice of it.
    // segcast's name for the segment's file (and nginx's URL of it).
    let segment = format!("seg-{:05}.m4s", fresh.newest_part_msn());
    let path = ctx.hls_dir(id).join(&segment);
    let deadline = Instant::now() + Duration::from_secs(20);
    let offset = loop {
        let found = std::fs::read(&path)
            .ok()
            .and_then(|file| file.windows(bytes.len()).position(|w| w == &bytes[..]));
        if let Some(offset) = found {
            break offset as u64;
        }
        assert!(Instant::now() < deadline, "{uri} not in {segment}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let range = Some((offset, offset + bytes.len() as u64 - 1));
    let nginx_url = format!("{nginx_media}{segment}");
    let sides = [
        (Server::Segcast, url.as_str(), None),
        (Server::Nginx, nginx_url.as_str(), range),
    ];
    let [ours, theirs] = measure_pair(ctx, row, level, sides, ctx.edge_round_s).await;
    check_memory(ctx, &url, &uri, "after").await;
    assert_eq!(ours, bytes, "{uri} did not change");
    assert_eq!(theirs, bytes, "nginx's range is {uri}");
}

/// K requests blocked on the next part; for each of `rounds` parts, the
/// time from the first answer to the last. Also the shortest wait, which
/// shows whether every request was really blocked.
async fn wake_up(
    ctx: &Ctx,
    media: &str,
    waiters: usize,
    rounds: usize,
) -> (Vec<Duration>, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2 * waiters)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // Every waiter gets its connection first.
    let warm: Vec<_> = (0..waiters)
        .map(|_| tokio::spawn(client.get(format!("{media}media.m3u8")).send()))
        .collect();
    for request in warm {
        request.await.unwrap().unwrap().bytes().await.unwrap();
    }
    let (mut spreads, mut shortest) = (Vec::new(), Duration::MAX);
    for _ in 0..rounds {
        // Right after a part appears, the next is a whole part away.
        let now = listing(ctx, media).await;
        let next = blocking_listing(ctx, media, now.open_msn(), Some(now.open_parts)).await;
        let url = format!(
            "{media}media.m3u8?_HLS_msn={}&_HLS_part={}",
            next.open_msn(),
            next.open_parts
        );
        let asked = Instant::now();
        let answers: Vec<_> = (0..waiters)
            .map(|_| {
                let request = client.get(&url).send();
                tokio::spawn(async move {
                    let response = request.await.unwrap();
                    let status = response.status().as_u16();
                    response.bytes().await.unwrap();
                    (status, Instant::now())
                })
            })
            .collect();
        let mut times = Vec::new();
        for answer in answers {
            let (status, at) = answer.await.unwrap();
            assert_eq!(status, 200, "{url}");
            times.push(at);
        }
        let (first, last) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        spreads.push(last - first);
        shortest = shortest.min(first - asked);
    }
    (spreads, shortest)
}

// ---------------------------------------------------------------- main

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

// ---------------------------------------------------------------- report

fn latency(us: f64) -> String {
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
    let mut missed = Vec::new();
    for row in rows {
        let (Some(n1), Some(s1)) = (row.cell(Server::Nginx, 0), row.cell(Server::Segcast, 0))
        else {
            continue;
        };
        let slower = s1.p50_us / n1.p50_us;
        if slower > 3.0 {
            missed.push(format!(
                "{}: p50 @1 is {slower:.1}× nginx's (target ≤ 3×)",
                row.name
            ));
        }
        let (Some(n32), Some(s32)) = (row.cell(Server::Nginx, 1), row.cell(Server::Segcast, 1))
        else {
            continue;
        };
        let share = s32.rps() / n32.rps();
        if row.throughput_target && share < 0.9 {
            missed.push(format!(
                "{}: {share:.2}× nginx's req/s @32 (target ≥ 0.9×); server CPU per answer {:.2}× nginx's",
                row.name,
                s32.cpu_us / n32.cpu_us.max(f64::MIN_POSITIVE)
            ));
        }
    }
    if missed.is_empty() {
        println!(
            "targets (segments and parts ≥ 0.9× nginx's req/s @32; p50 @1 ≤ 3× nginx's): all met"
        );
    } else {
        println!("targets missed:\n  {}", missed.join("\n  "));
    }
    for note in ctx.notes.lock().unwrap().iter() {
        println!("note: {note}");
    }
}
