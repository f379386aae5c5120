//! Herald's mail-domain types and rules. Everything here is pure: no I/O, no
//! database, no HTTP. A value of one of these types has already been checked,
//! so code that receives one never validates it again ("parse, don't validate").

pub mod audit;
pub mod delivery;
pub mod email;
pub mod event;
pub mod identity;
pub mod ids;
pub mod message;
pub mod oauth;
#[cfg(feature = "openapi")]
mod openapi;
pub mod outcome;
pub mod policy;
pub mod profile;
pub mod queue;
pub mod records;
pub mod relay;
pub mod report;
pub mod role;
pub mod tenant;
pub mod text;
pub mod time;

pub use audit::{AuditAction, ChangedFields};
pub use delivery::{BatchSize, BounceMailbox, DeliverySettings, MailboxAuth, MailboxProtocol};
pub use email::{DisplayName, EmailAddress};
pub use event::{
    Event, EventFilter, EventKind, EventMessage, EventRecord, EventSearch, Severity, Terms,
};
pub use identity::{IdentityAuth, IdentityStatus, OAuthProvider, SenderIdentity};
pub use ids::{
    ApiKeyId, AuditEntryId, EventId, IdentityId, MessageId, RelayProfileId, SessionId, TenantId,
    UserId,
};
pub use oauth::{MicrosoftAuthority, OAuthApp, OAuthAppSettings, OAuthClientId, RedirectUri};
pub use outcome::{BounceClass, Decision, DeliveryOutcome, EnhancedCode, SmtpStep, classify_reply};
pub use profile::{
    AttachmentPolicy, BaseUrl, CaCertificates, DisplayNameRule, FromMailbox, MailgunRegion,
    MailgunRelay, ProfileName, ProfileSecret, ProfileSettings, ProfileStatus, Purpose, PurposeName,
    RelayProfile, SenderPolicy, SmtpAuth, SmtpRelay, SmtpUsername, TlsTrust, Transport,
};
pub use queue::{MessageStatus, QueuedMessage, RecipientState, RecipientStatus};
pub use records::{Actor, ApiKey, AuditEntry, Principal, Tenant, User};
pub use relay::{
    AttachmentLimitMb, Port, RelayHost, RetrySchedule, SecurityMode, SmtpTimeout, ThrottleRate,
};
pub use report::{Bounce, DsnAction, DsnRecipient, MailReport, OriginalMessage};
pub use role::Role;
pub use tenant::{DomainName, RetentionDays, TenantName, TenantSlug};
pub use time::Timestamp;

/// A value from outside that could not be parsed into a domain type. `field`
/// names the input that was wrong, so an API can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The same problem, reported against another input field.
    pub fn at(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }
}
