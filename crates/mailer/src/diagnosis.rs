//! What went wrong, in words an admin can act on. Classification is a match
//! over the step, the reply code and the enhanced status code (RFC 3463),
//! never a search in the server's text.

use serde::Serialize;

use crate::transcript::Reply;

/// The step of an SMTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Connect,
    Tls,
    Greeting,
    Starttls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing listens at the address.
    Refused,
    /// The step took longer than the profile's timeout.
    Timeout,
    /// The host name did not resolve.
    Resolve,
    /// The server's certificate is not valid for the name or not trusted.
    TlsCertificate,
    /// Another TLS failure.
    Tls,
    /// "Use STARTTLS only", and the server did not offer it.
    StarttlsNotOffered,
    /// The server offers no mechanism Herald can use.
    NoAuthMechanism,
    /// A rejected XOAUTH2 that came back as a challenge lettre cannot answer.
    SenderAuthChallenge,
    /// The server answered 4xx or 5xx (see the reply).
    Rejected,
    /// The connection broke.
    Network,
}

/// A failed session: where, what, and the server's last reply.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: Stage,
    pub kind: FailureKind,
    pub reply: Option<Reply>,
    pub detail: String,
}

impl Failure {
    pub fn new(stage: Stage, kind: FailureKind, detail: String) -> Self {
        Self {
            stage,
            kind,
            reply: None,
            detail,
        }
    }
}

/// A known failure with advice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// A stable code such as `bad_credentials` or `smtp_auth_disabled`.
    pub code: &'static str,
    pub message: String,
    /// The server refused the sender's credentials: the identity or profile
    /// is at fault, never the recipient.
    pub sender_auth: bool,
}

fn diag(code: &'static str, message: impl Into<String>) -> Diagnosis {
    Diagnosis {
        code,
        message: message.into(),
        sender_auth: false,
    }
}

fn auth_diag(code: &'static str, message: impl Into<String>) -> Diagnosis {
    Diagnosis {
        sender_auth: true,
        ..diag(code, message)
    }
}

fn is_google(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h == "smtp.gmail.com" || h.ends_with(".gmail.com") || h.ends_with(".googlemail.com")
}

/// Explains `f` for a relay at `host:port`.
pub fn diagnose(f: &Failure, host: &str, port: u16) -> Diagnosis {
    let enhanced = f.reply.as_ref().and_then(|r| r.enhanced.as_deref());
    let code = f.reply.as_ref().map(|r| r.code);
    match (f.kind, f.stage, code, enhanced) {
        (FailureKind::Refused, _, _, _) => diag(
            "connection_refused",
            format!(
                "Nothing accepted a connection at {host}:{port}. Check the host and the port, and \
                 that no firewall blocks it (many networks and Microsoft 365 block port 25)."
            ),
        ),
        (FailureKind::Timeout, stage, _, _) => diag(
            "timeout",
            format!(
                "{host}:{port} did not answer in time (at {stage:?}). Check the host, the port and \
                 the security mode (implicit TLS on 465, STARTTLS on 587), or raise the timeout."
            ),
        ),
        (FailureKind::Resolve, _, _, _) => diag(
            "host_not_found",
            format!("The host name {host} does not resolve: {}", f.detail),
        ),
        (FailureKind::TlsCertificate, _, _, _) => diag(
            "tls_certificate",
            format!(
                "The server's certificate was refused: {}. If the server uses a private CA, add \
                 it under trust.extra_ca_pem; if its certificate names another host, set \
                 trust.accept_host_name.",
                f.detail
            ),
        ),
        (FailureKind::Tls, _, _, _) => diag(
            "tls_failed",
            format!(
                "The TLS handshake failed: {}. Check the security mode: implicit TLS (465) and \
                 STARTTLS (587) are not interchangeable.",
                f.detail
            ),
        ),
        (FailureKind::StarttlsNotOffered, _, _, _) => diag(
            "starttls_not_offered",
            "The server did not offer STARTTLS and the profile requires it (\"Use STARTTLS only\"); \
             nothing was sent in clear.",
        ),
        (FailureKind::NoAuthMechanism, _, _, _) => auth_diag(
            "no_auth_mechanism",
            format!(
                "The server offers no authentication Herald can use ({}). Some servers offer AUTH \
                 only after STARTTLS.",
                f.detail
            ),
        ),
        (FailureKind::SenderAuthChallenge, _, _, _) => auth_diag(
            "oauth_rejected",
            "The server rejected the OAuth token (XOAUTH2). Authenticate with MFA again.",
        ),
        (FailureKind::Rejected, Stage::Auth, _, Some("5.7.139")) => auth_diag(
            "smtp_auth_disabled",
            "Microsoft 365 refused: SMTP AUTH is disabled for this tenant or mailbox (535 5.7.139). \
             An Exchange admin must enable Authenticated SMTP for the mailbox, or use OAuth \
             (Authenticate with MFA).",
        ),
        (FailureKind::Rejected, _, _, Some("5.7.30")) => auth_diag(
            "basic_auth_unsupported",
            "The server no longer accepts passwords (550 5.7.30 basic authentication is not \
             supported). Connect this mailbox with OAuth (Authenticate with MFA).",
        ),
        (FailureKind::Rejected, Stage::Auth, Some(535), _) if is_google(host) => auth_diag(
            "bad_credentials",
            "Gmail refused the user name and password (535). Gmail does not accept account \
             passwords from apps: turn on 2-Step Verification and use an app password, or \
             connect with OAuth (Authenticate with MFA).",
        ),
        (FailureKind::Rejected, Stage::Auth, Some(535), _) => auth_diag(
            "bad_credentials",
            "The server refused the user name or password (535). Check them, and whether the \
             mailbox allows SMTP sign-in.",
        ),
        (FailureKind::Rejected, Stage::Auth, _, _) => {
            auth_diag("auth_failed", "The server refused the sign-in.")
        }
        (FailureKind::Rejected, Stage::MailFrom, _, Some("5.7.60" | "5.7.8" | "5.7.3")) => {
            auth_diag(
                "send_as_denied",
                "The server does not let this account send as the From address. Use the mailbox's \
             own address, or grant it Send As rights.",
            )
        }
        (FailureKind::Rejected, Stage::RcptTo, Some(550 | 551 | 553 | 554), Some("5.7.1"))
        | (FailureKind::Rejected, Stage::RcptTo, Some(554), None) => diag(
            "relay_denied",
            "The server refused to relay to this recipient: it needs Herald to sign in, or an \
             allow-rule for Herald's address.",
        ),
        (FailureKind::Rejected, Stage::RcptTo, Some(c), _) if c >= 500 => diag(
            "recipient_rejected",
            "The server refused the recipient address.",
        ),
        (FailureKind::Rejected, Stage::MailFrom, Some(c), _) if c >= 500 => diag(
            "sender_rejected",
            "The server refused the sender (From) address.",
        ),
        (FailureKind::Rejected, _, Some(c), _) if (400..500).contains(&c) => diag(
            "temporary_failure",
            "The server asked to try again later (4xx).",
        ),
        (FailureKind::Rejected, _, _, _) => diag("rejected", "The server refused the message."),
        (FailureKind::Network, _, _, _) => diag(
            "connection_lost",
            format!("The connection failed: {}", f.detail),
        ),
    }
}

impl Stage {
    /// The delivery step this stage is (STARTTLS counts as TLS).
    pub fn step(self) -> herald_domain::SmtpStep {
        use herald_domain::SmtpStep;
        match self {
            Stage::Connect => SmtpStep::Connect,
            Stage::Tls | Stage::Starttls => SmtpStep::Tls,
            Stage::Greeting => SmtpStep::Greeting,
            Stage::Auth => SmtpStep::Auth,
            Stage::MailFrom => SmtpStep::MailFrom,
            Stage::RcptTo => SmtpStep::RcptTo,
            Stage::Data => SmtpStep::Data,
        }
    }
}

impl Reply {
    /// What this refusal (or acceptance) at `stage` means for delivery.
    pub fn outcome(&self, stage: Stage) -> herald_domain::DeliveryOutcome {
        let enhanced = self.enhanced.as_deref().and_then(|e| e.parse().ok());
        herald_domain::classify_reply(stage.step(), self.code, enhanced)
    }
}

impl Failure {
    /// What a failed session means for the recipients it was to carry: the
    /// server's reply decides when there is one; a sign-in Herald cannot
    /// perform holds the sender's mail; anything else (refused connection,
    /// timeout, TLS, a dropped line) is temporary.
    pub fn outcome(&self) -> herald_domain::DeliveryOutcome {
        use herald_domain::DeliveryOutcome;
        match (self.kind, &self.reply) {
            (FailureKind::Rejected, Some(reply)) => reply.outcome(self.stage),
            (FailureKind::Rejected, None) if self.stage == Stage::Auth => {
                DeliveryOutcome::SenderAuth
            }
            (FailureKind::NoAuthMechanism | FailureKind::SenderAuthChallenge, _) => {
                DeliveryOutcome::SenderAuth
            }
            _ => DeliveryOutcome::Temporary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(stage: Stage, line: &str) -> Failure {
        Failure {
            reply: Reply::parse(&[line.to_owned()]),
            ..Failure::new(stage, FailureKind::Rejected, String::new())
        }
    }

    #[test]
    fn known_failures_get_their_diagnosis() {
        let cases = [
            (
                rejected(
                    Stage::Auth,
                    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled",
                ),
                "smtp.office365.com",
                "smtp_auth_disabled",
                true,
            ),
            (
                rejected(
                    Stage::Auth,
                    "550 5.7.30 Basic authentication is not supported",
                ),
                "smtp.office365.com",
                "basic_auth_unsupported",
                true,
            ),
            (
                rejected(Stage::Auth, "535 5.7.8 Username and Password not accepted"),
                "smtp.gmail.com",
                "bad_credentials",
                true,
            ),
            (
                rejected(Stage::Auth, "535 5.7.8 Error: authentication failed"),
                "mail.school.example",
                "bad_credentials",
                true,
            ),
            (
                rejected(
                    Stage::RcptTo,
                    "554 5.7.1 <x@y.example>: Relay access denied",
                ),
                "mail.school.example",
                "relay_denied",
                false,
            ),
            (
                rejected(Stage::RcptTo, "550 5.1.1 no such user"),
                "mail.school.example",
                "recipient_rejected",
                false,
            ),
            (
                rejected(Stage::Data, "451 4.3.0 try later"),
                "mail.school.example",
                "temporary_failure",
                false,
            ),
        ];
        for (f, host, code, auth) in cases {
            let d = diagnose(&f, host, 587);
            assert_eq!((d.code, d.sender_auth), (code, auth), "{f:?}");
        }
        let gmail = diagnose(&cases_gmail(), "smtp.gmail.com", 587);
        assert!(gmail.message.contains("app password"));
        let refused = Failure::new(Stage::Connect, FailureKind::Refused, String::new());
        assert_eq!(
            diagnose(&refused, "h.example", 25).code,
            "connection_refused"
        );
    }

    fn cases_gmail() -> Failure {
        rejected(Stage::Auth, "535 5.7.8 Username and Password not accepted")
    }
}
