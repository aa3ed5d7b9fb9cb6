//! `/api/recordings/{id}/comments…`: list, post and delete viewers'
//! comments, and the WebSocket (RFC 6455) that pushes them live
//! (docs/http-contract.md, "Comments").
//!
//! The socket, one task per connection:
//! - first sends `{"type":"history","comments":[…]}`, then every new
//!   comment (`"comment"`) and removal (`"deleted"`) of the recording;
//! - takes `{"type":"post",…}` messages, answered `{"type":"posted","id"}`
//!   or `{"type":"error","error"}` (same rules and rate as `POST`);
//! - pings every [`PING_EVERY`] so dead peers are found and their slot
//!   freed (RFC 6455 §5.5.2; the client's pong is automatic).
//!
//! Close codes (RFC 6455 §7.4.1; 1013 from the IANA registry): 1009 for a
//! message over `--comment-max-message-bytes`; 1013 "try again later" for
//! a viewer more than `--comment-socket-queue` messages behind (it
//! reconnects and gets the history again, rather than a list with holes);
//! 1001 when the recording is deleted. A viewer that does not take a
//! message within `--comment-send-timeout-ms` is dropped without a close
//! frame (it is not reading one). None of this waits on another viewer:
//! the hub's broadcast never blocks on a receiver.

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};

use super::clients::ClientAddr;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use super::access::Viewer;
use super::error::Result;
use super::recordings::{authorize_owner, body_idle, caused_by, read_json};
use super::AppState;
use base::Error;
use pipeline::comments::hub::{CommentHub, Event, Subscription};
use pipeline::comments::{
    error_message, history_message, posted_message, Comment, Incoming, NewComment,
};

/// Server pings on an idle socket.
const PING_EVERY: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/recordings/{id}/comments", get(list).post(post))
        .route("/api/recordings/{id}/comments/ws", get(socket))
        .route("/api/recordings/{id}/comments/{cid}", delete(remove))
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Json<Vec<Comment>>> {
    let id = viewer.id;
    Ok(Json(state.comments.list(&id).await?))
}

/// The client is the TCP peer (`ConnectInfo`): see `comments::rate`.
async fn post(
    State(state): State<AppState>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Body,
) -> Result<Response> {
    let id = viewer.id;
    let new: NewComment = read_json(body, body_idle(&state)).await?.ok_or_else(|| {
        Error::Invalid(
            "body must be JSON like {\"author\": …, \"text\": …, \"media_time_s\": …}".into(),
        )
    })?;
    let comment = state.comments.post(&id, peer.ip(), new).await?;
    Ok((StatusCode::CREATED, Json(comment)).into_response())
}

/// The recording's upload token or the publish key, as for deleting the
/// recording itself.
async fn remove(
    State(state): State<AppState>,
    Path((id, comment_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let recording = state.library.get(&id)?;
    authorize_owner(&state, &headers, &recording)?;
    state.comments.delete(&id, &comment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn socket(
    State(state): State<AppState>,
    viewer: Viewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ClientAddr(client): ClientAddr,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let id = viewer.id;
    let upgrade =
        upgrade.map_err(|e| Error::Invalid(format!("this URL is a WebSocket (RFC 6455): {e}")))?;
    // A socket is a long-lived request: it holds one of its client's
    // waiting slots (`--max-waiting-per-client`) for as long as it is open.
    let client_slot = state.client_slots.try_acquire(client)?;
    // The slot is taken before the 101, so the cap holds exactly.
    let subscription = state.comments.subscribe(&id).await?;
    let config = &state.config;
    let max = config.comment_max_message_bytes;
    let socket = Socket {
        hub: state.comments.clone(),
        client: peer.ip(),
        max_message_bytes: max,
        send_timeout: Duration::from_millis(config.comment_send_timeout_ms),
        id,
    };
    let span = tracing::info_span!("comments", id = %socket.id, client = %socket.client);
    let response = upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |ws| {
            async move {
                let _client_slot = client_slot;
                socket.run(ws, subscription).await;
            }
            .instrument(span)
        });
    Ok(response)
}

/// One viewer's connection.
struct Socket {
    hub: Arc<CommentHub>,
    id: String,
    client: IpAddr,
    max_message_bytes: usize,
    send_timeout: Duration,
}

enum Step {
    Event(std::result::Result<Event, RecvError>),
    Received(Option<std::result::Result<Message, axum::Error>>),
    Ping,
}

impl Socket {
    async fn run(self, mut ws: WebSocket, mut subscription: Subscription) {
        let history = history_message(&std::mem::take(&mut subscription.history));
        if self
            .send(&mut ws, Message::Text(history.into()))
            .await
            .is_break()
        {
            return;
        }
        let start = tokio::time::Instant::now() + PING_EVERY;
        let mut ping = tokio::time::interval_at(start, PING_EVERY);
        loop {
            let step = tokio::select! {
                event = subscription.events.recv() => Step::Event(event),
                received = ws.recv() => Step::Received(received),
                _ = ping.tick() => Step::Ping,
            };
            let flow = match step {
                Step::Event(event) => self.on_event(&mut ws, event).await,
                Step::Received(received) => self.on_received(&mut ws, received).await,
                Step::Ping => self.send(&mut ws, Message::Ping(Default::default())).await,
            };
            if flow.is_break() {
                break;
            }
        }
    }

    async fn on_event(
        &self,
        ws: &mut WebSocket,
        event: std::result::Result<Event, RecvError>,
    ) -> ControlFlow<()> {
        match event {
            Ok(Event::Message(bytes)) => match Utf8Bytes::try_from(bytes) {
                Ok(text) => self.send(ws, Message::Text(text)).await,
                Err(_) => ControlFlow::Continue(()),
            },
            Ok(Event::Closed) => self.close(ws, 1001, "the recording was deleted").await,
            Err(RecvError::Lagged(skipped)) => {
                tracing::info!(skipped, "closing a comment socket that fell behind");
                let reason = format!("{skipped} messages behind; reconnect to catch up");
                self.close(ws, 1013, &reason).await
            }
            Err(RecvError::Closed) => ControlFlow::Break(()),
        }
    }

    async fn on_received(
        &self,
        ws: &mut WebSocket,
        received: Option<std::result::Result<Message, axum::Error>>,
    ) -> ControlFlow<()> {
        let text = match received {
            None => return ControlFlow::Break(()),
            Some(Err(e)) if caused_by::<tungstenite::error::CapacityError>(&e) => {
                let reason = format!("message over {} bytes", self.max_message_bytes);
                return self.close(ws, 1009, &reason).await;
            }
            Some(Err(_)) => return ControlFlow::Break(()),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let error = error_message("send JSON text messages", None);
                return self.send(ws, Message::Text(error.into())).await;
            }
            // The close reply and pongs are sent by the WebSocket itself,
            // on the next read: `recv` then ends the loop.
            Some(Ok(Message::Close(_) | Message::Ping(_) | Message::Pong(_))) => {
                return ControlFlow::Continue(())
            }
        };
        let answer = match serde_json::from_str::<Incoming>(text.as_str()) {
            Ok(Incoming::Post(new)) => match self.hub.post(&self.id, self.client, new).await {
                Ok(comment) => posted_message(&comment.id),
                Err(e) => error_message(&client_message(&e), e.retry_after_s()),
            },
            Err(e) => error_message(&format!("unreadable message: {e}"), None),
        };
        self.send(ws, Message::Text(answer.into())).await
    }

    /// Sends one message, or gives up on a viewer that does not take it
    /// within the send timeout.
    async fn send(&self, ws: &mut WebSocket, message: Message) -> ControlFlow<()> {
        match tokio::time::timeout(self.send_timeout, ws.send(message)).await {
            Ok(Ok(())) => ControlFlow::Continue(()),
            Ok(Err(_)) => ControlFlow::Break(()),
            Err(_) => {
                tracing::info!("dropping a comment socket that stopped reading");
                ControlFlow::Break(())
            }
        }
    }

    async fn close(&self, ws: &mut WebSocket, code: u16, reason: &str) -> ControlFlow<()> {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.send(ws, Message::Close(Some(frame))).await;
        ControlFlow::Break(())
    }
}

/// What a socket client is told about a refused post: as in the HTTP
/// answers, internal errors are logged and answered generically.
fn client_message(error: &Error) -> String {
    match error {
        Error::Internal { .. } => {
            tracing::error!(error = %base::error::chain(error), "comment post failed");
            "internal error; see the server log".into()
        }
        other => other.to_string(),
    }
}
