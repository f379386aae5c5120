//! Portal sign-in with a session cookie, sign-out, expiry of the one-time password.

use herald_tests::TestApp;
use reqwest::Method;

/// Posts the portal's sign-in form.
async fn login(app: &TestApp, tenant: &str, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/login"))
        .form(&[("tenant", tenant), ("email", email), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn session_cookie(res: &reqwest::Response) -> String {
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_use_the_api_with_the_cookie_then_sign_out() {
    let app = TestApp::spawn().await;
    let t = app.tenant("portal").await;

    let res = login(&app, "portal", t.owner_email.as_str(), "wrong password").await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    let res = login(
        &app,
        "nope",
        t.owner_email.as_str(),
        t.owner_password.as_str(),
    )
    .await;
    assert_eq!(
        res.status(),
        401,
        "unknown tenant answers like a wrong password"
    );

    let res = login(
        &app,
        "portal",
        t.owner_email.as_str(),
        t.owner_password.as_str(),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(
        !res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure"),
        "plain HTTP: no Secure"
    );
    let cookie = session_cookie(&res);

    let home = app
        .client
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(
        html.contains(&t.owner_email) && html.contains("Choose your password"),
        "{html}"
    );

    let me: serde_json::Value = app
        .client
        .get(app.url("/api/v1/users/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "owner");
    assert_eq!(me["must_change_password"], true);

    let res = app
        .client
        .post(app.url("/api/v1/users/me/password"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"current_password": t.owner_password, "new_password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    let res = app
        .client
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = app
        .client
        .get(app.url("/api/v1/users/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        401,
        "a signed-out session is dead on the server too"
    );
    let home = app
        .client
        .get(app.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 303);

    // The one-time password no longer works; the new one does.
    let old = login(
        &app,
        "portal",
        t.owner_email.as_str(),
        t.owner_password.as_str(),
    )
    .await;
    assert_eq!(old.status(), 401);
    let new = login(
        &app,
        "portal",
        "OWNER@portal.example",
        "correct horse battery",
    )
    .await;
    assert_eq!(new.status(), 303);
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let app = TestApp::spawn_with(&[("HERALD_PUBLIC_URL", "https://herald.example")]).await;
    let t = app.tenant("secure").await;
    let res = login(
        &app,
        "secure",
        t.owner_email.as_str(),
        t.owner_password.as_str(),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    let app = TestApp::spawn().await;
    let t = app.tenant("expiry").await;
    let session = app
        .herald()
        .login("expiry", &t.owner_email, &t.owner_password.as_str().into())
        .await
        .unwrap();
    let cookie = format!("herald_session={}", session.token.expose());
    assert_eq!(
        app.client
            .get(app.url("/api/v1/tenant"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Age the session past its expiry in the database itself.
    use herald_store::Connection;
    let tx = app.herald().store().begin().await.unwrap();
    tx.conn()
        .execute_unprepared("UPDATE session SET expires_at = 0")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        app.client
            .get(app.url("/api/v1/tenant"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn identities_page_adds_with_a_verified_password_and_sends_a_test() {
    let app = TestApp::spawn().await;
    let t = app.tenant("portalid").await;
    let ada = app.user(&t, "ada", "sender").await;
    let post = |path: &str, form: Vec<(&str, &str)>| {
        app.client
            .post(app.url(path))
            .header("cookie", &ada.cookie)
            .form(&form)
            .send()
    };

    let res = post(
        "/identities",
        vec![
            ("address", ada.email.as_str()),
            ("display_name", "Ada"),
            ("method", "password"),
            ("password", "first-try"),
            ("verify_password", "first-typo"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("do not match"));
    let (_, none) = app
        .send_as(&ada, Method::GET, "/api/v1/identities", None)
        .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "nothing saved");

    let res = post(
        "/identities",
        vec![
            ("address", ada.email.as_str()),
            ("display_name", "Ada <b>L</b>"),
            ("method", "password"),
            ("password", "mailbox-pw"),
            ("verify_password", "mailbox-pw"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    let (_, list) = app
        .send_as(&ada, Method::GET, "/api/v1/identities", None)
        .await;
    let identity = &list["items"][0];
    assert_eq!(identity["password_set"], true);
    let id = identity["id"].as_str().unwrap();

    let page = app
        .client
        .get(app.url("/identities"))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&ada.email) && page.contains("unverified"));
    assert!(
        page.contains("Ada &lt;b&gt;L&lt;/b&gt;"),
        "names are escaped"
    );
    assert!(!page.contains("mailbox-pw"));

    // The tenant's default profile is the sandbox: the test succeeds there.
    let res = post(&format!("/identities/{id}/test"), vec![])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Sent:") && body.contains("sandbox"), "{body}");
    let (_, after) = app
        .send_as(&ada, Method::GET, &format!("/api/v1/identities/{id}"), None)
        .await;
    assert_eq!(after["status"], "connected");

    // A form posted from another site is refused.
    let res = app
        .client
        .post(app.url(&format!("/identities/{id}/test")))
        .header("cookie", &ada.cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
