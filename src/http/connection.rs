//! One accepted connection, served as HTTP/1.1 (RFC 9112) by hyper, with
//! the three timeouts of [`ConnectionPolicy`]:
//! - **header**: the complete request header must arrive within
//!   `--header-timeout-s` of the connection opening or of the previous
//!   response ending, else the connection is closed without an answer
//!   (hyper's `header_read_timeout`, which needs a timer to work at all);
//! - **keep-alive**: a persistent connection (RFC 9112 §9.3) with no request
//!   in flight and no byte of the next one is closed after
//!   `--keep-alive-timeout-s` (a graceful close, §9.6: hyper finishes
//!   whatever began);
//! - **body**: a request body that sends nothing for `--body-timeout-s`
//!   fails the read, which handlers answer with 408.
//!
//! The connection is generic over its byte stream, so a TLS acceptor can
//! wrap the TCP stream first (it needs a handshake timeout of its own: the
//! header timeout starts after it).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::clients::{client_addr, ClientAddr, ConnectionPermit, Trusted};
use super::sendfile::SendFile;
use crate::config::Config;
use base::zero_copy;

/// The timeouts every connection is held to: set here and nowhere else.
#[derive(Clone, Debug)]
pub struct ConnectionPolicy {
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub body_idle_timeout: Duration,
}

impl ConnectionPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            header_timeout: Duration::from_secs(config.header_timeout_s),
            keep_alive_timeout: Duration::from_secs(config.keep_alive_timeout_s),
            body_idle_timeout: Duration::from_secs(config.body_timeout_s),
        }
    }
}

/// What all connections share: the app, the timeouts, whose
/// `X-Forwarded-For` to believe.
pub struct Shared {
    pub router: Router,
    pub policy: ConnectionPolicy,
    pub trusted_proxies: Arc<Trusted>,
}

/// Serves HTTP/1.1 on `io` until the client closes, a timeout closes it, or
/// `shutdown` is cancelled (then requests in flight finish first). `permit`
/// is the connection's place under the caps, held as long as the stream.
pub async fn serve<I>(
    io: I,
    peer: SocketAddr,
    permit: ConnectionPermit,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + SendFile + Unpin + Send + 'static,
{
    let ConnectionPolicy {
        header_timeout,
        keep_alive_timeout,
        ..
    } = shared.policy;
    let activity = Arc::new(Activity::default());
    let io = Tracked {
        io,
        activity: activity.clone(),
        _permit: permit,
    };
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            handle(request, peer, shared.clone(), Busy::begin(&activity))
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let reason = tokio::select! {
        result = connection.as_mut() => return log_end(peer, result),
        () = shutdown.cancelled() => "shutdown",
        () = activity.idle_for(keep_alive_timeout) => "keep-alive timeout",
    };
    tracing::trace!(%peer, reason, "closing the connection");
    connection.as_mut().graceful_shutdown();
    log_end(peer, connection.await);
}

/// One request: its body held to the body timeout, the peer and the client
/// address in its extensions, and the connection counted busy until the
/// response's body has been sent (or dropped).
async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    busy: Busy,
) -> Result<Response<Body>, Infallible> {
    let client = client_addr(peer.ip(), request.headers(), &shared.trusted_proxies);
    let idle = shared.policy.body_idle_timeout;
    let unread = (!hyper::body::Body::is_end_stream(request.body()))
        .then(|| Arc::new(AtomicBool::new(true)));
    let mut request = request.map(|body| {
        let body = TimeoutBody::new(idle, body);
        match &unread {
            Some(flag) => Body::new(ReadToEnd {
                body: Body::new(body),
                unread: flag.clone(),
            }),
            None => Body::new(body),
        }
    });
    request.extensions_mut().insert(ConnectInfo(peer));
    request.extensions_mut().insert(ClientAddr(client));
    let mut response = shared.router.clone().oneshot(request).await?;
    // Answered before its body was read (a refusal, a limit): hyper will
    // close the connection rather than read the rest, and says so, or a
    // client could send its next request on a socket about to close
    // (RFC 9112 §9.6; seen as EPIPE in a pooled client).
    if unread.is_some_and(|flag| flag.load(Ordering::Acquire)) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    Ok(response.map(|body| Body::new(InFlight { body, _busy: busy })))
}

/// A request body that notes when it has been read to its end.
struct ReadToEnd<B> {
    body: B,
    unread: Arc<AtomicBool>,
}

impl<B> hyper::body::Body for ReadToEnd<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.unread.store(false, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

fn log_end(peer: SocketAddr, result: hyper::Result<()>) {
    match result {
        Ok(()) => tracing::trace!(%peer, "connection closed"),
        Err(error) if error.is_timeout() => {
            tracing::debug!(%peer, "closed: no complete request header in time")
        }
        Err(error) => tracing::debug!(%peer, %error, "connection ended"),
    }
}

/// Whether a connection is between requests, for the keep-alive timeout.
///
/// Kept as the time it became idle, read by one timer per connection that
/// looks at most once per timeout: requests only store a time. (A `Notify`
/// and a fresh timer per request cost two wake-ups of the connection's
/// task and a timer-wheel insert and removal for every answer.)
struct Activity {
    in_flight: AtomicUsize,
    /// When the connection last became idle, in ns since `epoch`; [`BUSY`]
    /// while a request is in flight or the next one's first byte has been
    /// read. A new connection starts busy: the header timeout covers it.
    idle_since_ns: AtomicU64,
    epoch: tokio::time::Instant,
}

/// `idle_since_ns` of a connection that is not idle.
const BUSY: u64 = u64::MAX;

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ns: AtomicU64::new(BUSY),
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl Activity {
    fn set_idle(&self, idle: bool) {
        let since = if idle {
            u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(BUSY - 1)
        } else {
            BUSY
        };
        self.idle_since_ns.store(since, Ordering::Release);
    }

    fn is_idle(&self) -> bool {
        self.idle_since_ns.load(Ordering::Acquire) != BUSY
    }

    /// Returns once the connection has been idle for `limit` at a stretch.
    async fn idle_for(&self, limit: Duration) {
        let mut deadline = tokio::time::Instant::now() + limit;
        loop {
            tokio::time::sleep_until(deadline).await;
            deadline = match self.idle_since_ns.load(Ordering::Acquire) {
                // Busy now: it can expire a whole `limit` from now at the earliest.
                BUSY => tokio::time::Instant::now() + limit,
                since => {
                    let expires = self.epoch + Duration::from_nanos(since) + limit;
                    if expires <= tokio::time::Instant::now() {
                        return;
                    }
                    expires
                }
            };
        }
    }
}

/// A request being answered; the connection is idle again when the last
/// one is dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.set_idle(false);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.set_idle(true);
        }
    }
}

/// A response body that keeps its request counted until it is sent.
struct InFlight {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for InFlight {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The connection's byte stream: it holds the connection's permit (so an
/// upgraded connection, handed on by hyper, still counts), and notes the
/// first byte of a request arriving on an idle connection.
struct Tracked<I> {
    io: I,
    activity: Arc<Activity>,
    _permit: ConnectionPermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before && self.activity.is_idle() {
            self.activity.set_idle(false);
        }
        polled
    }
}

impl<I: SendFile> Tracked<I> {
    /// `buf` sent with `sendfile(2)` if it lies in a mapped media file and
    /// the stream can (see [`zero_copy`]).
    fn poll_mapped(&self, cx: &mut Context<'_>, buf: &[u8]) -> Option<Poll<io::Result<usize>>> {
        if !self.io.can_send_file() {
            return None;
        }
        let (file, offset) = zero_copy::locate(buf)?;
        self.io.poll_send_file(cx, &file, offset, buf.len())
    }
}

impl<I: AsyncWrite + SendFile + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(sent) = self.poll_mapped(cx, buf) {
            return sent;
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    /// hyper hands the response head and body over together: a mapped
    /// slice at the front goes by `sendfile` alone, and the slices before
    /// the first mapped one are written with "more to come", so they leave
    /// with the file (a partial write is a normal answer: hyper comes back
    /// with the rest).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.io.can_send_file() {
            return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        }
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        };
        if let Some(sent) = self.poll_mapped(cx, &bufs[first]) {
            return sent;
        }
        let mapped = bufs[first + 1..]
            .iter()
            .position(|b| zero_copy::locate(b).is_some());
        if let Some(mapped) = mapped {
            let head = &bufs[first..first + 1 + mapped];
            if let Some(sent) = self.io.poll_write_more(cx, head) {
                return sent;
            }
            return Pin::new(&mut self.io).poll_write_vectored(cx, head);
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_millis(100);

    /// One request over an in-memory stream (any byte stream will do, as a
    /// TLS one will) from `peer`; returns the response's text.
    async fn exchange(peer: &str, trusted: &str, request: &str) -> String {
        use axum::routing::get;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = |ConnectInfo(peer): ConnectInfo<SocketAddr>, ClientAddr(client): ClientAddr| async move {
            format!("peer={peer} client={client}")
        };
        let shared = Arc::new(Shared {
            router: Router::new().route("/", get(echo)),
            policy: ConnectionPolicy {
                header_timeout: Duration::from_secs(5),
                keep_alive_timeout: Duration::from_secs(5),
                body_idle_timeout: Duration::from_secs(5),
            },
            trusted_proxies: Arc::new(Trusted::new(vec![trusted.parse().unwrap()])),
        });
        let peer: SocketAddr = peer.parse().unwrap();
        let permit = crate::http::clients::Admission::new(1, 1, Arc::default())
            .admit(peer.ip())
            .unwrap();
        let (mut client, server) = tokio::io::duplex(4096);
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(server, peer, permit, shared, shutdown));
        client.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        response
    }

    /// What the server answers to `request` within half a second.
    async fn answer(router: Router, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let shared = Arc::new(Shared {
            router,
            policy: ConnectionPolicy {
                header_timeout: Duration::from_secs(5),
                keep_alive_timeout: Duration::from_secs(5),
                body_idle_timeout: Duration::from_secs(5),
            },
            trusted_proxies: Arc::new(Trusted::default()),
        });
        let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let permit = crate::http::clients::Admission::new(1, 1, Arc::default())
            .admit(peer.ip())
            .unwrap();
        let (mut client, server) = tokio::io::duplex(4096);
        tokio::spawn(serve(
            server,
            peer,
            permit,
            shared,
            CancellationToken::new(),
        ));
        client.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let _ = timeout(Duration::from_millis(500), client.read_to_end(&mut got)).await;
        String::from_utf8_lossy(&got).to_lowercase()
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_read_says_the_connection_closes() {
        use axum::routing::post;
        let router = Router::new()
            .route("/refuse", post(|| async { "refused" }))
            .route("/read", post(|body: String| async move { body }));
        let head = "HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
        let refused = answer(router.clone(), &format!("POST /refuse {head}")).await;
        assert!(refused.contains("refused"), "{refused}");
        assert!(refused.contains("connection: close"), "{refused}");
        let read = answer(router, &format!("POST /read {head}")).await;
        assert!(read.ends_with("hello"), "{read}");
        assert!(!read.contains("connection: close"), "kept alive: {read}");
    }

    #[tokio::test]
    async fn handlers_see_the_peer_and_the_client_behind_a_trusted_proxy() {
        let request = "GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n";
        let direct = exchange("192.0.2.1:4000", "10.0.0.1", request).await;
        assert!(
            direct.ends_with("peer=192.0.2.1:4000 client=192.0.2.1"),
            "{direct}"
        );
        let proxied = exchange("10.0.0.1:4000", "10.0.0.1", request).await;
        assert!(
            proxied.ends_with("peer=10.0.0.1:4000 client=198.51.100.4"),
            "{proxied}"
        );
    }

    #[tokio::test]
    async fn the_keep_alive_clock_runs_only_between_requests() {
        let activity = Arc::new(Activity::default());
        // A new connection is not idle: the header timeout covers it.
        assert!(timeout(LIMIT * 3, activity.idle_for(LIMIT)).await.is_err());
        // Idle once its response has been sent.
        drop(Busy::begin(&activity));
        let start = tokio::time::Instant::now();
        timeout(Duration::from_secs(5), activity.idle_for(LIMIT))
            .await
            .expect("an idle connection is timed out");
        assert!(start.elapsed() >= LIMIT);
        // Not while a request is in flight, however long it waits.
        let busy = Busy::begin(&activity);
        assert!(timeout(LIMIT * 3, activity.idle_for(LIMIT)).await.is_err());
        drop(busy);
        // Nor once the next request has begun to arrive.
        activity.set_idle(false);
        assert!(timeout(LIMIT * 3, activity.idle_for(LIMIT)).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_times_out_a_limit_after_its_last_answer() {
        let activity = Arc::new(Activity::default());
        let busy = Busy::begin(&activity);
        let start = tokio::time::Instant::now();
        let watcher = tokio::spawn({
            let activity = activity.clone();
            async move {
                activity.idle_for(LIMIT).await;
                tokio::time::Instant::now()
            }
        });
        // Busy through the first look at it, idle from 1.5 limits on.
        tokio::time::sleep(LIMIT * 3 / 2).await;
        drop(busy);
        let timed_out = watcher.await.unwrap() - start;
        let expected = LIMIT * 5 / 2;
        assert!(
            timed_out.abs_diff(expected) < Duration::from_millis(1),
            "{timed_out:?}, not {expected:?}"
        );
    }
}
