//! wrk, the load generator: the Lua script that makes it print its figures
//! in a form [`run_wrk`] parses, one run, and the figures of a run ([`Load`]).

use std::process::Command;

use crate::procs::die_with_parent;
use crate::Ctx;

/// Prints wrk's figures in a form this file parses (µs, exact percentiles).
pub(crate) const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f errors=%.0f non_2xx=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#;

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) requests: u64,
    pub(crate) secs: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) errors: u64,
    pub(crate) non_2xx: u64,
    /// Body bytes of one answer.
    pub(crate) size: usize,
    /// The server's CPU time (user + system) per answer, µs: what it
    /// costs to serve one, apart from how wrk, sharing the cores, fared.
    pub(crate) cpu_us: f64,
}

impl Load {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

pub(crate) fn run_wrk(
    ctx: &Ctx,
    url: &str,
    conns: usize,
    secs: u64,
    range: Option<(u64, u64)>,
) -> Load {
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
