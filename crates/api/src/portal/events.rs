//! The portal's message log (the seed's "Mailgun message log"): the
//! tenant's events filtered by date, type and recipient, newest first, 100
//! per page, with "Generate report" downloading the same filter as CSV.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use herald_app::EventCursor;
use herald_domain::{EventFilter, EventSearch, Terms, Timestamp};

use super::{PortalUser, esc, page};
use crate::v3_events::pairs;

const PER_PAGE: u64 = 100;
const KINDS: [&str; 7] = [
    "accepted",
    "rejected",
    "delivered",
    "failed",
    "complained",
    "unsubscribed",
    "cancelled",
];

/// The form's values, as given (re-shown in the form and the links).
#[derive(Default)]
struct Form {
    from: String,
    to: String,
    event: String,
    recipient: String,
    cursor: String,
}

/// A `YYYY-MM-DD` day's first microsecond (UTC).
fn day(field: &'static str, s: &str) -> Result<i64, String> {
    Timestamp::parse_day(field, s)
        .map(Timestamp::as_micros)
        .map_err(|e| e.to_string())
}

fn parse(raw: Option<&str>) -> Result<(Form, EventSearch, Option<EventCursor>), String> {
    let mut f = Form::default();
    for (k, v) in pairs(raw).map_err(|e| e.to_string())? {
        let v = v.trim().to_owned();
        match k.as_str() {
            "from" => f.from = v,
            "to" => f.to = v,
            "event" => f.event = v,
            "recipient" => f.recipient = v,
            "cursor" => f.cursor = v,
            other => return Err(format!("{other:?} is not a field of this form")),
        }
    }
    let mut filter = EventFilter::default();
    if !f.event.is_empty() {
        if !KINDS.contains(&f.event.as_str()) {
            return Err(format!("{:?} is not an event type", f.event));
        }
        filter
            .event
            .push(Terms::parse("event", &f.event).map_err(|e| e.to_string())?);
    }
    if !f.recipient.is_empty() {
        filter
            .recipient
            .push(Terms::parse("recipient", &f.recipient).map_err(|e| e.to_string())?);
    }
    let begin = (!f.from.is_empty())
        .then(|| day("from", &f.from))
        .transpose()?;
    // Through the end of the `to` day.
    let end = (!f.to.is_empty())
        .then(|| day("to", &f.to).map(|d| d + 86_400_000_000 - 1))
        .transpose()?;
    let cursor = (!f.cursor.is_empty())
        .then(|| EventCursor::decode(&f.cursor).map_err(|e| e.to_string()))
        .transpose()?;
    Ok((
        f,
        EventSearch {
            filter,
            begin,
            end,
            ascending: false,
        },
        cursor,
    ))
}

fn query(f: &Form, cursor: Option<&str>) -> String {
    let mut pairs = vec![
        ("from", f.from.as_str()),
        ("to", f.to.as_str()),
        ("event", f.event.as_str()),
        ("recipient", f.recipient.as_str()),
    ];
    if let Some(c) = cursor {
        pairs.push(("cursor", c));
    }
    let pairs: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The CSV report takes Mailgun's filter names and epoch seconds.
fn report_query(s: &EventSearch) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(b) = s.begin {
        pairs.push(("begin", (b / 1_000_000).to_string()));
    }
    if let Some(e) = s.end {
        pairs.push(("end", (e / 1_000_000).to_string()));
    }
    if s.begin.is_some() && s.end.is_none() {
        pairs.push(("ascending", "no".into()));
    }
    for t in &s.filter.event {
        pairs.push(("event", t.values.join(" OR ")));
    }
    for t in &s.filter.recipient {
        pairs.push(("recipient", t.values.join(" OR ")));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

pub async fn log(
    State(s): State<crate::AppState>,
    PortalUser { actor, .. }: PortalUser,
    RawQuery(raw): RawQuery,
) -> Response {
    let (form, search, cursor, problem) = match parse(raw.as_deref()) {
        Ok((f, s, c)) => (f, s, c, None),
        Err(e) => (
            Form::default(),
            EventSearch {
                filter: EventFilter::default(),
                begin: None,
                end: None,
                ascending: false,
            },
            None,
            Some(e),
        ),
    };
    let found = match &problem {
        Some(_) => Ok(Vec::new()),
        None => {
            s.herald
                .search_events(&actor, &search, cursor, PER_PAGE + 1)
                .await
        }
    };
    let (mut items, problem) = match found {
        Ok(items) => (items, problem),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let more = items.len() as u64 > PER_PAGE;
    items.truncate(PER_PAGE as usize);
    let rows: String = items
        .iter()
        .map(|r| {
            let e = &r.event;
            let subject = r.message.as_ref().map(|m| m.subject.as_str()).unwrap_or("");
            let why = [e.reason.as_deref(), e.description.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.at.to_rfc3339()),
                esc(e.kind.as_str()),
                esc(&e
                    .recipient
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_default()),
                esc(subject),
                esc(&why),
            )
        })
        .collect();
    let options: String = std::iter::once(("", "All events"))
        .chain(KINDS.iter().map(|k| (*k, *k)))
        .map(|(v, label)| {
            let sel = if v == form.event { " selected" } else { "" };
            format!("<option value=\"{v}\"{sel}>{label}</option>")
        })
        .collect();
    let problem = problem
        .map(|p| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&p)))
        .unwrap_or_default();
    let table = if rows.is_empty() {
        "<p>No events match.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Time (UTC)</th><th>Event</th><th>Recipient</th>\
             <th>Subject</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let older = items
        .last()
        .filter(|_| more)
        .map(|r| {
            format!(
                "<p><a href=\"/events?{}\">Older events</a></p>",
                esc(&query(&form, Some(&EventCursor::of(r).encode())))
            )
        })
        .unwrap_or_default();
    let today = Timestamp::now().to_rfc3339();
    page(
        "Message log",
        &format!(
            "{problem}<form method=\"get\" action=\"/events\">\
             <label>From <input name=\"from\" type=\"date\" value=\"{}\" max=\"{}\"></label>\
             <label>To <input name=\"to\" type=\"date\" value=\"{}\"></label>\
             <label>Event <select name=\"event\">{options}</select></label>\
             <label>Recipient <input name=\"recipient\" type=\"email\" value=\"{}\"></label>\
             <button type=\"submit\">Filter</button></form>\
             <p><a href=\"/api/v1/events.csv?{}\" download>Generate report (CSV)</a></p>\
             {table}{older}<p><a href=\"/\">Home</a></p>",
            esc(&form.from),
            esc(&today[..10]),
            esc(&form.to),
            esc(&form.recipient),
            esc(&report_query(&search)),
        ),
    )
    .into_response()
}
