//! The `herald` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use herald_app::{NewApiKey, NewTenant};
use herald_crypto::KeyRing;
use serde_json::json;

use crate::{Config, keys, telemetry};

#[derive(Debug, Parser)]
#[command(name = "herald", version, about = "Multi-tenant email sending backend")]
pub struct Cli {
    /// herald.toml to read (also HERALD_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the portal and the delivery worker.
    Serve {
        /// all (default), api (no delivery) or worker (delivery, with
        /// /healthz and /readyz only).
        #[arg(long, value_enum)]
        role: Option<crate::config::ServeRole>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage the master keys that seal secrets at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its owner and an admin API key.
    Create {
        /// Short name: lowercase letters, digits, hyphens.
        slug: String,
        /// A sending domain (repeat for several).
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// The owner's email; they get a one-time password.
        #[arg(long)]
        owner: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a tenant; it is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        /// owner, admin, sender or viewer.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "created on the command line")]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every secret under the newest key (safe to re-run).
    Rotate,
    /// Print a new random key entry to put first in HERALD_MASTER_KEYS.
    Generate {
        /// The key's id (default: k and today's date).
        #[arg(long)]
        id: Option<String>,
    },
}

/// Runs one command. Errors come back as text for the caller to print.
pub async fn run(cli: Cli) -> Result<(), String> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = Config::load(cli.config.as_deref(), &env).map_err(|e| e.to_string())?;
    telemetry::init(&config.log);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    match cli.command {
        Command::Config => {
            println!("{}", config.to_redacted_toml().trim_end());
            Ok(())
        }
        Command::Keys(KeysCommand::Generate { id }) => {
            let id = match id {
                Some(id) => herald_crypto::KeyId::parse(&id)
                    .ok_or("--id must be 1-32 letters, digits, - or _")?,
                None => keys::new_key_id(),
            };
            println!("{}", KeyRing::generate_entry(&id).expose());
            Ok(())
        }
        Command::Migrate => {
            let store = herald_store::Store::connect(&config.database_url())
                .await
                .map_err(|e| err(&e))?;
            let applied = store.migrate().await.map_err(|e| err(&e))?;
            println!("migrations applied: {applied}");
            Ok(())
        }
        Command::Serve { role } => {
            let mut config = config;
            if let Some(role) = role {
                config.role = role;
            }
            serve(config).await
        }
        Command::Keys(KeysCommand::Rotate) => {
            let herald = crate::open(&config).await.map_err(|e| err(&e))?;
            let n = herald.rotate_keys().await.map_err(|e| err(&e))?;
            println!(
                "re-sealed {n} secret(s) under key {}; keys other than the newest can now be removed",
                herald.keys().newest()
            );
            Ok(())
        }
        Command::Tenant(TenantCommand::Create {
            slug,
            domains,
            owner,
            name,
            json,
        }) => {
            let herald = crate::open(&config).await.map_err(|e| err(&e))?;
            let created = herald
                .create_tenant(NewTenant {
                    slug,
                    name,
                    domains,
                    owner_email: owner,
                })
                .await
                .map_err(|e| err(&e))?;
            if json {
                println!(
                    "{}",
                    json!({
                        "tenant": {
                            "id": created.tenant.id,
                            "slug": created.tenant.slug,
                            "name": created.tenant.name,
                            "domains": created.tenant.domains,
                        },
                        "owner": { "id": created.owner.id, "email": created.owner.email },
                        "owner_password": created.owner_password.expose(),
                        "api_key": created.api_key.token.expose(),
                        "api_key_id": created.api_key.key.id,
                    })
                );
            } else {
                println!(
                    "Created tenant {} ({})",
                    created.tenant.slug, created.tenant.id
                );
                println!(
                    "Owner {} one-time password: {}",
                    created.owner.email,
                    created.owner_password.expose()
                );
                println!(
                    "Admin API key (shown once): {}",
                    created.api_key.token.expose()
                );
            }
            Ok(())
        }
        Command::Apikey(ApiKeyCommand::Create {
            tenant,
            role,
            name,
            json,
        }) => {
            let herald = crate::open(&config).await.map_err(|e| err(&e))?;
            let actor = herald.cli_actor(&tenant).await.map_err(|e| err(&e))?;
            let created = herald
                .create_api_key(&actor, NewApiKey { name, role })
                .await
                .map_err(|e| err(&e))?;
            if json {
                println!(
                    "{}",
                    json!({
                        "id": created.key.id,
                        "tenant": tenant,
                        "role": created.key.role,
                        "api_key": created.token.expose(),
                    })
                );
            } else {
                println!("API key (shown once): {}", created.token.expose());
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let herald = crate::open(&config).await.map_err(|e| e.to_string())?;
    if herald.tenant_count().await.map_err(|e| e.to_string())? == 0 {
        tracing::info!(
            "no tenant yet. Create the first one with: \
             cargo run --release -- tenant create acme --domain mail.acme.example --owner you@acme.example \
             (or, with the binary: herald tenant create acme --domain mail.acme.example --owner you@acme.example)"
        );
    }
    let running = crate::start(&config, herald)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(addr = %running.addr, "Herald listening; API docs at http://{}/docs", running.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    let herald = running.herald.clone();
    running.stop().await;
    herald.store().clone().close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
