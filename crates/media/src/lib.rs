//! The pure media core: what segcast knows about media bytes and playlist
//! text, with no I/O and no async — plain functions over plain types,
//! unit-tested with golden files.
//!
//! # Layout
//! - [`fmp4`]: splits ffmpeg's fragmented MP4 into init segment and
//!   fragments (ISO/IEC 14496-12 §8.8); [`cmaf`] cuts them per track
//!   (ISO/IEC 23000-19).
//! - [`timeline`]: fragments → parts → segments, and the published
//!   timeline every playlist is rendered from; [`journal`] saves it in
//!   amortised O(1) per segment.
//! - [`hls`] (RFC 8216, LL-HLS of RFC 8216bis; media playlists and delta
//!   updates in [`hls_media`]) and [`dash`]
//!   (ISO/IEC 23009-1): playlists and manifest from the same timeline.
//! - [`aes`]: AES-128 segment encryption (RFC 8216 §5.2).
//! - [`layout`]: every published file name, its parse, media type and
//!   cache policy.
//! - [`container`]: what a live upload's first bytes are (WebM or fMP4).
//! - [`probe`], [`live_plan`]: ffprobe's answers read, and what to copy or
//!   encode.
//! - [`tokenize`]: share tokens carried into playlist and manifest URIs.
//! - [`upload`]: the upload protocol's untrusted inputs (chunk seq,
//!   `Content-Digest`).
//!
//! May use: [`base`] (errors by kind) and pure crates (mp4-atom, m3u8-rs,
//! aes, serde). Never tokio, HTTP, files, processes, a bucket or a database:
//! the compiler keeps it so, since this crate depends on none of them.

pub mod aes;
pub mod cmaf;
pub mod container;
pub mod dash;
pub mod fmp4;
pub mod hls;
pub mod hls_media;
pub mod journal;
pub mod layout;
pub mod live_plan;
pub mod probe;
pub mod timeline;
pub mod tokenize;
pub mod upload;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod fuzz_seeds;
