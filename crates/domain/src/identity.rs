//! Sender identities: the mailboxes people send as (Campus Cafe's per-user
//! email, Genesis's display name), each signing in with a sealed password or
//! with OAuth2 tokens ("Authenticate with MFA").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{
    DisplayName, EmailAddress, IdentityId, InvalidInput, RelayProfileId, TenantId, Timestamp,
    UserId,
};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

macro_rules! str_enum {
    ($name:ident, $field:literal { $($variant:ident => $s:literal),* $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    InvalidInput::new($field, format!("must be one of {}", names.join(", ")))
                })
            }
        }
    };
}

/// Whether an identity can send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentityStatus {
    /// Not yet proven by a test send or a consent.
    Unverified,
    /// The last test or consent succeeded.
    Connected,
    /// The server refused its credentials; its mail is held.
    Failing,
    /// Its OAuth grant was revoked or expired: the owner must authenticate again.
    NeedsReauth,
}

str_enum!(IdentityStatus, "status" {
    Unverified => "unverified",
    Connected => "connected",
    Failing => "failing",
    NeedsReauth => "needs_reauth",
});

/// The OAuth providers whose mailboxes Herald sends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OAuthProvider {
    Microsoft,
    Google,
}

str_enum!(OAuthProvider, "provider" {
    Microsoft => "microsoft",
    Google => "google",
});

/// How an identity signs in to its relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum IdentityAuth {
    /// Its own password (sealed); the user name is the address unless set.
    Password {
        #[serde(default)]
        username: Option<crate::SmtpUsername>,
    },
    /// OAuth2 tokens used over SMTP XOAUTH2.
    #[serde(rename = "oauth")]
    OAuth {
        provider: OAuthProvider,
        /// The mailbox the provider vouched for at the last consent.
        #[serde(default)]
        granted_mailbox: Option<EmailAddress>,
        /// When the current access token expires.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
        access_expires_at: Option<Timestamp>,
        /// Bumped each time the tokens change, so pooled connections made
        /// with an older token are not reused.
        #[serde(default)]
        generation: i64,
        /// The scopes the provider granted at the last consent or refresh.
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl IdentityAuth {
    pub fn method(&self) -> &'static str {
        match self {
            IdentityAuth::Password { .. } => "password",
            IdentityAuth::OAuth { .. } => "oauth",
        }
    }
}

/// A mailbox someone sends as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderIdentity {
    pub id: IdentityId,
    pub tenant_id: TenantId,
    pub address: EmailAddress,
    pub display_name: Option<DisplayName>,
    /// The user it belongs to; `None` for a shared department address.
    pub owner: Option<UserId>,
    /// For a shared address: the users allowed to send as it.
    pub shared_with: Vec<UserId>,
    pub profile_id: RelayProfileId,
    /// The identity its owner sends as by default (one per user).
    pub preferred: bool,
    pub status: IdentityStatus,
    pub auth: IdentityAuth,
    /// The diagnosis of the last failure, for the owner to read.
    pub last_error: Option<String>,
    pub last_checked_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl SenderIdentity {
    /// Whether `user` may send as this identity.
    pub fn usable_by(&self, user: UserId) -> bool {
        self.owner == Some(user) || (self.owner.is_none() && self.shared_with.contains(&user))
    }

    /// The user name for SMTP AUTH.
    pub fn username(&self) -> &str {
        match &self.auth {
            IdentityAuth::Password {
                username: Some(u), ..
            } => u.as_str(),
            _ => self.address.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_providers_round_trip() {
        for s in IdentityStatus::ALL {
            assert_eq!(*s, s.as_str().parse().unwrap());
        }
        assert_eq!(
            "google".parse::<OAuthProvider>().unwrap(),
            OAuthProvider::Google
        );
        let err = "yahoo".parse::<OAuthProvider>().unwrap_err();
        assert_eq!(err.field, "provider");
        assert!(err.reason.contains("microsoft, google"));
    }

    #[test]
    fn shared_identities_serve_only_named_users() {
        let (owner, named, other) = (UserId::new(), UserId::new(), UserId::new());
        let mut id = SenderIdentity {
            id: IdentityId::new(),
            tenant_id: TenantId::new(),
            address: EmailAddress::parse("admissions@school.example").unwrap(),
            display_name: None,
            owner: None,
            shared_with: vec![named],
            profile_id: RelayProfileId::new(),
            preferred: false,
            status: IdentityStatus::Unverified,
            auth: IdentityAuth::Password { username: None },
            last_error: None,
            last_checked_at: None,
            created_at: Timestamp::now(),
        };
        assert!(id.usable_by(named) && !id.usable_by(other));
        assert_eq!(id.username(), "admissions@school.example");
        id.owner = Some(owner);
        assert!(id.usable_by(owner) && !id.usable_by(named));
    }
}
