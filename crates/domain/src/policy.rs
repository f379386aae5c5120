//! The sender policy of a relay profile, applied to one submission: who the
//! message is From, who replies go to, and which display name shows.

use crate::message::Mailbox;
use crate::{
    DisplayName, DisplayNameRule, DomainName, EmailAddress, InvalidInput, ProfileSettings,
    PurposeName, SenderIdentity,
};

/// Who is sending, as far as the policy cares.
pub struct Sender<'a> {
    pub profile: &'a ProfileSettings,
    pub purpose: Option<&'a PurposeName>,
    /// Sending as an identity: its mailbox is the user's own address.
    pub identity: Option<&'a SenderIdentity>,
    /// The signed-in user's name and address (none for an API key).
    pub user_name: Option<&'a DisplayName>,
    pub user_address: Option<&'a EmailAddress>,
    pub tenant_domains: &'a [DomainName],
}

/// What the submitter asked for.
#[derive(Debug, Default, Clone)]
pub struct Requested {
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub display_name: Option<DisplayName>,
}

/// The headers the message will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// MAIL FROM.
    pub envelope_from: EmailAddress,
}

impl Sender<'_> {
    fn in_tenant_domains(&self, a: &EmailAddress) -> bool {
        self.tenant_domains.iter().any(|d| d.as_str() == a.domain())
    }

    /// Applies the profile's policy to a request, or names the rule it breaks.
    ///
    /// - From is the identity's mailbox when sending as one; otherwise the
    ///   submitted From, unless "Reply-To from the user" or "always send as
    ///   the From address" keep the purpose's (or profile's) From, which is
    ///   also the From when none was submitted.
    /// - Those two rules move the user's address into Reply-To; "always send
    ///   as" also gives the user's name to the display name.
    /// - From must be in the tenant's sending domains (when the profile
    ///   says so) unless it is the identity's own mailbox.
    pub fn resolve(&self, req: &Requested) -> Result<Resolved, InvalidInput> {
        let policy = &self.profile.policy;
        let profile_from = self.profile.from_for(self.purpose);
        let name_of_profile = || self.profile.name.as_str();
        if let (Some(asked), Some(identity)) = (&req.from, self.identity)
            && !asked.address.eq_ignore_case(&identity.address)
        {
            return Err(InvalidInput::new(
                "from",
                format!(
                    "sending as the identity {}, From must be its address",
                    identity.address
                ),
            ));
        }
        // The user's own mailbox: the identity's, else the submitted From,
        // else the signed-in user's address.
        let user: Option<Mailbox> = match (self.identity, &req.from, self.user_address) {
            (Some(i), _, _) => Some(Mailbox {
                name: i.display_name.clone().or_else(|| self.user_name.cloned()),
                address: i.address.clone(),
            }),
            (None, Some(f), _) => Some(Mailbox {
                name: f.name.clone().or_else(|| self.user_name.cloned()),
                address: f.address.clone(),
            }),
            (None, None, Some(a)) => Some(Mailbox {
                name: self.user_name.cloned(),
                address: a.clone(),
            }),
            (None, None, None) => None,
        };
        let keep_profile_from = policy.always_send_as_from || policy.reply_to_user;
        let from_address = match (self.identity, &req.from) {
            (Some(i), _) => i.address.clone(),
            (None, Some(f)) if !keep_profile_from => f.address.clone(),
            _ => profile_from.address.clone(),
        };
        let own_mailbox = self
            .identity
            .is_some_and(|i| i.address.eq_ignore_case(&from_address));
        if policy.from_tenant_domains_only && !own_mailbox && !self.in_tenant_domains(&from_address)
        {
            return Err(InvalidInput::new(
                "from",
                format!(
                    "{from_address} is not in the tenant's sending domains (profile {:?} allows only those)",
                    name_of_profile()
                ),
            ));
        }

        let user_name = user.as_ref().and_then(|u| u.name.clone());
        let fixed = profile_from.name.clone();
        let name = match policy.display_name {
            DisplayNameRule::Fixed if req.display_name.is_some() => {
                return Err(InvalidInput::new(
                    "display_name",
                    format!("profile {:?} uses a fixed display name", name_of_profile()),
                ));
            }
            DisplayNameRule::Fixed if policy.always_send_as_from => user_name.or(fixed),
            DisplayNameRule::Fixed => fixed,
            DisplayNameRule::FromUser => user_name.or(fixed),
            DisplayNameRule::CustomAllowed => req.display_name.clone().or(user_name).or(fixed),
            DisplayNameRule::CustomRequired => Some(req.display_name.clone().ok_or_else(|| {
                InvalidInput::new(
                    "display_name",
                    format!("profile {:?} requires a display name", name_of_profile()),
                )
            })?),
        };

        let reply_to = match &req.reply_to {
            Some(r) if policy.allow_custom_reply_to => Some(r.clone()),
            Some(_) => {
                return Err(InvalidInput::new(
                    "reply_to",
                    format!(
                        "profile {:?} does not allow a custom Reply-To",
                        name_of_profile()
                    ),
                ));
            }
            None if keep_profile_from => user.filter(|u| !u.address.eq_ignore_case(&from_address)),
            None => None,
        };
        Ok(Resolved {
            envelope_from: from_address.clone(),
            from: Mailbox {
                name,
                address: from_address,
            },
            reply_to,
        })
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
