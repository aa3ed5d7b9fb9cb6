//! Single-track CMAF from ffmpeg's muxed fragmented MP4.
//!
//! ffmpeg writes one fMP4 with every track in it: an init segment whose
//! `moov` holds a `trak` per track, and fragments whose `moof` holds a
//! `traf` per track over one `mdat`. CMAF (ISO/IEC 23000-19 §7.3.1) wants
//! one track per file, and so do DASH players (dash.js plays audio and video
//! only as separate adaptation sets): this module cuts the muxed stream into
//! one stream per track without re-encoding anything.
//!
//! - Init (ISO/IEC 14496-12 §8.2.1, §8.8.1): `ftyp` + a `moov` that keeps
//!   `mvhd`, the one `trak`, and an `mvex` with only that track's `trex`.
//! - Fragment (§8.8.4-8): `moof` = `mfhd` + the one `traf`, then an `mdat`
//!   with only that track's sample bytes. With `default-base-is-moof`
//!   (§8.8.7.1) a `trun`'s `data_offset` counts from the `moof`'s first
//!   byte, so each is rewritten to point into the new, smaller `mdat`.
//!   Nothing else changes size, so the new `moof` is the old `mfhd` and
//!   `traf` bytes with those offsets patched.

use mp4_atom::{Tfhd, Trun, TrunSamples};

use crate::fmp4::{all_children, boxes_in, children, decode_box, required, SplitError, TrackInfo};

const MDAT_HEADER_BYTES: usize = 8;
/// `trun` flag: a `data_offset` field follows the sample count (§8.8.8.1).
const TRUN_DATA_OFFSET_PRESENT: u32 = 0x000001;

fn unsupported(reason: impl Into<String>) -> SplitError {
    SplitError::Decode {
        kind: "moof".into(),
        reason: reason.into(),
    }
}

/// `ftyp` + a `moov` with only track `track_id`.
pub fn track_init(init_bytes: &[u8], track_id: u32) -> Result<Vec<u8>, SplitError> {
    let mut out = Vec::with_capacity(init_bytes.len());
    for (kind, boxed) in boxes_in(init_bytes)? {
        match kind.as_ref() {
            b"moov" => {
                let mut body = Vec::new();
                for (child_kind, child) in all_children(boxed)? {
                    match child_kind.as_ref() {
                        b"trak" if trak_id(child)? != track_id => {}
                        b"mvex" => {
                            let mut mvex = Vec::new();
                            for (grand_kind, grand) in all_children(child)? {
                                let other = grand_kind.as_ref() == b"trex"
                                    && grand.get(12..16) != Some(&track_id.to_be_bytes()[..]);
                                if !other {
                                    mvex.extend_from_slice(grand);
                                }
                            }
                            write_box(&mut body, b"mvex", &mvex);
                        }
                        _ => body.extend_from_slice(child),
                    }
                }
                write_box(&mut out, b"moov", &body);
            }
            _ => out.extend_from_slice(boxed),
        }
    }
    Ok(out)
}

fn trak_id(trak: &[u8]) -> Result<u32, SplitError> {
    let tkhd: mp4_atom::Tkhd = decode_box(required(trak, &[b"tkhd"])?)?;
    Ok(tkhd.track_id)
}

fn write_box(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    let size = u32::try_from(body.len() + 8).expect("init and moof boxes are small");
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
}

/// The bytes of one track of a muxed fragment (`[styp…] moof mdat`), as a
/// fragment of its own; `None` when the fragment has no samples of it.
pub fn track_fragment(fragment: &[u8], track: &TrackInfo) -> Result<Option<Vec<u8>>, SplitError> {
    let boxes = boxes_in(fragment)?;
    let find = |name: &[u8; 4]| boxes.iter().find(|(k, _)| k.as_ref() == name);
    let (Some(&(_, moof)), Some(&(_, mdat))) = (find(b"moof"), find(b"mdat")) else {
        return Err(unsupported("a fragment without moof and mdat"));
    };
    let moof_start = moof.as_ptr() as usize - fragment.as_ptr() as usize;
    let Some(traf) = children(moof, b"traf")?
        .into_iter()
        .find(|traf| traf_id(traf).is_ok_and(|id| id == track.track_id))
    else {
        return Ok(None);
    };
    let mfhd = children(moof, b"mfhd")?
        .into_iter()
        .next()
        .ok_or_else(|| unsupported("moof without mfhd"))?;
    let tfhd: Tfhd = decode_box(required(traf, &[b"tfhd"])?)?;
    if tfhd.base_data_offset.is_some() {
        return Err(unsupported(
            "explicit base_data_offset (not default-base-is-moof)",
        ));
    }
    let default_size = tfhd
        .default_sample_size
        .unwrap_or(track.default_sample_size);
    let new_moof_len = 8 + mfhd.len() + traf.len();
    let mut traf = traf.to_vec();
    let mut data = Vec::new();
    for (at, trun_len) in trun_positions(&traf)? {
        let trun: Trun = decode_box(&traf[at..at + trun_len])?;
        let offset = trun
            .data_offset
            .ok_or_else(|| unsupported("trun without data_offset"))?;
        let len = run_bytes(&trun.samples, default_size)?;
        let start = moof_start
            .checked_add_signed(offset as isize)
            .filter(|&s| {
                s >= moof_start + moof.len() && s + len <= moof_start + moof.len() + mdat.len()
            })
            .ok_or_else(|| unsupported("trun data outside its mdat"))?;
        let new_offset = new_moof_len + MDAT_HEADER_BYTES + data.len();
        data.extend_from_slice(&fragment[start..start + len]);
        let field = at + trun_header_len(&traf[at..]) + 8;
        traf[field..field + 4].copy_from_slice(&(new_offset as i32).to_be_bytes());
    }
    let mut out = Vec::with_capacity(new_moof_len + MDAT_HEADER_BYTES + data.len());
    let mut moof_body = mfhd.to_vec();
    moof_body.extend_from_slice(&traf);
    write_box(&mut out, b"moof", &moof_body);
    write_box(&mut out, b"mdat", &data);
    Ok(Some(out))
}

fn traf_id(traf: &[u8]) -> Result<u32, SplitError> {
    let tfhd: Tfhd = decode_box(required(traf, &[b"tfhd"])?)?;
    Ok(tfhd.track_id)
}

/// Where each `trun` starts inside a `traf` (byte offsets), with its length.
fn trun_positions(traf: &[u8]) -> Result<Vec<(usize, usize)>, SplitError> {
    let base = traf.as_ptr() as usize;
    let mut out = Vec::new();
    for (kind, child) in all_children(traf)? {
        if kind.as_ref() == b"trun" {
            let flags = child
                .get(trun_header_len(child) + 1..trun_header_len(child) + 4)
                .map_or(0, |f| u32::from_be_bytes([0, f[0], f[1], f[2]]));
            if flags & TRUN_DATA_OFFSET_PRESENT == 0 {
                return Err(unsupported("trun without data_offset"));
            }
            out.push((child.as_ptr() as usize - base, child.len()));
        }
    }
    Ok(out)
}

/// 8, or 16 for a box with a 64-bit `largesize`.
fn trun_header_len(boxed: &[u8]) -> usize {
    if boxed.get(..4) == Some(&[0, 0, 0, 1]) {
        16
    } else {
        8
    }
}

/// Sample bytes of a run: explicit sizes, or the default times the count.
fn run_bytes(samples: &TrunSamples, default_size: u32) -> Result<usize, SplitError> {
    let total: u64 = match samples {
        TrunSamples::Inherited { count, .. } => u64::from(*count) * u64::from(default_size),
        TrunSamples::Explicit(entries) => entries
            .iter()
            .map(|e| u64::from(e.size.unwrap_or(default_size)))
            .sum(),
    };
    usize::try_from(total).map_err(|_| unsupported("run larger than memory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{Piece, Splitter, TrackKind};

    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/frag-3s-kf1s.mp4");

    fn split(bytes: &[u8]) -> Vec<Piece> {
        let mut splitter = Splitter::default();
        let pieces = splitter.push(bytes).unwrap();
        splitter.finish().unwrap();
        pieces
    }

    /// Every track of the fixture, cut out, is a valid fMP4 stream of its
    /// own whose fragments have exactly the original track's timing.
    #[test]
    fn each_track_becomes_a_stream_of_its_own_with_the_same_timing() {
        let pieces = split(FIXTURE);
        let Piece::Init(init) = &pieces[0] else {
            panic!("init first")
        };
        assert_eq!(init.tracks.len(), 2);
        for track in &init.tracks {
            let mut stream = track_init(&init.bytes, track.track_id).unwrap();
            let mut expected = Vec::new();
            for piece in &pieces[1..] {
                let Piece::Fragment(fragment) = piece else {
                    panic!()
                };
                let own = track_fragment(&fragment.bytes, track).unwrap().unwrap();
                stream.extend_from_slice(&own);
                expected.push(*fragment.run(track.track_id).unwrap());
            }
            let again = split(&stream);
            let Piece::Init(own_init) = &again[0] else {
                panic!("init first")
            };
            assert_eq!(own_init.tracks.len(), 1);
            assert_eq!(own_init.tracks[0].track_id, track.track_id);
            assert_eq!(own_init.tracks[0].kind, track.kind);
            let runs: Vec<_> = again[1..]
                .iter()
                .map(|p| match p {
                    Piece::Fragment(f) => {
                        assert_eq!(f.runs.len(), 1);
                        f.runs[0]
                    }
                    Piece::Init(_) => panic!("one init"),
                })
                .collect();
            assert_eq!(runs, expected, "track {}", track.track_id);
            if matches!(track.kind, TrackKind::Video { .. }) {
                assert!(runs[0].starts_with_sync);
            }
        }
    }

    /// Writes each track of the fixture to `dir` as `track-<id>.mp4`.
    pub(crate) fn write_tracks(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let pieces = split(FIXTURE);
        let Piece::Init(init) = &pieces[0] else {
            panic!("init first")
        };
        init.tracks
            .iter()
            .map(|track| {
                let mut bytes = track_init(&init.bytes, track.track_id).unwrap();
                for piece in &pieces[1..] {
                    if let Piece::Fragment(f) = piece {
                        bytes.extend(track_fragment(&f.bytes, track).unwrap().unwrap());
                    }
                }
                let path = dir.join(format!("track-{}.mp4", track.track_id));
                std::fs::write(&path, bytes).unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn ffmpeg_decodes_each_track_alone() {
        let tmp = tempfile::tempdir().unwrap();
        for path in write_tracks(tmp.path()) {
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"])
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Each track's samples are the very bytes its `trun` points at in the
    /// muxed `mdat`, in their order, and the tracks together cover it all.
    #[test]
    fn the_sample_bytes_are_moved_not_changed() {
        let pieces = split(FIXTURE);
        let Piece::Init(init) = &pieces[0] else {
            panic!("init first")
        };
        let find = |bytes: &[u8], kind: &[u8; 4]| {
            let boxes = boxes_in(bytes).unwrap();
            let at = boxes.iter().position(|(k, _)| k.as_ref() == kind).unwrap();
            (at, boxes[at].1.to_vec(), boxes.len())
        };
        for piece in &pieces[1..] {
            let Piece::Fragment(fragment) = piece else {
                panic!("one init")
            };
            let (moof_at, moof, _) = find(&fragment.bytes, b"moof");
            let (mdat_at, mdat, _) = find(&fragment.bytes, b"mdat");
            assert_eq!(mdat_at, moof_at + 1, "the mdat follows its moof");
            let original = &mdat[8..];
            let mut covered = 0;
            for track in &init.tracks {
                let own = track_fragment(&fragment.bytes, track).unwrap().unwrap();
                let (_, own_mdat, boxes) = find(&own, b"mdat");
                assert_eq!(boxes, 2, "moof + mdat");
                let own = &own_mdat[8..];
                let traf = children(&moof, b"traf")
                    .unwrap()
                    .into_iter()
                    .find(|t| traf_id(t).unwrap() == track.track_id)
                    .unwrap();
                let truns = children(traf, b"trun").unwrap();
                assert_eq!(truns.len(), 1, "ffmpeg writes one run per track");
                let trun: Trun = decode_box(truns[0]).unwrap();
                // Counted from the moof's first byte (default-base-is-moof).
                let at = trun.data_offset.unwrap() as usize - moof.len() - 8;
                assert!(
                    &original[at..at + own.len()] == own,
                    "track {}: not the {} bytes at {at} of the muxed mdat",
                    track.track_id,
                    own.len()
                );
                covered += own.len();
            }
            assert_eq!(covered, original.len(), "every sample byte is kept");
        }
    }
}
