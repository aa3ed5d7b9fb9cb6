//! Every name of a recording's published files, in one place: what each
//! file is called, how a requested name is parsed back into a
//! [`MediaFile`] (only names this server writes parse, so no request path
//! ever reaches the file system), its media type and its cache policy.
//! HLS playlists, the DASH manifest, the HTTP handlers and the bucket
//! mirror all take their names from here.
//!
//! ```text
//! index.m3u8              multivariant playlist (RFC 8216 §4.3.4)
//! media.m3u8, audio.m3u8  media playlists, one per track (§4.3.3)
//! manifest.mpd            DASH manifest (ISO/IEC 23009-1 §5.3.1)
//! init.mp4                init segment (ISO/IEC 14496-12 ftyp+moov)
//! seg-00042.m4s           media segment 42 (moof+mdat, §8.8)
//! part-000123.m4s         LL-HLS part 123 of the recording (RFC 8216bis §4.4.4.9)
//! audio-…                 the same for the audio track
//! key                     AES-128 key of an encrypted recording (§5.2)
//! poster.jpg              a frame for the library
//! original                the upload, byte for byte
//! timeline.json           the saved timeline (local, never served)
//! timeline.log            segments closed since it was saved ([`crate::journal`])
//! ```
//!
//! The primary track (video, or the only track) keeps the names segcast
//! has always used, so playlists and links of earlier recordings stay
//! valid; the audio track of a recording with video gets the same names
//! behind `audio-`.

/// The multivariant playlist: what players are given.
pub const MULTIVARIANT_FILE: &str = "index.m3u8";
/// The primary track's media playlist.
pub const MEDIA_PLAYLIST_FILE: &str = "media.m3u8";
/// The audio track's media playlist, when audio is a track of its own.
pub const AUDIO_PLAYLIST_FILE: &str = "audio.m3u8";
/// The primary track's init segment.
pub const INIT_FILE: &str = "init.mp4";
/// Where a player gets the key of an encrypted recording (beside the
/// playlists, so a relative URI and a token carried into it just work).
pub const KEY_FILE: &str = "key";
/// The DASH manifest.
pub const MPD_FILE: &str = "manifest.mpd";
/// The library's poster frame.
pub const POSTER_FILE: &str = "poster.jpg";
/// The upload as it was received (chunks end to end, or an imported file).
pub const ORIGINAL_FILE: &str = "original";
/// The saved timeline of a rendition, for recovery: beside the media,
/// never served.
pub const TIMELINE_FILE: &str = "timeline.json";
/// Segments closed since the saved timeline was written, a line each
/// ([`crate::journal`]): local, never served.
pub const JOURNAL_FILE: &str = "timeline.log";
/// The path of the server clock the manifest's `UTCTiming` names (an
/// absolute path: dash.js resolves it against the manifest's URL).
pub const TIME_PATH: &str = "/time";

/// The URL of recording `id`'s file `name`.
pub fn media_url(id: &str, name: &str) -> String {
    format!("/media/{id}/{name}")
}

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
            Self::Audio => AUDIO_PLAYLIST_FILE,
        }
    }

    pub fn init(self) -> String {
        format!("{}{INIT_FILE}", self.prefix())
    }

    /// Segment files: deterministic, so they can be recomputed.
    pub fn segment(self, seq: u64) -> String {
        format!(
            "{}{SEGMENT_PREFIX}{seq:0SEGMENT_DIGITS$}.m4s",
            self.prefix()
        )
    }

    /// A part, by its index over the whole recording.
    pub fn part(self, index: u64) -> String {
        format!("{}{PART_PREFIX}{index:0PART_DIGITS$}.m4s", self.prefix())
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

/// A file of a recording that `/media/{id}/{name}` may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFile {
    /// `index.m3u8`
    Multivariant,
    /// `manifest.mpd`
    Manifest,
    /// `media.m3u8`, `audio.m3u8`
    MediaPlaylist(TrackFiles),
    /// `init.mp4`, `audio-init.mp4`
    Init(TrackFiles),
    /// `seg-00042.m4s`, `audio-seg-00042.m4s`
    Segment(TrackFiles, u64),
    /// `part-000123.m4s`: a part, by its index over the whole recording.
    Part(TrackFiles, u64),
    /// `poster.jpg`
    Poster,
    /// `original`
    Original,
}

/// How long clients and CDNs may keep a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Never changes once published (segments, init).
    Immutable,
    /// Grows while live: always revalidate.
    Revalidate,
}

impl CachePolicy {
    /// The `Cache-Control` value (RFC 9111 §5.2).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immutable => "public, max-age=31536000, immutable",
            Self::Revalidate => "no-cache",
        }
    }
}

impl MediaFile {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            MULTIVARIANT_FILE => return Some(Self::Multivariant),
            MPD_FILE => return Some(Self::Manifest),
            POSTER_FILE => return Some(Self::Poster),
            ORIGINAL_FILE => return Some(Self::Original),
            _ => {}
        }
        if let Some(files) = TrackFiles::ALL.into_iter().find(|f| f.playlist() == name) {
            return Some(Self::MediaPlaylist(files));
        }
        let (files, rest) = TrackFiles::split(name);
        if rest == INIT_FILE {
            return Some(Self::Init(files));
        }
        // Only the canonical spellings (`TrackFiles::segment`/`part`: zero-
        // padded to `width`, no leading zero beyond it), so each file has
        // one URL. Checked on the digits: formatting the name again to
        // compare cost an allocation on every media request.
        let number = |prefix: &str, width: usize| {
            let digits = rest.strip_prefix(prefix)?.strip_suffix(".m4s")?;
            let canonical =
                digits.len() == width || (digits.len() > width && !digits.starts_with('0'));
            if !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse::<u64>().ok()
        };
        if let Some(seq) = number(SEGMENT_PREFIX, SEGMENT_DIGITS) {
            Some(Self::Segment(files, seq))
        } else {
            number(PART_PREFIX, PART_DIGITS).map(|index| Self::Part(files, index))
        }
    }

    /// Media types per RFC 8216 §4 (`application/vnd.apple.mpegurl`),
    /// RFC 8216 §3.3 / ISO/IEC 23000-19 (`video/mp4`, `video/iso.segment`)
    /// and ISO/IEC 23009-1 Annex C (`application/dash+xml`).
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Multivariant | Self::MediaPlaylist(_) => "application/vnd.apple.mpegurl",
            Self::Manifest => "application/dash+xml",
            Self::Init(_) => "video/mp4",
            Self::Segment(..) | Self::Part(..) => "video/iso.segment",
            Self::Poster => "image/jpeg",
            Self::Original => "application/octet-stream",
        }
    }

    pub fn cache(self) -> CachePolicy {
        match self {
            Self::Init(_) | Self::Segment(..) | Self::Part(..) => CachePolicy::Immutable,
            _ => CachePolicy::Revalidate,
        }
    }

    /// A playlist or manifest: it lists other files, so it is published
    /// (and mirrored) after them.
    pub fn is_listing(self) -> bool {
        matches!(
            self,
            Self::Multivariant | Self::MediaPlaylist(_) | Self::Manifest
        )
    }

    pub fn file_name(self) -> String {
        match self {
            Self::Multivariant => MULTIVARIANT_FILE.into(),
            Self::Manifest => MPD_FILE.into(),
            Self::MediaPlaylist(files) => files.playlist().into(),
            Self::Init(files) => files.init(),
            Self::Segment(files, seq) => files.segment(seq),
            Self::Part(files, index) => files.part(index),
            Self::Poster => POSTER_FILE.into(),
            Self::Original => ORIGINAL_FILE.into(),
        }
    }
}

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_DIGITS: usize = 5;
const PART_PREFIX: &str = "part-";
const PART_DIGITS: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use TrackFiles::{Audio, Primary};

    /// Every kind of published file: its name, what it parses to, its
    /// media type and whether it may be cached for good.
    const TABLE: [(&str, MediaFile, &str, CachePolicy); 14] = [
        (
            "index.m3u8",
            MediaFile::Multivariant,
            "application/vnd.apple.mpegurl",
            CachePolicy::Revalidate,
        ),
        (
            "media.m3u8",
            MediaFile::MediaPlaylist(Primary),
            "application/vnd.apple.mpegurl",
            CachePolicy::Revalidate,
        ),
        (
            "audio.m3u8",
            MediaFile::MediaPlaylist(Audio),
            "application/vnd.apple.mpegurl",
            CachePolicy::Revalidate,
        ),
        (
            "manifest.mpd",
            MediaFile::Manifest,
            "application/dash+xml",
            CachePolicy::Revalidate,
        ),
        (
            "init.mp4",
            MediaFile::Init(Primary),
            "video/mp4",
            CachePolicy::Immutable,
        ),
        (
            "audio-init.mp4",
            MediaFile::Init(Audio),
            "video/mp4",
            CachePolicy::Immutable,
        ),
        (
            "seg-00042.m4s",
            MediaFile::Segment(Primary, 42),
            "video/iso.segment",
            CachePolicy::Immutable,
        ),
        (
            "seg-123456.m4s",
            MediaFile::Segment(Primary, 123_456),
            "video/iso.segment",
            CachePolicy::Immutable,
        ),
        (
            "audio-seg-00001.m4s",
            MediaFile::Segment(Audio, 1),
            "video/iso.segment",
            CachePolicy::Immutable,
        ),
        (
            "part-000042.m4s",
            MediaFile::Part(Primary, 42),
            "video/iso.segment",
            CachePolicy::Immutable,
        ),
        (
            "audio-part-000042.m4s",
            MediaFile::Part(Audio, 42),
            "video/iso.segment",
            CachePolicy::Immutable,
        ),
        (
            "part-1234567.m4s",
            MediaFile::Part(Primary, 1_234_567),
            "video/iso.segment",
            CachePolicy::Immutable,
        ),
        (
            "poster.jpg",
            MediaFile::Poster,
            "image/jpeg",
            CachePolicy::Revalidate,
        ),
        (
            "original",
            MediaFile::Original,
            "application/octet-stream",
            CachePolicy::Revalidate,
        ),
    ];

    #[test]
    fn every_published_name_parses_to_its_file_and_back() {
        for (name, file, content_type, cache) in TABLE {
            assert_eq!(MediaFile::parse(name), Some(file), "{name}");
            assert_eq!(file.file_name(), name);
            assert_eq!(file.content_type(), content_type, "{name}");
            assert_eq!(file.cache(), cache, "{name}");
        }
        assert_eq!(CachePolicy::Revalidate.as_str(), "no-cache");
        assert!(MediaFile::Manifest.is_listing() && !MediaFile::Poster.is_listing());
    }

    #[test]
    fn only_names_the_server_writes_are_media_files() {
        for bad in [
            "audio-media.m3u8",
            "audio-audio-init.mp4",
            "audio-seg-42.m4s",
            "part-42.m4s",
            "part-0000042.m4s",
            "seg-42.m4s",
            "seg-+0042.m4s",
            "seg-0004a.m4s",
            "..",
            "recording.json",
            TIMELINE_FILE,
            JOURNAL_FILE,
            KEY_FILE,
            "../chunks",
            "seg-.m4s",
            ".media.m3u8.tmp",
        ] {
            assert_eq!(MediaFile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_primary_track_keeps_the_old_names() {
        assert_eq!(Primary.segment(3), "seg-00003.m4s");
        assert_eq!(Primary.init(), "init.mp4");
        assert_eq!(Audio.segment(3), "audio-seg-00003.m4s");
        assert_eq!(Audio.part(12), "audio-part-000012.m4s");
        assert_eq!(TrackFiles::split("audio-init.mp4"), (Audio, "init.mp4"));
        assert_eq!(
            TrackFiles::split("seg-00001.m4s"),
            (Primary, "seg-00001.m4s")
        );
        for files in TrackFiles::ALL {
            assert_eq!(TrackFiles::at(files.index()), files);
        }
        assert_eq!(media_url("ab1", POSTER_FILE), "/media/ab1/poster.jpg");
    }
}
