//! Carrying a viewer's token into every URI a playlist or manifest lists,
//! so a player given one tokenized URL (ffmpeg, VLC: they send no headers
//! of their own) fetches everything else with the token too.
//!
//! HLS (RFC 8216 §4.1, §4.2): URI lines (any line not starting with `#`)
//! and every quoted `URI="…"` attribute: `EXT-X-MAP`, `EXT-X-KEY`,
//! `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`,
//! `EXT-X-MEDIA`. DASH (ISO/IEC 23009-1 §5.3.9.4.4): the `initialization`
//! and `media` templates of `SegmentTemplate`; a template may hold a query,
//! and `$…$` identifiers in it are still substituted.
//!
//! The playlists are rewritten as text rather than through m3u8-rs: the
//! LL-HLS tags are not in m3u8-rs' model, and the answer must keep every
//! line of the served playlist as it is but for its URIs.

/// `uri` with `name=value` added to its query.
fn with_param(uri: &str, name: &str, value: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{name}={}", query_escape(value))
}

/// Percent-encodes all but RFC 3986 unreserved characters. Tokens the
/// server makes are unreserved already; this keeps any other text safe.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Rewrites every `attr="…"` in `line` whose value is a URI.
fn rewrite_attributes(line: &str, attrs: &[&str], name: &str, value: &str, xml: bool) -> String {
    let mut out = String::with_capacity(line.len() + 64);
    let mut rest = line;
    'scan: while !rest.is_empty() {
        for attr in attrs {
            let opening = format!("{attr}=\"");
            if let Some(start) = rest.find(&opening) {
                // Only a whole attribute name: at the start or after a separator.
                let before = rest[..start].chars().last();
                if before.is_none_or(|c| c == ',' || c == ':' || c.is_whitespace()) {
                    let value_start = start + opening.len();
                    if let Some(len) = rest[value_start..].find('"') {
                        let uri = &rest[value_start..value_start + len];
                        let rewritten = if xml && uri.contains('?') {
                            format!("{uri}&amp;{name}={}", query_escape(value))
                        } else {
                            with_param(uri, name, value)
                        };
                        out.push_str(&rest[..value_start]);
                        out.push_str(&rewritten);
                        rest = &rest[value_start + len..];
                        continue 'scan;
                    }
                }
            }
        }
        out.push_str(rest);
        break;
    }
    out
}

/// An HLS playlist (media or multivariant) whose URIs all carry
/// `name=value` in their query.
pub fn hls_with_param(playlist: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 64 * 16);
    for line in playlist.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix('\n') {
            Some(text) => (
                text.strip_suffix('\r').unwrap_or(text),
                &line[text.trim_end_matches('\r').len()..],
            ),
            None => (line, ""),
        };
        if text.trim().is_empty() {
            out.push_str(line);
        } else if text.starts_with('#') {
            out.push_str(&rewrite_attributes(text, &["URI"], name, value, false));
            out.push_str(end);
        } else {
            out.push_str(&with_param(text.trim(), name, value));
            out.push_str(end);
        }
    }
    out
}

/// A DASH manifest whose segment templates carry `name=value`.
pub fn mpd_with_param(mpd: &str, name: &str, value: &str) -> String {
    mpd.split_inclusive('\n')
        .map(|line| {
            if line.contains("<SegmentTemplate") {
                rewrite_attributes(line, &["initialization", "media"], name, value, true)
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_of_a_live_media_playlist_carries_the_token() {
        let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.200\n\
            #EXT-X-MAP:URI=\"init.mp4\"\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"key\",IV=0x00\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part-000000.m4s\",INDEPENDENT=YES\n\
            #EXTINF:2.000,\nseg-00000.m4s\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-000010.m4s\"\n\
            #EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=1\n";
        let out = hls_with_param(playlist, "token", "123.abc-_");
        let expected = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.200\n\
            #EXT-X-MAP:URI=\"init.mp4?token=123.abc-_\"\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"key?token=123.abc-_\",IV=0x00\n\
            #EXT-X-PART:DURATION=0.200,URI=\"part-000000.m4s?token=123.abc-_\",INDEPENDENT=YES\n\
            #EXTINF:2.000,\nseg-00000.m4s?token=123.abc-_\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-000010.m4s?token=123.abc-_\"\n\
            #EXT-X-RENDITION-REPORT:URI=\"audio.m3u8?token=123.abc-_\",LAST-MSN=1\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn multivariant_variants_and_renditions_carry_it() {
        let playlist = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",URI=\"audio.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"audio\"\nmedia.m3u8\n";
        let out = hls_with_param(playlist, "token", "t");
        assert!(out.contains("URI=\"audio.m3u8?token=t\""), "{out}");
        assert!(out.ends_with("\nmedia.m3u8?token=t\n"), "{out}");
        assert!(
            out.contains("GROUP-ID=\"audio\""),
            "other quoted attributes stay: {out}"
        );
    }

    #[test]
    fn an_existing_query_is_extended_and_odd_characters_escaped() {
        assert_eq!(
            with_param("a.m4s?x=1", "token", "a b&c"),
            "a.m4s?x=1&token=a%20b%26c"
        );
    }

    #[test]
    fn segment_templates_of_a_manifest_carry_it() {
        let mpd = "<MPD>\n<SegmentTemplate timescale=\"90000\" startNumber=\"0\" initialization=\"init.mp4\" media=\"seg-$Number%05d$.m4s\">\n\
            <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"/time\"/>\n</MPD>\n";
        let out = mpd_with_param(mpd, "token", "t");
        assert!(out.contains("initialization=\"init.mp4?token=t\""), "{out}");
        assert!(
            out.contains("media=\"seg-$Number%05d$.m4s?token=t\""),
            "{out}"
        );
        assert!(
            out.contains("value=\"/time\""),
            "the clock needs no token: {out}"
        );
    }
}
