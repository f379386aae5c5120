//! One SMTP session through lettre over Herald's own stream: connect
//! (TCP_NODELAY), implicit TLS or STARTTLS with the profile's trust, AUTH,
//! MAIL/RCPT/DATA, QUIT — each step under the profile's timeout, and any
//! failure reported with the step it happened at and the server's reply.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_crypto::SecretString;
use herald_domain::{EmailAddress, RelayHost, SecurityMode, SmtpRelay};
use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, ServerInfo,
};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;

use crate::diagnosis::{Failure, FailureKind, Stage};
use crate::tls;
use crate::transcript::{Reply, Transcript};
use crate::wire::Wire;

/// How to sign in: a password (PLAIN, else LOGIN) or an OAuth2 access token
/// (XOAUTH2).
pub enum SmtpLogin {
    Password {
        username: String,
        password: SecretString,
    },
    Xoauth2 {
        username: String,
        access_token: SecretString,
    },
}

impl SmtpLogin {
    fn credentials(&self) -> Credentials {
        match self {
            SmtpLogin::Password { username, password } => {
                Credentials::new(username.clone(), password.expose().clone())
            }
            SmtpLogin::Xoauth2 {
                username,
                access_token,
            } => Credentials::new(username.clone(), access_token.expose().clone()),
        }
    }

    fn mechanisms(&self) -> &'static [Mechanism] {
        match self {
            SmtpLogin::Password { .. } => &[Mechanism::Plain, Mechanism::Login],
            SmtpLogin::Xoauth2 { .. } => &[Mechanism::Xoauth2],
        }
    }
}

/// The result of one session.
pub struct SessionReport {
    pub result: Result<(), Failure>,
    /// Herald's notes and the conversation, AUTH payloads masked.
    pub transcript: Vec<String>,
    pub elapsed: Duration,
}

/// Sends one message in one session and reports every step (a test send).
pub async fn send_once(
    relay: &SmtpRelay,
    login: Option<&SmtpLogin>,
    envelope: &Envelope,
    message: &[u8],
) -> SessionReport {
    let started = Instant::now();
    let mut notes = Vec::new();
    let mut wire_slot = None;
    let result = match SmtpSession::open_recorded(relay, login, &mut notes, &mut wire_slot).await {
        Err(f) => Err(f),
        Ok(mut session) => {
            let to = envelope.to();
            let report = session.transaction_raw(envelope.from(), to, message).await;
            let result = report.first_failure();
            session.quit().await;
            result
        }
    };
    let recorded = wire_slot
        .and_then(|w: Wire| w.transcript())
        .unwrap_or_default();
    notes.extend(recorded.lines().iter().cloned());
    SessionReport {
        result,
        transcript: notes,
        elapsed: started.elapsed(),
    }
}

async fn step<T, E: std::fmt::Display>(
    stage: Stage,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
    kind: impl Fn(&E) -> FailureKind,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(Failure::new(
            stage,
            FailureKind::Timeout,
            format!("no answer within {} s", limit.as_secs()),
        )),
        Ok(Err(e)) => Err(Failure::new(stage, kind(&e), e.to_string())),
        Ok(Ok(v)) => Ok(v),
    }
}

/// A command's reply, a refusal, or the connection lost.
async fn command(
    stage: Stage,
    limit: Duration,
    fut: impl Future<Output = Result<Response, lettre::transport::smtp::Error>>,
) -> Result<Result<Reply, Reply>, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(Failure::new(
            stage,
            FailureKind::Timeout,
            format!("no answer within {} s", limit.as_secs()),
        )),
        Ok(Ok(r)) => Ok(Ok(Reply::new(
            u16::from(r.code()),
            r.message().collect::<Vec<_>>().join(" "),
        ))),
        Ok(Err(e)) => match refused(&e) {
            Some(reply) => Ok(Err(reply)),
            None => Err(Failure::new(stage, smtp_kind(&e), e.to_string())),
        },
    }
}

/// The server's refusal inside a lettre error (4xx/5xx), if it is one.
fn refused(e: &lettre::transport::smtp::Error) -> Option<Reply> {
    let code = e.status()?;
    let text = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    Some(Reply::new(u16::from(code), text))
}

fn smtp_kind(e: &lettre::transport::smtp::Error) -> FailureKind {
    if e.is_permanent() || e.is_transient() {
        FailureKind::Rejected
    } else if e.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Network
    }
}

fn io_kind(e: &std::io::Error) -> FailureKind {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match tls {
            rustls::Error::InvalidCertificate(_) => FailureKind::TlsCertificate,
            _ => FailureKind::Tls,
        };
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => FailureKind::Refused,
        std::io::ErrorKind::TimedOut => FailureKind::Timeout,
        _ => FailureKind::Network,
    }
}

/// What happened to one recipient of a transaction.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The server took the message for this recipient (the reply to the end
    /// of DATA).
    Accepted(Reply),
    /// The server refused it at `stage` (MAIL FROM, RCPT TO or DATA).
    Refused { stage: Stage, reply: Reply },
    /// The connection failed before the server answered for it.
    Lost(Failure),
    /// It cannot be sent through this server at all (an internationalised
    /// address to a server without SMTPUTF8).
    Unsendable(String),
}

impl Answer {
    /// What the answer means for this recipient.
    pub fn outcome(&self) -> herald_domain::DeliveryOutcome {
        use herald_domain::DeliveryOutcome;
        match self {
            Answer::Accepted(_) => DeliveryOutcome::Delivered,
            Answer::Refused { stage, reply } => reply.outcome(*stage),
            Answer::Lost(f) => f.outcome(),
            Answer::Unsendable(_) => DeliveryOutcome::Permanent { suppress: false },
        }
    }
}

/// The answers of one MAIL/RCPT/DATA transaction, one per recipient in
/// order.
#[derive(Debug, Clone)]
pub struct TransactionReport {
    pub answers: Vec<Answer>,
}

impl TransactionReport {
    /// The first recipient's failure as a session failure (test sends).
    fn first_failure(&self) -> Result<(), Failure> {
        for a in &self.answers {
            match a {
                Answer::Accepted(_) => {}
                Answer::Refused { stage, reply } => {
                    let mut f = Failure::new(*stage, FailureKind::Rejected, reply.text.clone());
                    f.reply = Some(reply.clone());
                    return Err(f);
                }
                Answer::Lost(f) => return Err(f.clone()),
                Answer::Unsendable(why) => {
                    return Err(Failure::new(
                        Stage::MailFrom,
                        FailureKind::Rejected,
                        why.clone(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An open, greeted, secured and signed-in SMTP connection that can carry
/// several transactions (a pooled connection).
pub struct SmtpSession {
    conn: AsyncSmtpConnection,
    wire: Wire,
    info: ServerInfo,
    limit: Duration,
    opened: Instant,
    transactions: u32,
    broken: bool,
    /// The server offered PIPELINING and the session is not recorded: a
    /// transaction's MAIL, RCPTs and DATA go in one write (RFC 2920), two
    /// round trips instead of three or more. A recorded session (a test
    /// send) waits for each reply, so its transcript pairs every command
    /// with its answer.
    pipelining: bool,
}

impl std::fmt::Debug for SmtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSession")
            .field("wire", &self.wire)
            .field("transactions", &self.transactions)
            .finish()
    }
}

impl SmtpSession {
    /// Connects, secures and signs in; nothing is recorded.
    pub async fn open(relay: &SmtpRelay, login: Option<&SmtpLogin>) -> Result<Self, Failure> {
        let mut notes = Vec::new();
        let mut slot = None;
        Self::connect(relay, login, &mut notes, &mut slot, false).await
    }

    /// Like [`open`](Self::open), recording the conversation (AUTH masked)
    /// in the wire left in `wire_slot`.
    async fn open_recorded(
        relay: &SmtpRelay,
        login: Option<&SmtpLogin>,
        notes: &mut Vec<String>,
        wire_slot: &mut Option<Wire>,
    ) -> Result<Self, Failure> {
        let result = Self::connect(relay, login, notes, wire_slot, true).await;
        let recorded = wire_slot.as_ref().and_then(Wire::transcript);
        // lettre may send QUIT after a refusal: the refusal, not the last
        // reply, says what failed and at which step.
        result.map_err(|mut f| {
            if let (FailureKind::Rejected, Some((reply, stage))) =
                (f.kind, recorded.and_then(|t| t.refusal()))
            {
                f.reply = Some(reply);
                f.stage = stage;
            }
            f
        })
    }

    async fn connect(
        relay: &SmtpRelay,
        login: Option<&SmtpLogin>,
        notes: &mut Vec<String>,
        wire_slot: &mut Option<Wire>,
        record: bool,
    ) -> Result<Self, Failure> {
        let limit = relay.timeout_seconds.duration();
        let port = relay.port().get();
        let host = relay.host.to_string();
        let connector = tls::connector(&relay.trust)
            .map_err(|e| Failure::new(Stage::Connect, FailureKind::Tls, e.to_string()))?;
        let server_name = tls::server_name(&host, &relay.trust)
            .map_err(|e| Failure::new(Stage::Connect, FailureKind::Tls, e.to_string()))?;

        let addrs: Vec<SocketAddr> = match &relay.host {
            RelayHost::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            RelayHost::Name(_) => step(
                Stage::Connect,
                limit,
                tokio::net::lookup_host((host.as_str(), port)),
                |_| FailureKind::Resolve,
            )
            .await?
            .collect(),
        };
        let peer = *addrs.first().ok_or_else(|| {
            Failure::new(
                Stage::Connect,
                FailureKind::Resolve,
                format!("{host} has no address"),
            )
        })?;
        notes.push(format!("* connecting to {host}:{port} ({peer})"));
        let tcp = step(Stage::Connect, limit, TcpStream::connect(peer), io_kind).await?;
        let _ = tcp.set_nodelay(true);
        let transcript = || record.then(Transcript::new);

        let wire = if relay.security == SecurityMode::Tls {
            let tls = step(
                Stage::Tls,
                limit,
                connector.connect(server_name.clone(), tcp),
                io_kind,
            )
            .await?;
            let wire = Wire::tls(tls, peer, transcript());
            wire.note("implicit TLS established");
            wire
        } else {
            Wire::plain(tcp, peer, transcript())
        };
        *wire_slot = Some(wire.clone());
        let client_id = match &relay.helo_name {
            Some(name) => ClientId::Domain(name.to_string()),
            None => ClientId::default(),
        };
        let mut conn = step(
            Stage::Greeting,
            limit,
            AsyncSmtpConnection::connect_with_transport(Box::new(wire.clone()), &client_id),
            smtp_kind,
        )
        .await?;
        let mut info = conn.server_info().clone();

        if matches!(
            relay.security,
            SecurityMode::Starttls | SecurityMode::StarttlsRequired
        ) {
            if info.supports_feature(Extension::StartTls) {
                step(Stage::Starttls, limit, conn.command(Starttls), smtp_kind).await?;
                let tcp = wire.take_plain().map_err(|e| {
                    Failure::new(Stage::Starttls, FailureKind::Network, e.to_string())
                })?;
                let tls = step(
                    Stage::Starttls,
                    limit,
                    connector.connect(server_name, tcp),
                    io_kind,
                )
                .await?;
                wire.put_tls(tls);
                let ehlo = step(
                    Stage::Starttls,
                    limit,
                    conn.command(Ehlo::new(client_id)),
                    smtp_kind,
                )
                .await?;
                info = ServerInfo::from_response(&ehlo).map_err(|e| {
                    Failure::new(Stage::Starttls, FailureKind::Network, e.to_string())
                })?;
            } else if relay.security == SecurityMode::StarttlsRequired {
                conn.abort().await;
                return Err(Failure::new(
                    Stage::Starttls,
                    FailureKind::StarttlsNotOffered,
                    "the server did not offer STARTTLS".into(),
                ));
            } else {
                wire.note("STARTTLS not offered; continuing without TLS");
            }
        }

        if let Some(login) = login {
            let Some(mechanism) = info.get_auth_mechanism(login.mechanisms()) else {
                conn.abort().await;
                return Err(Failure::new(
                    Stage::Auth,
                    FailureKind::NoAuthMechanism,
                    format!("the server offers none of {:?}", login.mechanisms()),
                ));
            };
            let credentials = login.credentials();
            let first = Auth::new(mechanism, credentials.clone(), None)
                .map_err(|e| Failure::new(Stage::Auth, FailureKind::Network, e.to_string()))?;
            let mut response = auth_step(&mut conn, limit, first).await?;
            let mut challenges = 0;
            while response.has_code(334) {
                challenges += 1;
                if challenges > 10 {
                    return Err(Failure::new(
                        Stage::Auth,
                        FailureKind::Network,
                        "too many AUTH challenges".into(),
                    ));
                }
                let next = Auth::new_from_response(mechanism, credentials.clone(), &response)
                    .map_err(|e| {
                        Failure::new(Stage::Auth, FailureKind::SenderAuthChallenge, e.to_string())
                    })?;
                response = auth_step(&mut conn, limit, next).await?;
            }
        }
        let pipelining = wire.stop_sniffing() && !record;
        Ok(Self {
            conn,
            wire,
            info,
            limit,
            opened: Instant::now(),
            transactions: 0,
            broken: false,
            pipelining,
        })
    }

    /// Whether the connection can carry another transaction.
    pub fn is_usable(&self) -> bool {
        !self.broken && !self.conn.has_broken()
    }

    /// How long ago it was opened.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Transactions it has carried.
    pub fn transactions(&self) -> u32 {
        self.transactions
    }

    /// Whether the conversation is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.wire.is_tls()
    }

    /// One MAIL FROM, a RCPT TO per recipient (each answered on its own),
    /// and DATA when at least one recipient was accepted. A refused
    /// transaction is reset (RSET) so the connection can be reused.
    pub async fn transaction(
        &mut self,
        from: &EmailAddress,
        to: &[&EmailAddress],
        data: &[u8],
    ) -> TransactionReport {
        let lettre = |a: &EmailAddress| Address::new(a.local_part(), a.domain()).ok();
        let Some(sender) = lettre(from) else {
            let why = format!("{from} cannot be used as the envelope sender");
            return TransactionReport {
                answers: to.iter().map(|_| Answer::Unsendable(why.clone())).collect(),
            };
        };
        let mut addresses = Vec::with_capacity(to.len());
        let mut positions = Vec::with_capacity(to.len());
        let mut answers: Vec<Option<Answer>> = vec![None; to.len()];
        for (i, a) in to.iter().enumerate() {
            match lettre(a) {
                Some(addr) => {
                    positions.push(i);
                    addresses.push(addr);
                }
                None => {
                    answers[i] = Some(Answer::Unsendable(format!(
                        "{a} cannot be used as an envelope recipient"
                    )))
                }
            }
        }
        if !addresses.is_empty() {
            let report = self.transaction_raw(Some(&sender), &addresses, data).await;
            for (i, a) in positions.into_iter().zip(report.answers) {
                answers[i] = Some(a);
            }
        }
        TransactionReport {
            answers: answers.into_iter().flatten().collect(),
        }
    }

    async fn transaction_raw(
        &mut self,
        from: Option<&Address>,
        to: &[Address],
        data: &[u8],
    ) -> TransactionReport {
        self.transactions += 1;
        let mut answers: Vec<Option<Answer>> = vec![None; to.len()];
        let result: Result<(), Failure> = async {
            let mut params = Vec::new();
            let utf8 = from.is_some_and(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii())
                || to.iter().any(|a| !AsRef::<str>::as_ref(a).is_ascii());
            if utf8 {
                if !self.info.supports_feature(Extension::SmtpUtfEight) {
                    for a in answers.iter_mut() {
                        *a = Some(Answer::Unsendable(
                            "an internationalised address needs SMTPUTF8, which the relay \
                             does not offer"
                                .into(),
                        ));
                    }
                    return Ok(());
                }
                params.push(MailParameter::SmtpUtfEight);
            }
            if !data.is_ascii() && self.info.supports_feature(Extension::EightBitMime) {
                params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
            }
            let mail = Mail::new(from.cloned(), params);
            let (accepted, data_reply) = if self.pipelining {
                match self.pipelined(mail, to, &mut answers).await? {
                    Some(sent) => sent,
                    None => return Ok(()),
                }
            } else {
                match self.lockstep(mail, to, &mut answers).await? {
                    Some(sent) => sent,
                    None => return Ok(()),
                }
            };
            let end = match data_reply {
                Err(reply) => {
                    self.reset().await;
                    Err(reply)
                }
                Ok(_) => self.content(data).await?,
            };
            for i in accepted {
                answers[i] = Some(match &end {
                    Ok(reply) => Answer::Accepted(reply.clone()),
                    Err(reply) => Answer::Refused {
                        stage: Stage::Data,
                        reply: reply.clone(),
                    },
                });
            }
            Ok(())
        }
        .await;
        if let Err(failure) = result {
            self.broken = true;
            for a in answers.iter_mut().filter(|a| a.is_none()) {
                *a = Some(Answer::Lost(failure.clone()));
            }
        }
        TransactionReport {
            answers: answers
                .into_iter()
                .map(|a| {
                    a.unwrap_or_else(|| {
                        Answer::Lost(Failure::new(
                            Stage::Data,
                            FailureKind::Network,
                            "no answer".into(),
                        ))
                    })
                })
                .collect(),
        }
    }

    /// MAIL, then each RCPT, then DATA, each waiting for its reply.
    /// Returns the recipients accepted and the reply to DATA, or `None`
    /// when there is nothing to send (every answer is filled in and the
    /// transaction reset).
    async fn lockstep(
        &mut self,
        mail: Mail,
        to: &[Address],
        answers: &mut [Option<Answer>],
    ) -> Result<Option<(Vec<usize>, Result<Reply, Reply>)>, Failure> {
        let limit = self.limit;
        if let Err(reply) = command(Stage::MailFrom, limit, self.conn.command(mail)).await? {
            refuse_all(answers, Stage::MailFrom, &reply);
            self.reset().await;
            return Ok(None);
        }
        let mut accepted = Vec::new();
        for (i, rcpt) in to.iter().enumerate() {
            let rcpt = Rcpt::new(rcpt.clone(), vec![]);
            match command(Stage::RcptTo, limit, self.conn.command(rcpt)).await? {
                Ok(_) => accepted.push(i),
                Err(reply) => {
                    answers[i] = Some(Answer::Refused {
                        stage: Stage::RcptTo,
                        reply,
                    })
                }
            }
        }
        if accepted.is_empty() {
            self.reset().await;
            return Ok(None);
        }
        let data = command(Stage::Data, limit, self.conn.command(Data)).await?;
        Ok(Some((accepted, data)))
    }

    /// The same in one write (RFC 2920), then every reply read in order.
    async fn pipelined(
        &mut self,
        mail: Mail,
        to: &[Address],
        answers: &mut [Option<Answer>],
    ) -> Result<Option<(Vec<usize>, Result<Reply, Reply>)>, Failure> {
        let limit = self.limit;
        let mut batch = mail.to_string();
        for rcpt in to {
            batch.push_str(&Rcpt::new(rcpt.clone(), vec![]).to_string());
        }
        batch.push_str(&Data.to_string());
        self.send_raw(Stage::MailFrom, batch.as_bytes()).await?;
        let mail = command(Stage::MailFrom, limit, self.conn.read_response()).await?;
        let mut accepted = Vec::new();
        for (i, answer) in answers.iter_mut().enumerate().take(to.len()) {
            match command(Stage::RcptTo, limit, self.conn.read_response()).await? {
                Ok(_) => accepted.push(i),
                Err(reply) => {
                    *answer = Some(Answer::Refused {
                        stage: Stage::RcptTo,
                        reply,
                    })
                }
            }
        }
        let data = command(Stage::Data, limit, self.conn.read_response()).await?;
        let nothing_to_send = match &mail {
            Err(reply) => {
                refuse_all(answers, Stage::MailFrom, reply);
                true
            }
            Ok(_) => accepted.is_empty(),
        };
        if nothing_to_send {
            if data.is_ok() {
                // A server that said 354 with no one to send to: end the
                // empty message; its answer does not matter.
                self.send_raw(Stage::Data, b".\r\n").await?;
                let _ = command(Stage::Data, limit, self.conn.read_response()).await?;
            }
            self.reset().await;
            return Ok(None);
        }
        Ok(Some((accepted, data)))
    }

    /// The message after 354 with its end, in one write, and the server's
    /// answer.
    async fn content(&mut self, data: &[u8]) -> Result<Result<Reply, Reply>, Failure> {
        self.send_raw(Stage::Data, &dot_stuffed(data)).await?;
        command(Stage::Data, self.limit, self.conn.read_response()).await
    }

    /// Writes commands to the server without waiting for a reply.
    async fn send_raw(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), Failure> {
        use tokio::io::AsyncWriteExt;
        let wire = &mut self.wire;
        let write = async {
            wire.write_all(bytes).await?;
            wire.flush().await
        };
        step(stage, self.limit, write, io_kind).await
    }

    /// RSET after a refused transaction; a connection that does not answer
    /// it is not reused.
    async fn reset(&mut self) {
        let ok = matches!(
            tokio::time::timeout(self.limit, self.conn.command(Rset)).await,
            Ok(Ok(_))
        );
        if !ok {
            self.broken = true;
        }
    }

    /// Says goodbye (QUIT) and closes.
    pub async fn quit(mut self) {
        if self.is_usable() {
            let _ = tokio::time::timeout(self.limit, self.conn.quit()).await;
        } else {
            self.conn.abort().await;
        }
    }
}

/// A message as sent after DATA (RFC 5321 4.5.2): a dot that starts a line
/// is doubled, and the end is `CRLF . CRLF` (only `. CRLF` when the message
/// already ends with a line break).
fn dot_stuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let mut from = 0;
    if data.first() == Some(&b'.') {
        out.push(b'.');
    }
    for at in memchr::memmem::find_iter(data, b"\r\n.") {
        out.extend_from_slice(&data[from..at + 3]);
        out.push(b'.');
        from = at + 3;
    }
    out.extend_from_slice(&data[from..]);
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The same refusal for every recipient not answered yet.
fn refuse_all(answers: &mut [Option<Answer>], stage: Stage, reply: &Reply) {
    for a in answers.iter_mut().filter(|a| a.is_none()) {
        *a = Some(Answer::Refused {
            stage,
            reply: reply.clone(),
        });
    }
}

async fn auth_step(
    conn: &mut AsyncSmtpConnection,
    limit: Duration,
    auth: Auth,
) -> Result<Response, Failure> {
    match tokio::time::timeout(limit, conn.command(auth)).await {
        Err(_) => Err(Failure::new(
            Stage::Auth,
            FailureKind::Timeout,
            format!("no answer within {} s", limit.as_secs()),
        )),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            let reply = refused(&e);
            let mut f = Failure::new(Stage::Auth, smtp_kind(&e), e.to_string());
            f.reply = reply;
            Err(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{SmtpAuth, SmtpTimeout, TlsTrust};
    use lettre::Address;
    use tokio::io::AsyncWriteExt;

    fn relay(port: u16) -> SmtpRelay {
        SmtpRelay {
            host: RelayHost::parse("127.0.0.1").unwrap(),
            port: Some(herald_domain::Port::try_from(u32::from(port)).unwrap()),
            security: SecurityMode::None,
            trust: TlsTrust::default(),
            timeout_seconds: SmtpTimeout::try_from(30).unwrap(),
            helo_name: None,
            auth: SmtpAuth::None,
        }
    }

    fn envelope() -> Envelope {
        let a: Address = "a@b.example".parse().unwrap();
        Envelope::new(Some(a.clone()), vec![a]).unwrap()
    }

    /// A server that accepts and then says nothing: the profile's timeout
    /// (30 s, on tokio's paused clock) ends the wait for the greeting.
    #[tokio::test(start_paused = true)]
    async fn a_silent_server_times_out_at_the_greeting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(sock);
        });
        let report = send_once(&relay(port), None, &envelope(), b"x").await;
        let failure = report.result.unwrap_err();
        assert_eq!(
            (failure.stage, failure.kind),
            (Stage::Greeting, FailureKind::Timeout)
        );
        let d = crate::diagnose(&failure, "127.0.0.1", port);
        assert_eq!(d.code, "timeout");
        server.abort();
    }

    #[test]
    fn content_is_dot_stuffed_and_ended_once() {
        assert_eq!(dot_stuffed(b"Hi\r\n"), b"Hi\r\n.\r\n");
        assert_eq!(dot_stuffed(b"Hi"), b"Hi\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b".\r\n");
        assert_eq!(
            dot_stuffed(b".top\r\nmid\r\n.\r\n..two\r\nend.\r\n"),
            b"..top\r\nmid\r\n..\r\n...two\r\nend.\r\n.\r\n"
        );
        // A lone LF does not start a line on the wire.
        assert_eq!(dot_stuffed(b"a\n.b\r\n"), b"a\n.b\r\n.\r\n");
    }

    /// A server that hangs up after the greeting is a lost connection.
    #[tokio::test]
    async fn a_server_hanging_up_is_a_lost_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            sock.write_all(b"220 hello\r\n").await.unwrap();
        });
        let report = send_once(&relay(port), None, &envelope(), b"x").await;
        let failure = report.result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::Network, "{failure:?}");
        assert!(report.transcript.iter().any(|l| l == "S: 220 hello"));
    }
}
