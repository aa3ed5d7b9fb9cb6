//! Every input kept in `fuzz/seeds/<target>/` (each one found something
//! once) is replayed here on every `cargo test`, under the property its
//! fuzz target checks (`fuzz/fuzz_targets/<target>.rs`, which runs only in
//! `scripts/fuzz`) and within a time bound: a hang or a blow-up fails CI,
//! not only a panic. A directory for a target not known here fails too, so
//! a new target's seeds cannot be skipped silently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fmp4::{Piece, SplitError, Splitter};
use crate::upload::{parse_seq, verify};

/// Thousands of times what a seed takes (`sgpd-huge-entry-count`: 0.2 ms in
/// a debug build), and a third of what that seed cost when whole moov trees
/// were decoded with mp4-atom (3.2 s in a debug build, and a gigabyte).
const BOUND: Duration = Duration::from_secs(1);

/// The fuzz targets' box limit, so hostile sizes are exercised.
const MAX_BOX_BYTES: usize = 1 << 20;
const MAX_CHUNKS: u64 = 100_000;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

/// `fuzz_targets/fmp4_splitter.rs`: the first byte is the read size; the
/// result must not depend on how the bytes are cut into reads, and no
/// piece holds more bytes than were pushed.
fn fmp4_splitter(input: &[u8]) {
    fn split(data: &[u8], read_bytes: usize) -> Result<Vec<Piece>, SplitError> {
        let mut splitter = Splitter::new(MAX_BOX_BYTES);
        let mut pieces = Vec::new();
        for read in data.chunks(read_bytes.max(1)) {
            pieces.extend(splitter.push(read)?);
        }
        splitter.finish()?;
        Ok(pieces)
    }
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let whole = split(data, data.len());
    let in_reads = split(data, usize::from(cut));
    assert_eq!(whole, in_reads, "splitting depends on read boundaries");
    if let Ok(pieces) = whole {
        let out: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Init(init) => init.bytes.len(),
                Piece::Fragment(f) => f.bytes.len(),
            })
            .sum();
        assert!(out <= data.len(), "pieces hold more bytes than were pushed");
    }
}

/// `fuzz_targets/chunk_seq.rs`: only plain decimal numbers below the limit.
fn chunk_seq(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match parse_seq(text, MAX_CHUNKS) {
        Ok(seq) => {
            assert!(seq < MAX_CHUNKS);
            assert!(
                !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
                "{text:?}"
            );
            assert_eq!(
                text.trim_start_matches('0').parse::<u64>().unwrap_or(0),
                seq
            );
        }
        Err(e) => assert!(matches!(e, base::Error::Invalid(_)), "{text:?}: {e}"),
    }
}

/// `fuzz_targets/content_digest.rs`: header, a NUL, then the body; verified
/// only when it names an algorithm segcast checks, else refused as invalid.
fn content_digest(input: &[u8]) {
    let (header, body) = match input.iter().position(|&b| b == 0) {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    match verify(header, body) {
        Ok(()) => assert!(
            header.contains("sha-256") || header.contains("sha-512"),
            "{header:?}"
        ),
        Err(e) => assert!(matches!(e, base::Error::Invalid(_)), "{header:?}: {e}"),
    }
}

/// Runs `check` on `input` on its own thread; fails on a panic or when it
/// is not done within [`BOUND`].
fn replay(path: &Path, check: fn(&[u8])) {
    let input = std::fs::read(path).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| check(&input));
        let _ = done.send(outcome.is_ok());
    });
    match finished.recv_timeout(BOUND) {
        Ok(true) => {}
        Ok(false) => panic!("{} fails its fuzz target's check", path.display()),
        Err(_) => panic!("{} takes more than {BOUND:?}", path.display()),
    }
}

#[test]
fn every_fuzz_seed_passes_its_targets_check_in_time() {
    let mut replayed = 0;
    for target in std::fs::read_dir(seeds_dir()).unwrap() {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_str().unwrap().to_string();
        let check: fn(&[u8]) = match name.as_str() {
            "fmp4_splitter" => fmp4_splitter,
            "chunk_seq" => chunk_seq,
            "content_digest" => content_digest,
            other => panic!("fuzz/seeds/{other}: no replay for this target here"),
        };
        for seed in std::fs::read_dir(&target).unwrap() {
            replay(&seed.unwrap().path(), check);
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "no seeds under {}", seeds_dir().display());
}
