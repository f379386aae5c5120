//! The byte stream lettre talks SMTP over. Herald opens it itself so that
//! TCP_NODELAY is on (lettre never sets it: 43 ms per message from delayed
//! ACKs), so that TLS (implicit or after STARTTLS) is ours with the
//! profile's trust settings, and so that the conversation can be recorded
//! above the TLS layer for a test send.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::transcript::Transcript;

enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the TCP stream out and putting the TLS stream back.
    Upgrading,
}

struct Shared {
    inner: Inner,
    transcript: Option<Transcript>,
    /// Watches the server's lines while the session is opened, for the
    /// EHLO keywords lettre does not keep.
    sniff: Option<Capabilities>,
}

/// EHLO keywords seen so far (lettre's `ServerInfo` keeps only the ones
/// it uses itself).
#[derive(Default)]
struct Capabilities {
    partial: Vec<u8>,
    pipelining: bool,
}

impl Capabilities {
    /// The longest line kept while waiting for its end.
    const MAX_LINE: usize = 1024;

    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.line(line.strip_suffix(b"\r").unwrap_or(&line));
            } else if self.partial.len() < Self::MAX_LINE {
                self.partial.push(b);
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        // "250-PIPELINING" or "250 PIPELINING" in an EHLO reply.
        if line.len() > 4
            && line.starts_with(b"250")
            && matches!(line[3], b'-' | b' ')
            && line[4..].trim_ascii().eq_ignore_ascii_case(b"PIPELINING")
        {
            self.pipelining = true;
        }
    }
}

/// A stream shared between lettre (which reads and writes it) and the
/// session (which upgrades it to TLS between commands and reads the
/// transcript).
#[derive(Clone)]
pub struct Wire {
    shared: Arc<Mutex<Shared>>,
    peer: SocketAddr,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").field("peer", &self.peer).finish()
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn upgrading() -> io::Error {
    io::Error::other("stream used during its TLS upgrade")
}

impl Wire {
    pub fn plain(tcp: TcpStream, peer: SocketAddr, transcript: Option<Transcript>) -> Self {
        Self::new(Inner::Plain(tcp), peer, transcript)
    }

    pub fn tls(
        tls: TlsStream<TcpStream>,
        peer: SocketAddr,
        transcript: Option<Transcript>,
    ) -> Self {
        Self::new(Inner::Tls(Box::new(tls)), peer, transcript)
    }

    fn new(inner: Inner, peer: SocketAddr, transcript: Option<Transcript>) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                inner,
                transcript,
                sniff: Some(Capabilities::default()),
            })),
            peer,
        }
    }

    /// Takes the plain TCP stream for a STARTTLS handshake. Call only
    /// between commands, when lettre is not using the stream.
    pub fn take_plain(&self) -> io::Result<TcpStream> {
        let mut s = lock(&self.shared);
        match std::mem::replace(&mut s.inner, Inner::Upgrading) {
            Inner::Plain(tcp) => Ok(tcp),
            other => {
                s.inner = other;
                Err(io::Error::other("the stream is not plain TCP"))
            }
        }
    }

    /// Puts the stream back encrypted after STARTTLS.
    pub fn put_tls(&self, tls: TlsStream<TcpStream>) {
        let mut s = lock(&self.shared);
        s.inner = Inner::Tls(Box::new(tls));
        // What was said before TLS no longer counts (RFC 3207): the EHLO
        // after it is read afresh.
        if let Some(c) = &mut s.sniff {
            *c = Capabilities::default();
        }
        if let Some(t) = &mut s.transcript {
            t.note("TLS established");
        }
    }

    /// Stops watching the server's lines (the session is open) and says
    /// whether its last EHLO offered PIPELINING (RFC 2920).
    pub fn stop_sniffing(&self) -> bool {
        lock(&self.shared)
            .sniff
            .take()
            .is_some_and(|c| c.pipelining)
    }

    /// Whether the stream is encrypted now.
    pub fn is_tls(&self) -> bool {
        matches!(lock(&self.shared).inner, Inner::Tls(_))
    }

    /// The recorded conversation so far.
    pub fn transcript(&self) -> Option<Transcript> {
        lock(&self.shared).transcript.clone()
    }

    pub fn note(&self, line: &str) {
        if let Some(t) = &mut lock(&self.shared).transcript {
            t.note(line);
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        let before = buf.filled().len();
        let res = match &mut s.inner {
            Inner::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Inner::Upgrading => return Poll::Ready(Err(upgrading())),
        };
        if let Poll::Ready(Ok(())) = &res {
            let Shared {
                transcript, sniff, ..
            } = &mut *s;
            let read = &buf.filled()[before..];
            if let Some(t) = transcript {
                t.server_bytes(read);
            }
            if let Some(c) = sniff {
                c.feed(read);
            }
        }
        res
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.shared);
        let res = match &mut s.inner {
            Inner::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, data),
            Inner::Upgrading => return Poll::Ready(Err(upgrading())),
        };
        if let (Poll::Ready(Ok(n)), Some(t)) = (&res, &mut s.transcript) {
            t.client_bytes(&data[..*n]);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        match &mut s.inner {
            Inner::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Inner::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared);
        match &mut s.inner {
            Inner::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Inner::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Inner::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncTokioStream for Wire {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::Capabilities;

    #[test]
    fn pipelining_is_seen_in_an_ehlo_reply_split_across_reads() {
        let mut c = Capabilities::default();
        c.feed(b"220 sink ESMTP\r\n250-sink\r\n250-PIPE");
        assert!(!c.pipelining);
        c.feed(b"LINING\r\n250 8BITMIME\r\n");
        assert!(c.pipelining);

        let mut last = Capabilities::default();
        last.feed(b"250-sink\r\n250 pipelining\r\n");
        assert!(last.pipelining, "keywords are case-insensitive");
    }

    #[test]
    fn other_lines_do_not_count() {
        let mut c = Capabilities::default();
        c.feed(b"220 PIPELINING ready\r\n250-XPIPELINING\r\n550 PIPELINING\r\n250-sink\r\n");
        assert!(!c.pipelining);
        // An endless line is cut, not buffered without bound.
        c.feed(&[b'x'; 10_000]);
        assert!(c.partial.len() <= Capabilities::MAX_LINE);
    }
}
