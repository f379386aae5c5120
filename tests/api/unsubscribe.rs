//! Unsubscribe links, as a recipient's mail client and browser use them:
//! each message carries its recipient's own List-Unsubscribe with one-click
//! POST (RFC 8058) and the Mailgun body placeholders; the link's page
//! unsubscribes nobody until its button is pressed; following it writes an
//! `unsubscribed` event and the unsubscribe entry (all mail, or the
//! message's tags) that the pipeline then honours.

use std::time::Duration;

use herald_tests::peers::SmtpPeer;
use herald_tests::{TestApp, TestTenant, smtp_profile};
use reqwest::Method;
use serde_json::{Value, json};

/// The URLs under `/u/` in a received message (header first), in order.
fn links(data: &str) -> Vec<String> {
    let flat = data.replace("=\r\n", "");
    let mut out = Vec::new();
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("http://") {
        let url: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(*c))
            .collect();
        rest = &rest[i + url.len()..];
        if url.contains("/u/") {
            out.push(url);
        }
    }
    out
}

async fn send(app: &TestApp, t: &TestTenant, body: Value) -> (u16, Value) {
    app.send(Method::POST, "/api/v1/messages", &t.admin_key, Some(body))
        .await
}

async fn one_click(app: &TestApp, url: &str) -> (u16, String) {
    let res = app
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn unsubscribed_events(app: &TestApp, t: &TestTenant) -> Vec<Value> {
    let (status, body) = app
        .get("/api/v1/events?event=unsubscribed", &t.admin_key)
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_recipient_unsubscribes_with_the_link_in_their_message() {
    let peer = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("links").await;
    let p = app
        .create_profile(&t, smtp_profile(&t, "News", peer.port, json!({})))
        .await;

    let (status, body) = send(
        &app,
        &t,
        json!({"to": "parent@home.example", "subject": "Newsletter", "profile_id": p,
               "tags": ["newsletter"],
               "text": "News.\n\nStop all mail: %unsubscribe_url%\nStop the newsletter: %tag_unsubscribe_url%\n"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let got = peer.received(1).await;
    let data = got[0]["data"].as_str().unwrap();
    assert!(
        data.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{data}"
    );
    let urls = links(data);
    assert_eq!(urls.len(), 3, "header, all, tag: {urls:?}\n{data}");
    assert_eq!(urls[0], urls[1], "the header is the link for all mail");
    assert_ne!(urls[1], urls[2]);
    assert!(!data.contains("%unsubscribe_url%"));

    // The page asks first: a scanner following the link changes nothing.
    let page = app.client.get(&urls[1]).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Stop sending all mail from links school to parent@home.example"),
        "{html}"
    );
    assert!(unsubscribed_events(&app, &t).await.is_empty());

    // The tag link: only mail tagged newsletter stops.
    let (status, html) = one_click(&app, &urls[2]).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("mail from links school tagged newsletter"),
        "{html}"
    );
    let (_, entry) = app
        .get(
            "/api/v1/suppressions/unsubscribe/parent@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(entry["tags"], json!(["newsletter"]), "{entry}");
    let (_, tagged) = send(&app, &t, json!({"to": "parent@home.example", "subject": "x", "text": "x", "profile_id": p, "tags": ["newsletter"]})).await;
    assert_eq!(
        tagged["suppressed"],
        json!(["parent@home.example"]),
        "{tagged}"
    );
    let (_, other) = send(&app, &t, json!({"to": "parent@home.example", "subject": "x", "text": "x", "profile_id": p, "tags": ["report-card"]})).await;
    assert_eq!(other["suppressed"], json!([]), "{other}");

    // One click in the mail client: everything stops, once.
    let (status, _) = one_click(&app, &urls[0]).await;
    assert_eq!(status, 200);
    let (status, html) = one_click(&app, &urls[0]).await;
    assert_eq!(status, 200);
    assert!(html.contains("no longer receive all mail"), "{html}");
    let events = unsubscribed_events(&app, &t).await;
    assert_eq!(
        events.len(),
        2,
        "tag, then all; the repeat adds nothing: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["recipient"] == "parent@home.example")
    );
    assert_eq!(events[0]["message"]["headers"]["subject"], "Newsletter");
    let (_, entry) = app
        .get(
            "/api/v1/suppressions/unsubscribe/parent@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(entry["tags"], json!([]), "all mail now: {entry}");
    let page = app
        .client
        .get(&urls[2])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("already unsubscribed"), "{page}");

    // A link that was altered, or made up, finds nothing.
    let mut bad = urls[0].clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(one_click(&app, &bad).await.0, 404);
    assert_eq!(one_click(&app, &app.url("/u/not-a-token")).await.0, 404);
    // The same sealed part presented as another tenant's link: the tenant
    // is bound into the seal, so it opens for no one.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let other = app.tenant("elsewhere").await;
    let (base, token) = urls[0].rsplit_once('/').unwrap();
    let mut bytes = b64.decode(token).unwrap();
    let other_id: uuid::Uuid = other.id.parse().unwrap();
    bytes[..16].copy_from_slice(other_id.as_bytes());
    let moved = format!("{base}/{}", b64.encode(&bytes));
    assert_eq!(one_click(&app, &moved).await.0, 404);
    assert_eq!(app.client.get(&moved).send().await.unwrap().status(), 404);
    // CR/LF and an oversize token are just tokens that open nothing.
    assert_eq!(
        one_click(&app, &app.url("/u/abc%0D%0ABcc:%20x")).await.0,
        404
    );
    assert_eq!(
        one_click(&app, &app.url(&format!("/u/{}", "A".repeat(4000))))
            .await
            .0,
        404
    );
    assert!(unsubscribed_events(&app, &other).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn links_are_per_recipient() {
    let peer = SmtpPeer::start(json!({})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("batch").await;
    let p = app
        .create_profile(&t, smtp_profile(&t, "News", peer.port, json!({})))
        .await;

    // One message for several recipients cannot carry one link for each.
    let (status, body) = send(
        &app,
        &t,
        json!({"to": "a@home.example, b@home.example", "subject": "x", "text": "x",
               "profile_id": p, "list_unsubscribe": true}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("unsubscribe")),
        "{body}"
    );

    // Mailgun's batch send makes a copy per recipient: each has its own.
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("api:{}", t.admin_key),
    );
    let res = app
        .client
        .post(app.url(&format!("/v3/{}/messages", t.domain)))
        .header("authorization", format!("Basic {auth}"))
        .form(&[
            ("from", format!("office@{}", t.domain)),
            ("to", "a@home.example, b@home.example".to_owned()),
            ("subject", "Hello %recipient.name%".to_owned()),
            ("text", "Bye: %unsubscribe_url%".to_owned()),
            (
                "recipient-variables",
                json!({"a@home.example": {"name": "A"}, "b@home.example": {"name": "B"}})
                    .to_string(),
            ),
            ("o:herald-profile", p.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let got = peer.received(2).await;
    assert_eq!(got.len(), 2);
    let mut by_rcpt = std::collections::BTreeMap::new();
    for m in &got {
        let to = m["to"][0].as_str().unwrap().to_owned();
        by_rcpt.insert(to, links(m["data"].as_str().unwrap()));
    }
    let a = &by_rcpt["a@home.example"];
    let b = &by_rcpt["b@home.example"];
    assert_eq!((a.len(), b.len()), (2, 2), "{by_rcpt:?}");
    assert_ne!(a[1], b[1]);
    // B's link unsubscribes B, not A.
    assert_eq!(one_click(&app, &b[1]).await.0, 200);
    for _ in 0..50 {
        if !unsubscribed_events(&app, &t).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = app
        .get(
            "/api/v1/suppressions/unsubscribe/b@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get(
            "/api/v1/suppressions/unsubscribe/a@home.example",
            &t.admin_key,
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}
