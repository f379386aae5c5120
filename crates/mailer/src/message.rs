//! Building a message with lettre from values already parsed into domain
//! types (lettre panics on a display name with CR or LF; ours cannot hold one).

use herald_domain::{DisplayName, EmailAddress};
use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the message: {0}")]
pub struct MessageError(String);

fn address(a: &EmailAddress) -> Result<Address, MessageError> {
    Address::new(a.local_part(), a.domain()).map_err(|e| MessageError(e.to_string()))
}

fn mailbox(name: Option<&DisplayName>, a: &EmailAddress) -> Result<Mailbox, MessageError> {
    Ok(Mailbox::new(name.map(|n| n.to_string()), address(a)?))
}

/// A plain-text test message.
pub struct TestMessage<'a> {
    pub from: &'a EmailAddress,
    pub from_name: Option<&'a DisplayName>,
    pub to: &'a EmailAddress,
    pub subject: &'a str,
    pub text: String,
}

impl TestMessage<'_> {
    /// The envelope and the RFC 5322 bytes.
    pub fn build(&self) -> Result<(Envelope, Vec<u8>), MessageError> {
        let msg = Message::builder()
            .from(mailbox(self.from_name, self.from)?)
            .to(mailbox(None, self.to)?)
            .subject(self.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.clone())
            .map_err(|e| MessageError(e.to_string()))?;
        let envelope = Envelope::new(Some(address(self.from)?), vec![address(self.to)?])
            .map_err(|e| MessageError(e.to_string()))?;
        Ok((envelope, msg.formatted()))
    }
}

/// One attachment, already checked (name, MIME type).
pub struct AttachmentPart<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
    /// Shown in the body (referenced as `cid:<filename>`), not listed.
    pub inline: bool,
}

/// A message as submitted, every part already parsed into domain types.
pub struct Outgoing<'a> {
    pub from: &'a herald_domain::message::Mailbox,
    pub reply_to: Option<&'a herald_domain::message::Mailbox>,
    pub to: &'a [herald_domain::message::Mailbox],
    pub cc: &'a [herald_domain::message::Mailbox],
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    pub headers: &'a [(
        herald_domain::message::HeaderName,
        herald_domain::message::HeaderValue,
    )],
    pub attachments: &'a [AttachmentPart<'a>],
    /// Without angle brackets.
    pub message_id: &'a str,
}

fn domain_mailbox(m: &herald_domain::message::Mailbox) -> Result<Mailbox, MessageError> {
    mailbox(m.name.as_ref(), &m.address)
}

impl Outgoing<'_> {
    /// The RFC 5322 bytes (Bcc recipients are in the envelope only).
    pub fn build(&self) -> Result<Vec<u8>, MessageError> {
        use lettre::message::header::{HeaderName, HeaderValue};
        use lettre::message::{Attachment, MultiPart, SinglePart};
        let err = |e: &dyn std::fmt::Display| MessageError(e.to_string());
        let mut b = Message::builder()
            .from(domain_mailbox(self.from)?)
            .subject(self.subject)
            .message_id(Some(format!("<{}>", self.message_id)));
        if let Some(r) = self.reply_to {
            b = b.reply_to(domain_mailbox(r)?);
        }
        for m in self.to {
            b = b.to(domain_mailbox(m)?);
        }
        for m in self.cc {
            b = b.cc(domain_mailbox(m)?);
        }
        for (name, value) in self.headers {
            let name = HeaderName::new_from_ascii(name.as_str().to_owned()).map_err(|e| err(&e))?;
            b = b.raw_header(HeaderValue::new(name, value.as_str().to_owned()));
        }
        let text = |t: &str| SinglePart::plain(t.to_owned());
        let html = |h: &str| SinglePart::html(h.to_owned());
        let message = if self.attachments.is_empty() {
            match (self.text, self.html) {
                (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(
                    t.to_owned(),
                    h.to_owned(),
                )),
                (None, Some(h)) => b.singlepart(html(h)),
                (Some(t), None) => b.singlepart(text(t)),
                (None, None) => b.singlepart(text("")),
            }
        } else {
            // Built only here: encoding a body part is most of the cost of
            // building a message.
            let body = match (self.text, self.html) {
                (Some(t), Some(h)) => MultiPart::alternative()
                    .singlepart(text(t))
                    .singlepart(html(h)),
                (None, Some(h)) => MultiPart::mixed().singlepart(html(h)),
                (Some(t), None) => MultiPart::mixed().singlepart(text(t)),
                (None, None) => MultiPart::mixed().singlepart(text("")),
            };
            let mut mixed = MultiPart::mixed().multipart(body);
            for a in self.attachments {
                let ct = ContentType::parse(a.content_type).map_err(|e| err(&e))?;
                let part = if a.inline {
                    Attachment::new_inline(a.filename.to_owned()).body(a.bytes.to_vec(), ct)
                } else {
                    Attachment::new(a.filename.to_owned()).body(a.bytes.to_vec(), ct)
                };
                mixed = mixed.singlepart(part);
            }
            b.multipart(mixed)
        }
        .map_err(|e| err(&e))?;
        Ok(message.formatted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::message::{HeaderName, HeaderValue, Mailbox as M};

    #[test]
    fn a_full_message_is_well_formed() {
        let from = M::parse("from", "Ms Teacher <teacher@school.example>").unwrap();
        let to = vec![M::parse("to", "\"Parent, A\" <parent@home.example>").unwrap()];
        let headers = vec![(
            HeaderName::parse("X-Campaign").unwrap(),
            HeaderValue::parse("term-1").unwrap(),
        )];
        let pdf = AttachmentPart {
            filename: "report.pdf",
            content_type: "application/pdf",
            bytes: b"%PDF-1.4",
            inline: false,
        };
        let out = Outgoing {
            from: &from,
            reply_to: None,
            to: &to,
            cc: &[],
            subject: "Report card: Ünïcode",
            text: Some("Hello"),
            html: Some("<p>Hello</p>"),
            headers: &headers,
            attachments: &[pdf],
            message_id: "0190@school.example",
        }
        .build()
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        for part in [
            "From: \"Ms Teacher\" <teacher@school.example>",
            "Message-ID: <0190@school.example>",
            "X-Campaign: term-1",
            "multipart/mixed",
            "multipart/alternative",
            "filename=\"report.pdf\"",
            "Subject: Report card: =?utf-8?b?",
        ] {
            assert!(text.contains(part), "{part} missing:\n{text}");
        }
        assert!(!text.contains("Bcc"));
    }
}
