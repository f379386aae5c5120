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
            shared: Arc::new(Mutex::new(Shared { inner, transcript })),
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
        if let Some(t) = &mut s.transcript {
            t.note("TLS established");
        }
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
        if let (Poll::Ready(Ok(())), Some(t)) = (&res, &mut s.transcript) {
            t.server_bytes(&buf.filled()[before..]);
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
