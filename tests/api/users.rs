//! Users, keys and the audit trail through /api/v1.

use herald_tests::TestApp;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn user_lifecycle_is_audited_without_secret_values() {
    let app = TestApp::spawn().await;
    let t = app.tenant("lifecycle").await;
    let (status, created) = app
        .send(
            Method::POST,
            "/api/v1/users",
            &t.admin_key,
            Some(json!({"email": "Teacher@Lifecycle.example", "display_name": "Ms Teacher", "role": "sender"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["user"]["id"].as_str().unwrap().to_owned();
    let otp = created["one_time_password"].as_str().unwrap().to_owned();
    assert_eq!(created["user"]["email"], "Teacher@lifecycle.example");
    assert_eq!(created["user"]["must_change_password"], true);

    // The same address in another case is the same user.
    let (status, dup) = app
        .send(
            Method::POST,
            "/api/v1/users",
            &t.admin_key,
            Some(json!({"email": "teacher@lifecycle.example", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(dup["error"]["field"], "email");

    let (status, updated) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            &t.admin_key,
            Some(json!({"role": "viewer", "display_name": null})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["role"], "viewer");
    assert_eq!(updated["display_name"], serde_json::Value::Null);

    let (status, reset) = app
        .send(
            Method::POST,
            &format!("/api/v1/users/{id}/password-reset"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_ne!(reset["one_time_password"], otp);

    assert_eq!(
        app.send(
            Method::DELETE,
            &format!("/api/v1/users/{id}"),
            &t.admin_key,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), &t.admin_key)
            .await
            .0,
        404
    );

    let (status, audit) = app.get("/api/v1/audit", &t.admin_key).await;
    assert_eq!(status, 200);
    let mine: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity_id"] == id.as_str())
        .collect();
    let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["delete", "update", "update", "create"],
        "newest first"
    );
    assert_eq!(mine[2]["fields"], json!(["display_name", "role"]));
    assert_eq!(mine[1]["fields"], json!(["password"]));
    assert_eq!(mine[0]["actor_kind"], "api_key");
    let text = audit.to_string();
    assert!(!text.contains(&otp) && !text.contains(reset["one_time_password"].as_str().unwrap()));
}

#[tokio::test]
async fn audit_pages_by_keyset_newest_first() {
    let app = TestApp::spawn().await;
    let t = app.tenant("paging").await;
    for i in 0..7 {
        let (status, _) = app
            .send(
                Method::PATCH,
                "/api/v1/tenant",
                &t.admin_key,
                Some(json!({"name": format!("Name {i}")})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=3&cursor={c}"),
            None => "/api/v1/audit?limit=3".to_owned(),
        };
        let (status, page) = app.get(&path, &t.admin_key).await;
        assert_eq!(status, 200, "{page}");
        for e in page["items"].as_array().unwrap() {
            seen.push((
                e["at"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // 7 renames + tenant, owner, sandbox profile and key creation.
    assert_eq!(seen.len(), 11);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats, no gaps");
    for bad in [
        "/api/v1/audit?limit=0",
        "/api/v1/audit?limit=501",
        "/api/v1/audit?cursor=garbage",
        "/api/v1/audit?color=red",
    ] {
        let (status, body) = app.get(bad, &t.admin_key).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
}

#[tokio::test]
async fn hostile_input_gets_a_precise_4xx() {
    let app = TestApp::spawn().await;
    let t = app.tenant("hostile").await;
    let cases = [
        (
            json!({"email": "a@hostile.example\r\nBcc: x@evil.example", "role": "viewer"}),
            "email",
        ),
        (
            json!({"email": "not-an-address", "role": "viewer"}),
            "email",
        ),
        (
            json!({"email": "b@hostile.example", "display_name": "Eve\r\nBcc: x", "role": "viewer"}),
            "display_name",
        ),
        (
            json!({"email": "c@hostile.example", "display_name": "Nul\u{0}", "role": "viewer"}),
            "display_name",
        ),
        (
            json!({"email": "d@hostile.example", "role": "root"}),
            "role",
        ),
        (
            json!({"email": "e@hostile.example", "role": "viewer", "is_admin": true}),
            "is_admin",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app
            .send(
                Method::POST,
                "/api/v1/users",
                &t.admin_key,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = app
        .send(
            Method::PATCH,
            "/api/v1/tenant",
            &t.admin_key,
            Some(json!({"domains": ["ok.example", "bad domain"]})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["field"], "domains");
    let (status, _) = app
        .send(
            Method::PATCH,
            "/api/v1/tenant",
            &t.admin_key,
            Some(json!({"domains": []})),
        )
        .await;
    assert_eq!(status, 422);
    // Malformed ids are simply not found.
    assert_eq!(
        app.get("/api/v1/users/../../etc", &t.admin_key).await.0,
        404
    );
    assert_eq!(
        app.get("/api/v1/api-keys/not-a-uuid", &t.admin_key).await.0,
        404
    );
    // Not JSON at all.
    let res = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&t.admin_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    // Nothing was created by any of it.
    let (_, users) = app.get("/api/v1/users", &t.admin_key).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let t = app.tenant("owners").await;
    let owner_key = app.herald().cli_actor("owners").await.unwrap();
    let key = app
        .herald()
        .create_api_key(
            &owner_key,
            herald_app::NewApiKey {
                name: "owner".into(),
                role: "owner".into(),
            },
        )
        .await
        .unwrap();
    let key = key.token.expose().clone();
    let (_, users) = app.get("/api/v1/users", &t.admin_key).await;
    let owner_id = users["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{owner_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{owner_id}"),
            &key,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 409);
    // With a second owner, the first may step down.
    let (status, _) = app
        .send(
            Method::POST,
            "/api/v1/users",
            &key,
            Some(json!({"email": "second@owners.example", "role": "owner"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{owner_id}"),
            &key,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
}
