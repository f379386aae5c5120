//! The bounce mailbox against a real Dovecot: delivery status notifications
//! and feedback reports put in its inbox become failed and complained
//! events and suppressions; reports used are deleted, other mail is left
//! read; POP3 and implicit TLS; a mailbox that refuses the password; the
//! worker's own schedule; and another tenant's messages and profiles.

use std::time::Duration;

use herald_tests::peers::{CERT_HOST, Dovecot, SmtpPeer, TestCerts};
use herald_tests::{TestApp, TestTenant, smtp_profile};
use reqwest::Method;
use serde_json::{Value, json};

/// A profile delivering to `smtp` whose bounce mailbox is `mailbox`.
fn profile(t: &TestTenant, smtp: u16, mailbox: Value, password: &str, ca: &str) -> Value {
    let mut p = smtp_profile(
        t,
        "Bulk",
        smtp,
        json!({"trust": {"extra_ca_pem": ca, "accept_host_name": CERT_HOST}}),
    );
    p["bounce_mailbox"] = mailbox;
    p["secrets"] = json!({"bounce_password": password});
    p
}

fn imap(port: u16, user: &str) -> Value {
    json!({"protocol": "imap", "host": "127.0.0.1", "port": port, "tls": false,
           "username": user, "auth": {"mode": "password"}, "poll_minutes": 1, "retries": 2})
}

/// Sends one message and waits until every recipient is delivered.
async fn delivered(app: &TestApp, t: &TestTenant, profile: &str, to: &str) -> String {
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/messages",
            &t.admin_key,
            Some(
                json!({"to": to, "subject": "Report card", "text": "Hello", "profile_id": profile}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let (_, m) = app
            .get(&format!("/api/v1/messages/{id}"), &t.admin_key)
            .await;
        if m["status"] == "sent" {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} was not delivered");
}

/// A bounce as Postfix writes one: a multipart/report with the returned
/// headers of `message` (sent from `domain`).
fn dsn(message: &str, domain: &str, blocks: &[(&str, &str, &str, &str)]) -> String {
    let recipients: String = blocks
        .iter()
        .map(|(rcpt, action, status, diag)| {
            format!(
                "Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\n\
                 Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.home.example\r\n\
                 Diagnostic-Code: smtp; {diag}\r\n\r\n"
            )
        })
        .collect();
    format!(
        "From: MAILER-DAEMON@mx.home.example\r\nTo: bounces@{domain}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --b1\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.home.example\r\n\r\n{recipients}\
         --b1\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: office@{domain}\r\nSubject: Report card\r\n\
         Message-ID: <{message}@{domain}>\r\n\r\n--b1--\r\n"
    )
}

/// An abuse report (ARF) about `message` as a feedback loop sends it.
fn complaint(message: &str, domain: &str, rcpt: &str) -> String {
    format!(
        "From: fbl@isp.example\r\nTo: bounces@{domain}\r\nSubject: Complaint about message\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"f1\"\r\n\r\n\
         --f1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
         --f1\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: {rcpt}\r\n\r\n\
         --f1\r\nContent-Type: message/rfc822\r\n\r\n\
         From: office@{domain}\r\nTo: {rcpt}\r\nSubject: Report card\r\n\
         X-Herald-Message: {message}\r\n\r\nHello\r\n--f1--\r\n"
    )
}

async fn poll(app: &TestApp, key: &str, profile: &str) -> (u16, Value) {
    app.send(
        Method::POST,
        &format!("/api/v1/relay-profiles/{profile}/bounce-mailbox/poll"),
        key,
        None,
    )
    .await
}

async fn events(app: &TestApp, t: &TestTenant, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/events?{query}"), &t.admin_key)
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn reports_in_the_mailbox_become_events_and_suppressions() {
    let certs = TestCerts::new();
    let mailbox = Dovecot::start(&certs).await;
    let smtp = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("north").await;
    let other = app.tenant("south").await;
    let p = app
        .create_profile(
            &t,
            profile(
                &t,
                smtp.port,
                imap(mailbox.imap_port, &mailbox.user),
                &mailbox.password,
                &certs.ca_pem,
            ),
        )
        .await;
    let q = app
        .create_profile(&other, smtp_profile(&other, "Other", smtp.port, json!({})))
        .await;
    let d = &t.domain;

    let m1 = delivered(&app, &t, &p, "gone@home.example, slow@home.example").await;
    let m2 = delivered(&app, &t, &p, "angry@home.example").await;
    let theirs = delivered(&app, &other, &q, "theirs@home.example").await;

    mailbox
        .deliver(&dsn(
            &m1,
            d,
            &[
                (
                    "gone@home.example",
                    "failed",
                    "5.1.1",
                    "550 5.1.1 No such user",
                ),
                (
                    "slow@home.example",
                    "delayed",
                    "4.4.1",
                    "421 4.4.1 Connection timed out",
                ),
            ],
        ))
        .await;
    mailbox
        .deliver(&complaint(&m2, d, "angry@home.example"))
        .await;
    // About another tenant's message, and about no message at all.
    mailbox
        .deliver(&dsn(
            &theirs,
            &other.domain,
            &[("theirs@home.example", "failed", "5.1.1", "550 5.1.1 No")],
        ))
        .await;
    mailbox
        .deliver(&dsn(
            "not-a-herald-id",
            d,
            &[("x@home.example", "failed", "5.1.1", "550 5.1.1 No")],
        ))
        .await;
    mailbox
        .deliver("From: parent@home.example\r\nSubject: Out of office\r\n\r\nAway until Monday\r\n")
        .await;

    // A sender may not poll; another tenant's admin finds no such profile.
    let sender = app.key(&t, "sender").await;
    assert_eq!(poll(&app, &sender, &p).await.0, 403);
    assert_eq!(poll(&app, &other.admin_key, &p).await.0, 404);
    // A profile without a mailbox is refused by name.
    let (status, body) = poll(&app, &other.admin_key, &q).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("bounce_mailbox")),
        "{body}"
    );

    let (status, got) = poll(&app, &t.admin_key, &p).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"ok": true, "error": null, "fetched": 5, "bounced": 1, "delayed": 1,
               "complained": 1, "duplicates": 0, "unmatched": 2, "not_reports": 1})
    );

    // The hard bounce: failed, permanent, with the remote server's words,
    // and the address is on the bounce list.
    let failed = events(&app, &t, &format!("message={m1}&event=failed")).await;
    assert_eq!(failed.len(), 2, "{failed:#?}");
    let gone = failed
        .iter()
        .find(|e| e["recipient"] == "gone@home.example")
        .unwrap();
    assert_eq!(
        (gone["severity"].as_str(), gone["reason"].as_str()),
        (Some("permanent"), Some("bounce"))
    );
    assert_eq!(gone["delivery-status"]["code"], 550);
    assert_eq!(gone["delivery-status"]["enhanced-code"], "5.1.1");
    assert_eq!(gone["delivery-status"]["message"], "550 5.1.1 No such user");
    let slow = failed
        .iter()
        .find(|e| e["recipient"] == "slow@home.example")
        .unwrap();
    assert_eq!(slow["severity"], "temporary");
    let (_, m) = app
        .get(&format!("/api/v1/messages/{m1}"), &t.admin_key)
        .await;
    assert_eq!(m["status"], "partial", "{m:#}");
    let (status, _) = app
        .get(
            "/api/v1/suppressions/bounce/gone@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get(
            "/api/v1/suppressions/bounce/slow@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(status, 404, "a delay suppresses nothing");

    // The complaint, through Mailgun's own API too.
    let auth = format!("api:{}", t.admin_key);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, auth);
    let res = app
        .client
        .get(app.url(&format!("/v3/{d}/events?event=complained")))
        .header("authorization", format!("Basic {b64}"))
        .send()
        .await
        .unwrap();
    let v3: Value = res.json().await.unwrap();
    let items = v3["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v3:#}");
    assert_eq!(items[0]["recipient"], "angry@home.example");
    assert_eq!(items[0]["message"]["headers"]["subject"], "Report card");
    let (status, _) = app
        .get(
            "/api/v1/suppressions/complaint/angry@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(status, 200);
    // The next message to the complainer is not sent.
    let (_, again) = app
        .send(
            Method::POST,
            "/api/v1/messages",
            &t.admin_key,
            Some(json!({"to": "angry@home.example, fine@home.example", "subject": "x", "text": "x", "profile_id": p})),
        )
        .await;
    assert_eq!(
        again["suppressed"],
        json!(["angry@home.example"]),
        "{again}"
    );

    // Nothing of the other tenant's changed.
    assert!(
        events(&app, &other, &format!("message={theirs}&event=failed"))
            .await
            .is_empty()
    );
    let (_, m) = app
        .get(&format!("/api/v1/messages/{theirs}"), &other.admin_key)
        .await;
    assert_eq!(m["status"], "sent");

    // The used reports are gone; the rest are read and left for a person.
    let mut left = mailbox.inbox().await;
    left.sort();
    assert_eq!(
        left,
        vec![
            ("Out of office".to_owned(), true),
            ("Undelivered Mail Returned to Sender".to_owned(), true),
            ("Undelivered Mail Returned to Sender".to_owned(), true),
        ]
    );

    // Read again: nothing new. The same bounce delivered twice records
    // nothing twice.
    let (_, got) = poll(&app, &t.admin_key, &p).await;
    assert_eq!(got["fetched"], 0, "{got}");
    mailbox
        .deliver(&dsn(
            &m1,
            d,
            &[(
                "gone@home.example",
                "failed",
                "5.1.1",
                "550 5.1.1 No such user",
            )],
        ))
        .await;
    let (_, got) = poll(&app, &t.admin_key, &p).await;
    assert_eq!(
        (got["fetched"].as_u64(), got["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{got}"
    );
    assert_eq!(
        events(&app, &t, &format!("message={m1}&event=failed"))
            .await
            .len(),
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn pop3_over_tls_and_a_refused_password() {
    let certs = TestCerts::new();
    let mailbox = Dovecot::start(&certs).await;
    let smtp = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("east").await;
    let pop3s = json!({"protocol": "pop3", "host": "127.0.0.1", "port": mailbox.pop3s_port,
        "tls": true, "username": mailbox.user, "auth": {"mode": "password"},
        "poll_minutes": 1, "retries": 2});
    let p = app
        .create_profile(
            &t,
            profile(&t, smtp.port, pop3s, "wrong-password", &certs.ca_pem),
        )
        .await;
    let m = delivered(&app, &t, &p, "gone@home.example").await;
    mailbox
        .deliver(&dsn(
            &m,
            &t.domain,
            &[(
                "gone@home.example",
                "failed",
                "5.1.1",
                "550 5.1.1 No such user",
            )],
        ))
        .await;
    mailbox
        .deliver("From: parent@home.example\r\nSubject: Thank you\r\n\r\nThanks!\r\n")
        .await;

    // The wrong password: 200 with the reason; after `retries` (2) failed
    // polls in a row the profile's log says so, once.
    for _ in 0..3 {
        let (status, got) = poll(&app, &t.admin_key, &p).await;
        assert_eq!(status, 200);
        assert_eq!(got["ok"], false, "{got}");
        assert!(
            got["error"].as_str().unwrap().starts_with("login:"),
            "{got}"
        );
    }
    let failing = events(&app, &t, "event=mailbox_failing").await;
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert_eq!(failing[0]["herald"]["profile"], p);

    // The right password: the report is used over POP3S, the thank-you
    // note is left where it was, and the mailbox is reported working.
    let (status, body) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/relay-profiles/{p}"),
            &t.admin_key,
            Some(json!({"secrets": {"bounce_password": mailbox.password}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = poll(&app, &t.admin_key, &p).await;
    assert_eq!(
        (
            got["ok"].as_bool(),
            got["fetched"].as_u64(),
            got["bounced"].as_u64(),
            got["not_reports"].as_u64()
        ),
        (Some(true), Some(2), Some(1), Some(1)),
        "{got}"
    );
    assert_eq!(events(&app, &t, "event=mailbox_recovered").await.len(), 1);
    let left = mailbox.inbox().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "Thank you");
    // POP3 has no read flag: Herald remembers what it left.
    let (_, got) = poll(&app, &t.admin_key, &p).await;
    assert_eq!(got["fetched"], 0, "{got}");

    // A TLS mailbox whose certificate is not trusted is a TLS failure.
    let untrusted = json!({"protocol": "imap", "host": "127.0.0.1", "port": mailbox.imaps_port,
        "tls": true, "username": mailbox.user, "auth": {"mode": "password"}});
    let mut body = smtp_profile(&t, "Untrusted", smtp.port, json!({}));
    body["bounce_mailbox"] = untrusted;
    body["secrets"] = json!({"bounce_password": mailbox.password});
    let u = app.create_profile(&t, body).await;
    let (_, got) = poll(&app, &t.admin_key, &u).await;
    assert!(got["error"].as_str().unwrap().starts_with("tls:"), "{got}");
    app.stop().await;
}

#[tokio::test]
async fn the_worker_polls_on_its_own() {
    let certs = TestCerts::new();
    let mailbox = Dovecot::start(&certs).await;
    let smtp = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn_with(&[("HERALD_WORKER__BOUNCE_SCAN_SECONDS", "1")]).await;
    let t = app.tenant("west").await;
    // First a profile without a mailbox, to send through; then the mailbox
    // is added, and the poller finds it at its next scan.
    let p = app
        .create_profile(&t, smtp_profile(&t, "Bulk", smtp.port, json!({})))
        .await;
    let m = delivered(&app, &t, &p, "angry@home.example").await;
    mailbox
        .deliver(&complaint(&m, &t.domain, "angry@home.example"))
        .await;
    let (status, body) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/relay-profiles/{p}"),
            &t.admin_key,
            Some(
                json!({"bounce_mailbox": imap(mailbox.imap_port, &mailbox.user),
                        "secrets": {"bounce_password": mailbox.password}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..200 {
        if !events(&app, &t, "event=complained").await.is_empty() {
            assert!(mailbox.inbox().await.is_empty());
            app.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker did not poll the bounce mailbox within 10 s");
}

/// Anyone can mail a bounce mailbox: a report whose base64 part decodes to
/// NUL and CR, and a feedback report with an oversize user agent and a
/// header injection in its recipient, are recorded with clean text (on
/// PostgreSQL a NUL would otherwise fail the insert and the poll).
#[tokio::test]
async fn hostile_reports_are_recorded_with_clean_text() {
    use base64::Engine as _;
    let certs = TestCerts::new();
    let mailbox = Dovecot::start(&certs).await;
    let smtp = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("rough").await;
    let p = app
        .create_profile(
            &t,
            profile(
                &t,
                smtp.port,
                imap(mailbox.imap_port, &mailbox.user),
                &mailbox.password,
                &certs.ca_pem,
            ),
        )
        .await;
    let bounced = delivered(&app, &t, &p, "gone@home.example").await;
    let complained = delivered(&app, &t, &p, "angry@home.example").await;
    let d = &t.domain;

    let status = base64::engine::general_purpose::STANDARD.encode(
        "Final-Recipient: rfc822; gone@home.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 bad\0user\rhere\r\n",
    );
    mailbox
        .deliver(&format!(
            "From: MAILER-DAEMON@mx.home.example\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {status}\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\n\
             From: office@{d}\r\nX-Herald-Message: {bounced}\r\n\r\n--b--\r\n"
        ))
        .await;
    let report = base64::engine::general_purpose::STANDARD.encode(format!(
        "Feedback-Type: abuse\0\r\nUser-Agent: {}\r\n\
         Original-Rcpt-To: angry@home.example\rBcc: victim@elsewhere.example\r\n",
        "A".repeat(10_000)
    ));
    mailbox
        .deliver(&format!(
            "From: fbl@isp.example\r\nSubject: Complaint\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n\
             --f\r\nContent-Type: message/feedback-report\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {report}\r\n\
             --f\r\nContent-Type: message/rfc822\r\n\r\n\
             From: office@{d}\r\nTo: angry@home.example\r\nX-Herald-Message: {complained}\r\n\r\nHi\r\n--f--\r\n"
        ))
        .await;

    let (status, got) = poll(&app, &t.admin_key, &p).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        (
            got["ok"].as_bool(),
            got["bounced"].as_u64(),
            got["complained"].as_u64()
        ),
        (Some(true), Some(1), Some(1)),
        "{got}"
    );
    let failed = events(&app, &t, &format!("message={bounced}&event=failed")).await;
    assert_eq!(
        failed[0]["delivery-status"]["message"],
        "550 5.1.1 bad user here"
    );
    let complaint = events(&app, &t, &format!("message={complained}&event=complained")).await;
    assert_eq!(complaint.len(), 1, "{complaint:#?}");
    // The injected line named no one: the original's To is the complainer.
    assert_eq!(complaint[0]["recipient"], "angry@home.example");
    let description = complaint[0]["herald"]["description"].as_str().unwrap();
    assert!(
        description.len() < 300,
        "the user agent was cut: {description}"
    );
    let (status, _) = app
        .get(
            "/api/v1/suppressions/complaint/victim@elsewhere.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}
