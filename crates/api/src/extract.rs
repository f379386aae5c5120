//! Extractors: who is calling (API key or portal session) and whether their
//! role is enough, visible in each handler's signature.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
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

/// A JSON body whose errors speak the /api/v1 error shape and name the field
/// at fault by its path (`transport.port`, `purposes[1].from.address`).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "invalid_body"
            };
            ApiError::new(status, code, r.body_text())
        })?;
        from_json_at(&bytes, "").map(Self)
    }
}

/// Refuses a body that is not declared as JSON (415).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a body with Content-Type: application/json",
        ))
    }
}

/// Parses JSON text; a data error names its field by path, prefixed with
/// `prefix` when the document is part of a larger one.
pub fn from_json_at<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(e, prefix))
}

/// Like [`from_json_at`], from a parsed value.
pub fn from_value_at<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(e, prefix))
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
            format!("invalid JSON: {inner}"),
        );
    }
    let field = match (prefix.is_empty(), path == ".") {
        (true, true) => String::new(),
        (true, false) => path,
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    };
    let text = inner.to_string();
    // serde names an unknown or missing field inside its message; point at it.
    let named = text
        .split('`')
        .nth(1)
        .filter(|_| text.starts_with("unknown field") || text.starts_with("missing field"));
    let field = match named {
        Some(name) if field.is_empty() => name.to_owned(),
        Some(name) if field != name && !field.ends_with(&format!(".{name}")) => {
            format!("{field}.{name}")
        }
        _ => field,
    };
    if named.is_some() {
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            text.split(" at line ").next().unwrap_or(&text),
        );
        err.field = Some(field);
        return err;
    }
    // A domain parser's message starts with its own short field name.
    let reason = text
        .split_once(": ")
        .map(|(_, r)| r)
        .filter(|_| named.is_none())
        .unwrap_or(&text);
    let reason = reason.split(" at line ").next().unwrap_or(reason);
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        if field.is_empty() {
            reason.to_owned()
        } else {
            format!("{field}: {reason}")
        },
    );
    err.field = Some(field).filter(|f| !f.is_empty());
    err
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
