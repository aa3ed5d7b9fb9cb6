//! The catalog's databases for the tests: a look into a server's embedded
//! one, and a real PostgreSQL (Debian's `postgresql`, installed by
//! `scripts/setup`): a cluster made with `initdb` in a temporary folder and
//! run with `pg_ctl` on loopback, on a free port. PostgreSQL refuses to run
//! as root, so under root both run as `nobody`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `postgres://segcast@127.0.0.1:PORT/postgres`
    pub url: String,
}

/// Where Debian keeps the server programs (not on PATH), else PATH.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("PostgreSQL must be installed (scripts/test installs postgresql)")
}

fn as_owner(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// A new, empty cluster, started; stopped (immediately) when dropped.
    pub fn start() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("segcast-pg")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let bin = bin_dir();
        let data = dir.path().join("data");
        let mut init = as_owner(&bin, "initdb");
        init.args([
            "--auth=trust",
            "--username=segcast",
            "--encoding=UTF8",
            "-D",
        ])
        .arg(&data);
        run(init, "initdb");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self {
            url: format!("postgres://segcast@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            port,
        };
        pg.resume();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts (again) and waits until it takes connections.
    pub fn resume(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let mut start = as_owner(&self.bin, "pg_ctl");
        start
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.data())
            .arg("start");
        run(start, "pg_ctl start");
    }

    /// Stops at once (as a crash would: no checkpoint).
    pub fn stop(&self) {
        let mut stop = as_owner(&self.bin, "pg_ctl");
        stop.args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop");
        run(stop, "pg_ctl stop");
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_owner(&self.bin, "pg_ctl");
        stop.args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop");
        let _ = stop.output();
    }
}

/// One number from the embedded catalog of the data directory `data`
/// (e.g. `SELECT COUNT(*) FROM comments WHERE recording_id = '…'`).
pub async fn embedded_count(data: &Path, sql: &str) -> i64 {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("segcast.db"))
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}
