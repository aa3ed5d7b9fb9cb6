//! The saved timeline on disk: `timeline.json` and its journal
//! `timeline.log`, beside the media ([`media::journal`] decides what is
//! written; this module writes and reads it).
//!
//! Neither file is fsynced, as the timeline never was: what a crash loses
//! of it is re-encoded from the stored chunks, which are durable.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base::files::write_atomic;
use media::journal::{self, Save, SaveState};
use media::layout::{JOURNAL_FILE, TIMELINE_FILE};
use media::timeline::Rendition;

/// Reads the saved timeline with its journal replayed: `None` when there
/// is none; an error when it cannot be read or parsed.
pub fn read(dir: &Path) -> io::Result<Option<Rendition>> {
    let snapshot = match fs::read(dir.join(TIMELINE_FILE)) {
        Ok(bytes) => Rendition::from_json(&bytes).map_err(io::Error::other)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let log = match fs::read(dir.join(JOURNAL_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(Some(journal::replay(snapshot, &log)))
}

/// Keeps one rendition's saved timeline up to date, a snapshot or a few
/// journal lines at a time.
#[derive(Debug)]
pub struct TimelineFiles {
    dir: PathBuf,
    state: SaveState,
}

impl TimelineFiles {
    /// The files of `dir`; the first save writes a whole snapshot.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            state: SaveState::default(),
        }
    }

    /// Brings the files up to `rendition` (which only grows, except where
    /// its header changes: then it is written whole).
    pub fn save(&mut self, rendition: &Rendition) -> io::Result<()> {
        let save = self.state.plan(rendition);
        match &save {
            Save::Snapshot => {
                let bytes = serde_json::to_vec(rendition).map_err(io::Error::other)?;
                write_atomic(&self.dir.join(TIMELINE_FILE), &bytes, false)?;
                // After the snapshot: a crash between the two leaves lines
                // the snapshot also has, which a replay skips.
                match fs::remove_file(self.dir.join(JOURNAL_FILE)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Save::Append(from) => {
                let mut lines = Vec::new();
                // By segment, then track: a torn write loses the newest.
                let longest = rendition.tracks.iter().map(|t| t.segments.len()).max();
                let first = from.iter().copied().min().unwrap_or(0);
                for at in first..longest.unwrap_or(0) {
                    for (track, timeline) in rendition.tracks.iter().enumerate() {
                        if at >= from[track] {
                            if let Some(segment) = timeline.segments.get(at) {
                                lines.extend(journal::entry_line(track, segment));
                            }
                        }
                    }
                }
                if !lines.is_empty() {
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(self.dir.join(JOURNAL_FILE))?
                        .write_all(&lines)?;
                }
            }
        }
        self.state.saved(rendition, &save);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::timeline::{Part, Segment, StreamInfo, Timeline};

    fn rendition(n: u64) -> Rendition {
        let track = || Timeline {
            info: StreamInfo {
                timescale: 90_000,
                ..StreamInfo::default()
            },
            segments: (0..n)
                .map(|seq| Segment {
                    seq,
                    start_ticks: seq * 180_000,
                    dur_ticks: 180_000,
                    len_bytes: 10,
                    parts: vec![Part {
                        dur_ticks: 180_000,
                        independent: true,
                        offset_bytes: 0,
                        len_bytes: 10,
                    }],
                })
                .collect(),
            ..Timeline::default()
        };
        Rendition {
            separate: true,
            tracks: vec![track(), track()],
            available_from_ms: Some(1),
        }
    }

    #[test]
    fn every_save_reads_back_and_the_snapshot_is_rarely_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = TimelineFiles::new(dir.path().to_path_buf());
        assert_eq!(read(dir.path()).unwrap(), None);
        let mut snapshot_writes = 0;
        let mut last_len = 0;
        for n in 0..300 {
            files.save(&rendition(n)).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(rendition(n)), "after {n}");
            let len = fs::metadata(dir.path().join(TIMELINE_FILE)).unwrap().len();
            if len != last_len {
                snapshot_writes += 1;
                last_len = len;
            }
        }
        assert!(snapshot_writes <= 6, "{snapshot_writes} snapshots");
        let mut ended = rendition(300);
        ended.tracks.iter_mut().for_each(|t| t.ended = true);
        files.save(&ended).unwrap();
        assert!(!dir.path().join(JOURNAL_FILE).exists(), "ended: one file");
        assert_eq!(read(dir.path()).unwrap(), Some(ended));
    }

    #[test]
    fn a_restart_continues_from_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = TimelineFiles::new(dir.path().to_path_buf());
        for n in 0..40 {
            files.save(&rendition(n)).unwrap();
        }
        let read_back = read(dir.path()).unwrap().unwrap();
        let mut after = TimelineFiles::new(dir.path().to_path_buf());
        after.save(&read_back).unwrap();
        after.save(&rendition(41)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rendition(41)));
    }
}
