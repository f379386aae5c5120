use super::*;
use crate::{IdentityAuth, IdentityId, IdentityStatus, RelayProfileId, TenantId, Timestamp};
use serde_json::json;

fn profile(policy: serde_json::Value) -> ProfileSettings {
    serde_json::from_value(json!({
        "name": "District",
        "transport": "sandbox",
        "from": {"address": "office@school.example", "name": "Springfield District"},
        "purposes": [{"name": "Gradebook", "from": {"address": "grades@school.example", "name": "Gradebook"}}],
        "policy": policy,
    }))
    .unwrap()
}

fn domains() -> Vec<DomainName> {
    vec![DomainName::parse("school.example").unwrap()]
}

fn identity() -> SenderIdentity {
    SenderIdentity {
        id: IdentityId::new(),
        tenant_id: TenantId::new(),
        address: EmailAddress::parse("ada@gmail.example").unwrap(),
        display_name: Some(DisplayName::parse("Ada Lovelace").unwrap()),
        owner: None,
        shared_with: vec![],
        profile_id: RelayProfileId::new(),
        preferred: false,
        status: IdentityStatus::Connected,
        auth: IdentityAuth::Password { username: None },
        last_error: None,
        last_checked_at: None,
        created_at: Timestamp::now(),
    }
}

fn mb(s: &str) -> Mailbox {
    Mailbox::parse("from", s).unwrap()
}

fn resolve(
    p: &ProfileSettings,
    identity: Option<&SenderIdentity>,
    req: Requested,
) -> Result<Resolved, InvalidInput> {
    let d = domains();
    let user = EmailAddress::parse("teacher@school.example").unwrap();
    let name = DisplayName::parse("Ms Teacher").unwrap();
    Sender {
        profile: p,
        purpose: None,
        identity,
        user_name: Some(&name),
        user_address: Some(&user),
        tenant_domains: &d,
    }
    .resolve(&req)
}

fn show(r: &Resolved) -> (String, Option<String>, Option<String>) {
    (
        r.from.address.to_string(),
        r.from.name.as_ref().map(|n| n.to_string()),
        r.reply_to.as_ref().map(|m| m.address.to_string()),
    )
}

#[test]
fn defaults_send_from_the_profile_or_the_submitted_address() {
    let p = profile(json!({}));
    let r = resolve(&p, None, Requested::default()).unwrap();
    assert_eq!(
        show(&r),
        (
            "office@school.example".into(),
            Some("Springfield District".into()),
            None
        )
    );
    let r = resolve(
        &p,
        None,
        Requested {
            from: Some(mb("Billing <billing@school.example>")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(show(&r).0, "billing@school.example");
    assert_eq!(
        show(&r).1.as_deref(),
        Some("Springfield District"),
        "fixed display name"
    );
    // Outside the tenant's domains: refused unless the profile allows it.
    let err = resolve(
        &p,
        None,
        Requested {
            from: Some(mb("x@elsewhere.example")),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.field, "from");
    let open = profile(json!({"from_tenant_domains_only": false}));
    assert!(
        resolve(
            &open,
            None,
            Requested {
                from: Some(mb("x@elsewhere.example")),
                ..Default::default()
            }
        )
        .is_ok()
    );
}

#[test]
fn identities_send_as_their_own_mailbox() {
    let p = profile(json!({"display_name": "from_user"}));
    let id = identity();
    let r = resolve(&p, Some(&id), Requested::default()).unwrap();
    assert_eq!(
        show(&r),
        (
            "ada@gmail.example".into(),
            Some("Ada Lovelace".into()),
            None
        )
    );
    assert_eq!(r.envelope_from.as_str(), "ada@gmail.example");
    let err = resolve(
        &p,
        Some(&id),
        Requested {
            from: Some(mb("other@school.example")),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.field, "from");
}

#[test]
fn reply_to_from_the_user_keeps_the_district_from() {
    let p = profile(json!({"reply_to_user": true}));
    let r = resolve(
        &p,
        None,
        Requested {
            from: Some(mb("Ms Teacher <teacher@school.example>")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        show(&r),
        (
            "office@school.example".into(),
            Some("Springfield District".into()),
            Some("teacher@school.example".into())
        )
    );
    // Without a submitted From, the signed-in user is the one replies go to.
    let r = resolve(&p, None, Requested::default()).unwrap();
    assert_eq!(show(&r).2.as_deref(), Some("teacher@school.example"));
}

#[test]
fn always_send_as_from_moves_the_user_into_reply_to_and_the_name() {
    let p = profile(json!({"always_send_as_from": true}));
    let r = resolve(
        &p,
        None,
        Requested {
            from: Some(mb("Ms Teacher <teacher@other.example>")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        show(&r),
        (
            "office@school.example".into(),
            Some("Ms Teacher".into()),
            Some("teacher@other.example".into())
        )
    );
}

#[test]
fn reply_to_and_display_name_rules() {
    let strict = profile(json!({}));
    let err = resolve(
        &strict,
        None,
        Requested {
            reply_to: Some(mb("x@y.example")),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.field, "reply_to");
    let err = resolve(
        &strict,
        None,
        Requested {
            display_name: Some(DisplayName::parse("Me").unwrap()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.field, "display_name");

    let open = profile(json!({"allow_custom_reply_to": true, "display_name": "custom_allowed"}));
    let r = resolve(
        &open,
        None,
        Requested {
            reply_to: Some(mb("desk@school.example")),
            display_name: Some(DisplayName::parse("Front Desk").unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        show(&r),
        (
            "office@school.example".into(),
            Some("Front Desk".into()),
            Some("desk@school.example".into())
        )
    );

    let required = profile(json!({"display_name": "custom_required"}));
    assert_eq!(
        resolve(&required, None, Requested::default())
            .unwrap_err()
            .field,
        "display_name"
    );
}

#[test]
fn a_purpose_uses_its_own_from() {
    let p = profile(json!({}));
    let d = domains();
    let purpose = PurposeName::parse("gradebook").unwrap();
    let r = Sender {
        profile: &p,
        purpose: Some(&purpose),
        identity: None,
        user_name: None,
        user_address: None,
        tenant_domains: &d,
    }
    .resolve(&Requested::default())
    .unwrap();
    assert_eq!(
        show(&r),
        (
            "grades@school.example".into(),
            Some("Gradebook".into()),
            None
        )
    );
}
