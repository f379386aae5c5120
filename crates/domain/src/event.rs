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
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
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
            severity: None,
            reason: None,
            description,
            detail: None,
        }
    }

    /// An event about one recipient of a message, now.
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

    pub fn for_recipient(
        tenant_id: TenantId,
        message_id: MessageId,
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
            severity: None,
            reason: None,
            description: None,
            detail: None,
        }
    }
}
