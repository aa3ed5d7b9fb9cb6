//! The sending half of zero-copy media ([`base::zero_copy`] maps the
//! files): on plain TCP, a body slice that lies in a mapped file leaves with
//! `sendfile(2)` straight from the page cache, and a response head with
//! `MSG_MORE` ahead of it, as nginx's `sendfile on` and `tcp_nopush` do.
//! The connection's writer ([`super::connection`]) asks a stream through
//! [`SendFile`] whether it can; TLS streams cannot (rustls encrypts in
//! user space) and write the mapped bytes instead.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

/// A byte stream that may be able to send file pages itself.
pub trait SendFile {
    /// Whether [`Self::poll_send_file`] can send at all (so a stream that
    /// cannot is spared the lookups).
    fn can_send_file(&self) -> bool {
        false
    }

    /// Sends up to `len` bytes of `file` from `offset`; `None` when this
    /// stream cannot (the caller writes the mapped bytes instead).
    fn poll_send_file(
        &self,
        _cx: &mut Context<'_>,
        _file: &File,
        _offset: u64,
        _len: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        None
    }

    /// Writes `bufs` (a response head) telling the kernel that more
    /// follows (`MSG_MORE`), so the head leaves in the same packets as the
    /// file sent next, as nginx's `tcp_nopush` does: a head sent alone costs
    /// the client a wake-up of its own per response. `None` when this
    /// stream cannot.
    fn poll_write_more(
        &self,
        _cx: &mut Context<'_>,
        _bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        None
    }
}

impl SendFile for tokio::net::TcpStream {
    fn can_send_file(&self) -> bool {
        true
    }

    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        Some(poll_socket_write(self, cx, || {
            send_file(self.as_raw_fd(), file.as_raw_fd(), offset, len)
        }))
    }

    fn poll_write_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        Some(poll_socket_write(self, cx, || {
            send_more(self.as_raw_fd(), bufs)
        }))
    }
}

/// `write` (a system call on the socket's descriptor) once the socket is
/// writable, as tokio's own writes do.
fn poll_socket_write(
    socket: &tokio::net::TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        match socket.poll_write_ready(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| 0),
        }
        match socket.try_io(tokio::io::Interest::WRITABLE, &mut write) {
            // Readiness was stale: wait for the socket again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return Poll::Ready(done),
        }
    }
}

/// TLS encrypts in user space: the mapped bytes are read and encrypted.
impl<I> SendFile for tokio_rustls::server::TlsStream<I> {}

/// In-memory streams (tests).
impl SendFile for tokio::io::DuplexStream {}

fn send_more(socket: i32, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid (no address, no control data);
    // `IoSlice` is ABI-compatible with `iovec` on Unix, and the slices
    // outlive the call.
    let sent = unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = bufs.len() as _;
        libc::sendmsg(socket, &message, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

fn send_file(socket: i32, file: i32, offset: u64, len: usize) -> io::Result<usize> {
    let mut at = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the call (the socket is
    // borrowed, the file held by its `Arc`); `at` is a valid offset cell.
    let sent = unsafe { libc::sendfile(socket, file, &mut at, len) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn a_head_sent_as_more_to_come_arrives_before_the_sendfile_bytes() {
        use tokio::io::AsyncReadExt;
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (mut client, (server, _)) = (client.unwrap(), accepted.unwrap());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 299000\r\n\r\n";
        let parts = [io::IoSlice::new(&head[..20]), io::IoSlice::new(&head[20..])];
        let sent = std::future::poll_fn(|cx| server.poll_write_more(cx, &parts).unwrap())
            .await
            .unwrap();
        assert_eq!(sent, head.len());
        let mut offset = 1000;
        while offset < bytes.len() as u64 {
            let left = bytes.len() - offset as usize;
            let sent =
                std::future::poll_fn(|cx| server.poll_send_file(cx, &file, offset, left).unwrap())
                    .await
                    .unwrap();
            assert!(sent > 0);
            offset += sent as u64;
        }
        drop(server);
        let got = reader.await.unwrap();
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(got[head.len()..] == bytes[1000..]);
    }
}
