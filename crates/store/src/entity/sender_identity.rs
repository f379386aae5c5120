use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sender_identity")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub address: String,
    /// Lowercased address, unique per tenant.
    pub address_key: String,
    pub display_name: Option<String>,
    pub owner_user_id: Option<String>,
    pub profile_id: String,
    pub preferred: bool,
    pub status: String,
    pub auth_method: String,
    pub username: Option<String>,
    pub oauth_provider: Option<String>,
    pub granted_mailbox: Option<String>,
    pub access_expires_at: Option<i64>,
    pub token_generation: i64,
    /// Space-separated scopes granted (OAuth).
    pub oauth_scopes: Option<String>,
    pub last_error: Option<String>,
    pub last_checked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
