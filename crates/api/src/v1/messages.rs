//! POST /api/v1/messages: the native submission.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_app::{NewAttachment, Submission};
use herald_domain::message::{
    HeaderName, HeaderValue, Mailbox, Tag, UserVariables, parse_content_type, parse_delivery_time,
    parse_file_name, parse_subject,
};
use herald_domain::{DisplayName, IdentityId, InvalidInput, PurposeName, RelayProfileId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::TenantSender;

/// One address or a list: `"a@x, B <b@y>"` or `["a@x", "B <b@y>"]`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Addresses {
    One(String),
    Many(Vec<String>),
}

impl Addresses {
    fn parse(&self, field: &'static str) -> Result<Vec<Mailbox>, InvalidInput> {
        match self {
            Addresses::One(s) => Mailbox::parse_list(field, s),
            Addresses::Many(v) => {
                let mut out = Vec::new();
                for s in v {
                    out.extend(Mailbox::parse_list(field, s)?);
                }
                Ok(out)
            }
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    pub filename: String,
    #[serde(default = "octet_stream")]
    pub content_type: String,
    /// The file, base64.
    pub content_base64: String,
    /// Shown in the body (`cid:<filename>`) rather than listed.
    #[serde(default)]
    pub inline: bool,
}

fn octet_stream() -> String {
    "application/octet-stream".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// Subject to the relay profile's sender policy.
    pub from: Option<String>,
    pub to: Option<Addresses>,
    pub cc: Option<Addresses>,
    pub bcc: Option<Addresses>,
    #[serde(default)]
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Send as this sender identity (its relay profile is used).
    pub identity_id: Option<String>,
    /// Route by purpose (General, Gradebook…): its profile and From.
    pub purpose: Option<String>,
    /// Send through this relay profile.
    pub profile_id: Option<String>,
    pub reply_to: Option<String>,
    pub display_name: Option<String>,
    /// Extra headers (names Herald writes itself are refused).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// User variables, returned with every event.
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    /// When to send: an RFC 3339 or RFC 2822 date.
    pub deliver_at: Option<String>,
    /// Accept and record, but do not send.
    #[serde(default)]
    pub test_mode: bool,
    /// Add `List-Unsubscribe` with one-click unsubscribe (RFC 8058) for the
    /// recipient. Also implied by `%unsubscribe_url%` or
    /// `%tag_unsubscribe_url%` in a body. Needs a single recipient.
    #[serde(default)]
    pub list_unsubscribe: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageAccepted {
    /// Herald's id for the queue view.
    pub id: String,
    /// The Message-ID header, `<…>`.
    pub message_id: String,
    pub message: &'static str,
    /// Recipients dropped because they are on a suppression list.
    pub suppressed: Vec<String>,
}

fn parse_id<T: std::str::FromStr>(
    s: &Option<String>,
    field: &'static str,
) -> Result<Option<T>, InvalidInput> {
    s.as_deref()
        .map(|v| {
            v.parse()
                .map_err(|_| InvalidInput::new(field, "is not a valid id"))
        })
        .transpose()
}

fn parse(m: MessageIn) -> Result<Submission, InvalidInput> {
    let list = |a: &Option<Addresses>, f| {
        a.as_ref()
            .map(|a| a.parse(f))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let one = |s: &Option<String>, f| s.as_deref().map(|s| Mailbox::parse(f, s)).transpose();
    let mut headers = Vec::new();
    for (k, v) in &m.headers {
        headers.push((
            HeaderName::parse(k).map_err(|e| e.at("headers"))?,
            HeaderValue::parse(v).map_err(|e| e.at("headers"))?,
        ));
    }
    let mut variables = UserVariables::default();
    for (k, v) in &m.variables {
        variables.insert(k, v).map_err(|e| e.at("variables"))?;
    }
    let mut attachments = Vec::new();
    for a in &m.attachments {
        attachments.push(NewAttachment {
            filename: parse_file_name(&a.filename).map_err(|e| e.at("attachments"))?,
            content_type: parse_content_type(&a.content_type).map_err(|e| e.at("attachments"))?,
            bytes: STANDARD.decode(a.content_base64.trim()).map_err(|_| {
                InvalidInput::new(
                    "attachments",
                    format!("{}: content_base64 is not base64", a.filename),
                )
            })?,
            inline: a.inline,
        });
    }
    let identity: Option<IdentityId> = parse_id(&m.identity_id, "identity_id")?;
    let profile: Option<RelayProfileId> = parse_id(&m.profile_id, "profile_id")?;
    Ok(Submission {
        from: one(&m.from, "from")?,
        to: list(&m.to, "to")?,
        cc: list(&m.cc, "cc")?,
        bcc: list(&m.bcc, "bcc")?,
        subject: parse_subject(&m.subject)?,
        text: m.text,
        html: m.html,
        identity,
        purpose: m.purpose.as_deref().map(PurposeName::parse).transpose()?,
        profile,
        reply_to: one(&m.reply_to, "reply_to")?,
        display_name: m
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()?,
        headers,
        tags: m
            .tags
            .iter()
            .map(|t| Tag::parse(t))
            .collect::<Result<_, _>>()?,
        variables,
        attachments,
        deliver_at: m
            .deliver_at
            .as_deref()
            .map(|v| parse_delivery_time(v).map_err(|e| e.at("deliver_at")))
            .transpose()?,
        test_mode: m.test_mode,
        message_id: None,
        unsubscribe: None,
    })
}

/// Accepts a message. 202 means it is stored: it will be delivered or its
/// failure recorded. Policy refusals are 422 naming the rule; Max Size is
/// 413. With an `Idempotency-Key` header, a repeat of the same request
/// within 24 hours gets the first answer; a different request with the same
/// key gets 422.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = MessageIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried submission safe")),
    responses((status = 202, body = MessageAccepted), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn submit(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    crate::extract::require_json(&headers)?;
    let message: MessageIn = crate::extract::from_json_at(&body, "")?;
    let idempotency = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
            let hash = herald_crypto::TokenHash::of(&String::from_utf8_lossy(&body)).0;
            Some(herald_app::Idempotency::new(key, hash).map_err(herald_app::AppError::from)?)
        }
    };
    let wants_links = message.list_unsubscribe;
    let mut submission = parse(message).map_err(herald_app::AppError::from)?;
    if wants_links || submission.uses_unsubscribe_links() {
        submission.unsubscribe = Some(crate::v3_events::base_url(&s, &headers));
    }
    let accepted = s
        .herald
        .submit(&actor, submission, idempotency.as_ref())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageAccepted {
            id: accepted.id.to_string(),
            message_id: format!("<{}>", accepted.message_id),
            message: "Queued. Thank you.",
            suppressed: accepted.suppressed.iter().map(|a| a.to_string()).collect(),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// queued | sent | partial | failed | cancelled | held
    pub status: Option<String>,
    /// 1–500, default 100.
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageSummary {
    pub id: String,
    pub message_id: String,
    pub status: String,
    pub subject: String,
    pub from: String,
    pub profile_id: Option<String>,
    pub identity_id: Option<String>,
    pub size: u64,
    pub test_mode: bool,
    pub deliver_after: String,
    pub created_at: String,
}

fn summary(
    m: &herald_domain::QueuedMessage,
    status: herald_domain::MessageStatus,
) -> MessageSummary {
    MessageSummary {
        id: m.id.to_string(),
        message_id: format!("<{}>", m.message_id_header),
        status: status.to_string(),
        subject: m.subject.clone(),
        from: m.mail_from.to_string(),
        profile_id: m.profile_id.map(|p| p.to_string()),
        identity_id: m.identity_id.map(|i| i.to_string()),
        size: m.size,
        test_mode: m.test_mode,
        deliver_after: m.deliver_after.to_rfc3339(),
        created_at: m.created_at.to_rfc3339(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientOut {
    pub address: String,
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_reply: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    pub event: String,
    pub timestamp: f64,
    pub recipient: Option<String>,
    pub severity: Option<&'static str>,
    pub reason: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub recipients: Vec<RecipientOut>,
    pub events: Vec<EventOut>,
}

/// The queue: messages newest first, filtered by status, paged by cursor.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, body = MessageList), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn list(
    State(s): State<AppState>,
    crate::extract::TenantViewer(actor): crate::extract::TenantViewer,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ListQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=500) => n,
        Some(_) => return Err(ApiError::invalid("limit", "must be between 1 and 500")),
    };
    let cursor = q
        .cursor
        .as_deref()
        .map(herald_app::MessageCursor::decode)
        .transpose()?;
    let page = s
        .herald
        .list_messages(&actor, q.status.as_deref(), cursor, limit)
        .await?;
    Ok(Json(MessageList {
        items: page.items.iter().map(|(m, st)| summary(m, *st)).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// One message with its recipients and events.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageOut), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn get_one(
    State(s): State<AppState>,
    crate::extract::TenantViewer(actor): crate::extract::TenantViewer,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<MessageOut>, ApiError> {
    let d = s.herald.message(&actor, &id).await?;
    Ok(Json(MessageOut {
        summary: summary(&d.message, d.status),
        recipients: d
            .recipients
            .iter()
            .map(|r| RecipientOut {
                address: r.address.to_string(),
                status: r.status.to_string(),
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at.to_rfc3339(),
                last_reply: r.last_reply.clone(),
            })
            .collect(),
        events: d
            .events
            .iter()
            .map(|e| EventOut {
                id: e.id.to_string(),
                event: e.kind.to_string(),
                timestamp: e.at.as_secs_f64(),
                recipient: e.recipient.as_ref().map(|r| r.to_string()),
                severity: e.severity.map(|s| s.as_str()),
                reason: e.reason.clone(),
                description: e.description.clone(),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// Recipients cancelled (those already sent or being sent are not).
    pub cancelled: usize,
}

/// Cancels what is not yet sent of a message.
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = Cancelled), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn cancel(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    let cancelled = s.herald.cancel_message(&actor, &id).await?;
    Ok(Json(Cancelled { cancelled }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    /// 1–500 message ids; all must exist, or nothing changes.
    pub ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resent {
    pub id: String,
    /// Recipients put back in the queue (failed or cancelled ones).
    pub requeued: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResendOut {
    pub items: Vec<Resent>,
}

fn resent(items: Vec<(herald_domain::MessageId, usize)>) -> ResendOut {
    ResendOut {
        items: items
            .into_iter()
            .map(|(id, n)| Resent {
                id: id.to_string(),
                requeued: n,
            })
            .collect(),
    }
}

/// Resends several messages (Genesis's "resend selected").
#[utoipa::path(post, path = "/api/v1/messages/resend", tag = "messages", request_body = ResendIn,
    responses((status = 200, body = ResendOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn resend_many(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    crate::extract::ApiJson(body): crate::extract::ApiJson<ResendIn>,
) -> Result<Json<ResendOut>, ApiError> {
    Ok(Json(resent(
        s.herald.resend_messages(&actor, &body.ids).await?,
    )))
}

/// Resends one message: its failed and cancelled recipients go back in the queue.
#[utoipa::path(post, path = "/api/v1/messages/{id}/resend", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = ResendOut), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn resend_one(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<ResendOut>, ApiError> {
    Ok(Json(resent(s.herald.resend_messages(&actor, &[id]).await?)))
}
