//! Suppression lists as tenants manage them: bounces, unsubscribes and
//! complaints, listed in address order, added (one or many), removed.
//! The send pipeline consults them at acceptance.

use herald_domain::{Actor, EmailAddress, InvalidInput, Role, Timestamp};
use herald_store::suppressions::{self, Suppression, SuppressionKind};

use crate::access::Require;
use crate::{AppError, Herald};

/// At most this many entries per add request.
pub const MAX_ADD: usize = 1000;

/// An entry to add, as it arrives from outside.
#[derive(Debug, Clone, Default)]
pub struct NewSuppression {
    pub address: String,
    pub code: Option<String>,
    pub error: Option<String>,
    pub tags: Vec<String>,
    /// When it happened (epoch seconds or RFC 2822); now if absent.
    pub created_at: Option<String>,
}

fn parse_entry(kind: SuppressionKind, n: &NewSuppression) -> Result<Suppression, InvalidInput> {
    let address = EmailAddress::parse(n.address.trim()).map_err(|e| e.at("address"))?;
    let code = match n.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let ok = c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit());
            if !ok || kind != SuppressionKind::Bounce {
                return Err(InvalidInput::new(
                    "code",
                    "is a three-digit SMTP code, and only bounces have one",
                ));
            }
            Some(c.to_owned())
        }
    };
    let error = match n.error.as_deref() {
        Some(e) if kind != SuppressionKind::Bounce && !e.is_empty() => {
            return Err(InvalidInput::new("error", "only bounces have an error"));
        }
        Some(e) => Some(herald_domain::text::single_line("error", e, 1000)?),
        None => None,
    };
    if !n.tags.is_empty() && kind != SuppressionKind::Unsubscribe {
        return Err(InvalidInput::new("tags", "only unsubscribes have tags"));
    }
    let tags = n
        .tags
        .iter()
        .map(|t| {
            if t == "*" {
                Ok(t.clone())
            } else {
                herald_domain::message::Tag::parse(t)
                    .map(|t| t.as_str().to_owned())
                    .map_err(|e| e.at("tags"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let created_at = match n.created_at.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(c) => Timestamp::parse_api("created_at", c)?,
        None => Timestamp::now(),
    };
    Ok(Suppression {
        kind,
        address,
        code: code.or_else(|| (kind == SuppressionKind::Bounce).then(|| "550".to_owned())),
        error,
        tags,
        created_at,
    })
}

impl Herald {
    /// A page of one list in address order, after (or, `ascending` false,
    /// before) `pivot`.
    pub async fn list_suppressions(
        &self,
        actor: &Actor,
        kind: SuppressionKind,
        pivot: Option<&str>,
        ascending: bool,
        limit: u64,
    ) -> Result<Vec<Suppression>, AppError> {
        actor.require(Role::Viewer)?;
        let mut page = suppressions::page(
            self.store.read(),
            actor.tenant_id,
            kind,
            pivot,
            ascending,
            limit,
        )
        .await?;
        if !ascending {
            page.reverse();
        }
        Ok(page)
    }

    pub async fn suppression(
        &self,
        actor: &Actor,
        kind: SuppressionKind,
        address: &str,
    ) -> Result<Suppression, AppError> {
        actor.require(Role::Viewer)?;
        suppressions::get(self.store.read(), actor.tenant_id, kind, address)
            .await?
            .ok_or(AppError::NotFound("address"))
    }

    /// Adds entries to a list (all or none); returns how many. Senders may
    /// add (recording an unsubscribe is part of sending).
    pub async fn add_suppressions(
        &self,
        actor: &Actor,
        kind: SuppressionKind,
        entries: &[NewSuppression],
    ) -> Result<usize, AppError> {
        actor.require(Role::Sender)?;
        if entries.is_empty() || entries.len() > MAX_ADD {
            return Err(
                InvalidInput::new("address", format!("give 1 to {MAX_ADD} addresses")).into(),
            );
        }
        let parsed = entries
            .iter()
            .map(|e| parse_entry(kind, e))
            .collect::<Result<Vec<_>, _>>()?;
        let tx = self.store.begin().await?;
        suppressions::put_many(tx.conn(), actor.tenant_id, &parsed).await?;
        tx.commit().await?;
        Ok(parsed.len())
    }

    /// Removes one address from a list (404 if it is not there), or the
    /// whole list when `address` is `None`. Admins only: it lets mail go to
    /// addresses that bounced or complained.
    pub async fn delete_suppressions(
        &self,
        actor: &Actor,
        kind: SuppressionKind,
        address: Option<&str>,
    ) -> Result<u64, AppError> {
        actor.require(Role::Admin)?;
        let tx = self.store.begin().await?;
        let n = suppressions::delete(tx.conn(), actor.tenant_id, kind, address).await?;
        tx.commit().await?;
        if address.is_some() && n == 0 {
            return Err(AppError::NotFound("address"));
        }
        Ok(n)
    }
}
