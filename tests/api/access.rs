//! Tenant isolation, roles, and authentication failures.

use herald_tests::TestApp;
use reqwest::Method;
use serde_json::json;

async fn first_user_id(app: &TestApp, key: &str) -> String {
    let (status, body) = app.get("/api/v1/users", key).await;
    assert_eq!(status, 200, "{body}");
    body["items"][0]["id"].as_str().unwrap().to_owned()
}

async fn first_key_id(app: &TestApp, key: &str) -> String {
    let (status, body) = app.get("/api/v1/api-keys", key).await;
    assert_eq!(status, 200, "{body}");
    body["items"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn another_tenants_resources_are_404_for_reads_and_writes() {
    let app = TestApp::spawn().await;
    let a = app.tenant("tenant-a").await;
    let b = app.tenant("tenant-b").await;
    let b_user = first_user_id(&app, &b.admin_key).await;
    let b_key = first_key_id(&app, &b.admin_key).await;

    let attempts = [
        (Method::GET, format!("/api/v1/users/{b_user}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{b_user}"),
            Some(json!({"display_name": "Mallory"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{b_user}"), None),
        (
            Method::POST,
            format!("/api/v1/users/{b_user}/password-reset"),
            None,
        ),
        (Method::GET, format!("/api/v1/api-keys/{b_key}"), None),
        (Method::DELETE, format!("/api/v1/api-keys/{b_key}"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = app.send(method.clone(), &path, &a.admin_key, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found");
    }
    // Mailgun's view of another tenant's domain is 404 too.
    let res = app
        .client
        .get(app.url(&format!("/v3/domains/{}", b.domain)))
        .basic_auth("api", Some(&a.admin_key))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // A sees only itself, and B lost nothing.
    let (_, tenant) = app.get("/api/v1/tenant", &a.admin_key).await;
    assert_eq!(tenant["slug"], "tenant-a");
    let (status, user) = app
        .get(&format!("/api/v1/users/{b_user}"), &b.admin_key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["display_name"], serde_json::Value::Null);
    let (status, _) = app
        .get(&format!("/api/v1/api-keys/{b_key}"), &b.admin_key)
        .await;
    assert_eq!(status, 200);
    let (_, audit_a) = app.get("/api/v1/audit", &a.admin_key).await;
    let a_entities: Vec<&str> = audit_a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap())
        .collect();
    assert!(
        !a_entities.contains(&b_user.as_str()),
        "tenant A's audit shows tenant B's user"
    );
}

#[tokio::test]
async fn viewer_gets_403_on_every_change_and_sender_cannot_manage_users_or_keys() {
    let app = TestApp::spawn().await;
    let t = app.tenant("roles").await;
    let viewer = app.key(&t, "viewer").await;
    let sender = app.key(&t, "sender").await;
    let user_id = first_user_id(&app, &t.admin_key).await;
    let key_id = first_key_id(&app, &t.admin_key).await;

    let changes = [
        (
            Method::PATCH,
            "/api/v1/tenant".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(json!({"email": "x@roles.example", "role": "viewer"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{user_id}"),
            Some(json!({"display_name": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{user_id}"), None),
        (
            Method::POST,
            format!("/api/v1/users/{user_id}/password-reset"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/api-keys".to_owned(),
            Some(json!({"name": "x", "role": "viewer"})),
        ),
        (Method::DELETE, format!("/api/v1/api-keys/{key_id}"), None),
    ];
    for key in [&viewer, &sender] {
        for (method, path, body) in &changes {
            let (status, answer) = app.send(method.clone(), path, key, body.clone()).await;
            assert_eq!(status, 403, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "forbidden");
        }
        for path in ["/api/v1/users", "/api/v1/api-keys", "/api/v1/audit"] {
            assert_eq!(app.get(path, key).await.0, 403, "{path}");
        }
        // Both may read their tenant.
        assert_eq!(app.get("/api/v1/tenant", key).await.0, 200);
    }
    // Nothing changed.
    let (_, tenant) = app.get("/api/v1/tenant", &t.admin_key).await;
    assert_eq!(tenant["name"], "roles school");
    assert_eq!(
        app.get(&format!("/api/v1/users/{user_id}"), &t.admin_key)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn keys_cannot_exceed_their_creator_and_admins_cannot_touch_owners() {
    let app = TestApp::spawn().await;
    let t = app.tenant("ceiling").await;
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/api-keys",
            &t.admin_key,
            Some(json!({"name": "x", "role": "owner"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let owner_id = first_user_id(&app, &t.admin_key).await;
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{owner_id}"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{owner_id}"),
            &t.admin_key,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            Method::POST,
            "/api/v1/users",
            &t.admin_key,
            Some(json!({"email": "boss@ceiling.example", "role": "owner"})),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn missing_or_bad_credentials_are_401_without_saying_why() {
    let app = TestApp::spawn().await;
    let t = app.tenant("creds").await;
    let none = app
        .client
        .get(app.url("/api/v1/tenant"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let none_body: serde_json::Value = none.json().await.unwrap();
    for header in [
        "Bearer hrld_nope",
        "Basic YXBpOng=",
        "Bearer ",
        &format!("Token {}", t.admin_key),
    ] {
        let res = app
            .client
            .get(app.url("/api/v1/tenant"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{header}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(
            body, none_body,
            "the answer must not say which part was wrong"
        );
    }
    // /v3 wants Basic api:KEY; a Bearer key or a wrong user is 401 in Mailgun's shape.
    let ok = app
        .client
        .get(app.url("/v3/domains"))
        .basic_auth("api", Some(&t.admin_key))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["items"][0]["name"], t.domain);
    for req in [
        app.client
            .get(app.url("/v3/domains"))
            .bearer_auth(&t.admin_key),
        app.client
            .get(app.url("/v3/domains"))
            .basic_auth("user", Some(&t.admin_key)),
        app.client
            .get(app.url("/v3/domains"))
            .basic_auth("api", Some("hrld_wrong")),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["message"].is_string());
    }
    // A revoked key stops working at once.
    let key = app.key(&t, "viewer").await;
    assert_eq!(app.get("/api/v1/tenant", &key).await.0, 200);
    let (_, list) = app.get("/api/v1/api-keys?limit=500", &t.admin_key).await;
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.send(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &t.admin_key,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(app.get("/api/v1/tenant", &key).await.0, 401);
}
