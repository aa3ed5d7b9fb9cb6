//! Secrets on disk, apart from the media: the per-recording content keys
//! of encrypted recordings (`<data>/keys/<id>.key`) and the share-token
//! secret (`<data>/token-secret`, see [`crate::share`]). Files are written
//! with mode 0600 and fsynced: a key lost is a recording that can never be
//! played again.
//!
//! ```text
//! <data>/token-secret         32 random bytes (unless --token-secret)
//! <data>/keys/<id>.key        16 bytes: the AES-128 key of recording <id>
//! <data>/recordings/<id>/...  media, playlists: no key in here
//! ```
//! A copy of `recordings/` (or of a bucket the media is published to)
//! therefore does not play an encrypted recording.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base::files::write_private;
use base::ids::is_valid_id;
use media::aes::{ContentKey, KEY_BYTES};

const KEYS_DIR: &str = "keys";
const KEY_SUFFIX: &str = ".key";

/// The content keys of encrypted recordings.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(KEYS_DIR),
        }
    }

    fn path(&self, id: &str) -> io::Result<PathBuf> {
        if !is_valid_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a recording id",
            ));
        }
        Ok(self.dir.join(format!("{id}{KEY_SUFFIX}")))
    }

    /// Makes and stores a new random key for recording `id`.
    pub fn create(&self, id: &str) -> io::Result<ContentKey> {
        let path = self.path(id)?;
        fs::create_dir_all(&self.dir)?;
        fs::set_permissions(
            &self.dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let key = ContentKey::generate();
        write_private(&path, key.bytes())?;
        Ok(key)
    }

    /// The key of recording `id`; `None` when it has none.
    pub fn load(&self, id: &str) -> io::Result<Option<ContentKey>> {
        match fs::read(self.path(id)?) {
            Ok(bytes) => {
                let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the key of {id} is not {KEY_BYTES} bytes"),
                    )
                })?;
                Ok(Some(ContentKey::from_bytes(bytes)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Forgets the key: whatever copies of the media remain are unreadable.
    pub fn delete(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(id)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_kept_for_their_owner_and_forgotten_on_delete() {
        let data = tempfile::tempdir().unwrap();
        let keys = KeyStore::new(data.path());
        assert_eq!(keys.load("abc").unwrap(), None);
        let key = keys.create("abc").unwrap();
        assert_eq!(keys.load("abc").unwrap(), Some(key));
        let file = data.path().join("keys/abc.key");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            !data.path().join("recordings").exists(),
            "apart from the media"
        );
        keys.delete("abc").unwrap();
        assert_eq!(keys.load("abc").unwrap(), None);
        assert!(keys.path("../x").is_err());
    }
}
