use super::*;
use serde_json::json;

fn domains() -> Vec<DomainName> {
    vec![DomainName::parse("school.example").unwrap()]
}

fn settings(v: serde_json::Value) -> Result<ProfileSettings, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn office365() -> serde_json::Value {
    json!({
        "name": "District Office 365",
        "transport": {"smtp": {
            "host": "smtp.office365.com", "security": "starttls_required",
            "timeout_seconds": 60, "auth": {"mode": "identity"}
        }},
        "from": {"address": "office@school.example", "name": "Springfield District"},
        "purposes": [
            {"name": "Gradebook", "from": {"address": "grades@school.example"}},
            {"name": "Parent Access", "from": {"address": "portal@school.example", "name": "Parent Portal"}}
        ],
        "policy": {"reply_to_user": true, "display_name": "from_user"},
        "attachments": {"allowed": true, "max_size_mb": 10},
        "delivery": {"throttle_per_second": 5, "batch_size": 100, "batch_pause_seconds": 30},
    })
}

#[test]
fn a_full_profile_parses_with_defaults_filled_in() {
    let s = settings(office365()).unwrap();
    s.check(&domains()).unwrap();
    let Transport::Smtp(smtp) = &s.transport else {
        panic!("smtp expected")
    };
    assert_eq!(smtp.port().get(), 587, "blank port follows STARTTLS");
    assert_eq!(smtp.timeout_seconds.duration().as_secs(), 60);
    assert_eq!(s.retry().minutes_between_retries, 10);
    assert_eq!(s.retry().max_errors_before_cancel, 10);
    assert!(s.policy.from_tenant_domains_only, "on unless turned off");
    assert_eq!(s.attachments.limit_bytes(), 10 * 1024 * 1024);
    assert!(
        s.required_secrets().is_empty(),
        "identities sign in themselves"
    );
    let gradebook = PurposeName::parse("GRADEBOOK").unwrap();
    assert_eq!(
        s.from_for(Some(&gradebook)).address.as_str(),
        "grades@school.example"
    );
    assert_eq!(s.from_for(None).address.as_str(), "office@school.example");
    // What is stored reads back the same.
    let again: ProfileSettings = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

#[test]
fn each_bad_field_is_refused() {
    let cases = [
        ("/transport/smtp/port", json!(0), "port"),
        ("/transport/smtp/port", json!(70000), "port"),
        ("/transport/smtp/timeout_seconds", json!(45), "30, 60"),
        ("/transport/smtp/security", json!("ssl"), "unknown variant"),
        (
            "/transport/smtp/host",
            json!("smtp.example.com\r\nX: y"),
            "control",
        ),
        ("/from/address", json!("not an address"), "email"),
        ("/from/name", json!("Evil\nBcc: x@y.z"), "control"),
        ("/attachments/max_size_mb", json!(101), "1 and 100"),
        ("/delivery/throttle_per_second", json!(1000), "1 and 999"),
        ("/delivery/minutes_between_retries", json!(0), "1 and 1440"),
        ("/delivery/batch_pause_seconds", json!(3601), "0 and 3600"),
        (
            "/policy/display_name",
            json!("sometimes"),
            "unknown variant",
        ),
        ("/unexpected", json!(1), "unknown field"),
    ];
    for (pointer, value, expect) in cases {
        let mut v = office365();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        target[key] = value.clone();
        let err = settings(v).expect_err(pointer);
        assert!(err.contains(expect), "{pointer} = {value}: {err}");
    }
}

#[test]
fn cross_field_rules() {
    let mut v = office365();
    v["from"]["address"] = json!("office@elsewhere.example");
    let err = settings(v).unwrap().check(&domains()).unwrap_err();
    assert_eq!(err.field, "from.address");

    let mut v = office365();
    v["policy"]["from_tenant_domains_only"] = json!(false);
    v["from"]["address"] = json!("office@elsewhere.example");
    settings(v).unwrap().check(&domains()).unwrap();

    let mut v = office365();
    v["purposes"][1]["name"] = json!("gradebook");
    assert_eq!(
        settings(v).unwrap().check(&domains()).unwrap_err().field,
        "purposes"
    );

    let mut v = office365();
    v["attachments"] = json!({"allowed": false, "max_size_mb": 5});
    assert_eq!(
        settings(v).unwrap().check(&domains()).unwrap_err().field,
        "attachments.max_size_mb"
    );
}

#[test]
fn secrets_follow_the_transport() {
    let mut v = office365();
    v["transport"]["smtp"]["auth"] =
        json!({"mode": "password", "username": "relay@school.example"});
    v["bounce_mailbox"] = json!({
        "protocol": "imap", "host": "imap.school.example", "username": "bounces",
        "auth": {"mode": "password"}
    });
    let s = settings(v).unwrap();
    assert_eq!(
        s.required_secrets(),
        vec![ProfileSecret::Password, ProfileSecret::BouncePassword]
    );
    assert_eq!(s.bounce_mailbox.as_ref().unwrap().port().get(), 993);

    let mailgun = settings(json!({
        "name": "Mailgun EU",
        "transport": {"mailgun": {"domain": "mg.school.example", "region": "eu"}},
        "from": {"address": "office@school.example"}
    }))
    .unwrap();
    assert_eq!(mailgun.required_secrets(), vec![ProfileSecret::ApiKey]);
    let Transport::Mailgun(m) = &mailgun.transport else {
        panic!()
    };
    assert_eq!(m.api_base(), "https://api.eu.mailgun.net");
}

#[test]
fn no_reply_senders_are_warned_about() {
    let mut v = office365();
    v["from"]["address"] = json!("No-Reply@school.example");
    let w = settings(v).unwrap().warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("from.address"));
    assert!(settings(office365()).unwrap().warnings().is_empty());
}

#[test]
fn base_urls() {
    assert_eq!(
        BaseUrl::parse("http://127.0.0.1:9000/").unwrap().as_str(),
        "http://127.0.0.1:9000"
    );
    for bad in [
        "ftp://x",
        "http://",
        "https://u:p@host",
        "http://h/?q=1",
        "http://h\r\n",
    ] {
        assert!(BaseUrl::parse(bad).is_err(), "{bad}");
    }
}
