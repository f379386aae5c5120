//! API keys: created by owners and admins, shown once, scoped to a role no
//! higher than their creator's.

use herald_crypto::{BearerToken, SecretString, TokenKind};
use herald_domain::{
    Actor, ApiKey, ApiKeyId, AuditAction, ChangedFields, InvalidInput, Role, Timestamp,
};
use herald_store::{Connection, api_keys};

use crate::access::{Page, Require};
use crate::audit::record;
use crate::{AppError, Herald};

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: String,
}

/// A new key: `token` is shown to the caller once and never again.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub token: SecretString,
}

impl Herald {
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, AppError> {
        actor.require(Role::Admin)?;
        let tx = self.store.begin().await?;
        let created = self.insert_api_key(tx.conn(), actor, new).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn insert_api_key(
        &self,
        db: &impl Connection,
        actor: &Actor,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, AppError> {
        let name = herald_domain::text::single_line("name", &new.name, 100)?;
        let role: Role = new.role.parse()?;
        if !actor.role.includes(role) {
            return Err(AppError::Forbidden(format!(
                "you cannot create a key with the {role} role: it is above your own ({})",
                actor.role
            )));
        }
        let token = BearerToken::generate(TokenKind::ApiKey);
        let key = ApiKey {
            id: ApiKeyId::new(),
            tenant_id: actor.tenant_id,
            name,
            role,
            display_prefix: token.display_prefix.clone(),
            created_by: actor.label.clone(),
            created_at: Timestamp::now(),
            last_used_at: None,
        };
        api_keys::insert(db, &key, &token.hash).await?;
        let fields = ChangedFields::of(&["name", "role", "key"]);
        record(
            db,
            actor,
            AuditAction::Create,
            "api_key",
            &key.id.to_string(),
            fields,
        )
        .await?;
        Ok(CreatedApiKey {
            key,
            token: token.token,
        })
    }

    pub async fn list_api_keys(
        &self,
        actor: &Actor,
        after: Option<ApiKeyId>,
        limit: u64,
    ) -> Result<Page<ApiKey, ApiKeyId>, AppError> {
        actor.require(Role::Admin)?;
        let mut items =
            api_keys::list(self.store.read(), actor.tenant_id, after, limit + 1).await?;
        Ok(Page::from_overfetch(&mut items, limit, |k| k.id))
    }

    pub async fn api_key(&self, actor: &Actor, id: &str) -> Result<ApiKey, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_id(id)?;
        api_keys::get(self.store.read(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("api key"))
    }

    /// Revokes a key at once.
    pub async fn delete_api_key(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        actor.require(Role::Admin)?;
        let id = parse_id(id)?;
        let tx = self.store.begin().await?;
        let key = api_keys::get(tx.conn(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("api key"))?;
        if !actor.role.includes(key.role) {
            return Err(AppError::Forbidden(format!(
                "only an {} or higher may revoke this key",
                key.role
            )));
        }
        api_keys::delete(tx.conn(), actor.tenant_id, id).await?;
        record(
            tx.conn(),
            actor,
            AuditAction::Delete,
            "api_key",
            &id.to_string(),
            ChangedFields::new(),
        )
        .await?;
        tx.commit().await?;
        self.key_cache.forget(id);
        Ok(())
    }
}

/// An id from a URL: one that does not parse cannot exist, so it is a 404.
fn parse_id(id: &str) -> Result<ApiKeyId, AppError> {
    id.parse()
        .map_err(|_: InvalidInput| AppError::NotFound("api key"))
}
