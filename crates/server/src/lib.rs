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
    };
    Ok(Herald::new(store, Arc::new(ring), settings))
}

/// The HTTP application for `herald`.
pub fn router(herald: Herald, config: &Config) -> axum::Router {
    herald_api::router(AppState {
        herald,
        http: HttpSettings {
            max_body_bytes: config.http.max_body_bytes,
            secure_cookies: config.secure_cookies(),
        },
    })
}

/// A running server: its address, and a handle that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub herald: Herald,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
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
    Ok(Running {
        addr,
        herald,
        shutdown: tx,
        task,
    })
}
