//! Viewers' comments (docs/http-contract.md, "Comments"): a message
//! channel tied to the media timeline. A comment carries the position of
//! the poster's player (`media_time_ms`), arrives live for everyone
//! watching, and stays as a clickable timestamp for later viewers.
//!
//! This module is the pure part: the record type, the rules a new comment
//! must pass, and the JSON of the socket messages. No tokio, no axum:
//! - [`rate`] is the per-client post rate (pure, time passed in);
//! - [`hub`] holds each recording's comments and its broadcast channel, and
//!   stores them in the catalog (`store::catalog`, table `comments`).

pub mod hub;
pub mod rate;

use serde::{Deserialize, Serialize};
pub use store::catalog::StoredComment;

/// Largest `media_time_s` accepted: 10^7 s is 115 days, beyond any
/// recording the server keeps, and keeps the milliseconds well inside u64.
pub const MAX_MEDIA_TIME_S: f64 = 1e7;

/// What a comment may hold (`--comment-max-author-chars`,
/// `--comment-max-text-chars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_author_chars: usize,
    pub max_text_chars: usize,
}

/// Settings of viewers' comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentSettings {
    pub limits: Limits,
    /// Posts one client address may make per window.
    pub rate: usize,
    pub rate_window_s: u64,
    /// WebSockets per recording.
    pub max_sockets: usize,
    /// Messages queued per socket before a slow viewer is dropped.
    pub socket_queue: usize,
}

/// A comment. It serializes as clients see it (`media_time_s`, seconds);
/// the catalog stores it as a [`StoredComment`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// Random, lowercase hex; unique within its recording.
    pub id: String,
    pub author: String,
    /// May hold newlines (`\n`), no other control characters.
    pub text: String,
    /// The poster's player position when it was written.
    pub media_time_ms: u64,
    /// RFC 3339 UTC, millisecond precision.
    pub created_at: String,
}

/// A comment as clients see it: the contract's `media_time_s` in seconds.
#[derive(Serialize)]
struct CommentJson<'a> {
    id: &'a str,
    author: &'a str,
    text: &'a str,
    media_time_s: f64,
    created_at: &'a str,
}

impl Comment {
    fn json(&self) -> CommentJson<'_> {
        CommentJson {
            id: &self.id,
            author: &self.author,
            text: &self.text,
            media_time_s: self.media_time_ms as f64 / 1000.0,
            created_at: &self.created_at,
        }
    }
}

impl Serialize for Comment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(serializer)
    }
}

impl From<&Comment> for StoredComment {
    fn from(c: &Comment) -> Self {
        Self {
            id: c.id.clone(),
            author: c.author.clone(),
            text: c.text.clone(),
            media_time_ms: c.media_time_ms,
            created_at: c.created_at.clone(),
        }
    }
}

impl From<StoredComment> for Comment {
    fn from(c: StoredComment) -> Self {
        Self {
            id: c.id,
            author: c.author,
            text: c.text,
            media_time_ms: c.media_time_ms,
            created_at: c.created_at,
        }
    }
}

/// A comment as a client sends it (`POST …/comments`, or a socket `post`).
/// Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct NewComment {
    pub author: String,
    pub text: String,
    pub media_time_s: f64,
}

/// A [`NewComment`] that passed [`validate`]: trimmed, newlines normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid {
    pub author: String,
    pub text: String,
    pub media_time_ms: u64,
}

impl Valid {
    pub fn into_comment(self, id: String, created_at: String) -> Comment {
        Comment {
            id,
            author: self.author,
            text: self.text,
            media_time_ms: self.media_time_ms,
            created_at,
        }
    }
}

/// The rules of a new comment; the error is the message a client gets
/// with its `400`.
/// - `author`: 1..=max characters once trimmed, no control characters.
/// - `text`: 1..=max characters once trimmed; CRLF and lone CR become LF;
///   LF is the only control character allowed (Unicode category Cc: C0,
///   DEL, C1). Format characters (zero-width joiners in emoji, bidi marks)
///   are text, not control characters, and pass.
/// - `media_time_s`: finite, ≥ 0, ≤ [`MAX_MEDIA_TIME_S`]; kept in
///   milliseconds.
///
/// Lengths count Unicode scalar values (Rust `char`s), not bytes.
pub fn validate(new: NewComment, limits: &Limits) -> Result<Valid, String> {
    let author = new.author.trim();
    if author.is_empty() {
        return Err("author is empty".into());
    }
    if author.chars().count() > limits.max_author_chars {
        return Err(format!(
            "author is over {} characters",
            limits.max_author_chars
        ));
    }
    if author.chars().any(char::is_control) {
        return Err("author contains control characters".into());
    }
    let text = new.text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err("text is empty".into());
    }
    if text.chars().count() > limits.max_text_chars {
        return Err(format!("text is over {} characters", limits.max_text_chars));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err("text contains control characters (only newlines are allowed)".into());
    }
    let t = new.media_time_s;
    if !(0.0..=MAX_MEDIA_TIME_S).contains(&t) {
        return Err(format!(
            "media_time_s must be a number of seconds from 0 to {MAX_MEDIA_TIME_S}, got {t}"
        ));
    }
    Ok(Valid {
        author: author.to_string(),
        text: text.to_string(),
        media_time_ms: (t * 1000.0).round() as u64,
    })
}

/// Comment ids are made by the server: lowercase hex, 1..=32 characters.
/// Anything else in a URL is an unknown comment.
pub fn is_valid_comment_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Socket message: a new comment, `{"type":"comment", …comment}`.
pub fn comment_message(comment: &Comment) -> String {
    #[derive(Serialize)]
    struct Message<'a> {
        r#type: &'static str,
        #[serde(flatten)]
        comment: CommentJson<'a>,
    }
    let message = Message {
        r#type: "comment",
        comment: comment.json(),
    };
    serde_json::to_string(&message).expect("comments serialize")
}

/// Socket message: a removed comment, `{"type":"deleted","id":…}`.
pub fn deleted_message(id: &str) -> String {
    serde_json::json!({ "type": "deleted", "id": id }).to_string()
}

/// Socket message sent first on every connection: every comment so far,
/// oldest first; with the live messages after it, nothing is missed.
pub fn history_message(comments: &[Comment]) -> String {
    serde_json::json!({ "type": "history", "comments": comments }).to_string()
}

/// Socket message: the sender's `post` was stored under `id` (its
/// `comment` message comes to every socket, the sender's too).
pub fn posted_message(id: &str) -> String {
    serde_json::json!({ "type": "posted", "id": id }).to_string()
}

/// Socket message: a refused `post` (or an unreadable message).
pub fn error_message(error: &str, retry_after_s: Option<u32>) -> String {
    let mut message = serde_json::json!({ "type": "error", "error": error });
    if let Some(s) = retry_after_s {
        message["retry_after_s"] = s.into();
    }
    message.to_string()
}

/// What a client may send over the socket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Incoming {
    Post(NewComment),
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_author_chars: 64,
        max_text_chars: 2000,
    };

    fn new(author: &str, text: &str, t: f64) -> NewComment {
        NewComment {
            author: author.into(),
            text: text.into(),
            media_time_s: t,
        }
    }

    #[test]
    fn valid_comments_are_trimmed_and_normalized() {
        let v = validate(new("  Ann ", "a\r\nb\rc\n", 12.3456), &LIMITS).unwrap();
        assert_eq!(v.author, "Ann");
        assert_eq!(v.text, "a\nb\nc");
        assert_eq!(v.media_time_ms, 12_346);
        // Lengths are characters: 64 four-byte emoji is a valid author.
        let emoji = "😀".repeat(64);
        assert!(validate(new(&emoji, &"é".repeat(2000), 0.0), &LIMITS).is_ok());
        // A zero-width joiner (Cf, not Cc) is text.
        assert!(validate(new("👩\u{200d}💻", "x", 0.0), &LIMITS).is_ok());
    }

    #[test]
    fn bad_comments_say_why() {
        let cases = [
            (new("", "x", 0.0), "author is empty"),
            (new(" \t ", "x", 0.0), "author is empty"),
            (new(&"a".repeat(65), "x", 0.0), "author is over 64"),
            (new("a\nb", "x", 0.0), "author contains control"),
            (new("a\u{7}", "x", 0.0), "author contains control"),
            (new("a\u{85}b", "x", 0.0), "author contains control"),
            (new("a", "", 0.0), "text is empty"),
            (new("a", " \n\r\n ", 0.0), "text is empty"),
            (new("a", &"b".repeat(2001), 0.0), "text is over 2000"),
            (new("a", "tab\there", 0.0), "text contains control"),
            (new("a", "nul\0", 0.0), "text contains control"),
            (new("a", "del\u{7f}", 0.0), "text contains control"),
            (new("a", "x", -0.5), "media_time_s"),
            (new("a", "x", f64::NAN), "media_time_s"),
            (new("a", "x", f64::INFINITY), "media_time_s"),
            (new("a", "x", 1e8), "media_time_s"),
        ];
        for (comment, why) in cases {
            let err = validate(comment.clone(), &LIMITS).unwrap_err();
            assert!(err.contains(why), "{comment:?}: {err}");
        }
    }

    fn stored(id: &str) -> StoredComment {
        StoredComment {
            id: id.into(),
            author: "a".into(),
            text: "t".into(),
            media_time_ms: 1500,
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn messages_have_their_documented_shape() {
        let comment: Comment = stored("a1").into();
        let message: serde_json::Value = serde_json::from_str(&comment_message(&comment)).unwrap();
        assert_eq!(
            message,
            serde_json::json!({"type": "comment", "id": "a1", "author": "a", "text": "t",
                "media_time_s": 1.5, "created_at": "2026-01-01T00:00:00.000Z"})
        );
        let json = serde_json::to_value(&comment).unwrap();
        assert_eq!(json["media_time_s"], 1.5);
        assert!(json.get("media_time_ms").is_none());
        let incoming: Incoming = serde_json::from_str(
            r#"{"type":"post","author":"a","text":"t","media_time_s":2,"extra":1}"#,
        )
        .unwrap();
        assert!(
            matches!(incoming, Incoming::Post(NewComment { media_time_s, .. }) if media_time_s == 2.0)
        );
    }

    #[test]
    fn comment_ids_are_short_lowercase_hex() {
        assert!(is_valid_comment_id("0123abcdef"));
        for bad in ["", "ABC", "g", "../x", &"a".repeat(33)] {
            assert!(!is_valid_comment_id(bad), "{bad:?}");
        }
    }
}
