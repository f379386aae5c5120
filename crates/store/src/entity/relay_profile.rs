use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "relay_profile")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Lowercased name, unique per tenant.
    pub name_key: String,
    pub kind: String,
    /// `ProfileSettings` as JSON.
    pub settings: String,
    pub notify_user_id: Option<String>,
    pub bounce_identity_id: Option<String>,
    /// active | failing (its own credentials were refused).
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
