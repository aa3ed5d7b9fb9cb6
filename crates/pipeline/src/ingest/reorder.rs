//! Which chunks of a recording are stored, and which prefix of them can be
//! fed to the transcoder. Pure bookkeeping: no I/O.
//!
//! Chunks arrive in any order, duplicated or not at all; only the run
//! `0..contiguous` without a gap may be fed to ffmpeg, because a WebM stream
//! cut at arbitrary byte offsets is only decodable in order.

use std::collections::BTreeSet;

/// `missing` lists are capped so a hostile seq cannot make status huge.
pub const MAX_MISSING_LISTED: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSet {
    /// Stored seqs at or above `contiguous` (those below are implied).
    ahead: BTreeSet<u64>,
    contiguous: u64,
}

impl ChunkSet {
    pub fn from_stored(seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut set = Self::default();
        for seq in seqs {
            set.insert(seq);
        }
        set
    }

    /// Records `seq` as stored; returns how many chunks just became
    /// contiguous (0 when `seq` is beyond a gap or was already stored).
    pub fn insert(&mut self, seq: u64) -> u64 {
        if seq < self.contiguous || !self.ahead.insert(seq) {
            return 0;
        }
        let before = self.contiguous;
        while self.ahead.remove(&self.contiguous) {
            self.contiguous += 1;
        }
        self.contiguous - before
    }

    pub fn contains(&self, seq: u64) -> bool {
        seq < self.contiguous || self.ahead.contains(&seq)
    }

    /// Number of chunks stored without a gap from 0.
    pub fn contiguous(&self) -> u64 {
        self.contiguous
    }

    pub fn received(&self) -> u64 {
        self.contiguous + self.ahead.len() as u64
    }

    /// One past the highest stored seq (0 when nothing is stored).
    pub fn end(&self) -> u64 {
        self.ahead.last().map_or(self.contiguous, |&last| last + 1)
    }

    /// Seqs not stored below the highest stored one, or below `total` when
    /// one was declared (a finished upload still owes those), at most `cap`.
    pub fn missing(&self, total: Option<u64>, cap: usize) -> Vec<u64> {
        let end = self.end().max(total.unwrap_or(0));
        (self.contiguous..end)
            .filter(|seq| !self.ahead.contains(seq))
            .take(cap)
            .collect()
    }

    /// All of `0..total` is stored.
    pub fn is_complete(&self, total: u64) -> bool {
        self.contiguous >= total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_chunks_extend_the_prefix_one_by_one() {
        let mut set = ChunkSet::default();
        assert_eq!(set.insert(0), 1);
        assert_eq!(set.insert(1), 1);
        assert_eq!(
            (set.contiguous(), set.received(), set.missing(None, 10)),
            (2, 2, vec![])
        );
    }

    #[test]
    fn a_gap_holds_back_what_follows_until_filled() {
        let mut set = ChunkSet::default();
        assert_eq!(set.insert(0), 1);
        assert_eq!(set.insert(3), 0);
        assert_eq!(set.insert(2), 0);
        assert_eq!(
            (set.contiguous(), set.received(), set.missing(None, 10)),
            (1, 3, vec![1])
        );
        assert_eq!(set.insert(1), 3, "filling the gap releases 1, 2 and 3");
        assert_eq!((set.contiguous(), set.end()), (4, 4));
    }

    #[test]
    fn duplicates_change_nothing() {
        let mut set = ChunkSet::from_stored([0, 1, 5]);
        let before = set.clone();
        assert_eq!(set.insert(1), 0);
        assert_eq!(set.insert(5), 0);
        assert_eq!(set, before);
        assert!(set.contains(0) && set.contains(5) && !set.contains(3));
    }

    #[test]
    fn missing_is_capped() {
        let set = ChunkSet::from_stored([1_000_000]);
        let missing = set.missing(None, MAX_MISSING_LISTED);
        assert_eq!(missing.len(), MAX_MISSING_LISTED);
        assert_eq!(missing[..3], [0, 1, 2]);
    }

    #[test]
    fn a_declared_total_owes_every_chunk_below_it() {
        let set = ChunkSet::from_stored([1]);
        assert_eq!(set.missing(None, 10), vec![0]);
        assert_eq!(set.missing(Some(4), 10), vec![0, 2, 3]);
        assert_eq!(ChunkSet::default().missing(Some(1), 10), vec![0]);
        // Stored chunks beyond an (abandoned) total stay listed as such.
        assert_eq!(set.missing(Some(0), 10), vec![0]);
    }

    #[test]
    fn any_arrival_order_gives_the_same_state() {
        let orders: [&[u64]; 3] = [&[0, 1, 2, 3, 4], &[4, 3, 2, 1, 0], &[2, 0, 4, 1, 3]];
        for order in orders {
            let mut set = ChunkSet::default();
            let released: u64 = order.iter().map(|&s| set.insert(s)).sum();
            assert_eq!(released, 5, "order {order:?}");
            assert!(set.is_complete(5) && !set.is_complete(6));
        }
    }
}
