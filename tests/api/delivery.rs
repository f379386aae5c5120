//! Delivery by the worker to a real SMTP server (npm smtp-server) scripted
//! to answer each recipient its own way: every answer's events, retries,
//! suppressions and holds; throttle and batch pause measured at the server;
//! test mode, delivery time and connection reuse.

use std::time::{Duration, Instant};

use herald_tests::peers::SmtpPeer;
use herald_tests::{TestApp, TestTenant, smtp_profile};
use reqwest::Method;
use serde_json::{Value, json};

async fn submit(app: &TestApp, t: &TestTenant, body: Value) -> String {
    let (status, r) = app
        .send(Method::POST, "/api/v1/messages", &t.admin_key, Some(body))
        .await;
    assert_eq!(status, 202, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

async fn send_to(app: &TestApp, t: &TestTenant, profile: &str, to: &str) -> String {
    submit(
        app,
        t,
        json!({"to": to, "subject": format!("Report for {to}"), "text": "Hello", "profile_id": profile}),
    )
    .await
}

/// The message once none of its recipients is waiting for a first attempt
/// or being delivered (up to 15 s).
async fn settled(app: &TestApp, t: &TestTenant, id: &str, attempts: u64) -> Value {
    let path = format!("/api/v1/messages/{id}");
    let mut last = Value::Null;
    for _ in 0..300 {
        let (status, m) = app.get(&path, &t.admin_key).await;
        assert_eq!(status, 200, "{m}");
        let recipients = m["recipients"].as_array().unwrap();
        let done = recipients.iter().all(|r| {
            r["status"] != "delivering"
                && (r["attempts"].as_u64().unwrap() >= attempts
                    || !matches!(r["status"].as_str(), Some("queued")))
        });
        // The message row and its recipients are read one after the other:
        // wait until its summary caught up too.
        let waiting = recipients.iter().any(|r| r["status"] == "queued");
        let done = done && (waiting || m["status"] != "queued");
        if done {
            return m;
        }
        last = m;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} did not settle: {last:#}");
}

async fn retry_now(app: &TestApp, t: &TestTenant, id: &str) {
    let (status, r) = app
        .send(
            Method::POST,
            &format!("/api/v1/messages/{id}/resend"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
}

fn events_of<'a>(m: &'a Value, kind: &str) -> Vec<&'a Value> {
    m["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

#[tokio::test]
async fn every_answer_gives_its_events_retries_and_suppressions() {
    let peer = SmtpPeer::start(json!({
        "rcpt": {
            "later@home.example": ["450 4.2.0 Mailbox busy, try later"],
            "full@home.example": ["452 4.2.2 Mailbox full"],
            "closing@home.example": ["421 4.7.0 Too many connections, closing"],
            "gone@home.example": ["550 5.1.1 No such user here"]
        },
        "data": {
            "big@home.example": ["552 5.3.4 Message too big for system"],
            "cut@home.example": ["drop"]
        }
    }))
    .await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliverreplies").await;
    let profile = app
        .create_profile(&t, smtp_profile(&t, "Relay", peer.port, json!({})))
        .await;

    // 250: delivered, with the server's reply kept.
    let ok = send_to(&app, &t, &profile, "ok@home.example").await;
    let m = settled(&app, &t, &ok, 1).await;
    assert_eq!(m["status"], "sent", "{m:#}");
    let r = &m["recipients"][0];
    assert_eq!(r["status"], "delivered");
    assert!(r["last_reply"].as_str().unwrap().starts_with("250"), "{r}");
    assert_eq!(events_of(&m, "delivered").len(), 1);

    // 450 / 452 / 421: a temporary failure, queued again for "minutes
    // between retries" (10 by default), then delivered on the retry.
    for to in ["later", "full", "closing"] {
        let id = send_to(&app, &t, &profile, &format!("{to}@home.example")).await;
        let m = settled(&app, &t, &id, 1).await;
        let r = &m["recipients"][0];
        assert_eq!(
            (r["status"].as_str(), r["attempts"].as_u64()),
            (Some("queued"), Some(1)),
            "{to}: {m:#}"
        );
        let failed = events_of(&m, "failed");
        assert_eq!(failed.len(), 1, "{to}: {m:#}");
        assert_eq!(failed[0]["severity"], "temporary");
        let next = r["next_attempt_at"].as_str().unwrap();
        let created = m["created_at"].as_str().unwrap();
        assert!(
            next > created,
            "a later attempt is scheduled: {next} vs {created}"
        );
        assert!(
            failed[0]["description"]
                .as_str()
                .unwrap()
                .contains("next attempt"),
            "{failed:?}"
        );
        retry_now(&app, &t, &id).await;
        let m = settled(&app, &t, &id, 2).await;
        assert_eq!(m["recipients"][0]["status"], "delivered", "{to}: {m:#}");
    }

    // 550 5.1.1: permanent, and the address goes on the bounce list; the
    // next message to it is dropped at acceptance.
    let gone = send_to(&app, &t, &profile, "gone@home.example").await;
    let m = settled(&app, &t, &gone, 1).await;
    assert_eq!(m["status"], "failed");
    let failed = events_of(&m, "failed");
    assert_eq!(
        (failed[0]["severity"].as_str(), failed[0]["reason"].as_str()),
        (Some("permanent"), Some("bounce"))
    );
    let (_, again) = app
        .send(
            Method::POST,
            "/api/v1/messages",
            &t.admin_key,
            Some(json!({"to": "gone@home.example, ok@home.example", "subject": "x", "text": "x", "profile_id": profile})),
        )
        .await;
    assert_eq!(again["suppressed"], json!(["gone@home.example"]), "{again}");

    // 552 5.3.4 at the end of DATA: permanent, but the address is fine.
    let big = send_to(&app, &t, &profile, "big@home.example").await;
    let m = settled(&app, &t, &big, 1).await;
    assert_eq!(m["recipients"][0]["status"], "failed", "{m:#}");
    let (_, later) = app
        .send(
            Method::POST,
            "/api/v1/messages",
            &t.admin_key,
            Some(json!({"to": "big@home.example", "subject": "small", "text": "x", "profile_id": profile})),
        )
        .await;
    assert_eq!(later["suppressed"], json!([]), "not suppressed: {later}");

    // The connection cut in the middle of DATA: temporary; the retry
    // delivers it.
    let cut = send_to(&app, &t, &profile, "cut@home.example").await;
    let m = settled(&app, &t, &cut, 1).await;
    assert_eq!(m["recipients"][0]["status"], "queued", "{m:#}");
    assert_eq!(events_of(&m, "failed")[0]["severity"], "temporary");
    retry_now(&app, &t, &cut).await;
    let m = settled(&app, &t, &cut, 2).await;
    assert_eq!(m["recipients"][0]["status"], "delivered", "{m:#}");

    // Recipients of one message get one transaction; each is answered on
    // its own.
    let peer_before = peer.received(0).await.len();
    let mixed = submit(
        &app,
        &t,
        json!({"to": "a@home.example, gone2@home.example", "cc": "b@home.example",
               "subject": "mixed", "text": "x", "profile_id": profile}),
    )
    .await;
    let m = settled(&app, &t, &mixed, 1).await;
    let statuses: Vec<_> = m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["delivered", "delivered", "delivered"], "{m:#}");
    let got = peer.received(peer_before + 1).await;
    let last = got.last().unwrap();
    assert_eq!(
        last["to"],
        json!(["a@home.example", "gone2@home.example", "b@home.example"])
    );
}

#[tokio::test]
async fn max_errors_before_cancel_ends_in_a_permanent_failure() {
    let peer = SmtpPeer::start(json!({
        "rcpt": {"busy@home.example": ["451 4.3.0 Local error", "451 4.3.0 Local error"]}
    }))
    .await;
    let app = TestApp::spawn().await;
    let t = app.tenant("delivermaxerr").await;
    let mut body = smtp_profile(&t, "Relay", peer.port, json!({}));
    body["delivery"] = json!({"max_errors_before_cancel": 2, "minutes_between_retries": 1});
    let profile = app.create_profile(&t, body).await;
    let id = send_to(&app, &t, &profile, "busy@home.example").await;
    let m = settled(&app, &t, &id, 1).await;
    assert_eq!(m["recipients"][0]["status"], "queued");
    retry_now(&app, &t, &id).await;
    let m = settled(&app, &t, &id, 2).await;
    assert_eq!(m["recipients"][0]["status"], "failed", "{m:#}");
    let failed = events_of(&m, "failed");
    assert_eq!(failed.len(), 2);
    assert_eq!(
        (failed[1]["severity"].as_str(), failed[1]["reason"].as_str()),
        (Some("permanent"), Some("old"))
    );
    assert!(peer.received(0).await.is_empty());
}

#[tokio::test]
async fn refused_credentials_hold_the_mail_until_the_profile_is_fixed() {
    let peer = SmtpPeer::start(json!({"users": {"relay-user": "right-password"}})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliverhold").await;
    let mut body = smtp_profile(
        &t,
        "Relay",
        peer.port,
        json!({"auth": {"mode": "password", "username": "relay-user"}}),
    );
    body["secrets"] = json!({"password": "wrong-password"});
    let profile = app.create_profile(&t, body).await;

    let first = send_to(&app, &t, &profile, "p1@home.example").await;
    let m = settled(&app, &t, &first, 1).await;
    assert_eq!(m["status"], "held", "{m:#}");
    let failed = events_of(&m, "failed");
    assert_eq!(failed[0]["reason"], "sender-auth");
    // The profile is failing; later mail is held without a try, and no
    // recipient is suppressed.
    let (_, p) = app
        .get(&format!("/api/v1/relay-profiles/{profile}"), &t.admin_key)
        .await;
    assert_eq!(p["status"], "failing", "{p:#}");
    assert!(p["last_error"].as_str().unwrap().contains("535"), "{p}");
    let second = send_to(&app, &t, &profile, "p2@home.example").await;
    let m = settled(&app, &t, &second, 1).await;
    assert_eq!(m["status"], "held", "{m:#}");
    let (_, list) = app.get("/api/v1/messages?status=held", &t.admin_key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(peer.received(0).await.is_empty());

    // The admin fixes the password: the held mail goes out.
    let (status, r) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/relay-profiles/{profile}"),
            &t.admin_key,
            Some(json!({"secrets": {"password": "right-password"}})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "active");
    let got = peer.received(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for id in [&first, &second] {
        let m = settled(&app, &t, id, 2).await;
        assert_eq!(m["status"], "sent", "{m:#}");
    }
    let (_, suppressed) = app
        .send(
            Method::POST,
            "/api/v1/messages",
            &t.admin_key,
            Some(json!({"to": "p1@home.example", "subject": "x", "text": "x", "profile_id": profile})),
        )
        .await;
    assert_eq!(suppressed["suppressed"], json!([]));
}

#[tokio::test]
async fn smtp_auth_disabled_holds_and_never_suppresses() {
    let peer = SmtpPeer::start(json!({
        "authReply": "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant"
    }))
    .await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliver57139").await;
    let mut body = smtp_profile(
        &t,
        "Microsoft 365",
        peer.port,
        json!({"auth": {"mode": "password", "username": "office@deliver57139.example"}}),
    );
    body["secrets"] = json!({"password": "app-password"});
    let profile = app.create_profile(&t, body).await;
    let id = send_to(&app, &t, &profile, "parent@home.example").await;
    let m = settled(&app, &t, &id, 1).await;
    assert_eq!(m["recipients"][0]["status"], "held", "{m:#}");
    assert!(
        m["recipients"][0]["last_reply"]
            .as_str()
            .unwrap()
            .contains("5.7.139")
    );
    let (_, again) = app
        .send(
            Method::POST,
            "/api/v1/messages",
            &t.admin_key,
            Some(json!({"to": "parent@home.example", "subject": "x", "text": "x", "profile_id": profile})),
        )
        .await;
    assert_eq!(again["suppressed"], json!([]), "{again}");
}

#[tokio::test]
async fn throttle_and_batch_pause_are_measured_at_the_server() {
    let peer = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliverpace").await;
    let mut body = smtp_profile(&t, "Throttled", peer.port, json!({}));
    body["delivery"] = json!({"throttle_per_second": 5});
    let throttled = app.create_profile(&t, body).await;
    let n = 15;
    for i in 0..n {
        send_to(&app, &t, &throttled, &format!("t{i}@home.example")).await;
    }
    let got = peer.received_within(n, Duration::from_secs(20)).await;
    assert_eq!(got.len(), n);
    let at: Vec<f64> = got.iter().map(|m| m["at"].as_f64().unwrap()).collect();
    let span = (at[n - 1] - at[0]) / 1000.0;
    let rate = (n - 1) as f64 / span;
    assert!(
        rate <= 5.25,
        "{n} messages in {span:.2} s = {rate:.2}/s, over 5/s"
    );
    // No one-second window holds more than 5 (+1 at its edge).
    for (i, start) in at.iter().enumerate() {
        let within = at[i..].iter().filter(|t| **t < start + 1000.0).count();
        assert!(within <= 6, "{within} messages within one second");
    }

    let mut body = smtp_profile(&t, "Batched", peer.port, json!({}));
    body["delivery"] = json!({"batch_size": 3, "batch_pause_seconds": 2});
    let batched = app.create_profile(&t, body).await;
    for i in 0..6 {
        send_to(&app, &t, &batched, &format!("b{i}@home.example")).await;
    }
    let got = peer.received_within(n + 6, Duration::from_secs(20)).await;
    let mut at: Vec<f64> = got[n..].iter().map(|m| m["at"].as_f64().unwrap()).collect();
    at.sort_by(f64::total_cmp);
    assert_eq!(at.len(), 6);
    let gap = (at[3] - at[2]) / 1000.0;
    assert!(
        gap >= 1.9,
        "a pause of 2 s after 3 messages, saw {gap:.2} s"
    );
    assert!(
        (at[2] - at[0]) / 1000.0 < 1.5,
        "the first batch goes at once"
    );
}

#[tokio::test]
async fn test_mode_delivery_time_and_connection_reuse() {
    let peer = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliverwhen").await;
    let profile = app
        .create_profile(&t, smtp_profile(&t, "Relay", peer.port, json!({})))
        .await;

    // Test mode: recorded as delivered, nothing sent.
    let test = submit(
        &app,
        &t,
        json!({"to": "p@home.example", "subject": "x", "text": "x", "profile_id": profile, "test_mode": true}),
    )
    .await;
    let m = settled(&app, &t, &test, 1).await;
    assert_eq!(m["status"], "sent", "{m:#}");
    assert!(
        events_of(&m, "delivered")[0]["description"]
            .as_str()
            .unwrap()
            .contains("test mode")
    );

    // A delivery time 3 s ahead: nothing before it, delivered after it.
    let at = chrono_like_rfc3339(3);
    let started = Instant::now();
    let later = submit(
        &app,
        &t,
        json!({"to": "later@home.example", "subject": "x", "text": "x", "profile_id": profile, "deliver_at": at}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(peer.received(0).await.is_empty(), "sent before its time");
    let got = peer.received_within(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(2500));
    settled(&app, &t, &later, 1).await;

    // Ten messages reuse pooled connections.
    for i in 0..10 {
        send_to(&app, &t, &profile, &format!("r{i}@home.example")).await;
    }
    let got = peer.received_within(11, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 11);
    let sessions: std::collections::BTreeSet<_> = got[1..]
        .iter()
        .map(|m| m["session"].as_str().unwrap())
        .collect();
    assert!(
        sessions.len() < 10,
        "{} connections for 10 messages",
        sessions.len()
    );
}

/// RFC 3339 UTC `secs` seconds from now.
fn chrono_like_rfc3339(secs: i64) -> String {
    herald_domain::Timestamp::now().plus_secs(secs).to_rfc3339()
}

/// Mailgun batch sending: with `recipient-variables`, each `to` recipient
/// gets a copy of their own with `%recipient.*%` filled in; the copies
/// share the Message-ID Herald answers with. Combined with cc it is refused
/// and nothing is stored.
#[tokio::test]
async fn recipient_variables_send_one_filled_copy_per_recipient() {
    let peer = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliverbatch").await;
    let profile = app
        .create_profile(&t, smtp_profile(&t, "Relay", peer.port, json!({})))
        .await;
    let post = |fields: Vec<(&'static str, String)>| {
        let req = app
            .client
            .post(app.url(&format!("/v3/{}/messages", t.domain)))
            .basic_auth("api", Some(&t.admin_key))
            .form(&fields);
        async move { req.send().await.unwrap() }
    };
    let vars = json!({
        "ada@home.example": {"first": "Ada", "grade": "A"},
        "Bob@home.example": {"first": "Bob", "grade": 7}
    });
    let res = post(vec![
        ("from", format!("office@{}", t.domain)),
        ("to", "ada@home.example, bob@home.example".into()),
        ("subject", "Report for %recipient.first%".into()),
        (
            "text",
            "Dear %recipient.first%, your grade is %recipient.grade%.".into(),
        ),
        ("recipient-variables", vars.to_string()),
        ("o:herald-profile", profile.clone()),
    ])
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let shared = body["id"].as_str().unwrap().to_owned();
    let got = peer.received(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let mut seen = Vec::new();
    for m in &got {
        let to = m["to"].as_array().unwrap();
        assert_eq!(to.len(), 1, "each copy to one recipient: {m}");
        let data = m["data"].as_str().unwrap();
        assert!(data.contains(&format!("Message-ID: {shared}")), "{data}");
        seen.push((to[0].as_str().unwrap().to_owned(), data.to_owned()));
    }
    seen.sort();
    assert!(
        seen[0].1.contains("Subject: Report for Ada") && seen[0].1.contains("your grade is A.")
    );
    assert!(
        seen[1].1.contains("Subject: Report for Bob") && seen[1].1.contains("your grade is 7.")
    );
    assert!(
        !seen[0].1.contains("bob@home.example"),
        "Ada does not see Bob"
    );

    let res = post(vec![
        ("from", format!("office@{}", t.domain)),
        ("to", "ada@home.example".into()),
        ("cc", "bob@home.example".into()),
        ("subject", "x".into()),
        ("text", "x".into()),
        ("recipient-variables", "{}".into()),
    ])
    .await;
    assert_eq!(res.status(), 400);
    // Malformed variables, and a value that would break the Subject line
    // open: refused before any copy is stored.
    let injected = json!({"ada@home.example": {"first": "Ada\r\nBcc: thief@evil.example"}});
    for (subject, bad) in [
        ("x", "not json".to_owned()),
        ("x", "[1,2]".to_owned()),
        ("x", r#"{"a@b.example": 3}"#.to_owned()),
        ("Hi %recipient.first%", injected.to_string()),
    ] {
        let res = post(vec![
            ("from", format!("office@{}", t.domain)),
            ("to", "ada@home.example, bob@home.example".into()),
            ("subject", subject.into()),
            ("text", "x".into()),
            ("recipient-variables", bad.clone()),
        ])
        .await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    let (_, list) = app.get("/api/v1/messages", &t.admin_key).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "only the two copies"
    );
}

#[tokio::test]
async fn long_letters_are_stored_compressed_and_arrive_whole() {
    let peer = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("deliverlong").await;
    let profile = app
        .create_profile(&t, smtp_profile(&t, "Relay", peer.port, json!({})))
        .await;
    let lines: Vec<String> = (0..400)
        .map(|i| {
            format!(
                "Line {i}: marks for term {}, remark {}.",
                i % 3,
                i * 7919 % 1000
            )
        })
        .collect();
    let text = lines.join("\r\n");
    let id = submit(
        &app,
        &t,
        json!({"to": "parent@home.example", "subject": "Term report", "text": text,
               "profile_id": profile}),
    )
    .await;
    let got = peer.received(1).await;
    let data = got[0]["data"].as_str().unwrap();
    for line in &lines {
        assert!(data.contains(line.as_str()), "{line} missing from {data}");
    }
    // In the database the letter takes well under half of its size.
    let store = herald_store::Store::connect(&app.db.url).await.unwrap();
    use herald_store::Connection;
    let row = store
        .read()
        .query_one_raw(herald_store::Statement::from_string(
            store.read().get_database_backend(),
            format!(
                "SELECT b.compression, CAST(LENGTH(b.mime) AS BIGINT) AS stored, m.size \
                 FROM message_body b JOIN message m ON m.id = b.message_id WHERE m.id = '{id}'"
            ),
        ))
        .await
        .unwrap()
        .expect("the message's body");
    let compression: Option<String> = row.try_get("", "compression").unwrap();
    let stored: i64 = row.try_get("", "stored").unwrap();
    let size: i64 = row.try_get("", "size").unwrap();
    assert_eq!(compression.as_deref(), Some("lz4"));
    assert!(size > 16_000 && stored < size / 2, "{stored} of {size}");
    store.close().await;
}
