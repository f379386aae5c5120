//! The tenant: one customer of the product that runs Herald.

use serde::{Deserialize, Serialize};

use crate::InvalidInput;
use crate::text::single_line;

/// A tenant's short name, used on the command line and in portal logins:
/// 2–63 characters of lowercase ASCII letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let ok_chars = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !(2..=63).contains(&value.len())
            || !ok_chars
            || value.starts_with('-')
            || value.ends_with('-')
        {
            return Err(InvalidInput::new(
                "slug",
                "must be 2-63 lowercase letters, digits or inner hyphens",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's display name: one line, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        single_line("name", value, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS domain name in lowercase ASCII (an internationalised name must arrive
/// in its A-label form), such as a tenant's sending domain. RFC 1035 §2.3.1
/// letters-digits-hyphens labels of 1–63 octets, 253 octets in all, at least
/// two labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let lower = value.trim_end_matches('.').to_ascii_lowercase();
        let fail = |why: &str| Err(InvalidInput::new("domain", format!("{value:?} {why}")));
        if lower.is_empty() || lower.len() > 253 {
            return fail("must be 1-253 characters");
        }
        let labels: Vec<&str> = lower.split('.').collect();
        if labels.len() < 2 {
            return fail("must have at least two labels (example.com)");
        }
        for label in labels {
            let ldh = label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if label.is_empty() || label.len() > 63 || !ldh {
                return fail("has a label that is not 1-63 letters, digits or hyphens");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return fail("has a label that starts or ends with a hyphen");
            }
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = InvalidInput;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}
string_conversions!(TenantSlug, TenantName, DomainName);
pub(crate) use string_conversions;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        assert!(TenantSlug::parse("acme-school").is_ok());
        for bad in ["a", "Acme", "-acme", "acme-", "ac me", "acme\n", ""] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn domains_are_lowercased_and_checked() {
        assert_eq!(
            DomainName::parse("Mail.Example.COM.").unwrap().as_str(),
            "mail.example.com"
        );
        for bad in [
            "localhost",
            "a..b",
            "-a.com",
            "a-.com",
            "exa mple.com",
            "ex\r\nample.com",
            "é.com",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn parsed_values_never_hold_control_characters(s in "\\PC*[\r\n\0]\\PC*") {
            prop_assert!(TenantSlug::parse(&s).is_err());
            prop_assert!(TenantName::parse(&s).is_err());
            prop_assert!(DomainName::parse(&s).is_err());
        }
    }
}

/// How many days of events a tenant keeps (1–3,650; 30 unless the tenant
/// chooses). Older events are purged in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionDays(u16);

impl RetentionDays {
    pub const DEFAULT: Self = Self(30);

    pub fn new(days: i64) -> Result<Self, InvalidInput> {
        if (1..=3650).contains(&days) {
            Ok(Self(days as u16))
        } else {
            Err(InvalidInput::new(
                "event_retention_days",
                format!("{days} is not 1 to 3650 days"),
            ))
        }
    }

    pub fn days(self) -> u16 {
        self.0
    }

    /// The retention in microseconds.
    pub fn as_micros(self) -> i64 {
        i64::from(self.0) * 86_400 * 1_000_000
    }
}

impl Default for RetentionDays {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod retention_tests {
    use super::RetentionDays;

    #[test]
    fn retention_is_one_day_to_ten_years() {
        assert!(RetentionDays::new(0).is_err());
        assert!(RetentionDays::new(-5).is_err());
        assert!(RetentionDays::new(3651).is_err());
        assert_eq!(RetentionDays::new(1).unwrap().days(), 1);
        assert_eq!(RetentionDays::new(3650).unwrap().days(), 3650);
        assert_eq!(RetentionDays::default().as_micros(), 30 * 86_400_000_000);
    }
}
