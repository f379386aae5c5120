//! What a user or API key may do inside its tenant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// A tenant role. The seed products call the right to change mail settings
/// "tool rights"; here owner and admin hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads queues, events and logs.
    Viewer,
    /// Sends mail and manages their own sender identity.
    Sender,
    /// Changes the tenant's settings, users and keys.
    Admin,
    /// An admin who may also grant or remove the owner role.
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Sender, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Sender => "sender",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes everything `required` may do.
    pub fn includes(self, required: Role) -> bool {
        self >= required
    }

    /// Owner and admin change settings, users and keys.
    pub fn manages_settings(self) -> bool {
        self.includes(Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidInput::new("role", "must be one of owner, admin, sender, viewer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Owner.includes(Role::Admin));
        assert!(Role::Admin.manages_settings());
        assert!(!Role::Sender.manages_settings());
        assert!(!Role::Viewer.includes(Role::Sender));
        for r in Role::ALL {
            assert_eq!(r, r.as_str().parse().unwrap());
        }
        assert!("root".parse::<Role>().is_err());
    }
}
