//! A write transaction on SQLite's writer connection in two calls: BEGIN
//! travels with the transaction's first query, COMMIT with its last
//! statements.
//!
//! Every call to an SQLite connection is a round trip between the caller's
//! thread and the connection's own (two wake-ups, and under load two waits
//! for a core). Through sea-orm a group commit made five: BEGIN, the
//! suppression lookup, the inserts, COMMIT, and the check the pool makes of
//! a released connection. The writer is the one task every submission
//! waits for, so on a busy machine those waits were most of a commit's
//! time. Here the same transaction makes two, and the connection may be
//! kept for the next transaction: the pool checks a released connection
//! with a round trip of its own, which the next taker waits for.
//!
//! The connection is the writer pool's only one, held for as long as the
//! [`Batch`] lives, so nothing else writes meanwhile: a holder releases it
//! (drops the batch) as soon as it has nothing more to write.

use std::sync::Arc;

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{self, AssertSqlSafe, Sqlite};
use sea_orm::{DbErr, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;

use crate::{Script, StoreError};

/// SQLite's writer connection, held for one write transaction after
/// another. Dropped while a transaction is open (its task cancelled, or a
/// ROLLBACK failed), it closes the connection instead of returning it to
/// the pool, which rolls the transaction back.
pub struct Batch {
    conn: PoolConnection<Sqlite>,
    open: bool,
}

fn query(statement: Statement) -> sqlx::query::Query<'static, Sqlite, SqlxValues> {
    let values = statement.values.unwrap_or(sea_orm::Values(Vec::new()));
    sqlx::query_with(AssertSqlSafe(statement.sql), SqlxValues(values))
}

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Db(DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e))))
}

/// A failure to take the writer's connection, as sea-orm reports it.
pub(crate) fn acquire_err(e: sqlx::Error) -> StoreError {
    use sea_orm::error::ConnAcquireErr;
    StoreError::Db(match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
    })
}

impl Batch {
    pub(crate) fn new(conn: PoolConnection<Sqlite>) -> Self {
        Self { conn, open: false }
    }

    /// BEGIN IMMEDIATE, then `queries` in the same call; their rows, in
    /// order. If it fails, nothing is left open.
    ///
    /// One query is prepared once and kept, like any other statement. Several
    /// (a batch from several tenants) make a text that may never come again,
    /// so they are prepared for this call only rather than push the
    /// statements that do come again out of the connection's cache.
    pub async fn begin_with(
        &mut self,
        queries: Vec<Statement>,
    ) -> Result<Vec<QueryResult>, StoreError> {
        let persistent = queries.len() <= 1;
        let mut sql = String::from("BEGIN IMMEDIATE");
        let mut values = Vec::new();
        for q in queries {
            sql.push(';');
            sql.push_str(&q.sql);
            if let Some(v) = q.values {
                values.extend(v.0);
            }
        }
        let statement = Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values);
        self.open = true;
        match query(statement)
            .persistent(persistent)
            .fetch_all(&mut *self.conn)
            .await
        {
            Ok(rows) => Ok(rows.into_iter().map(QueryResult::from).collect()),
            Err(e) => {
                self.rollback().await;
                Err(db_err(e))
            }
        }
    }

    /// Runs `script`, then COMMIT, with its last statement. If anything
    /// fails, the transaction is rolled back.
    pub async fn commit_with(&mut self, mut script: Script) -> Result<(), StoreError> {
        script.push(Statement::from_string(sea_orm::DbBackend::Sqlite, "COMMIT"));
        let mut result = Ok(());
        for statement in script.into_calls() {
            if let Err(e) = query(statement).execute(&mut *self.conn).await {
                result = Err(db_err(e));
                break;
            }
        }
        match result {
            Ok(()) => self.open = false,
            Err(_) => self.rollback().await,
        }
        result
    }

    /// Whether a transaction is open (after a failed ROLLBACK, until the
    /// batch is dropped).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Rolls back whatever is open (when what goes between the two calls
    /// fails, say). A ROLLBACK with nothing to roll back
    /// (BEGIN or COMMIT failed) is refused by SQLite, harmlessly; if it
    /// fails for another reason, the connection is closed on drop.
    pub async fn rollback(&mut self) {
        match sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
            .execute(&mut *self.conn)
            .await
        {
            Ok(_) => self.open = false,
            Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => {
                self.open = false
            }
            Err(e) => tracing::warn!(error = %e, "ROLLBACK failed; closing the writer connection"),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}
