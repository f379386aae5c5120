//! How an event looks to readers: Mailgun's item shape (for /v3 and
//! /api/v1), and the columns of the CSV report.

use herald_domain::{EventKind, EventRecord, Severity};
use serde_json::{Map, Value, json};

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

/// One event as Mailgun's Events API writes it. Herald's own fields
/// (message id, identity, profile, description) ride along under `herald`.
pub fn mailgun_item(r: &EventRecord) -> Value {
    let e = &r.event;
    let mut item = Map::new();
    item.insert("id".into(), json!(e.id.to_string()));
    item.insert("event".into(), json!(e.kind.as_str()));
    item.insert("timestamp".into(), json!(e.at.as_secs_f64()));
    item.insert("log-level".into(), json!(log_level(e.kind, e.severity)));
    if let Some(to) = &e.recipient {
        item.insert("recipient".into(), json!(to.to_string()));
        item.insert("recipient-domain".into(), json!(to.domain()));
    }
    if e.kind == EventKind::Accepted {
        item.insert("method".into(), json!("http"));
    }
    let m = r.message.as_ref();
    item.insert(
        "tags".into(),
        m.and_then(|m| parsed(Some(&m.tags))).unwrap_or(json!([])),
    );
    item.insert(
        "user-variables".into(),
        m.and_then(|m| parsed(Some(&m.user_variables)))
            .unwrap_or(json!({})),
    );
    if let Some(m) = m {
        item.insert(
            "envelope".into(),
            json!({
                "sender": m.mail_from,
                "targets": e.recipient.as_ref().map(|r| r.to_string()),
                "transport": "smtp",
            }),
        );
        item.insert(
            "message".into(),
            json!({
                "headers": parsed(Some(&m.headers)).unwrap_or(json!({})),
                "attachments": [],
                "size": m.size,
            }),
        );
        item.insert("flags".into(), json!({ "is-test-mode": m.test_mode }));
    }
    let detail = parsed(e.detail.as_deref());
    if matches!(e.kind, EventKind::Delivered | EventKind::Failed) {
        let mut status = detail.clone().unwrap_or(json!({}));
        if let Some(s) = status.as_object_mut() {
            s.entry("description")
                .or_insert(json!(e.description.clone().unwrap_or_default()));
        }
        item.insert("delivery-status".into(), status);
    }
    if let Some(s) = e.severity
        && matches!(e.kind, EventKind::Failed | EventKind::Rejected)
    {
        item.insert("severity".into(), json!(s.as_str()));
    }
    if let Some(reason) = &e.reason {
        item.insert("reason".into(), json!(reason));
    }
    if e.kind == EventKind::Rejected {
        item.insert(
            "reject".into(),
            json!({
                "reason": e.reason.clone().unwrap_or_default(),
                "description": e.description.clone().unwrap_or_default(),
            }),
        );
    }
    let mut own = Map::new();
    if let Some(id) = e.message_id {
        own.insert("message".into(), json!(id.to_string()));
    }
    if let Some(id) = e.identity_id {
        own.insert("identity".into(), json!(id.to_string()));
    }
    if let Some(id) = e.profile_id {
        own.insert("profile".into(), json!(id.to_string()));
    }
    if let Some(d) = &e.description {
        own.insert("description".into(), json!(d));
    }
    if !matches!(e.kind, EventKind::Delivered | EventKind::Failed)
        && let Some(d) = detail
    {
        own.insert("detail".into(), d);
    }
    item.insert("herald".into(), Value::Object(own));
    Value::Object(item)
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
