//! OpenAPI schemas for the domain's parsed scalars (feature `openapi`): on the
//! wire each is a plain string or integer, checked when it is parsed.

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

fn scalar(ty: Type, format: Option<KnownFormat>, description: &str) -> RefOr<Schema> {
    let mut b = ObjectBuilder::new()
        .schema_type(ty)
        .description(Some(description));
    if let Some(f) = format {
        b = b.format(Some(SchemaFormat::KnownFormat(f)));
    }
    RefOr::T(Schema::Object(b.build()))
}

macro_rules! wire_schema {
    ($($t:ty => $ty:expr, $fmt:expr, $doc:literal;)*) => {$(
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                scalar($ty, $fmt, $doc)
            }
        }
        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($t))
            }
        }
    )*};
}

use crate::*;

wire_schema! {
    EmailAddress => Type::String, Some(KnownFormat::Email), "An email address (dot-atom local part).";
    DisplayName => Type::String, None, "A display name: one line, no control characters, at most 200 characters.";
    DomainName => Type::String, Some(KnownFormat::Hostname), "A DNS domain name.";
    RelayHost => Type::String, Some(KnownFormat::Hostname), "An SMTP server: a DNS name or an IP address.";
    Port => Type::Integer, None, "A TCP port, 1-65535.";
    SmtpTimeout => Type::Integer, None, "Seconds: 30, 60, 120, 180, 240 or 300.";
    ThrottleRate => Type::Integer, None, "Messages per second, 1-999.";
    AttachmentLimitMb => Type::Integer, None, "Megabytes, 1-100: the total of all attachments on one message.";
    UserId => Type::String, None, "A user id.";
    IdentityId => Type::String, None, "A sender identity id.";
    RelayProfileId => Type::String, None, "A relay profile id.";
    PurposeName => Type::String, None, "A purpose name such as General or Gradebook.";
    ProfileName => Type::String, None, "A relay profile's name, unique in the tenant.";
    CaCertificates => Type::String, None, "One or more PEM certificates (-----BEGIN CERTIFICATE-----).";
    SmtpUsername => Type::String, None, "An SMTP or mailbox user name.";
    BaseUrl => Type::String, None, "An absolute http(s) URL.";
    OAuthClientId => Type::String, None, "The application (client) id the provider issued.";
    MicrosoftAuthority => Type::String, None, "common, organizations, consumers, a tenant id or a tenant domain.";
    RedirectUri => Type::String, None, "An absolute http(s) URL, matched exactly.";
}
