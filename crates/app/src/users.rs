//! A tenant's users. Owners and admins manage them; only an owner may grant,
//! change or remove the owner role, and the last owner stays.

use herald_crypto::{SecretString, generate_password, hash_password, verify_password};
use herald_domain::{
    Actor, AuditAction, ChangedFields, EmailAddress, InvalidInput, Role, Timestamp, User, UserId,
};
use herald_store::{Connection, identities, relay_profiles, secrets, sessions, users};

use crate::access::{Page, Require};
use crate::audit::record;
use crate::tenants::optional_display_name;
use crate::{AppError, Herald};

fn identities_table() -> &'static str {
    crate::identities::TABLE
}

const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
}

/// A new user and the one-time password to hand them.
#[derive(Debug)]
pub struct CreatedUser {
    pub user: User,
    pub one_time_password: SecretString,
}

/// `None` leaves a field as it is; `display_name: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub display_name: Option<Option<String>>,
    pub role: Option<String>,
}

fn parse_id(id: &str) -> Result<UserId, AppError> {
    id.parse()
        .map_err(|_: InvalidInput| AppError::NotFound("user"))
}

/// Owner-role changes need an owner.
fn guard_owner_role(actor: &Actor, touched: Role) -> Result<(), AppError> {
    if touched == Role::Owner && actor.role != Role::Owner {
        return Err(AppError::Forbidden(
            "only an owner may grant, change or remove the owner role".into(),
        ));
    }
    Ok(())
}

async fn guard_last_owner(db: &impl Connection, user: &User) -> Result<(), AppError> {
    if user.role == Role::Owner
        && users::count_with_role(db, user.tenant_id, Role::Owner).await? <= 1
    {
        return Err(AppError::conflict(
            Some("role"),
            "a tenant keeps at least one owner",
        ));
    }
    Ok(())
}

impl Herald {
    pub async fn list_users(
        &self,
        actor: &Actor,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<Page<User, UserId>, AppError> {
        actor.require(Role::Admin)?;
        let mut items = users::list(self.store.read(), actor.tenant_id, after, limit + 1).await?;
        Ok(Page::from_overfetch(&mut items, limit, |u| u.id))
    }

    /// One user: admins see everyone, others only themselves.
    pub async fn user(&self, actor: &Actor, id: &str) -> Result<User, AppError> {
        let id = parse_id(id)?;
        if actor.user_id() != Some(id) {
            actor.require(Role::Admin)?;
        }
        users::get(self.store.read(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("user"))
    }

    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<CreatedUser, AppError> {
        actor.require(Role::Admin)?;
        let email = EmailAddress::parse(&new.email)?;
        let display_name = optional_display_name(new.display_name.as_deref())?;
        let role: Role = new.role.parse()?;
        guard_owner_role(actor, role)?;
        let user = User {
            id: UserId::new(),
            tenant_id: actor.tenant_id,
            email,
            display_name,
            role,
            must_change_password: true,
            created_at: Timestamp::now(),
        };
        let password = generate_password();
        let tx = self.store.begin().await?;
        users::insert(tx.conn(), &user, &hash_password(&password)).await?;
        let fields = ChangedFields::of(&["email", "display_name", "role", "password"]);
        record(
            tx.conn(),
            actor,
            AuditAction::Create,
            "user",
            &user.id.to_string(),
            fields,
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedUser {
            user,
            one_time_password: password,
        })
    }

    pub async fn update_user(
        &self,
        actor: &Actor,
        id: &str,
        patch: UserPatch,
    ) -> Result<User, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_id(id)?;
        let email = patch
            .email
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()?;
        let display_name = patch
            .display_name
            .map(|d| optional_display_name(d.as_deref()))
            .transpose()?;
        let role = patch.role.as_deref().map(str::parse::<Role>).transpose()?;

        let tx = self.store.begin().await?;
        let before = users::get(tx.conn(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        guard_owner_role(actor, before.role)?;
        let mut after = before.clone();
        if let Some(role) = role {
            guard_owner_role(actor, role)?;
            if role != Role::Owner {
                guard_last_owner(tx.conn(), &before).await?;
            }
            after.role = role;
        }
        if let Some(email) = email {
            after.email = email;
        }
        if let Some(display_name) = display_name {
            after.display_name = display_name;
        }
        let mut fields = ChangedFields::new();
        fields.compare("email", &before.email, &after.email);
        fields.compare("display_name", &before.display_name, &after.display_name);
        fields.compare("role", &before.role, &after.role);
        if !fields.is_empty() {
            users::update(tx.conn(), &after).await?;
            record(
                tx.conn(),
                actor,
                AuditAction::Update,
                "user",
                &id.to_string(),
                fields,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(after)
    }

    pub async fn delete_user(&self, actor: &Actor, id: &str) -> Result<(), AppError> {
        actor.require(Role::Admin)?;
        let id = parse_id(id)?;
        let tx = self.store.begin().await?;
        let user = users::get(tx.conn(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        guard_owner_role(actor, user.role)?;
        guard_last_owner(tx.conn(), &user).await?;
        if let Some(p) = relay_profiles::notifying(tx.conn(), actor.tenant_id, id)
            .await?
            .first()
        {
            return Err(AppError::conflict(
                None,
                format!(
                    "{} is the Notify User of relay profile {:?}; choose another first",
                    user.email,
                    p.as_str()
                ),
            ));
        }
        // Their identities go with them (the rows by cascade): wipe the secrets.
        for identity in identities::owned_by(tx.conn(), actor.tenant_id, id).await? {
            if let Some(p) = relay_profiles::bouncing_to(tx.conn(), actor.tenant_id, identity)
                .await?
                .first()
            {
                return Err(AppError::conflict(
                    None,
                    format!(
                        "relay profile {:?} reads its bounce mailbox as {}'s identity; change it first",
                        p.as_str(),
                        user.email
                    ),
                ));
            }
            let row = identity.to_string();
            secrets::delete_row(tx.conn(), actor.tenant_id, identities_table(), &row).await?;
        }
        users::delete(tx.conn(), actor.tenant_id, id).await?;
        record(
            tx.conn(),
            actor,
            AuditAction::Delete,
            "user",
            &id.to_string(),
            ChangedFields::new(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives a user a new one-time password and ends their sessions.
    pub async fn reset_password(&self, actor: &Actor, id: &str) -> Result<SecretString, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_id(id)?;
        let password = generate_password();
        let tx = self.store.begin().await?;
        let user = users::get(tx.conn(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        guard_owner_role(actor, user.role)?;
        users::set_password(
            tx.conn(),
            actor.tenant_id,
            id,
            &hash_password(&password),
            true,
        )
        .await?;
        sessions::delete_for_user(tx.conn(), actor.tenant_id, id).await?;
        let fields = ChangedFields::of(&["password"]);
        record(
            tx.conn(),
            actor,
            AuditAction::Update,
            "user",
            &id.to_string(),
            fields,
        )
        .await?;
        tx.commit().await?;
        Ok(password)
    }

    /// A signed-in user changes their own password.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &SecretString,
        new: &SecretString,
    ) -> Result<(), AppError> {
        let id = actor.user_id().ok_or_else(|| {
            AppError::Forbidden("only a signed-in user has a password to change".into())
        })?;
        if new.expose().chars().count() < MIN_PASSWORD_CHARS {
            return Err(InvalidInput::new(
                "new_password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters"),
            )
            .into());
        }
        if new.expose().chars().any(char::is_control) {
            return Err(
                InvalidInput::new("new_password", "must not contain control characters").into(),
            );
        }
        let hash = users::password_hash(self.store.read(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        if !verify_password(current, &hash).unwrap_or(false) {
            return Err(
                InvalidInput::new("current_password", "is not your current password").into(),
            );
        }
        let tx = self.store.begin().await?;
        users::set_password(tx.conn(), actor.tenant_id, id, &hash_password(new), false).await?;
        let fields = ChangedFields::of(&["password"]);
        record(
            tx.conn(),
            actor,
            AuditAction::Update,
            "user",
            &id.to_string(),
            fields,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
