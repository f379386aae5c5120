//! Queue state as data: a message's and each recipient's status, attempts,
//! next attempt and lease (who is delivering it, until when).

use std::fmt;
use std::str::FromStr;

use crate::{
    EmailAddress, IdentityId, InvalidInput, MessageId, PurposeName, RelayProfileId, TenantId,
    Timestamp,
};

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $s:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),* }

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
                    InvalidInput::new("status", format!("must be one of {}", names.join(", ")))
                })
            }
        }
    };
}

status_enum!(
    /// Where one recipient's delivery stands.
    RecipientStatus {
        /// Waiting for its next attempt.
        Queued => "queued",
        /// A worker holds its lease and is delivering it.
        Delivering => "delivering",
        Delivered => "delivered",
        /// Given up (permanent failure or max errors reached).
        Failed => "failed",
        /// Cancelled by a user before it was sent.
        Cancelled => "cancelled",
        /// Its sender's credentials were refused: waiting for them to be fixed.
        Held => "held",
        /// Dropped because the address is on a suppression list.
        Suppressed => "suppressed",
    }
);

impl RecipientStatus {
    /// No attempt will be made any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Failed | Self::Cancelled | Self::Suppressed
        )
    }
}

status_enum!(
    /// A message's status, summarised from its recipients' (the queue view's
    /// "sent" / "failed").
    MessageStatus {
        Queued => "queued",
        Sent => "sent",
        /// Some recipients delivered, some failed or cancelled.
        Partial => "partial",
        Failed => "failed",
        Cancelled => "cancelled",
        Held => "held",
    }
);

impl MessageStatus {
    /// The summary of recipient statuses.
    pub fn of(recipients: &[RecipientStatus]) -> Self {
        use RecipientStatus as R;
        let any = |s: R| recipients.contains(&s);
        if recipients.iter().any(|s| !s.is_final() && *s != R::Held) {
            return Self::Queued;
        }
        if any(R::Held) {
            return Self::Held;
        }
        match (
            any(R::Delivered),
            any(R::Failed) || any(R::Suppressed),
            any(R::Cancelled),
        ) {
            (true, false, false) => Self::Sent,
            (true, _, _) => Self::Partial,
            (false, true, _) => Self::Failed,
            (false, false, true) => Self::Cancelled,
            (false, false, false) => Self::Queued,
        }
    }
}

/// An accepted message's envelope and bookkeeping (its MIME bytes are
/// stored beside it and read only by the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MessageId,
    pub tenant_id: TenantId,
    /// `None` once its profile was deleted (only finished messages: a
    /// profile with unfinished ones cannot be deleted).
    pub profile_id: Option<RelayProfileId>,
    pub identity_id: Option<IdentityId>,
    pub purpose: Option<PurposeName>,
    /// The envelope sender (MAIL FROM).
    pub mail_from: EmailAddress,
    /// The Message-ID header, without angle brackets.
    pub message_id_header: String,
    pub subject: String,
    pub size: u64,
    pub test_mode: bool,
    pub deliver_after: Timestamp,
    pub created_at: Timestamp,
}

/// One recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientState {
    pub message_id: MessageId,
    pub index: u32,
    pub address: EmailAddress,
    pub status: RecipientStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_reply: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecipientStatus as R;

    #[test]
    fn message_status_summarises_recipients() {
        assert_eq!(
            MessageStatus::of(&[R::Delivered, R::Delivered]),
            MessageStatus::Sent
        );
        assert_eq!(
            MessageStatus::of(&[R::Delivered, R::Queued]),
            MessageStatus::Queued
        );
        assert_eq!(
            MessageStatus::of(&[R::Delivered, R::Failed]),
            MessageStatus::Partial
        );
        assert_eq!(
            MessageStatus::of(&[R::Failed, R::Suppressed]),
            MessageStatus::Failed
        );
        assert_eq!(MessageStatus::of(&[R::Cancelled]), MessageStatus::Cancelled);
        assert_eq!(
            MessageStatus::of(&[R::Held, R::Delivered]),
            MessageStatus::Held
        );
        for s in R::ALL {
            assert_eq!(*s, s.as_str().parse().unwrap());
        }
    }
}
