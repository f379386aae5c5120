//! Migrations, sealed secrets at rest, key rotation and the start-up key check,
//! on the backend scripts/test chose.

use herald_crypto::{KeyRing, SecretString};
use herald_store::secrets::{self, Slot};
use herald_store::{Connection, Store};
use herald_tests::{TestApp, TestDb, config_for, master_key};

async fn table_names(store: &Store) -> Vec<String> {
    use herald_store::Backend;
    let sql = match store.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type IN ('table','index') ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        }
    };
    let rows = store
        .read()
        .query_all_raw(sea_orm_stmt(store, sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect()
}

fn sea_orm_stmt(store: &Store, sql: &str) -> herald_store::Statement {
    herald_store::Statement::from_string(store.read().get_database_backend(), sql)
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    assert!(store.migrate().await.unwrap() >= 1);
    let first = table_names(&store).await;
    assert!(
        first.iter().any(|t| t == "tenant") && first.iter().any(|t| t == "sealed_secret"),
        "{first:?}"
    );
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "a second run applies nothing"
    );
    assert_eq!(table_names(&store).await, first, "and changes nothing");
    // A second process opening the same database migrates nothing either.
    let again = Store::connect(&db.url).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), 0);
}

/// Every table, column and index of Herald's schema, one definition each,
/// sorted.
async fn schema(store: &Store) -> Vec<String> {
    use herald_store::Backend;
    let sql = match store.backend() {
        Backend::Sqlite => {
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') AS def FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT table_name || '.' || column_name || ': ' || data_type || ' ' || is_nullable \
             || ' ' || COALESCE(column_default, '') AS def \
             FROM information_schema.columns WHERE table_schema = 'public' \
             UNION ALL SELECT indexdef AS def FROM pg_indexes WHERE schemaname = 'public'"
        }
    };
    let rows = store
        .read()
        .query_all_raw(sea_orm_stmt(store, sql))
        .await
        .unwrap();
    let mut defs: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "def").unwrap())
        .collect();
    defs.sort();
    defs
}

/// Every migration can be undone, for an operator going back a release:
/// taken down one at a time, newest first, each leaves exactly the schema
/// that was there before it ran (nothing but the migrations' own table at
/// the end), and up again gives the same schema.
#[tokio::test]
async fn each_migration_goes_down_to_the_schema_before_it() {
    use migration::{Migrator, MigratorTrait};
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    let ours = |defs: Vec<String>| -> Vec<String> {
        defs.into_iter()
            .filter(|d| !d.contains("seaql_migrations"))
            .collect()
    };
    let mut levels = vec![ours(schema(&store).await)];
    assert!(levels[0].is_empty(), "{:?}", levels[0]);
    let n = Migrator::migrations().len();
    for _ in 0..n {
        Migrator::up(&conn, Some(1)).await.unwrap();
        levels.push(ours(schema(&store).await));
    }
    assert!(
        levels[n].iter().any(|d| d.contains("message_body")),
        "{:?}",
        levels[n]
    );
    // One known difference: undoing migration 7 (message bodies in a table
    // of their own) gives SQLite's message table its body column back
    // nullable and last, the only way SQLite adds a column.
    let reshaped = |defs: &[String]| -> Vec<String> {
        let mut defs: Vec<String> = defs
            .iter()
            .map(|d| match d.strip_prefix("table message: ") {
                Some(table) if table.contains("\"mime\" blob NOT NULL, ") => {
                    let table = table.replace("\"mime\" blob NOT NULL, ", "").replacen(
                        ", FOREIGN KEY",
                        ", \"mime\" blob NULL, FOREIGN KEY",
                        1,
                    );
                    format!("table message: {table}")
                }
                _ => d.clone(),
            })
            .collect();
        defs.sort();
        defs
    };
    let sqlite = store.backend() == herald_store::Backend::Sqlite;
    for i in (0..n).rev() {
        Migrator::down(&conn, Some(1)).await.unwrap();
        let expected = if sqlite && i < 7 {
            reshaped(&levels[i])
        } else {
            levels[i].clone()
        };
        assert_eq!(
            ours(schema(&store).await),
            expected,
            "after undoing migration {} of {n}",
            i + 1
        );
    }
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(ours(schema(&store).await), levels[n]);
    assert_eq!(store.migrate().await.unwrap(), 0);
    conn.close().await.unwrap();
}

/// The indexes of `tables` (a list of quoted literals), each with its
/// definition in lower case.
async fn index_definitions(
    store: &Store,
    tables: &str,
) -> std::collections::BTreeMap<String, String> {
    use herald_store::Backend;
    let sql = match store.backend() {
        Backend::Sqlite => format!(
            "SELECT name, COALESCE(sql, '') AS def FROM sqlite_master \
             WHERE type = 'index' AND tbl_name IN ({tables})"
        ),
        Backend::Postgres => format!(
            "SELECT indexname AS name, indexdef AS def FROM pg_indexes \
             WHERE tablename IN ({tables})"
        ),
    };
    store
        .read()
        .query_all_raw(sea_orm_stmt(store, &sql))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "name").unwrap(),
                r.try_get::<String>("", "def").unwrap().to_lowercase(),
            )
        })
        .collect()
}

/// Acceptance writes no index entry that no query reads: recipients have no
/// index by address, and the identity index holds only messages sent as an
/// identity (it is read as `identity_id = ?`).
#[tokio::test]
async fn the_queue_indexes_only_what_its_queries_read() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let indexes = index_definitions(&store, "'message', 'recipient'").await;
    assert!(
        !indexes.contains_key("ix_recipient_tenant_address"),
        "{indexes:?}"
    );
    assert!(indexes.contains_key("ix_recipient_due"), "{indexes:?}");
    let identity = &indexes["ix_message_identity"];
    assert!(
        identity.contains("where")
            && identity.contains("identity_id")
            && identity.contains("is not null"),
        "{identity}"
    );
}

/// One message's events (the queue view, the event log's `message-id`
/// filter) are read through an index keyed by message and time, not by
/// walking every event of the tenant.
#[tokio::test]
async fn a_messages_events_have_an_index_of_their_own() {
    use herald_store::Backend;
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let def = index_definitions(&store, "'event'")
        .await
        .remove("ix_event_message")
        .expect("ix_event_message exists");
    let columns = def
        .find("message_id")
        .zip(def.find("ts"))
        .zip(def.rfind("id"));
    assert!(
        matches!(columns, Some(((m, t), i)) if m < t && t < i) && def.contains("is not null"),
        "{def}"
    );
    if store.backend() == Backend::Sqlite {
        // The statement events::for_message sends, as SQLite plans it.
        let plan: Vec<String> = store
            .read()
            .query_all_raw(sea_orm_stmt(
                &store,
                "EXPLAIN QUERY PLAN SELECT * FROM event WHERE tenant_id = 'a' \
                 AND message_id = 'b' ORDER BY ts ASC, id ASC",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect();
        assert!(
            plan.iter().any(|d| d.contains("ix_event_message")),
            "{plan:?}"
        );
    }
}

/// A tenant made through the use case the CLI calls.
async fn new_tenant(herald: &herald_app::Herald, slug: &str) -> herald_domain::TenantId {
    herald
        .create_tenant(herald_app::NewTenant {
            slug: slug.into(),
            name: None,
            domains: vec![format!("mail.{slug}.example")],
            owner_email: format!("o@{slug}.example"),
        })
        .await
        .unwrap()
        .tenant
        .id
}

fn ring(entries: &[&str]) -> KeyRing {
    KeyRing::parse(&SecretString::from(entries.join(","))).unwrap()
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_bound_to_their_row() {
    let app = TestApp::spawn().await;
    let a = app.tenant("seal-a").await;
    let b = app.tenant("seal-b").await;
    let store = app.herald().store();
    let keys = app.herald().keys();
    let (ta, tb) = (a.id.parse().unwrap(), b.id.parse().unwrap());
    let slot_a = Slot {
        tenant: ta,
        table: "relay_profile",
        row: "row-1",
        field: "password",
    };
    let tx = store.begin().await.unwrap();
    secrets::put(tx.conn(), keys, slot_a, b"hunter2-smtp-password")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let opened = secrets::get(store.read(), keys, slot_a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.expose(), b"hunter2-smtp-password");
    assert!(secrets::is_set(store.read(), slot_a).await.unwrap());

    // The raw row holds no clear text.
    let rows = store
        .read()
        .query_all_raw(sea_orm_stmt(store, "SELECT ciphertext FROM sealed_secret"))
        .await
        .unwrap();
    for row in rows {
        let bytes: Vec<u8> = row.try_get("", "ciphertext").unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"hunter2"));
    }

    // Copy the ciphertext to another row and to another tenant: neither opens.
    let copy = |tenant: &str, row: &str| {
        format!(
            "INSERT INTO sealed_secret (tenant_id, owner_table, owner_id, field, key_id, nonce, ciphertext, updated_at) \
             SELECT '{tenant}', owner_table, '{row}', field, key_id, nonce, ciphertext, updated_at FROM sealed_secret \
             WHERE owner_id = 'row-1'"
        )
    };
    let tx = store.begin().await.unwrap();
    tx.conn()
        .execute_unprepared(&copy(&a.id, "row-2"))
        .await
        .unwrap();
    tx.conn()
        .execute_unprepared(&copy(&b.id, "row-1"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let other_row = Slot {
        row: "row-2",
        ..slot_a
    };
    let other_tenant = Slot {
        tenant: tb,
        ..slot_a
    };
    assert!(secrets::get(store.read(), keys, other_row).await.is_err());
    assert!(
        secrets::get(store.read(), keys, other_tenant)
            .await
            .is_err()
    );

    // Tampering fails too: one bit of the stored ciphertext is flipped (a
    // constant overwrite would leave the row intact whenever the byte already
    // held that value).
    let row = store
        .read()
        .query_one_raw(sea_orm_stmt(
            store,
            &format!(
                "SELECT ciphertext FROM sealed_secret WHERE owner_id = 'row-1' AND tenant_id = '{}'",
                a.id
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let mut bytes: Vec<u8> = row.try_get("", "ciphertext").unwrap();
    bytes[0] ^= 0x01;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let literal = match store.backend() {
        herald_store::Backend::Sqlite => format!("X'{hex}'"),
        herald_store::Backend::Postgres => format!("'\\x{hex}'::bytea"),
    };
    let tx = store.begin().await.unwrap();
    tx.conn()
        .execute_unprepared(&format!(
            "UPDATE sealed_secret SET ciphertext = {literal} WHERE owner_id = 'row-1' AND tenant_id = '{}'",
            a.id
        ))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(secrets::get(store.read(), keys, slot_a).await.is_err());
}

#[tokio::test]
async fn rotation_reseals_everything_and_the_old_key_can_go() {
    let db = TestDb::new().await;
    let old = master_key("old");
    let new = master_key("new");
    let config = config_for(&db, &[("HERALD_MASTER_KEYS", &old)]);
    let herald = herald::open(&config).await.unwrap();
    let tenant_id = new_tenant(&herald, "rotate").await;
    let tenant = tenant_id;
    let rows: Vec<String> = (0..450).map(|i| format!("row-{i}")).collect();
    let tx = herald.store().begin().await.unwrap();
    for row in &rows {
        let slot = Slot {
            tenant,
            table: "sender_identity",
            row,
            field: "refresh_token",
        };
        secrets::put(tx.conn(), herald.keys(), slot, row.as_bytes())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    herald.store().clone().close().await;

    // Newest first: new seals, old still opens.
    let both = config_for(&db, &[("HERALD_MASTER_KEYS", &format!("{new},{old}"))]);
    let herald = herald::open(&both).await.unwrap();
    assert_eq!(herald.rotate_keys().await.unwrap(), 450);
    assert_eq!(
        herald.rotate_keys().await.unwrap(),
        0,
        "re-running finds nothing left"
    );
    herald.store().clone().close().await;

    // Only the new key now.
    let only_new = config_for(&db, &[("HERALD_MASTER_KEYS", &new)]);
    let herald = herald::open(&only_new)
        .await
        .expect("starts without the old key");
    for row in &rows {
        let slot = Slot {
            tenant,
            table: "sender_identity",
            row,
            field: "refresh_token",
        };
        let value = secrets::get(herald.store().read(), herald.keys(), slot)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value.expose(), row.as_bytes());
    }
    assert_eq!(ring(&[&new]).newest().as_str(), "new");
}

#[tokio::test]
async fn refuses_to_start_without_the_key_that_sealed_stored_data() {
    let db = TestDb::new().await;
    // First run: no key configured, so Herald generates data/master.key.
    let config = config_for(&db, &[]);
    let herald = herald::open(&config).await.unwrap();
    let key_file = db.dir.path().join("master.key");
    assert!(key_file.exists());
    let tenant_id = new_tenant(&herald, "lost").await;
    let tx = herald.store().begin().await.unwrap();
    let slot = Slot {
        tenant: tenant_id,
        table: "relay_profile",
        row: "p1",
        field: "password",
    };
    secrets::put(tx.conn(), herald.keys(), slot, b"secret")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    herald.store().clone().close().await;

    // The key file is gone: refuse, name the key, and do not generate a new one.
    let saved = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let err = herald::open(&config)
        .await
        .err()
        .expect("must refuse to start")
        .to_string();
    assert!(err.contains("not generate") && err.contains('k'), "{err}");
    assert!(!key_file.exists(), "no new key generated over sealed data");

    // A different key does not help either.
    let other = config_for(&db, &[("HERALD_MASTER_KEYS", &master_key("other"))]);
    assert!(herald::open(&other).await.is_err());

    // The right key again: starts.
    std::fs::write(&key_file, saved).unwrap();
    herald::open(&config)
        .await
        .expect("starts with its key back");
}

/// On SQLite, commits only append to the WAL: a connection of its own
/// copies them into the database file soon after, well before the writer's
/// fallback checkpoint (8,000 pages) would.
#[tokio::test]
async fn sqlite_commits_reach_the_database_file_in_the_background() {
    if herald_tests::backend() != herald_tests::Backend::Sqlite {
        return;
    }
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let file = db.dir.path().join("herald.db");
    let wal = db.dir.path().join("herald.db-wal");
    // Whatever the migrations left in the WAL is copied first.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = std::fs::metadata(&file).unwrap().len();
    let tx = store.begin().await.unwrap();
    tx.conn()
        .execute_unprepared(
            "CREATE TABLE scratch (b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
             INSERT INTO scratch SELECT randomblob(4000) FROM n",
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 1_900_000,
        "the commit went to the WAL"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let grown = std::fs::metadata(&file).unwrap().len() - before;
        if grown > 1_900_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file grew by only {grown} bytes in 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Readers see the rows, whichever file holds them.
    let row = store
        .read()
        .query_one_raw(sea_orm_stmt(&store, "SELECT count(*) AS n FROM scratch"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 500);
    store.close().await;
}

/// A profile message of `tenant` from `from`, due now.
fn queued_now(
    tenant: herald_domain::TenantId,
    from: &herald_domain::EmailAddress,
    message_id_header: String,
    subject: String,
) -> herald_domain::QueuedMessage {
    let now = herald_domain::Timestamp::now();
    herald_domain::QueuedMessage {
        id: herald_domain::MessageId::new(),
        tenant_id: tenant,
        profile_id: None,
        identity_id: None,
        purpose: None,
        mail_from: from.clone(),
        message_id_header,
        subject,
        size: 20,
        test_mode: false,
        deliver_after: now,
        created_at: now,
    }
}

/// The status the database computes for many messages at once (after a
/// worker records results) is the domain's `MessageStatus::of`, for every
/// mix of up to three recipient statuses.
#[tokio::test]
async fn message_statuses_computed_in_the_database_match_the_domain_rule() {
    use herald_domain::{EmailAddress, MessageStatus, RecipientStatus};
    use herald_store::messages::{self, MessageBody};
    let app = TestApp::spawn_with(&[]).await;
    let herald = app.herald();
    let tenant = new_tenant(herald, "mixes").await;
    let store = herald.store();
    // Every multiset of 1 to 3 statuses (7 + 28 + 84 mixes).
    let all = RecipientStatus::ALL;
    let mut mixes: Vec<Vec<RecipientStatus>> = Vec::new();
    for a in 0..all.len() {
        mixes.push(vec![all[a]]);
        for b in a..all.len() {
            mixes.push(vec![all[a], all[b]]);
            for c in b..all.len() {
                mixes.push(vec![all[a], all[b], all[c]]);
            }
        }
    }
    assert_eq!(mixes.len(), 119);
    let packed = herald_store::body::pack(b"Subject: x\r\n\r\nhello\r\n".to_vec());
    let body = MessageBody {
        mime: &packed,
        headers_json: "{}",
        tags_json: "[]",
        user_variables_json: "{}",
    };
    let from = EmailAddress::parse("office@mail.mixes.example").unwrap();
    let mut ids = Vec::new();
    let tx = store.begin().await.unwrap();
    for (n, mix) in mixes.iter().enumerate() {
        let m = queued_now(
            tenant,
            &from,
            format!("mix-{n}@mail.mixes.example"),
            "mix".into(),
        );
        let to: Vec<(EmailAddress, RecipientStatus)> = (0..mix.len())
            .map(|i| {
                let a = EmailAddress::parse(&format!("r{n}-{i}@example.net")).unwrap();
                (a, RecipientStatus::Queued)
            })
            .collect();
        messages::insert(tx.conn(), &m, &body, &to).await.unwrap();
        // The recipients take the mix; the message's stored status is
        // made wrong on purpose, so only a recomputation can fix it.
        for (i, s) in mix.iter().enumerate() {
            let sql = format!(
                "UPDATE recipient SET status = '{s}' WHERE message_id = '{}' AND idx = {i}",
                m.id
            );
            tx.conn().execute_unprepared(&sql).await.unwrap();
        }
        let wrong = if MessageStatus::of(mix) == MessageStatus::Queued {
            MessageStatus::Sent
        } else {
            MessageStatus::Queued
        };
        let sql = format!(
            "UPDATE message SET status = '{wrong}' WHERE id = '{}'",
            m.id
        );
        tx.conn().execute_unprepared(&sql).await.unwrap();
        ids.push(m.id);
    }
    messages::refresh_statuses(tx.conn(), &ids).await.unwrap();
    tx.commit().await.unwrap();
    for (id, mix) in ids.iter().zip(&mixes) {
        let got = messages::status(store.read(), tenant, *id).await.unwrap();
        assert_eq!(got, Some(MessageStatus::of(mix)), "recipients {mix:?}");
    }
    app.stop().await;
}

/// Messages, bodies, recipients and events of `count` messages (1 to 3
/// recipients each), as a group commit builds them.
struct ScriptBatch {
    queued: Vec<herald_domain::QueuedMessage>,
    packed: Vec<herald_store::body::Packed>,
    recipients: Vec<Vec<(herald_domain::EmailAddress, herald_domain::RecipientStatus)>>,
    events: Vec<herald_domain::Event>,
}

impl ScriptBatch {
    fn new(tenant: herald_domain::TenantId, tag: &str, count: usize) -> Self {
        use herald_domain::{EmailAddress, Event, EventKind, RecipientStatus};
        let from = EmailAddress::parse("office@mail.script.example").unwrap();
        let mut b = ScriptBatch {
            queued: Vec::new(),
            packed: Vec::new(),
            recipients: Vec::new(),
            events: Vec::new(),
        };
        for n in 0..count {
            let m = queued_now(
                tenant,
                &from,
                format!("{tag}-{n}@mail.script.example"),
                format!("{tag} {n}"),
            );
            let to: Vec<(EmailAddress, RecipientStatus)> = (0..1 + n % 3)
                .map(|i| {
                    let a = EmailAddress::parse(&format!("{tag}{n}-r{i}@example.net")).unwrap();
                    (a, RecipientStatus::Queued)
                })
                .collect();
            for (a, _) in &to {
                b.events.push(Event::for_recipient(
                    tenant,
                    m.id,
                    &from,
                    a,
                    EventKind::Accepted,
                ));
            }
            b.packed.push(herald_store::body::pack(
                format!("Subject: {tag} {n}\r\n\r\nbody {n}\r\n").into(),
            ));
            b.queued.push(m);
            b.recipients.push(to);
        }
        b
    }

    /// The statements that write it all, in a group commit's order.
    fn script(&self, backend: sea_orm::DbBackend) -> herald_store::Script {
        let mut script = herald_store::Script::new(backend);
        self.add_to(&mut script);
        script
    }

    fn add_to(&self, script: &mut herald_store::Script) {
        use herald_store::messages::{self, MessageBody};
        let bodies: Vec<MessageBody<'_>> = self
            .packed
            .iter()
            .map(|p| MessageBody {
                mime: p,
                headers_json: "{}",
                tags_json: "[]",
                user_variables_json: "{}",
            })
            .collect();
        let items: Vec<messages::NewMessage<'_>> = self
            .queued
            .iter()
            .zip(&bodies)
            .zip(&self.recipients)
            .map(|((m, b), r)| (m, b, r.as_slice()))
            .collect();
        messages::add_many(script, &items);
        herald_store::events::add_many(script, &self.events);
    }
}

/// A group commit's statements go to the database as one script (on SQLite,
/// one call while it is small, else statement by statement): every row
/// lands with its own values, whatever the number of statements and of
/// parameters before it, and a statement that fails takes the whole
/// transaction back with it.
#[tokio::test]
async fn a_script_of_many_statements_binds_each_row_its_own_values_and_fails_whole() {
    use herald_domain::EventKind;
    use herald_store::{events, messages};
    let app = TestApp::spawn_with(&[]).await;
    let herald = app.herald();
    let tenant = new_tenant(herald, "script").await;
    let store = herald.store();
    let backend = store.read().get_database_backend();
    // 20 messages make one joined script of six statements; 45 make
    // eight statements (32 + 13 messages, recipients and events in two
    // shapes each), past the size at which SQLite still gets them in one
    // call.
    let mut existing = None;
    for (tag, count) in [("small", 20), ("large", 45)] {
        let batch = ScriptBatch::new(tenant, tag, count);
        existing.get_or_insert(batch.queued[0].id);
        let tx = store.begin().await.unwrap();
        batch.script(backend).run(tx.conn()).await.unwrap();
        tx.commit().await.unwrap();
        for (n, (m, to)) in batch.queued.iter().zip(&batch.recipients).enumerate() {
            let got = messages::get(store.read(), tenant, m.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.subject, format!("{tag} {n}"));
            assert_eq!(got.message_id_header, m.message_id_header);
            let mime = messages::mime(store.read(), tenant, m.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                mime,
                format!("Subject: {tag} {n}\r\n\r\nbody {n}\r\n").into_bytes()
            );
            let stored = messages::recipients(store.read(), tenant, m.id)
                .await
                .unwrap();
            let addresses: Vec<_> = stored.iter().map(|r| &r.address).collect();
            let expected: Vec<_> = to.iter().map(|(a, _)| a).collect();
            assert_eq!(addresses, expected, "{tag} message {n}");
            // (The app's worker may already have tried them, and logged more.)
            let logged = events::for_message(store.read(), tenant, m.id)
                .await
                .unwrap();
            let mut logged: Vec<String> = logged
                .iter()
                .filter(|e| e.kind == EventKind::Accepted)
                .map(|e| e.recipient.as_ref().unwrap().to_string())
                .collect();
            logged.sort();
            let expected: Vec<String> = to.iter().map(|(a, _)| a.to_string()).collect();
            assert_eq!(logged, expected, "{tag} message {n}");
        }
    }
    // A new message, then one whose id is taken: the script fails at the
    // second, and nothing of the first stays either.
    let existing = existing.unwrap();
    let fresh = ScriptBatch::new(tenant, "fresh", 1);
    let mut taken = ScriptBatch::new(tenant, "taken", 1);
    taken.queued[0].id = existing;
    let mut script = herald_store::Script::new(backend);
    fresh.add_to(&mut script);
    taken.add_to(&mut script);
    let tx = store.begin().await.unwrap();
    assert!(script.run(tx.conn()).await.is_err());
    drop(tx);
    let id = fresh.queued[0].id;
    assert!(
        messages::get(store.read(), tenant, id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        messages::recipients(store.read(), tenant, id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        events::for_message(store.read(), tenant, id)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

/// SQLite's group commit runs on the writer's handle, borrowed from
/// sqlx's thread: a transaction sees each tenant's own lists, commits, and
/// the same handle runs the next one; a script or a step that fails leaves
/// nothing behind and the handle goes on working, and so does the writer
/// through sqlx once the batch is dropped. PostgreSQL has no batch: its
/// group commit is an ordinary transaction.
#[tokio::test]
async fn the_writer_handle_commits_whole_transactions_or_leaves_nothing() {
    use herald_domain::EmailAddress;
    use herald_store::suppressions::{self, SuppressionKind};
    use herald_store::{Backend, DbBackend, Script, StoreError, messages};
    let app = TestApp::spawn_with(&[]).await;
    let herald = app.herald();
    let tenant = new_tenant(herald, "batch").await;
    let other = new_tenant(herald, "batch-other").await;
    let store = herald.store();
    if store.backend() == Backend::Postgres {
        assert!(store.batch().await.is_none());
        app.stop().await;
        return;
    }
    let is_stored = async |id| {
        messages::get(store.read(), tenant, id)
            .await
            .unwrap()
            .is_some()
    };
    let bounced = EmailAddress::parse("Bounced@Home.example").unwrap();
    let fine = EmailAddress::parse("fine@home.example").unwrap();
    let tx = store.begin().await.unwrap();
    suppressions::add(
        tx.conn(),
        tenant,
        SuppressionKind::Bounce,
        &bounced,
        Some("550"),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The batch holds the writer's one connection until it ends.
    let mut batch = store.batch().await.unwrap().unwrap();
    let mut locked = batch.lock().await.unwrap();
    let wanted = [(tenant, vec![&bounced, &fine]), (other, vec![&bounced])];
    let stored = ScriptBatch::new(tenant, "batched", 3);
    let found = locked
        .transaction(|tx| {
            let found = suppressions::lookup_locked(tx, &wanted)?;
            tx.run(stored.script(DbBackend::Sqlite))?;
            Ok(found)
        })
        .unwrap();
    let kinds = |t, a| -> Vec<SuppressionKind> { found.get(t, a).iter().map(|h| h.kind).collect() };
    assert_eq!(kinds(tenant, &bounced), [SuppressionKind::Bounce]);
    assert!(kinds(tenant, &fine).is_empty());
    assert!(kinds(other, &bounced).is_empty(), "another tenant's list");

    // The same handle runs the next transaction.
    let next = ScriptBatch::new(tenant, "next", 2);
    locked
        .transaction(|tx| tx.run(next.script(DbBackend::Sqlite)))
        .unwrap();
    assert!(!locked.is_open());

    // A message whose id is taken fails the script: the new one before it
    // is not kept either.
    let fresh = ScriptBatch::new(tenant, "fresh", 1);
    let mut taken = ScriptBatch::new(tenant, "taken", 1);
    taken.queued[0].id = stored.queued[0].id;
    let mut script = Script::new(DbBackend::Sqlite);
    fresh.add_to(&mut script);
    taken.add_to(&mut script);
    let failed = locked.transaction(|tx| tx.run(script)).unwrap_err();
    assert!(failed.is_unique_violation(), "{failed}");
    assert!(!locked.is_open(), "rolled back");

    // A step between the statements that fails rolls back what ran.
    let stepped = ScriptBatch::new(tenant, "stepped", 1);
    let failed = locked
        .transaction(|tx| {
            tx.run(stepped.script(DbBackend::Sqlite))?;
            Err::<(), _>(StoreError::Corrupt("a step failed".into()))
        })
        .unwrap_err();
    assert!(matches!(failed, StoreError::Corrupt(_)), "{failed}");
    assert!(!locked.is_open());
    drop(locked);
    drop(batch);
    for m in stored.queued.iter().chain(&next.queued) {
        assert!(is_stored(m.id).await);
    }
    assert!(!is_stored(fresh.queued[0].id).await);
    assert!(!is_stored(stepped.queued[0].id).await);

    // The writer goes on working through sqlx, and a new batch reuses the
    // statements the last one prepared.
    let again = ScriptBatch::new(tenant, "after", 1);
    let tx = store.begin().await.unwrap();
    again
        .script(DbBackend::Sqlite)
        .run(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(is_stored(again.queued[0].id).await);
    let last = ScriptBatch::new(tenant, "last", 3);
    let mut batch = store.batch().await.unwrap().unwrap();
    batch
        .lock()
        .await
        .unwrap()
        .transaction(|tx| tx.run(last.script(DbBackend::Sqlite)))
        .unwrap();
    drop(batch);
    for m in &last.queued {
        assert!(is_stored(m.id).await);
    }
    app.stop().await;
}

/// The statements the writer's batches keep prepared do not keep SQLite
/// from closing the database: after `Store::close` the WAL file is gone,
/// which SQLite does only when the last connection closes.
#[tokio::test]
async fn a_store_closes_completely_after_its_writer_kept_statements() {
    use herald_domain::{EmailAddress, TenantId};
    use herald_store::{Backend, suppressions};
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    if store.backend() == Backend::Postgres {
        store.close().await;
        return;
    }
    let address = EmailAddress::parse("someone@home.example").unwrap();
    let mut batch = store.batch().await.unwrap().unwrap();
    let found = batch
        .lock()
        .await
        .unwrap()
        .transaction(|tx| suppressions::lookup_locked(tx, &[(TenantId::new(), vec![&address])]))
        .unwrap();
    assert!(found.is_empty());
    drop(batch);
    let wal = db.dir.path().join("herald.db-wal");
    assert!(wal.exists());
    store.close().await;
    assert!(!wal.exists(), "a connection stayed open");
}
