//! The queue's storage: a message and its recipients stored together, and
//! relay profiles that unsent mail still needs.

use herald_domain::{EmailAddress, MessageId, QueuedMessage, RecipientStatus, Timestamp};
use herald_store::{Connection, messages};
use herald_tests::{TestApp, TestTenant};
use reqwest::Method;
use serde_json::json;

async fn profile(app: &TestApp, t: &TestTenant, name: &str) -> String {
    let (status, p) = app
        .send(
            Method::POST,
            "/api/v1/relay-profiles",
            &t.admin_key,
            Some(json!({"name": name, "transport": "sandbox",
                        "from": {"address": format!("office@{}", t.domain)}})),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

async fn store_message(app: &TestApp, t: &TestTenant, profile: &str, to: &[&str]) -> MessageId {
    store_message_at(app, t, profile, to, Timestamp::now()).await
}

async fn store_message_at(
    app: &TestApp,
    t: &TestTenant,
    profile: &str,
    to: &[&str],
    due: Timestamp,
) -> MessageId {
    let id = MessageId::new();
    let now = Timestamp::now();
    let m = QueuedMessage {
        id,
        tenant_id: t.id.parse().unwrap(),
        profile_id: Some(profile.parse().unwrap()),
        identity_id: None,
        purpose: None,
        mail_from: EmailAddress::parse(&format!("office@{}", t.domain)).unwrap(),
        message_id_header: format!("{id}@{}", t.domain),
        subject: "Report card".into(),
        size: 11,
        test_mode: false,
        deliver_after: due,
        created_at: now,
    };
    let recipients: Vec<(EmailAddress, RecipientStatus)> = to
        .iter()
        .map(|a| (EmailAddress::parse(a).unwrap(), RecipientStatus::Queued))
        .collect();
    let store = app.herald().store();
    let tx = store.begin().await.unwrap();
    messages::insert(
        tx.conn(),
        &m,
        &messages::MessageBody {
            mime: &herald_store::body::pack(b"Subject: x\r\n\r\nhello".to_vec()),
            headers_json: "{}",
            tags_json: "[]",
            user_variables_json: "{}",
        },
        &recipients,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn a_message_and_its_recipients_are_stored_together() {
    let app = TestApp::api_only().await;
    let t = app.tenant("queuestore").await;
    let other = app.tenant("queueother").await;
    let p = profile(&app, &t, "Relay").await;
    let id = store_message(&app, &t, &p, &["a@one.example", "B@Two.example"]).await;
    let db = app.herald().store().read();
    let got = messages::get(db, t.id.parse().unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.subject, "Report card");
    let rcpts = messages::recipients(db, t.id.parse().unwrap(), id)
        .await
        .unwrap();
    assert_eq!(rcpts.len(), 2);
    assert_eq!(rcpts[1].address.as_str(), "B@two.example");
    assert!(
        rcpts
            .iter()
            .all(|r| r.status == RecipientStatus::Queued && r.attempts == 0)
    );
    // Another tenant finds nothing.
    assert!(
        messages::get(db, other.id.parse().unwrap(), id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_profile_with_unsent_mail_is_deleted_only_by_moving_it() {
    let app = TestApp::api_only().await;
    let t = app.tenant("queuemove").await;
    let a = profile(&app, &t, "A").await;
    let b = profile(&app, &t, "B").await;
    let unsent = store_message(&app, &t, &a, &["x@one.example"]).await;
    let sent = store_message(&app, &t, &a, &["y@one.example"]).await;
    let store = app.herald().store();
    let tx = store.begin().await.unwrap();
    tx.conn()
        .execute_unprepared(&format!(
            "UPDATE message SET status = 'sent' WHERE id = '{sent}'"
        ))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (status, err) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/relay-profiles/{a}"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 unsent messages"),
        "{err}"
    );
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/relay-profiles/{a}?move_to={b}"),
            &t.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let tenant = t.id.parse().unwrap();
    let moved = messages::get(store.read(), tenant, unsent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.profile_id.map(|p| p.to_string()), Some(b));
    let history = messages::get(store.read(), tenant, sent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        history.profile_id, None,
        "sent mail keeps its history without the profile"
    );
}

#[tokio::test]
async fn claims_take_due_recipients_once_and_expired_leases_again() {
    use herald_store::leases;
    let app = TestApp::api_only().await;
    let t = app.tenant("leases").await;
    let p = profile(&app, &t, "Relay").await;
    let now = Timestamp::now();
    let due = store_message(&app, &t, &p, &["due@home.example"]).await;
    store_message_at(&app, &t, &p, &["later@home.example"], now.plus_secs(3600)).await;
    let store = app.herald().store();
    let claim = |owner: &'static str, at: Timestamp| async move {
        let tx = store.begin().await.unwrap();
        let got = leases::claim(tx.conn(), owner, at, at.plus_secs(60), 100)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        got
    };
    let first = claim("worker-a", now.plus_secs(1)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].message_id, first[0].address.as_str()),
        (due, "due@home.example")
    );
    assert!(
        claim("worker-b", now.plus_secs(2)).await.is_empty(),
        "a live lease is not taken"
    );
    // worker-a dies; its lease expires and worker-b takes over.
    let again = claim("worker-b", now.plus_secs(120)).await;
    assert_eq!(again.len(), 1);
    let finish = |c| leases::Finish {
        claim: c,
        status: RecipientStatus::Delivered,
        next_attempt_at: now,
        last_reply: Some("250 ok"),
    };
    let tx = store.begin().await.unwrap();
    let lost = leases::finish_many(tx.conn(), "worker-a", &[finish(&first[0])])
        .await
        .unwrap();
    assert!(lost.is_empty(), "the old owner's result is refused");
    let won = leases::finish_many(tx.conn(), "worker-b", &[finish(&again[0])])
        .await
        .unwrap();
    assert!(won.contains(&(due, 0)));
    tx.commit().await.unwrap();
    let rcpts = messages::recipients(store.read(), t.id.parse().unwrap(), due)
        .await
        .unwrap();
    assert_eq!(
        (rcpts[0].status, rcpts[0].attempts),
        (RecipientStatus::Delivered, 1)
    );
    assert_eq!(rcpts[0].last_reply.as_deref(), Some("250 ok"));
    // The future one becomes due in its time; release gives it back.
    let later = claim("worker-c", now.plus_secs(3601)).await;
    assert_eq!(later.len(), 1);
    let tx = store.begin().await.unwrap();
    assert_eq!(leases::release_all(tx.conn(), "worker-c").await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(claim("worker-d", now.plus_secs(3602)).await.len(), 1);
}

#[tokio::test]
async fn concurrent_claims_never_share_a_recipient() {
    use herald_store::leases;
    let app = TestApp::api_only().await;
    let t = app.tenant("leaserace").await;
    let p = profile(&app, &t, "Relay").await;
    let to: Vec<String> = (0..40).map(|i| format!("r{i}@home.example")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    store_message(&app, &t, &p, &to).await;
    let at = Timestamp::now().plus_secs(1);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = app.herald().store().clone();
        set.spawn(async move {
            let owner = format!("worker-{w}");
            let tx = store.begin().await.unwrap();
            let got = leases::claim(tx.conn(), &owner, at, at.plus_secs(60), 15)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            got.into_iter().map(|c| c.index).collect::<Vec<_>>()
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no recipient claimed twice");
    assert_eq!(total, 40, "four claims of up to 15 take all 40");
}
