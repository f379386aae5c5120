//! Mailgun's Events API: `GET /v3/{domain}/events` with its filters, time
//! range and direction, answering `{items, paging}` where every paging link
//! is an absolute URL `…/v3/{domain}/events/{page}`. The page token carries
//! the whole search, so following a link needs nothing else.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_app::EventCursor;
use herald_domain::{
    Actor, DomainName, EventFilter, EventId, EventRecord, EventSearch, InvalidInput, Terms,
    Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::MailgunError;
use crate::event_view::mailgun_item;
use crate::extract::MailgunCaller;

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 300;

/// The query's pairs, in order.
pub(crate) fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, InvalidInput> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| InvalidInput::new("query", format!("is not a valid query string: {e}")))
}

/// A search and page size from query parameters. `extra` handles the
/// parameters a caller adds (it returns false for a name it does not know,
/// which is refused).
pub(crate) fn parse_search(
    pairs: &[(String, String)],
    mut extra: impl FnMut(&str, &str, &mut EventFilter) -> Result<bool, InvalidInput>,
) -> Result<(EventSearch, u64), InvalidInput> {
    let mut filter = EventFilter::default();
    let (mut begin, mut end, mut ascending, mut limit) = (None, None, None, DEFAULT_LIMIT);
    for (k, v) in pairs {
        let field = k.as_str();
        let list = match field {
            "begin" => {
                begin = Some(Timestamp::parse_api("begin", v)?.as_micros());
                continue;
            }
            "end" => {
                end = Some(Timestamp::parse_api("end", v)?.as_micros());
                continue;
            }
            "ascending" => {
                ascending = Some(match v.as_str() {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => return Err(InvalidInput::new("ascending", "must be yes or no")),
                });
                continue;
            }
            "limit" => {
                limit = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        InvalidInput::new("limit", format!("must be 1 to {MAX_LIMIT}"))
                    })?;
                continue;
            }
            "event" => (&mut filter.event, "event"),
            "severity" => (&mut filter.severity, "severity"),
            "recipient" => (&mut filter.recipient, "recipient"),
            "from" => (&mut filter.from, "from"),
            "to" => (&mut filter.to, "to"),
            "subject" => (&mut filter.subject, "subject"),
            "message-id" => (&mut filter.message_id, "message-id"),
            "tags" | "tag" => (&mut filter.tags, "tags"),
            other => {
                if extra(other, v, &mut filter)? {
                    continue;
                }
                return Err(InvalidInput::new(
                    "query",
                    format!("{other:?} is not a filter this API knows"),
                ));
            }
        };
        list.0.push(Terms::parse(list.1, v)?);
    }
    // Mailgun's range: `begin` is where the walk starts and `end` where it
    // stops, so their order gives the direction; with one end only,
    // `ascending` does (from `begin`, it defaults to forward in time).
    let asc = match (begin, end) {
        (Some(b), Some(e)) => {
            let derived = b <= e;
            if ascending.is_some_and(|a| a != derived) {
                return Err(InvalidInput::new(
                    "ascending",
                    "contradicts the order of begin and end",
                ));
            }
            derived
        }
        (Some(_), None) => ascending.unwrap_or(true),
        _ => ascending.unwrap_or(false),
    };
    let (lo, hi) = if asc { (begin, end) } else { (end, begin) };
    Ok((
        EventSearch {
            filter,
            begin: lo,
            end: hi,
            ascending: asc,
        },
        limit,
    ))
}

/// How a page relates to its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Walk {
    /// From the start of the range, or on after the cursor.
    Forward,
    /// The page that ends just before the cursor.
    Back,
    /// The range's last page.
    Last,
}

/// Everything a paging link needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PageToken {
    pub s: EventSearch,
    pub l: u64,
    pub w: Walk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<(i64, String)>,
    /// The cursor's own event belongs to the page (see `links`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub i: bool,
}

impl PageToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(s: &str) -> Result<Self, InvalidInput> {
        let bad = || InvalidInput::new("page", "is not a page this API returned");
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        let t: Self = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if !(1..=MAX_LIMIT).contains(&t.l) {
            return Err(bad());
        }
        Ok(t)
    }

    pub fn cursor(&self) -> Result<Option<EventCursor>, InvalidInput> {
        self.c
            .as_ref()
            .map(|(ts, id)| {
                Ok(EventCursor {
                    ts: *ts,
                    id: id.parse::<EventId>().map_err(|_| {
                        InvalidInput::new("page", "is not a page this API returned")
                    })?,
                    inclusive: self.i,
                })
            })
            .transpose()
    }
}

/// Runs one page of a token's walk; items come in the search's order.
pub(crate) async fn run_page(
    s: &AppState,
    actor: &Actor,
    t: &PageToken,
) -> Result<Vec<EventRecord>, herald_app::AppError> {
    let cursor = t.cursor()?;
    match t.w {
        Walk::Forward => s.herald.search_events(actor, &t.s, cursor, t.l).await,
        Walk::Back | Walk::Last => {
            let mut reversed = t.s.clone();
            reversed.ascending = !reversed.ascending;
            let after = if t.w == Walk::Last { None } else { cursor };
            let mut items = s.herald.search_events(actor, &reversed, after, t.l).await?;
            items.reverse();
            Ok(items)
        }
    }
}

/// The four links of a page: first, last, next (after its last item) and
/// previous (before its first). An empty page keeps its own cursor, and
/// turning back from it includes the cursor's event: the page before the
/// end of a walk ends with the walk's last event.
pub(crate) fn links(t: &PageToken, items: &[EventRecord]) -> [(&'static str, PageToken); 4] {
    let at = |r: &EventRecord| {
        let c = EventCursor::of(r);
        (Some((c.ts, c.id.to_string())), false)
    };
    let with = |w: Walk, (c, i): (Option<(i64, String)>, bool)| PageToken {
        s: t.s.clone(),
        l: t.l,
        w,
        c,
        i,
    };
    let here = |turning: bool| (t.c.clone(), t.c.is_some() && (turning || t.i));
    let next = items
        .last()
        .map(at)
        .unwrap_or_else(|| here(t.w != Walk::Forward));
    let previous = items
        .first()
        .map(at)
        .unwrap_or_else(|| here(t.w == Walk::Forward));
    [
        ("first", with(Walk::Forward, (None, false))),
        ("last", with(Walk::Last, (None, false))),
        ("next", with(Walk::Forward, next)),
        ("previous", with(Walk::Back, previous)),
    ]
}

/// The absolute base URL: `public_url` when configured, else what the
/// request was sent to.
pub(crate) fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &s.http.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let proto = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{proto}://{host}")
}

/// The caller's sending domain named in the path, or Mailgun's 404.
pub(crate) async fn own_domain(
    s: &AppState,
    actor: &Actor,
    domain: &str,
) -> Result<DomainName, MailgunError> {
    let tenant = s.herald.tenant(actor).await?;
    DomainName::parse(domain)
        .ok()
        .and_then(|d| tenant.domains.into_iter().find(|own| *own == d))
        .ok_or_else(|| MailgunError {
            status: StatusCode::NOT_FOUND,
            message: "Domain not found".to_owned(),
        })
}

async fn answer(
    s: &AppState,
    actor: &Actor,
    headers: &HeaderMap,
    domain: &DomainName,
    mut token: PageToken,
) -> Result<Response, MailgunError> {
    // Whatever a token says, it searches the path's domain.
    token.s.filter.domain = Some(domain.as_str().to_owned());
    let items = run_page(s, actor, &token)
        .await
        .map_err(MailgunError::input)?;
    let base = format!("{}/v3/{}/events", base_url(s, headers), domain.as_str());
    let paging: serde_json::Map<String, Value> = links(&token, &items)
        .into_iter()
        .map(|(name, t)| (name.to_owned(), json!(format!("{base}/{}", t.encode()))))
        .collect();
    #[derive(serde::Serialize)]
    struct Page<'a> {
        items: Vec<crate::event_view::MailgunItem<'a>>,
        paging: serde_json::Map<String, Value>,
    }
    Ok(Json(Page {
        items: items.iter().map(mailgun_item).collect(),
        paging,
    })
    .into_response())
}

/// `GET /v3/{domain}/events`.
pub async fn list(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path(domain): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, MailgunError> {
    let domain = own_domain(&s, &actor, &domain).await?;
    let pairs = pairs(raw.as_deref()).map_err(|e| MailgunError::bad(e.to_string()))?;
    let (search, limit) =
        parse_search(&pairs, |_, _, _| Ok(false)).map_err(|e| MailgunError::bad(e.to_string()))?;
    let token = PageToken {
        s: search,
        l: limit,
        w: Walk::Forward,
        c: None,
        i: false,
    };
    answer(&s, &actor, &headers, &domain, token).await
}

/// `GET /v3/{domain}/events/{page}`: a paging link. Query parameters a
/// client adds (mailgun.js repeats none) are ignored: the token is the
/// search.
pub async fn page(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path((domain, page)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, MailgunError> {
    let domain = own_domain(&s, &actor, &domain).await?;
    let token = PageToken::decode(&page).map_err(|e| MailgunError::bad(e.to_string()))?;
    answer(&s, &actor, &headers, &domain, token).await
}
