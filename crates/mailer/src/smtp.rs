//! One SMTP session through lettre over Herald's own stream: connect
//! (TCP_NODELAY), implicit TLS or STARTTLS with the profile's trust, AUTH,
//! MAIL/RCPT/DATA, QUIT — each step under the profile's timeout, and any
//! failure reported with the step it happened at and the server's reply.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_crypto::SecretString;
use herald_domain::{RelayHost, SecurityMode, SmtpRelay};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Auth, Ehlo, Starttls};
use lettre::transport::smtp::extension::{ClientId, Extension, ServerInfo};
use tokio::net::TcpStream;

use crate::diagnosis::{Failure, FailureKind, Stage};
use crate::tls;
use crate::transcript::Transcript;
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

/// Sends one message in one session and reports every step.
pub async fn send_once(
    relay: &SmtpRelay,
    login: Option<&SmtpLogin>,
    envelope: &Envelope,
    message: &[u8],
) -> SessionReport {
    let started = Instant::now();
    let mut prelude = Vec::new();
    let mut wire_slot = None;
    let result = session(
        relay,
        login,
        envelope,
        message,
        &mut prelude,
        &mut wire_slot,
    )
    .await;
    let recorded = wire_slot
        .and_then(|w: Wire| w.transcript())
        .unwrap_or_default();
    // lettre sends QUIT after a refusal: the refusal, not the last reply,
    // says what failed and at which step.
    let result = result.map_err(|mut f| {
        if let (FailureKind::Rejected, Some((reply, stage))) = (f.kind, recorded.refusal()) {
            f.reply = Some(reply);
            f.stage = stage;
        }
        f
    });
    prelude.extend(recorded.lines().iter().cloned());
    SessionReport {
        result,
        transcript: prelude,
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

async fn session(
    relay: &SmtpRelay,
    login: Option<&SmtpLogin>,
    envelope: &Envelope,
    message: &[u8],
    notes: &mut Vec<String>,
    wire_slot: &mut Option<Wire>,
) -> Result<(), Failure> {
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

    let wire = if relay.security == SecurityMode::Tls {
        let tls = step(
            Stage::Tls,
            limit,
            connector.connect(server_name.clone(), tcp),
            io_kind,
        )
        .await?;
        let wire = Wire::tls(tls, peer, Some(Transcript::new()));
        wire.note("implicit TLS established");
        wire
    } else {
        Wire::plain(tcp, peer, Some(Transcript::new()))
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
            let tcp = wire
                .take_plain()
                .map_err(|e| Failure::new(Stage::Starttls, FailureKind::Network, e.to_string()))?;
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
            info = ServerInfo::from_response(&ehlo)
                .map_err(|e| Failure::new(Stage::Starttls, FailureKind::Network, e.to_string()))?;
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
        let mut response = step(Stage::Auth, limit, conn.command(first), smtp_kind).await?;
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
            let next = Auth::new_from_response(mechanism, credentials.clone(), &response).map_err(
                |e| Failure::new(Stage::Auth, FailureKind::SenderAuthChallenge, e.to_string()),
            )?;
            response = step(Stage::Auth, limit, conn.command(next), smtp_kind).await?;
        }
    }

    if let Err(f) = step(
        Stage::MailFrom,
        limit,
        conn.send(envelope, message),
        smtp_kind,
    )
    .await
    {
        let stage = wire
            .transcript()
            .map(|t| t.last_command_stage())
            .unwrap_or(Stage::MailFrom);
        conn.abort().await;
        return Err(Failure { stage, ..f });
    }
    let _ = tokio::time::timeout(limit, conn.quit()).await;
    Ok(())
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
