//! Folders watched for files others put there (inotify through `notify`):
//! the inbox, and the library for recordings `segcast import` moves in.

use std::path::Path;

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches `dir` (not its subfolders); events arrive on the receiver.
pub fn watch_dir(
    dir: &Path,
) -> notify::Result<(RecommendedWatcher, mpsc::UnboundedReceiver<Event>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) => {
                let _ = tx.send(event);
            }
            Err(error) => tracing::warn!(%error, "file watch error"),
        })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}
