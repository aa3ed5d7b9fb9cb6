//! `Content-Digest` headers (RFC 9530 over RFC 9651 structured fields):
//! any header text is either verified or refused as invalid, never a panic;
//! it only passes when it names an algorithm segcast checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::upload::verify;

fuzz_target!(|input: &[u8]| {
    // Header, a NUL, then the body.
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
});
