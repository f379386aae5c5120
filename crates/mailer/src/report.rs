//! Takes a message from a bounce mailbox apart: a `multipart/report` with a
//! `message/delivery-status` part (RFC 3464) or a `message/feedback-report`
//! part (RFC 5965), and the returned original (a `message/rfc822` or
//! `text/rfc822-headers` part) that says which message it is about.
//! Anything else (auto-replies, people writing back) is not a report.

use herald_domain::report::{dsn_recipients, feedback_fields};
use herald_domain::{EmailAddress, MailReport, OriginalMessage};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// The report in `raw`, if it is one Herald understands.
pub fn parse_report(raw: &[u8]) -> Option<MailReport> {
    let parser = MessageParser::default();
    let msg = parser.parse(raw)?;
    let mut status = None;
    let mut feedback = None;
    let mut original = OriginalMessage::default();
    for part in &msg.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let ctype = ct.ctype().to_ascii_lowercase();
        let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        match (ctype.as_str(), sub.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                status = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            ("message", "feedback-report") => {
                feedback = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            ("message", "rfc822" | "global") => {
                if let PartType::Message(m) = &part.body {
                    original = original_of(m);
                }
            }
            ("text", "rfc822-headers" | "global-headers") => {
                if let Some(m) = part
                    .text_contents()
                    .and_then(|t| parser.parse_headers(t.as_bytes()))
                {
                    original = original_of(&m);
                }
            }
            _ => {}
        }
    }
    if let Some(text) = feedback {
        let (feedback_type, recipients, user_agent) = feedback_fields(&text)?;
        return Some(MailReport::Feedback {
            original,
            feedback_type,
            recipients,
            user_agent,
        });
    }
    let recipients = dsn_recipients(&status?);
    (!recipients.is_empty()).then_some(MailReport::Delivery {
        original,
        recipients,
    })
}

/// What the returned original says about itself.
fn original_of(m: &Message<'_>) -> OriginalMessage {
    let herald_id = m
        .header("X-Herald-Message")
        .and_then(|v| v.as_text())
        .and_then(|t| t.trim().parse().ok());
    let message_id_header = m.message_id().map(|id| id.trim().to_owned());
    let to = m
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|a| a.address())
                .filter_map(|a| EmailAddress::parse(a).ok())
                .collect()
        })
        .unwrap_or_default();
    OriginalMessage {
        herald_id,
        message_id_header,
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{Bounce, MessageId};

    fn dsn(original_part: &str) -> String {
        format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n\
             To: bounces@district.example\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
             \r\n\
             --B\r\n\
             Content-Type: text/plain\r\n\
             \r\n\
             I'm sorry to have to inform you that your message could not be delivered.\r\n\
             --B\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; mx.example.org\r\n\
             \r\n\
             Final-Recipient: rfc822; parent@school.example\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <parent@school.example>: Recipient address rejected\r\n\
             \r\n\
             --B\r\n\
             {original_part}\r\n\
             --B--\r\n"
        )
    }

    #[test]
    fn a_postfix_style_bounce_with_returned_headers() {
        let id = MessageId::new();
        let raw = dsn(&format!(
            "Content-Type: text/rfc822-headers\r\n\r\n\
             From: office@district.example\r\n\
             To: parent@school.example\r\n\
             Subject: Report card\r\n\
             Message-ID: <{id}@district.example>\r\n\
             X-Herald-Message: {id}\r\n"
        ));
        let Some(MailReport::Delivery {
            original,
            recipients,
        }) = parse_report(raw.as_bytes())
        else {
            panic!("not read as a delivery report");
        };
        assert_eq!(original.herald_message(), Some(id));
        assert_eq!(recipients.len(), 1);
        assert_eq!(recipients[0].recipient.as_str(), "parent@school.example");
        assert_eq!(recipients[0].bounce(), Bounce::Failed { suppress: true });
    }

    #[test]
    fn a_bounce_returning_the_whole_message() {
        let id = MessageId::new();
        let raw = dsn(&format!(
            "Content-Type: message/rfc822\r\n\r\n\
             From: office@district.example\r\n\
             To: parent@school.example\r\n\
             Message-ID: <{id}@district.example>\r\n\
             Subject: Report card\r\n\r\n\
             Hello\r\n"
        ));
        let report = parse_report(raw.as_bytes()).unwrap();
        assert_eq!(report.original().herald_message(), Some(id));
    }

    #[test]
    fn an_arf_complaint() {
        let id = MessageId::new();
        let raw = format!(
            "From: feedback@isp.example\r\n\
             To: bounces@district.example\r\n\
             Subject: Abuse report\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\
             \r\n\
             --F\r\n\
             Content-Type: text/plain\r\n\
             \r\n\
             This is an email abuse report.\r\n\
             --F\r\n\
             Content-Type: message/feedback-report\r\n\
             \r\n\
             Feedback-Type: abuse\r\n\
             User-Agent: ISP-FBL/2.0\r\n\
             Version: 1\r\n\
             \r\n\
             --F\r\n\
             Content-Type: message/rfc822\r\n\
             \r\n\
             From: office@district.example\r\n\
             To: Parent <parent@school.example>\r\n\
             Message-ID: <{id}@district.example>\r\n\
             \r\n\
             Hello\r\n\
             --F--\r\n"
        );
        let Some(MailReport::Feedback {
            original,
            feedback_type,
            recipients,
            user_agent,
        }) = parse_report(raw.as_bytes())
        else {
            panic!("not read as a feedback report");
        };
        assert_eq!(feedback_type, "abuse");
        assert!(recipients.is_empty());
        assert_eq!(user_agent.as_deref(), Some("ISP-FBL/2.0"));
        assert_eq!(original.herald_message(), Some(id));
        assert_eq!(original.to[0].as_str(), "parent@school.example");
    }

    #[test]
    fn ordinary_mail_is_not_a_report() {
        assert!(
            parse_report(b"From: a@b.example\r\nSubject: Out of office\r\n\r\nAway\r\n").is_none()
        );
        assert!(parse_report(b"").is_none());
        assert!(parse_report(b"\x00\xff garbage").is_none());
    }
}
