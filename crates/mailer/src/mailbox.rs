//! Reading a bounce mailbox over IMAP (async-imap) or POP3 (a few commands
//! of RFC 1939, written here: no maintained async POP3 client exists).
//!
//! A poll takes the unread messages (at most `max`, none bigger than
//! [`MAX_MESSAGE`]), hands them to the caller, and then settles them: a
//! message the caller used is deleted; one it could not use is marked read
//! (IMAP) or left alone and remembered by its UIDL (POP3), so that a person
//! can still read it and it is not fetched again.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use futures_util::TryStreamExt;
use herald_crypto::SecretString;
use herald_domain::{MailboxProtocol, TlsTrust};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpStream;

use crate::tls;

/// The largest message fetched; anything bigger is not a report.
pub const MAX_MESSAGE: u64 = 10 * 1024 * 1024;

/// How Herald signs in.
pub enum MailboxLogin {
    Password {
        username: String,
        password: SecretString,
    },
    /// SASL XOAUTH2 with a sender identity's access token.
    Xoauth2 {
        username: String,
        access_token: SecretString,
    },
}

impl MailboxLogin {
    fn username(&self) -> &str {
        match self {
            Self::Password { username, .. } | Self::Xoauth2 { username, .. } => username,
        }
    }

    fn xoauth2(username: &str, token: &SecretString) -> String {
        format!("user={username}\x01auth=Bearer {}\x01\x01", token.expose())
    }
}

impl fmt::Debug for MailboxLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Password { .. } => "password",
            Self::Xoauth2 { .. } => "xoauth2",
        };
        write!(f, "MailboxLogin({kind}, {})", self.username())
    }
}

/// Where the mailbox is.
#[derive(Debug)]
pub struct MailboxServer {
    pub protocol: MailboxProtocol,
    pub host: String,
    pub port: u16,
    /// Implicit TLS (993 / 995); otherwise plain text.
    pub tls: bool,
    pub trust: TlsTrust,
    /// For each network step.
    pub timeout: Duration,
}

/// Why a poll failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct MailboxError {
    /// connect, tls, login, read, update.
    pub stage: &'static str,
    pub message: String,
}

impl MailboxError {
    fn new(stage: &'static str, message: impl fmt::Display) -> Self {
        Self {
            stage,
            message: message.to_string(),
        }
    }

    /// The server refused the credentials.
    pub fn is_login(&self) -> bool {
        self.stage == "login"
    }
}

/// One unread message.
pub struct Fetched {
    /// The IMAP UID or the POP3 UIDL.
    pub key: String,
    pub raw: Vec<u8>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A TCP or TLS stream; async-imap wants one concrete, printable type.
struct Stream(Box<dyn Io>);

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailboxStream")
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

async fn within<T, E: fmt::Display>(
    stage: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, MailboxError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(MailboxError::new(stage, e)),
        Err(_) => Err(MailboxError::new(
            stage,
            format!("no answer within {} s", limit.as_secs()),
        )),
    }
}

async fn connect(server: &MailboxServer) -> Result<Stream, MailboxError> {
    let limit = server.timeout;
    let tcp = within(
        "connect",
        limit,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await?;
    let _ = tcp.set_nodelay(true);
    if !server.tls {
        return Ok(Stream(Box::new(tcp)));
    }
    let connector = tls::connector(&server.trust).map_err(|e| MailboxError::new("tls", e))?;
    let name =
        tls::server_name(&server.host, &server.trust).map_err(|e| MailboxError::new("tls", e))?;
    let tls = within("tls", limit, connector.connect(name, tcp)).await?;
    Ok(Stream(Box::new(tls)))
}

/// An open mailbox.
pub struct MailboxSession {
    inner: Inner,
    limit: Duration,
}

enum Inner {
    Imap(Box<async_imap::Session<Stream>>),
    Pop3(Pop3),
}

impl MailboxSession {
    /// Connects, signs in and opens the inbox.
    pub async fn open(server: &MailboxServer, login: &MailboxLogin) -> Result<Self, MailboxError> {
        let stream = connect(server).await?;
        let limit = server.timeout;
        let inner = match server.protocol {
            MailboxProtocol::Imap => Inner::Imap(Box::new(imap_open(stream, login, limit).await?)),
            MailboxProtocol::Pop3 => Inner::Pop3(Pop3::open(stream, login, limit).await?),
        };
        Ok(Self { inner, limit })
    }

    /// Up to `max` unread messages, oldest first. `skip` lists POP3 keys
    /// already looked at and left in place.
    pub async fn unread(
        &mut self,
        max: usize,
        skip: &[String],
    ) -> Result<Vec<Fetched>, MailboxError> {
        let limit = self.limit;
        match &mut self.inner {
            Inner::Imap(s) => imap_unread(s, max, limit).await,
            Inner::Pop3(p) => p.unread(max, skip).await,
        }
    }

    /// Deletes `used`, marks `kept` read (IMAP), and signs out.
    pub async fn settle(self, used: &[String], kept: &[String]) -> Result<(), MailboxError> {
        let limit = self.limit;
        match self.inner {
            Inner::Imap(mut s) => {
                if !kept.is_empty() {
                    let set = kept.join(",");
                    within("update", limit, async {
                        s.uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await?;
                }
                if !used.is_empty() {
                    let set = used.join(",");
                    within("update", limit, async {
                        s.uid_store(&set, "+FLAGS.SILENT (\\Seen \\Deleted)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await?;
                    within("update", limit, async {
                        s.uid_expunge(&set).await?.try_collect::<Vec<_>>().await
                    })
                    .await?;
                }
                let _ = within("logout", limit, s.logout()).await;
                Ok(())
            }
            Inner::Pop3(mut p) => {
                for key in used {
                    p.delete(key).await?;
                }
                p.quit().await
            }
        }
    }
}

async fn imap_open(
    stream: Stream,
    login: &MailboxLogin,
    limit: Duration,
) -> Result<async_imap::Session<Stream>, MailboxError> {
    let mut client = async_imap::Client::new(stream);
    match within("connect", limit, client.read_response()).await? {
        Some(_) => {}
        None => return Err(MailboxError::new("connect", "closed before its greeting")),
    }
    let session = match login {
        MailboxLogin::Password { username, password } => {
            within("login", limit, async {
                client
                    .login(username, password.expose())
                    .await
                    .map_err(|(e, _)| e)
            })
            .await?
        }
        MailboxLogin::Xoauth2 {
            username,
            access_token,
        } => {
            struct Xoauth2(String);
            impl async_imap::Authenticator for Xoauth2 {
                type Response = String;
                fn process(&mut self, _challenge: &[u8]) -> String {
                    // A second challenge is the server's error report; an
                    // empty answer makes it finish with NO.
                    std::mem::take(&mut self.0)
                }
            }
            let auth = Xoauth2(MailboxLogin::xoauth2(username, access_token));
            within("login", limit, async {
                client
                    .authenticate("XOAUTH2", auth)
                    .await
                    .map_err(|(e, _)| e)
            })
            .await?
        }
    };
    let mut session = session;
    within("read", limit, session.select("INBOX")).await?;
    Ok(session)
}

async fn imap_unread(
    s: &mut async_imap::Session<Stream>,
    max: usize,
    limit: Duration,
) -> Result<Vec<Fetched>, MailboxError> {
    let mut uids: Vec<u32> = within("read", limit, s.uid_search("UNSEEN"))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    uids.truncate(max);
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // Sizes first, so that nothing huge is downloaded.
    let sizes = within("read", limit, async {
        s.uid_fetch(&set, "(UID RFC822.SIZE)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    let small: Vec<String> = sizes
        .iter()
        .filter(|f| f.size.is_some_and(|n| u64::from(n) <= MAX_MESSAGE))
        .filter_map(|f| f.uid.map(|u| u.to_string()))
        .collect();
    let mut out: Vec<Fetched> = sizes
        .iter()
        .filter(|f| f.size.is_none_or(|n| u64::from(n) > MAX_MESSAGE))
        .filter_map(|f| f.uid)
        .map(|u| Fetched {
            key: u.to_string(),
            raw: Vec::new(),
        })
        .collect();
    if !small.is_empty() {
        let set = small.join(",");
        let bodies = within("read", limit, async {
            s.uid_fetch(&set, "(UID BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        out.extend(bodies.iter().filter_map(|f| {
            Some(Fetched {
                key: f.uid?.to_string(),
                raw: f.body()?.to_vec(),
            })
        }));
    }
    out.sort_by_key(|f| f.key.parse::<u32>().unwrap_or(u32::MAX));
    Ok(out)
}

/// A POP3 session (RFC 1939 with RFC 5034's AUTH for XOAUTH2).
struct Pop3 {
    conn: BufReader<Stream>,
    limit: Duration,
    /// Message number by UIDL, from this session's listing.
    numbers: Vec<(u32, String)>,
}

impl Pop3 {
    async fn open(
        stream: Stream,
        login: &MailboxLogin,
        limit: Duration,
    ) -> Result<Self, MailboxError> {
        let mut p = Self {
            conn: BufReader::new(stream),
            limit,
            numbers: Vec::new(),
        };
        p.status("connect").await?;
        match login {
            MailboxLogin::Password { username, password } => {
                let (user, pass) = (username.as_str(), password.expose().as_str());
                if [user, pass].iter().any(|s| s.contains(['\r', '\n'])) {
                    return Err(MailboxError::new("login", "credentials hold a line break"));
                }
                p.command("login", &format!("USER {user}")).await?;
                p.command("login", &format!("PASS {pass}")).await?;
            }
            MailboxLogin::Xoauth2 {
                username,
                access_token,
            } => {
                let blob = base64::engine::general_purpose::STANDARD
                    .encode(MailboxLogin::xoauth2(username, access_token));
                p.command("login", &format!("AUTH XOAUTH2 {blob}")).await?;
            }
        }
        Ok(p)
    }

    async fn line(&mut self, stage: &'static str) -> Result<String, MailboxError> {
        let mut buf = Vec::new();
        let n = within(stage, self.limit, async {
            (&mut self.conn)
                .take(MAX_MESSAGE + 1024)
                .read_until(b'\n', &mut buf)
                .await
        })
        .await?;
        if n == 0 {
            return Err(MailboxError::new(stage, "the server closed the connection"));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads a status line; `-ERR` is an error at `stage`.
    async fn status(&mut self, stage: &'static str) -> Result<String, MailboxError> {
        let line = self.line(stage).await?;
        match line.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(MailboxError::new(
                stage,
                line.strip_prefix("-ERR").unwrap_or(&line).trim(),
            )),
        }
    }

    async fn command(&mut self, stage: &'static str, cmd: &str) -> Result<String, MailboxError> {
        within(stage, self.limit, async {
            let w = self.conn.get_mut();
            w.write_all(cmd.as_bytes()).await?;
            w.write_all(b"\r\n").await?;
            w.flush().await
        })
        .await?;
        self.status(stage).await
    }

    /// A multi-line answer's lines, dot-unstuffed, up to the lone ".".
    async fn multiline(&mut self, stage: &'static str) -> Result<Vec<String>, MailboxError> {
        let mut lines = Vec::new();
        loop {
            let line = self.line(stage).await?;
            if line == "." {
                return Ok(lines);
            }
            lines.push(line.strip_prefix('.').map(str::to_owned).unwrap_or(line));
        }
    }

    async fn unread(&mut self, max: usize, skip: &[String]) -> Result<Vec<Fetched>, MailboxError> {
        self.command("read", "UIDL").await?;
        self.numbers = self
            .multiline("read")
            .await?
            .iter()
            .filter_map(|l| {
                let (n, uid) = l.split_once(' ')?;
                Some((n.parse().ok()?, uid.trim().to_owned()))
            })
            .collect();
        self.command("read", "LIST").await?;
        let sizes: Vec<(u32, u64)> = self
            .multiline("read")
            .await?
            .iter()
            .filter_map(|l| {
                let (n, size) = l.split_once(' ')?;
                Some((n.parse().ok()?, size.trim().parse().ok()?))
            })
            .collect();
        let todo: Vec<(u32, String)> = self
            .numbers
            .iter()
            .filter(|(_, uid)| !skip.contains(uid))
            .take(max)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for (n, uid) in todo {
            let size = sizes.iter().find(|(m, _)| *m == n).map(|(_, s)| *s);
            if size.is_none_or(|s| s > MAX_MESSAGE) {
                out.push(Fetched {
                    key: uid,
                    raw: Vec::new(),
                });
                continue;
            }
            self.command("read", &format!("RETR {n}")).await?;
            let raw = self.multiline("read").await?.join("\r\n").into_bytes();
            out.push(Fetched { key: uid, raw });
        }
        Ok(out)
    }

    async fn delete(&mut self, key: &str) -> Result<(), MailboxError> {
        if let Some((n, _)) = self.numbers.iter().find(|(_, u)| u == key) {
            let n = *n;
            self.command("update", &format!("DELE {n}")).await?;
        }
        Ok(())
    }

    /// QUIT: the server removes what was deleted only now.
    async fn quit(mut self) -> Result<(), MailboxError> {
        self.command("update", "QUIT").await.map(|_| ())
    }
}
