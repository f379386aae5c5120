//! "Send test email" against a real SMTP server (npm smtp-server): success
//! over STARTTLS and implicit TLS, and each known failure diagnosed.

use herald_tests::peers::{CERT_HOST, SmtpPeer, TestCerts};
use herald_tests::{TestApp, TestTenant, smtp_profile};
use reqwest::Method;
use serde_json::{Value, json};

fn profile(t: &TestTenant, name: &str, port: u16, smtp: Value) -> Value {
    smtp_profile(t, name, port, smtp)
}

async fn create(app: &TestApp, t: &TestTenant, body: Value) -> String {
    app.create_profile(t, body).await
}

async fn test(app: &TestApp, t: &TestTenant, path: &str, to: &str) -> Value {
    let (status, r) = app
        .send(Method::POST, path, &t.admin_key, Some(json!({"to": to})))
        .await;
    assert_eq!(status, 200, "{r}");
    r
}

#[tokio::test]
async fn starttls_with_a_private_ca_and_password_auth_delivers_and_masks_secrets() {
    let certs = TestCerts::new();
    let peer = SmtpPeer::start(json!({
        "starttls": true, "key": certs.key_path, "cert": certs.cert_path,
        "users": {"relay-user": "S3cret-relay-pw"}
    }))
    .await;
    let app = TestApp::spawn().await;
    let t = app.tenant("tsstarttls").await;
    let mut body = profile(
        &t,
        "Private relay",
        peer.port,
        json!({"security": "starttls_required",
               "trust": {"extra_ca_pem": certs.ca_pem, "accept_host_name": CERT_HOST},
               "auth": {"mode": "password", "username": "relay-user"}}),
    );
    body["secrets"] = json!({"password": "S3cret-relay-pw"});
    let id = create(&app, &t, body).await;

    let r = test(
        &app,
        &t,
        &format!("/api/v1/relay-profiles/{id}/test"),
        "parent@home.example",
    )
    .await;
    assert_eq!(r["ok"], true, "{r:#}");
    let transcript = r["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(transcript.contains("C: STARTTLS"), "{transcript}");
    assert!(transcript.contains("TLS established"), "{transcript}");
    assert!(
        transcript.contains("C: AUTH PLAIN ********"),
        "{transcript}"
    );
    assert!(transcript.contains("[message body,"), "{transcript}");
    // Neither the password nor its base64 form appears anywhere.
    let plain_b64 = "AHJlbGF5LXVzZXIAUzNjcmV0LXJlbGF5LXB3";
    assert!(!r.to_string().contains("S3cret-relay-pw") && !r.to_string().contains(plain_b64));

    let got = peer.received(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["from"], format!("office@{}", t.domain));
    assert_eq!(got[0]["to"], json!(["parent@home.example"]));
    assert_eq!(got[0]["user"], "relay-user");
    assert_eq!(got[0]["secure"], true, "sent after STARTTLS");
    assert!(
        got[0]["data"]
            .as_str()
            .unwrap()
            .contains("Subject: Herald test message: Private relay")
    );

    // Without the accepted host name the certificate (for mail.test.example)
    // does not match 127.0.0.1.
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/relay-profiles/{id}"),
            &t.admin_key,
            Some(json!({"transport": {"smtp": {"trust": {"accept_host_name": null}}}})),
        )
        .await;
    assert_eq!(status, 200);
    let r = test(
        &app,
        &t,
        &format!("/api/v1/relay-profiles/{id}/test"),
        "parent@home.example",
    )
    .await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["diagnosis"]["code"], "tls_certificate", "{r:#}");
    assert_eq!(
        peer.received(1).await.len(),
        1,
        "nothing more was delivered"
    );
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let certs = TestCerts::new();
    let peer =
        SmtpPeer::start(json!({"secure": true, "key": certs.key_path, "cert": certs.cert_path}))
            .await;
    let app = TestApp::spawn().await;
    let t = app.tenant("tsimplicit").await;
    let id = create(
        &app,
        &t,
        profile(
            &t,
            "SMTPS",
            peer.port,
            json!({"security": "tls",
            "trust": {"extra_ca_pem": certs.ca_pem, "accept_host_name": CERT_HOST}}),
        ),
    )
    .await;
    let r = test(
        &app,
        &t,
        &format!("/api/v1/relay-profiles/{id}/test"),
        "a@b.example",
    )
    .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(peer.received(1).await[0]["secure"], true);
}

#[tokio::test]
async fn known_failures_are_diagnosed() {
    let app = TestApp::spawn().await;
    let t = app.tenant("tsfail").await;
    let to = "parent@home.example";

    // STARTTLS required but not offered: nothing is sent in clear.
    let plain = SmtpPeer::start(json!({})).await;
    let id = create(
        &app,
        &t,
        profile(
            &t,
            "No TLS",
            plain.port,
            json!({"security": "starttls_required"}),
        ),
    )
    .await;
    let r = test(&app, &t, &format!("/api/v1/relay-profiles/{id}/test"), to).await;
    assert_eq!(
        (r["ok"].as_bool(), r["diagnosis"]["code"].as_str()),
        (Some(false), Some("starttls_not_offered")),
        "{r:#}"
    );
    // Opportunistic STARTTLS goes on in clear, and says so.
    let id = create(
        &app,
        &t,
        profile(
            &t,
            "Opportunistic",
            plain.port,
            json!({"security": "starttls"}),
        ),
    )
    .await;
    let r = test(&app, &t, &format!("/api/v1/relay-profiles/{id}/test"), to).await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(r["transcript"].to_string().contains("STARTTLS not offered"));
    assert_eq!(
        plain.received(1).await.len(),
        1,
        "only the opportunistic one arrived"
    );

    // Relay denied at RCPT.
    let relay = SmtpPeer::start(
        json!({"rcptReply": "554 5.7.1 <parent@home.example>: Relay access denied"}),
    )
    .await;
    let id = create(&app, &t, profile(&t, "Relay", relay.port, json!({}))).await;
    let r = test(&app, &t, &format!("/api/v1/relay-profiles/{id}/test"), to).await;
    assert_eq!(r["diagnosis"]["code"], "relay_denied", "{r:#}");
    assert_eq!(r["stage"], "rcpt_to");
    assert_eq!(r["reply"]["code"], 554);
    assert_eq!(r["reply"]["enhanced"], "5.7.1");

    // Microsoft's 535 5.7.139 and bad credentials.
    let ms = SmtpPeer::start(json!({"authReply": "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."})).await;
    let mut body = profile(
        &t,
        "M365",
        ms.port,
        json!({"auth": {"mode": "password", "username": "u"}}),
    );
    body["secrets"] = json!({"password": "pw"});
    let id = create(&app, &t, body).await;
    let r = test(&app, &t, &format!("/api/v1/relay-profiles/{id}/test"), to).await;
    assert_eq!(r["diagnosis"]["code"], "smtp_auth_disabled", "{r:#}");
    assert_eq!(r["diagnosis"]["sender_auth"], true);

    let strict = SmtpPeer::start(json!({"users": {"u": "right"}})).await;
    let mut body = profile(
        &t,
        "Wrong pw",
        strict.port,
        json!({"auth": {"mode": "password", "username": "u"}}),
    );
    body["secrets"] = json!({"password": "wrong"});
    let id = create(&app, &t, body).await;
    let r = test(&app, &t, &format!("/api/v1/relay-profiles/{id}/test"), to).await;
    assert_eq!(r["diagnosis"]["code"], "bad_credentials", "{r:#}");
    assert_eq!(r["reply"]["code"], 535);

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let id = create(&app, &t, profile(&t, "Closed", port, json!({}))).await;
    let r = test(&app, &t, &format!("/api/v1/relay-profiles/{id}/test"), to).await;
    assert_eq!(r["diagnosis"]["code"], "connection_refused", "{r:#}");

    // A bad `to` is a 422; an API key must name one.
    let (status, err) = app
        .send(
            Method::POST,
            &format!("/api/v1/relay-profiles/{id}/test"),
            &t.admin_key,
            Some(json!({"to": "x\r\n@y"})),
        )
        .await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("to")));
    let (status, err) = app
        .send(
            Method::POST,
            &format!("/api/v1/relay-profiles/{id}/test"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!((status, err["error"]["field"].as_str()), (422, Some("to")));
}

#[tokio::test]
async fn an_identity_test_marks_it_connected_or_failing() {
    let peer = SmtpPeer::start(json!({"users": {"ada@idtest.example": "ada-pw"}})).await;
    let app = TestApp::spawn().await;
    let t = app.tenant("tsidentity").await;
    let ada = app.user(&t, "ada", "sender").await;
    let profile_id = create(
        &app,
        &t,
        profile(
            &t,
            "Per-user",
            peer.port,
            json!({"auth": {"mode": "identity"}}),
        ),
    )
    .await;
    let (status, identity) = app
        .send_as(
            &ada,
            Method::POST,
            "/api/v1/identities",
            Some(json!({"address": ada.email, "display_name": "Ada Lovelace", "profile_id": profile_id,
                        "auth": {"method": "password", "username": "ada@idtest.example", "password": "wrong"}})),
        )
        .await;
    assert_eq!(status, 201, "{identity}");
    let path = format!(
        "/api/v1/identities/{}/test",
        identity["id"].as_str().unwrap()
    );
    // No `to`: the test goes to the signed-in user.
    let (status, r) = app.send_as(&ada, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["to"], ada.email.as_str());
    assert_eq!(
        (r["ok"].as_bool(), r["identity_status"].as_str()),
        (Some(false), Some("failing")),
        "{r:#}"
    );
    let (_, got) = app
        .send_as(&ada, Method::GET, &path.replace("/test", ""), None)
        .await;
    assert_eq!(got["status"], "failing");
    assert!(got["last_error"].as_str().unwrap().contains("535"));

    let (status, _) = app
        .send_as(&ada, Method::PATCH, &path.replace("/test", ""),
            Some(json!({"auth": {"method": "password", "username": "ada@idtest.example", "password": "ada-pw"}})))
        .await;
    assert_eq!(status, 200);
    let (_, r) = app.send_as(&ada, Method::POST, &path, None).await;
    assert_eq!(
        (r["ok"].as_bool(), r["identity_status"].as_str()),
        (Some(true), Some("connected")),
        "{r:#}"
    );
    let got = peer.received(1).await;
    assert_eq!(got[0]["from"], ada.email.as_str());
    assert!(
        got[0]["data"]
            .as_str()
            .unwrap()
            .contains("From: \"Ada Lovelace\"")
    );

    // The profile itself cannot be tested without an identity.
    let (status, err) = app
        .send(
            Method::POST,
            &format!("/api/v1/relay-profiles/{profile_id}/test"),
            &t.admin_key,
            Some(json!({"to": "a@b.example"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("auth"))
    );
}

/// A stand-in for Mailgun's API (a third party, not Herald): it accepts
/// `api:key-good` for domain mg.<tenant domain> and records the form.
async fn fake_mailgun(domain: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::Path;
    use axum::http::{HeaderMap, StatusCode};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app = axum::Router::new().route(
        "/v3/{domain}/messages",
        axum::routing::post(
            move |Path(d): Path<String>, headers: HeaderMap, body: String| {
                let sink = sink.clone();
                let domain = domain.clone();
                async move {
                    // "api:key-good" in Basic auth.
                    let good = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Basic YXBpOmtleS1nb29k");
                    if !good {
                        return (StatusCode::UNAUTHORIZED, "Forbidden".to_owned());
                    }
                    if d != domain {
                        return (
                            StatusCode::NOT_FOUND,
                            r#"{"message":"Domain not found"}"#.to_owned(),
                        );
                    }
                    sink.lock().unwrap().push(body);
                    (
                        StatusCode::OK,
                        r#"{"id":"<20261122.1@mg>","message":"Queued. Thank you."}"#.to_owned(),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn a_mailgun_profile_posts_to_the_api_with_its_key() {
    let app = TestApp::spawn().await;
    let t = app.tenant("tsmailgun").await;
    let mg_domain = format!("mg.{}", t.domain);
    let (url, seen) = fake_mailgun(mg_domain.clone()).await;
    let body = |name: &str, domain: &str, key: &str| {
        json!({
            "name": name,
            "transport": {"mailgun": {"domain": domain, "base_url": url}},
            "from": {"address": format!("billing@{}", t.domain), "name": "Billing"},
            "secrets": {"api_key": key}
        })
    };
    let good = create(&app, &t, body("Mailgun", &mg_domain, "key-good")).await;
    let r = test(
        &app,
        &t,
        &format!("/api/v1/relay-profiles/{good}/test"),
        "parent@home.example",
    )
    .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["transport"], "mailgun");
    assert!(!r.to_string().contains("key-good"));
    let form = seen.lock().unwrap().clone();
    assert_eq!(form.len(), 1);
    assert!(form[0].contains("to=parent%40home.example"), "{}", form[0]);
    assert!(
        form[0].contains("subject=Herald+test+message"),
        "{}",
        form[0]
    );

    let wrong_key = create(&app, &t, body("Mailgun wrong key", &mg_domain, "key-bad")).await;
    let r = test(
        &app,
        &t,
        &format!("/api/v1/relay-profiles/{wrong_key}/test"),
        "p@h.example",
    )
    .await;
    assert_eq!(
        (r["ok"].as_bool(), r["diagnosis"]["code"].as_str()),
        (Some(false), Some("bad_credentials"))
    );
    let wrong_domain = create(
        &app,
        &t,
        body("Mailgun wrong domain", "mg.other.example", "key-good"),
    )
    .await;
    let r = test(
        &app,
        &t,
        &format!("/api/v1/relay-profiles/{wrong_domain}/test"),
        "p@h.example",
    )
    .await;
    assert_eq!(r["diagnosis"]["code"], "mailgun_domain", "{r:#}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
