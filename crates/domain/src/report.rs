//! What arrives in a bounce mailbox: delivery status notifications
//! (RFC 3464) and abuse feedback reports (RFC 5965), reduced to the facts
//! Herald acts on. The MIME around them is taken apart by the mailer; the
//! field blocks inside (`Final-Recipient: rfc822; a@b`, `Action: failed`, …)
//! are read here.

use crate::{BounceClass, EmailAddress, EnhancedCode, MessageId};

/// Which message a report is about, as its returned headers tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalMessage {
    /// Herald's own `X-Herald-Message` header.
    pub herald_id: Option<MessageId>,
    /// The Message-ID header, without angle brackets.
    pub message_id_header: Option<String>,
    /// The addresses of the original's To header (a feedback report without
    /// `Original-Rcpt-To` is about them).
    pub to: Vec<EmailAddress>,
}

impl OriginalMessage {
    /// The Herald message this is about: the `X-Herald-Message` header, or
    /// a Message-ID Herald generated (`<message id>@<domain>`).
    pub fn herald_message(&self) -> Option<MessageId> {
        self.herald_id.or_else(|| {
            let h = self.message_id_header.as_deref()?;
            let (local, _) = h.split_once('@')?;
            local.parse().ok()
        })
    }
}

/// RFC 3464 §2.3.3: what the reporting server did with a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl DsnAction {
    fn parse(s: &str) -> Option<Self> {
        // "failed" may carry a comment: "failed (bad mailbox)".
        let word = s.split(['(', ' ', ';']).next()?.trim();
        Some(match word.to_ascii_lowercase().as_str() {
            "failed" => Self::Failed,
            "delayed" => Self::Delayed,
            "delivered" => Self::Delivered,
            "relayed" => Self::Relayed,
            "expanded" => Self::Expanded,
            _ => return None,
        })
    }
}

/// One recipient's block of a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Original-Recipient` when given (the address Herald sent to), else
    /// `Final-Recipient`.
    pub recipient: EmailAddress,
    pub action: DsnAction,
    pub status: Option<EnhancedCode>,
    /// The SMTP reply code of `Diagnostic-Code: smtp; 550 …`.
    pub reply_code: Option<u16>,
    /// The diagnostic text (the remote server's words), at most 1,000
    /// characters.
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

/// What a delivery status notification means for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounce {
    /// The receiving side gave up: a permanent failure. `suppress` when the
    /// code is a hard one about the recipient's own address.
    Failed { suppress: bool },
    /// Still trying: a temporary failure, reported and nothing more.
    Delayed,
    /// Delivered, relayed or expanded: nothing to record.
    Success,
}

impl DsnRecipient {
    pub fn bounce(&self) -> Bounce {
        match self.action {
            DsnAction::Failed => Bounce::Failed {
                suppress: self.status.is_some_and(|c| {
                    c.class == 5 && c.bounce_class() == BounceClass::Hard && c.is_about_recipient()
                }),
            },
            DsnAction::Delayed => Bounce::Delayed,
            DsnAction::Delivered | DsnAction::Relayed | DsnAction::Expanded => Bounce::Success,
        }
    }
}

/// A report found in a bounce mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailReport {
    /// RFC 3464.
    Delivery {
        original: OriginalMessage,
        recipients: Vec<DsnRecipient>,
    },
    /// RFC 5965 (an ARF feedback report: someone pressed "this is spam").
    Feedback {
        original: OriginalMessage,
        /// `abuse`, `fraud`, `virus`, `other`, …
        feedback_type: String,
        /// `Original-Rcpt-To`, one per recipient reported.
        recipients: Vec<EmailAddress>,
        user_agent: Option<String>,
    },
}

impl MailReport {
    pub fn original(&self) -> &OriginalMessage {
        match self {
            Self::Delivery { original, .. } | Self::Feedback { original, .. } => original,
        }
    }
}

/// The longest diagnostic kept.
const MAX_DIAGNOSTIC: usize = 1000;
/// The longest of the other texts kept (host names, user agents, types).
const MAX_FIELD: usize = 255;

/// Report text as Herald stores it: anyone can mail a bounce mailbox, and a
/// base64 part can carry any byte, so control characters (NUL, CR, LF, …)
/// become spaces and the text is cut at `max` characters.
fn clean(text: &str, max: usize) -> String {
    let kept: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    kept.trim().to_owned()
}

/// The blocks of `Name: value` fields in a `message/delivery-status` or
/// `message/feedback-report` body (RFC 3464 §2.1: blocks separated by blank
/// lines; a line beginning with white space continues the one before).
/// Names are lowercased.
pub fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = block.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; someone@example.org` (or a bare address) as an address.
fn typed_address(value: &str) -> Option<EmailAddress> {
    let addr = match value.split_once(';') {
        Some((kind, a)) if kind.trim().eq_ignore_ascii_case("rfc822") => a,
        Some(_) => return None,
        None => value,
    };
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    EmailAddress::parse(addr).ok()
}

/// The recipients of a `message/delivery-status` body. Blocks without a
/// usable recipient address or action are skipped.
pub fn dsn_recipients(text: &str) -> Vec<DsnRecipient> {
    let blocks = field_blocks(text);
    blocks
        .iter()
        // The first block describes the message; recipients follow. A
        // report that lost its per-message block still has recipients.
        .filter(|b| field(b, "final-recipient").is_some())
        .filter_map(|b| {
            let recipient = field(b, "original-recipient")
                .and_then(typed_address)
                .or_else(|| field(b, "final-recipient").and_then(typed_address))?;
            let action = DsnAction::parse(field(b, "action")?)?;
            let status = field(b, "status")
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<EnhancedCode>().ok());
            let diagnostic = field(b, "diagnostic-code").map(|d| match d.split_once(';') {
                Some((_, text)) => clean(text, MAX_DIAGNOSTIC),
                None => clean(d, MAX_DIAGNOSTIC),
            });
            let reply_code = diagnostic
                .as_deref()
                .and_then(|d| d.get(..3))
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c));
            let remote_mta = field(b, "remote-mta").map(|m| match m.split_once(';') {
                Some((_, host)) => clean(host, MAX_FIELD),
                None => clean(m, MAX_FIELD),
            });
            Some(DsnRecipient {
                recipient,
                action,
                status,
                reply_code,
                diagnostic,
                remote_mta,
            })
        })
        .collect()
}

/// The fields of a `message/feedback-report` body that Herald uses:
/// `Feedback-Type` (required), every `Original-Rcpt-To`, `User-Agent`.
pub fn feedback_fields(text: &str) -> Option<(String, Vec<EmailAddress>, Option<String>)> {
    let fields: Vec<(String, String)> = field_blocks(text).into_iter().flatten().collect();
    let kind = clean(field(&fields, "feedback-type")?, MAX_FIELD).to_ascii_lowercase();
    let recipients = fields
        .iter()
        .filter(|(n, _)| n == "original-rcpt-to")
        .filter_map(|(_, v)| typed_address(v))
        .collect();
    let agent = field(&fields, "user-agent").map(|a| clean(a, MAX_FIELD));
    Some((kind, recipients, agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "Reporting-MTA: dns; mx.example.org\r\n\
        Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
        \r\n\
        Original-Recipient: rfc822;Parent@School.example\r\n\
        Final-Recipient: rfc822; parent@school.example\r\n\
        Action: failed\r\n\
        Status: 5.1.1\r\n\
        Remote-MTA: dns; mx.school.example\r\n\
        Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach\r\n  \
        does not exist\r\n\
        \r\n\
        Final-Recipient: rfc822; full@school.example\r\n\
        Action: failed (mailbox full)\r\n\
        Status: 5.2.2\r\n\
        \r\n\
        Final-Recipient: rfc822; slow@school.example\r\n\
        Action: delayed\r\n\
        Status: 4.4.1\r\n\
        \r\n\
        Final-Recipient: x400; not-an-address\r\n\
        Action: failed\r\n";

    #[test]
    fn reads_each_recipient_block() {
        let r = dsn_recipients(DSN);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].recipient.as_str(), "Parent@school.example");
        assert_eq!(r[0].action, DsnAction::Failed);
        assert_eq!(r[0].status.unwrap().to_string(), "5.1.1");
        assert_eq!(r[0].reply_code, Some(550));
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("550 5.1.1 The email account that you tried to reach does not exist")
        );
        assert_eq!(r[0].remote_mta.as_deref(), Some("mx.school.example"));
        assert_eq!(r[0].bounce(), Bounce::Failed { suppress: true });
        // Mailbox full is a soft code: failed, not suppressed.
        assert_eq!(r[1].action, DsnAction::Failed);
        assert_eq!(r[1].bounce(), Bounce::Failed { suppress: false });
        assert_eq!(r[2].bounce(), Bounce::Delayed);
    }

    #[test]
    fn control_characters_and_oversize_text_do_not_get_through() {
        let long = "x".repeat(5000);
        let r = dsn_recipients(&format!(
            "Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n\
             Remote-MTA: dns; mx\0.b.example\nDiagnostic-Code: smtp; 550 5.1.1 no\0such\ruser {long}\n"
        ));
        let d = r[0].diagnostic.as_deref().unwrap();
        assert!(d.starts_with("550 5.1.1 no such user xxx"), "{d}");
        assert_eq!(d.chars().count(), MAX_DIAGNOSTIC);
        assert_eq!(r[0].remote_mta.as_deref(), Some("mx .b.example"));
        assert_eq!(r[0].reply_code, Some(550));
        let (kind, _, agent) =
            feedback_fields(&format!("Feedback-Type: abuse\0\nUser-Agent: {long}\n")).unwrap();
        assert_eq!(kind, "abuse");
        assert_eq!(agent.unwrap().len(), MAX_FIELD);
        // An address with a control character is no address.
        assert!(
            dsn_recipients("Final-Recipient: rfc822; a\0@b.example\nAction: failed\n").is_empty()
        );
    }

    #[test]
    fn a_policy_failure_is_not_the_recipients_fault() {
        let r =
            dsn_recipients("Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.7.1\n");
        assert_eq!(r[0].bounce(), Bounce::Failed { suppress: false });
    }

    #[test]
    fn reads_a_feedback_report() {
        let (kind, rcpts, agent) = feedback_fields(
            "Feedback-Type: abuse\r\nUser-Agent: SomeISP-FBL/1.0\r\nVersion: 1\r\n\
             Original-Mail-From: <bounces@district.example>\r\n\
             Original-Rcpt-To: <parent@school.example>\r\n\
             Original-Rcpt-To: other@school.example\r\n",
        )
        .unwrap();
        assert_eq!(kind, "abuse");
        assert_eq!(agent.as_deref(), Some("SomeISP-FBL/1.0"));
        let r: Vec<_> = rcpts.iter().map(|a| a.as_str()).collect();
        assert_eq!(r, ["parent@school.example", "other@school.example"]);
        assert!(feedback_fields("Version: 1\r\n").is_none());
    }

    #[test]
    fn finds_herald_messages_by_header_or_generated_message_id() {
        let id = MessageId::new();
        let by_id = OriginalMessage {
            message_id_header: Some(format!("{id}@district.example")),
            ..Default::default()
        };
        assert_eq!(by_id.herald_message(), Some(id));
        let foreign = OriginalMessage {
            message_id_header: Some("abc@elsewhere.example".into()),
            ..Default::default()
        };
        assert_eq!(foreign.herald_message(), None);
    }
}
