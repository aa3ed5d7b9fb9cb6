//! What a live recording's bytes are, read from its chunk 0, and whether
//! that agrees with the media type its creator declared
//! (docs/http-contract.md, "Ingest formats (v2)").
//!
//! Two containers come out of browsers' MediaRecorder:
//! - **EBML / Matroska** (RFC 8794, RFC 9559; WebM is a Matroska profile):
//!   Chromium and Firefox. The stream starts with the EBML magic
//!   `1A 45 DF A3`. Chromium declares `video/webm;codecs=h264` for what is
//!   strictly Matroska, so WebM and Matroska are one family.
//! - **ISO-BMFF, fragmented** (ISO/IEC 14496-12 §8.8): Safari and iOS, and
//!   Chromium's `video/mp4`. The stream starts with `ftyp`, then `moov`
//!   (with `mvex`: fragments follow), then `moof`+`mdat` pairs. A
//!   progressive MP4 (`mdat` before `moov`, or a `moov` without `mvex`)
//!   cannot be read as it arrives and is refused.
//!
//! Pure: bytes and a media type in, a [`Container`] or a reason out.

use serde::{Deserialize, Serialize};

/// The EBML magic every Matroska/WebM stream starts with (RFC 8794 §8).
const EBML_MAGIC: [u8; 4] = [0x1a, 0x45, 0xdf, 0xa3];

/// The media type stored when the creator declared none: the container is
/// then taken from the bytes, and the type with it.
pub const UNDECLARED_MIME: &str = "application/octet-stream";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// EBML: WebM or Matroska.
    Webm,
    /// Fragmented ISO-BMFF.
    Mp4,
}

impl Container {
    /// ffmpeg's name for the demuxer (`-f`): the live input is a pipe, so
    /// ffmpeg is told rather than left to guess from a few bytes.
    pub fn ffmpeg_format(self) -> &'static str {
        match self {
            Self::Webm => "matroska",
            Self::Mp4 => "mp4",
        }
    }

    /// The media type the original is served with when none was declared.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Webm => "video/webm",
            Self::Mp4 => "video/mp4",
        }
    }

    fn family(self) -> &'static str {
        match self {
            Self::Webm => "WebM/Matroska",
            Self::Mp4 => "MP4",
        }
    }
}

/// The container a declared media type names: `Ok(None)` when nothing was
/// declared, `Err` for a type segcast does not ingest live.
pub fn declared_container(mime: &str) -> Result<Option<Container>, String> {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        UNDECLARED_MIME | "" => Ok(None),
        "video/webm" | "audio/webm" | "video/x-matroska" | "audio/x-matroska"
        | "video/matroska" | "audio/matroska" => Ok(Some(Container::Webm)),
        "video/mp4" | "audio/mp4" | "video/iso.segment" | "audio/iso.segment" => {
            Ok(Some(Container::Mp4))
        }
        _ => Err(format!(
            "the recording was declared as '{mime}'; live recordings take WebM/Matroska \
             (video/webm) or fragmented MP4 (video/mp4)"
        )),
    }
}

/// Checks the first bytes of a recording against the declared media type:
/// the container they are, `None` while they are too few to tell (Chromium's
/// first blob may be a single byte of the EBML magic, and an empty chunk is
/// a valid chunk), or why they are refused (answered 415).
pub fn check_first_chunk(declared_mime: &str, bytes: &[u8]) -> Result<Option<Container>, String> {
    let declared = declared_container(declared_mime)?;
    let Some(found) = sniff(bytes)? else {
        return Ok(None);
    };
    match declared {
        Some(declared) if declared != found => Err(format!(
            "chunk 0 is {} but the recording was declared as '{declared_mime}' ({}); \
             create the recording with the type the recorder produces",
            found.family(),
            declared.family()
        )),
        _ => Ok(Some(found)),
    }
}

/// What the first bytes of a recording are; `None` while they are too few
/// to tell and still agree with a header segcast reads.
pub fn sniff(bytes: &[u8]) -> Result<Option<Container>, String> {
    if bytes.starts_with(&EBML_MAGIC) {
        return Ok(Some(Container::Webm));
    }
    if bytes.get(4..8) == Some(b"ftyp") {
        return check_fragmented(bytes).map(|()| Some(Container::Mp4));
    }
    let ebml_so_far = bytes.len() < EBML_MAGIC.len() && EBML_MAGIC.starts_with(bytes);
    // An MP4 box header is a 4-byte size, then the type.
    let ftyp_so_far = bytes.len() < 8 && b"ftyp".starts_with(bytes.get(4..).unwrap_or_default());
    if ebml_so_far || ftyp_so_far {
        return Ok(None);
    }
    Err(
        "the recording starts neither as WebM/Matroska (EBML) nor as MP4 (ftyp): not a \
         recording segcast can read"
            .into(),
    )
}

/// Refuses an MP4 whose first chunk shows it is not fragmented, looking at
/// the top-level boxes it holds (ISO/IEC 14496-12 §4.2 box headers).
/// Boxes cut off at the end of the chunk are not judged.
fn check_fragmented(bytes: &[u8]) -> Result<(), String> {
    let progressive = || {
        Err(
            "chunk 0 is a progressive MP4 (its media comes before or without fragments); \
             record fragmented MP4 (moov with mvex, then moof+mdat)"
                .to_string(),
        )
    };
    for (kind, body) in top_level_boxes(bytes) {
        match &kind {
            b"mdat" => return progressive(),
            b"moov" => {
                let has_mvex = body.is_some_and(|b| top_level_boxes(b).any(|(k, _)| &k == b"mvex"));
                if body.is_some() && !has_mvex {
                    return progressive();
                }
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Iterates `(type, body)` over the boxes of `bytes`; the body is `None`
/// for the last box when it continues past the end of `bytes`.
fn top_level_boxes(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], Option<&[u8]>)> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + 8)?;
        let kind: [u8; 4] = header[4..8].try_into().expect("4 bytes");
        let (size, header_len) = match u32::from_be_bytes(header[..4].try_into().expect("4")) {
            // size 1: a 64-bit size follows the type.
            1 => (
                u64::from_be_bytes(bytes.get(at + 8..at + 16)?.try_into().expect("8")),
                16,
            ),
            // size 0: the box runs to the end of the file.
            0 => (u64::MAX, 8),
            n => (u64::from(n), 8),
        };
        if size < header_len {
            return None;
        }
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| at.checked_add(s))
            .filter(|&end| end <= bytes.len());
        let body = end.map(|end| &bytes[at + header_len as usize..end]);
        at = end.unwrap_or(bytes.len());
        Some((kind, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn fragmented_header() -> Vec<u8> {
        let moov = mp4_box(
            b"moov",
            &[mp4_box(b"mvhd", &[0; 100]), mp4_box(b"mvex", &[0; 8])].concat(),
        );
        [mp4_box(b"ftyp", b"isom\0\0\0\0"), moov].concat()
    }

    #[test]
    fn ebml_and_fragmented_mp4_are_recognised() {
        assert_eq!(
            sniff(&[0x1a, 0x45, 0xdf, 0xa3, 0x9f]),
            Ok(Some(Container::Webm))
        );
        assert_eq!(sniff(&fragmented_header()), Ok(Some(Container::Mp4)));
        // Only the ftyp arrived in chunk 0: nothing says it is progressive.
        assert_eq!(
            sniff(&mp4_box(b"ftyp", b"isom\0\0\0\0")),
            Ok(Some(Container::Mp4))
        );
        // A moov cut at the end of the chunk is not judged.
        let mut cut = fragmented_header();
        cut.truncate(cut.len() - 20);
        assert_eq!(sniff(&cut), Ok(Some(Container::Mp4)));
    }

    #[test]
    fn progressive_mp4_empty_and_unknown_bytes_are_refused() {
        let ftyp = mp4_box(b"ftyp", b"isom\0\0\0\0");
        let media_first = [ftyp.clone(), mp4_box(b"mdat", &[1; 50])].concat();
        assert!(sniff(&media_first).unwrap_err().contains("progressive"));
        let no_mvex = [ftyp, mp4_box(b"moov", &mp4_box(b"mvhd", &[0; 100]))].concat();
        assert!(sniff(&no_mvex).unwrap_err().contains("progressive"));
        assert!(sniff(b"OggS\0\x02").unwrap_err().contains("neither"));
        assert!(
            sniff(&[0x1a, 0x45, 0xdf, 0, 0, 0, 0, 0]).is_err(),
            "not the EBML magic"
        );
        assert!(sniff(&[0, 0, 0, 0x20, b'f', b't', b'y', b'x']).is_err());
    }

    #[test]
    fn too_few_bytes_to_tell_wait_for_more() {
        // Chromium's first blob can be one byte; browsers emit empty blobs.
        for head in [
            &b""[..],
            &[0x1a],
            &[0x1a, 0x45, 0xdf],
            &[0, 0, 0, 0x20, b'f', b't'],
        ] {
            assert_eq!(sniff(head), Ok(None), "{head:02x?}");
            assert_eq!(check_first_chunk("video/webm", head), Ok(None));
        }
        assert!(check_first_chunk("video/ogg", &[0x1a]).is_err());
    }

    #[test]
    fn the_declared_type_is_checked_by_family() {
        let webm = [0x1a, 0x45, 0xdf, 0xa3, 0x9f];
        let mp4 = fragmented_header();
        // Chromium declares webm for its Matroska H.264.
        for mime in [
            "video/webm;codecs=h264,opus",
            "video/x-matroska",
            "audio/webm",
        ] {
            assert_eq!(
                check_first_chunk(mime, &webm),
                Ok(Some(Container::Webm)),
                "{mime}"
            );
        }
        for mime in ["video/mp4", "video/mp4;codecs=avc1,mp4a.40.2", "audio/mp4"] {
            assert_eq!(
                check_first_chunk(mime, &mp4),
                Ok(Some(Container::Mp4)),
                "{mime}"
            );
        }
        assert_eq!(
            check_first_chunk(UNDECLARED_MIME, &mp4),
            Ok(Some(Container::Mp4))
        );
        let mismatch = check_first_chunk("video/mp4", &webm).unwrap_err();
        assert!(
            mismatch.contains("WebM/Matroska") && mismatch.contains("'video/mp4'"),
            "{mismatch}"
        );
        assert!(check_first_chunk("video/webm", &mp4).is_err());
        let unknown = check_first_chunk("video/ogg", &webm).unwrap_err();
        assert!(unknown.contains("'video/ogg'"), "{unknown}");
    }
}
