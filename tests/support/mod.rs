//! Test support: each test gets its own database (a SQLite file, or a fresh
//! PostgreSQL database on the cluster scripts/test started) and its own
//! Herald listening on a free loopback port, reached over real HTTP.

pub mod peers;

use std::net::SocketAddr;

use herald::{Config, Running};
use herald_store::{Connection, Store};
use serde_json::Value;

/// The backend chosen by scripts/test through HERALD_TEST_BACKEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("HERALD_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("HERALD_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

/// A database of the test's own.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend() {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("herald.db").display()),
            Backend::Postgres => {
                let admin = std::env::var("HERALD_TEST_POSTGRES_URL")
                    .expect("HERALD_TEST_BACKEND=postgres needs HERALD_TEST_POSTGRES_URL (scripts/test sets both)");
                let name = format!("herald_{}", uuid::Uuid::now_v7().simple());
                let store = Store::connect(&admin)
                    .await
                    .expect("connect to the test cluster");
                store
                    .read()
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                store.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                format!("{base}/{name}")
            }
        };
        Self { url, dir }
    }

    /// Every stored byte as text (SQLite: the database and WAL files;
    /// PostgreSQL: every row of every table), to prove a secret is not in it.
    pub async fn dump(&self) -> String {
        match backend() {
            Backend::Sqlite => {
                let mut out = String::new();
                for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
                    if entry.file_name().to_string_lossy().starts_with("herald.db") {
                        let bytes = std::fs::read(entry.path()).unwrap();
                        out.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                out
            }
            Backend::Postgres => {
                use sea_orm::{ConnectionTrait, Statement};
                let store = Store::connect(&self.url).await.unwrap();
                let db = store.read();
                let be = db.get_database_backend();
                let tables = db
                    .query_all_raw(Statement::from_string(
                        be,
                        "SELECT table_name::text AS t FROM information_schema.tables \
                         WHERE table_schema = 'public'",
                    ))
                    .await
                    .unwrap();
                let mut out = String::new();
                for row in tables {
                    let table: String = row.try_get("", "t").unwrap();
                    let sql = format!(
                        "SELECT COALESCE(string_agg(x::text, ' '), '') AS d FROM \"{table}\" x"
                    );
                    let rows = db
                        .query_all_raw(Statement::from_string(be, sql))
                        .await
                        .unwrap();
                    for r in rows {
                        out.push_str(&r.try_get::<String>("", "d").unwrap());
                    }
                }
                store.close().await;
                out
            }
        }
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 20 s) until a `herald serve` at `base` answers /readyz.
pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await
            && res.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("herald serve did not become ready at {base}");
}

/// A fresh random master-key entry.
pub fn master_key(id: &str) -> String {
    herald_crypto::KeyRing::generate_entry(&herald_crypto::KeyId::parse(id).unwrap())
        .expose()
        .clone()
}

pub fn config_for(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("HERALD_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "HERALD_DATA_DIR".to_owned(),
            db.dir.path().display().to_string(),
        ),
        ("HERALD_DATABASE_URL".to_owned(), db.url.clone()),
        ("HERALD_LOG__LEVEL".to_owned(), "warn".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load(None, &env).expect("test configuration")
}

/// A tenant made through the same use case the CLI calls.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub slug: String,
    pub domain: String,
    pub admin_key: String,
    pub owner_email: String,
    pub owner_password: String,
}

/// A signed-in portal user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub cookie: String,
}

/// A relay profile for an SMTP peer at 127.0.0.1:`port` (no TLS, no
/// AUTH, 30 s timeout), with `smtp` merged into its transport.
pub fn smtp_profile(t: &TestTenant, name: &str, port: u16, smtp: Value) -> Value {
    let mut transport = serde_json::json!({
        "host": "127.0.0.1", "port": port, "security": "none", "timeout_seconds": 30,
        "auth": {"mode": "none"}
    });
    for (k, v) in smtp.as_object().unwrap() {
        transport[k] = v.clone();
    }
    serde_json::json!({
        "name": name,
        "transport": {"smtp": transport},
        "from": {"address": format!("office@{}", t.domain), "name": "District Office"},
    })
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub config: Config,
    running: Option<Running>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// An API-only process (`serve --role api`): accepted mail stays in the
    /// queue, for tests of the queue itself.
    pub async fn api_only() -> Self {
        Self::spawn_with(&[("HERALD_ROLE", "api")]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let config = config_for(&db, extra);
        let herald = herald::open(&config).await.expect("open herald");
        let running = herald::start(&config, herald).await.expect("start herald");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            addr: running.addr,
            client,
            db,
            config,
            running: Some(running),
        }
    }

    pub fn herald(&self) -> &herald_app::Herald {
        &self.running.as_ref().unwrap().herald
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Creates a relay profile (POST /api/v1/relay-profiles) and returns
    /// its id.
    pub async fn create_profile(&self, t: &TestTenant, body: Value) -> String {
        let (status, p) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/relay-profiles",
                &t.admin_key,
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        p["id"].as_str().unwrap().to_owned()
    }

    pub async fn tenant(&self, slug: &str) -> TestTenant {
        let domain = format!("mail.{slug}.example");
        let owner_email = format!("owner@{slug}.example");
        let created = self
            .herald()
            .create_tenant(herald_app::NewTenant {
                slug: slug.to_owned(),
                name: Some(format!("{slug} school")),
                domains: vec![domain.clone()],
                owner_email: owner_email.clone(),
            })
            .await
            .expect("create tenant");
        TestTenant {
            id: created.tenant.id.to_string(),
            slug: slug.to_owned(),
            domain,
            admin_key: created.api_key.token.expose().clone(),
            owner_email,
            owner_password: created.owner_password.expose().clone(),
        }
    }

    /// A new key of `role` for `tenant`, made over the API with its admin key.
    pub async fn key(&self, tenant: &TestTenant, role: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/api-keys",
                &tenant.admin_key,
                Some(serde_json::json!({"name": role, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    /// One JSON request with a bearer key: (status, body or Null).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A user of `role` created over the API and signed in: their id and
    /// session cookie.
    pub async fn user(&self, tenant: &TestTenant, local: &str, role: &str) -> TestUser {
        let email = format!("{local}@{}", tenant.domain);
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/users",
                &tenant.admin_key,
                Some(serde_json::json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let password = body["one_time_password"].as_str().unwrap().to_owned();
        let session = self
            .herald()
            .login(&tenant.slug, &email, &password.as_str().into())
            .await
            .expect("sign in");
        TestUser {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            cookie: format!("herald_session={}", session.token.expose()),
        }
    }

    /// One JSON request in a signed-in user's session.
    pub async fn send_as(
        &self,
        user: &TestUser,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("cookie", &user.cookie);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, key, None).await
    }
}
