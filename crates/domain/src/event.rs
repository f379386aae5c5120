//! The per-tenant event log: everything that happens to a message, and to
//! the identities and profiles that send it, in Mailgun's vocabulary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{
    EmailAddress, EventId, IdentityId, InvalidInput, MessageId, RelayProfileId, TenantId, Timestamp,
};

/// How final a failure is (Mailgun's `severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Temporary,
    Permanent,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Temporary => "temporary",
            Severity::Permanent => "permanent",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Accepted,
    Rejected,
    Delivered,
    Failed,
    Complained,
    Unsubscribed,
    Stored,
    /// A user cancelled a recipient before it was sent (Herald's own kind).
    Cancelled,
    /// An identity connected through "Authenticate with MFA".
    IdentityConnected,
    /// An identity's access token was refreshed.
    TokenRefreshed,
    /// The provider revoked the grant: the owner must consent again.
    ReauthRequired,
    /// An identity's tokens were wiped.
    IdentityDisconnected,
    /// A relay or identity refused our credentials; its mail is held.
    Paused,
    /// Held mail was released.
    Resumed,
    /// A profile's bounce mailbox failed its configured number of polls in
    /// a row.
    MailboxFailing,
    /// A failing bounce mailbox answered again.
    MailboxRecovered,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        Self::Accepted,
        Self::Rejected,
        Self::Delivered,
        Self::Failed,
        Self::Complained,
        Self::Unsubscribed,
        Self::Stored,
        Self::Cancelled,
        Self::IdentityConnected,
        Self::TokenRefreshed,
        Self::ReauthRequired,
        Self::IdentityDisconnected,
        Self::Paused,
        Self::Resumed,
        Self::MailboxFailing,
        Self::MailboxRecovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Complained => "complained",
            Self::Unsubscribed => "unsubscribed",
            Self::Stored => "stored",
            Self::Cancelled => "cancelled",
            Self::IdentityConnected => "identity_connected",
            Self::TokenRefreshed => "token_refreshed",
            Self::ReauthRequired => "reauth_required",
            Self::IdentityDisconnected => "identity_disconnected",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::MailboxFailing => "mailbox_failing",
            Self::MailboxRecovered => "mailbox_recovered",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidInput::new("event", format!("{s:?} is not an event kind")))
    }
}

/// One event. Message events fill the recipient and message fields (issue
/// of the send pipeline); identity and profile events name those.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub at: Timestamp,
    pub kind: EventKind,
    pub identity_id: Option<IdentityId>,
    pub profile_id: Option<RelayProfileId>,
    pub message_id: Option<MessageId>,
    pub recipient: Option<EmailAddress>,
    /// The sending domain of a message event (its envelope sender's, in
    /// lower case): what Mailgun's `/v3/{domain}/events` is scoped by.
    pub domain: Option<String>,
    pub severity: Option<Severity>,
    /// Mailgun's reason: generic, bounce, suppress-bounce, old, …
    pub reason: Option<String>,
    /// A human-readable reason or description.
    pub description: Option<String>,
    /// JSON with what Mailgun's item carries beyond the columns
    /// (envelope, message headers, delivery-status, tags, user-variables).
    pub detail: Option<String>,
}

impl Event {
    /// An event about an identity, now.
    pub fn for_identity(
        tenant_id: TenantId,
        identity: IdentityId,
        kind: EventKind,
        description: Option<String>,
    ) -> Self {
        Self {
            id: EventId::new(),
            tenant_id,
            at: Timestamp::now(),
            kind,
            identity_id: Some(identity),
            profile_id: None,
            message_id: None,
            recipient: None,
            domain: None,
            severity: None,
            reason: None,
            description,
            detail: None,
        }
    }

    /// An event about a relay profile (paused, resumed).
    pub fn for_profile(
        tenant_id: TenantId,
        profile: RelayProfileId,
        kind: EventKind,
        description: Option<String>,
    ) -> Self {
        Self {
            profile_id: Some(profile),
            identity_id: None,
            ..Self::for_identity(tenant_id, IdentityId::new(), kind, description)
        }
    }

    /// An event about one recipient of a message sent from `sender`, now.
    pub fn for_recipient(
        tenant_id: TenantId,
        message_id: MessageId,
        sender: &EmailAddress,
        recipient: &EmailAddress,
        kind: EventKind,
    ) -> Self {
        Self {
            id: EventId::new(),
            tenant_id,
            at: Timestamp::now(),
            kind,
            identity_id: None,
            profile_id: None,
            message_id: Some(message_id),
            recipient: Some(recipient.clone()),
            domain: Some(sender.domain().to_ascii_lowercase()),
            severity: None,
            reason: None,
            description: None,
            detail: None,
        }
    }
}

/// One filter of an event search: any of `values` matches (Mailgun's
/// `a OR b`), and `negated` inverts it (`NOT a`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negated: bool,
}

impl Terms {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Parses a Mailgun filter expression: `value`, `a OR b OR c`, or `NOT`
    /// before either. Quotes around a value are removed. Parentheses and
    /// `AND` are refused (a field given twice is already an AND).
    pub fn parse(field: &'static str, expr: &str) -> Result<Self, InvalidInput> {
        let bad = |why: &str| InvalidInput::new(field, format!("{expr:?}: {why}"));
        if expr.chars().any(|c| c.is_control()) {
            return Err(bad("control characters are not allowed"));
        }
        let mut rest = expr.trim();
        let mut negated = false;
        if let Some(r) = rest.strip_prefix("NOT ") {
            negated = true;
            rest = r.trim_start();
        }
        if rest.contains('(') && !rest.starts_with('"') {
            return Err(bad("parentheses are not supported; use a OR b, or NOT a"));
        }
        let mut values = Vec::new();
        for part in rest.split(" OR ") {
            let v = part.trim();
            if v == "AND" || v.contains(" AND ") {
                return Err(bad("AND is not supported; give the field twice"));
            }
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() {
                return Err(bad("an empty value"));
            }
            if v.len() > 998 {
                return Err(bad("a value longer than 998 characters"));
            }
            values.push(v.to_owned());
        }
        Ok(Self { values, negated })
    }
}

/// What an event search selects: every filter must match (a field given
/// twice is an AND of both). Message filters (`from`, `subject`, …) apply to
/// the message an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only events of messages sent from this domain (`/v3/{domain}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<Terms>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Terms>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipient: Vec<Terms>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Terms>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Terms>,
    /// A value matches when the subject contains it (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject: Vec<Terms>,
    /// The Message-ID header, without angle brackets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_id: Vec<Terms>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Terms>,
    /// Herald's message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityId>,
}

/// An event search: the filter, the time range (both ends inclusive) and
/// the direction. Pages continue strictly after `(ts, id)` in that
/// direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSearch {
    pub filter: EventFilter,
    /// Microseconds; `None` is unbounded.
    pub begin: Option<i64>,
    pub end: Option<i64>,
    pub ascending: bool,
}

/// The message an event is about, as events report it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    pub mail_from: String,
    pub message_id_header: String,
    pub subject: String,
    /// JSON: to, from, subject, message-id.
    pub headers: String,
    /// JSON array.
    pub tags: String,
    /// JSON object.
    pub user_variables: String,
    pub size: u64,
    pub test_mode: bool,
}

/// An event with its message (absent when the event is not about a stored
/// message, or the message is gone).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub event: Event,
    pub message: Option<EventMessage>,
}
