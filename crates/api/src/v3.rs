//! The Mailgun-compatible API under /v3. Clients authenticate with HTTP Basic
//! `api:KEY`, as every Mailgun client does. Sending, events and suppressions
//! join these routes in their issues.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_domain::{DomainName, Tenant};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::MailgunError;
use crate::extract::MailgunCaller;

pub fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/domains", get(list_domains))
        .route("/domains/{domain}", get(get_domain))
        .route(
            "/{domain}/messages",
            axum::routing::post(crate::v3_messages::send),
        )
        .route("/{domain}/events", get(crate::v3_events::list))
        .route("/{domain}/events/{page}", get(crate::v3_events::page))
        .route(
            "/{domain}/{list}",
            get(crate::v3_suppressions::list)
                .post(crate::v3_suppressions::add)
                .delete(crate::v3_suppressions::delete_all),
        )
        .route(
            "/{domain}/{list}/{address}",
            get(crate::v3_suppressions::get_one).delete(crate::v3_suppressions::delete_one),
        );
    #[cfg(feature = "bench")]
    let r = r.route(
        "/{domain}/messages.parse-only",
        axum::routing::post(crate::v3_messages::parse_only),
    );
    r
}

fn domain_item(tenant: &Tenant, domain: &DomainName) -> Value {
    json!({
        "name": domain.as_str(),
        "state": "active",
        "type": "custom",
        "created_at": tenant.created_at.to_rfc3339(),
        "is_disabled": false,
    })
}

/// Mailgun's `GET /v3/domains`: the caller's sending domains.
pub async fn list_domains(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
) -> Result<Json<Value>, MailgunError> {
    let tenant = s.herald.tenant(&actor).await?;
    let items: Vec<Value> = tenant
        .domains
        .iter()
        .map(|d| domain_item(&tenant, d))
        .collect();
    Ok(Json(json!({ "total_count": items.len(), "items": items })))
}

/// Mailgun's `GET /v3/domains/{domain}`; another tenant's domain is 404.
pub async fn get_domain(
    State(s): State<AppState>,
    MailgunCaller(actor): MailgunCaller,
    Path(domain): Path<String>,
) -> Result<Json<Value>, MailgunError> {
    let tenant = s.herald.tenant(&actor).await?;
    let found = DomainName::parse(&domain)
        .ok()
        .and_then(|d| tenant.domains.iter().find(|own| **own == d).cloned());
    match found {
        Some(d) => Ok(Json(json!({ "domain": domain_item(&tenant, &d) }))),
        None => Err(MailgunError {
            status: StatusCode::NOT_FOUND,
            message: "Domain not found".to_owned(),
        }),
    }
}
