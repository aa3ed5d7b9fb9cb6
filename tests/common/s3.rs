//! An S3 server for the object-storage test and benchmark: `s3s-fs`
//! (`SEGCAST_TEST_TOOLS=1 scripts/setup` installs it) on a free loopback
//! port, over a folder that can outlive one run of it (so a test can take
//! the bucket down and bring it back), with the `AWS_*` variables that
//! segcast's `--store` and [`S3::bucket`] read pointing at it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};

const ACCESS_KEY: &str = "segcast";
const SECRET_KEY: &str = "segcast-secret";

/// Where an s3s-fs keeps its buckets, and the port it listens on.
pub struct S3Site {
    pub root: tempfile::TempDir,
    pub port: u16,
}

impl S3Site {
    /// A fresh folder holding an empty `bucket`, a free port, and this
    /// process's `AWS_*` variables pointing there (each test binary that
    /// uses it has one such site: the environment is the process's).
    pub fn new(bucket: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        Self { root, port }
    }

    /// s3s-fs serving this site, once it listens.
    pub fn start(&self) -> S3 {
        S3::start(self.root.path(), self.port)
    }
}

/// A running s3s-fs; killed when stopped or dropped.
pub struct S3 {
    child: Child,
}

impl S3 {
    fn start(root: &Path, port: u16) -> Self {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs must be installed (SEGCAST_TEST_TOOLS=1 scripts/setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client of `bucket` at the site the environment names.
    pub fn bucket(bucket: &str) -> AmazonS3 {
        AmazonS3Builder::from_env()
            .with_endpoint(std::env::var("AWS_ENDPOINT_URL").unwrap())
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .build()
            .unwrap()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}
