//! Configuration in layers: defaults → herald.toml (from --config or
//! HERALD_CONFIG; optional) → HERALD_* environment variables (`__` nests:
//! HERALD_HTTP__MAX_BODY_BYTES) → HERALD_*_FILE variables, whose value is a
//! path to a file holding the setting (for secrets mounted as files).
//! An unknown key stops start-up with an error that names it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use herald_crypto::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configured secret: readable by Herald, printed as `[redacted]`.
#[derive(Clone, Default)]
pub struct ConfigSecret(Option<SecretString>);

impl ConfigSecret {
    pub fn expose(&self) -> Option<&str> {
        self.0.as_ref().map(|s| s.expose().as_str())
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "[redacted]"
        } else {
            "None"
        })
    }
}

impl Serialize for ConfigSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(_) => s.serialize_str("[redacted]"),
            None => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(
            Option::<String>::deserialize(d)?.map(SecretString::from),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `herald=debug,info`; RUST_LOG wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Mark the session cookie Secure. Also implied by an https public_url.
    pub secure_cookies: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            secure_cookies: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// How long a portal sign-in lasts.
    pub ttl_hours: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { ttl_hours: 12 }
    }
}

/// A platform-wide OAuth app (`[oauth.microsoft]`, `[oauth.google]`), used
/// by tenants that have not configured their own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformOAuthConfig {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: ConfigSecret,
    /// Microsoft: common, organizations (default) or a tenant id.
    #[serde(default)]
    pub authority: Option<String>,
    /// Default: `{public_url}/oauth/callback`.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub userinfo_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    pub microsoft: Option<PlatformOAuthConfig>,
    pub google: Option<PlatformOAuthConfig>,
}

/// Herald's effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (HERALD_LISTEN).
    pub listen: SocketAddr,
    /// Where the embedded database and the generated key file live.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://PATH`; default: SQLite in data_dir.
    pub database_url: ConfigSecret,
    /// Master keys, `id:base64` separated by commas, newest first.
    pub master_keys: ConfigSecret,
    /// A key file (same format, one per line) when master_keys is not set;
    /// default data_dir/master.key.
    pub master_key_path: Option<PathBuf>,
    /// The URL people and OAuth providers reach Herald at.
    pub public_url: Option<String>,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub session: SessionConfig,
    pub oauth: OAuthConfig,
    /// What `herald serve` runs (also `serve --role`).
    pub role: ServeRole,
    pub worker: WorkerSection,
}

/// What a `herald serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ServeRole {
    /// The API, the portal and the delivery worker.
    #[default]
    All,
    /// The API and the portal only.
    Api,
    /// The delivery worker, with /healthz and /readyz only.
    Worker,
}

impl ServeRole {
    pub fn serves_api(self) -> bool {
        self != ServeRole::Worker
    }

    pub fn delivers(self) -> bool {
        self != ServeRole::Api
    }
}

/// The delivery worker (`[worker]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Recipients claimed per query.
    pub claim_batch: u64,
    /// How long a claim lasts; a crashed worker's mail is retried after it.
    pub lease_seconds: u64,
    /// How often an idle worker looks for due mail, in milliseconds.
    pub poll_ms: u64,
    /// How long shutdown waits for deliveries in flight.
    pub shutdown_grace_seconds: u64,
    /// Transactions on one SMTP connection before a new one is opened.
    pub messages_per_connection: u32,
    /// Seconds an idle pooled connection is kept.
    pub idle_connection_seconds: u64,
    /// How often events past their tenant's retention are purged, in
    /// seconds.
    pub purge_interval_seconds: u64,
    /// How often the bounce poller looks for mailboxes due a poll (each
    /// is polled every `poll_minutes` of its profile), in seconds.
    pub bounce_scan_seconds: u64,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            concurrency: 32,
            claim_batch: 256,
            lease_seconds: 600,
            poll_ms: 1000,
            shutdown_grace_seconds: 20,
            messages_per_connection: 100,
            idle_connection_seconds: 30,
            purge_interval_seconds: 600,
            bounce_scan_seconds: 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: ConfigSecret::default(),
            master_keys: ConfigSecret::default(),
            master_key_path: None,
            public_url: None,
            log: LogConfig::default(),
            http: HttpConfig::default(),
            session: SessionConfig::default(),
            role: ServeRole::default(),
            worker: WorkerSection::default(),
            oauth: OAuthConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration file {path}: {reason}")]
    File { path: String, reason: String },
}

impl Config {
    /// Reads the layers. `file` is --config (or HERALD_CONFIG); `env` is the
    /// process environment (passed in so tests can give their own).
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env_value(env, "HERALD_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    reason: "not found".to_owned(),
                });
            }
            figment = figment.merge(Toml::file_exact(&path));
        }
        let mut vars = Vec::new();
        let mut files = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("HERALD_") else {
                continue;
            };
            if key == "CONFIG" {
                continue;
            }
            match key.strip_suffix("_FILE") {
                Some(secret_key) => files.push((secret_key.to_owned(), value.clone())),
                None => vars.push((key.to_owned(), value.clone())),
            }
        }
        figment = figment.merge(EnvLayer {
            name: "HERALD_ environment variable(s)",
            vars,
        });
        let mut file_vars = Vec::new();
        for (key, path) in files {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                path: format!("{path} (from HERALD_{key}_FILE)"),
                reason: e.to_string(),
            })?;
            file_vars.push((key, text.trim_end_matches(['\n', '\r']).to_owned()));
        }
        figment = figment.merge(EnvLayer {
            name: "HERALD_*_FILE file(s)",
            vars: file_vars,
        });
        let config: Config = figment.extract().map_err(|e| {
            ConfigError::Invalid(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "http.max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.session.ttl_hours == 0 {
            return Err(ConfigError::Invalid(
                "session.ttl_hours must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "public_url must be an http(s) URL, not {url:?}"
            )));
        }
        Ok(())
    }

    /// The database to open.
    pub fn database_url(&self) -> String {
        match self.database_url.expose() {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("herald.db").display()),
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.http.secure_cookies
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml_lines(&serde_json::to_value(self).unwrap_or_default(), "")
    }
}

/// Environment variables (prefix already removed) as a configuration layer:
/// lowercased, `__` nesting, values parsed like TOML scalars.
struct EnvLayer {
    name: &'static str,
    vars: Vec<(String, String)>,
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name).interpolater(|_: &Profile, keys: &[&str]| {
            let upper: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("HERALD_{}", upper.join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in &self.vars {
            let key = key.to_lowercase().replace("__", ".");
            let value: Value = value.parse().expect("parsing a Value is infallible");
            if let Some(nested) = figment::util::nest(&key, value).into_dict() {
                for (k, v) in nested {
                    merge_into(&mut dict, k, v);
                }
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn merge_into(dict: &mut Dict, key: String, value: Value) {
    match (dict.get_mut(&key), value) {
        (Some(Value::Dict(_, existing)), Value::Dict(_, incoming)) => {
            for (k, v) in incoming {
                merge_into(existing, k, v);
            }
        }
        (_, value) => {
            dict.insert(key, value);
        }
    }
}

fn env_value(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A flat TOML rendering (tables as [sections]) good enough for printing.
fn toml_lines(value: &serde_json::Value, section: &str) -> String {
    let serde_json::Value::Object(map) = value else {
        return String::new();
    };
    let mut out = String::new();
    let mut tables = String::new();
    for (k, v) in map {
        match v {
            serde_json::Value::Object(_) => {
                let name = if section.is_empty() {
                    k.clone()
                } else {
                    format!("{section}.{k}")
                };
                tables.push_str(&format!("\n[{name}]\n{}", toml_lines(v, &name)));
            }
            serde_json::Value::Null => out.push_str(&format!("# {k} = (not set)\n")),
            other => out.push_str(&format!("{k} = {other}\n")),
        }
    }
    out + &tables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://data/herald.db");
        assert!(!c.secure_cookies());
    }

    #[test]
    fn layers_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/herald\"\n[http]\nmax_body_bytes = 4096\n").unwrap();
        let c = Config::load(Some(&file), &env(&[("HERALD_LISTEN", "127.0.0.1:9100")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100", "env beats file");
        assert_eq!(
            c.data_dir,
            PathBuf::from("/var/lib/herald"),
            "file beats default"
        );
        assert_eq!(c.http.max_body_bytes, 4096);

        let c = Config::load(
            None,
            &env(&[
                ("HERALD_CONFIG", file.to_str().unwrap()),
                ("HERALD_HTTP__MAX_BODY_BYTES", "8192"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.max_body_bytes, 8192, "__ nests");
        assert_eq!(
            c.listen.to_string(),
            "127.0.0.1:9000",
            "HERALD_CONFIG names the file"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::load(None, &env(&[("HERALD_LISTNE", "127.0.0.1:1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "[http]\nmax_body = 1\n").unwrap();
        let err = Config::load(Some(&file), &[]).unwrap_err().to_string();
        assert!(err.contains("max_body"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("HERALD_LISTEN", "not-an-address"),
            ("HERALD_HTTP__MAX_BODY_BYTES", "lots"),
            ("HERALD_LOG__FORMAT", "xml"),
            ("HERALD_PUBLIC_URL", "ftp://x"),
            ("HERALD_SESSION__TTL_HOURS", "0"),
        ] {
            let err = Config::load(None, &env(&[(k, v)])).unwrap_err().to_string();
            assert!(!err.is_empty(), "{k}={v} accepted");
        }
        assert!(Config::load(Some(Path::new("/nonexistent/herald.toml")), &[]).is_err());
    }

    #[test]
    fn file_variants_carry_secrets_and_print_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db-url");
        std::fs::write(&secret, "postgres://herald:s3cret@127.0.0.1/herald\n").unwrap();
        let c = Config::load(
            None,
            &env(&[("HERALD_DATABASE_URL_FILE", secret.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(
            c.database_url(),
            "postgres://herald:s3cret@127.0.0.1/herald"
        );
        let printed = c.to_redacted_toml();
        assert!(
            printed.contains("database_url = \"[redacted]\""),
            "{printed}"
        );
        assert!(!printed.contains("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));

        let missing = env(&[("HERALD_MASTER_KEYS_FILE", "/nonexistent/keys")]);
        assert!(
            Config::load(None, &missing)
                .unwrap_err()
                .to_string()
                .contains("HERALD_MASTER_KEYS_FILE")
        );
    }
}
