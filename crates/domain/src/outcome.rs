//! What a delivery attempt's answer means: delivered, try again, give up, or
//! the sender's own credentials were refused. Decided by a match over the
//! SMTP step, the reply code and the enhanced status code (RFC 3463), with
//! the hard/soft table the seed products publish (Sitefinity, seed 004) for
//! 5.x.x codes; never by searching the server's text.

use std::fmt;
use std::str::FromStr;

use crate::{DeliverySettings, InvalidInput, RecipientStatus, Severity, Timestamp};

/// An enhanced status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl FromStr for EnhancedCode {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            InvalidInput::new(
                "enhanced_code",
                format!("{s:?} is not class.subject.detail"),
            )
        };
        let mut parts = s.split('.');
        let (Some(c), Some(sub), Some(det), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let num = |p: &str, max: usize| {
            (!p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
        };
        match (num(c, 1), num(sub, 3), num(det, 3)) {
            (Some(class @ (2 | 4 | 5)), Some(subject), Some(detail)) => Ok(Self {
                class: class as u8,
                subject,
                detail,
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A permanent failure's kind, as the seed's bounce table has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceClass {
    /// Will not succeed: do not retry.
    Hard,
    /// May succeed later (mailbox full, congestion): retry on the soft-bounce
    /// schedule.
    Soft,
}

impl EnhancedCode {
    /// The seed's table: 5.x.x codes are hard except these soft ones.
    pub fn bounce_class(self) -> BounceClass {
        match (self.class, self.subject, self.detail) {
            (4, _, _) => BounceClass::Soft,
            // Other mailbox status, disabled, full; mail system full;
            // network congestion; too many recipients.
            (5, 2, 0..=2) | (5, 3, 1) | (5, 4, 5) | (5, 5, 3) => BounceClass::Soft,
            _ => BounceClass::Hard,
        }
    }

    /// Whether the code speaks of the recipient's address or mailbox
    /// (5.0.0 "address does not exist", 5.1.x addressing, 5.2.x mailbox),
    /// so that a hard failure should suppress that address.
    pub fn is_about_recipient(self) -> bool {
        matches!((self.subject, self.detail), (0, 0) | (1, _) | (2, _))
    }
}

/// Where in the session an answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStep {
    Connect,
    Greeting,
    Tls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
}

/// The meaning of one recipient's attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at "minutes between retries", until "max errors".
    Temporary,
    /// A soft bounce: retry on the soft-bounce schedule.
    SoftBounce,
    /// Give up. `suppress` when the recipient's address itself is bad.
    Permanent {
        suppress: bool,
    },
    /// The relay refused our credentials: hold the sender's mail, never
    /// blame the recipient.
    SenderAuth,
}

/// Classifies a reply to a step of delivery.
pub fn classify_reply(
    step: SmtpStep,
    code: u16,
    enhanced: Option<EnhancedCode>,
) -> DeliveryOutcome {
    use DeliveryOutcome::*;
    let e = enhanced.map(|e| (e.class, e.subject, e.detail));
    match (step, code, e) {
        (_, 200..=299, _) | (_, 300..=399, _) => Delivered,
        // Credentials refused, at AUTH or reported as such later:
        // 5.7.8 bad credentials, 5.7.139 SMTP AUTH disabled, 5.7.30 basic
        // auth unsupported, 5.7.3 (Microsoft) and 5.7.57 client not authenticated.
        (SmtpStep::Auth, 400..=599, _)
        | (_, 500..=599, Some((5, 7, 8 | 139 | 30 | 57)))
        | (SmtpStep::MailFrom, 500..=599, Some((5, 7, 3)))
        | (_, 530 | 535, _) => SenderAuth,
        (_, 400..=499, _) => Temporary,
        (_, 500..=599, Some(_)) => {
            let ec = enhanced.unwrap_or(EnhancedCode {
                class: 5,
                subject: 0,
                detail: 0,
            });
            match ec.bounce_class() {
                BounceClass::Soft => SoftBounce,
                BounceClass::Hard => Permanent {
                    suppress: step == SmtpStep::RcptTo && ec.is_about_recipient()
                        || step == SmtpStep::Data && ec.subject == 1,
                },
            }
        }
        // No enhanced code: 550/551/553 at RCPT name a bad mailbox;
        // 552 is a size or storage limit; anything else is final but says
        // nothing about the address.
        (SmtpStep::RcptTo, 550 | 551 | 553, None) => Permanent { suppress: true },
        (_, 500..=599, None) => Permanent { suppress: false },
        // Codes outside 2xx–5xx are a broken server: try again.
        _ => Temporary,
    }
}

/// What becomes of a recipient after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Delivered, queued again, failed, or held.
    pub status: RecipientStatus,
    /// When queued again: the next attempt.
    pub retry_at: Option<Timestamp>,
    /// For a failure: whether it is final.
    pub severity: Option<Severity>,
    /// Mailgun's `reason` for a failed event: `generic`, `bounce`, `old`
    /// (gave up after max errors) or `sender-auth` (held).
    pub reason: &'static str,
    /// Add the address to the tenant's bounce list.
    pub suppress: bool,
}

impl DeliveryOutcome {
    /// Applies the profile's retry rules: a temporary failure is retried
    /// every "minutes between retries" until "max errors before cancel"
    /// failures; a soft bounce every "soft-bounce interval", "soft-bounce
    /// retries" times; a permanent failure is final; a sender-auth failure
    /// holds the mail. `failures_before` counts this recipient's earlier
    /// failed attempts.
    pub fn decide(self, failures_before: u32, d: &DeliverySettings, now: Timestamp) -> Decision {
        let failures = failures_before.saturating_add(1);
        let retry = |minutes: u32| Decision {
            status: RecipientStatus::Queued,
            retry_at: Some(now.plus_secs(i64::from(minutes) * 60)),
            severity: Some(Severity::Temporary),
            reason: "generic",
            suppress: false,
        };
        let fail = |reason, suppress| Decision {
            status: RecipientStatus::Failed,
            retry_at: None,
            severity: Some(Severity::Permanent),
            reason,
            suppress,
        };
        match self {
            DeliveryOutcome::Delivered => Decision {
                status: RecipientStatus::Delivered,
                retry_at: None,
                severity: None,
                reason: "",
                suppress: false,
            },
            DeliveryOutcome::Temporary if d.retry().retries_after(failures) => {
                retry(d.minutes_between_retries)
            }
            DeliveryOutcome::Temporary => fail("old", false),
            DeliveryOutcome::SoftBounce if failures <= d.soft_bounce_retries => {
                retry(d.soft_bounce_retry_minutes)
            }
            DeliveryOutcome::SoftBounce => fail("old", false),
            DeliveryOutcome::Permanent { suppress: true } => fail("bounce", true),
            DeliveryOutcome::Permanent { suppress: false } => fail("generic", false),
            DeliveryOutcome::SenderAuth => Decision {
                status: RecipientStatus::Held,
                retry_at: None,
                severity: Some(Severity::Temporary),
                reason: "sender-auth",
                suppress: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryOutcome::*;

    fn ec(s: &str) -> Option<EnhancedCode> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_seed_table_soft_codes() {
        for soft in [
            "5.2.0", "5.2.1", "5.2.2", "5.3.1", "5.4.5", "5.5.3", "4.2.2",
        ] {
            assert_eq!(
                soft.parse::<EnhancedCode>().unwrap().bounce_class(),
                BounceClass::Soft,
                "{soft}"
            );
        }
        for hard in [
            "5.0.0", "5.1.1", "5.2.3", "5.3.4", "5.4.4", "5.5.2", "5.7.1", "5.6.0",
        ] {
            assert_eq!(
                hard.parse::<EnhancedCode>().unwrap().bounce_class(),
                BounceClass::Hard,
                "{hard}"
            );
        }
    }

    #[test]
    fn replies_are_classified() {
        let cases = [
            (SmtpStep::Data, 250, ec("2.0.0"), Delivered),
            (SmtpStep::Greeting, 421, ec("4.3.2"), Temporary),
            (SmtpStep::RcptTo, 450, ec("4.2.1"), Temporary),
            (SmtpStep::RcptTo, 452, ec("4.5.3"), Temporary),
            (
                SmtpStep::RcptTo,
                550,
                ec("5.1.1"),
                Permanent { suppress: true },
            ),
            (SmtpStep::RcptTo, 550, None, Permanent { suppress: true }),
            (
                SmtpStep::Data,
                552,
                ec("5.3.4"),
                Permanent { suppress: false },
            ),
            (SmtpStep::RcptTo, 552, ec("5.2.2"), SoftBounce),
            (SmtpStep::Auth, 535, ec("5.7.139"), SenderAuth),
            (SmtpStep::Auth, 535, ec("5.7.8"), SenderAuth),
            (SmtpStep::MailFrom, 550, ec("5.7.30"), SenderAuth),
            (SmtpStep::MailFrom, 530, ec("5.7.0"), SenderAuth),
            (
                SmtpStep::RcptTo,
                554,
                ec("5.7.1"),
                Permanent { suppress: false },
            ),
            (SmtpStep::Data, 554, None, Permanent { suppress: false }),
        ];
        for (step, code, e, want) in cases {
            assert_eq!(classify_reply(step, code, e), want, "{step:?} {code} {e:?}");
        }
    }

    #[test]
    fn enhanced_codes_parse_strictly() {
        assert_eq!(
            "5.7.139".parse::<EnhancedCode>().unwrap().to_string(),
            "5.7.139"
        );
        for bad in ["", "5.7", "5.7.1.2", "6.1.1", "5.x.1", "55.1.1", "5.1.1234"] {
            assert!(bad.parse::<EnhancedCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions_follow_the_profile_retry_rules() {
        let now = Timestamp::from_micros(1_000_000_000_000);
        let d = DeliverySettings {
            minutes_between_retries: 10,
            max_errors_before_cancel: 3,
            soft_bounce_retry_minutes: 60,
            soft_bounce_retries: 2,
            ..DeliverySettings::default()
        };
        let at = |m: i64| Some(now.plus_secs(m * 60));
        let t = DeliveryOutcome::Temporary;
        // Failures 1 and 2 retry 10 minutes later; the third is final.
        assert_eq!(t.decide(0, &d, now).retry_at, at(10));
        assert_eq!(t.decide(1, &d, now).status, RecipientStatus::Queued);
        let last = t.decide(2, &d, now);
        assert_eq!(
            (last.status, last.severity, last.reason),
            (RecipientStatus::Failed, Some(Severity::Permanent), "old")
        );
        let s = DeliveryOutcome::SoftBounce;
        assert_eq!(s.decide(0, &d, now).retry_at, at(60));
        assert_eq!(s.decide(1, &d, now).retry_at, at(60));
        assert_eq!(s.decide(2, &d, now).status, RecipientStatus::Failed);
        let hard = DeliveryOutcome::Permanent { suppress: true }.decide(0, &d, now);
        assert!(hard.suppress && hard.reason == "bounce");
        assert!(
            !DeliveryOutcome::Permanent { suppress: false }
                .decide(0, &d, now)
                .suppress
        );
        let auth = DeliveryOutcome::SenderAuth.decide(5, &d, now);
        assert_eq!((auth.status, auth.suppress), (RecipientStatus::Held, false));
        assert_eq!(
            DeliveryOutcome::Delivered.decide(3, &d, now).status,
            RecipientStatus::Delivered
        );
    }
}
