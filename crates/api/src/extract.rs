//! Extractors: who is calling (API key or portal session) and whether their
//! role is enough, visible in each handler's signature.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_app::AppError;
use herald_domain::{Actor, Role};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, MailgunError};

pub const SESSION_COOKIE: &str = "herald_session";

/// The session token from the Cookie header, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn record_tenant(actor: &Actor) {
    tracing::Span::current().record("tenant", tracing::field::display(actor.tenant_id));
}

/// Any authenticated caller of /api/v1: `Authorization: Bearer KEY`, or the
/// portal's session cookie when no Authorization header is sent.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AppError::Unauthenticated)?;
            state.herald.authenticate_api_key(token).await?
        } else if let Some(token) = session_cookie(&parts.headers) {
            state.herald.authenticate_session(&token).await?.0
        } else {
            return Err(AppError::Unauthenticated.into());
        };
        record_tenant(&actor);
        Ok(Caller(actor))
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Actor);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let Caller(actor) = Caller::from_request_parts(parts, state).await?;
                if !actor.role.includes($role) {
                    return Err(AppError::Forbidden(format!(
                        "this needs the {} role or higher; you have {}",
                        $role, actor.role
                    ))
                    .into());
                }
                Ok(Self(actor))
            }
        }
    };
}

role_extractor!(
    /// A caller who may change settings, users and keys (owner or admin).
    TenantAdmin,
    Role::Admin
);
role_extractor!(
    /// A caller who may send (sender, admin or owner).
    TenantSender,
    Role::Sender
);
role_extractor!(
    /// Any role: reads queues, events and logs.
    TenantViewer,
    Role::Viewer
);

/// A Mailgun client on /v3: HTTP Basic with user `api` and the key as password.
#[derive(Debug, Clone)]
pub struct MailgunCaller(pub Actor);

impl FromRequestParts<AppState> for MailgunCaller {
    type Rejection = MailgunError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| STANDARD.decode(b64.trim()).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|pair| pair.strip_prefix("api:").map(str::to_owned))
            .filter(|k| !k.is_empty())
            .ok_or(AppError::Unauthenticated)?;
        let actor = state.herald.authenticate_api_key(&key).await?;
        record_tenant(&actor);
        Ok(MailgunCaller(actor))
    }
}

/// `axum::Json` whose rejections speak the /api/v1 error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Query` whose rejections speak the /api/v1 error shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}
