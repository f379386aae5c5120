//! sea-orm entities, one per table. Nothing outside this crate sees them.

pub mod api_key;
pub mod audit_entry;
pub mod event;
pub mod idempotency_key;
pub mod identity_user;
pub mod message;
pub mod message_body;
pub mod oauth_app;
pub mod oauth_state;
pub mod recipient;
pub mod relay_profile;
pub mod relay_route;
pub mod sealed_secret;
pub mod sender_identity;
pub mod session;
pub mod suppression;
pub mod tenant;
pub mod tenant_domain;
pub mod tenant_user;
