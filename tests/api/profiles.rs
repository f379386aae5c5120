//! Relay profiles over HTTP: settings, validation, write-only secrets,
//! audit, routing, deletion rules, isolation.

use herald_tests::{TestApp, TestTenant};
use reqwest::Method;
use serde_json::{Value, json};

pub fn smtp_profile(t: &TestTenant, name: &str) -> Value {
    json!({
        "name": name,
        "transport": {"smtp": {
            "host": "smtp.office365.com", "security": "starttls_required",
            "timeout_seconds": 120,
            "auth": {"mode": "password", "username": format!("relay@{}", t.domain)}
        }},
        "from": {"address": format!("office@{}", t.domain), "name": "District Office"},
        "purposes": [{"name": "Gradebook", "from": {"address": format!("grades@{}", t.domain)}}],
        "policy": {"reply_to_user": true, "display_name": "custom_allowed"},
        "attachments": {"allowed": true, "max_size_mb": 10},
        "delivery": {"throttle_per_second": 20, "batch_size": 50, "batch_pause_seconds": 5},
        "secrets": {"password": "relay-password-123"}
    })
}

pub async fn create(app: &TestApp, t: &TestTenant, body: Value) -> Value {
    let (status, created) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn a_profile_round_trips_with_its_secret_write_only_and_audited() {
    let app = TestApp::spawn().await;
    let t = app.tenant("profiles").await;
    let p = create(&app, &t, smtp_profile(&t, "District Office 365")).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["transport"]["smtp"]["host"], "smtp.office365.com");
    assert_eq!(
        p["transport"]["smtp"]["port"],
        Value::Null,
        "blank: the mode's default"
    );
    assert_eq!(p["delivery"]["minutes_between_retries"], 10);
    assert_eq!(p["delivery"]["max_errors_before_cancel"], 10);
    assert_eq!(p["secrets"]["password"], true);
    assert_eq!(p["secrets"]["api_key"], false);
    assert_eq!(p["is_default"], false, "the sandbox stays the default");

    let (status, got) = app
        .get(&format!("/api/v1/relay-profiles/{id}"), &t.admin_key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["purposes"][0]["name"], "Gradebook");
    let (_, list) = app.get("/api/v1/relay-profiles", &t.admin_key).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["District Office 365", "Sandbox"]);
    for body in [&p, &got, &list] {
        assert!(!body.to_string().contains("relay-password-123"));
    }

    // Merge patch: only the port changes; the audit names the field.
    let (status, patched) = app
        .send(
            Method::PATCH,
            &format!("/api/v1/relay-profiles/{id}"),
            &t.admin_key,
            Some(json!({"transport": {"smtp": {"port": 2525}}, "secrets": {"password": "new-password-456"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["transport"]["smtp"]["port"], 2525);
    assert_eq!(
        patched["transport"]["smtp"]["security"],
        "starttls_required"
    );
    let (_, audit) = app.get("/api/v1/audit?limit=1", &t.admin_key).await;
    let entry = &audit["items"][0];
    assert_eq!(entry["entity"], "relay_profile");
    assert_eq!(
        entry["fields"],
        json!(["transport.smtp.port", "secrets.password"])
    );
    assert!(!audit.to_string().contains("new-password-456"));

    // The secret is sealed at rest: no table holds it in clear.
    let herald = app.herald();
    let opened = herald_store::secrets::get(
        herald.store().read(),
        herald.keys(),
        herald_store::secrets::Slot {
            tenant: t.id.parse().unwrap(),
            table: "relay_profile",
            row: id,
            field: "password",
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(opened.expose(), b"new-password-456");
    assert!(!app.db.dump().await.contains("new-password-456"));
}

#[tokio::test]
async fn bad_settings_get_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant("badprofile").await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"transport": {"smtp": {"port": 0}}}),
            "transport.smtp.port",
        ),
        (
            json!({"transport": {"smtp": {"timeout_seconds": 45}}}),
            "transport.smtp.timeout_seconds",
        ),
        (
            json!({"transport": {"smtp": {"host": "smtp.example.com\r\nRCPT TO:<x@y.z>"}}}),
            "transport.smtp.host",
        ),
        (
            json!({"from": {"name": "Office\nBcc: all@evil.example"}}),
            "from.name",
        ),
        (
            json!({"from": {"address": "office@elsewhere.example"}}),
            "from.address",
        ),
        (
            json!({"attachments": {"max_size_mb": 101}}),
            "attachments.max_size_mb",
        ),
        (
            json!({"delivery": {"throttle_per_second": 1000}}),
            "delivery.throttle_per_second",
        ),
        (
            json!({"delivery": {"minutes_between_retries": 0}}),
            "delivery.minutes_between_retries",
        ),
        (json!({"secrets": {"password": null}}), "secrets.password"),
        (
            json!({"secrets": {"api_key": "key-123"}}),
            "secrets.api_key",
        ),
        (
            json!({"secrets": {"password": "a\r\nb"}}),
            "secrets.password",
        ),
        (json!({"bogus": 1}), "bogus"),
        (
            json!({"attachments": {"notify_user_id": "0190b0a4-0000-7000-8000-000000000000"}}),
            "attachments.notify_user_id",
        ),
    ];
    for (patch, field) in cases {
        let mut body = smtp_profile(&t, "Bad");
        merge(&mut body, &patch);
        let (status, err) = app
            .send(
                Method::POST,
                "/api/v1/relay-profiles",
                &t.admin_key,
                Some(body),
            )
            .await;
        assert_eq!(status, 422, "{patch}: {err}");
        assert_eq!(err["error"]["field"], field, "{patch}: {err}");
    }
    // A profile needing a password cannot be created without one.
    let mut body = smtp_profile(&t, "No password");
    body.as_object_mut().unwrap().remove("secrets");
    let (status, err) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(body),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("secrets.password"))
    );
    // Nothing was created by any of these.
    let (_, list) = app.get("/api/v1/relay-profiles", &t.admin_key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    create(&app, &t, smtp_profile(&t, "Twice")).await;
    let (status, err) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(smtp_profile(&t, "TWICE")),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (409, Some("name"))
    );
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[tokio::test]
async fn mailgun_and_sandbox_profiles_and_the_no_reply_warning() {
    let app = TestApp::spawn().await;
    let t = app.tenant("mgprofile").await;
    let p = create(
        &app,
        &t,
        json!({
            "name": "Mailgun EU",
            "transport": {"mailgun": {"domain": format!("mg.{}", t.domain), "region": "eu"}},
            "from": {"address": format!("no-reply@{}", t.domain)},
            "secrets": {"api_key": "key-abcdef"}
        }),
    )
    .await;
    assert_eq!(p["secrets"]["api_key"], true);
    assert_eq!(p["warnings"].as_array().unwrap().len(), 1, "{p}");
    assert!(p["warnings"][0].as_str().unwrap().contains("no-reply"));

    let (_, list) = app.get("/api/v1/relay-profiles", &t.admin_key).await;
    let sandbox = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Sandbox")
        .unwrap();
    assert_eq!(sandbox["transport"], "sandbox");
    assert_eq!(sandbox["is_default"], true);
}

#[tokio::test]
async fn routing_and_deleting_a_profile_in_use() {
    let app = TestApp::spawn().await;
    let t = app.tenant("routing").await;
    let a = create(&app, &t, smtp_profile(&t, "A")).await;
    let b = create(&app, &t, smtp_profile(&t, "B")).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let (status, routing) = app
        .send(
            Method::PUT,
            "/api/v1/relay-routing",
            &t.admin_key,
            Some(json!({"default_profile_id": a, "purposes": [{"purpose": "Gradebook", "profile_id": b}]})),
        )
        .await;
    assert_eq!(status, 200, "{routing}");
    let (_, got) = app
        .get(&format!("/api/v1/relay-profiles/{b}"), &t.admin_key)
        .await;
    assert_eq!(got["routed_purposes"], json!(["Gradebook"]));
    let (status, err) = app
        .send(
            Method::PUT,
            "/api/v1/relay-routing",
            &t.admin_key,
            Some(json!({"default_profile_id": "0190b0a4-0000-7000-8000-000000000000"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("default_profile_id"))
    );

    // An identity on B, and B routes Gradebook: deleting B is refused...
    let (status, identity) = app
        .send(
            Method::POST,
            "/api/v1/identities",
            &t.admin_key,
            Some(
                json!({"address": format!("admissions@{}", t.domain), "owner_user_id": null,
                        "profile_id": b, "auth": {"method": "password", "password": "pw-1"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{identity}");
    let (status, err) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/relay-profiles/{b}"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("move_to")
    );
    // ...unless they move, and not onto itself.
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/relay-profiles/{b}?move_to={b}"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/relay-profiles/{b}?move_to={a}"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let id = identity["id"].as_str().unwrap();
    let (_, moved) = app
        .get(&format!("/api/v1/identities/{id}"), &t.admin_key)
        .await;
    assert_eq!(moved["profile_id"], a);
    let (_, routing) = app.get("/api/v1/relay-routing", &t.admin_key).await;
    assert_eq!(routing["purposes"][0]["profile_id"], a);
    let (status, _) = app
        .get(&format!("/api/v1/relay-profiles/{b}"), &t.admin_key)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn only_admins_and_only_their_tenant() {
    let app = TestApp::spawn().await;
    let t = app.tenant("profileacl").await;
    let other = app.tenant("profileother").await;
    let p = create(&app, &t, smtp_profile(&t, "Mine")).await;
    let id = p["id"].as_str().unwrap();
    let sender = app.key(&t, "sender").await;
    let (status, _) = app.get("/api/v1/relay-profiles", &sender).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &sender,
            Some(smtp_profile(&t, "X")),
        )
        .await;
    assert_eq!(status, 403);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Stolen"}))),
        (Method::DELETE, None),
    ] {
        let (status, _) = app
            .send(
                method.clone(),
                &format!("/api/v1/relay-profiles/{id}"),
                &other.admin_key,
                body,
            )
            .await;
        assert_eq!(status, 404, "{method}");
    }
    let (status, got) = app
        .get(&format!("/api/v1/relay-profiles/{id}"), &t.admin_key)
        .await;
    assert_eq!((status, got["name"].as_str()), (200, Some("Mine")));
}
