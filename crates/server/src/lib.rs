//! The `herald` binary's library: configuration, wiring, command line.

pub mod cli;
pub mod config;
pub mod keys;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_api::{AppState, HttpSettings};
use herald_app::{AppSettings, Herald};
use herald_store::Store;
use tokio::net::TcpListener;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] herald_store::StoreError),
    #[error("{0}")]
    Keys(#[from] keys::KeySetupError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
}

/// The platform's OAuth apps from `[oauth.*]`.
fn platform_oauth(config: &Config) -> Result<Vec<herald_app::PlatformOAuthApp>, StartError> {
    use herald_domain::{OAuthAppSettings, OAuthProvider};
    let mut out = Vec::new();
    for (provider, app) in [
        (OAuthProvider::Microsoft, &config.oauth.microsoft),
        (OAuthProvider::Google, &config.oauth.google),
    ] {
        let Some(app) = app else { continue };
        let redirect = match (&app.redirect_uri, &config.public_url) {
            (Some(r), _) => r.clone(),
            (None, Some(base)) => format!(
                "{}{}",
                base.trim_end_matches('/'),
                herald_app::CALLBACK_PATH
            ),
            (None, None) => {
                return Err(StartError::Config(format!(
                    "oauth.{provider}.redirect_uri: set it, or set public_url"
                )));
            }
        };
        let doc = serde_json::json!({
            "client_id": app.client_id,
            "authority": app.authority,
            "redirect_uri": redirect,
            "authorize_url": app.authorize_url,
            "token_url": app.token_url,
            "userinfo_url": app.userinfo_url,
        });
        let settings: OAuthAppSettings = serde_json::from_value(doc)
            .map_err(|e| StartError::Config(format!("oauth.{provider}: {e}")))?;
        out.push(herald_app::PlatformOAuthApp {
            provider,
            settings,
            client_secret: app
                .client_secret
                .expose()
                .map(herald_crypto::SecretString::from),
        });
    }
    Ok(out)
}

/// Opens the database, applies migrations and resolves the key ring.
pub async fn open(config: &Config) -> Result<Herald, StartError> {
    let store = Store::connect(&config.database_url()).await?;
    let applied = store.migrate().await?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    let ring = keys::resolve(config, &store).await?;
    let settings = AppSettings {
        session_ttl: Duration::from_secs(config.session.ttl_hours * 3600),
        platform_oauth: platform_oauth(config)?,
    };
    Ok(Herald::new(store, Arc::new(ring), settings))
}

/// The delivery worker's settings from `[worker]`.
pub fn worker_config(config: &Config) -> herald_worker::WorkerConfig {
    let w = &config.worker;
    herald_worker::WorkerConfig {
        concurrency: w.concurrency.max(1),
        claim_batch: w.claim_batch.max(1),
        lease: Duration::from_secs(w.lease_seconds.max(1)),
        poll: Duration::from_millis(w.poll_ms.max(10)),
        shutdown_grace: Duration::from_secs(w.shutdown_grace_seconds),
        pool: herald_mailer::PoolLimits {
            transactions_per_session: w.messages_per_connection.max(1),
            idle_for: Duration::from_secs(w.idle_connection_seconds),
            ..herald_mailer::PoolLimits::default()
        },
    }
}

/// The HTTP application for `herald`: everything, or only the health
/// checks for a worker-only process.
pub fn router(herald: Herald, config: &Config) -> axum::Router {
    let state = state(herald, config);
    if config.role.serves_api() {
        herald_api::router(state)
    } else {
        herald_api::health_router(state)
    }
}

fn state(herald: Herald, config: &Config) -> AppState {
    AppState {
        herald,
        http: HttpSettings {
            max_body_bytes: config.http.max_body_bytes,
            secure_cookies: config.secure_cookies(),
            public_url: config.public_url.clone(),
        },
    }
}

/// The worker's stop switch, its delivery loop, and the loops beside it
/// (event purge, bounce mailboxes).
type Background = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// A running server: its address, and a handle that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub herald: Herald,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    worker: Option<Background>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, then stops the
    /// worker (in-flight deliveries finish or are released), and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        if let Some((stop, task, background)) = self.worker {
            let _ = stop.send(true);
            let _ = task.await;
            for b in background {
                let _ = b.await;
            }
        }
    }
}

/// Binds `config.listen` (port 0 picks a free one) and serves until stopped.
pub async fn start(config: &Config, herald: Herald) -> Result<Running, StartError> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = router(herald.clone(), config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    let worker = config.role.delivers().then(|| {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let w = herald_worker::Worker::new(herald.clone(), worker_config(config));
        let purge = tokio::spawn(herald_worker::purge_loop(
            herald.clone(),
            Duration::from_secs(config.worker.purge_interval_seconds.max(1)),
            stopped.clone(),
        ));
        let bounces = tokio::spawn(herald_worker::bounce_loop(
            herald.clone(),
            Duration::from_secs(config.worker.bounce_scan_seconds.max(1)),
            stopped.clone(),
        ));
        (stop, tokio::spawn(w.run(stopped)), vec![purge, bounces])
    });
    Ok(Running {
        addr,
        herald,
        shutdown: tx,
        task,
        worker,
    })
}
