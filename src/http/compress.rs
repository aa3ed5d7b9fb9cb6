//! Content coding of playlists and manifests (RFC 9110 §8.4, §12.5.3):
//! gzip (RFC 1952) when the client's `Accept-Encoding` allows it.
//!
//! A playlist is compressed once per version and the copy shared by every
//! viewer (the live edge's [`pipeline::edge::Playlist::gzip`], a finished
//! file's [`super::file_cache::CachedFile::gzip`]); each coding has a
//! validator of its own, and every answer says `Vary: Accept-Encoding`.
//! Segments, parts and init segments are never compressed: fMP4 media does
//! not shrink, and byte ranges of it must stay byte ranges of the file.
//! JSON answers go through tower-http's `CompressionLayer` instead
//! ([`super::router`]): they are made per request anyway.

use axum::http::{header, HeaderMap};

/// Does `Accept-Encoding` allow gzip? `gzip` or `*` with a q-value above
/// 0, unless `gzip` itself is refused with `q=0` (RFC 9110 §12.5.3).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or_default().trim();
            let allowed = params
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .all(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                return allowed;
            }
            star |= coding == "*" && allowed;
        }
    }
    star
}

/// Does the client's `If-None-Match` name `etag` (so the answer is `304`)?
pub fn none_match_fails(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|tag| {
                let tag = tag.trim();
                tag == etag || tag == "*" || tag.strip_prefix("W/") == Some(etag)
            })
        })
}

/// JSON answers smaller than this go as they are: gzip's 18-byte frame
/// and the work cost more than they save.
const JSON_MIN_BYTES: u16 = 256;

/// tower-http's predicate for the routes besides media: JSON of a known
/// size worth compressing (never a WebSocket upgrade, a stream, or media).
pub fn json_worth_compressing() -> impl tower_http::compression::Predicate {
    use tower_http::compression::predicate::{Predicate, SizeAbove};
    let json = |_: axum::http::StatusCode,
                _: axum::http::Version,
                headers: &HeaderMap,
                _: &axum::http::Extensions| {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    };
    SizeAbove::new(JSON_MIN_BYTES).and(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn gzip_when_the_client_allows_it() {
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.5",
            "*",
            "x-gzip",
        ] {
            assert!(accepts_gzip(&accept(yes)), "{yes}");
        }
        for no in [
            "identity",
            "br",
            "gzip;q=0",
            "*;q=0",
            "gzip;q=0, *",
            "deflate",
        ] {
            assert!(!accepts_gzip(&accept(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn none_match_names_the_representation() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b-gzip\""),
        );
        assert!(none_match_fails(&headers, "\"a\""));
        assert!(none_match_fails(&headers, "\"b-gzip\""));
        assert!(!none_match_fails(&headers, "\"b\""));
        assert!(!none_match_fails(&HeaderMap::new(), "\"a\""));
    }
}
