//! The saved timeline as a snapshot and a journal, so that saving it
//! costs the same for segment 3,600 as for segment 3 (issue #25).
//!
//! A live recording closes a segment every couple of seconds. Rewriting
//! the whole timeline each time (every part of every segment: ~3 MB after
//! two hours) made saving O(length) per segment, quadratic over the
//! recording. Instead the snapshot (`timeline.json`, a [`Rendition`]) is
//! written when what it says about the recording changes — its tracks'
//! stream info, the start of availability, the end — and each segment
//! closed in between is appended to the journal (`timeline.log`) as one
//! JSON line. When the journal holds as many segments as the snapshot
//! (and at least [`MIN_COMPACTION_SEGMENTS`]), the next save writes a new
//! snapshot and empties it: the bytes written stay amortised O(1) per
//! segment, and the journal read at a restart at most doubles the work.
//!
//! Replaying is forgiving the way recovery must be: a torn last line (the
//! server killed mid-append) ends the replay, and a line for a segment
//! the snapshot already has (a crash between a new snapshot and the
//! journal's removal) is skipped. Segments lost that way are re-encoded
//! from the stored chunks, as when the snapshot itself was not yet written.

use serde::{Deserialize, Serialize};

use crate::timeline::{Rendition, Segment, StreamInfo};

/// The journal is compacted into a new snapshot once it holds this many
/// segments or as many as the snapshot, whichever is more.
pub const MIN_COMPACTION_SEGMENTS: usize = 64;

#[derive(Serialize)]
struct EntryRef<'a> {
    track: usize,
    segment: &'a Segment,
}

#[derive(Deserialize)]
struct Entry {
    track: usize,
    segment: Segment,
}

/// One journal line: segment `segment` of track `track`, newline ended.
pub fn entry_line(track: usize, segment: &Segment) -> Vec<u8> {
    let mut line = serde_json::to_vec(&EntryRef { track, segment })
        .expect("a segment is plain numbers and serialises");
    line.push(b'\n');
    line
}

/// `snapshot` with the journal's segments appended, each only where it is
/// the next segment of its track; stops at the first line that does not
/// parse (the torn tail of an interrupted append) or does not fit.
pub fn replay(mut snapshot: Rendition, journal: &[u8]) -> Rendition {
    for line in journal.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(line) else {
            break;
        };
        let Some(track) = snapshot.tracks.get_mut(entry.track) else {
            break;
        };
        let next = track.segments.len() as u64;
        if entry.segment.seq < next {
            continue;
        }
        if entry.segment.seq > next {
            break;
        }
        track.segments.push(entry.segment);
    }
    snapshot
}

/// What the snapshot says besides its segments: when it changes, a
/// journal line cannot say so and a new snapshot is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    separate: bool,
    tracks: Vec<(StreamInfo, bool)>,
    available_from_ms: Option<u64>,
}

impl Header {
    pub fn of(rendition: &Rendition) -> Self {
        Self {
            separate: rendition.separate,
            tracks: rendition
                .tracks
                .iter()
                .map(|t| (t.info.clone(), t.ended))
                .collect(),
            available_from_ms: rendition.available_from_ms,
        }
    }
}

/// How the next save goes: a whole snapshot, or journal lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Save {
    Snapshot,
    /// Per track, the index of its first segment the journal lacks.
    Append(Vec<usize>),
}

/// What has been saved so far, to decide the next save.
#[derive(Debug, Clone, Default)]
pub struct SaveState {
    header: Option<Header>,
    /// Per track: segments saved (snapshot and journal together).
    saved: Vec<usize>,
    snapshot_segments: usize,
    journal_segments: usize,
}

impl SaveState {
    /// The save that brings the files up to `rendition`.
    pub fn plan(&self, rendition: &Rendition) -> Save {
        let header = Header::of(rendition);
        let grown = rendition.tracks.len() == self.saved.len()
            && rendition
                .tracks
                .iter()
                .zip(&self.saved)
                .all(|(t, saved)| t.segments.len() >= *saved);
        let pending: usize = rendition
            .tracks
            .iter()
            .zip(&self.saved)
            .map(|(t, saved)| t.segments.len().saturating_sub(*saved))
            .sum();
        let compact =
            self.journal_segments + pending >= self.snapshot_segments.max(MIN_COMPACTION_SEGMENTS);
        if self.header.as_ref() != Some(&header) || !grown || compact {
            Save::Snapshot
        } else {
            Save::Append(self.saved.clone())
        }
    }

    /// Records that `save` of `rendition` was written.
    pub fn saved(&mut self, rendition: &Rendition, save: &Save) {
        let lens: Vec<usize> = rendition.tracks.iter().map(|t| t.segments.len()).collect();
        let total: usize = lens.iter().sum();
        match save {
            Save::Snapshot => {
                self.header = Some(Header::of(rendition));
                self.snapshot_segments = total;
                self.journal_segments = 0;
            }
            Save::Append(_) => {
                let before: usize = self.saved.iter().sum();
                self.journal_segments += total - before;
            }
        }
        self.saved = lens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Part, Timeline};

    fn segment(seq: u64) -> Segment {
        Segment {
            seq,
            start_ticks: seq * 2000,
            dur_ticks: 2000,
            len_bytes: 100,
            parts: vec![Part {
                dur_ticks: 2000,
                independent: true,
                offset_bytes: 0,
                len_bytes: 100,
            }],
        }
    }

    fn rendition(segments: [u64; 2]) -> Rendition {
        let track = |n: u64| Timeline {
            info: StreamInfo {
                timescale: 1000,
                ..StreamInfo::default()
            },
            segments: (0..n).map(segment).collect(),
            ..Timeline::default()
        };
        Rendition {
            separate: true,
            tracks: vec![track(segments[0]), track(segments[1])],
            available_from_ms: Some(5),
        }
    }

    fn journal(from: [u64; 2], to: [u64; 2]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for seq in from[0]..to[0] {
            bytes.extend(entry_line(0, &segment(seq)));
            if seq < to[1] && seq >= from[1] {
                bytes.extend(entry_line(1, &segment(seq)));
            }
        }
        bytes
    }

    #[test]
    fn a_snapshot_and_its_journal_replay_to_the_whole_rendition() {
        let replayed = replay(rendition([3, 3]), &journal([3, 3], [9, 8]));
        assert_eq!(replayed, rendition([9, 8]));
    }

    #[test]
    fn a_torn_last_line_and_lines_already_in_the_snapshot_are_left_out() {
        let mut bytes = journal([2, 2], [6, 6]);
        let torn = entry_line(0, &segment(6));
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        // Segments 2..4 are in this snapshot too: written after the
        // journal that also lists them.
        assert_eq!(replay(rendition([4, 4]), &bytes), rendition([6, 6]));
    }

    #[test]
    fn a_gap_ends_the_replay_there() {
        let mut bytes = journal([3, 3], [4, 4]);
        bytes.extend(entry_line(0, &segment(6)));
        bytes.extend(entry_line(1, &segment(4)));
        assert_eq!(replay(rendition([3, 3]), &bytes), rendition([4, 4]));
    }

    #[test]
    fn segments_are_appended_until_the_journal_matches_the_snapshot() {
        let mut state = SaveState::default();
        let mut r = rendition([0, 0]);
        assert_eq!(state.plan(&r), Save::Snapshot, "nothing saved yet");
        state.saved(&r, &Save::Snapshot);
        let mut snapshots = 0;
        let mut written_segments = 0;
        for n in 1..=2000u64 {
            r = rendition([n, n]);
            let save = state.plan(&r);
            match &save {
                Save::Snapshot => {
                    snapshots += 1;
                    written_segments += 2 * n;
                }
                Save::Append(from) => {
                    assert_eq!(from, &vec![n as usize - 1; 2]);
                    written_segments += 2;
                }
            }
            state.saved(&r, &save);
        }
        // Doubling: a snapshot at 64, 128, … segments of the journal.
        assert!(snapshots <= 7, "{snapshots} snapshots");
        assert!(
            written_segments <= 3 * 4000,
            "{written_segments} segments written for 4000"
        );
    }

    #[test]
    fn a_changed_header_or_a_shorter_rendition_is_a_snapshot() {
        let mut state = SaveState::default();
        let r = rendition([100, 100]);
        state.saved(&r, &Save::Snapshot);
        assert_eq!(
            state.plan(&rendition([101, 100])),
            Save::Append(vec![100, 100])
        );
        let mut ended = rendition([101, 101]);
        ended.tracks[0].ended = true;
        assert_eq!(state.plan(&ended), Save::Snapshot);
        let mut later = rendition([101, 101]);
        later.available_from_ms = None;
        assert_eq!(state.plan(&later), Save::Snapshot);
        assert_eq!(state.plan(&rendition([99, 100])), Save::Snapshot);
    }
}
