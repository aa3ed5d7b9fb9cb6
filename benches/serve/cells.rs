//! The cells of the report: a [`Row`] per resource, a cell per server and
//! load level, measured by one wrk run ([`measure`]) or by nginx and segcast
//! taking turns ([`measure_pair`]), with the server's CPU time around it.

use std::sync::Arc;

use bytes::Bytes;

use crate::live::fetch;
use crate::procs::cpu_ticks;
use crate::wrk::{run_wrk, Load};
use crate::{latency, Ctx};

/// Load levels: a lone viewer, and a crowd one address may open.
pub(crate) const CONNS: [usize; 2] = [1, 32];
/// Turns nginx and segcast take at each cell of a comparison.
pub(crate) const ROUNDS: usize = 3;

/// Which server a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
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
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) cells: [[Option<Load>; 2]; 2],
    /// The throughput target applies (segments and parts).
    pub(crate) throughput_target: bool,
}

impl Row {
    pub(crate) fn new(name: impl Into<String>, throughput_target: bool) -> Self {
        Self {
            name: name.into(),
            cells: [[None; 2]; 2],
            throughput_target,
        }
    }

    pub(crate) fn cell(&self, server: Server, level: usize) -> Option<&Load> {
        self.cells[server as usize][level].as_ref()
    }
}

/// Runs wrk on the whole file at `url` for one cell of `row`; returns the
/// body of one answer.
pub(crate) async fn measure(
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
pub(crate) async fn measure_pair(
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
