//! Herald's HTTP surface: /api/v1 (native JSON), /v3 (Mailgun-compatible),
//! health checks, the OpenAPI document with Swagger UI, and the portal pages.

mod error;
mod event_view;
mod extract;
mod health;
mod openapi;
mod portal;
mod v1;
mod v3;
mod v3_events;
mod v3_messages;
mod v3_suppressions;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use herald_app::Herald;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, MailgunError};
pub use extract::{Caller, MailgunCaller, TenantAdmin, TenantSender, TenantViewer};

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Mark the session cookie `Secure` (Herald is reached over HTTPS).
    pub secure_cookies: bool,
    /// Herald's public base URL, for absolute links (Mailgun's paging);
    /// `None` uses the request's Host.
    pub public_url: Option<String>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub herald: Herald,
    pub http: HttpSettings,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application as one router.
/// Only /healthz and /readyz (a worker-only process).
pub fn health_router(state: AppState) -> Router {
    health::router().with_state(state)
}

pub fn router(state: AppState) -> Router {
    let max_body = state.http.max_body_bytes;
    Router::new()
        .merge(health::router())
        .merge(portal::router())
        .nest("/api/v1", v1::router())
        .nest("/v3", v3::router())
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi::ApiDoc::openapi()))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let request_id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!(
                            "http",
                            method = %req.method(),
                            path = %req.uri().path(),
                            request_id = %request_id,
                            tenant = tracing::field::Empty,
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
}
