//! Building a message with lettre from values already parsed into domain
//! types (lettre panics on a display name with CR or LF; ours cannot hold one).

use herald_domain::{DisplayName, EmailAddress};
use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;

#[derive(Debug, thiserror::Error)]
#[error("cannot build the message: {0}")]
pub struct MessageError(String);

fn address(a: &EmailAddress) -> Result<Address, MessageError> {
    Address::new(a.local_part(), a.domain()).map_err(|e| MessageError(e.to_string()))
}

fn mailbox(name: Option<&DisplayName>, a: &EmailAddress) -> Result<Mailbox, MessageError> {
    Ok(Mailbox::new(name.map(|n| n.to_string()), address(a)?))
}

/// A plain-text test message.
pub struct TestMessage<'a> {
    pub from: &'a EmailAddress,
    pub from_name: Option<&'a DisplayName>,
    pub to: &'a EmailAddress,
    pub subject: &'a str,
    pub text: String,
}

impl TestMessage<'_> {
    /// The envelope and the RFC 5322 bytes.
    pub fn build(&self) -> Result<(Envelope, Vec<u8>), MessageError> {
        let msg = Message::builder()
            .from(mailbox(self.from_name, self.from)?)
            .to(mailbox(None, self.to)?)
            .subject(self.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.clone())
            .map_err(|e| MessageError(e.to_string()))?;
        let envelope = Envelope::new(Some(address(self.from)?), vec![address(self.to)?])
            .map_err(|e| MessageError(e.to_string()))?;
        Ok((envelope, msg.formatted()))
    }
}
