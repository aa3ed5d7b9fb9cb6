//! The processes the benchmark runs: CPU time and children from `/proc`,
//! tying children to this process's life, stopping them, the watchdog that
//! kills them when the benchmark is stuck, a free port, and what the report
//! asks of the system (a command's first line, the load average).

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this the benchmark is stuck: children are killed, exit 2.
const WATCHDOG: Duration = Duration::from_secs(20 * 60);

/// Processes to kill if the watchdog fires.
pub(crate) static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// CPU time (user + system) the processes have used, in clock ticks.
pub(crate) fn cpu_ticks(pids: &[u32]) -> u64 {
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
pub(crate) fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The child gets `signal` when this process dies, however it dies.
pub(crate) fn die_with_parent(command: &mut Command, signal: libc::c_int) {
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
pub(crate) fn stop(child: &mut Child, grace: Duration) {
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

pub(crate) fn watchdog() {
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

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The first line a command prints, on stdout or stderr (`nginx -v`
/// writes to stderr, `wrk -v` to stdout and exits 1).
pub(crate) fn first_line(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output();
    out.map(|o| {
        let text = String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned();
        text.lines().next().unwrap_or("").trim().to_string()
    })
    .unwrap_or_else(|e| format!("{program}: {e}"))
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
