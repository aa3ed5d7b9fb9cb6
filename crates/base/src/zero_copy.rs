//! Zero-copy sends of media files on plain TCP, as nginx's `sendfile on`:
//! the kernel moves the file's page-cache pages to the socket, and the
//! server never copies the bytes through user space.
//!
//! hyper writes a response body only through the connection's
//! `AsyncWrite`, as byte slices; it has no file body. So a large media file
//! is handed to it as a [`Bytes`] over a read-only memory map of the file
//! (no read, no copy: the page cache itself), and the connection's writer
//! (`segcast::http::sendfile`) recognises a slice that lies in such a map and
//! sends that part of the file with `sendfile(2)` instead of `write(2)`.
//! hyper sees an ordinary write of that many bytes. Over TLS (rustls
//! encrypts in user space) or any other stream the map is simply read.
//!
//! Copying each response into the socket was 38 % of the server's CPU when
//! serving 600 KB segments at 32 connections, and held it at ~0.6× of
//! nginx's throughput (docs/benchmarks.md, "Serving").
//!
//! Safety of the maps: media files are written to a temporary name and
//! renamed into place, never rewritten or truncated where they are, so a
//! mapped file's bytes do not change; a deleted file's inode lives on
//! until its last map is dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, LazyLock, RwLock};

use bytes::Bytes;

/// Files from this size are mapped and sent with `sendfile`; smaller ones
/// are read and copied. Measured on loopback (server CPU per request at 32
/// connections, nginx on the same file in the same run): copied, a 58 KB
/// file cost 28–30 µs and a 215 KB segment 54–63 µs; by `sendfile`, with
/// the head sent as "more to come" so both leave together, 25–27 µs and
/// 46–51 µs (nginx 18–21 and 43–45). Below ~32 KB the splice set-up and
/// page references outweigh copying what fits in the CPU's caches.
pub const MAP_MIN_BYTES: u64 = 32 << 10;
/// Slices from this size are looked up for `sendfile`.
pub const SENDFILE_MIN_BYTES: usize = MAP_MIN_BYTES as usize;

/// A mapped file: the memory a [`Bytes`] points into, registered by its
/// address while it lives.
struct Mapped {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let start = self.map.as_ptr() as usize;
        REGIONS
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&start);
    }
}

/// The file behind a mapped region, for `sendfile`.
struct Region {
    len: usize,
    file: Arc<File>,
}

/// Every live map by start address. Read on each large write, written
/// when a file is mapped or its last `Bytes` dropped: rare.
static REGIONS: LazyLock<RwLock<BTreeMap<usize, Region>>> = LazyLock::new(Default::default);

/// The whole of `file` (`len` bytes) as [`Bytes`] over a read-only map.
/// Blocking (the map is populated up front so a first send does not fault
/// page by page): call it from the blocking pool.
pub fn map(file: File, len: u64) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: see the module doc: the files mapped here are never modified
    // in place, so the mapped bytes cannot change under a reader.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    let region = Region {
        len: map.len(),
        file: Arc::new(file),
    };
    REGIONS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(map.as_ptr() as usize, region);
    Ok(Bytes::from_owner(Mapped { map }))
}

/// `bytes` made into a sealed in-memory file (`memfd_create(2)`), mapped,
/// so that what the live edge holds (parts, the newest segments) is sent
/// with `sendfile` too. The seals make the file immutable, which is what
/// the map needs. Small pieces, or a kernel without memfd, stay on the heap.
pub fn seal(bytes: Vec<u8>) -> Bytes {
    if bytes.len() < SENDFILE_MIN_BYTES {
        return Bytes::from(bytes);
    }
    match sealed_file(&bytes).and_then(|file| map(file, bytes.len() as u64)) {
        Ok(mapped) => mapped,
        Err(error) => {
            tracing::debug!(%error, "in-memory file refused: kept on the heap");
            Bytes::from(bytes)
        }
    }
}

fn sealed_file(bytes: &[u8]) -> io::Result<File> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a static NUL-terminated name; the descriptor returned is
    // owned by the `File` at once.
    let fd = unsafe { libc::memfd_create(c"segcast-media".as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: plain fcntl on a descriptor we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// The file and offset of `slice`, if it lies wholly in a mapped file.
pub fn locate(slice: &[u8]) -> Option<(Arc<File>, u64)> {
    if slice.len() < SENDFILE_MIN_BYTES {
        return None;
    }
    let at = slice.as_ptr() as usize;
    let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
    let (&start, region) = regions.range(..=at).next_back()?;
    let offset = at - start;
    (offset + slice.len() <= region.len).then(|| (region.file.clone(), offset as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::TempDir, File, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg-00001.m4s");
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        (dir, File::open(&path).unwrap(), bytes)
    }

    #[test]
    fn a_slice_of_a_map_is_located_in_its_file_until_the_map_is_dropped() {
        let (_dir, file, bytes) = file_of(1_000_000);
        let mapped = map(file, bytes.len() as u64).unwrap();
        assert_eq!(&mapped[..], &bytes[..]);
        let tail = mapped.slice(600_000..);
        let (_, offset) = locate(&tail).expect("a mapped slice");
        assert_eq!(offset, 600_000);
        // Too small to be worth a sendfile, and not in any map.
        assert!(locate(&mapped[..100]).is_none());
        assert!(locate(&vec![0u8; 400_000]).is_none());
        let address = tail.as_ptr();
        drop((mapped, tail));
        let regions = REGIONS.read().unwrap();
        assert!(regions
            .range(..=address as usize)
            .next_back()
            .is_none_or(|(&start, region)| (address as usize) >= start + region.len));
    }

    #[test]
    fn sealed_bytes_are_mapped_and_immutable() {
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
        let sealed = seal(bytes.clone());
        assert_eq!(&sealed[..], &bytes[..]);
        let (file, offset) = locate(&sealed[300_000..]).expect("a mapped part");
        assert_eq!(offset, 300_000);
        use std::io::Write;
        assert!((&*file).write_all(b"x").is_err(), "sealed against writes");
        let small = seal(vec![1; 100]);
        assert_eq!(&small[..], &[1; 100][..]);
    }
}
