//! What a submitter hands Herald, parsed field by field before anything is
//! stored or given to lettre: mailboxes and comma lists of them, extra
//! headers, tags, user variables, attachments, a delivery time.

use std::collections::BTreeMap;

use crate::text::{refuse_control_chars, single_line};
use crate::{DisplayName, EmailAddress, InvalidInput, Timestamp};

/// `"Name" <address>` or a bare address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<DisplayName>,
    pub address: EmailAddress,
}

impl Mailbox {
    /// Parses `addr`, `<addr>`, `Name <addr>` or `"Name, Title" <addr>`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidInput> {
        refuse_control_chars(field, value)?;
        let v = value.trim();
        let (name, addr) = match (v.rfind('<'), v.ends_with('>')) {
            (Some(open), true) => (v[..open].trim(), &v[open + 1..v.len() - 1]),
            (None, false) => ("", v),
            _ => {
                return Err(InvalidInput::new(
                    field,
                    format!("{value:?} has an unbalanced <address>"),
                ));
            }
        };
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or(name)
            .replace("\\\"", "\"");
        let address = EmailAddress::parse(addr).map_err(|e| e.at(field))?;
        let name = match name.trim() {
            "" => None,
            n => Some(DisplayName::parse(n).map_err(|e| e.at(field))?),
        };
        Ok(Self { name, address })
    }

    /// Parses a comma-separated list, commas inside quotes or `<…>` aside.
    pub fn parse_list(field: &'static str, value: &str) -> Result<Vec<Self>, InvalidInput> {
        let mut out = Vec::new();
        let (mut quoted, mut angle, mut start) = (false, false, 0);
        let bytes = value.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'"' if i == 0 || bytes[i - 1] != b'\\' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => {
                    push_part(field, &value[start..i], &mut out)?;
                    start = i + 1;
                }
                _ => {}
            }
        }
        if quoted {
            return Err(InvalidInput::new(field, "has an unclosed quote"));
        }
        push_part(field, &value[start..], &mut out)?;
        Ok(out)
    }
}

fn push_part(field: &'static str, part: &str, out: &mut Vec<Mailbox>) -> Result<(), InvalidInput> {
    if !part.trim().is_empty() {
        out.push(Mailbox::parse(field, part)?);
    }
    Ok(())
}

/// Headers Herald writes itself; a submitter sets them through their own
/// fields (from, to, subject…) or the sender policy, never as `h:` headers.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "reply-to",
    "sender",
    "return-path",
    "received",
    "dkim-signature",
];

/// An extra header's name: RFC 5322 §3.6.8 printable ASCII without ':',
/// at most 76 characters, and not one Herald writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeaderName(String);

impl HeaderName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let ok = !value.is_empty()
            && value.len() <= 76
            && value.bytes().all(|b| (33..=126).contains(&b) && b != b':');
        if !ok {
            return Err(InvalidInput::new(
                "header",
                format!("{value:?} is not a header name (printable ASCII, no colon, ≤ 76)"),
            ));
        }
        if RESERVED.contains(&value.to_ascii_lowercase().as_str()) {
            return Err(InvalidInput::new(
                "header",
                format!("{value} is set by Herald (use the message's own field)"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An extra header's value: one line (no CR, LF, NUL or other control
/// character but tab), at most 998 octets (RFC 5322 §2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValue(String);

impl HeaderValue {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(InvalidInput::new(
                "header",
                format!("a header value must not contain U+{:04X}", c as u32),
            ));
        }
        if value.len() > 998 {
            return Err(InvalidInput::new(
                "header",
                "a header value is longer than 998 octets",
            ));
        }
        Ok(Self(value.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subject line: control characters refused, at most 998 octets.
pub fn parse_subject(value: &str) -> Result<String, InvalidInput> {
    refuse_control_chars("subject", value)?;
    if value.len() > 998 {
        return Err(InvalidInput::new("subject", "is longer than 998 octets"));
    }
    Ok(value.trim().to_owned())
}

/// A tag (`o:tag`): printable ASCII, 1–128 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub const MAX_PER_MESSAGE: usize = 10;

    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let v = value.trim();
        if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| (32..=126).contains(&b)) {
            return Err(InvalidInput::new(
                "o:tag",
                format!("{value:?} is not a tag (1–128 printable ASCII characters)"),
            ));
        }
        Ok(Self(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// User variables (`v:name`): names of letters, digits, `_` and `-` (≤ 128),
/// values of at most 4 KB in all; returned with every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserVariables(BTreeMap<String, String>);

impl UserVariables {
    pub const MAX_TOTAL_BYTES: usize = 4096;

    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), InvalidInput> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(InvalidInput::new(
                "v:",
                format!("{name:?} is not a variable name"),
            ));
        }
        if value.contains('\0') {
            return Err(InvalidInput::new("v:", "a variable must not contain NUL"));
        }
        self.0.insert(name.to_owned(), value.to_owned());
        let total: usize = self.0.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > Self::MAX_TOTAL_BYTES {
            return Err(InvalidInput::new("v:", "user variables exceed 4 KB in all"));
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An attachment's file name: one line, no path separators, ≤ 255 octets.
pub fn parse_file_name(value: &str) -> Result<String, InvalidInput> {
    let name = single_line("filename", value, 255)?;
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(InvalidInput::new(
            "filename",
            format!("{value:?} is not a plain file name"),
        ));
    }
    Ok(name)
}

/// A MIME type `type/subtype` of RFC 2045 tokens, lowercased.
pub fn parse_content_type(value: &str) -> Result<String, InvalidInput> {
    let v = value.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match v.split_once('/') {
        Some((t, s)) if token(t) && token(s) => Ok(v),
        _ => Err(InvalidInput::new(
            "content_type",
            format!("{value:?} is not a MIME type"),
        )),
    }
}

/// `o:deliverytime`: an RFC 2822 date ("Thu, 13 Oct 2026 18:02:00 +0000").
pub fn parse_delivery_time(value: &str) -> Result<Timestamp, InvalidInput> {
    let v = value.trim();
    chrono::DateTime::parse_from_rfc2822(v)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(v))
        .map(|t| Timestamp::from_micros(t.timestamp_micros()))
        .map_err(|_| {
            InvalidInput::new(
                "o:deliverytime",
                format!("{value:?} is not an RFC 2822 or RFC 3339 date"),
            )
        })
}

/// Fills `%recipient.NAME%` in a batch-sent copy with that recipient's
/// variable (Mailgun's recipient variables); a name the recipient has no
/// value for becomes empty.
pub fn fill_recipient_variables(
    template: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> String {
    const OPEN: &str = "%recipient.";
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        match after.find('%') {
            Some(end)
                if after[..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                if let Some(v) = vars.get(&after[..end]) {
                    out.push_str(v);
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The most recipients (to + cc + bcc) one message may have.
pub const MAX_RECIPIENTS: usize = 1000;

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
