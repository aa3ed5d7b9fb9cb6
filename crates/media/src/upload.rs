//! The untrusted inputs of the upload protocol (docs/http-contract.md,
//! "Recordings"): a chunk's sequence number from its URL, and its
//! `Content-Digest` (RFC 9530 §2), a Structured Field Dictionary
//! (RFC 9651) of algorithm → byte sequence. sha-256 and sha-512 are
//! checked; a header naming only other algorithms is refused, since a
//! digest the server cannot check protects nothing. Pure, and fuzzed
//! (`fuzz/fuzz_targets/chunk_seq.rs`, `content_digest.rs`).

use sfv::{BareItem, Dictionary, ListEntry, Parser};
use sha2::{Digest, Sha256, Sha512};

use base::{Error, Result};

/// A chunk sequence number: decimal digits only, below the configured limit.
pub fn parse_seq(text: &str, max_chunks: u64) -> Result<u64> {
    let seq: u64 = text
        .parse()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "chunk seq must be a non-negative integer, got '{text}'"
            ))
        })?;
    if seq >= max_chunks {
        return Err(Error::Invalid(format!(
            "chunk seq {seq} is over the limit of {max_chunks} chunks"
        )));
    }
    Ok(seq)
}

/// Checks `body` against a `Content-Digest` header value.
pub fn verify(header: &str, body: &[u8]) -> Result<()> {
    let dict: Dictionary = Parser::new(header)
        .parse()
        .map_err(|e| Error::Invalid(format!("malformed Content-Digest header: {e}")))?;
    let mut checked = false;
    for (algorithm, entry) in &dict {
        let computed: Vec<u8> = match algorithm.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        let sent = match entry {
            ListEntry::Item(item) => match &item.bare_item {
                BareItem::ByteSequence(bytes) => bytes.as_slice(),
                _ => return Err(bad_value(algorithm.as_str())),
            },
            ListEntry::InnerList(_) => return Err(bad_value(algorithm.as_str())),
        };
        if sent != computed.as_slice() {
            return Err(Error::Invalid(format!(
                "Content-Digest {} does not match the body; nothing was stored",
                algorithm.as_str()
            )));
        }
        checked = true;
    }
    if !checked {
        return Err(Error::Invalid(
            "Content-Digest has no sha-256 or sha-512 value".into(),
        ));
    }
    Ok(())
}

fn bad_value(algorithm: &str) -> Error {
    Error::Invalid(format!(
        "Content-Digest {algorithm} must be a byte sequence (:base64:)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn header(alg: &str, digest: &[u8]) -> String {
        format!(
            "{alg}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    }

    #[test]
    fn matching_sha256_passes() {
        assert!(verify(&header("sha-256", &Sha256::digest(b"hello")), b"hello").is_ok());
        // RFC 9530 Appendix D's example digest of {"hello": "world"}\n.
        let rfc = "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:";
        assert!(verify(rfc, b"{\"hello\": \"world\"}\n").is_ok());
    }

    #[test]
    fn every_known_algorithm_must_match() {
        let both = format!(
            "{}, {}",
            header("sha-512", &Sha512::digest(b"x")),
            header("sha-256", &Sha256::digest(b"y"))
        );
        let err = verify(&both, b"x").unwrap_err();
        assert!(err.to_string().contains("sha-256"), "{err}");
        let unknown_too = format!("md5=:AAAA:, {}", header("sha-256", &Sha256::digest(b"x")));
        assert!(verify(&unknown_too, b"x").is_ok());
    }

    #[test]
    fn mismatches_and_malformed_headers_are_bad_requests() {
        for (value, body) in [
            (header("sha-256", &Sha256::digest(b"other")), &b"hello"[..]),
            ("sha-256=abc".to_string(), b"hello"),
            ("sha-256=:not base64!:".to_string(), b"hello"),
            ("md5=:AAAA:".to_string(), b"hello"),
            ("".to_string(), b"hello"),
        ] {
            let err = verify(&value, body).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{value}: {err}");
        }
    }

    #[test]
    fn seq_must_be_plain_decimal_below_the_limit() {
        assert_eq!(parse_seq("0", 10).unwrap(), 0);
        assert_eq!(parse_seq("9", 10).unwrap(), 9);
        for bad in [
            "10",
            "-1",
            "+1",
            "1e3",
            "",
            " 1",
            "0x1",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(parse_seq(bad, 10), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
