//! Writing files so that a crash leaves the old or the new one, never half
//! of either: a temporary name, fsync when it must survive, rename, fsync
//! of the directory (POSIX rename(2) is atomic within a file system).
//! Blocking; async callers use `spawn_blocking`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `bytes` so that readers see the old or the new file,
/// never a partial one. `durable` also fsyncs file and directory.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    replace(path, bytes, 0o666, durable)
}

/// Writes `bytes` to `path` readable by the owner only, durably: a
/// temporary file created 0600, fsynced, renamed, the directory fsynced.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, 0o600, true)
}

/// Creates `path` with `bytes`, readable by the owner only and durably,
/// unless it exists: then the bytes already there are returned and nothing
/// is changed. A link(2) of a whole temporary file puts it in place, so a
/// reader never sees a partial file and of writers racing, one wins.
pub fn write_private_once(path: &Path, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let suffix = hex::encode(crate::ids::random_bytes::<8>());
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let linked = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(bytes.to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::read(path),
        Err(e) => Err(e),
    }
}

/// Blocks until this process holds an exclusive lock (flock(2)) on `path`,
/// created if missing; released when the file is dropped (or the process
/// ends, however it ends). For steps that processes sharing a directory
/// must take one at a time.
pub fn lock_exclusive(path: &Path) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

/// fsyncs a directory, so that a rename or a new file in it survives a
/// crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes an unprivileged writer may still store on the file system that
/// holds `path` (statvfs(3): `f_bavail` blocks of `f_frsize`).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer statvfs fills on success.
    if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it wrote the whole struct.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn replace(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    if mode & 0o077 == 0 {
        // A temporary file left by a crash keeps its old mode when opened
        // again: a private one is made anew.
        let _ = fs::remove_file(&tmp);
    }
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            if durable {
                file.sync_all()?;
            }
            Ok(())
        });
    if let Err(e) = written {
        // A full disk must not also be left with half a file on it.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn free_bytes_agree_with_df() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(dir.path())
            .output()
            .expect("df runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let df: u64 = text.lines().nth(1).unwrap().trim().parse().unwrap();
        let ours = free_bytes(dir.path()).unwrap();
        // Other writers move the figure a little between the two readings.
        assert!(ours.abs_diff(df) < 64 << 20, "statvfs {ours} vs df {df}");
        assert!(free_bytes(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn a_file_written_once_keeps_its_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        assert_eq!(write_private_once(&path, b"first").unwrap(), b"first");
        assert_eq!(write_private_once(&path, b"second").unwrap(), b"first");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(names, 1, "no temporary file left");
    }

    #[test]
    fn an_exclusive_lock_is_held_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = lock_exclusive(&path).unwrap();
        let other = File::options().write(true).open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
    }

    #[test]
    fn replaced_files_are_whole_and_private_ones_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one", true).unwrap();
        write_atomic(&path, b"two", false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let secret = dir.path().join("secret");
        write_private(&secret, b"k").unwrap();
        let mode = fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }
}
