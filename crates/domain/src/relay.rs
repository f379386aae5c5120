//! Relay-profile settings as the seed products expose them (see
//! REFERENCE.md's settings table), each parsed once into a checked value.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{DomainName, InvalidInput};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// Plain SMTP (port 25).
    None,
    /// STARTTLS when the server offers it (opportunistic; port 587).
    Starttls,
    /// "Use STARTTLS only": fail when the server does not offer it (port 587).
    StarttlsRequired,
    /// Implicit TLS, SMTPS (port 465).
    Tls,
}

impl SecurityMode {
    /// The port used when the profile leaves it blank.
    pub fn default_port(self) -> Port {
        Port(match self {
            SecurityMode::None => 25,
            SecurityMode::Starttls | SecurityMode::StarttlsRequired => 587,
            SecurityMode::Tls => 465,
        })
    }
}

/// A TCP port, 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u16")]
pub struct Port(u16);

impl Port {
    pub fn get(self) -> u16 {
        self.0
    }

    /// The configured port, or the security mode's default when blank.
    pub fn or_default_for(port: Option<Port>, mode: SecurityMode) -> Port {
        port.unwrap_or_else(|| mode.default_port())
    }
}

impl TryFrom<u32> for Port {
    type Error = InvalidInput;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        match u16::try_from(value) {
            Ok(p) if p > 0 => Ok(Port(p)),
            _ => Err(InvalidInput::new("port", "must be between 1 and 65535")),
        }
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

/// An SMTP server: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RelayHost {
    Name(DomainName),
    Ip(IpAddr),
}

impl RelayHost {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        crate::text::refuse_control_chars("host", value)?;
        let v = value.trim();
        let bracketless = v
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(v);
        if let Ok(ip) = IpAddr::from_str(bracketless) {
            return Ok(RelayHost::Ip(ip));
        }
        DomainName::parse(v).map(RelayHost::Name).map_err(|_| {
            InvalidInput::new(
                "host",
                format!("{value:?} is neither a host name nor an IP address"),
            )
        })
    }
}

impl fmt::Display for RelayHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayHost::Name(n) => f.write_str(n.as_str()),
            RelayHost::Ip(ip) => ip.fmt(f),
        }
    }
}

impl TryFrom<String> for RelayHost {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RelayHost> for String {
    fn from(h: RelayHost) -> String {
        h.to_string()
    }
}

/// The SMTP timeout: one of 30 s, 1, 2, 3, 4 or 5 minutes (Infinite Campus's
/// choices), given in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct SmtpTimeout(u32);

impl SmtpTimeout {
    pub const CHOICES: [u32; 6] = [30, 60, 120, 180, 240, 300];

    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0.into())
    }
}

impl Default for SmtpTimeout {
    fn default() -> Self {
        SmtpTimeout(30)
    }
}

impl TryFrom<u32> for SmtpTimeout {
    type Error = InvalidInput;
    fn try_from(secs: u32) -> Result<Self, Self::Error> {
        if Self::CHOICES.contains(&secs) {
            Ok(SmtpTimeout(secs))
        } else {
            Err(InvalidInput::new(
                "timeout_seconds",
                "must be one of 30, 60, 120, 180, 240 or 300",
            ))
        }
    }
}

impl From<SmtpTimeout> for u32 {
    fn from(t: SmtpTimeout) -> u32 {
        t.0
    }
}

/// Throttle: messages per second, 1–999 (blank means no throttle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ThrottleRate(u32);

impl ThrottleRate {
    pub fn per_second(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for ThrottleRate {
    type Error = InvalidInput;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        if (1..=999).contains(&v) {
            Ok(ThrottleRate(v))
        } else {
            Err(InvalidInput::new(
                "throttle_per_second",
                "must be between 1 and 999",
            ))
        }
    }
}

impl From<ThrottleRate> for u32 {
    fn from(t: ThrottleRate) -> u32 {
        t.0
    }
}

/// Max Size: the total of all attachments on one message, 1–100 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct AttachmentLimitMb(u32);

impl AttachmentLimitMb {
    pub fn bytes(self) -> u64 {
        u64::from(self.0) * 1024 * 1024
    }
}

impl TryFrom<u32> for AttachmentLimitMb {
    type Error = InvalidInput;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        if (1..=100).contains(&v) {
            Ok(AttachmentLimitMb(v))
        } else {
            Err(InvalidInput::new(
                "max_attachment_mb",
                "must be between 1 and 100",
            ))
        }
    }
}

impl From<AttachmentLimitMb> for u32 {
    fn from(v: AttachmentLimitMb) -> u32 {
        v.0
    }
}

/// When to try again and when to give up (Infinite Campus: minutes between
/// retries, default 10; max errors before cancel, default 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySchedule {
    pub minutes_between_retries: u32,
    pub max_errors_before_cancel: u32,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            minutes_between_retries: 10,
            max_errors_before_cancel: 10,
        }
    }
}

impl RetrySchedule {
    pub fn new(
        minutes_between_retries: u32,
        max_errors_before_cancel: u32,
    ) -> Result<Self, InvalidInput> {
        if !(1..=1440).contains(&minutes_between_retries) {
            return Err(InvalidInput::new(
                "minutes_between_retries",
                "must be between 1 and 1440",
            ));
        }
        if !(1..=100).contains(&max_errors_before_cancel) {
            return Err(InvalidInput::new(
                "max_errors_before_cancel",
                "must be between 1 and 100",
            ));
        }
        Ok(Self {
            minutes_between_retries,
            max_errors_before_cancel,
        })
    }

    /// Whether another attempt is allowed after `errors` failures.
    pub fn retries_after(&self, errors: u32) -> bool {
        errors < self.max_errors_before_cancel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blank_port_follows_the_security_mode() {
        assert_eq!(Port::or_default_for(None, SecurityMode::None).get(), 25);
        assert_eq!(
            Port::or_default_for(None, SecurityMode::Starttls).get(),
            587
        );
        assert_eq!(
            Port::or_default_for(None, SecurityMode::StarttlsRequired).get(),
            587
        );
        assert_eq!(Port::or_default_for(None, SecurityMode::Tls).get(), 465);
        let p = Port::try_from(2525).unwrap();
        assert_eq!(Port::or_default_for(Some(p), SecurityMode::Tls).get(), 2525);
        assert!(Port::try_from(0).is_err() && Port::try_from(65536).is_err());
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        assert_eq!(
            RelayHost::parse("SMTP.Office365.com").unwrap().to_string(),
            "smtp.office365.com"
        );
        assert_eq!(
            RelayHost::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(RelayHost::parse("[::1]").unwrap().to_string(), "::1");
        for bad in ["", "smtp host", "smtp.example.com\r\n", "localhost"] {
            assert!(RelayHost::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bounded_settings() {
        assert!(SmtpTimeout::try_from(30).is_ok() && SmtpTimeout::try_from(45).is_err());
        assert_eq!(SmtpTimeout::default().duration(), Duration::from_secs(30));
        assert!(ThrottleRate::try_from(999).is_ok() && ThrottleRate::try_from(1000).is_err());
        assert!(ThrottleRate::try_from(0).is_err());
        assert_eq!(
            AttachmentLimitMb::try_from(100).unwrap().bytes(),
            100 * 1024 * 1024
        );
        assert!(AttachmentLimitMb::try_from(101).is_err());
        let r = RetrySchedule::default();
        assert_eq!(
            (r.minutes_between_retries, r.max_errors_before_cancel),
            (10, 10)
        );
        assert!(r.retries_after(9) && !r.retries_after(10));
        assert!(RetrySchedule::new(0, 10).is_err() && RetrySchedule::new(10, 0).is_err());
    }

    proptest! {
        #[test]
        fn host_parse_never_panics_and_refuses_line_breaks(s in "\\PC{0,30}[\r\n\0]\\PC{0,30}") {
            prop_assert!(RelayHost::parse(&s).is_err());
        }
    }
}
