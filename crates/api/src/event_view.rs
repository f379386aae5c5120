//! How an event looks to readers: Mailgun's item shape (for /v3 and
//! /api/v1), and the columns of the CSV report.

use herald_domain::{EventKind, EventRecord, Severity};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

fn parsed(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// Mailgun's log level: `error` for what will not be delivered, `warn` for
/// what will be tried again, `info` otherwise.
fn log_level(kind: EventKind, severity: Option<Severity>) -> &'static str {
    match (kind, severity) {
        (EventKind::Rejected, _) => "error",
        (EventKind::Failed, Some(Severity::Temporary)) => "warn",
        (EventKind::Failed, _) => "error",
        (EventKind::ReauthRequired | EventKind::Paused, _) => "warn",
        _ => "info",
    }
}

/// Stored JSON (written by Herald) passed through without being rebuilt;
/// anything unreadable becomes `fallback`.
fn raw<'a>(text: Option<&'a str>, fallback: &'static str) -> &'a RawValue {
    text.and_then(|t| serde_json::from_str::<&RawValue>(t).ok())
        .unwrap_or_else(|| serde_json::from_str(fallback).expect("a JSON literal"))
}

#[derive(Serialize)]
struct Envelope<'a> {
    sender: &'a str,
    targets: Option<String>,
    transport: &'static str,
}

#[derive(Serialize)]
struct MessagePart<'a> {
    headers: &'a RawValue,
    attachments: [(); 0],
    size: u64,
}

#[derive(Serialize)]
struct Flags {
    #[serde(rename = "is-test-mode")]
    is_test_mode: bool,
}

#[derive(Serialize)]
struct Reject<'a> {
    reason: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct Own<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a RawValue>,
}

/// One event as Mailgun's Events API writes it. Herald's own fields
/// (message id, identity, profile, description) ride along under `herald`.
/// It borrows from the record and passes the stored JSON (headers, tags,
/// user variables, delivery status) through as it is.
#[derive(Serialize)]
pub struct MailgunItem<'a> {
    id: String,
    event: &'static str,
    timestamp: f64,
    #[serde(rename = "log-level")]
    log_level: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<String>,
    #[serde(rename = "recipient-domain", skip_serializing_if = "Option::is_none")]
    recipient_domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
    tags: &'a RawValue,
    #[serde(rename = "user-variables")]
    user_variables: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    envelope: Option<Envelope<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<MessagePart<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<Flags>,
    #[serde(rename = "delivery-status", skip_serializing_if = "Option::is_none")]
    delivery_status: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reject: Option<Reject<'a>>,
    herald: Own<'a>,
}

/// A stored delivery status with Mailgun's `description` added (when the
/// status does not carry one already).
fn delivery_status(detail: Option<&str>, description: Option<&str>) -> Box<RawValue> {
    let body = detail
        .map(str::trim)
        .filter(|d| d.starts_with('{') && d.ends_with('}'))
        .unwrap_or("{}");
    let inner = body[1..body.len() - 1].trim();
    let text = if inner.is_empty() {
        format!(
            "{{\"description\":{}}}",
            serde_json::to_string(description.unwrap_or_default()).unwrap_or_default()
        )
    } else if serde_json::from_str::<std::collections::HashMap<&str, &RawValue>>(body)
        .is_ok_and(|m| m.contains_key("description"))
    {
        body.to_owned()
    } else {
        format!(
            "{{\"description\":{},{inner}}}",
            serde_json::to_string(description.unwrap_or_default()).unwrap_or_default()
        )
    };
    RawValue::from_string(text)
        .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("a JSON literal"))
}

pub fn mailgun_item(r: &EventRecord) -> MailgunItem<'_> {
    let e = &r.event;
    let m = r.message.as_ref();
    let status = matches!(e.kind, EventKind::Delivered | EventKind::Failed);
    MailgunItem {
        id: e.id.to_string(),
        event: e.kind.as_str(),
        timestamp: e.at.as_secs_f64(),
        log_level: log_level(e.kind, e.severity),
        recipient: e.recipient.as_ref().map(|r| r.to_string()),
        recipient_domain: e.recipient.as_ref().map(|r| r.domain()),
        method: (e.kind == EventKind::Accepted).then_some("http"),
        tags: raw(m.map(|m| m.tags.as_str()), "[]"),
        user_variables: raw(m.map(|m| m.user_variables.as_str()), "{}"),
        envelope: m.map(|m| Envelope {
            sender: &m.mail_from,
            targets: e.recipient.as_ref().map(|r| r.to_string()),
            transport: "smtp",
        }),
        message: m.map(|m| MessagePart {
            headers: raw(Some(&m.headers), "{}"),
            attachments: [],
            size: m.size,
        }),
        flags: m.map(|m| Flags {
            is_test_mode: m.test_mode,
        }),
        delivery_status: status
            .then(|| delivery_status(e.detail.as_deref(), e.description.as_deref())),
        severity: e
            .severity
            .filter(|_| matches!(e.kind, EventKind::Failed | EventKind::Rejected))
            .map(Severity::as_str),
        reason: e.reason.as_deref(),
        reject: (e.kind == EventKind::Rejected).then(|| Reject {
            reason: e.reason.as_deref().unwrap_or_default(),
            description: e.description.as_deref().unwrap_or_default(),
        }),
        herald: Own {
            message: e.message_id.map(|i| i.to_string()),
            identity: e.identity_id.map(|i| i.to_string()),
            profile: e.profile_id.map(|i| i.to_string()),
            description: e.description.as_deref(),
            detail: (!status)
                .then_some(e.detail.as_deref())
                .flatten()
                .and_then(|d| serde_json::from_str::<&RawValue>(d).ok()),
        },
    }
}

/// The CSV report's header row.
pub const CSV_COLUMNS: [&str; 14] = [
    "id",
    "timestamp",
    "event",
    "severity",
    "reason",
    "recipient",
    "from",
    "subject",
    "message-id",
    "tags",
    "code",
    "enhanced-code",
    "delivery-message",
    "description",
];

/// One event as a row of the CSV report, in `CSV_COLUMNS` order.
pub fn csv_row(r: &EventRecord) -> [String; 14] {
    let e = &r.event;
    let m = r.message.as_ref();
    let headers = m.and_then(|m| parsed(Some(&m.headers)));
    let header = |k: &str| {
        headers
            .as_ref()
            .and_then(|h| h.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let tags: Vec<String> = m
        .and_then(|m| serde_json::from_str::<Vec<String>>(&m.tags).ok())
        .unwrap_or_default();
    let status = if matches!(e.kind, EventKind::Delivered | EventKind::Failed) {
        parsed(e.detail.as_deref())
    } else {
        None
    };
    let status_field = |k: &str| match status.as_ref().and_then(|s| s.get(k)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    [
        e.id.to_string(),
        e.at.to_rfc3339(),
        e.kind.as_str().to_owned(),
        e.severity
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        e.recipient
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        header("from"),
        header("subject"),
        m.map(|m| m.message_id_header.clone()).unwrap_or_default(),
        tags.join(" "),
        status_field("code"),
        status_field("enhanced-code"),
        status_field("message"),
        e.description.clone().unwrap_or_default(),
    ]
}

/// A CSV field, quoted when it must be (RFC 4180). A leading `=`, `+`, `-`
/// or `@` is prefixed with `'` so that spreadsheets do not run it.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}
