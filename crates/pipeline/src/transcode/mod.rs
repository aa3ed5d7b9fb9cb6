//! ffmpeg and ffprobe as sidecars: ffmpeg's argument list (pure, tested),
//! looking into files, and the process around a running ffmpeg, whose
//! output goes to a [`sidecar::Packager`].

pub mod args;
pub mod probe;
pub mod sidecar;
