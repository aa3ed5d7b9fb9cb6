use super::*;

/// 3 s of 160x90@30 H.264 + 48 kHz AAC from ffmpeg: keyframes every 1 s,
/// fragments every 0.5 s, so fragments alternate sync / non-sync starts.
const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/frag-3s-kf1s.mp4");

fn split_all(chunk_sizes: impl Iterator<Item = usize>) -> Vec<Piece> {
    let mut splitter = Splitter::default();
    let mut pieces = Vec::new();
    let mut rest = FIXTURE;
    for size in chunk_sizes {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(size.min(rest.len()));
        pieces.extend(splitter.push(head).unwrap());
        rest = tail;
    }
    assert!(rest.is_empty(), "chunk sizes ran out before the input");
    splitter.finish().unwrap();
    pieces
}

fn fragments(pieces: &[Piece]) -> Vec<&Fragment> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Fragment(f) => Some(f),
            Piece::Init(_) => None,
        })
        .collect()
}

#[test]
fn whole_stream_gives_init_then_fragments() {
    let pieces = split_all(std::iter::once(FIXTURE.len()));
    let Piece::Init(init) = &pieces[0] else {
        panic!("first piece is not init")
    };
    assert_eq!(&init.bytes[4..8], b"ftyp");
    let video = init.primary_track().unwrap();
    assert_eq!(
        video.kind,
        TrackKind::Video {
            width: 160,
            height: 90
        }
    );
    assert_eq!(video.timescale, 90_000);
    assert!(video.codec.starts_with("avc1."), "{}", video.codec);
    let audio = init
        .tracks
        .iter()
        .find(|t| t.codec == "mp4a.40.2")
        .expect("aac track");
    // channelcount in an MP4 AudioSampleEntry is the template value 2
    // (ISO/IEC 14496-12 §12.2.3); the real layout is in the esds.
    assert!(
        matches!(
            audio.kind,
            TrackKind::Audio {
                sample_rate_hz: 48_000,
                ..
            }
        ),
        "{:?}",
        audio.kind
    );

    let frags = fragments(&pieces);
    assert_eq!(frags.len(), 6);
    // Every byte of the input except the trailing mfra lands in a piece.
    let covered: usize = init.bytes.len() + frags.iter().map(|f| f.bytes.len()).sum::<usize>();
    let mfra = u32::from_be_bytes(FIXTURE[FIXTURE.len() - 4..].try_into().unwrap()) as usize;
    assert_eq!(covered + mfra, FIXTURE.len());
}

#[test]
fn video_timing_is_contiguous_and_keyframes_fall_every_second() {
    let pieces = split_all(std::iter::once(FIXTURE.len()));
    let Piece::Init(init) = &pieces[0] else {
        panic!()
    };
    let video_id = init.primary_track().unwrap().track_id;
    let mut next_ticks = 0;
    let mut sync_starts = Vec::new();
    for frag in fragments(&pieces) {
        let run = frag.run(video_id).unwrap();
        assert_eq!(run.base_decode_ticks, next_ticks, "gap or overlap in tfdt");
        next_ticks += run.dur_ticks;
        sync_starts.push(run.starts_with_sync);
    }
    // 90 frames of 3000 ticks; ffmpeg stretches the last one to the end of
    // the audio, so allow up to one more frame.
    assert!((270_000..=273_000).contains(&next_ticks), "{next_ticks}");
    assert_eq!(sync_starts, [true, false, true, false, true, false]);
}

#[test]
fn boxes_straddling_reads_split_the_same_way() {
    let whole = split_all(std::iter::once(FIXTURE.len()));
    for size in [1, 7, 8, 9, 1000, 4096] {
        assert_eq!(
            split_all(std::iter::repeat(size)),
            whole,
            "reads of {size} bytes"
        );
    }
    // Irregular sizes from a fixed-seed LCG: cuts land everywhere.
    let mut state = 12345u64;
    let sizes = std::iter::from_fn(move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        Some((state >> 33) as usize % 3000 + 1)
    });
    assert_eq!(split_all(sizes), whole);
}

#[test]
fn truncated_stream_is_reported_at_finish() {
    let mut splitter = Splitter::default();
    let cut = FIXTURE.len() - 400; // inside the last mdat
    splitter.push(&FIXTURE[..cut]).unwrap();
    assert!(matches!(splitter.finish(), Err(SplitError::Truncated(_))));
}

#[test]
fn moof_without_mdat_is_truncated() {
    let pieces = split_all(std::iter::once(FIXTURE.len()));
    let Piece::Init(init) = &pieces[0] else {
        panic!()
    };
    let moof_len = u32::from_be_bytes(FIXTURE[init.bytes.len()..][..4].try_into().unwrap());
    let mut splitter = Splitter::default();
    splitter
        .push(&FIXTURE[..init.bytes.len() + moof_len as usize])
        .unwrap();
    assert_eq!(
        splitter.finish(),
        Err(SplitError::Truncated(moof_len as usize))
    );
}

#[test]
fn oversized_size_fields_fail_fast() {
    let mut splitter = Splitter::new(1 << 20);
    let err = splitter.push(b"\xff\xff\xff\xffmdat").unwrap_err();
    assert!(
        matches!(
            err,
            SplitError::BoxTooLarge {
                size: 0xffff_ffff,
                ..
            }
        ),
        "{err}"
    );

    let mut large = b"\0\0\0\x01mdat".to_vec();
    large.extend_from_slice(&u64::MAX.to_be_bytes());
    let err = Splitter::default().push(&large).unwrap_err();
    assert!(matches!(err, SplitError::BoxTooLarge { .. }), "{err}");
}

#[test]
fn impossible_and_unbounded_sizes_are_rejected() {
    let err = Splitter::default().push(b"\0\0\0\x04ftyp").unwrap_err();
    assert!(matches!(err, SplitError::BadSize { .. }), "{err}");
    let err = Splitter::default().push(b"\0\0\0\0mdat").unwrap_err();
    assert!(matches!(err, SplitError::SizeToEnd { .. }), "{err}");
}

#[test]
fn fragment_before_init_is_unexpected() {
    let err = Splitter::default().push(b"\0\0\0\x08moof").unwrap_err();
    assert_eq!(err, SplitError::Unexpected("moof".into()));
}

#[test]
fn garbage_is_an_error_not_a_hang() {
    let err = Splitter::default()
        .push(b"this is not an mp4 file at all")
        .unwrap_err();
    assert!(
        matches!(
            err,
            SplitError::BoxTooLarge { .. } | SplitError::Unexpected(_)
        ),
        "{err}"
    );
}
