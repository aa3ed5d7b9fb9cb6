//! Each recording's comments: loaded from the catalog on first use, stored
//! there (committed before a post is answered), and broadcast to the recording's sockets through one
//! `tokio::sync::broadcast` channel per recording.
//!
//! Ordering: a post is appended, added to the in-memory list and broadcast
//! under the recording's lock, and a socket subscribes and takes its
//! history snapshot under the same lock. So every socket sees each
//! comment exactly once — in its history or as a live message — and in
//! the order they were stored.
//!
//! Other nodes (PostgreSQL): their posts and deletions reach this node's
//! sockets through [`CommentHub::apply`], by the catalog's change notices;
//! a post another node made is read from the catalog and broadcast under
//! the same lock, so the once-each rule holds for them too. When notices
//! may have been lost, [`CommentHub::reload`] reads every held list again.
//!
//! A slow socket never holds back the others: `broadcast::Sender::send`
//! does not wait for receivers. Each receiver keeps up to
//! `--comment-socket-queue` messages; one that falls further behind is
//! told it lagged (the socket then closes it, see `http/comments.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use tokio::sync::{broadcast, MutexGuard};

use super::rate::{retry_after_s, RateLimiter};
use super::{
    comment_message, deleted_message, is_valid_comment_id, validate, Comment, CommentSettings,
    Limits, NewComment, StoredComment,
};
use base::error::RETRY_AFTER_S;
use base::metrics::Counter;
use base::{Error, Result};
use store::catalog::{Catalog, Change};

/// Random bytes in a comment id (16 hex digits).
const COMMENT_ID_BYTES: usize = 8;

/// What the hub sends to a recording's sockets.
#[derive(Debug, Clone)]
pub enum Event {
    /// A JSON text message (UTF-8), serialized once for every socket.
    Message(Bytes),
    /// The recording was deleted: close the socket.
    Closed,
}

/// The comments of every recording in use.
pub struct CommentHub {
    catalog: Catalog,
    limits: Limits,
    max_sockets: usize,
    queue: usize,
    rate: Mutex<RateLimiter>,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    /// Comments accepted (`GET /metrics`).
    posted: Counter,
}

/// One recording's comments and sockets.
struct Channel {
    id: String,
    events: broadcast::Sender<Event>,
    sockets: AtomicUsize,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None` until read from the catalog.
    comments: Option<Vec<Comment>>,
    /// The recording was deleted.
    closed: bool,
}

/// A socket's place in a recording: the comments so far and the live
/// events after them. Holds one of the recording's socket slots.
pub struct Subscription {
    pub history: Vec<Comment>,
    pub events: broadcast::Receiver<Event>,
    _slot: SocketSlot,
}

struct SocketSlot(Arc<Channel>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CommentHub {
    pub fn new(catalog: Catalog, settings: CommentSettings) -> Self {
        Self {
            catalog,
            limits: settings.limits,
            max_sockets: settings.max_sockets,
            queue: settings.socket_queue.max(1),
            rate: Mutex::new(RateLimiter::new(
                settings.rate,
                Duration::from_secs(settings.rate_window_s),
            )),
            channels: Mutex::default(),
            posted: Default::default(),
        }
    }

    /// Counts accepted comments on `posted` (the server's metrics).
    pub fn with_posted_counter(mut self, posted: Counter) -> Self {
        self.posted = posted;
        self
    }

    /// The comments of a recording, oldest first. The caller checked that
    /// the recording exists.
    pub async fn list(&self, id: &str) -> Result<Vec<Comment>> {
        let channel = self.channel(id);
        let state = self.loaded(&channel).await?;
        Ok(state.comments.clone().unwrap_or_default())
    }

    /// Stores a comment durably and broadcasts it. `400` for a comment
    /// that breaks the rules (not counted against the rate), `429` past
    /// the client's rate, `410` when the recording was deleted meanwhile.
    pub async fn post(&self, id: &str, client: IpAddr, new: NewComment) -> Result<Comment> {
        let valid = validate(new, &self.limits).map_err(Error::Invalid)?;
        let counted = self
            .rate
            .lock()
            .expect("lock")
            .try_acquire(client, Instant::now());
        if let Err(wait) = counted {
            let retry_after_s = retry_after_s(wait);
            return Err(Error::RateLimited {
                message: format!("too many comments from your address; retry in {retry_after_s} s"),
                retry_after_s,
            });
        }
        let comment = valid.into_comment(new_comment_id(), base::clock::rfc3339_now());
        let channel = self.channel(id);
        let mut state = self.loaded(&channel).await?;
        self.catalog
            .add_comment(id, &StoredComment::from(&comment))
            .await?;
        state
            .comments
            .get_or_insert_with(Vec::new)
            .push(comment.clone());
        let message = Bytes::from(comment_message(&comment));
        let _ = channel.events.send(Event::Message(message));
        self.posted.inc();
        Ok(comment)
    }

    /// Removes a comment and broadcasts that.
    pub async fn delete(&self, id: &str, comment_id: &str) -> Result<()> {
        let not_found = || Error::NotFound(format!("no comment with id '{comment_id}'"));
        if !is_valid_comment_id(comment_id) {
            return Err(not_found());
        }
        let channel = self.channel(id);
        let mut state = self.loaded(&channel).await?;
        let comments = state.comments.as_ref().expect("loaded");
        if !comments.iter().any(|c| c.id == comment_id) {
            return Err(not_found());
        }
        self.catalog.delete_comment(id, comment_id).await?;
        if let Some(comments) = state.comments.as_mut() {
            comments.retain(|c| c.id != comment_id);
        }
        let message = Bytes::from(deleted_message(comment_id));
        let _ = channel.events.send(Event::Message(message));
        Ok(())
    }

    /// A new socket's subscription; `503` + `Retry-After` when the
    /// recording already has `--comment-max-sockets`.
    pub async fn subscribe(&self, id: &str) -> Result<Subscription> {
        let channel = self.channel(id);
        let max = self.max_sockets;
        let taken = channel
            .sockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Error::Busy {
                message: format!(
                    "this recording already has {max} comment sockets open; retry later"
                ),
                retry_after_s: RETRY_AFTER_S,
            });
        }
        let slot = SocketSlot(channel.clone());
        let state = self.loaded(&channel).await?;
        Ok(Subscription {
            history: state.comments.clone().unwrap_or_default(),
            events: channel.events.subscribe(),
            _slot: slot,
        })
    }

    /// The recording was deleted (its comments went with its row):
    /// its sockets are closed and its comments dropped from memory.
    pub async fn forget(&self, id: &str) {
        let channel = self.channels.lock().expect("lock").remove(id);
        if let Some(channel) = channel {
            let mut state = channel.state.lock().await;
            state.closed = true;
            state.comments = Some(Vec::new());
            let _ = channel.events.send(Event::Closed);
        }
    }

    /// Another node changed the catalog (see `store::catalog::Change`):
    /// the comments held here, and this node's sockets, follow.
    pub async fn apply(&self, change: Change) -> Result<()> {
        match change {
            Change::CommentAdded { recording, comment } => {
                let Some(channel) = self.held(&recording) else {
                    return Ok(());
                };
                let mut state = channel.state.lock().await;
                let Some(comments) = state.comments.as_mut() else {
                    return Ok(());
                };
                if comments.iter().any(|c| c.id == comment) {
                    return Ok(());
                }
                if let Some(stored) = self.catalog.comment(&recording, &comment).await? {
                    let comment = Comment::from(stored);
                    let message = Bytes::from(comment_message(&comment));
                    comments.push(comment);
                    let _ = channel.events.send(Event::Message(message));
                }
            }
            Change::CommentDeleted { recording, comment } => {
                let Some(channel) = self.held(&recording) else {
                    return Ok(());
                };
                let mut state = channel.state.lock().await;
                let Some(comments) = state.comments.as_mut() else {
                    return Ok(());
                };
                let before = comments.len();
                comments.retain(|c| c.id != comment);
                if comments.len() < before {
                    let message = Bytes::from(deleted_message(&comment));
                    let _ = channel.events.send(Event::Message(message));
                }
            }
            Change::RecordingDeleted { recording } => self.forget(&recording).await,
        }
        Ok(())
    }

    /// Changes may have been missed (the listener's connection dropped):
    /// every recording's comments held here are read again, and what
    /// differs is sent to its sockets.
    pub async fn reload(&self) -> Result<()> {
        let channels: Vec<Arc<Channel>> = self
            .channels
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        for channel in channels {
            let mut state = channel.state.lock().await;
            let Some(held) = state.comments.as_mut() else {
                continue;
            };
            let stored: Vec<Comment> = self
                .catalog
                .comments(&channel.id)
                .await?
                .into_iter()
                .map(Comment::from)
                .collect();
            for gone in held.iter().filter(|c| !stored.iter().any(|s| s.id == c.id)) {
                let message = Bytes::from(deleted_message(&gone.id));
                let _ = channel.events.send(Event::Message(message));
            }
            for new in stored.iter().filter(|s| !held.iter().any(|c| c.id == s.id)) {
                let message = Bytes::from(comment_message(new));
                let _ = channel.events.send(Event::Message(message));
            }
            *held = stored;
        }
        Ok(())
    }

    /// The channel of a recording this node holds, without making one.
    fn held(&self, id: &str) -> Option<Arc<Channel>> {
        self.channels.lock().expect("lock").get(id).cloned()
    }

    fn channel(&self, id: &str) -> Arc<Channel> {
        let mut channels = self.channels.lock().expect("lock");
        channels
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Channel {
                    id: id.to_string(),
                    events: broadcast::channel(self.queue).0,
                    sockets: AtomicUsize::new(0),
                    state: tokio::sync::Mutex::default(),
                })
            })
            .clone()
    }

    /// The channel's state with its comments read.
    async fn loaded<'a>(&self, channel: &'a Channel) -> Result<MutexGuard<'a, State>> {
        let mut state = channel.state.lock().await;
        if state.closed {
            return Err(Error::Gone("this recording was deleted".into()));
        }
        if state.comments.is_none() {
            let stored = self.catalog.comments(&channel.id).await?;
            state.comments = Some(stored.into_iter().map(Comment::from).collect());
        }
        Ok(state)
    }
}

fn new_comment_id() -> String {
    let mut bytes = [0u8; COMMENT_ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
