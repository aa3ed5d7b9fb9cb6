//! Full-segment AES-128 encryption of HLS media (RFC 8216 §5.2,
//! `METHOD=AES-128`): AES-128-CBC over a whole resource with PKCS7 padding,
//! with the RustCrypto `aes` + `cbc` crates (no hand-rolled cipher).
//!
//! IVs: one per segment, written in each `EXT-X-KEY` (§4.3.2.4). They are
//! derived, not stored: the IV of track `t`'s segment `n` is the key
//! applied to the nonce `(t, n)` (NIST SP 800-38A, Appendix C, first
//! method), so it is unpredictable to anyone without the key, unique per
//! track and segment, and the same after a restart without saving a byte.
//!
//! Parts (LL-HLS): every part is a resource of its own and is encrypted on
//! its own, with its segment's IV. That is what hls.js (1.7) decrypts: it
//! takes a part's key and IV from its parent segment (`frag.decryptdata`)
//! and decrypts each part as one CBC message; and it is what the playlist
//! says to a player that follows RFC 8216bis to the letter, since the
//! `EXT-X-KEY` in force before a segment's first `EXT-X-PART` is the one
//! of the segment (docs/architecture.md, decision 11).

use aes::cipher::{
    block_padding::Pkcs7, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit,
};
use rand::RngCore;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// Bytes of an AES-128 key and of an IV.
pub const KEY_BYTES: usize = 16;

/// A recording's content key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ContentKey([u8; KEY_BYTES]);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log.
        f.write_str("ContentKey(..)")
    }
}

/// The input did not decrypt (wrong key, IV, or not a whole CBC message).
#[derive(Debug, thiserror::Error)]
#[error("the bytes do not decrypt with this key and IV")]
pub struct DecryptError;

impl ContentKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = [0; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// The key as served to players (the 16 raw bytes, RFC 8216 §5.2).
    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The IV of segment `seq` of the track at `track_index` (and of each
    /// of that segment's parts).
    pub fn iv(&self, track_index: usize, seq: u64) -> [u8; KEY_BYTES] {
        let mut nonce = [0u8; KEY_BYTES];
        nonce[..8].copy_from_slice(&(track_index as u64).to_be_bytes());
        nonce[8..].copy_from_slice(&seq.to_be_bytes());
        let mut block = aes::Block::from(nonce);
        aes::Aes128::new(&self.0.into()).encrypt_block(&mut block);
        block.into()
    }

    /// AES-128-CBC with PKCS7 padding: 1..=16 bytes longer than `plain`.
    pub fn encrypt(&self, iv: &[u8; KEY_BYTES], plain: &[u8]) -> Vec<u8> {
        Encryptor::new(&self.0.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain)
    }

    pub fn decrypt(&self, iv: &[u8; KEY_BYTES], cipher: &[u8]) -> Result<Vec<u8>, DecryptError> {
        Decryptor::new(&self.0.into(), iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(cipher)
            .map_err(|_| DecryptError)
    }
}

/// Part bytes `offset..offset + len` of an encrypted segment file, as the
/// part is served: decrypted from the segment and encrypted on its own
/// under the segment's IV (what the live edge served, byte for byte).
pub fn part_of_encrypted_segment(
    key: &ContentKey,
    track_index: usize,
    seq: u64,
    segment: &[u8],
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, DecryptError> {
    let iv = key.iv(track_index, seq);
    let plain = key.decrypt(&iv, segment)?;
    let part = plain
        .get(offset as usize..(offset + len) as usize)
        .ok_or(DecryptError)?;
    Ok(key.encrypt(&iv, part))
}

/// The `IV` attribute of `EXT-X-KEY`: a hexadecimal-sequence (§4.2).
pub fn iv_attribute(iv: &[u8; KEY_BYTES]) -> String {
    format!("0x{}", hex::encode_upper(iv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_pkcs7_padding() {
        let key = ContentKey::from_bytes([7; 16]);
        let iv = key.iv(0, 3);
        for len in [0, 1, 15, 16, 17, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let cipher = key.encrypt(&iv, &plain);
            assert_eq!(cipher.len(), (len / 16 + 1) * 16, "PKCS7 always pads");
            assert!(len == 0 || cipher[..len.min(16)] != plain[..len.min(16)]);
            assert_eq!(key.decrypt(&iv, &cipher).unwrap(), plain);
        }
    }

    #[test]
    fn known_answer_from_nist_sp800_38a() {
        // F.2.1 CBC-AES128.Encrypt, first block (no padding block compared).
        let key = ContentKey::from_bytes(
            hex::decode("2b7e151628aed2a6abf7158809cf4f3c")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let iv: [u8; 16] = hex::decode("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap();
        let plain = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let cipher = key.encrypt(&iv, &plain);
        assert_eq!(
            hex::encode(&cipher[..16]),
            "7649abac8119b246cee98e9b12e9197d"
        );
    }

    #[test]
    fn ivs_differ_per_track_and_segment_and_depend_on_the_key() {
        let key = ContentKey::from_bytes([1; 16]);
        let ivs = [key.iv(0, 0), key.iv(0, 1), key.iv(1, 0), key.iv(1, 1)];
        for (i, a) in ivs.iter().enumerate() {
            for b in &ivs[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key.iv(0, 1), key.iv(0, 1), "derived, so stable");
        assert_ne!(ContentKey::from_bytes([2; 16]).iv(0, 0), key.iv(0, 0));
        assert!(iv_attribute(&key.iv(0, 0)).starts_with("0x"));
        assert_eq!(iv_attribute(&key.iv(0, 0)).len(), 34);
    }

    #[test]
    fn a_part_cut_from_its_segment_is_the_part_encrypted_alone() {
        let key = ContentKey::from_bytes([9; 16]);
        let plain: Vec<u8> = (0..100u8).collect();
        let segment = key.encrypt(&key.iv(1, 4), &plain);
        let part = part_of_encrypted_segment(&key, 1, 4, &segment, 30, 40).unwrap();
        assert_eq!(part, key.encrypt(&key.iv(1, 4), &plain[30..70]));
        assert!(part_of_encrypted_segment(&key, 1, 4, &segment, 90, 40).is_err());
    }

    #[test]
    fn a_wrong_key_does_not_decrypt() {
        let key = ContentKey::from_bytes([1; 16]);
        let iv = key.iv(0, 0);
        let cipher = key.encrypt(&iv, b"moof moof moof moof moof");
        let wrong = ContentKey::from_bytes([2; 16]).decrypt(&iv, &cipher);
        assert!(wrong.map_or(true, |plain| plain != b"moof moof moof moof moof"));
    }
}
