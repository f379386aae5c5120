//! Herald's relays: SMTP (lettre over Herald's own stream, with TLS,
//! TCP_NODELAY and a recorded conversation), the Mailgun HTTP API, and the
//! sandbox. Every failure is classified and explained.

mod diagnosis;
pub mod mailbox;
pub mod mailgun;
pub mod message;
mod pool;
pub mod report;
pub mod smtp;
mod tls;
mod transcript;
mod wire;

pub use diagnosis::{Diagnosis, Failure, FailureKind, Stage, diagnose};
pub use mailbox::{Fetched, MailboxError, MailboxLogin, MailboxServer, MailboxSession};
pub use message::{MessageError, TestMessage};
pub use pool::{PoolLimits, SessionPool};
pub use report::parse_report;
pub use smtp::{Answer, SessionReport, SmtpLogin, SmtpSession, TransactionReport, send_once};
pub use tls::parse_ca_pem;
pub use transcript::Reply;
