//! The `herald` binary end to end: create a tenant on the command line, start
//! `herald serve`, and use the printed key over HTTP; refuse to start without
//! the key that sealed stored data; configuration errors name the key.

use std::process::{Child, Command, Output, Stdio};

use herald_store::{Connection, Store};
use herald_tests::{free_port, wait_ready};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// A database of the test's own on the backend scripts/test chose.
async fn database(dir: &std::path::Path) -> String {
    match std::env::var("HERALD_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let admin =
                std::env::var("HERALD_TEST_POSTGRES_URL").expect("HERALD_TEST_POSTGRES_URL");
            let name = format!(
                "herald_cli_{}",
                std::process::id() as u64 * 1000 + rand_suffix()
            );
            let store = Store::connect(&admin).await.unwrap();
            store
                .read()
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            store.close().await;
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
        _ => format!("sqlite://{}", dir.join("herald.db").display()),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 1000
}

fn herald(dir: &std::path::Path, db: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_DATABASE_URL", db)
        .env("HERALD_LOG__LEVEL", "warn")
        .current_dir(dir);
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run herald")
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tenant_created_on_the_command_line_works_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let out = run(herald(
        dir.path(),
        &db,
        &[
            "tenant",
            "create",
            "cli-school",
            "--domain",
            "mail.cli-school.example",
            "--domain",
            "news.cli-school.example",
            "--owner",
            "head@cli-school.example",
            "--json",
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert_eq!(created["owner_password"].as_str().unwrap().len(), 20);

    let out = run(herald(
        dir.path(),
        &db,
        &[
            "apikey",
            "create",
            "--tenant",
            "cli-school",
            "--role",
            "viewer",
            "--json",
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let viewer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let viewer_key = viewer["api_key"].as_str().unwrap().to_owned();

    let port = free_port();
    let child = herald(dir.path(), &db, &["serve"])
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serving = Serving(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    let client = reqwest::Client::new();
    let tenant: serde_json::Value = client
        .get(format!("{base}/api/v1/tenant"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["slug"], "cli-school");
    assert_eq!(
        tenant["domains"],
        serde_json::json!(["mail.cli-school.example", "news.cli-school.example"])
    );
    let res = client
        .get(format!("{base}/api/v1/tenant"))
        .bearer_auth(&viewer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{base}/api/v1/users"))
        .bearer_auth(&viewer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Migrations again: nothing to do.
    let out = run(herald(dir.path(), &db, &["migrate"]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "migrations applied: 0"
    );
}

#[tokio::test]
async fn configuration_errors_stop_start_up_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("herald.db").display());
    let mut cmd = herald(dir.path(), &db, &["config"]);
    cmd.env("HERALD_LISTN", "127.0.0.1:1");
    let out = run(cmd);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listn"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut cmd = herald(dir.path(), &db, &["config"]);
    cmd.env("HERALD_MASTER_KEYS", "k1:c2VjcmV0LWtleS1tYXRlcmlhbA==");
    let out = run(cmd);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("master_keys = \"[redacted]\"") && !printed.contains("c2VjcmV0"),
        "{printed}"
    );
    assert!(
        !printed.contains(&db) || !db.contains('@'),
        "database URL with credentials is redacted"
    );
}

#[tokio::test]
async fn refuses_to_start_when_the_key_file_is_missing_but_sealed_data_exists() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let out = run(herald(
        dir.path(),
        &db,
        &[
            "tenant",
            "create",
            "sealed",
            "--domain",
            "mail.sealed.example",
            "--owner",
            "o@sealed.example",
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_file = dir.path().join("master.key");
    assert!(key_file.exists(), "first run generates the key file");

    // Seal a secret with that key, as a relay profile will.
    let ring = herald_crypto::KeyRing::load_file(&key_file).unwrap();
    let store = Store::connect(&db).await.unwrap();
    let tenant_id = store
        .read()
        .query_one_raw(herald_store::Statement::from_string(
            store.read().get_database_backend(),
            "SELECT id FROM tenant",
        ))
        .await
        .unwrap()
        .unwrap();
    let tenant_id: String = tenant_id.try_get("", "id").unwrap();
    let tx = store.begin().await.unwrap();
    let slot = herald_store::secrets::Slot {
        tenant: tenant_id.parse().unwrap(),
        table: "relay_profile",
        row: "p",
        field: "password",
    };
    herald_store::secrets::put(tx.conn(), &ring, slot, b"pw")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store.close().await;

    std::fs::rename(&key_file, dir.path().join("master.key.bak")).unwrap();
    let port = free_port();
    let mut cmd = herald(dir.path(), &db, &["serve"]);
    cmd.env("HERALD_LISTEN", format!("127.0.0.1:{port}"));
    let out = run(cmd);
    assert!(!out.status.success(), "serve must refuse to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("will not generate a new key"), "{stderr}");
    assert!(!key_file.exists(), "no key was generated over sealed data");
}

#[tokio::test]
async fn serve_on_an_empty_database_says_how_to_create_the_first_tenant() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let port = free_port();
    let mut cmd = herald(dir.path(), &db, &["serve"]);
    cmd.env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut serving = Serving(cmd.spawn().unwrap());
    let stderr = serving.0.stderr.take().unwrap();
    let found = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .take(50)
            .find(|line| line.contains("cargo run --release -- tenant create"))
    })
    .await
    .unwrap();
    let line = found.expect("serve logs the command that creates the first tenant");
    assert!(
        line.contains("--domain") && line.contains("--owner"),
        "{line}"
    );
}
