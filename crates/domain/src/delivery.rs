//! How fast and how persistently a profile sends, and where its bounces
//! arrive: throttle, batches, retries, soft-bounce retries (Sitefinity,
//! Infinite Campus) and the bounce mailbox (IMAP or POP3).

use serde::{Deserialize, Serialize};

use crate::{IdentityId, InvalidInput, Port, RelayHost, RetrySchedule, SmtpUsername, ThrottleRate};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Messages sent before a batch pause, 1–100,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema), schema(value_type = u32))]
#[serde(try_from = "u32", into = "u32")]
pub struct BatchSize(u32);

impl BatchSize {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for BatchSize {
    type Error = InvalidInput;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        if (1..=100_000).contains(&v) {
            Ok(Self(v))
        } else {
            Err(InvalidInput::new(
                "delivery.batch_size",
                "must be between 1 and 100000",
            ))
        }
    }
}

impl From<BatchSize> for u32 {
    fn from(v: BatchSize) -> u32 {
        v.0
    }
}

/// Sending pace and retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(try_from = "RawDelivery")]
pub struct DeliverySettings {
    /// Blank: no throttle.
    pub throttle_per_second: Option<ThrottleRate>,
    /// Blank: no batches.
    pub batch_size: Option<BatchSize>,
    /// Seconds to wait between batches, 0–3600.
    pub batch_pause_seconds: u32,
    /// Minutes between retries of a temporary failure, 1–1440 (default 10).
    pub minutes_between_retries: u32,
    /// Failed attempts before a message is cancelled, 1–100 (default 10).
    pub max_errors_before_cancel: u32,
    /// Minutes between retries of a soft bounce reported later by the bounce
    /// mailbox, 1–1440.
    pub soft_bounce_retry_minutes: u32,
    /// How many times a soft bounce is retried, 0–20.
    pub soft_bounce_retries: u32,
    /// Leave out Herald's own headers (X-Herald-*), for relays that refuse
    /// unknown headers.
    pub disable_own_headers: bool,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let retry = RetrySchedule::default();
        Self {
            throttle_per_second: None,
            batch_size: None,
            batch_pause_seconds: 0,
            minutes_between_retries: retry.minutes_between_retries,
            max_errors_before_cancel: retry.max_errors_before_cancel,
            soft_bounce_retry_minutes: 60,
            soft_bounce_retries: 3,
            disable_own_headers: false,
        }
    }
}

impl DeliverySettings {
    pub fn retry(&self) -> RetrySchedule {
        RetrySchedule {
            minutes_between_retries: self.minutes_between_retries,
            max_errors_before_cancel: self.max_errors_before_cancel,
        }
    }
}

/// The wire form, checked on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDelivery {
    throttle_per_second: Option<ThrottleRate>,
    batch_size: Option<BatchSize>,
    batch_pause_seconds: u32,
    minutes_between_retries: u32,
    max_errors_before_cancel: u32,
    soft_bounce_retry_minutes: u32,
    soft_bounce_retries: u32,
    disable_own_headers: bool,
}

impl Default for RawDelivery {
    fn default() -> Self {
        let d = DeliverySettings::default();
        Self {
            throttle_per_second: d.throttle_per_second,
            batch_size: d.batch_size,
            batch_pause_seconds: d.batch_pause_seconds,
            minutes_between_retries: d.minutes_between_retries,
            max_errors_before_cancel: d.max_errors_before_cancel,
            soft_bounce_retry_minutes: d.soft_bounce_retry_minutes,
            soft_bounce_retries: d.soft_bounce_retries,
            disable_own_headers: d.disable_own_headers,
        }
    }
}

impl TryFrom<RawDelivery> for DeliverySettings {
    type Error = InvalidInput;
    fn try_from(r: RawDelivery) -> Result<Self, Self::Error> {
        let bounded = |v: u32, range: std::ops::RangeInclusive<u32>, field: &'static str| {
            if range.contains(&v) {
                Ok(v)
            } else {
                Err(InvalidInput::new(
                    field,
                    format!("must be between {} and {}", range.start(), range.end()),
                ))
            }
        };
        Ok(Self {
            throttle_per_second: r.throttle_per_second,
            batch_size: r.batch_size,
            batch_pause_seconds: bounded(
                r.batch_pause_seconds,
                0..=3600,
                "delivery.batch_pause_seconds",
            )?,
            minutes_between_retries: bounded(
                r.minutes_between_retries,
                1..=1440,
                "delivery.minutes_between_retries",
            )?,
            max_errors_before_cancel: bounded(
                r.max_errors_before_cancel,
                1..=100,
                "delivery.max_errors_before_cancel",
            )?,
            soft_bounce_retry_minutes: bounded(
                r.soft_bounce_retry_minutes,
                1..=1440,
                "delivery.soft_bounce_retry_minutes",
            )?,
            soft_bounce_retries: bounded(
                r.soft_bounce_retries,
                0..=20,
                "delivery.soft_bounce_retries",
            )?,
            disable_own_headers: r.disable_own_headers,
        })
    }
}

/// The bounce mailbox's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MailboxProtocol {
    Imap,
    Pop3,
}

impl MailboxProtocol {
    /// 993 / 995 with TLS, 143 / 110 without.
    pub fn default_port(self, tls: bool) -> Port {
        let p: u32 = match (self, tls) {
            (MailboxProtocol::Imap, true) => 993,
            (MailboxProtocol::Imap, false) => 143,
            (MailboxProtocol::Pop3, true) => 995,
            (MailboxProtocol::Pop3, false) => 110,
        };
        Port::try_from(p).unwrap_or_else(|_| unreachable!("constant ports are valid"))
    }
}

/// How Herald signs in to the bounce mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum MailboxAuth {
    /// `username` with the sealed bounce password.
    Password,
    /// A sender identity's OAuth token (a Microsoft 365 or Gmail mailbox).
    Identity { identity_id: IdentityId },
}

/// Where bounces and complaints for this profile arrive (read by the bounce
/// poller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BounceMailbox {
    pub protocol: MailboxProtocol,
    pub host: RelayHost,
    /// Blank: 993 / 995 with TLS, 143 / 110 without.
    #[serde(default)]
    pub port: Option<Port>,
    #[serde(default = "yes")]
    pub tls: bool,
    pub username: SmtpUsername,
    pub auth: MailboxAuth,
    /// Minutes between polls, 1–1440.
    #[serde(default = "five")]
    pub poll_minutes: u32,
    /// Failed polls in a row before the mailbox is reported failing, 1–100.
    #[serde(default = "three")]
    pub retries: u32,
}

fn yes() -> bool {
    true
}
fn five() -> u32 {
    5
}
fn three() -> u32 {
    3
}

impl BounceMailbox {
    pub fn port(&self) -> Port {
        self.port
            .unwrap_or_else(|| self.protocol.default_port(self.tls))
    }

    pub fn check(&self) -> Result<(), InvalidInput> {
        if !(1..=1440).contains(&self.poll_minutes) {
            return Err(InvalidInput::new(
                "bounce_mailbox.poll_minutes",
                "must be between 1 and 1440",
            ));
        }
        if !(1..=100).contains(&self.retries) {
            return Err(InvalidInput::new(
                "bounce_mailbox.retries",
                "must be between 1 and 100",
            ));
        }
        Ok(())
    }
}
