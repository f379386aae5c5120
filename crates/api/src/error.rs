//! Errors to HTTP, in one place. /api/v1 answers
//! `{"error": {"code", "message", "field"?}}`; /v3 answers Mailgun's
//! `{"message": ...}`. A 5xx logs its detail and shows none of it.

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_app::AppError;
use serde::Serialize;
use utoipa::ToSchema;

/// The error body of every /api/v1 endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `invalid_input` or `not_found`.
    pub code: &'static str,
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An /api/v1 error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
        }
    }
}

fn classify(err: AppError) -> (StatusCode, &'static str, String, Option<String>) {
    match err {
        AppError::Invalid(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            e.to_string(),
            Some(e.field.to_owned()),
        ),
        AppError::InvalidField { field, message } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            message,
            Some(field).filter(|f| !f.is_empty()),
        ),
        AppError::TooLarge(message) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            message,
            Some("attachment".to_owned()),
        ),
        AppError::NotFound(what) => (
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
            None,
        ),
        AppError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing or invalid credentials".to_owned(),
            None,
        ),
        AppError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, None),
        AppError::Conflict { field, message } => (
            StatusCode::CONFLICT,
            "conflict",
            message,
            field.map(str::to_owned),
        ),
        AppError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log".to_owned(),
                None,
            )
        }
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        let (status, code, message, field) = classify(err);
        Self {
            status,
            code,
            message,
            field,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        let status = if status == StatusCode::BAD_REQUEST {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            status
        };
        let mut err = Self::new(status, code, r.body_text());
        // serde names the field in messages like "unknown field `x`" or "missing field `x`".
        err.field = r.body_text().split('`').nth(1).map(str::to_owned);
        err
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            r.body_text(),
        );
        err.field = r.body_text().split('`').nth(1).map(str::to_owned);
        err
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        Self::new(r.status(), "invalid_form", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthenticated = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if unauthenticated {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// A /v3 error in Mailgun's shape.
#[derive(Debug)]
pub struct MailgunError {
    pub status: StatusCode,
    pub message: String,
}

impl MailgunError {
    /// Mailgun's answer to a bad parameter: 400 and a message.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// An application error where Mailgun answers bad input with 400
    /// (not /api/v1's 422).
    pub fn input(e: AppError) -> Self {
        match e {
            AppError::Invalid(i) => Self::bad(i.to_string()),
            AppError::InvalidField { message, .. } => Self::bad(message),
            other => other.into(),
        }
    }
}

impl From<AppError> for MailgunError {
    fn from(err: AppError) -> Self {
        let (status, _, message, _) = classify(err);
        let message = if status == StatusCode::UNAUTHORIZED {
            "Invalid private key".to_owned()
        } else {
            message
        };
        Self { status, message }
    }
}

impl IntoResponse for MailgunError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"MG API\""),
            );
        }
        res
    }
}
