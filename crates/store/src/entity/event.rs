use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub ts: i64,
    pub kind: String,
    pub severity: Option<String>,
    pub reason: Option<String>,
    pub recipient: Option<String>,
    pub recipient_domain: Option<String>,
    pub message_id: Option<String>,
    pub identity_id: Option<String>,
    pub profile_id: Option<String>,
    pub description: Option<String>,
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
