//! The native JSON API under /api/v1.

pub mod api_keys;
pub mod audit;
pub mod events;
pub mod identities;
pub mod messages;
pub mod oauth;
pub mod relay_profiles;
pub mod suppressions;
pub mod tenant;
pub mod test_send;
pub mod users;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use crate::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tenant",
            get(tenant::get_tenant).patch(tenant::update_tenant),
        )
        .route("/users", get(users::list_users).post(users::create_user))
        .route("/users/me", get(users::me))
        .route("/users/me/password", post(users::change_own_password))
        .route(
            "/users/{id}",
            get(users::get_user)
                .patch(users::update_user)
                .delete(users::delete_user),
        )
        .route("/users/{id}/password-reset", post(users::reset_password))
        .route(
            "/api-keys",
            get(api_keys::list_keys).post(api_keys::create_key),
        )
        .route(
            "/api-keys/{id}",
            get(api_keys::get_key).delete(api_keys::delete_key),
        )
        .route("/audit", get(audit::list_audit))
        .route("/events", get(events::list))
        .route("/events.csv", get(events::csv))
        .route(
            "/suppressions",
            get(suppressions::list).post(suppressions::add),
        )
        .route(
            "/suppressions/{kind}/{address}",
            get(suppressions::get_one).delete(suppressions::delete_one),
        )
        .route("/messages", get(messages::list).post(messages::submit))
        .route(
            "/messages/{id}",
            get(messages::get_one).delete(messages::cancel),
        )
        .route("/messages/resend", post(messages::resend_many))
        .route("/messages/{id}/resend", post(messages::resend_one))
        .route(
            "/relay-profiles",
            get(relay_profiles::list_profiles).post(relay_profiles::create_profile),
        )
        .route(
            "/relay-profiles/{id}",
            get(relay_profiles::get_profile)
                .patch(relay_profiles::update_profile)
                .delete(relay_profiles::delete_profile),
        )
        .route("/relay-profiles/{id}/test", post(test_send::test_profile))
        .route(
            "/relay-profiles/{id}/bounce-mailbox/poll",
            post(test_send::poll_bounce_mailbox),
        )
        .route("/identities/{id}/test", post(test_send::test_identity))
        .route("/identities/{id}/oauth/start", post(oauth::start))
        .route("/identities/{id}/oauth/disconnect", post(oauth::disconnect))
        .route(
            "/oauth-apps/{provider}",
            get(oauth::get_app)
                .put(oauth::put_app)
                .delete(oauth::delete_app),
        )
        .route(
            "/relay-routing",
            get(relay_profiles::get_routing).put(relay_profiles::put_routing),
        )
        .route(
            "/identities",
            get(identities::list_identities).post(identities::create_identity),
        )
        .route(
            "/identities/{id}",
            get(identities::get_identity)
                .patch(identities::update_identity)
                .delete(identities::delete_identity),
        )
}

/// Keyset paging: `limit` (1–500, default 100) and the `cursor` a previous
/// page returned as `next_cursor`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u64, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=500) => Ok(n),
            Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 500")),
        }
    }

    /// The cursor as an id; one that does not parse was not ours.
    pub fn after<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API returned"))
            })
            .transpose()
    }
}

/// Tells "absent" (leave as is) from `null` (clear) in a PATCH body.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
