//! The OpenAPI document, served at /api/v1/openapi.json with Swagger UI at /docs.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::{health, v1};

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Multi-tenant email sending: relay profiles, sender identities, a durable queue and a Mailgun-compatible event log."),
    paths(
        health::healthz,
        health::readyz,
        v1::tenant::get_tenant,
        v1::tenant::update_tenant,
        v1::users::list_users,
        v1::users::create_user,
        v1::users::me,
        v1::users::change_own_password,
        v1::users::get_user,
        v1::users::update_user,
        v1::users::delete_user,
        v1::users::reset_password,
        v1::api_keys::list_keys,
        v1::api_keys::create_key,
        v1::api_keys::get_key,
        v1::api_keys::delete_key,
        v1::audit::list_audit,
        v1::events::list,
        v1::events::csv,
        v1::suppressions::list,
        v1::suppressions::add,
        v1::suppressions::get_one,
        v1::suppressions::delete_one,
        v1::relay_profiles::list_profiles,
        v1::relay_profiles::create_profile,
        v1::relay_profiles::get_profile,
        v1::relay_profiles::update_profile,
        v1::relay_profiles::delete_profile,
        v1::relay_profiles::get_routing,
        v1::relay_profiles::put_routing,
        v1::identities::list_identities,
        v1::identities::create_identity,
        v1::identities::get_identity,
        v1::identities::update_identity,
        v1::identities::delete_identity,
        v1::test_send::test_profile,
        v1::test_send::test_identity,
        v1::test_send::poll_bounce_mailbox,
        v1::oauth::get_app,
        v1::oauth::put_app,
        v1::oauth::delete_app,
        v1::oauth::start,
        v1::oauth::disconnect,
        v1::messages::submit,
        v1::messages::list,
        v1::messages::get_one,
        v1::messages::cancel,
        v1::messages::resend_many,
        v1::messages::resend_one,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::extract::SESSION_COOKIE,
            ))),
        );
    }
}
