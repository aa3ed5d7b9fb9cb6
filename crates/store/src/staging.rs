//! `<data>/staging/`: where files are made before they join the library.
//! It is inside the data directory, so on the same file system: handing a
//! finished file or recording folder over is one rename, and a reader sees
//! all of it or nothing.
//!
//! ```text
//! <data>/staging/<random>.upload   an HTTP import being received
//! <data>/staging/<id>/             a recording `segcast import` is making
//! <data>/staging/<id>.lock         held by the run making it
//! ```

use std::path::{Path, PathBuf};

const STAGING_DIR: &str = "staging";
const UPLOAD_SUFFIX: &str = ".upload";

/// The staging folder of the data directory `data_dir`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(STAGING_DIR)
}

/// A fresh name for an upload being received into `staging`.
pub fn new_upload(staging: &Path) -> PathBuf {
    let name = format!(
        "{}{UPLOAD_SUFFIX}",
        hex::encode(base::ids::random_bytes::<16>())
    );
    staging.join(name)
}

/// Removes uploads a previous run left half-received. Blocking.
pub fn clean(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.to_string_lossy().ends_with(UPLOAD_SUFFIX) {
            tracing::info!(file = %path.display(), "removing an unfinished upload");
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unfinished_uploads_are_cleaned() {
        let data = tempfile::tempdir().unwrap();
        let staging = dir(data.path());
        std::fs::create_dir_all(staging.join("abc")).unwrap();
        let upload = new_upload(&staging);
        assert_ne!(upload, new_upload(&staging));
        std::fs::write(&upload, b"half").unwrap();
        clean(data.path());
        assert!(!upload.exists());
        assert!(staging.join("abc").exists(), "a staged recording stays");
    }
}
