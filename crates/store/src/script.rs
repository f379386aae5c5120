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
        for statement in self.into_calls() {
            db.execute_raw(statement).await?;
        }
        Ok(())
    }

    /// The statements, one by one.
    pub(crate) fn into_parts(self) -> Vec<Statement> {
        self.parts
    }

    /// The statements as they go to the database, one call each: on SQLite
    /// all of them joined when their parameters are few, else one by one
    /// with any statement without parameters (a COMMIT) joined to the one
    /// before it.
    pub(crate) fn into_calls(self) -> Vec<Statement> {
        let params: usize = self.parts.iter().map(param_count).sum();
        if self.backend != DbBackend::Sqlite || self.parts.len() < 2 {
            return self.parts;
        }
        let mut calls: Vec<Statement> = Vec::new();
        for part in self.parts {
            match calls.last_mut() {
                Some(last) if params <= MAX_JOINED_PARAMS || param_count(&part) == 0 => {
                    last.sql.push(';');
                    last.sql.push_str(&part.sql);
                    if let Some(Values(v)) = part.values {
                        last.values
                            .get_or_insert_with(|| Values(Vec::new()))
                            .0
                            .extend(v);
                    }
                }
                _ => calls.push(part),
            }
        }
        calls
    }
}

fn param_count(s: &Statement) -> usize {
    s.values.as_ref().map_or(0, |v| v.0.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &str, params: usize) -> Statement {
        let values: Vec<sea_orm::Value> = (0..params as i64).map(Into::into).collect();
        Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
    }

    #[test]
    fn small_scripts_go_in_one_call_and_a_commit_rides_with_the_last_statement() {
        let mut small = Script::new(DbBackend::Sqlite);
        small.push(statement("INSERT a", 3));
        small.push(statement("INSERT b", 2));
        small.push(statement("COMMIT", 0));
        let calls = small.into_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].sql, "INSERT a;INSERT b;COMMIT");
        assert_eq!(calls[0].values.as_ref().map(|v| v.0.len()), Some(5));

        let mut large = Script::new(DbBackend::Sqlite);
        large.push(statement("INSERT a", MAX_JOINED_PARAMS));
        large.push(statement("INSERT b", 1));
        large.push(statement("COMMIT", 0));
        let sql: Vec<String> = large.into_calls().into_iter().map(|s| s.sql).collect();
        assert_eq!(sql, ["INSERT a", "INSERT b;COMMIT"]);

        let mut postgres = Script::new(DbBackend::Postgres);
        postgres.push(statement("INSERT a", 1));
        postgres.push(statement("INSERT b", 1));
        assert_eq!(postgres.into_calls().len(), 2);
    }
}
