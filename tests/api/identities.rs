//! Sender identities over HTTP: ownership, sharing, the preferred flag,
//! write-only passwords, validation and isolation.

use herald_tests::{TestApp, TestTenant};
use reqwest::Method;
use serde_json::{Value, json};

async fn password_is_set(app: &TestApp, t: &TestTenant, identity: &str) -> bool {
    let herald = app.herald();
    herald_store::secrets::is_set(
        herald.store().read(),
        herald_store::secrets::Slot {
            tenant: t.id.parse().unwrap(),
            table: "sender_identity",
            row: identity,
            field: "password",
        },
    )
    .await
    .unwrap()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn senders_manage_their_own_identities_only() {
    let app = TestApp::spawn().await;
    let t = app.tenant("idown").await;
    let ada = app.user(&t, "ada", "sender").await;
    let bob = app.user(&t, "bob", "sender").await;

    let (status, mine) = app
        .send_as(
            &ada,
            Method::POST,
            "/api/v1/identities",
            Some(
                json!({"address": ada.email, "display_name": "Ada Lovelace", "preferred": true,
                        "auth": {"method": "password", "password": "ada-mailbox-pw"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(mine["owner_user_id"], ada.id.as_str());
    assert_eq!(mine["status"], "unverified");
    assert_eq!(mine["password_set"], true);
    assert!(!mine.to_string().contains("ada-mailbox-pw"));
    let id = id_of(&mine);
    assert!(password_is_set(&app, &t, &id).await);
    assert!(!app.db.dump().await.contains("ada-mailbox-pw"));

    // Bob neither sees nor changes Ada's identity.
    let path = format!("/api/v1/identities/{id}");
    let (status, _) = app.send_as(&bob, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send_as(
            &bob,
            Method::PATCH,
            &path,
            Some(json!({"display_name": "Bob"})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, list) = app
        .send_as(&bob, Method::GET, "/api/v1/identities", None)
        .await;
    assert_eq!(list["items"], json!([]));
    // A sender cannot create for someone else, nor a shared identity.
    for owner in [json!(ada.id), Value::Null] {
        let (status, _) = app
            .send_as(
                &bob,
                Method::POST,
                "/api/v1/identities",
                Some(
                    json!({"address": format!("x@{}", t.domain), "owner_user_id": owner,
                            "auth": {"method": "oauth", "provider": "google"}}),
                ),
            )
            .await;
        assert_eq!(status, 403);
    }
    // Nor hand their own to another user.
    let (status, _) = app
        .send_as(
            &ada,
            Method::PATCH,
            &path,
            Some(json!({"owner_user_id": bob.id})),
        )
        .await;
    assert_eq!(status, 403);

    // A second preferred identity takes the flag from the first.
    let (status, second) = app
        .send_as(
            &ada,
            Method::POST,
            "/api/v1/identities",
            Some(
                json!({"address": format!("ada.lovelace@{}", t.domain), "preferred": true,
                        "auth": {"method": "oauth", "provider": "microsoft"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["auth"]["provider"], "microsoft");
    let (_, first) = app.send_as(&ada, Method::GET, &path, None).await;
    assert_eq!(first["preferred"], false);

    // Switching to OAuth wipes the password.
    let (status, switched) = app
        .send_as(
            &ada,
            Method::PATCH,
            &path,
            Some(json!({"auth": {"method": "oauth", "provider": "google"}})),
        )
        .await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["password_set"], false);
    assert!(!password_is_set(&app, &t, &id).await);

    // Deleting wipes what is left; admins see everything until then.
    let (_, all) = app.get("/api/v1/identities", &t.admin_key).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (status, _) = app.send_as(&ada, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&path, &t.admin_key).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn shared_department_addresses_serve_the_named_users() {
    let app = TestApp::spawn().await;
    let t = app.tenant("idshared").await;
    let clerk = app.user(&t, "clerk", "sender").await;
    let other = app.user(&t, "other", "sender").await;
    let (status, shared) = app
        .send(
            Method::POST,
            "/api/v1/identities",
            &t.admin_key,
            Some(json!({"address": format!("billing@{}", t.domain), "display_name": "Billing",
                        "owner_user_id": null, "shared_with": [clerk.id],
                        "auth": {"method": "password", "username": "billing-relay", "password": "pw"}})),
        )
        .await;
    assert_eq!(status, 201, "{shared}");
    assert_eq!(shared["owner_user_id"], Value::Null);
    assert_eq!(shared["auth"]["username"], "billing-relay");
    let path = format!("/api/v1/identities/{}", id_of(&shared));
    let (status, _) = app.send_as(&clerk, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let (status, _) = app.send_as(&other, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    // Named users may send as it, not change it.
    let (status, _) = app
        .send_as(
            &clerk,
            Method::PATCH,
            &path,
            Some(json!({"display_name": "Mine"})),
        )
        .await;
    assert_eq!(status, 403);
    // A shared identity cannot be anyone's preferred one.
    let (status, err) = app
        .send(
            Method::PATCH,
            &path,
            &t.admin_key,
            Some(json!({"preferred": true})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("preferred"))
    );
    // When a named user leaves, the link goes; the identity stays.
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{}", clerk.id),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, after) = app.get(&path, &t.admin_key).await;
    assert_eq!(after["shared_with"], json!([]));
}

#[tokio::test]
async fn hostile_or_foreign_input_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let t = app.tenant("idbad").await;
    let other = app.tenant("idbadother").await;
    let (_, other_users) = app.get("/api/v1/users", &other.admin_key).await;
    let foreign_user = other_users["items"][0]["id"].clone();
    let (_, other_profiles) = app.get("/api/v1/relay-profiles", &other.admin_key).await;
    let foreign_profile = other_profiles["items"][0]["id"].clone();
    let base = json!({"address": format!("teacher@{}", t.domain), "owner_user_id": null,
                      "auth": {"method": "password", "password": "pw"}});
    let cases = [
        (
            json!({"address": "teacher@school.example\r\nBcc: x@evil.example"}),
            "address",
        ),
        (json!({"address": "not-an-address"}), "address"),
        (
            json!({"display_name": "Teacher\nBcc: x@evil.example"}),
            "display_name",
        ),
        (json!({"owner_user_id": foreign_user}), "owner_user_id"),
        (json!({"profile_id": foreign_profile}), "profile_id"),
        (
            json!({"auth": {"method": "oauth", "provider": "yahoo"}}),
            "auth",
        ),
        (
            json!({"auth": {"method": "password", "password": "a\r\nb"}}),
            "auth.password",
        ),
        (json!({"shared_with": ["not-a-uuid"]}), "shared_with[0]"),
    ];
    for (patch, field) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, err) = app
            .send(Method::POST, "/api/v1/identities", &t.admin_key, Some(body))
            .await;
        assert_eq!(status, 422, "{patch}: {err}");
        assert!(
            err["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{patch}: {err}"
        );
    }
    let (_, list) = app.get("/api/v1/identities", &t.admin_key).await;
    assert_eq!(list["items"], json!([]), "nothing was stored");

    // The same address twice is a conflict; another tenant's identity is 404.
    let (status, created) = app
        .send(
            Method::POST,
            "/api/v1/identities",
            &t.admin_key,
            Some(base.clone()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mut upper = base.clone();
    upper["address"] = json!(format!("TEACHER@{}", t.domain));
    let (status, err) = app
        .send(
            Method::POST,
            "/api/v1/identities",
            &t.admin_key,
            Some(upper),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (409, Some("address"))
    );
    let path = format!("/api/v1/identities/{}", id_of(&created));
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = app.send(method, &path, &other.admin_key, None).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn a_departing_user_takes_their_identities_and_secrets_along() {
    let app = TestApp::spawn().await;
    let t = app.tenant("idleave").await;
    let ada = app.user(&t, "ada", "sender").await;
    let (_, mine) = app
        .send_as(
            &ada,
            Method::POST,
            "/api/v1/identities",
            Some(
                json!({"address": ada.email, "auth": {"method": "password", "password": "pw-ada"}}),
            ),
        )
        .await;
    let id = id_of(&mine);
    assert!(password_is_set(&app, &t, &id).await);
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{}", ada.id),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .get(&format!("/api/v1/identities/{id}"), &t.admin_key)
        .await;
    assert_eq!(status, 404);
    assert!(!password_is_set(&app, &t, &id).await);
}
