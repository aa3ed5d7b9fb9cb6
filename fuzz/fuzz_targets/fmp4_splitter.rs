//! The fMP4 splitter on arbitrary bytes: it must never panic or hang, and
//! how the bytes are cut into reads must not change the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::fmp4::{Piece, SplitError, Splitter};

/// Small box limit so hostile size fields are exercised, not just buffered.
const MAX_BOX_BYTES: usize = 1 << 20;

fn split(data: &[u8], read_bytes: usize) -> Result<Vec<Piece>, SplitError> {
    let mut splitter = Splitter::new(MAX_BOX_BYTES);
    let mut pieces = Vec::new();
    for read in data.chunks(read_bytes.max(1)) {
        pieces.extend(splitter.push(read)?);
    }
    splitter.finish()?;
    Ok(pieces)
}

fuzz_target!(|input: &[u8]| {
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
});
