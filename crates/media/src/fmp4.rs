//! Incremental splitter for ffmpeg's fragmented MP4 byte stream.
//!
//! ffmpeg writes one fragmented MP4 (ISO/IEC 14496-12 §8.8, "movie fragments")
//! to a pipe; it arrives in reads of arbitrary size, so a box may straddle any
//! number of reads. The stream has this shape:
//!
//! ```text
//! ftyp moov            ← init segment (§8.2.1 moov with §8.8.1 mvex)
//! [styp|prft|emsg]* moof mdat   ← one fragment (§8.8.4 moof, §8.1.1 mdat)
//! ...                  ← more fragments
//! [mfra]               ← random-access index (§8.8.9); ignored
//! ```
//!
//! [`Splitter::push`] takes bytes and returns every [`Piece`] completed by
//! them. Box headers follow §4.2 (32-bit size, `size == 1` → 64-bit
//! `largesize`); `size == 0` ("to end of file") is rejected because a live
//! stream has no end to run to. Box *bodies* (moov, moof) are decoded with
//! `mp4-atom`, which reads tfhd/trun/trex defaults correctly. Only the boxes
//! segcast needs are decoded (tkhd, mdhd, stsd, trex; tfhd, tfdt, trun); the
//! rest are skipped unread, because fuzzing found that decoding whole
//! moov/moof trees with mp4-atom 0.17 lets one small hostile `sgpd` cost
//! seconds and a gigabyte.

use mp4_atom::{
    Atom, Buf, Codec, Decode, DecodeMaybe, FourCC, Header, Mdhd, Stsd, Tfdt, Tfhd, Tkhd, Trex,
    Trun, TrunSamples,
};

/// Largest single box accepted. A corrupt or hostile size field must fail
/// fast instead of making the splitter buffer gigabytes waiting for it.
pub const DEFAULT_MAX_BOX_BYTES: usize = 64 << 20;

/// `sample_is_non_sync_sample` bit of the sample flags (§8.8.3.1).
const SAMPLE_FLAG_NON_SYNC: u32 = 0x0001_0000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    #[error("box '{kind}' declares {size} bytes, over the {max}-byte limit")]
    BoxTooLarge { kind: String, size: u64, max: usize },
    #[error("box '{kind}' has an invalid size field")]
    BadSize { kind: String },
    #[error("box '{kind}' runs to end of stream (size 0), which a live stream cannot use")]
    SizeToEnd { kind: String },
    #[error("stream ended inside a box ({0} bytes left over)")]
    Truncated(usize),
    #[error("'{0}' box where it does not belong")]
    Unexpected(String),
    #[error("cannot decode '{kind}': {reason}")]
    Decode { kind: String, reason: String },
}

/// What kind of media a track carries, with what a playlist needs to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackKind {
    Video { width: u16, height: u16 },
    Audio { sample_rate_hz: u32, channels: u16 },
    Other,
}

/// One `trak` of the init segment, with the `trex` defaults fragments inherit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: u32,
    pub kind: TrackKind,
    pub timescale: u32,
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`), or the fourcc.
    pub codec: String,
    default_sample_dur_ticks: u32,
    default_sample_flags: u32,
    pub(super) default_sample_size: u32,
}

/// ftyp + moov: what a player fetches once through `#EXT-X-MAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSegment {
    pub bytes: Vec<u8>,
    pub tracks: Vec<TrackInfo>,
}

impl InitSegment {
    /// The track whose timeline defines segment boundaries: video when there
    /// is any (segments must start at its keyframes), else the first track.
    pub fn primary_track(&self) -> Option<&TrackInfo> {
        self.tracks
            .iter()
            .find(|t| matches!(t.kind, TrackKind::Video { .. }))
            .or_else(|| self.tracks.first())
    }
}

/// Timing of one track inside one fragment (one `traf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    pub base_decode_ticks: u64,
    pub dur_ticks: u64,
    pub samples: u32,
    /// The first sample is a sync sample: decoding can start here.
    pub starts_with_sync: bool,
}

/// One moof + mdat (plus any styp/prft/emsg just before the moof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub bytes: Vec<u8>,
    pub runs: Vec<TrackRun>,
}

impl Fragment {
    pub fn run(&self, track_id: u32) -> Option<&TrackRun> {
        self.runs.iter().find(|r| r.track_id == track_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Init(InitSegment),
    Fragment(Fragment),
}

/// Splits a growing fMP4 byte stream into init segment and fragments.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    max_box_bytes: usize,
    ftyp: Option<Vec<u8>>,
    init: Option<InitSegment>,
    /// Boxes of the fragment being assembled (prefix boxes, then moof).
    pending: Vec<u8>,
    /// Timing of the moof waiting for its mdat.
    pending_moof: Option<Vec<TrackRun>>,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BOX_BYTES)
    }
}

impl Splitter {
    pub fn new(max_box_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_box_bytes,
            ftyp: None,
            init: None,
            pending: Vec::new(),
            pending_moof: None,
        }
    }

    /// The init segment, once the moov has been seen.
    pub fn init(&self) -> Option<&InitSegment> {
        self.init.as_ref()
    }

    /// Feeds bytes; returns the pieces they complete, in stream order.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Piece>, SplitError> {
        self.buf.extend_from_slice(data);
        let mut pieces = Vec::new();
        let mut consumed = 0;
        while let Some((kind, len)) = self.next_box(&self.buf[consumed..])? {
            let end = consumed + len;
            let boxed = self.buf[consumed..end].to_vec();
            consumed = end;
            if let Some(piece) = self.take_box(kind, boxed)? {
                pieces.push(piece);
            }
        }
        // One drain per push keeps the cost linear in the bytes pushed.
        self.buf.drain(..consumed);
        Ok(pieces)
    }

    /// Declares the end of the stream: fails if it stopped inside a box or a
    /// fragment (a moof without its mdat).
    pub fn finish(&self) -> Result<(), SplitError> {
        let left = self.buf.len() + self.pending.len();
        if left > 0 {
            return Err(SplitError::Truncated(left));
        }
        Ok(())
    }

    /// Kind and total length of the box at the start of `buf`, if complete.
    fn next_box(&self, buf: &[u8]) -> Result<Option<(FourCC, usize)>, SplitError> {
        let mut cursor = buf;
        let header = match Header::decode_maybe(&mut cursor) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(_) => {
                let kind = FourCC::new(&buf[4..8].try_into().unwrap_or([b'?'; 4]));
                return Err(SplitError::BadSize {
                    kind: kind.to_string(),
                });
            }
        };
        let header_len = buf.len() - cursor.remaining();
        let kind = header.kind;
        let body = header.size.ok_or(SplitError::SizeToEnd {
            kind: kind.to_string(),
        })?;
        let total = body as u64 + header_len as u64;
        if total > self.max_box_bytes as u64 {
            return Err(SplitError::BoxTooLarge {
                kind: kind.to_string(),
                size: total,
                max: self.max_box_bytes,
            });
        }
        let total = total as usize;
        Ok((buf.len() >= total).then_some((kind, total)))
    }

    fn take_box(&mut self, kind: FourCC, boxed: Vec<u8>) -> Result<Option<Piece>, SplitError> {
        match kind.as_ref() {
            b"ftyp" if self.init.is_none() => self.ftyp = Some(boxed),
            b"moov" if self.init.is_none() => {
                let init = parse_init(self.ftyp.take().unwrap_or_default(), &boxed)?;
                self.init = Some(init.clone());
                return Ok(Some(Piece::Init(init)));
            }
            b"moof" => {
                if self.init.is_none() || self.pending_moof.is_some() {
                    return Err(SplitError::Unexpected(kind.to_string()));
                }
                let tracks = &self.init.as_ref().expect("checked above").tracks;
                self.pending_moof = Some(moof_runs(&boxed, tracks)?);
                self.pending.extend_from_slice(&boxed);
            }
            b"mdat" => {
                let runs = self
                    .pending_moof
                    .take()
                    .ok_or_else(|| SplitError::Unexpected(kind.to_string()))?;
                let mut bytes = std::mem::take(&mut self.pending);
                bytes.extend_from_slice(&boxed);
                return Ok(Some(Piece::Fragment(Fragment { bytes, runs })));
            }
            // Boxes that travel with the next fragment (§8.16.2 styp, §8.16.5 prft).
            b"styp" | b"prft" | b"emsg" if self.init.is_some() => {
                self.pending.extend_from_slice(&boxed)
            }
            // Index and padding boxes carry nothing a segment needs.
            b"mfra" | b"free" | b"skip" | b"sidx" | b"udta" | b"meta" | b"uuid" => {}
            _ => return Err(SplitError::Unexpected(kind.to_string())),
        }
        Ok(None)
    }
}

pub(super) fn decode_box<T: Atom>(boxed: &[u8]) -> Result<T, SplitError> {
    T::decode(&mut &boxed[..]).map_err(|e| SplitError::Decode {
        kind: T::KIND.to_string(),
        reason: e.to_string(),
    })
}

fn parse_init(ftyp: Vec<u8>, moov_bytes: &[u8]) -> Result<InitSegment, SplitError> {
    let trex: Vec<Trex> = match descend(moov_bytes, &[b"mvex"])? {
        Some(mvex) => children(mvex, b"trex")?
            .into_iter()
            .map(decode_box)
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut tracks = Vec::new();
    for trak in children(moov_bytes, b"trak")? {
        let tkhd: Tkhd = decode_box(required(trak, &[b"tkhd"])?)?;
        let mdhd: Mdhd = decode_box(required(trak, &[b"mdia", b"mdhd"])?)?;
        let stsd: Stsd = decode_box(required(trak, &[b"mdia", b"minf", b"stbl", b"stsd"])?)?;
        let codec = stsd.codecs.first();
        let defaults = trex.iter().find(|t| t.track_id == tkhd.track_id);
        tracks.push(TrackInfo {
            track_id: tkhd.track_id,
            kind: codec.map(track_kind).unwrap_or(TrackKind::Other),
            timescale: mdhd.timescale,
            codec: codec.map(rfc6381_codec).unwrap_or_default(),
            default_sample_dur_ticks: defaults.map_or(0, |t| t.default_sample_duration),
            default_sample_flags: defaults.map_or(0, |t| t.default_sample_flags),
            default_sample_size: defaults.map_or(0, |t| t.default_sample_size),
        });
    }
    let mut bytes = ftyp;
    bytes.extend_from_slice(moov_bytes);
    Ok(InitSegment { bytes, tracks })
}

/// The body of a complete box (after its 8- or 16-byte header).
pub(super) fn box_body(boxed: &[u8]) -> Result<&[u8], SplitError> {
    let mut cursor = boxed;
    let kind = || {
        FourCC::new(
            &boxed
                .get(4..8)
                .and_then(|k| k.try_into().ok())
                .unwrap_or([b'?'; 4]),
        )
    };
    Header::decode_maybe(&mut cursor)
        .ok()
        .flatten()
        .map(|_| cursor)
        .ok_or_else(|| SplitError::BadSize {
            kind: kind().to_string(),
        })
}

/// The child boxes of kind `kind` in a container box, each whole.
pub(super) fn children<'a>(boxed: &'a [u8], kind: &[u8; 4]) -> Result<Vec<&'a [u8]>, SplitError> {
    Ok(all_children(boxed)?
        .into_iter()
        .filter(|(k, _)| k.as_ref() == kind)
        .map(|(_, child)| child)
        .collect())
}

/// Every child box of a container box, each whole, with its kind.
pub(super) fn all_children(boxed: &[u8]) -> Result<Vec<(FourCC, &[u8])>, SplitError> {
    boxes_in(box_body(boxed)?)
}

/// The boxes that `bytes` consists of, each whole, with its kind.
pub(super) fn boxes_in(bytes: &[u8]) -> Result<Vec<(FourCC, &[u8])>, SplitError> {
    let mut rest = bytes;
    let mut found = Vec::new();
    while !rest.is_empty() {
        let mut cursor = rest;
        let bad = || SplitError::BadSize {
            kind: "child box".into(),
        };
        let header = Header::decode_maybe(&mut cursor)
            .map_err(|_| bad())?
            .ok_or_else(bad)?;
        let header_len = rest.len() - cursor.remaining();
        let len = header.size.map_or(rest.len(), |body| header_len + body);
        if len > rest.len() {
            return Err(SplitError::BadSize {
                kind: header.kind.to_string(),
            });
        }
        found.push((header.kind, &rest[..len]));
        rest = &rest[len..];
    }
    Ok(found)
}

/// The first box found by following `path` (child kinds) down from `boxed`.
pub(super) fn descend<'a>(
    boxed: &'a [u8],
    path: &[&[u8; 4]],
) -> Result<Option<&'a [u8]>, SplitError> {
    let mut current = boxed;
    for kind in path {
        match children(current, kind)?.first() {
            Some(child) => current = child,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

pub(super) fn required<'a>(boxed: &'a [u8], path: &[&[u8; 4]]) -> Result<&'a [u8], SplitError> {
    descend(boxed, path)?.ok_or_else(|| SplitError::Decode {
        kind: "trak".into(),
        reason: format!(
            "no {}",
            String::from_utf8_lossy(path.last().map_or(&[][..], |k| &k[..]))
        ),
    })
}

fn track_kind(codec: &Codec) -> TrackKind {
    if let Some(v) = codec.visual() {
        TrackKind::Video {
            width: v.width,
            height: v.height,
        }
    } else if let Some(a) = codec.audio() {
        TrackKind::Audio {
            sample_rate_hz: a.sample_rate.integer() as u32,
            channels: a.channel_count,
        }
    } else {
        TrackKind::Other
    }
}

/// Codec string per RFC 6381 §3.3 (avc1) and ISO/IEC 14496-3 (mp4a).
fn rfc6381_codec(codec: &Codec) -> String {
    match codec {
        Codec::Avc1(avc1) => {
            let c = &avc1.avcc;
            format!(
                "avc1.{:02x}{:02x}{:02x}",
                c.avc_profile_indication, c.profile_compatibility, c.avc_level_indication
            )
        }
        Codec::Mp4a(mp4a) => {
            let config = &mp4a.esds.es_desc.dec_config;
            let object_type = config.dec_specific.as_ref().map_or(2, |d| d.profile);
            format!("mp4a.{:x}.{}", config.object_type_indication, object_type)
        }
        other => {
            let name = format!("{other:?}");
            name.split('(').next().unwrap_or_default().to_lowercase()
        }
    }
}

/// Duration and sync flag of each track's samples in a moof, resolving the
/// trun → tfhd → trex default chain of §8.8.3 / §8.8.7 / §8.8.8.
fn moof_runs(moof: &[u8], tracks: &[TrackInfo]) -> Result<Vec<TrackRun>, SplitError> {
    let mut runs = Vec::new();
    for traf in children(moof, b"traf")? {
        let tfhd: Tfhd = decode_box(required(traf, &[b"tfhd"])?)?;
        let tfdt: Option<Tfdt> = descend(traf, &[b"tfdt"])?.map(decode_box).transpose()?;
        let truns: Vec<Trun> = children(traf, b"trun")?
            .into_iter()
            .map(decode_box)
            .collect::<Result<_, _>>()?;
        let track = tracks.iter().find(|t| t.track_id == tfhd.track_id);
        let default_dur = tfhd
            .default_sample_duration
            .unwrap_or(track.map_or(0, |t| t.default_sample_dur_ticks));
        let default_flags = tfhd
            .default_sample_flags
            .unwrap_or(track.map_or(0, |t| t.default_sample_flags));
        let mut dur_ticks = 0u64;
        let mut samples = 0u32;
        let mut first_flags = None;
        for trun in &truns {
            match &trun.samples {
                // A count without per-sample fields: arithmetic, not a loop
                // over a count that a hostile box can set to 2^32.
                TrunSamples::Inherited {
                    count,
                    first_flags: flags,
                } if *count > 0 => {
                    first_flags.get_or_insert(flags.unwrap_or(default_flags));
                    dur_ticks += u64::from(*count) * u64::from(default_dur);
                    samples = samples.saturating_add(*count);
                }
                TrunSamples::Inherited { .. } => {}
                TrunSamples::Explicit(entries) => {
                    for entry in entries {
                        first_flags.get_or_insert(entry.flags.unwrap_or(default_flags));
                        dur_ticks += u64::from(entry.duration.unwrap_or(default_dur));
                        samples = samples.saturating_add(1);
                    }
                }
            }
        }
        let is_audio = matches!(track.map(|t| &t.kind), Some(TrackKind::Audio { .. }));
        runs.push(TrackRun {
            track_id: tfhd.track_id,
            base_decode_ticks: tfdt.map_or(0, |t| t.base_media_decode_time),
            dur_ticks,
            samples,
            starts_with_sync: is_audio
                || first_flags.is_some_and(|f| f & SAMPLE_FLAG_NON_SYNC == 0),
        });
    }
    Ok(runs)
}

#[cfg(test)]
#[path = "fmp4_tests.rs"]
mod tests;
