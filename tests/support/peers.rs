//! Real peers on loopback: the npm `smtp-server` (tests/peers/smtp-peer.mjs),
//! and certificates for its TLS made by a throwaway CA.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// A CA, and a server certificate it signed for `mail.test.example`.
pub struct TestCerts {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub key_path: String,
    pub cert_path: String,
}

pub const CERT_HOST: &str = "mail.test.example";

impl TestCerts {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Herald Test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![CERT_HOST.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.pem");
        let cert_path = dir.path().join("cert.pem");
        std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
        std::fs::write(&cert_path, leaf.pem()).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            key_path: key_path.display().to_string(),
            cert_path: cert_path.display().to_string(),
            dir,
        }
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts `node tests/peers/<script> <config>`, reads its first JSON line
/// (where it listens), and collects every later JSON line it prints.
async fn spawn_peer(script: &str, config: &Value) -> (Child, Value, Arc<Mutex<Vec<Value>>>) {
    let mut child = Command::new("node")
        .arg(peers_dir().join(script))
        .arg(config.to_string())
        .current_dir(peers_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (scripts/test installs the peers with npm ci)");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} did not start in 20 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("{script} exited"));
    let hello: Value = serde_json::from_str(&first).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str(&line) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    (child, hello, log)
}

/// A running smtp-server; stopped when dropped.
pub struct SmtpPeer {
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    _child: Child,
}

impl SmtpPeer {
    /// Starts the peer with `config` (see smtp-peer.mjs for the keys).
    pub async fn start(config: Value) -> Self {
        let (child, hello, received) = spawn_peer("smtp-peer.mjs", &config).await;
        let port = hello["port"].as_u64().unwrap() as u16;
        Self {
            port,
            received,
            _child: child,
        }
    }

    /// The messages received so far (waiting up to 5 s for `at_least`).
    pub async fn received(&self, at_least: usize) -> Vec<Value> {
        self.received_within(at_least, Duration::from_secs(5)).await
    }

    /// The messages received so far, waiting up to `limit` for `at_least`.
    pub async fn received_within(&self, at_least: usize, limit: Duration) -> Vec<Value> {
        let rounds = (limit.as_millis() / 50).max(1);
        for _ in 0..rounds {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= at_least {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.received.lock().unwrap().clone()
    }
}

/// A running oauth2-mock-server (tests/peers/oauth-peer.mjs); stopped when
/// dropped.
pub struct OAuthPeer {
    pub issuer: String,
    log: Arc<Mutex<Vec<Value>>>,
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    _child: Child,
}

impl OAuthPeer {
    pub async fn start(config: Value) -> Self {
        let (mut child, hello, log) = spawn_peer("oauth-peer.mjs", &config).await;
        let stdin = child.stdin.take().unwrap();
        Self {
            issuer: hello["issuer"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_owned(),
            log,
            stdin: tokio::sync::Mutex::new(stdin),
            _child: child,
        }
    }

    /// Sends a control line (`{"email": …}`, `{"revoke": true}`) and waits
    /// for its acknowledgement.
    pub async fn control(&self, cmd: Value) {
        use tokio::io::AsyncWriteExt;
        let before = self.acks();
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        for _ in 0..100 {
            if self.acks() > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("oauth peer did not acknowledge {cmd}");
    }

    fn acks(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.get("ack").is_some())
            .count()
    }

    /// The token requests it answered, in order.
    pub fn token_requests(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.get("grant_type").is_some())
            .cloned()
            .collect()
    }
}
