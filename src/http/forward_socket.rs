//! A comment socket (RFC 6455) opened on a node that does not run the
//! recording, joined to one on its owner (see `forward`): the node connects
//! to the owner first, so a refusal there (`403`, `404`) or an owner that
//! does not answer (`503`) reaches the viewer as the HTTP answer it would
//! have had, and only then upgrades. Messages pass unchanged both ways,
//! pings and pongs included (the owner's keep-alive is the viewer's), and a
//! close on either side closes the other with the same code.

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self as tung, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use base::Error;
use store::catalog::DATABASE_RETRY_AFTER_S;

use super::error::ApiError;
use super::AppState;

type Upstream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Joins the viewer's socket to the owner's, once the owner accepted.
pub async fn join(state: &AppState, owner: &str, headers: HeaderMap, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, state).await {
        Ok(upgrade) => upgrade,
        Err(e) => {
            let message = format!("this URL is a WebSocket (RFC 6455): {e}");
            return ApiError(Error::Invalid(message)).into_response();
        }
    };
    let target = format!(
        "{}{}",
        owner
            .trim_end_matches('/')
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let upstream = match connect(&target, headers).await {
        Ok(upstream) => upstream,
        Err(response) => return response,
    };
    let max = state.config.comment_max_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |viewer| pump(viewer, upstream))
}

/// The owner's socket, or the answer to give instead.
async fn connect(target: &str, headers: HeaderMap) -> Result<Upstream, Response> {
    let mut request = target
        .into_client_request()
        .map_err(|e| ApiError(Error::internal("a socket URL", e)).into_response())?;
    for (name, value) in &headers {
        if !name.as_str().starts_with("sec-websocket") {
            request.headers_mut().insert(name.clone(), value.clone());
        }
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((upstream, _)) => Ok(upstream),
        Err(tung::Error::Http(refused)) => {
            let status =
                StatusCode::from_u16(refused.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = refused.into_body().unwrap_or_default();
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            Err(response)
        }
        Err(error) => {
            tracing::warn!(%error, %target, "the recording's node does not take the socket");
            Err(ApiError(Error::Busy {
                message: "the node running this recording does not answer; retry later".into(),
                retry_after_s: DATABASE_RETRY_AFTER_S,
            })
            .into_response())
        }
    }
}

/// Passes messages both ways until either side closes.
async fn pump(viewer: WebSocket, upstream: Upstream) {
    let (mut to_viewer, mut from_viewer) = viewer.split();
    let (mut to_owner, mut from_owner) = upstream.split();
    loop {
        tokio::select! {
            got = from_viewer.next() => {
                let Some(Ok(message)) = got else {
                    let _ = to_owner.send(Message::Close(None)).await;
                    break;
                };
                let closing = matches!(message, ws::Message::Close(_));
                if to_owner.send(to_tungstenite(message)).await.is_err() || closing {
                    break;
                }
            }
            got = from_owner.next() => {
                let Some(Ok(message)) = got else {
                    let _ = to_viewer.send(ws::Message::Close(None)).await;
                    break;
                };
                let closing = matches!(message, Message::Close(_));
                let Some(message) = to_axum(message) else { continue };
                if to_viewer.send(message).await.is_err() || closing {
                    break;
                }
            }
        }
    }
}

fn to_tungstenite(message: ws::Message) -> Message {
    match message {
        ws::Message::Text(text) => Message::text(text.as_str()),
        ws::Message::Binary(bytes) => Message::Binary(bytes),
        ws::Message::Ping(bytes) => Message::Ping(bytes),
        ws::Message::Pong(bytes) => Message::Pong(bytes),
        ws::Message::Close(frame) => Message::Close(frame.map(|f| CloseFrame {
            code: CloseCode::from(f.code),
            reason: f.reason.as_str().into(),
        })),
    }
}

fn to_axum(message: Message) -> Option<ws::Message> {
    Some(match message {
        Message::Text(text) => ws::Message::text(text.as_str()),
        Message::Binary(bytes) => ws::Message::Binary(bytes),
        Message::Ping(bytes) => ws::Message::Ping(bytes),
        Message::Pong(bytes) => ws::Message::Pong(bytes),
        Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        Message::Frame(_) => return None,
    })
}
