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
    pub domain: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::message::Entity",
        from = "Column::MessageId",
        to = "super::message::Column::Id"
    )]
    Message,
}

impl Related<super::message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Message.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
