//! POST /api/v1/messages: acceptance is durable, the sender policy is
//! applied, hostile input and foreign ids are refused, suppressed and
//! oversize mail is rejected with events. These run API-only (`--role api`)
//! so that what is stored can be read before a worker delivers it.

use herald_domain::{EmailAddress, EventKind, MessageId, RecipientStatus};
use herald_store::{events, messages, suppressions};
use herald_tests::peers::SmtpPeer;
use herald_tests::{TestApp, TestTenant};
use reqwest::Method;
use serde_json::{Value, json};

async fn submit(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    app.send(Method::POST, "/api/v1/messages", key, Some(body))
        .await
}

async fn stored(
    app: &TestApp,
    t: &TestTenant,
    id: &str,
) -> (String, Vec<(String, RecipientStatus)>) {
    let db = app.herald().store().read();
    let tenant = t.id.parse().unwrap();
    let id: MessageId = id.parse().unwrap();
    let mime = messages::mime(db, tenant, id).await.unwrap().unwrap();
    let rcpts = messages::recipients(db, tenant, id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.address.to_string(), r.status))
        .collect();
    (String::from_utf8(mime).unwrap(), rcpts)
}

#[tokio::test]
async fn an_accepted_message_is_stored_with_its_recipients_and_events() {
    let app = TestApp::api_only().await;
    let t = app.tenant("submitok").await;
    let sender = app.key(&t, "sender").await;
    let (status, r) = submit(
        &app,
        &sender,
        json!({
            "to": "Parent One <p1@home.example>, p2@home.example",
            "cc": ["teacher@school.example"],
            "bcc": "P1@HOME.example",
            "subject": "Report card",
            "text": "Attached.",
            "html": "<p>Attached.</p>",
            "headers": {"X-Term": "1"},
            "tags": ["report-cards"],
            "variables": {"student": "42"},
            "attachments": [{"filename": "report.pdf", "content_type": "application/pdf",
                             "content_base64": "JVBERi0xLjQK"}]
        }),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["message"], "Queued. Thank you.");
    let id = r["id"].as_str().unwrap();
    assert!(
        r["message_id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{}>", t.domain))
    );
    let (mime, rcpts) = stored(&app, &t, id).await;
    assert_eq!(
        rcpts.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        [
            "p1@home.example",
            "p2@home.example",
            "teacher@school.example"
        ],
        "the Bcc duplicate of p1 is one copy"
    );
    assert!(rcpts.iter().all(|(_, s)| *s == RecipientStatus::Queued));
    // The sandbox profile's From (the tenant's postmaster or owner).
    assert!(mime.contains(&format!("@{}>", t.domain)) || mime.contains(&t.owner_email));
    for part in [
        "Subject: Report card",
        "X-Term: 1",
        "X-Herald-Tenant: submitok",
        "report.pdf",
    ] {
        assert!(mime.contains(part), "{part} missing:\n{mime}");
    }
    assert!(!mime.contains("P1@HOME") && !mime.to_lowercase().contains("bcc:"));
    let evs = events::for_message(
        app.herald().store().read(),
        t.id.parse().unwrap(),
        id.parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(evs.len(), 3);
    assert!(evs.iter().all(|e| e.kind == EventKind::Accepted));
}

#[tokio::test]
async fn hostile_input_and_policy_refusals_name_the_field_and_store_nothing() {
    let app = TestApp::api_only().await;
    let t = app.tenant("submitbad").await;
    let other = app.tenant("submitother").await;
    let (_, other_ids) = app.get("/api/v1/relay-profiles", &other.admin_key).await;
    let foreign_profile = other_ids["items"][0]["id"].clone();
    let many: Vec<String> = (0..1001).map(|i| format!("r{i}@home.example")).collect();
    let base = json!({"to": "p@home.example", "subject": "Hi", "text": "x"});
    let cases = [
        (
            json!({"to": "p@home.example\r\nBcc: all@evil.example"}),
            422,
            "to",
        ),
        (json!({"to": "not an address"}), 422, "to"),
        (json!({"to": []}), 422, "to"),
        (json!({"to": many}), 422, "to"),
        (
            json!({"subject": "Hi\r\nBcc: x@evil.example"}),
            422,
            "subject",
        ),
        (json!({"from": "boss@elsewhere.example"}), 422, "from"),
        (json!({"from": "Evil\n <boss@school.example>"}), 422, "from"),
        (json!({"reply_to": "x@home.example"}), 422, "reply_to"),
        (json!({"display_name": "Me"}), 422, "display_name"),
        (
            json!({"headers": {"Bcc": "x@evil.example"}}),
            422,
            "headers",
        ),
        (
            json!({"headers": {"X-A": "1\r\nBcc: x@evil.example"}}),
            422,
            "headers",
        ),
        (json!({"profile_id": foreign_profile}), 422, "profile_id"),
        (
            json!({"identity_id": "0190b0a4-0000-7000-8000-000000000000"}),
            422,
            "identity_id",
        ),
        (
            json!({"attachments": [{"filename": "../x", "content_base64": "AA=="}]}),
            422,
            "attachments",
        ),
        (
            json!({"attachments": [{"filename": "a.txt", "content_base64": "!!"}]}),
            422,
            "attachments",
        ),
        (json!({"deliver_at": "tomorrow"}), 422, "deliver_at"),
    ];
    for (patch, code, field) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, err) = submit(&app, &t.admin_key, body).await;
        assert_eq!(status, code, "{patch}: {err}");
        assert_eq!(err["error"]["field"], field, "{patch}: {err}");
    }
    let (status, _) = submit(&app, &app.key(&t, "viewer").await, base.clone()).await;
    assert_eq!(status, 403, "viewers do not send");
    let rows = events_count(&app, &t).await;
    assert_eq!(rows, 0, "nothing was accepted");
}

async fn events_count(app: &TestApp, t: &TestTenant) -> usize {
    use herald_store::Connection;
    let store = app.herald().store();
    let rows = store
        .read()
        .query_all_raw(herald_store::Statement::from_string(
            store.read().get_database_backend(),
            format!("SELECT id FROM event WHERE tenant_id = '{}'", t.id),
        ))
        .await
        .unwrap();
    rows.len()
}

#[tokio::test]
async fn suppressed_recipients_are_dropped_with_a_rejected_event() {
    let app = TestApp::api_only().await;
    let t = app.tenant("submitsupp").await;
    let store = app.herald().store();
    let tx = store.begin().await.unwrap();
    suppressions::add(
        tx.conn(),
        t.id.parse().unwrap(),
        suppressions::SuppressionKind::Bounce,
        &EmailAddress::parse("gone@home.example").unwrap(),
        Some("550"),
        Some("5.1.1 no such user"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (status, r) = submit(
        &app,
        &t.admin_key,
        json!({"to": "Gone@home.example, here@home.example", "subject": "Hi", "text": "x"}),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["suppressed"], json!(["Gone@home.example"]));
    let (_, rcpts) = stored(&app, &t, r["id"].as_str().unwrap()).await;
    assert_eq!(rcpts[0].1, RecipientStatus::Suppressed);
    assert_eq!(rcpts[1].1, RecipientStatus::Queued);
    let evs = events::for_message(
        store.read(),
        t.id.parse().unwrap(),
        r["id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap();
    let rejected = evs.iter().find(|e| e.kind == EventKind::Rejected).unwrap();
    assert_eq!(rejected.reason.as_deref(), Some("suppress-bounce"));
}

#[tokio::test]
async fn attachments_follow_the_profile_and_max_size_tells_the_notify_user() {
    let app = TestApp::api_only().await;
    let t = app.tenant("submitsize").await;
    let clerk = app.user(&t, "clerk", "admin").await;
    let peer = SmtpPeer::start(json!({})).await;
    // The tenant's notices go out through the peer.
    let (status, notices) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(json!({"name": "Notices",
                        "transport": {"smtp": {"host": "127.0.0.1", "port": peer.port, "security": "none", "auth": {"mode": "none"}}},
                        "from": {"address": format!("herald@{}", t.domain)}})),
        )
        .await;
    assert_eq!(status, 201, "{notices}");
    let (status, _) = app
        .send(
            Method::PUT,
            "/api/v1/relay-routing",
            &t.admin_key,
            Some(json!({"default_profile_id": notices["id"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, small) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(json!({"name": "Small", "transport": "sandbox",
                        "from": {"address": format!("office@{}", t.domain)},
                        "attachments": {"allowed": true, "max_size_mb": 1, "notify_user_id": clerk.id}})),
        )
        .await;
    assert_eq!(status, 201, "{small}");
    let (status, none) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(json!({"name": "No files", "transport": "sandbox",
                        "from": {"address": format!("office@{}", t.domain)},
                        "attachments": {"allowed": false}})),
        )
        .await;
    assert_eq!(status, 201, "{none}");
    use base64::Engine;
    let big = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 1024 * 1024 + 1]);
    let body = |profile: &Value, content: &str| {
        json!({"to": "p@home.example", "subject": "Big report", "text": "x", "profile_id": profile["id"],
               "attachments": [{"filename": "big.bin", "content_base64": content}]})
    };
    let (status, err) = submit(&app, &t.admin_key, body(&none, "AA==")).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("attachment")),
        "{err}"
    );
    let (status, err) = submit(&app, &t.admin_key, body(&small, &big)).await;
    assert_eq!(status, 413, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allows 1 MB"),
        "{err}"
    );
    let got = peer.received(1).await;
    assert_eq!(got.len(), 1, "the Notify User is told once");
    assert_eq!(got[0]["to"], json!([clerk.email]));
    let data = got[0]["data"].as_str().unwrap();
    assert!(
        data.contains("Big report") && data.contains("p@home.example"),
        "{data}"
    );
    let (status, ok) = submit(&app, &t.admin_key, body(&small, "AA==")).await;
    assert_eq!(status, 202, "{ok}");
}

#[tokio::test]
async fn the_queue_view_lists_pages_filters_and_shows_one_message() {
    let app = TestApp::api_only().await;
    let t = app.tenant("queueview").await;
    let other = app.tenant("queueviewother").await;
    let viewer = app.key(&t, "viewer").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, r) = submit(
            &app,
            &t.admin_key,
            json!({"to": format!("p{i}@home.example"), "subject": format!("Message {i}"), "text": "x"}),
        )
        .await;
        assert_eq!(status, 202, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/messages?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path, &viewer).await;
        assert_eq!(status, 200, "{page}");
        for m in page["items"].as_array().unwrap() {
            assert_eq!(m["status"], "queued");
            seen.push(m["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/messages?limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every message once");
    let (_, sent) = app.get("/api/v1/messages?status=sent", &viewer).await;
    assert_eq!(sent["items"], json!([]));
    for bad in [
        "/api/v1/messages?status=lost",
        "/api/v1/messages?cursor=nope",
        "/api/v1/messages?limit=0",
    ] {
        let (status, _) = app.get(bad, &viewer).await;
        assert_eq!(status, 422, "{bad}");
    }

    let (status, one) = app
        .get(&format!("/api/v1/messages/{}", ids[0]), &viewer)
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["subject"], "Message 4");
    assert_eq!(one["recipients"][0]["address"], "p4@home.example");
    assert_eq!(one["recipients"][0]["status"], "queued");
    assert_eq!(one["events"][0]["event"], "accepted");
    let (status, _) = app
        .get(&format!("/api/v1/messages/{}", ids[0]), &other.admin_key)
        .await;
    assert_eq!(status, 404, "another tenant's message");
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retry_safe() {
    let app = TestApp::api_only().await;
    let t = app.tenant("idem").await;
    let other = app.tenant("idemother").await;
    let post = |key: &str, body: Value, api_key: &str| {
        app.client
            .post(app.url("/api/v1/messages"))
            .bearer_auth(api_key)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let body = json!({"to": "p@home.example", "subject": "Once", "text": "x"});
    let first: Value = post("order-17", body.clone(), &t.admin_key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = post("order-17", body.clone(), &t.admin_key).await.unwrap();
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["id"], first["id"],
        "the first answer, not a second message"
    );
    let (_, list) = app.get("/api/v1/messages", &t.admin_key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let changed = post(
        "order-17",
        json!({"to": "p@home.example", "subject": "Twice", "text": "x"}),
        &t.admin_key,
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), 422);
    let err: Value = changed.json().await.unwrap();
    assert_eq!(err["error"]["field"], "Idempotency-Key");

    // Keys are per tenant.
    let theirs: Value = post("order-17", body, &other.admin_key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(theirs["id"], first["id"]);
    let bad = post("bad key", json!({"to": "p@home.example"}), &t.admin_key)
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn mailgun_clients_send_through_v3_messages() {
    let app = TestApp::api_only().await;
    let t = app.tenant("mgsend").await;
    let url = app.url(&format!("/v3/{}/messages", t.domain));
    // urlencoded, as curl -F-less clients send it.
    let res = app
        .client
        .post(&url)
        .basic_auth("api", Some(&t.admin_key))
        .form(&[
            ("from", format!("Office <office@{}>", t.domain)),
            ("to", "p1@home.example, p2@home.example".into()),
            ("to", "p3@home.example".into()),
            ("subject", "Hello".into()),
            ("text", "Hi".into()),
            ("o:tag", "welcome".into()),
            ("h:X-Campaign", "fall".into()),
            ("v:student", "42".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Queued. Thank you.");
    let message_id = body["id"].as_str().unwrap();
    assert!(message_id.starts_with('<') && message_id.ends_with(&format!("@{}>", t.domain)));
    let (_, list) = app.get("/api/v1/messages", &t.admin_key).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (mime, rcpts) = stored(&app, &t, &id).await;
    assert_eq!(rcpts.len(), 3);
    assert!(mime.contains("X-Campaign: fall"));

    // multipart with a file.
    let boundary = "herald-test-boundary";
    let mut mp = String::new();
    for (k, v) in [
        ("from", format!("office@{}", t.domain)),
        ("to", "p@home.example".into()),
        ("subject", "With file".into()),
        ("text", "see attached".into()),
    ] {
        mp.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    mp.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nhello file\r\n--{boundary}--\r\n"
    ));
    let res = app
        .client
        .post(&url)
        .basic_auth("api", Some(&t.admin_key))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(mp)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Mailgun's errors: 400 with a message, 404 for another domain, 401 for a bad key.
    let res = app
        .client
        .post(&url)
        .basic_auth("api", Some(&t.admin_key))
        .form(&[("from", "evil\r\n@x.example"), ("to", "p@home.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("from"), "{err}");
    let res = app
        .client
        .post(app.url("/v3/elsewhere.example/messages"))
        .basic_auth("api", Some(&t.admin_key))
        .form(&[("from", "a@b.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .post(&url)
        .basic_auth("api", Some("wrong"))
        .form(&[("from", "a@b.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn cancelling_stops_what_is_not_yet_sent() {
    let app = TestApp::api_only().await;
    let t = app.tenant("cancel").await;
    let other = app.tenant("cancelother").await;
    let (_, r) = submit(
        &app,
        &t.admin_key,
        json!({"to": "a@home.example, b@home.example", "subject": "Oops", "text": "x",
               "deliver_at": "Fri, 01 Jan 2100 00:00:00 +0000"}),
    )
    .await;
    let id = r["id"].as_str().unwrap();
    let path = format!("/api/v1/messages/{id}");
    let (status, _) = app
        .send(Method::DELETE, &path, &other.admin_key, None)
        .await;
    assert_eq!(status, 404, "another tenant's message");
    let (status, _) = app
        .send(Method::DELETE, &path, &app.key(&t, "viewer").await, None)
        .await;
    assert_eq!(status, 403);
    let (status, done) = app.send(Method::DELETE, &path, &t.admin_key, None).await;
    assert_eq!(
        (status, done["cancelled"].as_u64()),
        (200, Some(2)),
        "{done}"
    );
    let (_, one) = app.get(&path, &t.admin_key).await;
    assert_eq!(one["status"], "cancelled");
    assert_eq!(one["recipients"][0]["status"], "cancelled");
    let kinds: Vec<&str> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "accepted", "cancelled", "cancelled"]);
    // Again: nothing left to cancel.
    let (_, again) = app.send(Method::DELETE, &path, &t.admin_key, None).await;
    assert_eq!(again["cancelled"], 0);

    // Resend: a foreign id among them changes nothing; then both go back.
    let (_, theirs) = submit(
        &app,
        &other.admin_key,
        json!({"to": "z@home.example", "subject": "x", "text": "x"}),
    )
    .await;
    let (status, _) = app
        .send(
            Method::POST,
            "/api/v1/messages/resend",
            &t.admin_key,
            Some(json!({"ids": [id, theirs["id"]]})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, still) = app.get(&path, &t.admin_key).await;
    assert_eq!(still["status"], "cancelled");
    let too_many: Vec<String> = (0..501).map(|_| id.to_owned()).collect();
    for ids in [json!([]), json!(too_many), json!(["not-an-id\r\n"])] {
        let (status, _) = app
            .send(
                Method::POST,
                "/api/v1/messages/resend",
                &t.admin_key,
                Some(json!({"ids": ids})),
            )
            .await;
        assert!(status == 422 || status == 404, "{status}");
    }
    let (status, r) = app
        .send(Method::POST, &format!("{path}/resend"), &t.admin_key, None)
        .await;
    assert_eq!(
        (status, r["items"][0]["requeued"].as_u64()),
        (200, Some(2)),
        "{r}"
    );
    let (_, back) = app.get(&path, &t.admin_key).await;
    assert_eq!(back["status"], "queued");
    assert_eq!(back["recipients"][1]["status"], "queued");
    assert_eq!(
        back["events"].as_array().unwrap().len(),
        6,
        "two more accepted events"
    );
}

/// Submissions arriving together are committed together (group commit):
/// every one is answered 202 only once stored, with its recipient and
/// event, and a failing one (a repeated idempotency key with another body)
/// fails alone.
#[tokio::test]
async fn concurrent_submissions_are_committed_together_and_each_stored() {
    let app = TestApp::api_only().await;
    let t = app.tenant("groupcommit").await;
    let n = 120;
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = app.client.clone();
        let url = app.url("/api/v1/messages");
        let key = t.admin_key.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = client.post(url).bearer_auth(key).json(&json!({
                "to": format!("p{i}@home.example"), "subject": format!("m{i}"), "text": "x"
            }));
            if i % 40 == 0 {
                req = req.header("Idempotency-Key", "same-key");
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            (202, r) => ids.push(r["id"].as_str().unwrap().to_owned()),
            (409 | 422, _) => refused += 1,
            (status, r) => panic!("{status}: {r}"),
        }
    }
    // Three requests share a key with different bodies: one wins.
    assert_eq!((ids.len(), refused), (n - 2, 2));
    for id in &ids {
        let (_, rcpts) = stored(&app, &t, id).await;
        assert_eq!(rcpts.len(), 1);
        let evs = events::for_message(
            app.herald().store().read(),
            t.id.parse().unwrap(),
            id.parse().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(evs.len(), 1, "one accepted event");
    }
    // The writer gave SQLite's writer connection back once it had nothing
    // more to commit: another write does not wait for it.
    let other = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.herald().store().begin(),
    )
    .await
    .expect("the writer connection is free")
    .unwrap();
    other.commit().await.unwrap();
}
