//! Requests for another node's recording, handed to that node
//! (docs/http-contract.md, v3 "One library for many nodes"): in a cluster a
//! recording's task — its chunks, ffmpeg, the live edge — runs on the node
//! that created it, and any node may receive its requests (a balancer that
//! is not sticky, a viewer given another node's link). A node that does not
//! run the recording proxies `/media/{id}/…` and `/api/recordings/{id}…` to
//! the owner's `--node-url`, blocking playlist reloads and growing segments
//! included (the answer is streamed as it comes), chunk `PUT`s and
//! `finish` too, so an uploader and a player never see the difference.
//! Proxied rather than redirected: a browser's upload would need CORS for a
//! `307` to another origin, and the owner's address may not be reachable
//! from outside.
//!
//! An owner whose lease lapsed: a finished recording complete in the
//! bucket is taken over (restored here, served here from then on); any
//! other is answered `503` with `Retry-After` — it exists and its
//! acknowledged chunks are kept, but nobody runs it now. Comment sockets are joined to the owner's (`forward_socket`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use tracing::Instrument;

use base::Error;
use store::catalog::{Owner, DATABASE_RETRY_AFTER_S};

use super::access::{role_for, TOKEN_PARAM};
use super::error::ApiError;
use super::{forward_socket, AppState};
use axum::Json;
use pipeline::ingest::library::status_of_row;

/// Marks a request one node handed to another, so that it is never handed
/// on again (two nodes each believing the other runs a recording would
/// otherwise pass it back and forth).
pub const FORWARDED: HeaderName = HeaderName::from_static("x-segcast-forwarded-by");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// How long a node waits to reach the owner before answering `503`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The client nodes use to reach each other: no redirects followed (the
/// owner's `302` to the CDN is the viewer's to follow), no overall timeout
/// (a blocking reload and a growing segment take as long as they take).
pub fn peer_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("a client with default TLS settings builds")
}

/// The recording id of a path this layer may hand on.
fn recording_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/media/")
        .or_else(|| path.strip_prefix("/api/recordings/"))?;
    rest.split('/').next().filter(|id| !id.is_empty())
}

/// Hands a request for a recording this node does not run to its owner;
/// everything else goes on to this node's routes.
pub async fn to_owner(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(me) = state.config.node_url.as_deref() else {
        return next.run(request).await;
    };
    let named = {
        let path = request.uri().path();
        recording_of(path).map(|id| (id.to_owned(), path.ends_with("/comments/ws")))
    };
    let Some((id, socket)) = named else {
        return next.run(request).await;
    };
    let id = id.as_str();
    let here = !matches!(state.library.get(id), Err(Error::NotFound(_)));
    if here || request.headers().contains_key(&FORWARDED) {
        return next.run(request).await;
    }
    match state.library.catalog().owner(id).await {
        Ok(Some(Owner::Node {
            url,
            lease_until_ms,
        })) if url != me => {
            if lease_until_ms < base::clock::unix_ms() {
                return match state.library.take_over_finished(id).await {
                    Ok(true) => next.run(request).await,
                    Ok(false) => from_catalog(&state, id, &Asked::of(&request))
                        .await
                        .unwrap_or_else(|| owner_gone(id, &url)),
                    Err(error) => ApiError(error).into_response(),
                };
            }
            let span = tracing::debug_span!("forward", recording = %id, owner = %url);
            async {
                if socket {
                    let headers = passed_on(&request, me);
                    return forward_socket::join(&state, &url, headers, request).await;
                }
                // Kept before the request goes, read only if the owner
                // does not answer.
                let asked = Asked::of(&request);
                let headers = passed_on(&request, me);
                match proxy(&state.peers, &url, headers, request).await {
                    Ok(answer) => answer,
                    Err(()) => from_catalog(&state, id, &asked)
                        .await
                        .unwrap_or_else(|| owner_silent(&url)),
                }
            }
            .instrument(span)
            .await
        }
        Ok(_) => next.run(request).await,
        Err(error) => ApiError(error).into_response(),
    }
}

/// The request's end-to-end headers, marked as handed on by this node and
/// with the peer's address appended to `X-Forwarded-For`: the owner trusts
/// the nodes (`node::trust_peers`) and, given the same `--trusted-proxy`,
/// the balancer before them, so it reads the viewer's address.
fn passed_on(request: &Request, me: &str) -> HeaderMap {
    let mut headers = end_to_end(request.headers());
    if let Ok(value) = me.parse() {
        headers.insert(FORWARDED, value);
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let chain = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {peer}"),
            None => peer.to_string(),
        };
        if let Ok(value) = chain.parse() {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    headers
}

fn owner_gone(id: &str, url: &str) -> Response {
    ApiError(Error::Busy {
        message: format!(
            "recording '{id}' runs on the node {url}, which stopped renewing its lease; \
             what it acknowledged is kept: retry later"
        ),
        retry_after_s: DATABASE_RETRY_AFTER_S,
    })
    .into_response()
}

/// Headers that belong to one connection (RFC 9110 §7.6.1), not to the
/// request or answer passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| !hop_by_hop(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

async fn proxy(
    client: &reqwest::Client,
    owner: &str,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ()> {
    let (parts, body) = request.into_parts();
    let target = format!(
        "{}{}",
        owner.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let sent = client
        .request(parts.method, &target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, %target, "the recording's node does not answer");
            return Err(());
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = end_to_end(answer.headers());
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(header::VIA, header::HeaderValue::from_static("1.1 segcast"));
    Ok(response)
}

fn owner_silent(owner: &str) -> Response {
    ApiError(Error::Busy {
        message: format!("the node running this recording ({owner}) does not answer; retry later"),
        retry_after_s: DATABASE_RETRY_AFTER_S,
    })
    .into_response()
}

/// What of a request [`from_catalog`] reads (a copy: the request itself
/// goes on to the owner, and its body is not `Sync`).
struct Asked {
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
}

impl Asked {
    fn of(request: &Request) -> Self {
        Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        }
    }
}

/// What any node can answer of a recording from the catalog alone, when
/// its node cannot: its status and its comments (`GET`), after the same
/// access check. `None` for anything else (that needs the recording's
/// task) and for a read that fails: those answer as the owner's absence
/// does.
async fn from_catalog(state: &AppState, id: &str, request: &Asked) -> Option<Response> {
    if request.method != axum::http::Method::GET {
        return None;
    }
    let rest = request.uri.path().strip_prefix("/api/recordings/")?;
    let comments = match rest.strip_prefix(id)? {
        "" => false,
        "/comments" => true,
        _ => return None,
    };
    let (meta, _) = state.library.catalog().recording(id).await.ok()??;
    let answer = match role_for(state, &meta, id, &request.headers, &request.uri) {
        Err(refused) => return Some(refused.into_response()),
        Ok((_, carried)) if !comments => {
            let status = super::cdn::status_urls(state, status_of_row(&meta));
            Json(match carried {
                Some(token) => status.with_query(&format!("{TOKEN_PARAM}={token}")),
                None => status,
            })
            .into_response()
        }
        Ok(_) => match state.comments.list(id).await {
            Ok(listed) => Json(listed).into_response(),
            Err(error) => return Some(ApiError(error).into_response()),
        },
    };
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_naming_a_recording_are_handed_on() {
        assert_eq!(recording_of("/media/abc/index.m3u8"), Some("abc"));
        assert_eq!(recording_of("/media/abc/v/seg-3.m4s"), Some("abc"));
        assert_eq!(recording_of("/api/recordings/abc"), Some("abc"));
        assert_eq!(recording_of("/api/recordings/abc/chunks/4"), Some("abc"));
        assert_eq!(recording_of("/api/recordings/abc/comments"), Some("abc"));
        assert_eq!(recording_of("/api/recordings/abc/comments/ws"), Some("abc"));
        assert_eq!(recording_of("/api/recordings"), None);
        assert_eq!(recording_of("/api/recordings/"), None);
        assert_eq!(recording_of("/watch/abc"), None);
    }
}
