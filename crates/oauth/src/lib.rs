//! OAuth2 for sender identities (Microsoft 365 and Gmail): the authorize URL
//! with PKCE S256, the code exchange, refresh, and the mailbox the provider
//! vouches for. Built on the oauth2 crate with Herald's reqwest client, which
//! never follows redirects.
//!
//! The id_token is read, not verified: it comes straight from the token
//! endpoint over TLS in the authorization-code flow, which OpenID Connect
//! Core §3.1.3.7 allows in place of checking its signature.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_crypto::SecretString;
use herald_domain::{EmailAddress, OAuthProvider};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

/// The scopes each provider is asked for. Microsoft: SMTP.Send and a
/// refresh token, plus `openid email` for the mailbox claim. Google: full
/// mail access (what SMTP XOAUTH2 needs), plus `openid email` likewise.
pub fn scopes(provider: OAuthProvider) -> &'static [&'static str] {
    match provider {
        OAuthProvider::Microsoft => &[
            "https://outlook.office.com/SMTP.Send",
            "offline_access",
            "openid",
            "email",
        ],
        OAuthProvider::Google => &["https://mail.google.com/", "openid", "email"],
    }
}

/// Where a provider's endpoints are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub userinfo: Option<String>,
}

impl Endpoints {
    /// The public endpoints; `authority` is Microsoft's tenant segment
    /// (common, organizations or a tenant id).
    pub fn defaults(provider: OAuthProvider, authority: &str) -> Self {
        match provider {
            OAuthProvider::Microsoft => Self {
                authorize: format!(
                    "https://login.microsoftonline.com/{authority}/oauth2/v2.0/authorize"
                ),
                token: format!("https://login.microsoftonline.com/{authority}/oauth2/v2.0/token"),
                userinfo: Some("https://graph.microsoft.com/oidc/userinfo".into()),
            },
            OAuthProvider::Google => Self {
                authorize: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token: "https://oauth2.googleapis.com/token".into(),
                userinfo: Some("https://openidconnect.googleapis.com/v1/userinfo".into()),
            },
        }
    }
}

/// One OAuth app (a tenant's or the platform's), ready to use.
pub struct OAuthClient {
    pub provider: OAuthProvider,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub redirect_uri: String,
    pub endpoints: Endpoints,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The grant is gone (`invalid_grant`: revoked, expired, password
    /// changed): the user must consent again.
    #[error("the provider refused the grant ({0}); authenticate again")]
    Revoked(String),
    /// The provider answered with another error.
    #[error("the provider refused: {0}")]
    Provider(String),
    /// The provider could not be reached or answered nonsense.
    #[error("the provider could not be reached: {0}")]
    Network(String),
    /// An endpoint or the redirect URI is not a usable URL.
    #[error("OAuth app configuration: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenResp = StandardTokenResponse<IdTokenField, BasicTokenType>;
type ConfiguredClient = Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The start of a consent: where to send the user, and what to keep.
pub struct Authorization {
    pub url: String,
    /// The random state to bind to the user and identity (single-use).
    pub state: SecretString,
    /// The PKCE verifier, kept sealed until the callback.
    pub pkce_verifier: SecretString,
}

/// Tokens from the provider.
pub struct Tokens {
    pub access_token: SecretString,
    /// Present on consent; on refresh only when the provider rotates it.
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<Duration>,
    pub scopes: Vec<String>,
    /// The mailbox the id_token names (`email`, else `preferred_username`, else `upn`).
    pub id_token_mailbox: Option<String>,
}

impl OAuthClient {
    fn client(&self) -> Result<ConfiguredClient, OAuthError> {
        let config = |what: &str, e: oauth2::url::ParseError| {
            OAuthError::Config(format!("{what} is not a URL: {e}"))
        };
        let mut c = Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(
                AuthUrl::new(self.endpoints.authorize.clone())
                    .map_err(|e| config("authorize_url", e))?,
            )
            .set_token_uri(
                TokenUrl::new(self.endpoints.token.clone()).map_err(|e| config("token_url", e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_uri.clone())
                    .map_err(|e| config("redirect_uri", e))?,
            )
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = &self.client_secret {
            c = c.set_client_secret(ClientSecret::new(secret.expose().clone()));
        }
        Ok(c)
    }

    /// The provider's consent URL for `mailbox`, with PKCE S256, the
    /// provider's scopes, `login_hint` and (Google) offline access with a
    /// forced consent so a refresh token is issued.
    pub fn authorize(&self, mailbox: &EmailAddress) -> Result<Authorization, OAuthError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client()?;
        let mut req = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(
                scopes(self.provider)
                    .iter()
                    .map(|s| Scope::new((*s).to_owned())),
            )
            .set_pkce_challenge(challenge)
            .add_extra_param("login_hint", mailbox.as_str());
        if self.provider == OAuthProvider::Google {
            req = req
                .add_extra_param("access_type", "offline")
                .add_extra_param("prompt", "consent");
        }
        let (url, state) = req.url();
        Ok(Authorization {
            url: url.to_string(),
            state: SecretString::new(state.secret().clone()),
            pkce_verifier: SecretString::new(verifier.secret().clone()),
        })
    }

    /// Exchanges the callback's code (with the PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: &SecretString,
    ) -> Result<Tokens, OAuthError> {
        let res = self
            .client()?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().clone()))
            .request_async(http)
            .await;
        tokens(res)
    }

    /// Trades the refresh token for a new access token (and perhaps a new
    /// refresh token).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
    ) -> Result<Tokens, OAuthError> {
        let res = self
            .client()?
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().clone()))
            .request_async(http)
            .await;
        tokens(res)
    }

    /// The mailbox from the userinfo endpoint (when the id_token named none).
    pub async fn userinfo_mailbox(
        &self,
        http: &reqwest::Client,
        access_token: &SecretString,
    ) -> Result<Option<String>, OAuthError> {
        let Some(url) = &self.endpoints.userinfo else {
            return Ok(None);
        };
        let res = http
            .get(url)
            .bearer_auth(access_token.expose())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| OAuthError::Network(e.to_string()))?;
        if !res.status().is_success() {
            return Err(OAuthError::Provider(format!(
                "userinfo answered {}",
                res.status()
            )));
        }
        let claims: Claims = res
            .json()
            .await
            .map_err(|e| OAuthError::Network(format!("userinfo: {e}")))?;
        Ok(claims.mailbox())
    }
}

#[derive(Debug, Default, Deserialize)]
struct Claims {
    email: Option<String>,
    preferred_username: Option<String>,
    upn: Option<String>,
}

impl Claims {
    fn mailbox(self) -> Option<String> {
        self.email.or(self.preferred_username).or(self.upn)
    }
}

/// The mailbox named by an id_token's payload (the signature is not checked;
/// see the crate documentation).
pub fn id_token_mailbox(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok()?.mailbox()
}

type TokenResult = Result<
    TokenResp,
    RequestTokenError<oauth2::HttpClientError<reqwest::Error>, BasicErrorResponse>,
>;

fn tokens(res: TokenResult) -> Result<Tokens, OAuthError> {
    let t = res.map_err(|e| match e {
        RequestTokenError::ServerResponse(r) => {
            let detail = match r.error_description() {
                Some(d) => format!("{}: {d}", r.error()),
                None => r.error().to_string(),
            };
            match r.error() {
                BasicErrorResponseType::InvalidGrant => OAuthError::Revoked(detail),
                _ => OAuthError::Provider(detail),
            }
        }
        RequestTokenError::Request(e) => OAuthError::Network(e.to_string()),
        RequestTokenError::Parse(e, body) => OAuthError::Provider(format!(
            "unreadable answer ({e}): {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )),
        RequestTokenError::Other(m) => OAuthError::Provider(m),
    })?;
    Ok(Tokens {
        access_token: SecretString::new(t.access_token().secret().clone()),
        refresh_token: t
            .refresh_token()
            .map(|r| SecretString::new(r.secret().clone())),
        expires_in: t.expires_in(),
        scopes: t
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        id_token_mailbox: t
            .extra_fields()
            .id_token
            .as_deref()
            .and_then(id_token_mailbox),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(provider: OAuthProvider) -> OAuthClient {
        OAuthClient {
            provider,
            client_id: "client-1".into(),
            client_secret: Some("s3cret".into()),
            redirect_uri: "https://herald.example/oauth/callback".into(),
            endpoints: Endpoints::defaults(provider, "organizations"),
        }
    }

    #[test]
    fn authorize_urls_carry_pkce_scopes_and_hints() {
        let mailbox = EmailAddress::parse("teacher@school.example").unwrap();
        let a = client(OAuthProvider::Microsoft)
            .authorize(&mailbox)
            .unwrap();
        assert!(
            a.url.starts_with(
                "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize?"
            )
        );
        for part in [
            "code_challenge_method=S256",
            "login_hint=teacher%40school.example",
            "scope=https%3A%2F%2Foutlook.office.com%2FSMTP.Send+offline_access+openid+email",
            "response_type=code",
        ] {
            assert!(a.url.contains(part), "{part} missing from {}", a.url);
        }
        assert!(a.url.contains(&format!("state={}", a.state.expose())));
        assert!(!a.url.contains("s3cret") && !a.url.contains(a.pkce_verifier.expose()));

        let g = client(OAuthProvider::Google).authorize(&mailbox).unwrap();
        for part in [
            "access_type=offline",
            "prompt=consent",
            "https%3A%2F%2Fmail.google.com%2F",
        ] {
            assert!(g.url.contains(part), "{part} missing from {}", g.url);
        }
        assert_ne!(a.state.expose(), g.state.expose());
    }

    #[test]
    fn the_id_token_names_the_mailbox() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"preferred_username":"Teacher@School.example"}"#);
        let token = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(
            id_token_mailbox(&token).as_deref(),
            Some("Teacher@School.example")
        );
        assert_eq!(id_token_mailbox("not-a-jwt"), None);
    }
}
