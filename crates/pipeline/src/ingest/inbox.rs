//! The inbox folder, `<data>/inbox/`: files dropped there are imported once
//! completely written, then filed under `inbox/done/` or `inbox/failed/`
//! (with `<name>.error.txt` saying why).
//!
//! "Completely written" is decided by [`Settler`], a pure state machine: a
//! close-after-write or a rename into the folder (inotify `IN_CLOSE_WRITE`,
//! `IN_MOVED_TO`, as reported by `notify`) means complete at once. A file
//! found by a scan (at start-up, or after the event queue overflowed) is
//! complete once its size and mtime stay unchanged for `--inbox-settle-ms`.
//! A file seen being written waits for its close; only if that never comes
//! (a writer that hung) is it taken after [`OPEN_SETTLE_FACTOR`] times the
//! settle time without change, and ends in `failed/` if it is unusable.
//!
//! A taken file is renamed into its recording's directory at once, so it
//! cannot be taken twice, even across a restart; the copy under `done/` or
//! `failed/` is a hard link to it, made when the import ends. A marker file
//! in the recording's directory records that this was done.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind};
use tokio::time::Instant;

use super::import::{import_info, Placement};
use super::library::{Library, Recording};
use super::watch::watch_dir;
use store::{ImportOrigin, State};

pub const INBOX_DIR: &str = "inbox";
pub const DONE_DIR: &str = "done";
pub const FAILED_DIR: &str = "failed";
const ERROR_SUFFIX: &str = ".error.txt";
/// How many settle periods a file seen being written, but never closed,
/// must stay unchanged before it is taken anyway.
pub const OPEN_SETTLE_FACTOR: u32 = 15;
/// In a recording's directory: its inbox file was filed.
const FILED_MARKER: &str = ".inbox-filed";

/// What a file looked like when last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len_bytes: u64,
    pub mtime: SystemTime,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(Self {
            len_bytes: meta.len(),
            mtime: meta.modified().ok()?,
        })
    }
}

/// How a file came to be noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Its writer closed it, or it was renamed in: complete.
    Closed,
    /// Created or written, not closed yet.
    Writing,
    /// Found by a directory scan: nothing known about writers.
    Found,
}

#[derive(Debug)]
struct Pending {
    stamp: Stamp,
    due: Instant,
}

/// Decides when a file in the inbox is complete (see the module docs).
#[derive(Debug)]
pub struct Settler {
    settle: Duration,
    pending: HashMap<PathBuf, Pending>,
}

impl Settler {
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            pending: HashMap::new(),
        }
    }

    /// A file was seen as `stamp`.
    pub fn seen(&mut self, path: PathBuf, stamp: Stamp, how: Sighting, now: Instant) {
        let due = match how {
            Sighting::Closed => now,
            Sighting::Writing => now + self.settle * OPEN_SETTLE_FACTOR,
            Sighting::Found => now + self.settle,
        };
        self.pending.insert(path, Pending { stamp, due });
    }

    pub fn forget(&mut self, path: &Path) {
        self.pending.remove(path);
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// Files that are due and unchanged since last seen. A changed file is
    /// watched for another settle period; a vanished one is forgotten.
    pub fn take_due(
        &mut self,
        now: Instant,
        current: impl Fn(&Path) -> Option<Stamp>,
    ) -> Vec<PathBuf> {
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(path, _)| path.clone())
            .collect();
        let mut ready = Vec::new();
        for path in due {
            let seen = self.pending.remove(&path).expect("listed above").stamp;
            match current(&path) {
                Some(stamp) if stamp == seen => ready.push(path),
                Some(stamp) => self.seen(path, stamp, Sighting::Found, now),
                None => {}
            }
        }
        ready.sort();
        ready
    }
}

/// Names the inbox leaves alone: hidden files and what browsers, rsync and
/// editors write while a file is still on its way.
pub fn is_candidate(name: &str) -> bool {
    const PARTIAL: [&str; 6] = [".part", ".partial", ".crdownload", ".download", ".tmp", "~"];
    !name.starts_with('.') && !PARTIAL.iter().any(|s| name.ends_with(s))
}

/// Runs the inbox of `library` until the library's process ends.
pub async fn run(library: Arc<Library>) -> io::Result<()> {
    let inbox = library.settings().data_dir.join(INBOX_DIR);
    for dir in [DONE_DIR, FAILED_DIR] {
        tokio::fs::create_dir_all(inbox.join(dir)).await?;
    }
    let (_watcher, mut events) = watch_dir(&inbox).map_err(io::Error::other)?;
    let settle = Duration::from_millis(library.settings().inbox_settle_ms);
    let mut settler = Settler::new(settle);
    // Imports a restart interrupted are filed when they end.
    for recording in library.recordings_from(ImportOrigin::Inbox) {
        tokio::spawn(file_when_done(library.clone(), inbox.clone(), recording));
    }
    scan(&inbox, &mut settler);
    tracing::info!(inbox = %inbox.display(), "watching the inbox");
    loop {
        let due = settler.next_due();
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => on_event(&inbox, &mut settler, event),
                None => return Ok(()),
            },
            () = sleep_until(due), if due.is_some() => {
                for path in settler.take_due(Instant::now(), Stamp::of) {
                    take(&library, &inbox, path).await;
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Files already in the inbox (at start-up, or after a lost event queue).
fn scan(inbox: &Path, settler: &mut Settler) {
    let Ok(entries) = std::fs::read_dir(inbox) else {
        return;
    };
    let now = Instant::now();
    for path in entries.flatten().map(|e| e.path()) {
        if let Some(stamp) = candidate(inbox, &path).then(|| Stamp::of(&path)).flatten() {
            settler.seen(path, stamp, Sighting::Found, now);
        }
    }
}

fn candidate(inbox: &Path, path: &Path) -> bool {
    path.parent() == Some(inbox)
        && path
            .file_name()
            .is_some_and(|n| is_candidate(&n.to_string_lossy()))
}

fn on_event(inbox: &Path, settler: &mut Settler, event: Event) {
    if event.need_rescan() {
        scan(inbox, settler);
        return;
    }
    let how = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
            Sighting::Closed
        }
        EventKind::Create(_) | EventKind::Modify(_) => Sighting::Writing,
        // Opened or read: says nothing new.
        _ => return,
    };
    // A rename within the folder lists [from, to]: the last path is the file.
    let Some(path) = event.paths.last() else {
        return;
    };
    if matches!(event.kind, EventKind::Remove(_))
        || matches!(
            event.kind,
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        )
    {
        settler.forget(path);
        return;
    }
    if let Some(stamp) = candidate(inbox, path).then(|| Stamp::of(path)).flatten() {
        settler.seen(path.clone(), stamp, how, Instant::now());
    }
}

/// Imports one complete inbox file, moving it into the library.
async fn take(library: &Arc<Library>, inbox: &Path, path: PathBuf) {
    // A name that is not UTF-8 is kept as readable as it can be; the file
    // itself is moved by its real path.
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let info = import_info(&name, bytes, ImportOrigin::Inbox);
    match library
        .create_import(
            None,
            info,
            path.clone(),
            Placement::Move,
            Default::default(),
        )
        .await
    {
        Ok((status, _token)) => {
            tracing::info!(file = %name, id = %status.id, "inbox file taken");
            if let Ok(recording) = library.get(&status.id) {
                tokio::spawn(file_when_done(
                    library.clone(),
                    inbox.to_path_buf(),
                    recording,
                ));
            }
        }
        Err(error) => {
            // Not even stored: the file itself goes to failed/, untouched.
            tracing::error!(file = %name, %error, "cannot take inbox file");
            let failed = unique_path(&inbox.join(FAILED_DIR), &name);
            let moved = std::fs::rename(&path, &failed).and_then(|()| {
                write_error(&failed, &format!("segcast could not store it: {error}"))
            });
            if let Err(e) = moved {
                tracing::error!(file = %name, error = %e, "cannot move it to failed/");
            }
        }
    }
}

/// Waits for an inbox import to end, then files its original under
/// `done/` or `failed/`.
async fn file_when_done(library: Arc<Library>, inbox: PathBuf, recording: Recording) {
    let mut status = recording.subscribe();
    let final_status = match status
        .wait_for(|s| matches!(s.state, State::Ready | State::Failed))
        .await
    {
        Ok(s) => s.clone(),
        // The recording was deleted: nothing left to file.
        Err(_) => return,
    };
    let Some(info) = recording.import() else {
        return;
    };
    let dir = library.store().dir(&final_status.id);
    if dir.join(FILED_MARKER).exists() {
        return;
    }
    let outcome = match &final_status.error {
        None => file_original(&dir, &inbox.join(DONE_DIR), &info.file_name, None),
        Some(error) => file_original(&dir, &inbox.join(FAILED_DIR), &info.file_name, Some(error)),
    };
    match outcome {
        Ok(filed) => {
            tracing::info!(id = %final_status.id, to = %filed.display(), "inbox file filed")
        }
        Err(error) => tracing::error!(id = %final_status.id, %error, "cannot file inbox file"),
    }
}

/// Links the recording's original into `to_dir` under its name (plus the
/// reason when it failed) and marks the recording as filed.
fn file_original(
    recording_dir: &Path,
    to_dir: &Path,
    name: &str,
    error: Option<&str>,
) -> io::Result<PathBuf> {
    let target = unique_path(to_dir, name);
    let original = recording_dir.join("original");
    if let Err(e) = std::fs::hard_link(&original, &target) {
        // Another file system under done/ (a mount): copy instead.
        tracing::debug!(error = %e, "hard link failed; copying");
        std::fs::copy(&original, &target)?;
    }
    if let Some(error) = error {
        write_error(&target, error)?;
    }
    std::fs::write(
        recording_dir.join(FILED_MARKER),
        target.display().to_string(),
    )?;
    Ok(target)
}

fn write_error(filed: &Path, error: &str) -> io::Result<()> {
    let mut path = filed.as_os_str().to_owned();
    path.push(ERROR_SUFFIX);
    std::fs::write(PathBuf::from(path), format!("{error}\n"))
}

/// `dir/name`, or `dir/stem-2.ext`, `-3`… when taken.
fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem}-{n}{ext}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len_bytes: u64, mtime_s: u64) -> Stamp {
        Stamp {
            len_bytes,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_s),
        }
    }

    #[test]
    fn a_closed_file_is_taken_at_once_a_found_one_once_it_settles() {
        let settle = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut s = Settler::new(settle);
        s.seen("a".into(), stamp(10, 1), Sighting::Closed, t0);
        s.seen("b".into(), stamp(10, 1), Sighting::Found, t0);
        let now_stamp = |_: &Path| Some(stamp(10, 1));
        assert_eq!(s.take_due(t0, now_stamp), vec![PathBuf::from("a")]);
        assert_eq!(s.next_due(), Some(t0 + settle));
        assert!(s.take_due(t0 + settle / 2, now_stamp).is_empty());
        assert_eq!(s.take_due(t0 + settle, now_stamp), vec![PathBuf::from("b")]);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_file_being_written_waits_for_its_close() {
        let settle = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut s = Settler::new(settle);
        s.seen("w".into(), stamp(10, 1), Sighting::Writing, t0);
        let unchanged = |_: &Path| Some(stamp(10, 1));
        assert!(
            s.take_due(t0 + settle * 2, unchanged).is_empty(),
            "a paused writer is not done"
        );
        s.seen("w".into(), stamp(20, 2), Sighting::Closed, t0 + settle * 3);
        let closed = |_: &Path| Some(stamp(20, 2));
        assert_eq!(
            s.take_due(t0 + settle * 3, closed),
            vec![PathBuf::from("w")]
        );
        // A writer that never closes: taken after the long settle.
        s.seen("hung".into(), stamp(5, 1), Sighting::Writing, t0);
        let hung = |_: &Path| Some(stamp(5, 1));
        let long = t0 + settle * OPEN_SETTLE_FACTOR;
        assert_eq!(s.take_due(long, hung), vec![PathBuf::from("hung")]);
    }

    #[test]
    fn a_growing_file_waits_and_a_vanished_one_is_forgotten() {
        let settle = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut s = Settler::new(settle);
        s.seen("grows".into(), stamp(10, 1), Sighting::Found, t0);
        s.seen("gone".into(), stamp(10, 1), Sighting::Found, t0);
        let later = t0 + settle;
        let current = |p: &Path| (p == Path::new("grows")).then(|| stamp(20, 2));
        assert!(s.take_due(later, current).is_empty(), "it grew: wait again");
        assert_eq!(s.next_due(), Some(later + settle), "only 'grows' is left");
        let unchanged = |_: &Path| Some(stamp(20, 2));
        assert_eq!(
            s.take_due(later + settle, unchanged),
            vec![PathBuf::from("grows")]
        );
    }

    #[test]
    fn partial_and_hidden_names_are_left_alone() {
        for name in ["movie.mp4", "clip.webm", "a b.MOV"] {
            assert!(is_candidate(name), "{name}");
        }
        for name in [
            ".hidden.mp4",
            "movie.mp4.part",
            "x.crdownload",
            "x.tmp",
            "x~",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
    }

    #[test]
    fn filed_names_never_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(unique_path(tmp.path(), "a.mp4"), tmp.path().join("a.mp4"));
        std::fs::write(tmp.path().join("a.mp4"), "x").unwrap();
        std::fs::write(tmp.path().join("a-2.mp4"), "x").unwrap();
        assert_eq!(unique_path(tmp.path(), "a.mp4"), tmp.path().join("a-3.mp4"));
        std::fs::write(tmp.path().join("noext"), "x").unwrap();
        assert_eq!(unique_path(tmp.path(), "noext"), tmp.path().join("noext-2"));
    }
}
