//! Live ingest: durable chunk uploads, their ordering, and the task that
//! turns one recording's chunks into published media.

pub mod library;
pub mod live;
pub mod reorder;
pub mod status;
