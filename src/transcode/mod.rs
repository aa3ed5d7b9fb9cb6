//! ffmpeg as a sidecar: its argument list (pure) and the process around it.

pub mod args;
pub mod live_plan;
pub mod poster;
pub mod probe;
pub mod sidecar;
