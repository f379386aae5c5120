//! The portal's sign-in, sign-out and home page. The session lives in an
//! HttpOnly, SameSite=Lax cookie (Secure when Herald is reached over HTTPS);
//! the server keeps only the token's hash.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use herald_app::AppError;
use herald_crypto::SecretString;
use herald_domain::User;
use serde::Deserialize;

use crate::AppState;
use crate::extract::{SESSION_COOKIE, session_cookie};

mod events;
mod identities;
mod unsubscribe;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/events", get(events::log))
        .route(
            "/identities",
            get(identities::list).post(identities::create),
        )
        .route("/identities/{id}/password", post(identities::set_password))
        .route("/identities/{id}/test", post(identities::test))
        .route("/identities/{id}/oauth", post(identities::start_oauth))
        .route("/oauth/callback", get(identities::oauth_callback))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/account/password", post(change_password))
        .route(
            "/u/{token}",
            get(unsubscribe::confirm).post(unsubscribe::unsubscribe),
        )
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Herald</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:52rem;margin:3rem auto;padding:0 1rem}}\
         label{{display:block;margin:.6rem 0}}input{{display:block;width:100%;padding:.4rem}}\
         .error{{color:#a00}}.ok{{color:#060}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border-bottom:1px solid #ddd;padding:.3rem;text-align:left;vertical-align:top}}\
         pre{{background:#f4f4f4;padding:.6rem;overflow-x:auto}}</style></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    ))
}

pub(crate) fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

fn login_form(message: Option<&str>) -> Html<String> {
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)))
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "{message}<form method=\"post\" action=\"/login\">\
             <label>Organisation <input name=\"tenant\" autocomplete=\"organization\" required></label>\
             <label>Email <input name=\"email\" type=\"email\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

fn cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: i64) -> HeaderValue {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if state.http.secure_cookies || forwarded_https {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie value is ASCII")
}

/// The signed-in portal user, or a redirect to the sign-in page.
pub(crate) struct PortalUser {
    pub user: User,
    pub actor: herald_domain::Actor,
}

impl FromRequestParts<AppState> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = session_cookie(&parts.headers).ok_or_else(|| redirect("/login"))?;
        match state.herald.authenticate_session(&token).await {
            Ok((actor, user)) => Ok(Self { user, actor }),
            Err(AppError::Unauthenticated) => Err(redirect("/login")),
            Err(e) => Err(crate::ApiError::from(e).into_response()),
        }
    }
}

async fn home(State(s): State<AppState>, PortalUser { user, actor }: PortalUser) -> Response {
    let tenant = match s.herald.tenant(&actor).await {
        Ok(t) => t,
        Err(e) => return crate::ApiError::from(e).into_response(),
    };
    let password = if user.must_change_password {
        "<h2>Choose your password</h2><p>You signed in with a one-time password. Choose your own now.</p>\
         <form method=\"post\" action=\"/account/password\">\
         <label>One-time password <input name=\"current_password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <label>New password (12 characters or more) <input name=\"new_password\" type=\"password\" autocomplete=\"new-password\" minlength=\"12\" required></label>\
         <button type=\"submit\">Save password</button></form>"
    } else {
        ""
    };
    let domains: Vec<String> = tenant.domains.iter().map(|d| esc(d.as_str())).collect();
    page(
        tenant.name.as_str(),
        &format!(
            "<p>Signed in as <strong>{}</strong> ({}).</p><p>Sending domains: {}</p>{password}\
             <p><a href=\"/identities\">My sender identities</a> · <a href=\"/events\">Message log</a> · <a href=\"/docs\">API documentation</a></p>\
             <form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>",
            esc(user.email.as_str()),
            user.role,
            domains.join(", ")
        ),
    )
    .into_response()
}

async fn login_page() -> Html<String> {
    login_form(None)
}

#[derive(Deserialize)]
struct LoginForm {
    tenant: String,
    email: String,
    password: SecretString,
}

async fn login(
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            login_form(Some("Fill in organisation, email and password.")),
        )
            .into_response();
    };
    match s
        .herald
        .login(&form.tenant, &form.email, &form.password)
        .await
    {
        Ok(session) => {
            let max_age = (session.expires_at.as_micros()
                - herald_domain::Timestamp::now().as_micros())
                / 1_000_000;
            let mut res = redirect("/");
            res.headers_mut().insert(
                SET_COOKIE,
                cookie(&s, &headers, session.token.expose(), max_age),
            );
            res
        }
        Err(AppError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            login_form(Some(
                "Sign-in failed: check the organisation, email and password.",
            )),
        )
            .into_response(),
        Err(e) => crate::ApiError::from(e).into_response(),
    }
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_cookie(&headers)
        && let Err(e) = s.herald.logout(&token).await
    {
        return crate::ApiError::from(e).into_response();
    }
    let mut res = redirect("/login");
    res.headers_mut()
        .insert(SET_COOKIE, cookie(&s, &headers, "", 0));
    res
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
}

async fn change_password(
    State(s): State<AppState>,
    PortalUser { actor, .. }: PortalUser,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            page("Password", "<p class=\"error\">Fill in both fields.</p>"),
        )
            .into_response();
    };
    match s
        .herald
        .change_own_password(&actor, &form.current_password, &form.new_password)
        .await
    {
        Ok(()) => redirect("/"),
        Err(AppError::Invalid(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Password",
                &format!(
                    "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Back</a></p>",
                    esc(&e.to_string())
                ),
            ),
        )
            .into_response(),
        Err(e) => crate::ApiError::from(e).into_response(),
    }
}
