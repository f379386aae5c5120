//! Typed identifiers. Each is a UUIDv7 (time-ordered, so keyset paging by id
//! follows creation order) kept apart by type so a user id can never be passed
//! where a tenant id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::InvalidInput;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The id with these 16 bytes (read back from a token).
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| InvalidInput::new($field, "is not a valid id"))
            }
        }
    };
}

id_type!(
    /// A tenant: one customer of the product that runs Herald.
    TenantId,
    "tenant_id"
);
id_type!(
    /// A user of one tenant.
    UserId,
    "user_id"
);
id_type!(
    /// An API key of one tenant.
    ApiKeyId,
    "api_key_id"
);
id_type!(
    /// A portal login session.
    SessionId,
    "session_id"
);
id_type!(
    /// One line of a tenant's audit trail.
    AuditEntryId,
    "audit_entry_id"
);
id_type!(
    /// A named relay profile: how a tenant's mail leaves.
    RelayProfileId,
    "relay_profile_id"
);
id_type!(
    /// A sender identity: a mailbox a user (or a department) sends as.
    IdentityId,
    "identity_id"
);

id_type!(
    /// An accepted message.
    MessageId,
    "message_id"
);
id_type!(
    /// One entry of a tenant's event log.
    EventId,
    "event_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_order_by_creation() {
        let a = TenantId::new();
        let b = TenantId::new();
        assert!(a.to_string() < b.to_string());
        assert_eq!(a, a.to_string().parse().unwrap());
        assert!("not-an-id".parse::<TenantId>().is_err());
    }
}
