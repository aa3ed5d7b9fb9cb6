//! The accept loop: every TCP connection is admitted under the caps of
//! [`Admission`] (or answered at once and closed), gets `TCP_NODELAY`, and
//! is served by [`connection::serve`] with the timeouts of
//! [`connection::ConnectionPolicy`]. Connection management follows RFC 9112 §9.
//!
//! - Over a cap the client gets a complete answer written straight to the
//!   socket (429 for its own share, 503 when the server is full, both with
//!   `Retry-After` and `Connection: close`) and the socket is closed: the
//!   refusal holds no descriptor and no task, so a flood is shed as fast as
//!   it arrives.
//! - When `accept` fails for lack of file descriptors (EMFILE, ENFILE) the
//!   loop logs it (at most every [`ACCEPT_ERROR_LOG_EVERY`]), pauses
//!   [`ACCEPT_BACKOFF`] and goes on: the connections already open are served
//!   meanwhile, and a connection waiting in the kernel's queue is taken on
//!   the next try.
//! - On shutdown it stops accepting, closes idle connections, lets the
//!   requests in flight finish, and returns when every connection is gone.

use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clients::Admission;
use super::connection::{self, Shared};
use base::Error;

/// Connections the kernel completes and queues before the loop accepts
/// them (`listen(2)` backlog; Linux caps it at `net.core.somaxconn`, 4096
/// since 5.4). tokio's default is 1024: a burst larger than the queue has
/// its SYNs dropped, and every client caught in it, a legitimate one too,
/// waits a second for its retransmission.
pub const LISTEN_BACKLOG: u32 = 4096;
/// Pause after `accept` failed for a reason other than the one connection.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per kind of trouble this often.
pub const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// Of a refused connection, what has already arrived is read (and
/// dropped) first, up to this much: closing a socket with unread bytes
/// resets it, which could destroy the answer before the client reads it.
const REFUSAL_READ_MAX_BYTES: usize = 64 << 10;

/// A listener on `addr` with a [`LISTEN_BACKLOG`] queue.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's `TcpListener::bind`: a restart can listen again at once
    // while the old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves connections from `listener` until `shutdown` resolves, then
/// stops accepting and waits for the connections to finish.
pub async fn run(
    listener: TcpListener,
    shared: Shared,
    admission: Admission,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let shared = Arc::new(shared);
    let closing = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut accept_errors = Throttle::new(ACCEPT_ERROR_LOG_EVERY);
    let mut refusals = Throttle::new(ACCEPT_ERROR_LOG_EVERY);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if !is_per_connection(&error) {
                    log_accept_error(&error, &mut accept_errors);
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        () = &mut shutdown => break,
                    }
                }
                continue;
            }
        };
        let permit = match admission.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                if let Some(suppressed) = refusals.allow(Instant::now()) {
                    tracing::warn!(%peer, reason = %refusal, suppressed, open = admission.open(), "refusing connections");
                }
                refuse(stream, &refusal);
                continue;
            }
        };
        // Without it a small response waits for the client's delayed ACK
        // (Nagle): ~40 ms for a file served from disk, measured.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "TCP_NODELAY not set");
        }
        let (shared, closing) = (shared.clone(), closing.clone());
        match &tls {
            None => {
                tasks.spawn(connection::serve(stream, peer, permit, shared, closing));
            }
            Some(acceptor) => {
                // The handshake has its own deadline; the header timeout
                // starts once it is done.
                let handshake = acceptor.accept(stream);
                tasks.spawn(async move {
                    let limit = Duration::from_secs(crate::config::TLS_HANDSHAKE_TIMEOUT_S);
                    match tokio::time::timeout(limit, handshake).await {
                        Ok(Ok(stream)) => {
                            connection::serve(stream, peer, permit, shared, closing).await
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    closing.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Errors of one connection that went away before it was taken: nothing
/// to wait for.
fn is_per_connection(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

fn log_accept_error(error: &io::Error, throttle: &mut Throttle) {
    let Some(suppressed) = throttle.allow(Instant::now()) else {
        return;
    };
    let out_of_descriptors = matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    if out_of_descriptors {
        tracing::error!(%error, suppressed, "out of file descriptors: not accepting for now; open connections are still served");
    } else {
        tracing::error!(%error, suppressed, "accept failed; retrying");
    }
}

/// Answers a connection that is over a cap, without waiting for anything:
/// reads what already arrived, writes the whole answer (it fits the empty
/// send buffer of a new socket), closes.
fn refuse(stream: TcpStream, refusal: &Error) {
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < REFUSAL_READ_MAX_BYTES {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => read += n,
            _ => break,
        }
    }
    let _ = stream.write(&refusal_bytes(refusal));
}

/// The raw HTTP/1.1 answer for a refused connection (RFC 9112 §4, §9.6).
fn refusal_bytes(error: &Error) -> Vec<u8> {
    let status = super::error::status(error);
    let body = serde_json::json!({ "error": error.client_message() }).to_string();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(retry_after_s) = error.retry_after_s() {
        head.push_str(&format!("retry-after: {retry_after_s}\r\n"));
    }
    head.push_str("\r\n");
    [head.into_bytes(), body.into_bytes()].concat()
}

/// Lets a repeated message through at most once per `every`, counting
/// what it held back.
#[derive(Debug)]
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(held back since the last one)` when a message may go out now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now < last + self.every) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_lets_one_through_per_period_and_counts_the_rest() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.allow(start), Some(0));
        for s in 1..10 {
            assert_eq!(throttle.allow(start + Duration::from_secs(s)), None);
        }
        assert_eq!(throttle.allow(start + Duration::from_secs(10)), Some(9));
        assert_eq!(throttle.allow(start + Duration::from_secs(11)), None);
    }

    #[test]
    fn a_refusal_is_a_complete_http_response() {
        let refusal = Error::RateLimited {
            message: "too many connections".into(),
            retry_after_s: 2,
        };
        let text = String::from_utf8(refusal_bytes(&refusal)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nretry-after: 2"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        assert_eq!(body, r#"{"error":"too many connections"}"#);
    }
}
