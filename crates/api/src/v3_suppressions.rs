//! Mailgun's suppression lists: `/v3/{domain}/bounces`, `/unsubscribes` and
//! `/complaints`: list (paged by address, `page=first|next|previous|last`
//! with `address` as the pivot), get one, add (a JSON array, or one entry
//! as a form), delete one, delete all. Herald keeps one set of lists per
//! tenant: every sending domain of the tenant shows the same lists.

use axum::Json;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use herald_app::NewSuppression;
use herald_app::{Suppression, SuppressionKind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::MailgunError;
use crate::extract::MailgunCaller;
use crate::v3_events::{base_url, own_domain, pairs};
use crate::v3_messages::Field;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// Mailgun's 404 for an address that is not on `kind`'s list.
fn not_listed(kind: SuppressionKind) -> MailgunError {
    MailgunError::not_found(format!("Address not found in {} table", kind.list_name()))
}

fn list_kind(list: &str) -> Result<SuppressionKind, MailgunError> {
    SuppressionKind::from_list_name(list).ok_or_else(|| MailgunError::not_found("Not Found"))
}

/// One entry in Mailgun's shape for its list.
pub(crate) fn item(s: &Suppression) -> Value {
    let created_at = s.created_at.to_rfc2822();
    match s.kind {
        SuppressionKind::Bounce => json!({
            "address": s.address.to_string(),
            "code": s.code.clone().unwrap_or_else(|| "550".into()),
            "error": s.error.clone().unwrap_or_default(),
            "created_at": created_at,
        }),
        SuppressionKind::Unsubscribe => json!({
            "address": s.address.to_string(),
            "tags": if s.tags.is_empty() { vec!["*".to_owned()] } else { s.tags.clone() },
            "created_at": created_at,
        }),
        SuppressionKind::Complaint => json!({
            "address": s.address.to_string(),
            "created_at": created_at,
        }),
    }
}

fn url_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// `GET /v3/{domain}/{list}`.
pub async fn list(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path((domain, list)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, MailgunError> {
    let kind = list_kind(&list)?;
    let domain = own_domain(&s, &actor, &domain).await?;
    let (mut page, mut pivot, mut limit) = (None::<String>, None::<String>, DEFAULT_LIMIT);
    // mailgun.js may repeat `limit` beside the paging link's own; the
    // first of each wins.
    for (k, v) in pairs(raw.as_deref()).map_err(|e| MailgunError::bad(e.to_string()))? {
        match k.as_str() {
            "page" if page.is_none() => page = Some(v),
            "address" if pivot.is_none() => pivot = Some(v),
            "limit" if limit == DEFAULT_LIMIT => {
                limit = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| MailgunError::bad(format!("limit must be 1 to {MAX_LIMIT}")))?;
            }
            "page" | "address" | "limit" => {}
            "term" => return Err(MailgunError::bad("term is not supported")),
            other => {
                return Err(MailgunError::bad(format!(
                    "{other:?} is not a parameter of this list"
                )));
            }
        }
    }
    let walk = page.as_deref().unwrap_or("first");
    let (after, ascending) = match walk {
        "first" => (None, true),
        "last" => (None, false),
        "next" => (pivot.as_deref(), true),
        "previous" | "prev" => (pivot.as_deref(), false),
        other => {
            return Err(MailgunError::bad(format!(
                "page {other:?} is not first, last, next or previous"
            )));
        }
    };
    let items = s
        .herald
        .list_suppressions(&actor, kind, after, ascending, limit)
        .await
        .map_err(MailgunError::input)?;
    let base = format!(
        "{}/v3/{}/{}",
        base_url(&s, &headers),
        domain.as_str(),
        kind.list_name()
    );
    let link = |page: &str, pivot: Option<&str>| match pivot {
        Some(p) => format!("{base}?page={page}&address={}&limit={limit}", url_encode(p)),
        None => format!("{base}?page={page}&limit={limit}"),
    };
    let last = items
        .last()
        .map(|i| i.address.as_str().to_lowercase())
        .or_else(|| pivot.clone());
    let first = items
        .first()
        .map(|i| i.address.as_str().to_lowercase())
        .or_else(|| pivot.clone());
    // Past either end, turning back starts from that end, so a walk back
    // from the end of the list sees its last entry again.
    let next = if items.is_empty() && matches!(walk, "previous" | "prev") {
        link("first", None)
    } else {
        link("next", last.as_deref())
    };
    let previous = if items.is_empty() && walk == "next" {
        link("last", None)
    } else {
        link("previous", first.as_deref())
    };
    Ok(Json(json!({
        "items": items.iter().map(item).collect::<Vec<_>>(),
        "paging": {
            "first": link("first", None),
            "last": link("last", None),
            "next": next,
            "previous": previous,
        }
    })))
}

/// `GET /v3/{domain}/{list}/{address}`.
pub async fn get_one(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path((domain, list, address)): Path<(String, String, String)>,
) -> Result<Json<Value>, MailgunError> {
    let kind = list_kind(&list)?;
    own_domain(&s, &actor, &domain).await?;
    match s.herald.suppression(&actor, kind, &address).await {
        Ok(found) => Ok(Json(item(&found))),
        Err(herald_app::AppError::NotFound(_)) => Err(not_listed(kind)),
        Err(e) => Err(MailgunError::input(e)),
    }
}

/// One entry of an add request, JSON or form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    address: String,
    #[serde(default, deserialize_with = "text_or_number")]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    created_at: Option<String>,
}

/// Mailgun clients send codes and times as numbers or as text.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected text or a number, not {other}"
            )));
        }
    })
}

impl From<Entry> for NewSuppression {
    fn from(e: Entry) -> Self {
        let mut tags = e.tags;
        tags.extend(e.tag);
        Self {
            address: e.address,
            code: e.code,
            error: e.error,
            tags,
            created_at: e.created_at,
        }
    }
}

async fn entries(req: Request, s: &AppState) -> Result<Vec<Entry>, MailgunError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        let bytes = axum::body::Bytes::from_request(req, s)
            .await
            .map_err(|e| MailgunError::bad(e.body_text()))?;
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| MailgunError::bad(e.to_string()))?;
        let list = match doc {
            Value::Array(a) => a,
            one @ Value::Object(_) => vec![one],
            _ => return Err(MailgunError::bad("send a JSON array of entries")),
        };
        return list
            .into_iter()
            .map(|v| {
                serde_json::from_value::<Entry>(v).map_err(|e| MailgunError::bad(e.to_string()))
            })
            .collect();
    }
    if !ct.starts_with("multipart/form-data")
        && !ct.starts_with("application/x-www-form-urlencoded")
    {
        return Err(MailgunError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "send application/json, multipart/form-data or a urlencoded form".into(),
        });
    }
    let mut fields = Vec::new();
    for (name, field) in crate::v3_messages::fields(req, s).await? {
        match field {
            Field::Text(v) => fields.push((name, v)),
            Field::File { .. } => {
                return Err(MailgunError::bad(format!(
                    "{name:?} must be text, not a file"
                )));
            }
        }
    }
    let mut e = Entry {
        address: String::new(),
        code: None,
        error: None,
        tag: None,
        tags: Vec::new(),
        created_at: None,
    };
    for (k, v) in fields {
        match k.as_str() {
            "address" => e.address = v,
            "code" => e.code = Some(v),
            "error" => e.error = Some(v),
            "tag" | "tags" => e.tags.push(v),
            "created_at" => e.created_at = Some(v),
            other => {
                return Err(MailgunError::bad(format!(
                    "{other:?} is not a field of this list"
                )));
            }
        }
    }
    if e.address.is_empty() {
        return Err(MailgunError::bad("address is missing"));
    }
    Ok(vec![e])
}

/// `POST /v3/{domain}/{list}`.
pub async fn add(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path((domain, list)): Path<(String, String)>,
    req: Request,
) -> Result<Json<Value>, MailgunError> {
    let kind = list_kind(&list)?;
    own_domain(&s, &actor, &domain).await?;
    let entries: Vec<NewSuppression> = entries(req, &s)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let single = (entries.len() == 1).then(|| entries[0].address.trim().to_owned());
    let n = s
        .herald
        .add_suppressions(&actor, kind, &entries)
        .await
        .map_err(MailgunError::input)?;
    let table = kind.list_name();
    Ok(Json(match single {
        Some(address) => json!({
            "message": format!("Address has been added to the {table} table"),
            "address": address,
        }),
        None => json!({ "message": format!("{n} addresses have been added to the {table} table") }),
    }))
}

/// `DELETE /v3/{domain}/{list}/{address}`.
pub async fn delete_one(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path((domain, list, address)): Path<(String, String, String)>,
) -> Result<Json<Value>, MailgunError> {
    let kind = list_kind(&list)?;
    own_domain(&s, &actor, &domain).await?;
    match s
        .herald
        .delete_suppressions(&actor, kind, Some(&address))
        .await
    {
        Ok(_) => Ok(Json(json!({
            "message": format!("{} address has been removed", match kind {
                SuppressionKind::Bounce => "Bounced",
                SuppressionKind::Unsubscribe => "Unsubscribed",
                SuppressionKind::Complaint => "Spam complaint",
            }),
            "address": address,
        }))),
        Err(herald_app::AppError::NotFound(_)) => Err(not_listed(kind)),
        Err(e) => Err(MailgunError::input(e)),
    }
}

/// `DELETE /v3/{domain}/{list}`: clears the list.
pub async fn delete_all(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path((domain, list)): Path<(String, String)>,
) -> Result<Json<Value>, MailgunError> {
    let kind = list_kind(&list)?;
    own_domain(&s, &actor, &domain).await?;
    let n = s
        .herald
        .delete_suppressions(&actor, kind, None)
        .await
        .map_err(MailgunError::input)?;
    Ok(Json(json!({
        "message": format!("{n} addresses have been removed from the {} table", kind.list_name()),
    })))
}
