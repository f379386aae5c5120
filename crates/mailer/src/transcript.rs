//! The SMTP conversation of a test send, as the admin will read it: what the
//! client said (`C:`) and what the server answered (`S:`), with AUTH
//! payloads masked and the message body summarised.

/// An SMTP reply: `code`, the enhanced status code when the server gave one
/// (RFC 3463, e.g. `5.7.139`), and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

impl Reply {
    /// A reply from its code and text; the enhanced code is the text's
    /// first word when it has the reply's class.
    pub fn new(code: u16, text: String) -> Reply {
        let enhanced = text
            .split_whitespace()
            .next()
            .filter(|tok| is_enhanced(tok, code))
            .map(str::to_owned);
        Reply {
            code,
            enhanced,
            text,
        }
    }

    /// Parses the lines of one reply (`250-…` continuation lines, then `250 …`).
    pub fn parse(lines: &[String]) -> Option<Reply> {
        let first = lines.first()?;
        let code: u16 = first.get(..3)?.parse().ok()?;
        let texts: Vec<&str> = lines
            .iter()
            .map(|l| l.get(4..).unwrap_or_default())
            .collect();
        let enhanced = texts
            .first()
            .and_then(|t| t.split_whitespace().next())
            .filter(|tok| is_enhanced(tok, code))
            .map(str::to_owned);
        Some(Reply {
            code,
            enhanced,
            text: texts.join(" "),
        })
    }
}

/// `class.subject.detail` whose class matches the reply's first digit.
fn is_enhanced(tok: &str, code: u16) -> bool {
    let parts: Vec<&str> = tok.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0].parse::<u16>().ok() == Some(code / 100)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Commands,
    /// After AUTH: client lines are credentials until the exchange ends.
    Auth,
    /// After DATA was accepted: the message body, until the lone dot.
    Body {
        bytes: usize,
    },
}

/// A recorded conversation.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    lines: Vec<String>,
    client_partial: Vec<u8>,
    server_partial: Vec<u8>,
    reply_lines: Vec<String>,
    last_reply: Option<Reply>,
    state: Option<ClientState>,
    awaiting_data_reply: bool,
    last_verb: String,
    /// The last 4xx/5xx reply and the command it answered.
    refusal: Option<(Reply, String)>,
}

const MASK: &str = "********";

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The last complete reply the server sent.
    #[cfg(test)]
    pub fn last_reply(&self) -> Option<&Reply> {
        self.last_reply.as_ref()
    }

    /// The last 4xx or 5xx reply and the step whose command it answered
    /// (lettre sends QUIT after a refusal, so the last reply is not it).
    pub fn refusal(&self) -> Option<(Reply, crate::Stage)> {
        self.refusal
            .as_ref()
            .map(|(r, verb)| (r.clone(), stage_of(verb)))
    }
}

fn stage_of(verb: &str) -> crate::Stage {
    {
        match verb {
            "RCPT" => crate::Stage::RcptTo,
            "DATA" => crate::Stage::Data,
            "AUTH" => crate::Stage::Auth,
            "STARTTLS" => crate::Stage::Starttls,
            "EHLO" | "HELO" | "" => crate::Stage::Greeting,
            _ => crate::Stage::MailFrom,
        }
    }
}

impl Transcript {
    /// A remark of Herald's own (`*`), such as a TLS handshake.
    pub fn note(&mut self, line: &str) {
        self.lines.push(format!("* {line}"));
    }

    fn state(&self) -> ClientState {
        self.state.unwrap_or(ClientState::Commands)
    }

    pub fn client_bytes(&mut self, data: &[u8]) {
        self.client_partial.extend_from_slice(data);
        while let Some(pos) = self.client_partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.client_partial.drain(..pos + 2).take(pos).collect();
            self.client_line(&String::from_utf8_lossy(&line));
        }
    }

    fn client_line(&mut self, line: &str) {
        match self.state() {
            ClientState::Body { bytes } => {
                if line == "." {
                    self.last_verb = "DATA".into();
                    self.lines.push(format!("C: [message body, {bytes} bytes]"));
                    self.lines.push("C: .".to_owned());
                    self.state = Some(ClientState::Commands);
                } else {
                    self.state = Some(ClientState::Body {
                        bytes: bytes + line.len() + 2,
                    });
                }
            }
            ClientState::Auth => self.lines.push(format!("C: {MASK}")),
            ClientState::Commands => {
                let upper = line.to_ascii_uppercase();
                self.last_verb = upper
                    .split([' ', ':'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if upper.starts_with("AUTH ") {
                    // Keep the mechanism, mask any initial response.
                    let mechanism = line.split_whitespace().nth(1).unwrap_or_default();
                    let masked = if line.split_whitespace().count() > 2 {
                        format!("C: AUTH {mechanism} {MASK}")
                    } else {
                        format!("C: AUTH {mechanism}")
                    };
                    self.lines.push(masked);
                    self.state = Some(ClientState::Auth);
                } else {
                    if upper == "DATA" {
                        self.awaiting_data_reply = true;
                    }
                    self.lines.push(format!("C: {line}"));
                }
            }
        }
    }

    pub fn server_bytes(&mut self, data: &[u8]) {
        self.server_partial.extend_from_slice(data);
        while let Some(pos) = self.server_partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.server_partial.drain(..pos + 2).take(pos).collect();
            self.server_line(String::from_utf8_lossy(&line).into_owned());
        }
    }

    fn server_line(&mut self, line: String) {
        self.lines.push(format!("S: {line}"));
        let last = line.as_bytes().get(3) != Some(&b'-');
        self.reply_lines.push(line);
        if !last {
            return;
        }
        let reply = Reply::parse(&std::mem::take(&mut self.reply_lines));
        if let Some(r) = &reply {
            if r.code >= 400 {
                self.refusal = Some((r.clone(), self.last_verb.clone()));
            }
            match (self.state(), r.code) {
                (ClientState::Auth, 334) => {}
                (ClientState::Auth, _) => self.state = Some(ClientState::Commands),
                (ClientState::Commands, 354) if self.awaiting_data_reply => {
                    self.state = Some(ClientState::Body { bytes: 0 });
                }
                _ => {}
            }
            self.awaiting_data_reply = false;
        }
        self.last_reply = reply;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_masked_and_the_body_summarised() {
        let mut t = Transcript::new();
        t.server_bytes(b"220 mx.example ESMTP\r\n");
        t.client_bytes(b"EHLO herald.example\r\n");
        t.server_bytes(b"250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n");
        t.client_bytes(b"AUTH PLAIN AGFkYQBzZWNyZXQ=\r\n");
        t.server_bytes(b"235 2.7.0 ok\r\n");
        t.client_bytes(b"AUTH LOGIN\r\n");
        t.server_bytes(b"334 VXNlcm5hbWU6\r\n");
        t.client_bytes(b"YWRh\r\n");
        t.server_bytes(b"334 UGFzc3dvcmQ6\r\n");
        t.client_bytes(b"c2VjcmV0\r\n");
        t.server_bytes(b"535 5.7.139 Authentication unsuccessful\r\n");
        t.client_bytes(b"MAIL FROM:<a@b.example>\r\n");
        t.server_bytes(b"250 ok\r\n");
        t.client_bytes(b"DATA\r\n");
        t.server_bytes(b"354 go\r\n");
        t.client_bytes(b"Subject: hi\r\n\r\nbody line\r\n.\r\n");
        t.server_bytes(b"250 2.0.0 queued\r\n");
        let all = t.lines().join("\n");
        assert!(
            !all.contains("AGFkYQBzZWNyZXQ=") && !all.contains("c2VjcmV0") && !all.contains("YWRh")
        );
        assert!(all.contains("C: AUTH PLAIN ********"));
        assert!(all.contains("C: [message body, 26 bytes]"));
        assert!(!all.contains("body line"));
        let r = t.last_reply().unwrap();
        assert_eq!((r.code, r.enhanced.as_deref()), (250, Some("2.0.0")));
    }

    #[test]
    fn replies_parse_enhanced_codes_only_when_they_match() {
        let r = Reply::parse(&["535 5.7.139 Authentication unsuccessful".into()]).unwrap();
        assert_eq!(r.enhanced.as_deref(), Some("5.7.139"));
        let r = Reply::parse(&["550 4.1.1 mismatched".into()]).unwrap();
        assert_eq!(r.enhanced, None);
        let r = Reply::parse(&["250-first".into(), "250 second".into()]).unwrap();
        assert_eq!(r.text, "first second");
        assert!(Reply::parse(&["xyz".into()]).is_none());
    }
}
