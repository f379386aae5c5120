//! OAuth apps: the client registration a tenant (or the platform) holds with
//! Microsoft or Google, through which its users connect sender identities.

use serde::{Deserialize, Serialize};

use crate::text::{refuse_control_chars, single_line};
use crate::{BaseUrl, DomainName, InvalidInput, OAuthProvider, TenantId, Timestamp};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The application (client) id the provider issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OAuthClientId(String);

impl OAuthClientId {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        single_line("client_id", value, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Microsoft's tenant segment: `common`, `organizations`, `consumers`, a
/// tenant id (GUID) or a verified domain. Single-tenant apps must use their
/// tenant: on /common they fail with AADSTS50194.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MicrosoftAuthority(String);

impl MicrosoftAuthority {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let v = value.trim().to_ascii_lowercase();
        let guid = v.len() == 36
            && v.chars().enumerate().all(|(i, c)| {
                matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
            });
        if matches!(v.as_str(), "common" | "organizations" | "consumers")
            || guid
            || DomainName::parse(&v).is_ok()
        {
            Ok(Self(v))
        } else {
            Err(InvalidInput::new(
                "authority",
                "must be common, organizations, consumers, a tenant id or a tenant domain",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MicrosoftAuthority {
    fn default() -> Self {
        Self("organizations".into())
    }
}

/// A redirect URI, kept exactly as given: providers compare it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        refuse_control_chars("redirect_uri", value)?;
        let ok = (value.starts_with("https://") || value.starts_with("http://"))
            && !value.contains(['#', ' '])
            && value.len() <= 500
            && value
                .split("://")
                .nth(1)
                .is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidInput::new(
                "redirect_uri",
                "must be an absolute http(s) URL without a fragment",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path part (`/oauth/callback`), which Herald must serve.
    pub fn path(&self) -> &str {
        let rest = self.0.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        path.split('?').next().unwrap_or(path)
    }
}

crate::tenant::string_conversions!(OAuthClientId, MicrosoftAuthority, RedirectUri);

/// An OAuth app's settings (the client secret is sealed apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OAuthAppSettings {
    pub client_id: OAuthClientId,
    /// Microsoft only; default `organizations`.
    #[serde(default)]
    pub authority: Option<MicrosoftAuthority>,
    /// Where the provider sends the user back: Herald's /oauth/callback as
    /// registered with the provider, matched exactly.
    pub redirect_uri: RedirectUri,
    /// Overrides for sovereign clouds (and tests).
    #[serde(default)]
    pub authorize_url: Option<BaseUrl>,
    #[serde(default)]
    pub token_url: Option<BaseUrl>,
    #[serde(default)]
    pub userinfo_url: Option<BaseUrl>,
    #[serde(default)]
    pub jwks_url: Option<BaseUrl>,
}

/// A tenant's OAuth app for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthApp {
    pub tenant_id: TenantId,
    pub provider: OAuthProvider,
    pub settings: OAuthAppSettings,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for ok in [
            "common",
            "Organizations",
            "0f3c9b9e-3c1d-4b7a-9f57-5f2f3b0a1c2d",
            "school.onmicrosoft.com",
        ] {
            assert!(MicrosoftAuthority::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../common", "0f3c9b9e_3c1d", "a b"] {
            assert!(MicrosoftAuthority::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_are_kept_exactly() {
        let r = RedirectUri::parse("https://herald.example/oauth/callback/").unwrap();
        assert_eq!(r.as_str(), "https://herald.example/oauth/callback/");
        assert_eq!(r.path(), "/oauth/callback/");
        for bad in [
            "/oauth/callback",
            "https://h/x#frag",
            "ftp://h/x",
            "https:///x",
            "http://h/\r\n",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }
}
