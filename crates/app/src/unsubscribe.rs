//! Unsubscribe links: each recipient's own `List-Unsubscribe` (RFC 2369)
//! with one-click POST (RFC 8058, which Gmail and Yahoo require of bulk
//! senders), and Mailgun's `%unsubscribe_url%` / `%tag_unsubscribe_url%`
//! in the bodies. Following one records an `unsubscribed` event and puts
//! the address on the tenant's unsubscribe list: from everything, or (the
//! tag link) from mail carrying the message's tags.
//!
//! A link carries its own proof: the tenant in clear, then the message,
//! the recipient's index and the scope sealed under the master key with
//! the tenant as associated data. Nothing is stored per link, and a link
//! cannot be made up or moved to another tenant.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_crypto::{SealContext, Sealed};
use herald_domain::{
    EmailAddress, Event, EventKind, MessageId, QueuedMessage, TenantId, Timestamp,
};
use herald_store::suppressions::{Suppression, SuppressionKind};
use herald_store::{events, messages, suppressions, tenants};

use crate::{AppError, Herald};

/// Where an unsubscribe link points: `{base}/u/{token}`.
pub const UNSUBSCRIBE_PATH: &str = "/u/";

/// The body placeholders Mailgun fills in.
pub const UNSUBSCRIBE_URL: &str = "%unsubscribe_url%";
pub const TAG_UNSUBSCRIBE_URL: &str = "%tag_unsubscribe_url%";

fn context(tenant: TenantId) -> SealContext<'static> {
    SealContext {
        tenant,
        table: "unsubscribe",
        row: "",
        column: "link",
    }
}

/// What a link names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    tenant: TenantId,
    message: MessageId,
    index: u32,
    /// From the message's tags only.
    tagged: bool,
}

impl Herald {
    fn link_token(&self, link: Link) -> String {
        let mut plain = link.message.as_uuid().as_bytes().to_vec();
        plain.extend_from_slice(&link.index.to_be_bytes());
        plain.push(u8::from(link.tagged));
        let sealed = self.keys.seal(&plain, &context(link.tenant));
        let mut out = link.tenant.as_uuid().as_bytes().to_vec();
        out.push(sealed.key_id.len() as u8);
        out.extend_from_slice(sealed.key_id.as_bytes());
        out.extend_from_slice(&sealed.nonce);
        out.extend_from_slice(&sealed.ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    fn open_link(&self, token: &str) -> Option<Link> {
        let bytes = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
        let tenant = TenantId::from_bytes(bytes.get(..16)?.try_into().ok()?);
        let id_len = usize::from(*bytes.get(16)?);
        let key_id = std::str::from_utf8(bytes.get(17..17 + id_len)?).ok()?;
        let rest = bytes.get(17 + id_len..)?;
        let sealed = Sealed {
            key_id: key_id.to_owned(),
            nonce: rest.get(..12)?.to_vec(),
            ciphertext: rest.get(12..)?.to_vec(),
        };
        let plain = self.keys.open(&sealed, &context(tenant)).ok()?;
        let p = plain.expose();
        if p.len() != 21 {
            return None;
        }
        Some(Link {
            tenant,
            message: MessageId::from_bytes(p[..16].try_into().ok()?),
            index: u32::from_be_bytes(p[16..20].try_into().ok()?),
            tagged: p[20] == 1,
        })
    }

    /// The two links (everything, this message's tags) for one recipient.
    pub(crate) fn unsubscribe_links(
        &self,
        base: &str,
        tenant: TenantId,
        message: MessageId,
        index: u32,
    ) -> (String, String) {
        let base = base.trim_end_matches('/');
        let url = |tagged| {
            let token = self.link_token(Link {
                tenant,
                message,
                index,
                tagged,
            });
            format!("{base}{UNSUBSCRIBE_PATH}{token}")
        };
        (url(false), url(true))
    }

    /// What a link would do, for the confirmation page. Unknown, altered
    /// and purged links are not found.
    pub async fn unsubscribe_page(&self, token: &str) -> Result<UnsubscribeView, AppError> {
        let link = self
            .open_link(token)
            .ok_or(AppError::NotFound("unsubscribe link"))?;
        self.unsubscribe_view(link, false).await
    }

    /// Follows a link: the address goes on the unsubscribe list (widening
    /// an entry already there, never narrowing it) and an `unsubscribed`
    /// event is written, in one transaction. Following it again changes
    /// nothing.
    pub async fn unsubscribe(&self, token: &str) -> Result<UnsubscribeView, AppError> {
        let link = self
            .open_link(token)
            .ok_or(AppError::NotFound("unsubscribe link"))?;
        self.unsubscribe_view(link, true).await
    }

    /// What `link` names and whether its address is already unsubscribed
    /// for its scope (with the entry there now).
    async fn look_up(
        &self,
        db: &impl herald_store::Connection,
        link: Link,
    ) -> Result<(UnsubscribeView, QueuedMessage, Option<Suppression>), AppError> {
        let not_found = || AppError::NotFound("unsubscribe link");
        let tenant = tenants::get(db, link.tenant).await?.ok_or_else(not_found)?;
        let message = messages::get(db, link.tenant, link.message)
            .await?
            .ok_or_else(not_found)?;
        let recipient = messages::recipients(db, link.tenant, link.message)
            .await?
            .into_iter()
            .find(|r| r.index == link.index)
            .ok_or_else(not_found)?;
        // A tag link on a message without tags is a link for everything.
        let scope = if link.tagged {
            messages::tags(db, link.tenant, link.message).await?
        } else {
            Vec::new()
        };
        let existing = suppressions::get(
            db,
            link.tenant,
            SuppressionKind::Unsubscribe,
            recipient.address.as_str(),
        )
        .await?;
        let covered = existing.as_ref().is_some_and(|e| {
            e.tags.is_empty()
                || e.tags.iter().any(|t| t == "*")
                || (!scope.is_empty() && scope.iter().all(|t| e.tags.contains(t)))
        });
        let view = UnsubscribeView {
            address: recipient.address,
            tenant_name: tenant.name.to_string(),
            tags: scope,
            already: covered,
        };
        Ok((view, message, existing))
    }

    async fn unsubscribe_view(&self, link: Link, act: bool) -> Result<UnsubscribeView, AppError> {
        if !act {
            // The page only reads (link scanners fetch it): no write lock.
            return Ok(self.look_up(self.store.read(), link).await?.0);
        }
        let tx = self.store.begin().await?;
        let db = tx.conn();
        let (view, message, existing) = self.look_up(db, link).await?;
        if view.already {
            return Ok(view);
        }
        let scope = view.tags.clone();
        let recipient = &view.address;
        let merged = match existing {
            Some(e) if !scope.is_empty() => {
                let mut t = e.tags;
                for tag in &scope {
                    if !t.contains(tag) {
                        t.push(tag.clone());
                    }
                }
                t
            }
            _ => scope.clone(),
        };
        suppressions::put_many(
            db,
            link.tenant,
            &[Suppression {
                kind: SuppressionKind::Unsubscribe,
                address: recipient.clone(),
                code: None,
                error: None,
                tags: merged,
                created_at: Timestamp::now(),
            }],
        )
        .await?;
        let mut e = Event::for_recipient(
            link.tenant,
            message.id,
            &message.mail_from,
            recipient,
            EventKind::Unsubscribed,
        );
        e.profile_id = message.profile_id;
        e.identity_id = message.identity_id;
        e.description = Some(if scope.is_empty() {
            "unsubscribed from all mail through the message's link".to_owned()
        } else {
            format!("unsubscribed from mail tagged {}", scope.join(", "))
        });
        e.detail = Some(serde_json::json!({ "tags": scope }).to_string());
        events::insert(db, &e).await?;
        tx.commit().await?;
        tracing::info!(tenant = %link.tenant, message = %message.id, "recipient unsubscribed");
        Ok(view)
    }
}

/// What the unsubscribe page shows.
#[derive(Debug, Clone)]
pub struct UnsubscribeView {
    pub address: EmailAddress,
    pub tenant_name: String,
    /// Empty: all of the tenant's mail.
    pub tags: Vec<String>,
    /// The address was already on the list for this scope.
    pub already: bool,
}
