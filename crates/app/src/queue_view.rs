//! The queue view (Genesis's e-mail queue): every outgoing message with its
//! status, and one message with its recipients and events.

use herald_domain::{
    Actor, Event, EventKind, InvalidInput, MessageId, MessageStatus, QueuedMessage, RecipientState,
    Role, Timestamp,
};
use herald_store::{events, messages};

use crate::access::{Page, Require};
use crate::{AppError, Herald};

/// Where the next page starts: the last message's creation time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCursor {
    pub at: Timestamp,
    pub id: MessageId,
}

impl MessageCursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.as_micros(), self.id)
    }

    pub fn decode(s: &str) -> Result<Self, AppError> {
        let bad = || InvalidInput::new("cursor", "is not a cursor this API returned");
        let (ts, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            at: Timestamp::from_micros(ts.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// One message as the queue view shows it.
#[derive(Debug, Clone)]
pub struct MessageDetail {
    pub message: QueuedMessage,
    pub status: MessageStatus,
    pub recipients: Vec<RecipientState>,
    pub events: Vec<Event>,
}

impl Herald {
    /// Messages newest first, optionally of one status.
    pub async fn list_messages(
        &self,
        actor: &Actor,
        status: Option<&str>,
        cursor: Option<MessageCursor>,
        limit: u64,
    ) -> Result<Page<(QueuedMessage, MessageStatus), MessageCursor>, AppError> {
        actor.require(Role::Viewer)?;
        let status = status.map(|s| s.parse::<MessageStatus>()).transpose()?;
        let mut items = messages::page(
            self.store.read(),
            actor.tenant_id,
            status,
            cursor.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
        Ok(Page::from_overfetch(&mut items, limit, |(m, _)| {
            MessageCursor {
                at: m.created_at,
                id: m.id,
            }
        }))
    }

    /// Cancels what is not yet sent of a message; returns how many
    /// recipients were cancelled.
    pub async fn cancel_message(&self, actor: &Actor, id: &str) -> Result<usize, AppError> {
        actor.require(Role::Sender)?;
        let id: MessageId = id
            .parse()
            .map_err(|_: InvalidInput| AppError::NotFound("message"))?;
        let tx = self.store.begin().await?;
        let Some(message) = messages::get(tx.conn(), actor.tenant_id, id).await? else {
            return Err(AppError::NotFound("message"));
        };
        let cancelled = messages::cancel_unsent(tx.conn(), actor.tenant_id, id).await?;
        for address in &cancelled {
            let mut e = Event::for_recipient(
                actor.tenant_id,
                id,
                &message.mail_from,
                address,
                EventKind::Cancelled,
            );
            e.description = Some(format!("cancelled by {}", actor.label));
            events::insert(tx.conn(), &e).await?;
        }
        tx.commit().await?;
        Ok(cancelled.len())
    }

    /// Resends messages: their failed and cancelled recipients go back in
    /// the queue, and recipients waiting for a retry become due now
    /// ("retry now"). Returns, per id, how many were requeued or made due. Every id must be
    /// one of the tenant's messages, else nothing is changed.
    pub async fn resend_messages(
        &self,
        actor: &Actor,
        ids: &[String],
    ) -> Result<Vec<(MessageId, usize)>, AppError> {
        actor.require(Role::Sender)?;
        if ids.is_empty() || ids.len() > 500 {
            return Err(InvalidInput::new("ids", "give 1 to 500 message ids").into());
        }
        let tx = self.store.begin().await?;
        let mut out = Vec::new();
        for raw in ids {
            let id: MessageId = raw
                .parse()
                .map_err(|_: InvalidInput| AppError::NotFound("message"))?;
            let Some(message) = messages::get(tx.conn(), actor.tenant_id, id).await? else {
                return Err(AppError::NotFound("message"));
            };
            let again = messages::requeue(tx.conn(), actor.tenant_id, id).await?;
            for address in &again {
                let mut e = Event::for_recipient(
                    actor.tenant_id,
                    id,
                    &message.mail_from,
                    address,
                    EventKind::Accepted,
                );
                e.description = Some(format!("resent by {}", actor.label));
                events::insert(tx.conn(), &e).await?;
            }
            // Recipients waiting for a later retry are made due now.
            let due = messages::retry_now(tx.conn(), actor.tenant_id, id).await?;
            out.push((id, again.len() + due as usize));
        }
        tx.commit().await?;
        self.queue_signal.notify_one();
        Ok(out)
    }

    pub async fn message(&self, actor: &Actor, id: &str) -> Result<MessageDetail, AppError> {
        actor.require(Role::Viewer)?;
        let id: MessageId = id
            .parse()
            .map_err(|_: InvalidInput| AppError::NotFound("message"))?;
        let db = self.store.read();
        let message = messages::get(db, actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("message"))?;
        let status = messages::status(db, actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("message"))?;
        Ok(MessageDetail {
            recipients: messages::recipients(db, actor.tenant_id, id).await?,
            events: events::for_message(db, actor.tenant_id, id).await?,
            message,
            status,
        })
    }
}
