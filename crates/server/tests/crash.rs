//! A `herald serve` killed with SIGKILL while it delivers loses nothing:
//! after a restart every accepted message is delivered, and the only
//! duplicates are the deliveries that were in flight at the kill: sent, or
//! sent and not yet recorded (a delivery holds an in-flight slot until its
//! result is committed: at most `worker.concurrency ×
//! herald_worker::IN_FLIGHT_PER_SLOT`).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_tests::peers::SmtpPeer;
use herald_tests::{TestDb, free_port, wait_ready};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_herald");
const CONCURRENCY: usize = 4;

fn herald(db: &TestDb, port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_DATA_DIR", db.dir.path())
        .env("HERALD_DATABASE_URL", &db.url)
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_LOG__LEVEL", "warn")
        .env("HERALD_WORKER__CONCURRENCY", CONCURRENCY.to_string())
        .env("HERALD_WORKER__CLAIM_BATCH", "16")
        .env("HERALD_WORKER__LEASE_SECONDS", "3")
        .env("HERALD_WORKER__POLL_MS", "200")
        .current_dir(db.dir.path());
    cmd
}

/// A running `herald serve`, killed when dropped (a failed assertion
/// leaves no process behind).
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(db: &TestDb, port: u16) -> Serving {
    Serving(
        herald(db, port, &["serve"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start herald serve"),
    )
}

/// How many times each recipient was received.
async fn received(peer: &SmtpPeer) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for m in peer.received(0).await {
        for to in m["to"].as_array().unwrap() {
            *seen.entry(to.as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    seen
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_loses_nothing() {
    // Each message takes 100 ms to be answered, so deliveries are in flight
    // when the process dies.
    let peer = SmtpPeer::start(json!({"delayMs": 100})).await;
    let db = TestDb::new().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let out = herald(
        &db,
        port,
        &[
            "tenant",
            "create",
            "crash",
            "--domain",
            "mail.crash.example",
            "--owner",
            "owner@crash.example",
            "--json",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();

    let mut child = serve(&db, port);
    wait_ready(&base).await;
    let client = reqwest::Client::new();
    let profile: serde_json::Value = client
        .post(format!("{base}/api/v1/relay-profiles"))
        .bearer_auth(&key)
        .json(&json!({
            "name": "Relay",
            "transport": {"smtp": {"host": "127.0.0.1", "port": peer.port, "security": "none",
                                   "timeout_seconds": 30, "auth": {"mode": "none"}}},
            "from": {"address": "office@mail.crash.example"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let profile = profile["id"].as_str().unwrap().to_owned();

    let n = 200;
    for i in 0..n {
        let res = client
            .post(format!("{base}/api/v1/messages"))
            .bearer_auth(&key)
            .json(
                &json!({"to": format!("p{i}@home.example"), "subject": format!("crash {i}"),
                          "text": "x", "profile_id": profile}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    // Kill it once some, not all, are delivered.
    let started = Instant::now();
    while received(&peer).await.len() < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    let before = received(&peer).await;
    assert!(
        before.len() < n,
        "all delivered before the kill: the test proves nothing"
    );

    // Restarted, it claims the dead worker's work once the leases expire.
    let _child = serve(&db, port);
    wait_ready(&base).await;
    let started = Instant::now();
    loop {
        let got = received(&peer).await;
        if got.len() == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{} of {n} delivered after the restart",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received(&peer).await;
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    let in_flight = CONCURRENCY * herald_worker::IN_FLIGHT_PER_SLOT;
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates; at most the {in_flight} in flight at the kill"
    );
    // The queue agrees: every message sent, none left behind.
    let mut sent = 0;
    for _ in 0..100 {
        let list: serde_json::Value = client
            .get(format!("{base}/api/v1/messages?status=sent&limit=500"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sent = list["items"].as_array().unwrap().len();
        if sent == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent, n);
}
