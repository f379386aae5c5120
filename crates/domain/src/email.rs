//! Email addresses and display names, parsed before they can reach a header.

use serde::{Deserialize, Serialize};

use crate::InvalidInput;
use crate::tenant::{DomainName, string_conversions};
use crate::text::{refuse_control_chars, single_line};

/// An addr-spec (RFC 5321 §4.1.2 / RFC 5322 §3.4.1) restricted to the dot-atom
/// form every mail system accepts: a local part of at most 64 octets and a
/// domain that parses as a [`DomainName`]. Quoted local parts and address
/// literals are refused. The domain is kept in lowercase; the local part keeps
/// its case (RFC 5321 says it may be significant) and comparisons that must
/// ignore it use [`EmailAddress::eq_ignore_case`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        refuse_control_chars("email", value)?;
        let value = value.trim();
        let fail = |why: &str| Err(InvalidInput::new("email", format!("{value:?} {why}")));
        let Some((local, domain)) = value.rsplit_once('@') else {
            return fail("is not an email address (no @)");
        };
        if local.is_empty() || local.len() > 64 {
            return fail("has a local part that is empty or longer than 64 characters");
        }
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        let dot_atom = local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext));
        if !dot_atom {
            return fail("has a local part with characters or dots that are not allowed");
        }
        let domain = DomainName::parse(domain).map_err(|e| e.at("email"))?;
        let address = format!("{local}@{domain}");
        if address.len() > 254 {
            return fail("is longer than 254 characters");
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or_default()
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// Mailbox equality as providers treat it: case-insensitive.
    pub fn eq_ignore_case(&self, other: &EmailAddress) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// The display-name part of a mailbox (`"Ada Lovelace" <ada@example.com>`):
/// one line, no control characters, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        single_line("display_name", value, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_conversions!(EmailAddress, DisplayName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_addresses() {
        let a = EmailAddress::parse(" Ada.Lovelace+report@School.EXAMPLE ").unwrap();
        assert_eq!(a.as_str(), "Ada.Lovelace+report@school.example");
        assert_eq!(a.local_part(), "Ada.Lovelace+report");
        assert_eq!(a.domain(), "school.example");
        assert!(
            a.eq_ignore_case(&EmailAddress::parse("ada.lovelace+REPORT@school.example").unwrap())
        );
    }

    #[test]
    fn hostile_addresses() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "\"a b\"@example.com",
            "ada@example.com\r\nBcc: x@evil.test",
            "ada@exa\0mple.com",
            "ada@[127.0.0.1]",
            "<ada@example.com>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
    }

    #[test]
    fn serde_parses() {
        assert!(serde_json::from_str::<EmailAddress>("\"x\\r\\n@example.com\"").is_err());
        let a: EmailAddress = serde_json::from_str("\"x@example.com\"").unwrap();
        assert_eq!(a.as_str(), "x@example.com");
    }

    proptest! {
        #[test]
        fn no_parsed_value_holds_cr_lf_nul(s in "\\PC{0,20}[\r\n\0]\\PC{0,20}") {
            prop_assert!(EmailAddress::parse(&s).is_err());
            prop_assert!(DisplayName::parse(&s).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = EmailAddress::parse(&s);
            let _ = DisplayName::parse(&s);
        }
    }
}
