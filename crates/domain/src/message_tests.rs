use super::*;
use proptest::prelude::*;

#[test]
fn mailboxes_in_every_form() {
    let m = Mailbox::parse("to", "ada@school.example").unwrap();
    assert_eq!((m.name, m.address.as_str()), (None, "ada@school.example"));
    let m = Mailbox::parse("to", "Ada Lovelace <ada@school.example>").unwrap();
    assert_eq!(m.name.unwrap().as_str(), "Ada Lovelace");
    let m = Mailbox::parse("to", "\"Lovelace, Ada\" <ada@school.example>").unwrap();
    assert_eq!(m.name.unwrap().as_str(), "Lovelace, Ada");
    let list = Mailbox::parse_list(
        "to",
        "\"Doe, John\" <john@a.example>, bob@b.example,<carol@c.example> , ",
    )
    .unwrap();
    let addrs: Vec<&str> = list.iter().map(|m| m.address.as_str()).collect();
    assert_eq!(
        addrs,
        ["john@a.example", "bob@b.example", "carol@c.example"]
    );
}

#[test]
fn hostile_mailboxes_are_refused_naming_the_field() {
    for bad in [
        "Ada <ada@school.example",
        "ada@school.example>",
        "Evil\r\nBcc: x@y.example <ada@school.example>",
        "\"unclosed <ada@school.example>",
        "not an address",
    ] {
        let err = Mailbox::parse_list("cc", bad).unwrap_err();
        assert_eq!(err.field, "cc", "{bad}");
    }
}

#[test]
fn headers_tags_variables_and_files() {
    assert!(HeaderName::parse("X-Campaign").is_ok());
    for bad in ["", "X Campaign", "X:Y", "Bcc", "content-type", "X-Ü"] {
        assert!(HeaderName::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(HeaderValue::parse(" a\tb ").unwrap().as_str(), "a\tb");
    assert!(HeaderValue::parse("a\r\nBcc: x").is_err());
    assert!(HeaderValue::parse(&"x".repeat(999)).is_err());
    assert!(Tag::parse("newsletter").is_ok() && Tag::parse("").is_err());
    assert!(Tag::parse(&"t".repeat(129)).is_err());
    let mut v = UserVariables::default();
    v.insert("student_id", "42").unwrap();
    assert!(v.insert("bad name", "x").is_err());
    assert!(v.insert("big", &"x".repeat(4096)).is_err());
    assert_eq!(
        parse_file_name("report card.pdf").unwrap(),
        "report card.pdf"
    );
    for bad in ["../etc/passwd", "a\\b", "a\nb", ""] {
        assert!(parse_file_name(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_content_type("Application/PDF").unwrap(),
        "application/pdf"
    );
    assert!(parse_content_type("text").is_err() && parse_content_type("a/b c").is_err());
    assert!(parse_subject("Report\ncard").is_err());
}

#[test]
fn delivery_times_are_rfc_2822() {
    let t = parse_delivery_time("Fri, 13 Nov 2026 18:02:00 +0000").unwrap();
    assert_eq!(t.as_micros(), 1_794_592_920_000_000);
    assert!(parse_delivery_time("tomorrow").is_err());
}

proptest! {
    #[test]
    fn nothing_parsed_holds_a_line_break(s in "\\PC{0,30}[\r\n\0]\\PC{0,30}") {
        prop_assert!(Mailbox::parse("to", &s).is_err());
        prop_assert!(HeaderValue::parse(&s).is_err());
        prop_assert!(parse_subject(&s).is_err());
        prop_assert!(parse_file_name(&s).is_err());
    }

    #[test]
    fn list_parsing_never_panics(s in "\\PC{0,80}") {
        let _ = Mailbox::parse_list("to", &s);
    }
}

#[test]
fn recipient_variables_fill_each_copy() {
    let vars: std::collections::BTreeMap<String, String> = [
        ("first".to_owned(), "Ada".to_owned()),
        ("grade".to_owned(), "A".to_owned()),
    ]
    .into();
    assert_eq!(
        fill_recipient_variables("Dear %recipient.first%, grade %recipient.grade%.", &vars),
        "Dear Ada, grade A."
    );
    assert_eq!(
        fill_recipient_variables("%recipient.missing%|100% sure|%recipient.first", &vars),
        "|100% sure|%recipient.first"
    );
}
