//! sea-orm entities, one per table. Nothing outside this crate sees them.

pub mod api_key;
pub mod audit_entry;
pub mod sealed_secret;
pub mod session;
pub mod tenant;
pub mod tenant_domain;
pub mod tenant_user;
