//! Building a message with lettre from values already parsed into domain
//! types (lettre panics on a display name with CR or LF; ours cannot hold one).

use herald_domain::{DisplayName, EmailAddress};
use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::header::ContentType;
use lettre::message::{Body, Mailbox};

#[derive(Debug, thiserror::Error)]
#[error("cannot build the message: {0}")]
pub struct MessageError(String);

fn address(a: &EmailAddress) -> Result<Address, MessageError> {
    Address::new(a.local_part(), a.domain()).map_err(|e| MessageError(e.to_string()))
}

fn mailbox(name: Option<&DisplayName>, a: &EmailAddress) -> Result<Mailbox, MessageError> {
    Ok(Mailbox::new(name.map(|n| n.to_string()), address(a)?))
}

/// `text` with CRLF line endings, made in one pass, as a body lettre
/// encodes as it would the text itself. Given a `String`, lettre inserts a
/// CR before each bare LF one `String::insert` at a time, each moving the
/// rest of the text: quadratic in its lines (see the test below). Given
/// bytes, it leaves line endings alone and encodes ASCII exactly as it
/// would the same `String`, without walking it character by character
/// (non-ASCII bytes would be base64 where text gets quoted-printable, so
/// that stays a `String`, with nothing left to insert).
fn text_body(text: &str) -> Body {
    let crlf = with_crlf(text);
    if crlf.is_ascii() {
        Body::new(crlf.into_bytes())
    } else {
        Body::new(crlf)
    }
}

/// `text` with a CR before every LF that has none.
fn with_crlf(text: &str) -> String {
    let bytes = text.as_bytes();
    let bare = |&i: &usize| i == 0 || bytes[i - 1] != b'\r';
    let missing = memchr::memchr_iter(b'\n', bytes).filter(bare).count();
    let mut out = String::with_capacity(text.len() + missing);
    let mut from = 0;
    for i in memchr::memchr_iter(b'\n', bytes).filter(bare) {
        // An LF is one byte of its own in UTF-8: `i` is a char boundary.
        out.push_str(&text[from..i]);
        out.push('\r');
        from = i;
    }
    out.push_str(&text[from..]);
    out
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
            .body(text_body(&self.text))
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
        let text = |t: &str| SinglePart::plain(text_body(t));
        let html = |h: &str| SinglePart::html(text_body(h));
        let alternative = |t: &str, h: &str| {
            MultiPart::alternative()
                .singlepart(text(t))
                .singlepart(html(h))
        };
        let message = if self.attachments.is_empty() {
            match (self.text, self.html) {
                (Some(t), Some(h)) => b.multipart(alternative(t, h)),
                (None, Some(h)) => b.singlepart(html(h)),
                (Some(t), None) => b.singlepart(text(t)),
                (None, None) => b.singlepart(text("")),
            }
        } else {
            // Built only here: encoding a body part is most of the cost of
            // building a message.
            let body = match (self.text, self.html) {
                (Some(t), Some(h)) => alternative(t, h),
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

    #[test]
    fn bare_line_feeds_get_a_carriage_return_and_nothing_else_changes() {
        for (given, wanted) in [
            ("", ""),
            ("one line", "one line"),
            ("a\nb", "a\r\nb"),
            ("a\r\nb", "a\r\nb"),
            ("\n", "\r\n"),
            ("\n\n", "\r\n\r\n"),
            ("\r\n\n", "\r\n\r\n"),
            ("a\rb\n", "a\rb\r\n"),
            ("Grüße\nAnaïs\r\n", "Grüße\r\nAnaïs\r\n"),
        ] {
            assert_eq!(with_crlf(given), wanted, "{given:?}");
        }
    }

    /// The bytes and transfer encoding lettre gives the same text with CRLF
    /// line endings, for text of every kind it encodes differently.
    #[test]
    fn a_text_body_is_encoded_as_lettre_encodes_the_text() {
        let long = "word ".repeat(40);
        for text in [
            "Dear parent,\r\n\r\nThe report card is attached.\r\n",
            "Dear parent,\n\nThe report card is attached.\n",
            "Liebe Eltern,\nGrüße aus der Schule\n",
            long.as_str(),
            "\u{1F4E8} only",
            "",
        ] {
            let ours = text_body(text);
            let theirs = Body::new(with_crlf(text));
            assert_eq!(ours.encoding(), theirs.encoding(), "{text:?}");
            assert_eq!(ours.as_ref(), theirs.as_ref(), "{text:?}");
        }
    }

    #[test]
    fn a_long_text_with_bare_line_feeds_arrives_with_crlf_line_endings() {
        let from = M::parse("from", "office@school.example").unwrap();
        let to = vec![M::parse("to", "parent@home.example").unwrap()];
        let line = "The term's marks are below, with the teacher's remarks.";
        let text = format!("{line}\n").repeat(20_000);
        let html = format!("<p>{line}</p>\n").repeat(20_000);
        let out = Outgoing {
            from: &from,
            reply_to: None,
            to: &to,
            cc: &[],
            subject: "Marks",
            text: Some(&text),
            html: Some(&html),
            headers: &[],
            attachments: &[],
            message_id: "0191@school.example",
        }
        .build()
        .unwrap();
        let lf = memchr::memchr_iter(b'\n', &out).count();
        let crlf = memchr::memmem::find_iter(&out, b"\r\n").count();
        assert_eq!(lf, crlf, "every line ends in CRLF");
        let body = String::from_utf8(out).unwrap();
        assert_eq!(body.matches(&format!("{line}\r\n")).count(), 20_000);
        assert_eq!(body.matches(&format!("<p>{line}</p>\r\n")).count(), 20_000);
    }
}
