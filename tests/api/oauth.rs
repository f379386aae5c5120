//! "Authenticate with MFA" against real peers: npm oauth2-mock-server as the
//! provider, npm smtp-server checking the XOAUTH2 bearer tokens it receives
//! against that provider's keys.

use herald_store::Connection;
use herald_tests::peers::{OAuthPeer, SmtpPeer};
use herald_tests::{TestApp, TestTenant, TestUser, smtp_profile};
use reqwest::Method;
use serde_json::{Value, json};

struct World {
    app: TestApp,
    t: TestTenant,
    ada: TestUser,
    oauth: OAuthPeer,
    smtp: SmtpPeer,
    identity: String,
}

/// A tenant with a Microsoft OAuth app pointing at the mock provider, an
/// SMTP profile whose identities sign in themselves, and Ada's OAuth identity.
async fn world(slug: &str, oauth_config: Value) -> World {
    let app = TestApp::spawn().await;
    let t = app.tenant(slug).await;
    let ada = app.user(&t, "ada", "sender").await;
    let mut cfg = oauth_config;
    cfg["email"] = json!(ada.email);
    let oauth = OAuthPeer::start(cfg).await;
    let smtp = SmtpPeer::start(json!({"oauthIssuer": oauth.issuer, "authOptional": true})).await;
    let (status, body) = app
        .send(
            Method::PUT,
            "/api/v1/oauth-apps/microsoft",
            &t.admin_key,
            Some(json!({
                "client_id": "herald-test-client",
                "authority": "organizations",
                "redirect_uri": app.url("/oauth/callback"),
                "authorize_url": format!("{}/authorize", oauth.issuer),
                "token_url": format!("{}/token", oauth.issuer),
                "userinfo_url": format!("{}/userinfo", oauth.issuer),
                "client_secret": "client-secret-123",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_secret_set"], true);
    let profile = app
        .create_profile(
            &t,
            smtp_profile(
                &t,
                "Office 365 (test)",
                smtp.port,
                json!({"auth": {"mode": "identity"}}),
            ),
        )
        .await;
    // The tenant's own notices go out through the same server.
    let mut notices = smtp_profile(&t, "Notices", smtp.port, json!({}));
    notices["from"] = json!({"address": format!("herald@{}", t.domain)});
    let notices = app.create_profile(&t, notices).await;
    let (status, _) = app
        .send(
            Method::PUT,
            "/api/v1/relay-routing",
            &t.admin_key,
            Some(json!({"default_profile_id": notices})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, identity) = app
        .send_as(
            &ada,
            Method::POST,
            "/api/v1/identities",
            Some(json!({"address": ada.email, "profile_id": profile,
                        "auth": {"method": "oauth", "provider": "microsoft"}})),
        )
        .await;
    assert_eq!(status, 201, "{identity}");
    World {
        identity: identity["id"].as_str().unwrap().to_owned(),
        app,
        t,
        ada,
        oauth,
        smtp,
    }
}

impl World {
    /// Starts a consent as `user` and follows the provider's redirect:
    /// the callback URL it sends the browser to.
    async fn consent(&self, user: &TestUser) -> String {
        let (status, start) = self
            .app
            .send_as(
                user,
                Method::POST,
                &format!("/api/v1/identities/{}/oauth/start", self.identity),
                None,
            )
            .await;
        assert_eq!(status, 200, "{start}");
        let url = start["authorize_url"].as_str().unwrap();
        let res = self.app.client.get(url).send().await.unwrap();
        assert_eq!(res.status(), 302, "the provider redirects back");
        res.headers()["location"].to_str().unwrap().to_owned()
    }

    async fn callback(&self, user: &TestUser, url: &str) -> (u16, String) {
        let res = self
            .app
            .client
            .get(url)
            .header("cookie", &user.cookie)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn identity(&self) -> Value {
        let (status, v) = self
            .app
            .get(
                &format!("/api/v1/identities/{}", self.identity),
                &self.t.admin_key,
            )
            .await;
        assert_eq!(status, 200);
        v
    }

    async fn test_send(&self) -> Value {
        let (status, r) = self
            .app
            .send_as(
                &self.ada,
                Method::POST,
                &format!("/api/v1/identities/{}/test", self.identity),
                None,
            )
            .await;
        assert_eq!(status, 200, "{r}");
        r
    }

    async fn sealed(&self, field: &str) -> Option<String> {
        let herald = self.app.herald();
        herald_store::secrets::get(
            herald.store().read(),
            herald.keys(),
            herald_store::secrets::Slot {
                tenant: self.t.id.parse().unwrap(),
                table: "sender_identity",
                row: &self.identity,
                field,
            },
        )
        .await
        .unwrap()
        .map(|s| String::from_utf8(s.expose().clone()).unwrap())
    }

    /// Makes the stored access token look expired.
    async fn expire_access_token(&self) {
        self.app
            .herald()
            .store()
            .read_write_for_tests(&format!(
                "UPDATE sender_identity SET access_expires_at = 0 WHERE id = '{}'",
                self.identity
            ))
            .await;
    }
}

trait RawSql {
    async fn read_write_for_tests(&self, sql: &str);
}

impl RawSql for herald_store::Store {
    async fn read_write_for_tests(&self, sql: &str) {
        let tx = self.begin().await.unwrap();
        tx.conn().execute_unprepared(sql).await.unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn consent_round_trip_then_a_message_over_xoauth2_with_the_issued_token() {
    let w = world("oauthok", json!({})).await;
    let (status, start) = w
        .app
        .send_as(
            &w.ada,
            Method::POST,
            &format!("/api/v1/identities/{}/oauth/start", w.identity),
            None,
        )
        .await;
    assert_eq!(status, 200, "{start}");
    let url = start["authorize_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/authorize?", w.oauth.issuer)));
    for part in [
        "code_challenge_method=S256",
        "response_type=code",
        "scope=https%3A%2F%2Foutlook.office.com%2FSMTP.Send+offline_access+openid+email",
        &format!("login_hint={}", w.ada.email.replace('@', "%40")),
        "client_id=herald-test-client",
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }
    let res = w.app.client.get(url).send().await.unwrap();
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&w.app.url("/oauth/callback?")));
    let (status, page) = w.callback(&w.ada, &callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("is connected"));

    let identity = w.identity().await;
    assert_eq!(identity["status"], "connected");
    assert_eq!(identity["tokens_set"], true);
    assert_eq!(identity["auth"]["granted_mailbox"], w.ada.email.as_str());
    let issued = w.oauth.token_requests();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["grant_type"], "authorization_code");

    let r = w.test_send().await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(r["token_expires_at"].is_string());
    assert!(r["token_scopes"].to_string().contains("SMTP.Send"), "{r}");
    assert!(
        r["transcript"]
            .to_string()
            .contains("AUTH XOAUTH2 ********")
    );
    let got = w.smtp.received(1).await;
    assert_eq!(got[0]["user"]["name"], w.ada.email.as_str());
    assert_eq!(
        got[0]["user"]["token"], issued[0]["access_token"],
        "the provider's token"
    );
    assert_eq!(
        w.oauth.token_requests().len(),
        1,
        "a fresh token is not refreshed"
    );

    // Tokens are sealed: not in any stored byte.
    let dump = w.app.db.dump().await;
    for t in [&issued[0]["access_token"], &issued[0]["refresh_token"]] {
        assert!(
            !dump.contains(t.as_str().unwrap()),
            "a token is stored in clear"
        );
    }
    assert!(!dump.contains("client-secret-123"));

    // The callback URL cannot be used twice.
    let (status, page) = w.callback(&w.ada, &callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("already used"), "{page}");

    // Disconnect wipes the tokens.
    let (status, _) = w
        .app
        .send_as(
            &w.ada,
            Method::POST,
            &format!("/api/v1/identities/{}/oauth/disconnect", w.identity),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(w.sealed("refresh_token").await, None);
    assert_eq!(w.identity().await["status"], "unverified");
}

#[tokio::test]
async fn refused_consents_store_nothing() {
    let w = world("oauthrefuse", json!({})).await;
    let bob = w.app.user(&w.t, "bob", "sender").await;
    let untouched = |v: &Value| v["status"] == "unverified" && v["tokens_set"] == false;

    // Another user's state.
    let url = w.consent(&w.ada).await;
    let (status, page) = w.callback(&bob, &url).await;
    assert_eq!(status, 400);
    assert!(page.contains("another user"), "{page}");
    assert!(untouched(&w.identity().await));

    // An expired state.
    let url = w.consent(&w.ada).await;
    w.app
        .herald()
        .store()
        .read_write_for_tests("UPDATE oauth_state SET expires_at = 0")
        .await;
    let (status, page) = w.callback(&w.ada, &url).await;
    assert_eq!((status, page.contains("expired")), (400, true), "{page}");

    // A missing, oversize or line-breaking state.
    for bad in [
        "/oauth/callback?code=x",
        &format!("/oauth/callback?state={}&code=x", "s".repeat(600)),
        "/oauth/callback?state=a%0D%0Ab&code=x",
    ] {
        let (status, _) = w.callback(&w.ada, &w.app.url(bad)).await;
        assert_eq!(status, 400, "{bad}");
    }
    // An unknown state, and a provider error.
    let (status, _) = w
        .callback(&w.ada, &w.app.url("/oauth/callback?state=forged&code=x"))
        .await;
    assert_eq!(status, 400);
    let url = w.consent(&w.ada).await;
    let state = url
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let denied = w.app.url(&format!(
        "/oauth/callback?error=access_denied&error_description=AADSTS65004&state={state}"
    ));
    let (status, page) = w.callback(&w.ada, &denied).await;
    assert_eq!((status, page.contains("declined")), (400, true), "{page}");

    // PKCE: a code issued for one consent, presented with another's state
    // (so with the other's verifier): the provider refuses the exchange.
    let first = w.consent(&w.ada).await;
    let second = w.consent(&w.ada).await;
    let code = first
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let state = second
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let swapped = w
        .app
        .url(&format!("/oauth/callback?code={code}&state={state}"));
    let (status, page) = w.callback(&w.ada, &swapped).await;
    assert_eq!(
        (status, page.contains("could not be exchanged")),
        (400, true),
        "{page}"
    );

    // The provider vouches for another mailbox.
    w.oauth
        .control(json!({"email": "someone.else@elsewhere.example"}))
        .await;
    let url = w.consent(&w.ada).await;
    let (status, page) = w.callback(&w.ada, &url).await;
    assert_eq!(status, 400);
    assert!(page.contains("someone.else@elsewhere.example"), "{page}");

    assert!(untouched(&w.identity().await));
    assert_eq!(w.sealed("refresh_token").await, None);
    assert_eq!(w.sealed("access_token").await, None);
}

#[tokio::test]
async fn refresh_once_for_many_senders_rotate_and_recover_from_revocation() {
    // Tokens from the consent live one minute (inside the five-minute
    // margin); refreshed ones an hour.
    let w = world(
        "oauthrefresh",
        json!({"code_expires_in": 60, "refresh_expires_in": 3600}),
    )
    .await;
    let url = w.consent(&w.ada).await;
    assert_eq!(w.callback(&w.ada, &url).await.0, 200);
    let first_refresh = w.oauth.token_requests()[0]["refresh_token"].clone();

    // Twenty senders at once: one refresh, everyone uses its token.
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let req = w
            .app
            .client
            .post(
                w.app
                    .url(&format!("/api/v1/identities/{}/test", w.identity)),
            )
            .header("cookie", &w.ada.cookie);
        sends.spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap() });
    }
    while let Some(r) = sends.join_next().await {
        let r = r.unwrap();
        assert_eq!(r["ok"], true, "{r:#}");
    }
    let requests = w.oauth.token_requests();
    let refreshes: Vec<&Value> = requests
        .iter()
        .filter(|r| r["grant_type"] == "refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 1, "{requests:#?}");
    let got = w.smtp.received(20).await;
    assert_eq!(got.len(), 20);
    for m in &got {
        assert_eq!(m["user"]["token"], refreshes[0]["access_token"]);
    }
    // The rotated refresh token replaced the first one.
    let stored = w.sealed("refresh_token").await.unwrap();
    assert_eq!(stored, refreshes[0]["refresh_token"].as_str().unwrap());
    assert_ne!(json!(stored), first_refresh);

    // Revoked at the provider: needs_reauth, and Ada is told by mail.
    w.oauth.control(json!({"revoke": true})).await;
    w.expire_access_token().await;
    let r = w.test_send().await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["diagnosis"]["code"], "not_connected", "{r:#}");
    let identity = w.identity().await;
    assert_eq!(identity["status"], "needs_reauth");
    let got = w.smtp.received(21).await;
    let notice = got.last().unwrap();
    assert_eq!(notice["to"], json!([w.ada.email]));
    assert!(
        notice["data"]
            .as_str()
            .unwrap()
            .contains("Action needed: reconnect")
    );

    // Consenting again connects it.
    w.oauth.control(json!({"revoke": false})).await;
    let url = w.consent(&w.ada).await;
    assert_eq!(w.callback(&w.ada, &url).await.0, 200);
    assert_eq!(w.identity().await["status"], "connected");

    // Each step is in the tenant's event log, newest first.
    let herald = w.app.herald();
    let events = herald_store::events::for_identity(
        herald.store().read(),
        w.t.id.parse().unwrap(),
        w.identity.parse().unwrap(),
        50,
    )
    .await
    .unwrap();
    let kinds: Vec<String> = events.iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(
        kinds,
        [
            "identity_connected",
            "reauth_required",
            "token_refreshed",
            "identity_connected"
        ]
    );
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_and_retried_once_before_it_counts() {
    let w = world("oauthreject", json!({})).await;
    let url = w.consent(&w.ada).await;
    assert_eq!(w.callback(&w.ada, &url).await.0, 200);
    // From now on the provider's tokens name another mailbox, so the SMTP
    // server answers XOAUTH2 with a challenge (as Gmail does).
    w.oauth
        .control(json!({"email": "intruder@elsewhere.example"}))
        .await;
    w.expire_access_token().await;
    let r = w.test_send().await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["diagnosis"]["sender_auth"], true, "{r:#}");
    let refreshes = w
        .oauth
        .token_requests()
        .iter()
        .filter(|r| r["grant_type"] == "refresh_token")
        .count();
    assert_eq!(refreshes, 2, "one before sending, one after the rejection");
    assert_eq!(w.identity().await["status"], "failing");
    assert_eq!(w.smtp.received(0).await.len(), 0, "nothing was delivered");
}

#[tokio::test]
async fn oauth_apps_are_admin_settings_with_a_write_only_secret() {
    let w = world("oauthapps", json!({})).await;
    let (status, app) = w
        .app
        .get("/api/v1/oauth-apps/microsoft", &w.t.admin_key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(app["source"], "tenant");
    assert!(!app.to_string().contains("client-secret-123"));
    let (status, _) = w.app.get("/api/v1/oauth-apps/google", &w.t.admin_key).await;
    assert_eq!(status, 404, "no tenant or platform app for Google");
    let (status, _) = w.app.get("/api/v1/oauth-apps/yahoo", &w.t.admin_key).await;
    assert_eq!(status, 404);
    let (status, _) = w
        .app
        .send_as(&w.ada, Method::GET, "/api/v1/oauth-apps/microsoft", None)
        .await;
    assert_eq!(status, 403, "senders do not manage OAuth apps");
    let other = w.app.tenant("oauthappsother").await;
    let (status, _) = w
        .app
        .get("/api/v1/oauth-apps/microsoft", &other.admin_key)
        .await;
    assert_eq!(status, 404, "another tenant's app is invisible");

    for (body, field) in [
        (
            json!({"client_id": "c", "redirect_uri": "https://herald.example/elsewhere"}),
            "redirect_uri",
        ),
        (
            json!({"client_id": "c", "redirect_uri": "https://herald.example/oauth/callback", "authority": "../x"}),
            "authority",
        ),
        (
            json!({"client_id": "c\r\n", "redirect_uri": "https://herald.example/oauth/callback"}),
            "client_id",
        ),
        (
            json!({"client_id": "c", "redirect_uri": "https://herald.example/oauth/callback", "token_url": "ftp://x"}),
            "token_url",
        ),
    ] {
        let (status, err) = w
            .app
            .send(
                Method::PUT,
                "/api/v1/oauth-apps/microsoft",
                &w.t.admin_key,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }

    // The portal's button goes to the provider.
    let res = w
        .app
        .client
        .post(w.app.url(&format!("/identities/{}/oauth", w.identity)))
        .header("cookie", &w.ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&w.oauth.issuer)
    );

    // An API key cannot give consent for a person.
    let (status, _) = w
        .app
        .send(
            Method::POST,
            &format!("/api/v1/identities/{}/oauth/start", w.identity),
            &w.t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_platform_app_from_the_configuration_serves_tenants_without_their_own() {
    let app = TestApp::spawn_with(&[
        ("HERALD_PUBLIC_URL", "https://herald.example/"),
        ("HERALD_OAUTH__GOOGLE__CLIENT_ID", "platform-google-client"),
        (
            "HERALD_OAUTH__GOOGLE__CLIENT_SECRET",
            "platform-google-secret",
        ),
    ])
    .await;
    let t = app.tenant("oauthplatform").await;
    let (status, got) = app.get("/api/v1/oauth-apps/google", &t.admin_key).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["source"], "platform");
    assert_eq!(got["client_id"], "platform-google-client");
    assert_eq!(got["redirect_uri"], "https://herald.example/oauth/callback");
    assert_eq!(got["client_secret_set"], true);
    assert!(!got.to_string().contains("platform-google-secret"));

    // A Google consent starts with offline access and forced consent.
    let ada = app.user(&t, "ada", "sender").await;
    let (_, identity) = app
        .send_as(
            &ada,
            Method::POST,
            "/api/v1/identities",
            Some(json!({"address": ada.email, "auth": {"method": "oauth", "provider": "google"}})),
        )
        .await;
    let (status, start) = app
        .send_as(
            &ada,
            Method::POST,
            &format!(
                "/api/v1/identities/{}/oauth/start",
                identity["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{start}");
    let url = start["authorize_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"),
        "{url}"
    );
    for part in [
        "access_type=offline",
        "prompt=consent",
        "client_id=platform-google-client",
        "redirect_uri=https%3A%2F%2Fherald.example%2Foauth%2Fcallback",
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }
}

/// Queued mail sent as an OAuth identity goes out over XOAUTH2 with the
/// issued token; when the grant is revoked the worker holds it (not
/// failed, not suppressed) and the owner is told; consenting again
/// releases it and it is delivered.
#[tokio::test]
async fn queued_mail_is_held_while_the_grant_is_revoked_and_released_by_consent() {
    let w = world(
        "oauthqueue",
        json!({"code_expires_in": 3600, "refresh_expires_in": 3600}),
    )
    .await;
    let url = w.consent(&w.ada).await;
    assert_eq!(w.callback(&w.ada, &url).await.0, 200);
    let w = &w;
    let send = |subject: &'static str| {
        let body = json!({"to": "parent@home.example", "subject": subject, "text": "x",
                          "identity_id": w.identity});
        async move {
            let (status, r) = w
                .app
                .send_as(&w.ada, Method::POST, "/api/v1/messages", Some(body))
                .await;
            assert_eq!(status, 202, "{r}");
            r["id"].as_str().unwrap().to_owned()
        }
    };
    let first = send("Report card").await;
    let got = w.smtp.received(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let issued = w.oauth.token_requests()[0]["access_token"].clone();
    assert_eq!(got[0]["user"]["token"], issued);
    assert_eq!(got[0]["from"], json!(w.ada.email));
    let status_of = |id: String| async move {
        for _ in 0..200 {
            let (_, m) = w
                .app
                .get(&format!("/api/v1/messages/{id}"), &w.t.admin_key)
                .await;
            if m["status"] != "queued" {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("message {id} stayed queued");
    };
    assert_eq!(status_of(first).await["status"], "sent");

    // Revoked and expired: the refresh fails, the mail is held, Ada is told.
    w.oauth.control(json!({"revoke": true})).await;
    w.expire_access_token().await;
    let second = send("Invoice").await;
    let m = status_of(second.clone()).await;
    assert_eq!(m["status"], "held", "{m:#}");
    assert_eq!(m["recipients"][0]["status"], "held");
    assert_eq!(w.identity().await["status"], "needs_reauth");
    let got = w.smtp.received(2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["to"], json!([w.ada.email]), "the notice to Ada");

    // Consent again: the held message is delivered.
    w.oauth.control(json!({"revoke": false})).await;
    let url = w.consent(&w.ada).await;
    assert_eq!(w.callback(&w.ada, &url).await.0, 200);
    let got = w.smtp.received(3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[2]["data"].as_str().unwrap().contains("Invoice"));
    let m = status_of(second).await;
    for _ in 0..100 {
        let (_, now) = w
            .app
            .get(
                &format!("/api/v1/messages/{}", m["id"].as_str().unwrap()),
                &w.t.admin_key,
            )
            .await;
        if now["status"] == "sent" {
            let kinds: Vec<&str> = now["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["accepted", "failed", "delivered"], "{now:#}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the released message was not sent");
}

/// In the queue too, a token the SMTP server rejects is refreshed once and
/// tried again before the identity counts as failing; its mail is then held
/// and a successful test send releases it.
#[tokio::test]
async fn the_worker_refreshes_a_rejected_token_once_then_holds_the_mail() {
    let w = world("oauthqueuereject", json!({})).await;
    let url = w.consent(&w.ada).await;
    assert_eq!(w.callback(&w.ada, &url).await.0, 200);
    w.oauth
        .control(json!({"email": "intruder@elsewhere.example"}))
        .await;
    w.expire_access_token().await;
    let (status, r) = w
        .app
        .send_as(
            &w.ada,
            Method::POST,
            "/api/v1/messages",
            Some(
                json!({"to": "parent@home.example", "subject": "Grades", "text": "x",
                        "identity_id": w.identity}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    let path = format!("/api/v1/messages/{}", r["id"].as_str().unwrap());
    let mut held = Value::Null;
    for _ in 0..200 {
        let (_, m) = w.app.get(&path, &w.t.admin_key).await;
        if m["status"] == "held" {
            held = m;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(held["status"], "held", "the message was not held");
    let refreshes = w
        .oauth
        .token_requests()
        .iter()
        .filter(|r| r["grant_type"] == "refresh_token")
        .count();
    assert_eq!(refreshes, 2, "one before sending, one after the rejection");
    assert_eq!(w.identity().await["status"], "failing");
    assert_eq!(w.smtp.received(0).await.len(), 0);

    // The provider vouches for Ada again; a test send passes and releases
    // the held message.
    w.oauth.control(json!({"email": w.ada.email})).await;
    w.expire_access_token().await;
    let t = w.test_send().await;
    assert_eq!(t["ok"], true, "{t:#}");
    let got = w.smtp.received(2).await;
    assert_eq!(
        got.len(),
        2,
        "the test message and the released one: {got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m["data"].as_str().unwrap().contains("Grades"))
    );
}

/// A bounce mailbox that signs in as the identity: Dovecot checks the
/// XOAUTH2 bearer token with the provider's introspection endpoint, and
/// Herald reads the mailbox with the token the consent produced.
#[tokio::test]
async fn a_bounce_mailbox_signs_in_as_an_identity_over_xoauth2() {
    use herald_tests::peers::{Dovecot, TestCerts};
    let w = world("imapoauth", json!({})).await;
    let certs = TestCerts::new();
    let mailbox = Dovecot::with_oauth(&certs, &w.oauth.introspection_url).await;
    let mut profile = smtp_profile(&w.t, "Bounces", w.smtp.port, json!({}));
    profile["bounce_mailbox"] = json!({"protocol": "imap", "host": "127.0.0.1",
        "port": mailbox.imap_port, "tls": false, "username": w.ada.email,
        "auth": {"mode": "identity", "identity_id": w.identity}});
    let p = w.app.create_profile(&w.t, profile).await;
    let poll = |key: String| {
        let app = &w.app;
        let p = p.clone();
        async move {
            app.send(
                Method::POST,
                &format!("/api/v1/relay-profiles/{p}/bounce-mailbox/poll"),
                &key,
                None,
            )
            .await
        }
    };

    // Before consent there is no token to sign in with.
    let (status, got) = poll(w.t.admin_key.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(got["ok"], false, "{got}");

    let callback = w.consent(&w.ada).await;
    let (status, page) = w.callback(&w.ada, &callback).await;
    assert_eq!(status, 200, "{page}");
    let (_, got) = poll(w.t.admin_key.clone()).await;
    assert_eq!(
        (got["ok"].as_bool(), got["fetched"].as_u64()),
        (Some(true), Some(0)),
        "{got}\n{}\n{:?}",
        mailbox.log(),
        w.oauth.log()
    );
    let checks: Vec<bool> = w
        .oauth
        .log()
        .iter()
        .filter_map(|l| l["introspect"].as_bool())
        .collect();
    assert_eq!(checks, vec![true], "Dovecot checked the issued token once");

    // Revoked at the provider: the mailbox refuses the token.
    w.oauth.control(json!({"revoke": true})).await;
    let (_, got) = poll(w.t.admin_key.clone()).await;
    assert_eq!(got["ok"], false, "{got}");
    assert!(
        got["error"].as_str().unwrap().starts_with("login:"),
        "{got}"
    );
}
