//! segcast's ground floor: what every layer above shares and nothing below
//! it knows of.
//!
//! # Layout
//! - [`error`]: the one error type, by kind; no HTTP here (the HTTP layer
//!   maps kinds to statuses).
//! - [`ids`]: recording ids and random bytes.
//! - [`access`]: who may watch a recording.
//! - [`clock`]: the one wall clock.
//! - [`files`]: atomic and private file writes (write, fsync, rename).
//! - [`metrics`]: the server's Prometheus registry.
//! - [`zero_copy`]: media files as memory maps of the page cache.
//! - [`fdlimit`]: the open-file limit.
//!
//! May use: the standard library and small crates (serde, rand, time,
//! memmap2, libc, prometheus-client, rlimit). Never tokio, HTTP, a bucket
//! or a database: everything else in the workspace builds on this.

pub mod access;
pub mod clock;
pub mod error;
pub mod fdlimit;
pub mod files;
pub mod ids;
pub mod metrics;
pub mod zero_copy;

pub use error::{Error, Result};
