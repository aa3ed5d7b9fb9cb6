//! ffmpeg as a sidecar: its argument list (pure) and the process around it.

pub mod args;
pub mod poster;
pub mod probe;
pub mod sidecar;
