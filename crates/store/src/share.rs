//! The signed, expiring share tokens that open a private recording (docs/http-contract.md, "Private
//! recordings, share links, encryption, TLS").
//!
//! A share token is `<expiry>.<mac>`: the expiry in Unix seconds and
//! HMAC-SHA-256 (RFC 2104, FIPS 180-4) of the recording id and the expiry
//! under the server's secret, base64url. Nothing is stored per token: the
//! server checks the signature (in constant time, `hmac`'s `verify_slice`)
//! and the clock. A token is bound to one recording id, so it opens no
//! other; it cannot be revoked before it expires, except by changing the
//! secret (which revokes them all) or deleting the recording.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A `--token-secret` shorter than this is refused: a guessable secret
/// would let anyone sign links.
pub const MIN_SECRET_BYTES: usize = 16;
/// Domain separation: this MAC signs share tokens of this version only.
const CONTEXT: &[u8] = b"segcast share token v1\n";

/// Why a presented token does not open a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a share token of this server for this recording")]
    Invalid,
    #[error("the share link expired")]
    Expired,
}

/// Signs and checks share tokens with the server's secret.
#[derive(Clone)]
pub struct ShareSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for ShareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareSigner(..)")
    }
}

impl ShareSigner {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, id: &str, expires_at_s: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(CONTEXT);
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at_s.to_string().as_bytes());
        mac
    }

    /// A token for recording `id`, valid until `expires_at_s` (Unix seconds).
    pub fn sign(&self, id: &str, expires_at_s: u64) -> String {
        let tag = self.mac(id, expires_at_s).finalize().into_bytes();
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag);
        format!("{expires_at_s}.{tag}")
    }

    /// Whether `token` opens recording `id` at `now_s`. The signature is
    /// checked before the expiry, so a forged token learns nothing.
    pub fn verify(&self, id: &str, token: &str, now_s: u64) -> Result<(), TokenError> {
        let (expires, tag) = token.split_once('.').ok_or(TokenError::Invalid)?;
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Invalid);
        }
        let expires_at_s: u64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Invalid)?;
        self.mac(id, expires_at_s)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Invalid)?;
        if now_s >= expires_at_s {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

/// Whether `token` has the shape of a share token (the upload tokens and
/// publish keys it could be confused with have no `.` followed by a MAC).
pub fn looks_like_share_token(token: &str) -> bool {
    token
        .split_once('.')
        .is_some_and(|(expiry, _)| !expiry.is_empty() && expiry.bytes().all(|b| b.is_ascii_digit()))
}

/// `--token-secret`, checked. Without one, the secret is the catalog's
/// (made once, shared by every node: [`crate::catalog::Catalog::share_secret`]).
pub fn configured_secret(secret: &str) -> Result<Vec<u8>, String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "--token-secret must be at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    Ok(secret.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> ShareSigner {
        ShareSigner::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn a_token_opens_its_recording_until_it_expires() {
        let token = signer().sign("abc", 1000);
        assert!(looks_like_share_token(&token));
        assert_eq!(signer().verify("abc", &token, 999), Ok(()));
        assert_eq!(
            signer().verify("abc", &token, 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signer().verify("abd", &token, 999),
            Err(TokenError::Invalid),
            "another recording"
        );
    }

    #[test]
    fn tampering_or_another_secret_is_refused() {
        let token = signer().sign("abc", 1000);
        let later = token.replacen("1000.", "9000.", 1);
        assert_eq!(
            signer().verify("abc", &later, 999),
            Err(TokenError::Invalid),
            "extended expiry"
        );
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            signer().verify("abc", &flipped, 999),
            Err(TokenError::Invalid)
        );
        let other = ShareSigner::new(b"another secret of enough bytes!".to_vec());
        assert_eq!(other.verify("abc", &token, 999), Err(TokenError::Invalid));
        for junk in ["", ".", "1000.", "x.abc", "1000.!!", "-1.abc"] {
            assert_eq!(
                signer().verify("abc", junk, 0),
                Err(TokenError::Invalid),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn a_configured_secret_must_be_long_enough() {
        assert!(configured_secret("short").is_err());
        assert_eq!(
            configured_secret("a long enough secret").unwrap(),
            b"a long enough secret"
        );
    }
}
