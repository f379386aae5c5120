//! Health, request ids, body limits, the OpenAPI document and Swagger UI.

use herald_tests::TestApp;

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.headers()["x-request-id"].is_empty());
    let res = app
        .client
        .get(app.url("/readyz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-request-id"],
        "abc-123",
        "a caller's request id is kept"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn oversize_bodies_get_413_in_the_error_shape() {
    let app = TestApp::spawn_with(&[("HERALD_HTTP__MAX_BODY_BYTES", "4096")]).await;
    let t = app.tenant("limits").await;
    let big = serde_json::json!({"name": "x".repeat(10_000)});
    let res = app
        .client
        .patch(app.url("/api/v1/tenant"))
        .bearer_auth(&t.admin_key)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (_, tenant) = app.get("/api/v1/tenant", &t.admin_key).await;
    assert_eq!(tenant["name"], "limits school", "nothing changed");
}

#[tokio::test]
async fn openapi_document_and_swagger_ui_are_served() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/tenant",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/api-keys",
        "/api/v1/audit",
        "/api/v1/relay-profiles",
        "/api/v1/relay-profiles/{id}",
        "/api/v1/relay-profiles/{id}/test",
        "/api/v1/relay-routing",
        "/api/v1/identities",
        "/api/v1/identities/{id}",
        "/api/v1/identities/{id}/test",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Every schema a path refers to is defined (the profile settings come
    // from the domain types).
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "schema {name} is referenced but not defined"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let ui = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(
        ui.text().await.unwrap().contains("swagger"),
        "Swagger UI is served from the binary"
    );
}
