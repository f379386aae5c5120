use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub profile_id: Option<String>,
    pub identity_id: Option<String>,
    pub purpose: Option<String>,
    pub mail_from: String,
    pub message_id_header: String,
    pub subject: String,
    /// JSON: the headers events report (to, from, subject, message-id).
    pub headers: String,
    /// JSON array of tags.
    pub tags: String,
    /// JSON object of user variables.
    pub user_variables: String,
    pub size: i64,
    pub test_mode: bool,
    pub deliver_after: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
