//! Ingest: durable chunk uploads and their ordering, imported files, and
//! the tasks that turn either into published media.

pub mod format;
pub mod import;
pub mod inbox;
pub mod library;
pub mod live;
pub mod reorder;
pub mod status;
mod task;
