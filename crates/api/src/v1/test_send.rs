//! POST /api/v1/relay-profiles/{id}/test and /api/v1/identities/{id}/test.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use herald_app::TestSendReport;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{TenantAdmin, TenantSender, from_json_at};

/// Where the test goes; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Defaults to the caller's own address (required for API keys).
    pub to: Option<String>,
}

fn request(body: &Bytes) -> Result<TestRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(TestRequest::default());
    }
    from_json_at(body, "")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosisView {
    /// e.g. connection_refused, timeout, tls_certificate, starttls_not_offered,
    /// bad_credentials, smtp_auth_disabled, basic_auth_unsupported, relay_denied
    pub code: &'static str,
    pub message: String,
    /// The credentials were refused (the sender is at fault, not the recipient).
    pub sender_auth: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyView {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

/// What the test did: the outcome, the conversation with secrets masked,
/// and a diagnosis when it failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub from: String,
    pub to: String,
    pub transport: &'static str,
    /// The SMTP step that failed.
    pub stage: Option<String>,
    pub reply: Option<ReplyView>,
    pub diagnosis: Option<DiagnosisView>,
    pub transcript: Vec<String>,
    pub elapsed_ms: u64,
    /// For an identity: its status after the test.
    pub identity_status: Option<String>,
    /// For an OAuth identity: the access token's expiry and granted scopes.
    pub token_expires_at: Option<String>,
    pub token_scopes: Vec<String>,
}

impl From<TestSendReport> for TestResult {
    fn from(r: TestSendReport) -> Self {
        Self {
            ok: r.ok,
            from: r.from.to_string(),
            to: r.to.to_string(),
            transport: r.transport,
            stage: r
                .stage
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| v.as_str().map(str::to_owned)),
            reply: r.reply.map(|r| ReplyView {
                code: r.code,
                enhanced: r.enhanced,
                text: r.text,
            }),
            diagnosis: r.diagnosis.map(|d| DiagnosisView {
                code: d.code,
                message: d.message,
                sender_auth: d.sender_auth,
            }),
            transcript: r.transcript,
            elapsed_ms: r.elapsed_ms,
            identity_status: r.identity_status.map(|s| s.to_string()),
            token_expires_at: r.token_expires_at.map(|t| t.to_rfc3339()),
            token_scopes: r.token_scopes,
        }
    }
}

/// Sends a real test message through the profile with its own credentials
/// and From. A failed send is still 200, with `ok: false` and a diagnosis.
#[utoipa::path(post, path = "/api/v1/relay-profiles/{id}/test", tag = "relay-profiles",
    params(("id" = String, Path)), request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn test_profile(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TestResult>, ApiError> {
    let req = request(&body)?;
    let report = s
        .herald
        .test_relay_profile(&actor, &id, req.to.as_deref())
        .await?;
    Ok(Json(report.into()))
}

/// Sends a real test message as the identity. Success marks it connected;
/// refused credentials mark it failing.
#[utoipa::path(post, path = "/api/v1/identities/{id}/test", tag = "identities",
    params(("id" = String, Path)), request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn test_identity(
    State(s): State<AppState>,
    TenantSender(actor): TenantSender,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TestResult>, ApiError> {
    let req = request(&body)?;
    let report = s
        .herald
        .test_identity(&actor, &id, req.to.as_deref())
        .await?;
    Ok(Json(report.into()))
}

/// What one poll of a bounce mailbox found.
#[derive(Debug, Serialize, ToSchema)]
pub struct BouncePollResult {
    /// The mailbox was read (false: `error` says why).
    pub ok: bool,
    pub error: Option<String>,
    /// Unread messages taken from the mailbox.
    pub fetched: u32,
    /// Recipients recorded as failed by a bounce report.
    pub bounced: u32,
    /// Recipients a report says are delayed.
    pub delayed: u32,
    /// Complaints (feedback reports) recorded.
    pub complained: u32,
    /// Reports recorded by an earlier poll.
    pub duplicates: u32,
    /// Reports about no message of this tenant: marked read and left.
    pub unmatched: u32,
    /// Mail that is not a report: marked read and left for a person.
    pub not_reports: u32,
}

impl From<herald_app::BouncePoll> for BouncePollResult {
    fn from(p: herald_app::BouncePoll) -> Self {
        Self {
            ok: p.error.is_none(),
            error: p.error,
            fetched: p.fetched,
            bounced: p.bounced,
            delayed: p.delayed,
            complained: p.complained,
            duplicates: p.duplicates,
            unmatched: p.unmatched,
            not_reports: p.not_reports,
        }
    }
}

/// Reads the profile's bounce mailbox now (it is also read every
/// `poll_minutes`): delivery status notifications become `failed` events
/// (hard bounces also a bounce suppression), feedback reports `complained`
/// events and complaint suppressions. Reports used are deleted from the
/// mailbox. A mailbox that cannot be read is still 200, with `ok: false`.
#[utoipa::path(post, path = "/api/v1/relay-profiles/{id}/bounce-mailbox/poll", tag = "relay-profiles",
    params(("id" = String, Path)),
    responses((status = 200, body = BouncePollResult), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("session" = [])))]
pub async fn poll_bounce_mailbox(
    State(s): State<AppState>,
    TenantAdmin(actor): TenantAdmin,
    Path(id): Path<String>,
) -> Result<Json<BouncePollResult>, ApiError> {
    let poll = s.herald.poll_bounce_mailbox_now(&actor, &id).await?;
    Ok(Json(poll.into()))
}
