//! Statements that run one after another on one connection, sent to SQLite
//! in a single call.
//!
//! Every statement is a round trip between the caller and the thread that
//! owns the SQLite connection: two context switches, and under load two
//! waits for a core. A group commit wrote its messages, bodies, recipients
//! and events in eight or more such trips; as one script it makes one.
//! SQLite runs a string of several statements in order, binding the
//! arguments in order across them (sqlx counts the parameters each statement
//! used), and stops at the first that fails. PostgreSQL's extended protocol
//! takes one statement per call, so there the statements go one by one.

use sea_orm::sea_query::Values;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::StoreError;

/// Above this many parameters in all, a script's statements go one by
/// one. The joined text is the key of a prepared statement that each
/// connection keeps (see `STATEMENT_CACHE`), and every batch size makes a
/// different one: small scripts are where a round trip costs most beside
/// the work, and small prepared scripts keep that cache small (large
/// batches reuse the few shapes of [`crate::shaped`]).
const MAX_JOINED_PARAMS: usize = 2048;

/// Statements to run in order, inside the caller's transaction (a failure
/// part way leaves the earlier ones done: roll back).
pub struct Script {
    backend: DbBackend,
    parts: Vec<Statement>,
}

impl Script {
    pub fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            parts: Vec::new(),
        }
    }

    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    pub(crate) fn push(&mut self, statement: Statement) {
        self.parts.push(statement);
    }

    /// Runs every statement, in order.
    pub async fn run(self, db: &impl ConnectionTrait) -> Result<(), StoreError> {
        let params: usize = self
            .parts
            .iter()
            .map(|s| s.values.as_ref().map_or(0, |v| v.0.len()))
            .sum();
        if self.backend != DbBackend::Sqlite || self.parts.len() < 2 || params > MAX_JOINED_PARAMS {
            for statement in self.parts {
                db.execute_raw(statement).await?;
            }
            return Ok(());
        }
        let mut sql = String::with_capacity(self.parts.iter().map(|s| s.sql.len() + 1).sum());
        let mut values = Vec::new();
        for part in self.parts {
            if !sql.is_empty() {
                sql.push(';');
            }
            sql.push_str(&part.sql);
            if let Some(Values(v)) = part.values {
                values.extend(v);
            }
        }
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await?;
        Ok(())
    }
}
