//! Recording ids and random bytes. Ids are made by the server, so anything
//! else found in a URL or a folder name is refused before it can name a
//! path.

use rand::RngCore;

/// Random bytes in a recording id: unguessable enough that knowing the id
/// is the capability to watch it.
const ID_BYTES: usize = 10;

/// Bytes from the operating system's generator (getrandom(2)).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A new recording id: 20 lowercase hex digits.
pub fn new_id() -> String {
    hex::encode(random_bytes::<ID_BYTES>())
}

/// Whether `id` could be one the server made: 1 to 64 lowercase letters
/// and digits, so it never names another path.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_name_other_paths_are_invalid() {
        for bad in ["", "..", "a/b", "A", "a.b", "%2e%2e", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
        assert!(is_valid_id("0f3a9c"));
        let id = new_id();
        assert!(is_valid_id(&id) && id.len() == 20, "{id}");
        assert_ne!(new_id(), id);
    }
}
