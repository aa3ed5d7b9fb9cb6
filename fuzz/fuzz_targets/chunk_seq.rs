//! Chunk sequence numbers from URLs: only plain decimal numbers below the
//! limit are accepted, and the number is the one written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::upload::parse_seq;

const MAX_CHUNKS: u64 = 100_000;

fuzz_target!(|input: &[u8]| {
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
});
