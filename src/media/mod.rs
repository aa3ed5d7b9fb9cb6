//! The pure media core: fMP4 splitting, segmenting, the timeline and
//! playlist rendering. No I/O, no async: plain functions over plain types.

pub mod aes;
pub mod cmaf;
pub mod dash;
pub mod fmp4;
pub mod hls;
pub mod names;
pub mod timeline;
pub mod tokenize;

#[cfg(test)]
pub(crate) mod fixtures;
