//! Accepting a message: choose the relay profile and identity, apply the
//! sender policy, Max Size and suppressions, then store the message, its
//! recipients and their `accepted` (or `rejected`) events in one transaction
//! before answering. Accepted means durable.

use herald_domain::message::{
    HeaderName, HeaderValue, MAX_RECIPIENTS, Mailbox, Tag, UserVariables,
};
use herald_domain::policy::{Requested, Sender};
use herald_domain::{
    Actor, DisplayName, EmailAddress, Event, EventKind, IdentityId, IdentityStatus, InvalidInput,
    MessageId, PurposeName, QueuedMessage, RecipientStatus, RelayProfile, RelayProfileId, Role,
    SenderIdentity, Severity, Timestamp,
};
use herald_mailer::message::{AttachmentPart, Outgoing};
use herald_store::{Connection, events, idempotency, identities, relay_profiles, users};

use crate::accept::Acceptance;
use crate::access::Require;
use crate::{AppError, Herald};

/// An attachment as submitted (name and type already parsed).
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub inline: bool,
}

/// A message as a submitter gives it, every field parsed.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub identity: Option<IdentityId>,
    pub purpose: Option<PurposeName>,
    pub profile: Option<RelayProfileId>,
    pub reply_to: Option<Mailbox>,
    pub display_name: Option<DisplayName>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub tags: Vec<Tag>,
    pub variables: UserVariables,
    pub attachments: Vec<NewAttachment>,
    pub deliver_at: Option<Timestamp>,
    pub test_mode: bool,
    /// The Message-ID (without brackets) to use instead of a new one: the
    /// copies of a Mailgun batch send share one.
    pub message_id: Option<String>,
    /// Give the recipient unsubscribe links (`List-Unsubscribe` with
    /// one-click, and `%unsubscribe_url%` / `%tag_unsubscribe_url%` in the
    /// bodies) under this public base URL. Needs a single recipient.
    pub unsubscribe: Option<String>,
}

impl Submission {
    /// Whether a body asks for unsubscribe links (Mailgun's
    /// `%unsubscribe_url%` or `%tag_unsubscribe_url%`).
    pub fn uses_unsubscribe_links(&self) -> bool {
        [&self.text, &self.html]
            .into_iter()
            .flatten()
            .any(|b| b.contains(crate::UNSUBSCRIBE_URL) || b.contains(crate::TAG_UNSUBSCRIBE_URL))
    }
}

/// An `Idempotency-Key` with the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

impl Idempotency {
    /// How long a key's answer is kept.
    pub const TTL_SECS: i64 = 24 * 3600;

    pub fn new(key: &str, request_hash: String) -> Result<Self, InvalidInput> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(InvalidInput::new(
                "Idempotency-Key",
                "must be 1–255 visible ASCII characters",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            request_hash,
        })
    }
}

/// The answer to an accepted submission.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    pub id: MessageId,
    /// The Message-ID header, without angle brackets.
    pub message_id: String,
    /// Recipients dropped because they are suppressed.
    pub suppressed: Vec<EmailAddress>,
}

impl Herald {
    /// The profile and identity a submission goes through.
    async fn route(
        &self,
        db: &impl Connection,
        actor: &Actor,
        s: &Submission,
    ) -> Result<(RelayProfile, Option<SenderIdentity>), AppError> {
        let identity = match s.identity {
            Some(id) => {
                let i = identities::get(db, actor.tenant_id, id)
                    .await?
                    .ok_or_else(|| {
                        InvalidInput::new("identity_id", "is not a sender identity of this tenant")
                    })?;
                // A person sends only as identities they own or are named
                // on; an API key speaks for the product, which sends as any.
                if let Some(user) = actor.user_id()
                    && !i.usable_by(user)
                    && !actor.role.includes(Role::Admin)
                {
                    return Err(AppError::Forbidden(format!(
                        "you may not send as {}",
                        i.address
                    )));
                }
                Some(i)
            }
            None => None,
        };
        let profile_id = match (&identity, s.profile, &s.purpose) {
            (Some(i), Some(p), _) if p != i.profile_id => {
                return Err(InvalidInput::new(
                    "profile_id",
                    "differs from the identity's relay profile; give one or the other",
                )
                .into());
            }
            (Some(i), _, _) => i.profile_id,
            (None, Some(p), _) => p,
            (None, None, purpose) => {
                let routing = match self.policy_cache.routing(actor.tenant_id) {
                    Some(r) => r,
                    None => {
                        let r = relay_profiles::routing(db, actor.tenant_id).await?;
                        self.policy_cache.put_routing(actor.tenant_id, &r);
                        r
                    }
                };
                purpose
                    .as_ref()
                    .and_then(|p| routing.purposes.iter().find(|(n, _)| n.key() == p.key()))
                    .map(|(_, id)| *id)
                    .or(routing.default)
                    .ok_or_else(|| {
                        InvalidInput::new("profile_id", "the tenant has no default relay profile")
                    })?
            }
        };
        let profile = match self.policy_cache.profile(actor.tenant_id, profile_id) {
            Some(p) => p,
            None => {
                let p = relay_profiles::get(db, actor.tenant_id, profile_id)
                    .await?
                    .ok_or_else(|| {
                        InvalidInput::new("profile_id", "is not a relay profile of this tenant")
                    })?;
                self.policy_cache.put_profile(&p);
                p
            }
        };
        Ok((profile, identity))
    }

    /// Accepts a message: policy first, then one transaction with the
    /// message, its recipients and their events (and the saved answer for
    /// an Idempotency-Key: a repeat with the same request gets it back, with
    /// another request a 422).
    pub async fn submit(
        &self,
        actor: &Actor,
        s: Submission,
        idempotency: Option<&Idempotency>,
    ) -> Result<Accepted, AppError> {
        actor.require(Role::Sender)?;
        if let Some(idem) = idempotency
            && let Some(saved) =
                idempotency::get(self.store.read(), actor.tenant_id, &idem.key).await?
        {
            let fresh = saved.created_at > Timestamp::now().plus_secs(-Idempotency::TTL_SECS);
            match (fresh, saved.request_hash == idem.request_hash) {
                (true, true) => {
                    return serde_json::from_str(&saved.response)
                        .map_err(|e| AppError::Internal(format!("saved answer: {e}")));
                }
                (true, false) => {
                    return Err(InvalidInput::new(
                        "Idempotency-Key",
                        "was already used with a different request",
                    )
                    .into());
                }
                (false, _) => {
                    let tx = self.store.begin().await?;
                    idempotency::delete(tx.conn(), actor.tenant_id, &idem.key).await?;
                    tx.commit().await?;
                }
            }
        }
        let count = s.to.len() + s.cc.len() + s.bcc.len();
        if s.to.is_empty() && s.cc.is_empty() && s.bcc.is_empty() {
            return Err(InvalidInput::new("to", "at least one recipient is required").into());
        }
        if count > MAX_RECIPIENTS {
            return Err(InvalidInput::new(
                "to",
                format!("{count} recipients; at most {MAX_RECIPIENTS}"),
            )
            .into());
        }
        if s.tags.len() > Tag::MAX_PER_MESSAGE {
            return Err(InvalidInput::new(
                "o:tag",
                format!("at most {} tags", Tag::MAX_PER_MESSAGE),
            )
            .into());
        }
        let db = self.store.read();
        let tenant = self.tenant(actor).await?;
        let (profile, identity) = self.route(db, actor, &s).await?;
        let user = match actor.user_id() {
            Some(u) => users::get(db, actor.tenant_id, u).await?,
            None => None,
        };
        let resolved = Sender {
            profile: &profile.settings,
            purpose: s.purpose.as_ref(),
            identity: identity.as_ref(),
            user_name: user.as_ref().and_then(|u| u.display_name.as_ref()),
            user_address: user.as_ref().map(|u| &u.email),
            tenant_domains: &tenant.domains,
        }
        .resolve(&Requested {
            from: s.from.clone(),
            reply_to: s.reply_to.clone(),
            display_name: s.display_name.clone(),
        })?;

        let id = MessageId::new();
        let attachments = &profile.settings.attachments;
        if !s.attachments.is_empty() && !attachments.allowed {
            return Err(InvalidInput::new(
                "attachment",
                format!(
                    "relay profile {:?} does not allow attachments",
                    profile.settings.name.as_str()
                ),
            )
            .into());
        }
        let total: u64 = s.attachments.iter().map(|a| a.bytes.len() as u64).sum();
        if total > attachments.limit_bytes() {
            return Err(self
                .refuse_oversize(actor, &profile, &s, &resolved, id, total)
                .await?);
        }

        // Suppressions are looked up by the group commit, for the whole
        // batch at once and inside the transaction that stores the message.
        let held = identity.as_ref().is_some_and(|i| {
            matches!(
                i.status,
                IdentityStatus::NeedsReauth | IdentityStatus::Failing
            )
        });
        let status = if held {
            RecipientStatus::Held
        } else {
            RecipientStatus::Queued
        };
        let mut recipients = Vec::with_capacity(count);
        let mut seen = std::collections::HashSet::new();
        for m in s.to.iter().chain(&s.cc).chain(&s.bcc) {
            if seen.insert(m.address.as_str().to_lowercase()) {
                // the same address twice gets one copy
                recipients.push((m.address.clone(), status));
            }
        }

        let domain = resolved.from.address.domain().to_owned();
        let message_id = s
            .message_id
            .clone()
            .unwrap_or_else(|| format!("{id}@{domain}"));
        let parts: Vec<AttachmentPart> = s
            .attachments
            .iter()
            .map(|a| AttachmentPart {
                filename: &a.filename,
                content_type: &a.content_type,
                bytes: &a.bytes,
                inline: a.inline,
            })
            .collect();
        let mut headers = s.headers.clone();
        let header = |n: &str, v: &str| {
            HeaderName::parse(n).and_then(|n| HeaderValue::parse(v).map(|v| (n, v)))
        };
        if !profile.settings.delivery.disable_own_headers {
            headers.push(header("X-Herald-Tenant", tenant.slug.as_str())?);
            headers.push(header("X-Herald-Message", &id.to_string())?);
        }
        let (mut text, mut html) = (s.text.clone(), s.html.clone());
        if let Some(base) = &s.unsubscribe {
            if recipients.len() != 1 {
                return Err(InvalidInput::new(
                    "unsubscribe",
                    "unsubscribe links are per recipient: send each recipient its own message \
                     (Mailgun's recipient-variables makes one copy per to address)",
                )
                .into());
            }
            let (all, tagged) = self.unsubscribe_links(base, actor.tenant_id, id, 0);
            let fill = |t: &String| {
                t.replace(crate::UNSUBSCRIBE_URL, &all)
                    .replace(crate::TAG_UNSUBSCRIBE_URL, &tagged)
            };
            text = text.as_ref().map(fill);
            html = html.as_ref().map(fill);
            let theirs = headers
                .iter()
                .any(|(n, _)| n.as_str().eq_ignore_ascii_case("List-Unsubscribe"));
            if !theirs {
                headers.push(header("List-Unsubscribe", &format!("<{all}>"))?);
                headers.push(header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click",
                )?);
            }
        }
        let mime = Outgoing {
            from: &resolved.from,
            reply_to: resolved.reply_to.as_ref(),
            to: &s.to,
            cc: &s.cc,
            subject: &s.subject,
            text: text.as_deref(),
            html: html.as_deref(),
            headers: &headers,
            attachments: &parts,
            message_id: &message_id,
        }
        .build()
        .map_err(|e| AppError::Internal(e.to_string()))?;

        let now = Timestamp::now();
        let queued = QueuedMessage {
            id,
            tenant_id: actor.tenant_id,
            profile_id: Some(profile.id),
            identity_id: identity.as_ref().map(|i| i.id),
            purpose: s.purpose.clone(),
            mail_from: resolved.envelope_from.clone(),
            message_id_header: message_id.clone(),
            subject: s.subject.clone(),
            size: mime.len() as u64,
            test_mode: s.test_mode,
            deliver_after: s.deliver_at.unwrap_or(now).max(now),
            created_at: now,
        };
        let headers_json = serde_json::json!({
            "to": s.to.iter().map(|m| m.address.to_string()).collect::<Vec<_>>().join(", "),
            "from": resolved.from.address.to_string(),
            "subject": s.subject,
            "message-id": message_id,
        })
        .to_string();
        let tags_json =
            serde_json::to_string(&s.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".into());
        let vars_json = serde_json::to_string(
            &s.variables
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap_or_else(|_| "{}".into());

        // One event per recipient, in the same order (the group commit
        // turns those of suppressed recipients into `rejected`).
        let events = recipients
            .iter()
            .map(|(address, _)| {
                let mut e = Event::for_recipient(
                    actor.tenant_id,
                    id,
                    &queued.mail_from,
                    address,
                    EventKind::Accepted,
                );
                e.profile_id = Some(profile.id);
                e.identity_id = queued.identity_id;
                e
            })
            .collect();
        let accepted = self
            .group_commit()
            .commit(Acceptance {
                queued,
                mime: herald_store::body::pack(mime),
                headers_json,
                tags_json,
                vars_json,
                recipients,
                events,
                accepted: Accepted {
                    id,
                    message_id,
                    suppressed: Vec::new(),
                },
                idempotency: idempotency.map(|i| (i.key.clone(), i.request_hash.clone())),
            })
            .await?;
        self.queue_signal.notify_one();
        Ok(accepted)
    }

    /// Over Max Size: record `rejected`, tell the Notify User, refuse.
    async fn refuse_oversize(
        &self,
        actor: &Actor,
        profile: &RelayProfile,
        s: &Submission,
        resolved: &herald_domain::policy::Resolved,
        id: MessageId,
        total: u64,
    ) -> Result<AppError, AppError> {
        let limit_mb = profile.settings.attachments.limit_bytes() / (1024 * 1024);
        let reason = format!(
            "attachments total {:.1} MB; relay profile {:?} allows {limit_mb} MB",
            total as f64 / 1_048_576.0,
            profile.settings.name.as_str()
        );
        let tx = self.store.begin().await?;
        for m in s.to.iter().chain(&s.cc).chain(&s.bcc) {
            let mut e = Event::for_recipient(
                actor.tenant_id,
                id,
                &resolved.envelope_from,
                &m.address,
                EventKind::Rejected,
            );
            e.profile_id = Some(profile.id);
            e.severity = Some(Severity::Permanent);
            e.reason = Some("max-size".into());
            e.description = Some(reason.clone());
            events::insert(tx.conn(), &e).await?;
        }
        tx.commit().await?;
        if let Some(user) = profile.settings.attachments.notify_user_id
            && let Some(u) = users::get(self.store.read(), actor.tenant_id, user).await?
        {
            let to: Vec<String> =
                s.to.iter()
                    .chain(&s.cc)
                    .map(|m| m.address.to_string())
                    .collect();
            let text = format!(
                "A message was not sent because its attachments exceed the limit.\r\n\r\n\
                 Subject: {}\r\nRecipients: {}\r\nAttachments: {:.1} MB (limit {limit_mb} MB)\r\n\
                 Relay profile: {}\r\n",
                s.subject,
                to.join(", "),
                total as f64 / 1_048_576.0,
                profile.settings.name.as_str()
            );
            if let Err(e) = self
                .send_notice(
                    actor.tenant_id,
                    &u.email,
                    "A message exceeded the attachment limit",
                    &text,
                )
                .await
            {
                tracing::warn!(tenant = %actor.tenant_id, error = %e, "could not tell the Notify User");
            }
        }
        Ok(AppError::TooLarge(reason))
    }
}
