//! Ingest: durable chunk uploads and their ordering, imported files, and
//! the tasks that turn either into published media.
//!
//! Within it, files depend downwards only: `reorder` and `status` (pure)
//! ← `task` (what every recording task shares, and its [`task::Command`])
//! ← `live`, `import` ← `library` ← `inbox`; `watch` is the file watching
//! `library` and `inbox` share.

pub mod import;
pub mod inbox;
pub mod library;
pub mod live;
pub mod reorder;
pub mod status;
pub mod task;
mod watch;
