//! The bounce mailbox (DESIGN flow 6): read a profile's mailbox, take the
//! delivery status notifications and feedback reports in it, match each to
//! the tenant's message and recipient, and record what they say: a
//! `failed` event (and a bounce suppression for a hard bounce), a delayed
//! delivery, or a `complained` event with a complaint suppression. Reports
//! used are deleted from the mailbox; other mail is marked read and left
//! for a person.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use herald_domain::{
    Actor, Bounce, BounceMailbox, DsnRecipient, EmailAddress, Event, EventKind, MailReport,
    MailboxAuth, MailboxProtocol, ProfileSecret, QueuedMessage, RecipientState, RelayProfile,
    RelayProfileId, Role, Severity, TenantId, Timestamp, Transport,
};
use herald_mailer::{MailboxError, MailboxLogin, MailboxServer, MailboxSession, parse_report};
use herald_store::suppressions::SuppressionKind;
use herald_store::{events, identities, messages, relay_profiles, secrets, suppressions};

use crate::access::Require;
use crate::oauth::TokenFailure;
use crate::relay_profiles::{parse_profile_id, slot as profile_slot};
use crate::{AppError, Herald};

/// Messages read per poll; the rest wait for the next one.
const PER_POLL: usize = 200;

/// What one poll of a bounce mailbox found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BouncePoll {
    /// Unread messages taken from the mailbox.
    pub fetched: u32,
    /// Recipients recorded as failed (permanently) by a bounce.
    pub bounced: u32,
    /// Recipients a report says are still being tried.
    pub delayed: u32,
    /// Complaints recorded.
    pub complained: u32,
    /// Reports already recorded by an earlier poll.
    pub duplicates: u32,
    /// Reports about no message of this tenant's (or a recipient it did
    /// not have): left in the mailbox, marked read.
    pub unmatched: u32,
    /// Mail that is not a report (replies, out-of-office): left in the
    /// mailbox, marked read.
    pub not_reports: u32,
    /// Why the mailbox could not be read (`stage: words`); nothing else is
    /// filled in then.
    pub error: Option<String>,
}

/// Failed polls in a row, per profile (reported once the profile's
/// `retries` is reached, and again when a poll succeeds).
#[derive(Default)]
pub(crate) struct PollFailures(Mutex<HashMap<RelayProfileId, u32>>);

impl PollFailures {
    fn failed(&self, id: RelayProfileId) -> u32 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(id).or_default();
        *n += 1;
        *n
    }

    fn succeeded(&self, id: RelayProfileId) -> u32 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&id).unwrap_or(0)
    }
}

/// What one report changed.
enum Recorded {
    Changed {
        bounced: u32,
        delayed: u32,
        complained: u32,
    },
    Duplicate,
    Unmatched,
}

impl Herald {
    /// Polls a profile's bounce mailbox now (the admin's "check now", and
    /// what the worker's schedule calls).
    pub async fn poll_bounce_mailbox_now(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<BouncePoll, AppError> {
        actor.require(Role::Admin)?;
        let id = parse_profile_id(id)?;
        let profile = relay_profiles::get(self.store.read(), actor.tenant_id, id)
            .await?
            .ok_or(AppError::NotFound("relay profile"))?;
        if profile.settings.bounce_mailbox.is_none() {
            return Err(herald_domain::InvalidInput::new(
                "bounce_mailbox",
                "this relay profile has no bounce mailbox",
            )
            .into());
        }
        self.poll_bounce_mailbox(&profile).await
    }

    /// Every profile with a bounce mailbox, with its poll interval.
    pub async fn bounce_mailboxes(&self) -> Result<Vec<(RelayProfile, Duration)>, AppError> {
        Ok(relay_profiles::with_bounce_mailbox(self.store.read())
            .await?
            .into_iter()
            .filter_map(|p| {
                let minutes = p.settings.bounce_mailbox.as_ref()?.poll_minutes;
                Some((p, Duration::from_secs(u64::from(minutes) * 60)))
            })
            .collect())
    }

    /// Reads the profile's bounce mailbox once and records what its reports
    /// say. A mailbox that cannot be read is not an error of the caller's:
    /// the answer's `error` says why, and the failure counts toward the
    /// mailbox's `retries`, whose reaching writes a `mailbox_failing` event.
    pub async fn poll_bounce_mailbox(
        &self,
        profile: &RelayProfile,
    ) -> Result<BouncePoll, AppError> {
        let Some(mailbox) = &profile.settings.bounce_mailbox else {
            return Ok(BouncePoll::default());
        };
        match self.read_mailbox(profile, mailbox).await {
            Ok(poll) => {
                if self.bounce_failures.succeeded(profile.id) >= mailbox.retries {
                    self.mailbox_event(
                        profile,
                        EventKind::MailboxRecovered,
                        "the bounce mailbox answers again".into(),
                    )
                    .await?;
                }
                Ok(poll)
            }
            Err(PollError::App(e)) => Err(e),
            Err(PollError::Mailbox(e)) => {
                let n = self.bounce_failures.failed(profile.id);
                tracing::warn!(tenant = %profile.tenant_id, profile = %profile.id, failures = n, error = %e, "bounce mailbox poll failed");
                if n == mailbox.retries {
                    self.mailbox_event(
                        profile,
                        EventKind::MailboxFailing,
                        format!("the bounce mailbox failed {n} polls in a row: {e}"),
                    )
                    .await?;
                }
                Ok(BouncePoll {
                    error: Some(e.to_string()),
                    ..BouncePoll::default()
                })
            }
        }
    }

    async fn mailbox_event(
        &self,
        profile: &RelayProfile,
        kind: EventKind,
        description: String,
    ) -> Result<(), AppError> {
        let e = Event::for_profile(profile.tenant_id, profile.id, kind, Some(description));
        let tx = self.store.begin().await?;
        events::insert(tx.conn(), &e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn read_mailbox(
        &self,
        profile: &RelayProfile,
        mailbox: &BounceMailbox,
    ) -> Result<BouncePoll, PollError> {
        let (trust, timeout) = match &profile.settings.transport {
            Transport::Smtp(s) => (s.trust.clone(), s.timeout_seconds.duration()),
            _ => (Default::default(), Duration::from_secs(30)),
        };
        let server = MailboxServer {
            protocol: mailbox.protocol,
            host: mailbox.host.to_string(),
            port: mailbox.port().get(),
            tls: mailbox.tls,
            trust,
            timeout,
        };
        let login = self.mailbox_login(profile, mailbox).await?;
        let mut session = MailboxSession::open(&server, &login).await?;
        let skip = match mailbox.protocol {
            MailboxProtocol::Pop3 => self.pop3_kept(profile.id),
            MailboxProtocol::Imap => Vec::new(),
        };
        let fetched = session.unread(PER_POLL, &skip).await?;
        let mut poll = BouncePoll {
            fetched: fetched.len() as u32,
            ..BouncePoll::default()
        };
        let (mut used, mut kept) = (Vec::new(), Vec::new());
        for f in &fetched {
            let Some(report) = parse_report(&f.raw) else {
                poll.not_reports += 1;
                kept.push(f.key.clone());
                continue;
            };
            match self.record_report(profile.tenant_id, &report).await? {
                Recorded::Changed {
                    bounced,
                    delayed,
                    complained,
                } => {
                    poll.bounced += bounced;
                    poll.delayed += delayed;
                    poll.complained += complained;
                }
                Recorded::Duplicate => poll.duplicates += 1,
                Recorded::Unmatched => {
                    poll.unmatched += 1;
                    kept.push(f.key.clone());
                    continue;
                }
            }
            used.push(f.key.clone());
        }
        if mailbox.protocol == MailboxProtocol::Pop3 {
            self.remember_pop3_kept(profile.id, &kept);
        }
        session.settle(&used, &kept).await?;
        tracing::info!(tenant = %profile.tenant_id, profile = %profile.id, ?poll, "bounce mailbox polled");
        Ok(poll)
    }

    async fn mailbox_login(
        &self,
        profile: &RelayProfile,
        mailbox: &BounceMailbox,
    ) -> Result<MailboxLogin, PollError> {
        let username = mailbox.username.to_string();
        match &mailbox.auth {
            MailboxAuth::Password => {
                let row = profile.id.to_string();
                let slot = profile_slot(profile.tenant_id, &row, ProfileSecret::BouncePassword);
                let password = secrets::get_text(self.store.read(), &self.keys, slot)
                    .await
                    .map_err(AppError::from)?
                    .ok_or_else(|| mailbox_error("the bounce mailbox password is not set"))?;
                Ok(MailboxLogin::Password { username, password })
            }
            MailboxAuth::Identity { identity_id } => {
                let identity = identities::get(self.store.read(), profile.tenant_id, *identity_id)
                    .await
                    .map_err(AppError::from)?
                    .ok_or_else(|| mailbox_error("the bounce mailbox's identity was deleted"))?;
                let token = match self
                    .access_token(profile.tenant_id, *identity_id, None)
                    .await
                {
                    Ok(t) => t,
                    Err(TokenFailure::Internal(e)) => return Err(e.into()),
                    Err(TokenFailure::NeedsConsent(m) | TokenFailure::Provider(m)) => {
                        return Err(mailbox_error(&format!(
                            "the identity {} has no usable token: {m}",
                            identity.address
                        )));
                    }
                };
                Ok(MailboxLogin::Xoauth2 {
                    username: identity.address.to_string(),
                    access_token: token.token,
                })
            }
        }
    }

    /// Records one report in one transaction. Idempotent: a recipient
    /// already failed, or already complained about this message, is a
    /// duplicate.
    async fn record_report(
        &self,
        tenant: TenantId,
        report: &MailReport,
    ) -> Result<Recorded, AppError> {
        let Some(id) = report.original().herald_message() else {
            return Ok(Recorded::Unmatched);
        };
        let tx = self.store.begin().await?;
        let db = tx.conn();
        // Another tenant's message id finds nothing here.
        let Some(message) = messages::get(db, tenant, id).await? else {
            return Ok(Recorded::Unmatched);
        };
        let recipients = messages::recipients(db, tenant, id).await?;
        let earlier = events::for_message(db, tenant, id).await?;
        let find = |a: &EmailAddress| {
            recipients
                .iter()
                .find(|r| r.address.as_str().eq_ignore_ascii_case(a.as_str()))
        };
        let mut evs = Vec::new();
        let recorded = match report {
            MailReport::Delivery { recipients: rs, .. } => {
                let (mut failed, mut delayed, mut matched) = (0, 0, false);
                for d in rs {
                    let Some(r) = find(&d.recipient) else {
                        continue;
                    };
                    matched = true;
                    match d.bounce() {
                        Bounce::Success => {}
                        Bounce::Delayed => {
                            let dup = earlier.iter().any(|e| {
                                e.kind == EventKind::Failed
                                    && e.severity == Some(Severity::Temporary)
                                    && e.detail
                                        .as_deref()
                                        .is_some_and(|d| d.contains("\"bounce-report\":true"))
                                    && e.recipient.as_ref() == Some(&r.address)
                            });
                            if !dup && r.status == herald_domain::RecipientStatus::Delivered {
                                evs.push(bounce_event(&message, r, d, Severity::Temporary));
                                delayed += 1;
                            }
                        }
                        Bounce::Failed { suppress } => {
                            let words = d
                                .diagnostic
                                .clone()
                                .unwrap_or_else(|| "reported failed after delivery".into());
                            if !messages::bounced(db, tenant, id, r.index, &words).await? {
                                continue;
                            }
                            evs.push(bounce_event(&message, r, d, Severity::Permanent));
                            if suppress {
                                suppressions::add(
                                    db,
                                    tenant,
                                    SuppressionKind::Bounce,
                                    &r.address,
                                    d.reply_code.map(|c| c.to_string()).as_deref(),
                                    Some(&words),
                                )
                                .await?;
                            }
                            failed += 1;
                        }
                    }
                }
                match (failed + delayed, matched) {
                    (0, false) => Recorded::Unmatched,
                    (0, true) => Recorded::Duplicate,
                    _ => Recorded::Changed {
                        bounced: failed,
                        delayed,
                        complained: 0,
                    },
                }
            }
            MailReport::Feedback {
                original,
                feedback_type,
                recipients: reported,
                user_agent,
            } => {
                // Original-Rcpt-To names the complainer; without it, the
                // original's To, else the message's only recipient.
                let named: Vec<&RecipientState> = if !reported.is_empty() {
                    reported.iter().filter_map(find).collect()
                } else {
                    let by_to: Vec<_> = original.to.iter().filter_map(find).collect();
                    if by_to.is_empty() && recipients.len() == 1 {
                        recipients.iter().collect()
                    } else {
                        by_to
                    }
                };
                let mut n = 0;
                for r in &named {
                    let dup = earlier.iter().any(|e| {
                        e.kind == EventKind::Complained && e.recipient.as_ref() == Some(&r.address)
                    });
                    if dup {
                        continue;
                    }
                    let mut e = Event::for_recipient(
                        tenant,
                        message.id,
                        &message.mail_from,
                        &r.address,
                        EventKind::Complained,
                    );
                    e.profile_id = message.profile_id;
                    e.identity_id = message.identity_id;
                    e.description = Some(format!(
                        "{feedback_type} report{}",
                        user_agent
                            .as_deref()
                            .map(|a| format!(" from {a}"))
                            .unwrap_or_default()
                    ));
                    e.detail = Some(
                        serde_json::json!({
                            "feedback-type": feedback_type,
                            "user-agent": user_agent,
                        })
                        .to_string(),
                    );
                    evs.push(e);
                    suppressions::add(
                        db,
                        tenant,
                        SuppressionKind::Complaint,
                        &r.address,
                        None,
                        None,
                    )
                    .await?;
                    n += 1;
                }
                match (n, named.is_empty()) {
                    (0, true) => Recorded::Unmatched,
                    (0, false) => Recorded::Duplicate,
                    (n, _) => Recorded::Changed {
                        bounced: 0,
                        delayed: 0,
                        complained: n,
                    },
                }
            }
        };
        events::insert_many(db, &evs).await?;
        messages::refresh_status(db, tenant, id).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// POP3 cannot mark a message read: the keys of the ones left in place
    /// are remembered so that they are not fetched again.
    fn pop3_kept(&self, profile: RelayProfileId) -> Vec<String> {
        let m = self.pop3_kept.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&profile).cloned().unwrap_or_default()
    }

    fn remember_pop3_kept(&self, profile: RelayProfileId, kept: &[String]) {
        let mut m = self.pop3_kept.lock().unwrap_or_else(|e| e.into_inner());
        let list = m.entry(profile).or_default();
        list.extend(kept.iter().cloned());
        // Bounded: the oldest are forgotten (and read once more).
        if list.len() > 10_000 {
            let extra = list.len() - 10_000;
            list.drain(..extra);
        }
    }
}

/// The `failed` event for a bounce report's recipient.
fn bounce_event(
    m: &QueuedMessage,
    r: &RecipientState,
    d: &DsnRecipient,
    severity: Severity,
) -> Event {
    let mut e = Event::for_recipient(
        m.tenant_id,
        m.id,
        &m.mail_from,
        &r.address,
        EventKind::Failed,
    );
    e.profile_id = m.profile_id;
    e.identity_id = m.identity_id;
    e.severity = Some(severity);
    let delayed = severity == Severity::Temporary;
    e.reason = Some(if delayed { "generic" } else { "bounce" }.into());
    let words = d.diagnostic.as_deref().unwrap_or_default();
    e.description = Some(if delayed {
        format!("delivery delayed by the receiving side: {words}")
    } else {
        format!("bounced after it was handed over: {words}")
    });
    e.detail = Some(
        serde_json::json!({
            "code": d.reply_code,
            "enhanced-code": d.status.map(|c| c.to_string()),
            "message": words,
            "mx-host": d.remote_mta,
            "attempt-no": r.attempts,
            "bounce-report": true,
            "reported-at": Timestamp::now().to_rfc3339(),
        })
        .to_string(),
    );
    e
}

fn mailbox_error(message: &str) -> PollError {
    PollError::Mailbox(MailboxError {
        stage: "login",
        message: message.to_owned(),
    })
}

enum PollError {
    App(AppError),
    Mailbox(MailboxError),
}

impl From<AppError> for PollError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<MailboxError> for PollError {
    fn from(e: MailboxError) -> Self {
        Self::Mailbox(e)
    }
}
