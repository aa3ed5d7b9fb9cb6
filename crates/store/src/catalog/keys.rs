//! Content keys at rest: an encrypted recording's AES-128 key is stored in
//! its catalog row only wrapped (AES key wrap, RFC 3394) under a key made
//! from `--key-secret`. So a dump of the database, like a copy of the
//! bucket, plays nothing; the secret lives apart from both (the command
//! line or environment of every node; for the embedded default, a file
//! of its own in the data directory, mode 0600).

use std::path::Path;

use aes_kw::KekAes256;
use sha2::{Digest, Sha256};

use base::files::write_private_once;
use media::aes::{ContentKey, KEY_BYTES};

/// The embedded default's secret, when `--key-secret` is not given.
pub const KEY_SECRET_FILE: &str = "key-secret";
/// A shorter `--key-secret` is refused: it would be guessable.
pub const MIN_KEY_SECRET_BYTES: usize = 16;
/// Domain separation: this key-encryption key wraps content keys only.
const CONTEXT: &[u8] = b"segcast content-key wrap v1\n";

/// Wraps and unwraps content keys.
pub struct KeyWrap {
    kek: KekAes256,
}

impl std::fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrap(..)")
    }
}

impl KeyWrap {
    /// The key-encryption key is SHA-256 of the context and the secret.
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_SECRET_BYTES {
            return Err(format!("must be at least {MIN_KEY_SECRET_BYTES} bytes"));
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(CONTEXT)
            .chain_update(secret)
            .finalize()
            .into();
        Ok(Self {
            kek: KekAes256::from(digest),
        })
    }

    /// `<data>/key-secret`, made with 32 random bytes on first start.
    /// Processes starting together on a fresh directory all end up with
    /// the one secret that was linked into place first.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(KEY_SECRET_FILE);
        let shown = path.display();
        let secret = match std::fs::read(&path) {
            Ok(secret) => secret,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = base::ids::random_bytes::<32>();
                std::fs::create_dir_all(data_dir)
                    .and_then(|()| write_private_once(&path, &fresh))
                    .map_err(|e| format!("cannot create {shown}: {e}"))?
            }
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        };
        Self::from_secret(&secret).map_err(|why| format!("{shown} {why}"))
    }

    pub fn wrap(&self, key: &ContentKey) -> Vec<u8> {
        self.kek
            .wrap_vec(key.bytes())
            .expect("a 16-byte key is a whole number of 8-byte blocks")
    }

    /// `Err` when the bytes were wrapped under another secret (or changed).
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<ContentKey, String> {
        let bytes = self.kek.unwrap_vec(wrapped).map_err(|_| {
            "the stored key does not unwrap with this --key-secret (another secret, or damaged)"
                .to_string()
        })?;
        let bytes: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| format!("the stored key is not {KEY_BYTES} bytes"))?;
        Ok(ContentKey::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_unwrap_only_under_their_secret() {
        let wrap = KeyWrap::from_secret(b"a secret of enough bytes").unwrap();
        let key = ContentKey::generate();
        let wrapped = wrap.wrap(&key);
        assert_eq!(wrapped.len(), KEY_BYTES + 8);
        assert!(!wrapped.windows(KEY_BYTES).any(|w| w == key.bytes()));
        assert_eq!(wrap.unwrap(&wrapped).unwrap(), key);
        let other = KeyWrap::from_secret(b"another secret, long enough").unwrap();
        assert!(other.unwrap(&wrapped).is_err());
        assert!(KeyWrap::from_secret(b"short").is_err());
    }

    #[test]
    fn the_embedded_secret_is_made_once_for_its_owner_only() {
        let data = tempfile::tempdir().unwrap();
        let key = ContentKey::generate();
        let wrapped = KeyWrap::load_or_create(data.path()).unwrap().wrap(&key);
        let file = data.path().join(KEY_SECRET_FILE);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = KeyWrap::load_or_create(data.path()).unwrap();
        assert_eq!(again.unwrap(&wrapped).unwrap(), key, "kept across starts");
    }
}
