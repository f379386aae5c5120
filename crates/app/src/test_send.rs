//! "Send test email": a real message through a profile or an identity, with
//! the conversation (secrets masked) and a diagnosis when it fails.

use herald_domain::{
    Actor, DisplayName, EmailAddress, IdentityAuth, IdentityStatus, InvalidInput, ProfileSecret,
    ProfileStatus, RelayProfile, Role, SmtpAuth, Timestamp, Transport,
};
use herald_mailer::{Diagnosis, Reply, SmtpLogin, Stage, TestMessage, diagnose, mailgun};
use herald_store::messages::SenderScope;
use herald_store::{Connection, identities, relay_profiles, secrets, users};

use crate::access::Require;
use crate::identities::{identity_slot, parse_identity_id};
use crate::oauth::TokenFailure;
use crate::relay_profiles::{parse_profile_id, slot as profile_slot};
use crate::{AppError, Herald};

/// What a test send did.
#[derive(Debug, Clone)]
pub struct TestSendReport {
    pub ok: bool,
    pub from: EmailAddress,
    pub to: EmailAddress,
    /// smtp | mailgun | sandbox
    pub transport: &'static str,
    pub stage: Option<Stage>,
    pub reply: Option<Reply>,
    pub diagnosis: Option<Diagnosis>,
    pub transcript: Vec<String>,
    pub elapsed_ms: u64,
    /// For an identity: its status after the test.
    pub identity_status: Option<IdentityStatus>,
    /// For an OAuth identity: when the access token used expires, and the
    /// scopes granted.
    pub token_expires_at: Option<Timestamp>,
    pub token_scopes: Vec<String>,
}

/// Who sends the test, and as whom.
struct Sender<'a> {
    from: &'a EmailAddress,
    from_name: Option<&'a DisplayName>,
    login: Option<SmtpLogin>,
}

fn not_sent(code: &'static str, message: String, sender_auth: bool) -> Diagnosis {
    Diagnosis {
        code,
        message,
        sender_auth,
    }
}

impl Herald {
    /// The `to` given, or the caller's own address.
    async fn test_recipient(
        &self,
        db: &impl Connection,
        actor: &Actor,
        to: Option<&str>,
    ) -> Result<EmailAddress, AppError> {
        if let Some(to) = to {
            return Ok(EmailAddress::parse(to).map_err(|e| e.at("to"))?);
        }
        let user = match actor.user_id() {
            Some(id) => users::get(db, actor.tenant_id, id).await?,
            None => None,
        };
        user.map(|u| u.email).ok_or_else(|| {
            InvalidInput::new("to", "is required when an API key sends the test").into()
        })
    }

    /// POST /relay-profiles/{id}/test: the profile's own credentials and From.
    pub async fn test_relay_profile(
        &self,
        actor: &Actor,
        id: &str,
        to: Option<&str>,
    ) -> Result<TestSendReport, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_profile_id(id)?;
        let db = self.store.read();
        let profile = relay_profiles::get(db, actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("relay profile"))?;
        let to = self.test_recipient(db, actor, to).await?;
        let login = self.profile_login(&profile).await?;
        let from = profile.settings.from.clone();
        let sender = Sender {
            from: &from.address,
            from_name: from.name.as_ref(),
            login,
        };
        let report = self.run_test(&profile, sender, &to).await?;
        if report.ok && profile.status == ProfileStatus::Failing {
            let tx = self.store.begin().await?;
            relay_profiles::set_status(tx.conn(), actor.tenant_id, id, ProfileStatus::Active, None)
                .await?;
            self.release_held(
                tx.conn(),
                actor.tenant_id,
                SenderScope::Profile(id),
                "a test send succeeded",
            )
            .await?;
            tx.commit().await?;
        }
        Ok(report)
    }

    /// POST /identities/{id}/test: the identity's own credentials, its
    /// address as From. Success marks it connected; refused credentials mark
    /// it failing.
    pub async fn test_identity(
        &self,
        actor: &Actor,
        id: &str,
        to: Option<&str>,
    ) -> Result<TestSendReport, AppError> {
        let id = parse_identity_id(id)?;
        let db = self.store.read();
        let identity = self.visible_identity(db, actor, id).await?;
        Self::require_manage(actor, &identity)?;
        let to = self.test_recipient(db, actor, to).await?;
        let profile = relay_profiles::get(db, actor.tenant_id, identity.profile_id)
            .await?
            .ok_or(AppError::NotFound("relay profile"))?;
        let row = id.to_string();
        let mut early = None;
        let mut token_info = None;
        let login = match (&profile.settings.transport, &identity.auth) {
            (Transport::Smtp(_), IdentityAuth::Password { .. }) => {
                let slot = identity_slot(actor.tenant_id, &row, "password");
                match secrets::get_text(db, &self.keys, slot).await? {
                    Some(password) => Some(SmtpLogin::Password {
                        username: identity.username().to_owned(),
                        password,
                    }),
                    None => {
                        early = Some(not_sent(
                            "password_missing",
                            "This identity has no password yet: set one, then test again.".into(),
                            true,
                        ));
                        None
                    }
                }
            }
            (Transport::Smtp(_), IdentityAuth::OAuth { .. }) => {
                match self.access_token(actor.tenant_id, id, None).await {
                    Ok(t) => {
                        token_info = Some((t.expires_at, t.scopes, t.generation));
                        Some(SmtpLogin::Xoauth2 {
                            username: identity.address.to_string(),
                            access_token: t.token,
                        })
                    }
                    Err(TokenFailure::NeedsConsent(m)) => {
                        early = Some(not_sent("not_connected", m, true));
                        None
                    }
                    Err(TokenFailure::Provider(m)) => {
                        early = Some(not_sent("provider_unreachable", m, false));
                        None
                    }
                    Err(TokenFailure::Internal(e)) => return Err(e),
                }
            }
            _ => None,
        };
        let sender = Sender {
            from: &identity.address,
            from_name: identity.display_name.as_ref(),
            login,
        };
        let mut report = match early {
            Some(d) => TestSendReport {
                ok: false,
                from: identity.address.clone(),
                to,
                transport: profile.settings.transport.kind(),
                stage: None,
                reply: None,
                diagnosis: Some(d),
                transcript: Vec::new(),
                elapsed_ms: 0,
                identity_status: None,
                token_expires_at: None,
                token_scopes: Vec::new(),
            },
            None => {
                let mut report = self.run_test(&profile, sender, &to).await?;
                // A rejected XOAUTH2: refresh once and try once more before
                // calling it a credential failure.
                if let (Some((_, _, generation)), Some(d)) = (&token_info, &report.diagnosis)
                    && d.sender_auth
                {
                    let retry = self
                        .access_token(actor.tenant_id, id, Some(*generation))
                        .await;
                    if let Ok(t) = retry {
                        let sender = Sender {
                            from: &identity.address,
                            from_name: identity.display_name.as_ref(),
                            login: Some(SmtpLogin::Xoauth2 {
                                username: identity.address.to_string(),
                                access_token: t.token,
                            }),
                        };
                        token_info = Some((t.expires_at, t.scopes, t.generation));
                        report = self.run_test(&profile, sender, &to).await?;
                    }
                }
                report
            }
        };
        if let Some((expires_at, scopes, _)) = token_info {
            report.token_expires_at = expires_at;
            report.token_scopes = scopes;
        }
        let status = match (&report.diagnosis, report.ok) {
            (_, true) => Some((IdentityStatus::Connected, None)),
            // Not connected (or just marked needs_reauth by the refresh):
            // the status already says so.
            (Some(d), false) if d.code == "not_connected" => None,
            (Some(d), false) if d.sender_auth => {
                Some((IdentityStatus::Failing, Some(d.message.clone())))
            }
            (Some(d), false) => Some((identity.status, Some(d.message.clone()))),
            (None, false) => None,
        };
        if let Some((status, error)) = status {
            let tx = self.store.begin().await?;
            identities::set_status(tx.conn(), actor.tenant_id, id, status, error.as_deref())
                .await?;
            if status == IdentityStatus::Connected {
                self.release_held(
                    tx.conn(),
                    actor.tenant_id,
                    SenderScope::Identity(id),
                    "a test send succeeded",
                )
                .await?;
            }
            tx.commit().await?;
            report.identity_status = Some(status);
        } else if let Some(now) = identities::get(self.store.read(), actor.tenant_id, id).await? {
            report.identity_status = Some(now.status);
        }
        Ok(report)
    }

    async fn run_test(
        &self,
        profile: &RelayProfile,
        sender: Sender<'_>,
        to: &EmailAddress,
    ) -> Result<TestSendReport, AppError> {
        let name = profile.settings.name.as_str();
        let subject = format!("Herald test message: {name}");
        let text = format!(
            "This is a test message sent by Herald through the relay profile \"{name}\" at {}.\r\n\
             If you can read it, this sender works.\r\n",
            Timestamp::now().to_rfc3339()
        );
        self.deliver_once(profile, sender, to, &subject, text).await
    }

    /// Sends one plain-text message right away, outside the queue (tests and
    /// Herald's own notices), and reports what happened.
    async fn deliver_once(
        &self,
        profile: &RelayProfile,
        sender: Sender<'_>,
        to: &EmailAddress,
        subject: &str,
        text: String,
    ) -> Result<TestSendReport, AppError> {
        let mut report = TestSendReport {
            ok: false,
            from: sender.from.clone(),
            to: to.clone(),
            transport: profile.settings.transport.kind(),
            stage: None,
            reply: None,
            diagnosis: None,
            transcript: Vec::new(),
            elapsed_ms: 0,
            identity_status: None,
            token_expires_at: None,
            token_scopes: Vec::new(),
        };
        match &profile.settings.transport {
            Transport::Sandbox => {
                report.ok = true;
                report.transcript = vec![format!(
                    "* sandbox: message from {} to {to} accepted and recorded; nothing left Herald",
                    sender.from
                )];
            }
            Transport::Mailgun(relay) => {
                let row = profile.id.to_string();
                let slot = profile_slot(profile.tenant_id, &row, ProfileSecret::ApiKey);
                let key = secrets::get_text(self.store.read(), &self.keys, slot)
                    .await?
                    .ok_or_else(|| InvalidInput::new("secrets.api_key", "is not set"))?;
                let from = match sender.from_name {
                    Some(n) => format!("\"{}\" <{}>", n.as_str().replace('"', "'"), sender.from),
                    None => sender.from.to_string(),
                };
                let msg = mailgun::MailgunMessage {
                    from: &from,
                    to: to.as_str(),
                    subject,
                    text: &text,
                };
                let r = mailgun::send(&self.http, relay, &key, &msg).await;
                report.elapsed_ms = r.elapsed.as_millis() as u64;
                report.transcript = r.transcript;
                match r.result {
                    Ok(_) => report.ok = true,
                    Err(d) => report.diagnosis = Some(d),
                }
            }
            Transport::Smtp(relay) => {
                let message = TestMessage {
                    from: sender.from,
                    from_name: sender.from_name,
                    to,
                    subject,
                    text,
                };
                let (envelope, bytes) = message
                    .build()
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                let r =
                    herald_mailer::send_once(relay, sender.login.as_ref(), &envelope, &bytes).await;
                report.elapsed_ms = r.elapsed.as_millis() as u64;
                report.transcript = r.transcript;
                match r.result {
                    Ok(()) => report.ok = true,
                    Err(f) => {
                        report.diagnosis =
                            Some(diagnose(&f, &relay.host.to_string(), relay.port().get()));
                        report.stage = Some(f.stage);
                        report.reply = f.reply;
                    }
                }
            }
        }
        tracing::info!(
            tenant = %profile.tenant_id, profile = %profile.id, ok = report.ok,
            diagnosis = report.diagnosis.as_ref().map(|d| d.code), "message sent outside the queue"
        );
        Ok(report)
    }

    /// The profile's own sign-in (password or none).
    async fn profile_login(&self, profile: &RelayProfile) -> Result<Option<SmtpLogin>, AppError> {
        let Transport::Smtp(smtp) = &profile.settings.transport else {
            return Ok(None);
        };
        match &smtp.auth {
            SmtpAuth::None => Ok(None),
            SmtpAuth::Password { username } => {
                let row = profile.id.to_string();
                let slot = profile_slot(profile.tenant_id, &row, ProfileSecret::Password);
                let password = secrets::get_text(self.store.read(), &self.keys, slot)
                    .await?
                    .ok_or_else(|| InvalidInput::new("secrets.password", "is not set"))?;
                Ok(Some(SmtpLogin::Password {
                    username: username.to_string(),
                    password,
                }))
            }
            SmtpAuth::Identity => Err(InvalidInput::new(
                "auth",
                "this profile signs in as each sender's identity: test one of its identities \
                 (POST /api/v1/identities/{id}/test)",
            )
            .into()),
        }
    }

    /// Herald's own notice to a user (re-authenticate, Max Size exceeded),
    /// sent at once through the tenant's default profile with its From.
    pub(crate) async fn send_notice(
        &self,
        tenant: herald_domain::TenantId,
        to: &EmailAddress,
        subject: &str,
        text: &str,
    ) -> Result<(), String> {
        let db = self.store.read();
        let routing = relay_profiles::routing(db, tenant)
            .await
            .map_err(|e| e.to_string())?;
        let profile_id = routing
            .default
            .ok_or("the tenant has no default relay profile")?;
        let profile = relay_profiles::get(db, tenant, profile_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the default relay profile is gone")?;
        let login = self
            .profile_login(&profile)
            .await
            .map_err(|e| e.to_string())?;
        let from = profile.settings.from.clone();
        let sender = Sender {
            from: &from.address,
            from_name: from.name.as_ref(),
            login,
        };
        let report = self
            .deliver_once(&profile, sender, to, subject, text.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        match report.diagnosis {
            None => Ok(()),
            Some(d) => Err(d.message),
        }
    }
}
