//! Portal sign-in with a session cookie, sign-out, expiry of the one-time password.

use herald_tests::TestApp;

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

    let res = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tenant", "portal"),
            ("email", t.owner_email.as_str()),
            ("password", "wrong password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tenant", "nope"),
            ("email", t.owner_email.as_str()),
            ("password", t.owner_password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "unknown tenant answers like a wrong password"
    );

    let res = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tenant", "portal"),
            ("email", t.owner_email.as_str()),
            ("password", t.owner_password.as_str()),
        ])
        .send()
        .await
        .unwrap();
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
    let old = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tenant", "portal"),
            ("email", t.owner_email.as_str()),
            ("password", t.owner_password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let new = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tenant", "portal"),
            ("email", "OWNER@portal.example"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 303);
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let app = TestApp::spawn_with(&[("HERALD_PUBLIC_URL", "https://herald.example")]).await;
    let t = app.tenant("secure").await;
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("tenant", "secure"),
            ("email", t.owner_email.as_str()),
            ("password", t.owner_password.as_str()),
        ])
        .send()
        .await
        .unwrap();
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
