//! The comment log on disk: `<data>/recordings/<id>/comments.jsonl`, one
//! [`LogEntry`] per line, appended and never rewritten (see
//! docs/architecture.md, decision 9). Blocking; the hub calls it from
//! `spawn_blocking`.
//!
//! Durability: an entry is written with one `write` to a file opened for
//! appending, then `fdatasync`ed (which also makes the new length durable)
//! before the caller answers; the first entry also fsyncs the directory,
//! so the new file's name survives a crash too. A crash can only leave a
//! partial last line, of an entry that was never acknowledged: [`load`]
//! cuts it off before anything is appended after it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::{complete_len, log_line, parse_log, replay, Comment, LogEntry};

/// Reads a log into the comments that exist. A missing file is no
/// comments; a torn last line is truncated away (durably) so the next
/// append starts on a line of its own.
pub fn load(path: &Path) -> io::Result<Vec<Comment>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let complete = complete_len(&bytes);
    if complete < bytes.len() {
        tracing::warn!(path = %path.display(), bytes = bytes.len() - complete,
            "dropping a partial last line of the comment log (an unacknowledged post cut by a crash)");
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(complete as u64)?;
        file.sync_data()?;
    }
    let (entries, bad) = parse_log(&bytes[..complete]);
    if bad > 0 {
        tracing::warn!(path = %path.display(), lines = bad, "skipping unreadable comment log lines");
    }
    Ok(replay(entries))
}

/// Appends one entry durably. `new_file` says the log may not exist yet:
/// its directory is fsynced too. The recording's directory must exist
/// (a deleted recording gives `NotFound`, and nothing is written). A
/// failed write is cut back off, so no partial line stays behind.
pub fn append(path: &Path, entry: &LogEntry, new_file: bool) -> io::Result<()> {
    let line = log_line(entry);
    let mut file = OpenOptions::new().append(true).create(true).open(path)?;
    let len = file.metadata()?.len();
    let written = file.write_all(&line).and_then(|()| file.sync_data());
    if let Err(e) = written {
        let _ = file.set_len(len);
        return Err(e);
    }
    if new_file {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comments::StoredComment;

    fn post(id: &str) -> LogEntry {
        LogEntry::Post(StoredComment {
            id: id.into(),
            author: "a".into(),
            text: "line one\nline two".into(),
            media_time_ms: 0,
            created_at: "2026-01-01T00:00:00.000Z".into(),
        })
    }

    #[test]
    fn appends_survive_a_torn_tail_and_tombstones_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("comments.jsonl");
        assert!(load(&path).unwrap().is_empty());
        append(&path, &post("a1"), true).unwrap();
        append(&path, &post("b2"), false).unwrap();
        // A crash in the middle of the next append.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&log_line(&post("c3"))[..25]).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].text, "line one\nline two");
        // The torn line is gone, so the next entry is a line of its own.
        let delete = LogEntry::Delete {
            id: "a1".into(),
            deleted_at: "2026-01-01T00:00:01.000Z".into(),
        };
        append(&path, &delete, false).unwrap();
        let ids: Vec<_> = load(&path).unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["b2"]);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn nothing_is_written_for_a_deleted_recording() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("comments.jsonl");
        let err = append(&path, &post("a1"), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
