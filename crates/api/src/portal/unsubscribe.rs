//! The page behind a message's unsubscribe link (`/u/{token}`): GET shows
//! what following it does, with a button, so that a mail scanner fetching
//! the link unsubscribes nobody; POST unsubscribes. A mail client's
//! one-click unsubscribe (RFC 8058) is that same POST, with the body
//! `List-Unsubscribe=One-Click`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_app::{AppError, UnsubscribeView};

use super::{esc, page};
use crate::AppState;

fn scope(v: &UnsubscribeView) -> String {
    if v.tags.is_empty() {
        format!("all mail from {}", esc(&v.tenant_name))
    } else {
        format!(
            "mail from {} tagged {}",
            esc(&v.tenant_name),
            esc(&v.tags.join(", "))
        )
    }
}

fn failed(e: AppError) -> Response {
    match e {
        AppError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            page(
                "Link not found",
                "<p class=\"error\">This unsubscribe link is not valid or has expired.</p>",
            ),
        )
            .into_response(),
        other => {
            tracing::error!(error = %other, "unsubscribe failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "Please try again",
                    "<p class=\"error\">Something went wrong; nothing was changed.</p>",
                ),
            )
                .into_response()
        }
    }
}

pub(super) async fn confirm(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match s.herald.unsubscribe_page(&token).await {
        Ok(v) if v.already => page(
            "Unsubscribed",
            &format!(
                "<p class=\"ok\">{} is already unsubscribed from {}.</p>",
                esc(v.address.as_str()),
                scope(&v)
            ),
        )
        .into_response(),
        Ok(v) => page(
            "Unsubscribe",
            &format!(
                "<p>Stop sending {} to {}?</p>\
                 <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
                scope(&v),
                esc(v.address.as_str())
            ),
        )
        .into_response(),
        Err(e) => failed(e),
    }
}

pub(super) async fn unsubscribe(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match s.herald.unsubscribe(&token).await {
        Ok(v) => page(
            "Unsubscribed",
            &format!(
                "<p class=\"ok\">{} will no longer receive {}.</p>",
                esc(v.address.as_str()),
                scope(&v)
            ),
        )
        .into_response(),
        Err(e) => failed(e),
    }
}
