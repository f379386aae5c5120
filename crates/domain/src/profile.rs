//! A relay profile's settings: how mail leaves (SMTP, the Mailgun API or the
//! sandbox), what it may look like (From, purposes, sender policy,
//! attachments) and how fast and how persistently it is sent. Secrets
//! (passwords, API keys) are not part of the settings: they are sealed apart
//! and only their presence is ever shown.
//!
//! The settings deserialize from the API's JSON with every field parsed, so a
//! `ProfileSettings` value is valid field by field; [`ProfileSettings::check`]
//! adds the rules that span fields.

use serde::{Deserialize, Serialize};

use crate::text::{refuse_control_chars, single_line};
use crate::{
    AttachmentLimitMb, DisplayName, DomainName, EmailAddress, IdentityId, InvalidInput, Port,
    RelayHost, RetrySchedule, SecurityMode, SmtpTimeout, UserId,
};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidInput> {
                single_line($field, value, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        crate::tenant::string_conversions!($name);
    };
}

text_type!(
    /// A relay profile's name ("District Office 365"), unique per tenant
    /// regardless of case.
    ProfileName,
    "name",
    100
);
text_type!(
    /// A sending purpose ("General", "Parent Access", "Messaging",
    /// "Gradebook"): mail for it may use its own From and its own profile.
    PurposeName,
    "purpose",
    64
);
text_type!(
    /// A user name for SMTP AUTH or a bounce mailbox.
    SmtpUsername,
    "username",
    320
);

impl PurposeName {
    /// Purposes match regardless of case.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Extra certificate authorities to trust, in PEM. Only the shape is checked
/// here; the mailer parses the certificates when the profile is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaCertificates(String);

impl CaCertificates {
    pub const MAX_BYTES: usize = 64 * 1024;

    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let field = "trust.extra_ca_pem";
        if value.len() > Self::MAX_BYTES {
            return Err(InvalidInput::new(field, "must be at most 64 KiB"));
        }
        if value.contains('\0') || !value.contains("-----BEGIN CERTIFICATE-----") {
            return Err(InvalidInput::new(
                field,
                "must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::tenant::string_conversions!(CaCertificates);

/// How the server's certificate is trusted (Campus Cafe's "SSL trust host").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct TlsTrust {
    /// Certificate authorities trusted besides the system roots (a private CA).
    pub extra_ca_pem: Option<CaCertificates>,
    /// Check the certificate against this name instead of the host (for a
    /// server reached by IP or by an internal alias).
    pub accept_host_name: Option<DomainName>,
}

/// Who authenticates to the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmtpAuth {
    /// No AUTH (an IP-allow-listed relay).
    None,
    /// The profile's own account: `username` here, the password sealed.
    Password { username: SmtpUsername },
    /// Each sender identity signs in as itself (its password or OAuth token).
    Identity,
}

/// An SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SmtpRelay {
    pub host: RelayHost,
    /// Blank: 25 for none, 587 for STARTTLS, 465 for implicit TLS.
    #[serde(default)]
    pub port: Option<Port>,
    pub security: SecurityMode,
    #[serde(default)]
    pub trust: TlsTrust,
    #[serde(default)]
    pub timeout_seconds: SmtpTimeout,
    /// The name sent in EHLO; blank uses the machine's host name.
    #[serde(default)]
    pub helo_name: Option<DomainName>,
    pub auth: SmtpAuth,
}

impl SmtpRelay {
    pub fn port(&self) -> Port {
        Port::or_default_for(self.port, self.security)
    }
}

/// Mailgun's regions and their API base URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MailgunRegion {
    #[default]
    Us,
    Eu,
}

/// Sending through the Mailgun HTTP API (Infinite Campus's "Use Mailgun API").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailgunRelay {
    /// The Mailgun sending domain.
    pub domain: DomainName,
    #[serde(default)]
    pub region: MailgunRegion,
    /// Overrides the region's URL (a proxy, or a test server); http(s)://host[:port].
    #[serde(default)]
    pub base_url: Option<BaseUrl>,
}

impl MailgunRelay {
    pub fn api_base(&self) -> &str {
        match (&self.base_url, self.region) {
            (Some(u), _) => u.as_str(),
            (None, MailgunRegion::Us) => "https://api.mailgun.net",
            (None, MailgunRegion::Eu) => "https://api.eu.mailgun.net",
        }
    }
}

/// An absolute http or https URL without credentials, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        refuse_control_chars("base_url", value)?;
        let fail = || InvalidInput::new("base_url", "must be http(s)://host[:port][/path]");
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"))
            .ok_or_else(fail)?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty()
            || authority.contains('@')
            || value.contains(['?', '#', ' '])
            || value.len() > 500
        {
            return Err(fail());
        }
        Ok(Self(value.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::tenant::string_conversions!(BaseUrl);

/// How a profile's mail leaves Herald: `{"smtp": {...}}`,
/// `{"mailgun": {...}}` or `"sandbox"`. (Externally tagged, so an error in a
/// nested field is reported at its full path.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Smtp(SmtpRelay),
    Mailgun(MailgunRelay),
    /// Accepts and records delivery without sending anything: for trying
    /// Herald out.
    Sandbox,
}

impl Transport {
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "smtp",
            Transport::Mailgun(_) => "mailgun",
            Transport::Sandbox => "sandbox",
        }
    }
}

/// `"Name" <address>`: an address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FromMailbox {
    pub address: EmailAddress,
    #[serde(default)]
    pub name: Option<DisplayName>,
}

/// A purpose with the From its mail carries (Genesis's per-purpose senders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    pub name: PurposeName,
    pub from: FromMailbox,
}

/// Whose name appears before the From address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DisplayNameRule {
    /// Always the profile's (or purpose's) From name.
    #[default]
    Fixed,
    /// The sending user's display name.
    FromUser,
    /// The submitter may give one; otherwise the From name.
    CustomAllowed,
    /// The submitter must give one.
    CustomRequired,
}

/// What a sender may put in From, Reply-To and the display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SenderPolicy {
    /// Reply-To is the sending user's own address (From stays the profile's).
    pub reply_to_user: bool,
    /// The submitter may set Reply-To.
    pub allow_custom_reply_to: bool,
    pub display_name: DisplayNameRule,
    /// Always send as the From address (servers that accept only the
    /// authenticated mailbox): the user goes into Reply-To and the name.
    pub always_send_as_from: bool,
    /// Only addresses in the tenant's sending domains may appear in From.
    pub from_tenant_domains_only: bool,
}

impl Default for SenderPolicy {
    fn default() -> Self {
        Self {
            reply_to_user: false,
            allow_custom_reply_to: false,
            display_name: DisplayNameRule::Fixed,
            always_send_as_from: false,
            from_tenant_domains_only: true,
        }
    }
}

/// Attachments and the Max Size rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentPolicy {
    pub allowed: bool,
    /// The total of all attachments on one message; blank means 25 MB.
    pub max_size_mb: Option<AttachmentLimitMb>,
    /// The user emailed when a message exceeds Max Size.
    pub notify_user_id: Option<UserId>,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        Self {
            allowed: true,
            max_size_mb: None,
            notify_user_id: None,
        }
    }
}

impl AttachmentPolicy {
    pub const DEFAULT_LIMIT_MB: u32 = 25;

    pub fn limit_bytes(&self) -> u64 {
        self.max_size_mb
            .map(|m| m.bytes())
            .unwrap_or(u64::from(Self::DEFAULT_LIMIT_MB) * 1024 * 1024)
    }
}

use crate::delivery::{BounceMailbox, DeliverySettings, MailboxAuth};

/// Everything a tenant admin sets on a relay profile, secrets aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    pub name: ProfileName,
    pub transport: Transport,
    /// The default From (required; it must be a real mailbox).
    pub from: FromMailbox,
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    #[serde(default)]
    pub policy: SenderPolicy,
    #[serde(default)]
    pub attachments: AttachmentPolicy,
    #[serde(default)]
    pub delivery: DeliverySettings,
    #[serde(default)]
    pub bounce_mailbox: Option<BounceMailbox>,
}

/// Which secrets a profile's settings call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileSecret {
    /// The SMTP password of `SmtpAuth::Password`.
    Password,
    /// The Mailgun API key.
    ApiKey,
    /// The bounce mailbox's password.
    BouncePassword,
}

impl ProfileSecret {
    pub const ALL: [ProfileSecret; 3] = [Self::Password, Self::ApiKey, Self::BouncePassword];

    pub fn field(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ApiKey => "api_key",
            Self::BouncePassword => "bounce_password",
        }
    }
}

impl ProfileSettings {
    /// Rules that span fields. `domains` are the tenant's sending domains.
    pub fn check(&self, domains: &[DomainName]) -> Result<(), InvalidInput> {
        let mut seen = Vec::new();
        for (i, p) in self.purposes.iter().enumerate() {
            if seen.contains(&p.name.key()) {
                return Err(InvalidInput::new(
                    "purposes",
                    format!("purpose {:?} appears twice (#{})", p.name.as_str(), i + 1),
                ));
            }
            seen.push(p.name.key());
        }
        if self.policy.from_tenant_domains_only {
            let allowed = |a: &EmailAddress| domains.iter().any(|d| d.as_str() == a.domain());
            if !allowed(&self.from.address) {
                return Err(InvalidInput::new(
                    "from.address",
                    format!(
                        "{} is not in the tenant's sending domains ({})",
                        self.from.address,
                        list(domains)
                    ),
                ));
            }
            if let Some(p) = self.purposes.iter().find(|p| !allowed(&p.from.address)) {
                return Err(InvalidInput::new(
                    "purposes",
                    format!(
                        "{}: {} is not in the tenant's sending domains",
                        p.name.as_str(),
                        p.from.address
                    ),
                ));
            }
        }
        if let Some(b) = &self.bounce_mailbox {
            b.check()?;
        }
        if !self.attachments.allowed && self.attachments.max_size_mb.is_some() {
            return Err(InvalidInput::new(
                "attachments.max_size_mb",
                "has no meaning when attachments are not allowed",
            ));
        }
        Ok(())
    }

    /// The secrets these settings need before the profile can send.
    pub fn required_secrets(&self) -> Vec<ProfileSecret> {
        let mut need = Vec::new();
        match &self.transport {
            Transport::Smtp(SmtpRelay {
                auth: SmtpAuth::Password { .. },
                ..
            }) => need.push(ProfileSecret::Password),
            Transport::Mailgun(_) => need.push(ProfileSecret::ApiKey),
            _ => {}
        }
        if let Some(BounceMailbox {
            auth: MailboxAuth::Password,
            ..
        }) = &self.bounce_mailbox
        {
            need.push(ProfileSecret::BouncePassword);
        }
        need
    }

    /// Advice that does not stop a save (Infinite Campus warns about
    /// "noreply" senders: replies vanish and spam filters distrust them).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let all = std::iter::once(("from.address", &self.from.address))
            .chain(self.purposes.iter().map(|p| ("purposes", &p.from.address)));
        for (field, addr) in all {
            let local = addr
                .local_part()
                .to_lowercase()
                .replace(['-', '_', '.'], "");
            if local.contains("noreply") || local.contains("donotreply") {
                out.push(format!(
                    "{field}: {addr} looks like a no-reply address; replies are lost and some \
                     receivers treat such senders as spam"
                ));
            }
        }
        out
    }

    /// The From for a purpose: the purpose's own, else the profile's.
    pub fn from_for(&self, purpose: Option<&PurposeName>) -> &FromMailbox {
        purpose
            .and_then(|p| self.purposes.iter().find(|q| q.name.key() == p.key()))
            .map(|p| &p.from)
            .unwrap_or(&self.from)
    }

    /// The identity a bounce mailbox signs in as, if any.
    pub fn bounce_identity(&self) -> Option<IdentityId> {
        match &self.bounce_mailbox {
            Some(BounceMailbox {
                auth: MailboxAuth::Identity { identity_id },
                ..
            }) => Some(*identity_id),
            _ => None,
        }
    }

    /// The retry schedule (a shortcut for the delivery settings').
    pub fn retry(&self) -> RetrySchedule {
        self.delivery.retry()
    }
}

/// Whether a profile's own credentials work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProfileStatus {
    #[default]
    Active,
    /// The relay refused the profile's own credentials: mail sent with them
    /// is held until the profile is saved again or passes a test.
    Failing,
}

impl ProfileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileStatus::Active => "active",
            ProfileStatus::Failing => "failing",
        }
    }
}

impl std::str::FromStr for ProfileStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "failing" => Ok(Self::Failing),
            _ => Err(InvalidInput::new("status", "must be active or failing")),
        }
    }
}

/// A tenant's named relay profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayProfile {
    pub id: crate::RelayProfileId,
    pub tenant_id: crate::TenantId,
    pub settings: ProfileSettings,
    pub status: ProfileStatus,
    /// Why it is failing.
    pub last_error: Option<String>,
    pub created_at: crate::Timestamp,
    pub updated_at: crate::Timestamp,
}

fn list(domains: &[DomainName]) -> String {
    domains
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
