//! The portal's sender identities: each user's mailboxes with their status,
//! adding one (with "verify password"), replacing its password, and the
//! "Send test" button with the conversation it produced.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_app::{AppError, AuthInput, IdentityPatch, IdentityView, NewIdentity, TestSendReport};
use herald_crypto::SecretString;
use herald_domain::{DisplayName, EmailAddress, IdentityAuth, InvalidInput, OAuthProvider};
use serde::Deserialize;

use super::{PortalUser, esc, page, redirect};
use crate::AppState;

/// Refuses a form posted from another site (the cookie is SameSite=Lax
/// already; this also covers browsers that ignore it).
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    match (headers.get("origin").and_then(|o| o.to_str().ok()), host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

fn problem(status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            "Sender identities",
            &format!(
                "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/identities\">Back</a></p>",
                esc(message)
            ),
        ),
    )
        .into_response()
}

fn app_problem(e: AppError) -> Response {
    match e {
        AppError::Invalid(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        AppError::InvalidField { message, .. } => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, &message)
        }
        AppError::Conflict { message, .. } => problem(StatusCode::CONFLICT, &message),
        AppError::Forbidden(m) => problem(StatusCode::FORBIDDEN, &m),
        AppError::NotFound(what) => problem(StatusCode::NOT_FOUND, &format!("{what} not found")),
        other => crate::ApiError::from(other).into_response(),
    }
}

fn row(v: &IdentityView) -> String {
    let i = &v.identity;
    let id = i.id;
    let method = match &i.auth {
        IdentityAuth::Password { .. } if v.password_set => "password".to_owned(),
        IdentityAuth::Password { .. } => "password (not set)".to_owned(),
        IdentityAuth::OAuth { provider, .. } => format!("OAuth ({provider})"),
    };
    let error = i
        .last_error
        .as_deref()
        .map(|e| format!("<br><span class=\"error\">{}</span>", esc(e)))
        .unwrap_or_default();
    let password_form = match &i.auth {
        IdentityAuth::Password { .. } => format!(
            "<form method=\"post\" action=\"/identities/{id}/password\">\
             <label>New password <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required></label>\
             <label>Verify password <input name=\"verify_password\" type=\"password\" autocomplete=\"new-password\" required></label>\
             <button type=\"submit\">Save password</button></form>"
        ),
        IdentityAuth::OAuth { .. } => format!(
            "<form method=\"post\" action=\"/identities/{id}/oauth\">\
             <button type=\"submit\">Authenticate with MFA</button></form>"
        ),
    };
    format!(
        "<tr><td><strong>{}</strong>{}</td><td>{method}</td><td>{}{error}</td><td>\
         <form method=\"post\" action=\"/identities/{id}/test\"><button type=\"submit\">Send test</button></form>\
         {password_form}</td></tr>",
        esc(i.address.as_str()),
        i.display_name
            .as_ref()
            .map(|d| format!("<br>{}", esc(d.as_str())))
            .unwrap_or_default(),
        i.status,
    )
}

pub async fn list(State(s): State<AppState>, PortalUser { user, actor }: PortalUser) -> Response {
    let page_of = match s.herald.list_identities(&actor, None, 500).await {
        Ok(p) => p,
        Err(e) => return app_problem(e),
    };
    let rows: String = page_of.items.iter().map(row).collect();
    let table = if rows.is_empty() {
        "<p>No sender identity yet.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Address</th><th>Sign-in</th><th>Status</th><th></th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    page(
        "Sender identities",
        &format!(
            "{table}<h2>Add an identity</h2>\
             <form method=\"post\" action=\"/identities\">\
             <label>Address <input name=\"address\" type=\"email\" value=\"{}\" required></label>\
             <label>Display name <input name=\"display_name\"></label>\
             <label>Sign-in <select name=\"method\">\
               <option value=\"password\">Password</option>\
               <option value=\"microsoft\">Microsoft 365 (OAuth)</option>\
               <option value=\"google\">Gmail (OAuth)</option></select></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"new-password\"></label>\
             <label>Verify password <input name=\"verify_password\" type=\"password\" autocomplete=\"new-password\"></label>\
             <button type=\"submit\">Add identity</button></form><p><a href=\"/\">Home</a></p>",
            esc(user.email.as_str())
        ),
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct CreateForm {
    address: String,
    #[serde(default)]
    display_name: String,
    method: String,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    verify_password: Option<SecretString>,
}

/// The password when both fields agree; `None` when both are empty.
fn verified(
    password: Option<SecretString>,
    verify: Option<SecretString>,
) -> Result<Option<SecretString>, InvalidInput> {
    let blank = |p: &Option<SecretString>| p.as_ref().is_none_or(|p| p.expose().is_empty());
    match (blank(&password), blank(&verify)) {
        (true, true) => Ok(None),
        _ if password.as_ref().map(|p| p.expose()) == verify.as_ref().map(|p| p.expose()) => {
            Ok(password)
        }
        _ => Err(InvalidInput::new(
            "verify_password",
            "the two passwords do not match; nothing was saved",
        )),
    }
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    PortalUser { actor, .. }: PortalUser,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return problem(
            StatusCode::FORBIDDEN,
            "This form was posted from another site.",
        );
    }
    let Ok(Form(f)) = form else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Fill in the address and the sign-in method.",
        );
    };
    let parsed = (|| -> Result<NewIdentity, InvalidInput> {
        let address = EmailAddress::parse(&f.address).map_err(|e| e.at("address"))?;
        let display_name = match f.display_name.trim() {
            "" => None,
            name => Some(DisplayName::parse(name)?),
        };
        let password = verified(f.password, f.verify_password)?;
        let auth = match f.method.as_str() {
            "password" => AuthInput::Password {
                username: None,
                password,
            },
            other => AuthInput::OAuth {
                provider: other.parse::<OAuthProvider>().map_err(|e| e.at("method"))?,
            },
        };
        Ok(NewIdentity {
            address,
            display_name,
            owner: None,
            shared_with: Vec::new(),
            profile_id: None,
            preferred: false,
            auth,
        })
    })();
    let new = match parsed {
        Ok(n) => n,
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    match s.herald.create_identity(&actor, new).await {
        Ok(_) => redirect("/identities"),
        Err(e) => app_problem(e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: SecretString,
    verify_password: SecretString,
}

pub async fn set_password(
    State(s): State<AppState>,
    headers: HeaderMap,
    PortalUser { actor, .. }: PortalUser,
    Path(id): Path<String>,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return problem(
            StatusCode::FORBIDDEN,
            "This form was posted from another site.",
        );
    }
    let Ok(Form(f)) = form else {
        return problem(StatusCode::BAD_REQUEST, "Fill in both password fields.");
    };
    let password = match verified(Some(f.password), Some(f.verify_password)) {
        Ok(Some(p)) => p,
        Ok(None) => return problem(StatusCode::UNPROCESSABLE_ENTITY, "The password is empty."),
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let current = match s.herald.identity(&actor, &id).await {
        Ok(v) => v.identity,
        Err(e) => return app_problem(e),
    };
    let username = match current.auth {
        IdentityAuth::Password { username } => username,
        IdentityAuth::OAuth { .. } => None,
    };
    let patch = IdentityPatch {
        auth: Some(AuthInput::Password {
            username,
            password: Some(password),
        }),
        ..Default::default()
    };
    match s.herald.update_identity(&actor, &id, patch).await {
        Ok(_) => redirect("/identities"),
        Err(e) => app_problem(e),
    }
}

fn report_page(r: &TestSendReport) -> String {
    let outcome = if r.ok {
        format!(
            "<p class=\"ok\" role=\"status\">Sent: a test message went from {} to {}.</p>",
            esc(r.from.as_str()),
            esc(r.to.as_str())
        )
    } else {
        let d = r
            .diagnosis
            .as_ref()
            .map(|d| format!("{} ({})", esc(&d.message), esc(d.code)))
            .unwrap_or_else(|| "The test failed.".to_owned());
        format!("<p class=\"error\" role=\"alert\">Not sent: {d}</p>")
    };
    let transcript = r
        .transcript
        .iter()
        .map(|l| esc(l))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "{outcome}<h2>Conversation</h2><pre>{transcript}</pre><p><a href=\"/identities\">Back</a></p>"
    )
}

pub async fn test(
    State(s): State<AppState>,
    headers: HeaderMap,
    PortalUser { actor, .. }: PortalUser,
    Path(id): Path<String>,
) -> Response {
    if !same_origin(&headers) {
        return problem(
            StatusCode::FORBIDDEN,
            "This form was posted from another site.",
        );
    }
    match s.herald.test_identity(&actor, &id, None).await {
        Ok(r) => page("Test message", &report_page(&r)).into_response(),
        Err(e) => app_problem(e),
    }
}

/// "Authenticate with MFA": off to the provider's consent page.
pub async fn start_oauth(
    State(s): State<AppState>,
    headers: HeaderMap,
    PortalUser { actor, .. }: PortalUser,
    Path(id): Path<String>,
) -> Response {
    if !same_origin(&headers) {
        return problem(
            StatusCode::FORBIDDEN,
            "This form was posted from another site.",
        );
    }
    match s.herald.start_oauth(&actor, &id).await {
        Ok((url, _)) => redirect(&url),
        Err(e) => app_problem(e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's redirect back (the registered redirect URI).
pub async fn oauth_callback(
    State(s): State<AppState>,
    PortalUser { actor, .. }: PortalUser,
    axum::extract::Query(q): axum::extract::Query<CallbackQuery>,
) -> Response {
    let Some(state) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "The provider's answer has no state; start again.",
        );
    };
    let error = q
        .error
        .as_deref()
        .map(|e| (e, q.error_description.as_deref()));
    match s
        .herald
        .complete_oauth(&actor, state, q.code.as_deref(), error)
        .await
    {
        Ok(identity) => page(
            "Connected",
            &format!(
                "<p class=\"ok\" role=\"status\">{} is connected: Herald can send as it.</p>\
                 <p><a href=\"/identities\">Back to sender identities</a></p>",
                esc(identity.address.as_str())
            ),
        )
        .into_response(),
        Err(AppError::Forbidden(m)) => problem(StatusCode::BAD_REQUEST, &m),
        Err(e) => app_problem(e),
    }
}
