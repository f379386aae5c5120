//! Mailgun's `POST /v3/{domain}/messages`, multipart or urlencoded, so that
//! existing Mailgun clients send through Herald unchanged. Herald-specific
//! choices ride in options Mailgun ignores: `o:herald-identity`,
//! `o:herald-purpose`, `o:herald-profile`.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use herald_app::{NewAttachment, Submission};
use std::collections::BTreeMap;

use herald_domain::message::{
    HeaderName, HeaderValue, Mailbox, Tag, fill_recipient_variables, parse_content_type,
    parse_delivery_time, parse_file_name, parse_subject,
};
use herald_domain::{DomainName, InvalidInput, PurposeName};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::MailgunError;
use crate::extract::MailgunCaller;

pub(crate) enum Field {
    Text(String),
    File {
        filename: String,
        content_type: String,
        bytes: Vec<u8>,
    },
}

pub(crate) async fn fields(
    req: Request,
    state: &AppState,
) -> Result<Vec<(String, Field)>, MailgunError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|e| MailgunError::bad(e.body_text()))?;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| MailgunError::bad(e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            match field.file_name().map(str::to_owned) {
                Some(filename) => {
                    let content_type = field
                        .content_type()
                        .unwrap_or("application/octet-stream")
                        .to_owned();
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| MailgunError::bad(e.body_text()))?
                        .to_vec();
                    out.push((
                        name,
                        Field::File {
                            filename,
                            content_type,
                            bytes,
                        },
                    ));
                }
                None => {
                    let text = field
                        .text()
                        .await
                        .map_err(|e| MailgunError::bad(e.body_text()))?;
                    out.push((name, Field::Text(text)));
                }
            }
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| MailgunError::bad(e.body_text()))?;
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| MailgunError::bad(e.to_string()))?;
        out.extend(pairs.into_iter().map(|(k, v)| (k, Field::Text(v))));
    } else {
        return Err(MailgunError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "send multipart/form-data or application/x-www-form-urlencoded".into(),
        });
    }
    Ok(out)
}

/// Mailgun's `recipient-variables`: per `to` address (lowercased), its
/// variables as text.
type RecipientVariables = BTreeMap<String, BTreeMap<String, String>>;

fn recipient_variables(text: &str) -> Result<RecipientVariables, InvalidInput> {
    let bad = |m: &str| InvalidInput::new("recipient-variables", m.to_owned());
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(&format!("is not JSON: {e}")))?;
    let Value::Object(by_address) = doc else {
        return Err(bad("must be a JSON object keyed by recipient address"));
    };
    let mut out = BTreeMap::new();
    for (address, vars) in by_address {
        let Value::Object(vars) = vars else {
            return Err(bad(&format!("the value for {address:?} must be an object")));
        };
        let vars = vars
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
        out.insert(address.trim().to_lowercase(), vars);
    }
    Ok(out)
}

fn submission(
    fields: Vec<(String, Field)>,
) -> Result<(Submission, Option<RecipientVariables>), InvalidInput> {
    let mut s = Submission::default();
    let mut batch = None;
    let mut saw_from = false;
    for (name, field) in fields {
        let text = |f: &Field| match f {
            Field::Text(t) => Ok(t.clone()),
            Field::File { .. } => Err(InvalidInput::new("form", format!("{name} must be text"))),
        };
        match name.as_str() {
            "attachment" | "inline" => {
                let Field::File {
                    filename,
                    content_type,
                    bytes,
                } = field
                else {
                    return Err(InvalidInput::new("attachment", "must be a file"));
                };
                s.attachments.push(NewAttachment {
                    filename: parse_file_name(&filename).map_err(|e| e.at("attachment"))?,
                    content_type: parse_content_type(&content_type)
                        .map_err(|e| e.at("attachment"))?,
                    bytes,
                    inline: name == "inline",
                });
            }
            "from" => {
                s.from = Some(Mailbox::parse("from", &text(&field)?)?);
                saw_from = true;
            }
            "to" => s.to.extend(Mailbox::parse_list("to", &text(&field)?)?),
            "cc" => s.cc.extend(Mailbox::parse_list("cc", &text(&field)?)?),
            "bcc" => s.bcc.extend(Mailbox::parse_list("bcc", &text(&field)?)?),
            "subject" => s.subject = parse_subject(&text(&field)?)?,
            "text" => s.text = Some(text(&field)?),
            "html" => s.html = Some(text(&field)?),
            "o:tag" => s.tags.push(Tag::parse(&text(&field)?)?),
            "o:deliverytime" => s.deliver_at = Some(parse_delivery_time(&text(&field)?)?),
            "o:testmode" => {
                s.test_mode = matches!(
                    text(&field)?.to_ascii_lowercase().as_str(),
                    "yes" | "true" | "1"
                )
            }
            "o:herald-identity" => {
                s.identity = Some(text(&field)?.parse().map_err(|_: InvalidInput| {
                    InvalidInput::new("o:herald-identity", "is not a valid id")
                })?)
            }
            "o:herald-profile" => {
                s.profile = Some(text(&field)?.parse().map_err(|_: InvalidInput| {
                    InvalidInput::new("o:herald-profile", "is not a valid id")
                })?)
            }
            "o:herald-purpose" => s.purpose = Some(PurposeName::parse(&text(&field)?)?),
            "o:herald-list-unsubscribe" => {
                if matches!(
                    text(&field)?.to_ascii_lowercase().as_str(),
                    "yes" | "true" | "1"
                ) {
                    s.unsubscribe = Some(String::new());
                }
            }
            "recipient-variables" => batch = Some(recipient_variables(&text(&field)?)?),
            n if n.eq_ignore_ascii_case("h:reply-to") => {
                s.reply_to = Some(Mailbox::parse("h:Reply-To", &text(&field)?)?)
            }
            n if n.starts_with("h:") => s.headers.push((
                HeaderName::parse(&n[2..])?,
                HeaderValue::parse(&text(&field)?)?,
            )),
            n if n.starts_with("v:") => s.variables.insert(&n[2..], &text(&field)?)?,
            // Mailgun options Herald has no use for are accepted, as Mailgun does.
            n if n.starts_with("o:") => {}
            other => {
                return Err(InvalidInput::new(
                    "form",
                    format!("unknown parameter {other:?}"),
                ));
            }
        }
    }
    if !saw_from {
        return Err(InvalidInput::new("from", "from parameter is missing"));
    }
    Ok((s, batch))
}

/// A batch send: one copy per `to` recipient, addressed to that recipient
/// alone, with `%recipient.NAME%` filled in its subject and bodies. Every
/// copy is checked before any is accepted.
fn copies(s: Submission, vars: &RecipientVariables) -> Result<Vec<Submission>, InvalidInput> {
    if !s.cc.is_empty() || !s.bcc.is_empty() {
        return Err(InvalidInput::new(
            "recipient-variables",
            "cannot be combined with cc or bcc: each copy goes to one to recipient",
        ));
    }
    let empty = BTreeMap::new();
    s.to.iter()
        .map(|to| {
            let v = vars
                .get(&to.address.as_str().to_lowercase())
                .unwrap_or(&empty);
            let mut copy = s.clone();
            copy.to = vec![to.clone()];
            copy.subject = parse_subject(&fill_recipient_variables(&s.subject, v))?;
            copy.text = s.text.as_deref().map(|t| fill_recipient_variables(t, v));
            copy.html = s.html.as_deref().map(|t| fill_recipient_variables(t, v));
            Ok(copy)
        })
        .collect()
}

/// Mailgun's 404 unless `domain` is one of the caller's sending domains.
async fn sending_domain(
    s: &AppState,
    actor: &herald_domain::Actor,
    domain: &str,
) -> Result<(), MailgunError> {
    let tenant = s.herald.tenant(actor).await?;
    let ours = DomainName::parse(domain)
        .ok()
        .is_some_and(|d| tenant.domains.contains(&d));
    if ours {
        Ok(())
    } else {
        Err(MailgunError {
            status: StatusCode::NOT_FOUND,
            message: "Domain not found".into(),
        })
    }
}

/// `POST /v3/{domain}/messages.parse-only` (the `bench` feature): the same
/// authentication, domain check and form parsing as sending, then nothing
/// is stored. The benchmark's measure of the HTTP layer's own limit.
#[cfg(feature = "bench")]
pub async fn parse_only(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Json<Value>, MailgunError> {
    sending_domain(&s, &actor, &domain).await?;
    let fields = fields(req, &s).await?;
    let (submission, _) = submission(fields).map_err(|e| MailgunError::bad(e.to_string()))?;
    Ok(Json(json!({
        "id": format!("<parsed {} recipients>", submission.to.len()),
        "message": "Parsed, not stored.",
    })))
}

/// `POST /v3/{domain}/messages`: answers `{"id": "<…>", "message": "Queued. Thank you."}`.
pub async fn send(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path(domain): Path<String>,
    req: Request,
) -> Result<Json<Value>, MailgunError> {
    sending_domain(&s, &actor, &domain).await?;
    let base = crate::v3_events::base_url(&s, req.headers());
    let fields = fields(req, &s).await?;
    let (mut submission, batch) =
        submission(fields).map_err(|e| MailgunError::bad(e.to_string()))?;
    if submission.unsubscribe.is_some() || submission.uses_unsubscribe_links() {
        submission.unsubscribe = Some(base);
    }
    let Some(vars) = batch else {
        let accepted = s
            .herald
            .submit(&actor, submission, None)
            .await
            .map_err(MailgunError::input)?;
        return Ok(Json(json!({
            "id": format!("<{}>", accepted.message_id),
            "message": "Queued. Thank you.",
        })));
    };
    // Batch sending: the copies share the first one's Message-ID, the id
    // Mailgun answers with.
    let mut shared: Option<String> = None;
    for mut copy in copies(submission, &vars).map_err(|e| MailgunError::bad(e.to_string()))? {
        copy.message_id = shared.clone();
        let accepted = s
            .herald
            .submit(&actor, copy, None)
            .await
            .map_err(MailgunError::input)?;
        shared.get_or_insert(accepted.message_id);
    }
    Ok(Json(json!({
        "id": format!("<{}>", shared.unwrap_or_default()),
        "message": "Queued. Thank you.",
    })))
}
