//! The file names of a recording's media, one set per track. The primary
//! track (video, or the only track) keeps the names segcast has always
//! used, so playlists and links of earlier recordings stay valid; the audio
//! track of a recording with video gets the same names behind `audio-`.
//! HLS playlists and the DASH manifest list these same files.

use super::hls::MEDIA_PLAYLIST_FILE;

/// Which of a recording's tracks a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackFiles {
    Primary,
    Audio,
}

impl TrackFiles {
    pub const ALL: [Self; 2] = [Self::Primary, Self::Audio];

    /// The track at `index` of a rendition (primary first).
    pub fn at(index: usize) -> Self {
        if index == 0 {
            Self::Primary
        } else {
            Self::Audio
        }
    }

    pub fn index(self) -> usize {
        match self {
            Self::Primary => 0,
            Self::Audio => 1,
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Self::Primary => "",
            Self::Audio => "audio-",
        }
    }

    /// The track's HLS media playlist.
    pub fn playlist(self) -> &'static str {
        match self {
            Self::Primary => MEDIA_PLAYLIST_FILE,
            Self::Audio => "audio.m3u8",
        }
    }

    pub fn init(self) -> String {
        format!("{}init.mp4", self.prefix())
    }

    /// Segment files: deterministic, so they can be recomputed.
    pub fn segment(self, seq: u64) -> String {
        format!("{}seg-{seq:05}.m4s", self.prefix())
    }

    /// A part, by its index over the whole recording.
    pub fn part(self, index: u64) -> String {
        format!("{}part-{index:06}.m4s", self.prefix())
    }

    /// The track and the rest of a file name it owns (`audio-seg-00001.m4s`
    /// → `(Audio, "seg-00001.m4s")`).
    pub fn split(name: &str) -> (Self, &str) {
        match name.strip_prefix(Self::Audio.prefix()) {
            Some(rest) => (Self::Audio, rest),
            None => (Self::Primary, name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_track_keeps_the_old_names() {
        assert_eq!(TrackFiles::Primary.segment(3), "seg-00003.m4s");
        assert_eq!(TrackFiles::Primary.init(), "init.mp4");
        assert_eq!(TrackFiles::Audio.segment(3), "audio-seg-00003.m4s");
        assert_eq!(TrackFiles::Audio.part(12), "audio-part-000012.m4s");
        assert_eq!(
            TrackFiles::split("audio-init.mp4"),
            (TrackFiles::Audio, "init.mp4")
        );
        assert_eq!(
            TrackFiles::split("seg-00001.m4s"),
            (TrackFiles::Primary, "seg-00001.m4s")
        );
        for files in TrackFiles::ALL {
            assert_eq!(TrackFiles::at(files.index()), files);
        }
    }
}
