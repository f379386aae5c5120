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
    /// Token introspection (RFC 7662) for XOAUTH2 checks by Dovecot.
    pub introspection_url: String,
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
            introspection_url: hello["introspection_url"].as_str().unwrap().to_owned(),
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

    /// Every JSON line it printed after starting, in order.
    pub fn log(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
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

/// A Dovecot IMAP and POP3 server (Debian's dovecot-imapd and
/// dovecot-pop3d, installed by scripts/test) with a configuration of the
/// test's own: one user, Maildir under a temporary directory, plain IMAP
/// and POP3 plus implicit-TLS IMAPS and POP3S with `certs`' certificate,
/// all on loopback ports of their own. Stopped when dropped.
pub struct Dovecot {
    pub imap_port: u16,
    pub pop3_port: u16,
    pub imaps_port: u16,
    pub pop3s_port: u16,
    pub user: String,
    pub password: String,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Dovecot {
    pub async fn start(certs: &TestCerts) -> Self {
        Self::start_with(certs, None).await
    }

    /// Also accepts SASL XOAUTH2, checking each bearer token with the
    /// OAuth provider's introspection endpoint (Dovecot's oauth2 passdb).
    pub async fn with_oauth(certs: &TestCerts, introspection_url: &str) -> Self {
        Self::start_with(certs, Some(introspection_url)).await
    }

    async fn start_with(certs: &TestCerts, introspection: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let id = |a: &str| {
            std::process::Command::new("id")
                .arg(a)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        // As root Dovecot runs its parts as its own users and the mail as
        // nobody; otherwise everything runs as the caller.
        let root = uid == "0";
        let (internal, login, mail_uid, mail_gid) = if root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(d.join("home"), std::fs::Permissions::from_mode(0o777))
                .unwrap();
            (
                "dovecot\ndefault_internal_group = dovecot".to_owned(),
                "dovenull".to_owned(),
                "nobody".to_owned(),
                "nogroup".to_owned(),
            )
        } else {
            let (u, g) = (id("-un"), id("-gn"));
            (format!("{u}\ndefault_internal_group = {g}"), u, uid, gid)
        };
        let (imap_port, pop3_port, imaps_port, pop3s_port) = (
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
        );
        let user = "bounces".to_owned();
        let password = "mailbox-secret-42".to_owned();
        std::fs::write(
            d.join("users"),
            format!("{user}:{{PLAIN}}{password}::::::nodelay=y\n"),
        )
        .unwrap();
        let p = d.display();
        let oauth = match introspection {
            Some(url) => {
                std::fs::write(
                    d.join("oauth2.conf.ext"),
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\n\
                         username_attribute = email\nactive_attribute = active\nactive_value = true\n"
                    ),
                )
                .unwrap();
                format!(
                    "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {p}/oauth2.conf.ext\n}}\n"
                )
            }
            None => String::new(),
        };
        let mechanisms = if introspection.is_some() {
            "plain login xoauth2 oauthbearer"
        } else {
            "plain login"
        };
        let conf = format!(
            "base_dir = {p}/run\nstate_dir = {p}/state\nlog_path = {p}/log\n\
             protocols = imap pop3\nlisten = 127.0.0.1\nauth_verbose = yes\nauth_debug = yes\n\
             ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
             disable_plaintext_auth = no\nauth_mechanisms = {mechanisms}\n\
             default_internal_user = {internal}\ndefault_login_user = {login}\n\
             {oauth}passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {p}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_uid} gid={mail_gid} home={p}/home/%u\n}}\n\
             mail_location = maildir:{p}/home/%u/Maildir\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n\
             service pop3-login {{\n  chroot =\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {pop3_port}\n  }}\n  inet_listener pop3s {{\n    address = 127.0.0.1\n    port = {pop3s_port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n\
             service stats {{\n  unix_listener stats-reader {{\n    mode = 0666\n  }}\n  unix_listener stats-writer {{\n    mode = 0666\n  }}\n}}\n",
            cert = certs.cert_path,
            key = certs.key_path,
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let bin = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("dovecot");
        let child = Command::new(bin)
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("dovecot (scripts/test installs dovecot-imapd and dovecot-pop3d)");
        for port in [imap_port, pop3_port, imaps_port, pop3s_port] {
            let mut up = false;
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                up,
                "dovecot did not listen on {port}: {}",
                std::fs::read_to_string(d.join("log")).unwrap_or_default()
            );
        }
        Self {
            imap_port,
            pop3_port,
            imaps_port,
            pop3s_port,
            user,
            password,
            _dir: dir,
            _child: child,
        }
    }

    /// Dovecot's log so far (for failure messages; its log process
    /// writes a moment later).
    pub fn log(&self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    async fn session(&self) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap();
        let mut s = client
            .login(&self.user, &self.password)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        s.select("INBOX").await.unwrap();
        s
    }

    /// Puts a message in the inbox (IMAP APPEND), unread.
    pub async fn deliver(&self, raw: &str) {
        let mut s = self.session().await;
        s.append("INBOX", None, None, raw.as_bytes()).await.unwrap();
        s.logout().await.unwrap();
    }

    /// The inbox: each message's Subject and whether it was read.
    pub async fn inbox(&self) -> Vec<(String, bool)> {
        use futures_util::TryStreamExt;
        let mut s = self.session().await;
        let fetched: Vec<_> = s
            .fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await
            .map(|st| st.try_collect::<Vec<_>>())
            .unwrap()
            .await
            .unwrap_or_default();
        let out = fetched
            .iter()
            .map(|f| {
                let subject = String::from_utf8_lossy(f.header().unwrap_or_default())
                    .trim()
                    .trim_start_matches("Subject:")
                    .trim()
                    .to_owned();
                let seen = f.flags().any(|fl| fl == async_imap::types::Flag::Seen);
                (subject, seen)
            })
            .collect();
        s.logout().await.unwrap();
        out
    }
}
