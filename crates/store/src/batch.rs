//! SQLite's writer connection, driven from the caller's own thread.
//!
//! sqlx runs every SQLite connection on a thread of its own and talks to it
//! through channels: each call is a round trip, and each statement's result
//! comes back as a message of its own, every one of which wakes the caller.
//! A group commit through sqlx (BEGIN with the suppression lookup, then the
//! inserts with COMMIT) cost 8–10 context switches on each side, and under
//! load every switch is also a wait for a core: at 80% of the acceptance
//! peak those switches, not SQLite's work, were what grew with the load.
//!
//! A [`Batch`] takes the writer pool's only connection; [`Batch::lock`]
//! borrows its database handle from sqlx's thread (sqlx's `lock_handle`:
//! that thread waits until it is given back) and runs transactions on it
//! synchronously, through rusqlite, on the caller's thread. The caller is
//! the acceptance writer, on a thread of its own, which does nothing else
//! meanwhile; nothing crosses a thread between BEGIN and COMMIT.
//!
//! The statements stay prepared across batches ([`Direct`], kept in the
//! store's [`DirectSlot`] while no batch holds it): parsing a group
//! commit's multi-row inserts again each time would cost more than the
//! switches saved. SQLite refuses to close a connection with statements
//! still prepared (and sqlx panics when it does), so they are finalized
//! before sqlx can close the connection: the writer pool never closes it on
//! its own (no idle timeout, no maximum lifetime), a batch that must close
//! it finalizes them first, [`DirectSlot::close`] finalizes them before
//! the store closes its pools, and a store dropped without closing drops
//! its slot before its pools. The writer connection is opened serialized
//! (SQLite's mutex around every call), so finalizing from another thread
//! is safe whatever sqlx's thread does.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use rusqlite::ffi::sqlite3;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::LockedSqliteHandle;
use sea_orm::sqlx::{self, Sqlite};
use sea_orm::{DbErr, RuntimeErr, Statement, Value};

use crate::{STATEMENT_CACHE, Script, StoreError};

/// Prepared statements on one SQLite connection (rusqlite's view of a
/// handle that sqlx owns).
pub(crate) struct Direct {
    conn: rusqlite::Connection,
    handle: usize,
}

impl Direct {
    /// # Safety
    /// `handle` is open and used by nobody else for as long as this
    /// [`Direct`] runs statements on it, and this is dropped before the
    /// handle is closed.
    unsafe fn new(handle: NonNull<sqlite3>) -> Result<Self, StoreError> {
        // SAFETY: as the caller promised; the connection is not owned, so
        // dropping it finalizes its statements and leaves the handle open.
        let conn = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            conn,
            handle: handle.as_ptr() as usize,
        })
    }
}

/// Where the writer connection's [`Direct`] waits between batches.
#[derive(Default)]
pub(crate) struct DirectSlot(Mutex<SlotState>);

#[derive(Default)]
struct SlotState {
    direct: Option<Direct>,
    closing: bool,
}

impl DirectSlot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<Direct> {
        self.state().direct.take()
    }

    /// Keeps `direct` for the next batch, or finalizes it if the store is
    /// closing.
    fn put_back(&self, direct: Option<Direct>) {
        let mut state = self.state();
        if !state.closing {
            state.direct = direct;
        }
    }

    /// Finalizes the kept statements for good; call before closing the
    /// writer pool.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closing = true;
        state.direct = None;
    }
}

impl std::fmt::Debug for DirectSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectSlot")
    }
}

/// SQLite's writer connection, held for one write transaction after
/// another. Dropped while a transaction is open (a ROLLBACK failed), it
/// closes the connection instead of returning it to the pool, which rolls
/// the transaction back.
pub struct Batch {
    // Declared before `conn`, and taken out in `drop`: finalized or put
    // back before the connection goes back to the pool.
    direct: Option<Direct>,
    conn: PoolConnection<Sqlite>,
    slot: Arc<DirectSlot>,
    open: bool,
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
    pub(crate) fn new(conn: PoolConnection<Sqlite>, slot: Arc<DirectSlot>) -> Self {
        Self {
            direct: slot.take(),
            conn,
            slot,
            open: false,
        }
    }

    /// Borrows the connection's handle from sqlx's thread until the
    /// returned [`Locked`] is dropped. Nothing else can use the connection
    /// meanwhile (this batch holds it), and sqlx's thread waits.
    pub async fn lock(&mut self) -> Result<Locked<'_>, StoreError> {
        let mut guard: LockedSqliteHandle<'_> = self.conn.lock_handle().await.map_err(db_err)?;
        let handle = guard.as_raw_handle();
        let direct = match self.direct.take() {
            Some(kept) if kept.handle == handle.as_ptr() as usize => self.direct.insert(kept),
            // Statements of another connection would have kept it from
            // closing, so one of another handle cannot be left here; if it
            // were, it is finalized (dropped) on the handle it belongs to.
            _ => {
                // SAFETY: the handle is locked away from sqlx's thread while
                // statements run (only through `Locked`, which holds the
                // lock), and the statements are finalized before it can be
                // closed (see the module's documentation).
                self.direct.insert(unsafe { Direct::new(handle)? })
            }
        };
        Ok(Locked {
            _guard: guard,
            conn: &direct.conn,
            open: &mut self.open,
        })
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        let direct = self.direct.take();
        if self.open {
            // Finalized before the connection closes.
            drop(direct);
            self.conn.close_on_drop();
        } else {
            self.slot.put_back(direct);
        }
    }
}

/// The writer's handle, borrowed from sqlx's thread.
pub struct Locked<'a> {
    _guard: LockedSqliteHandle<'a>,
    conn: &'a rusqlite::Connection,
    open: &'a mut bool,
}

impl Locked<'_> {
    /// Runs `work` in a transaction (BEGIN IMMEDIATE … COMMIT), on this
    /// thread. If `work` or COMMIT fails, the transaction is rolled back.
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        *self.open = true;
        let done = work(&Tx { conn: self.conn })
            .and_then(|v| Ok(self.conn.execute_batch("COMMIT").map(|()| v)?));
        match done {
            Ok(v) => {
                *self.open = false;
                Ok(v)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Whether a transaction is still open: a ROLLBACK failed, and the
    /// connection is closed when the batch is dropped.
    pub fn is_open(&self) -> bool {
        *self.open
    }

    /// Rolls back whatever is open. If that fails and a transaction is
    /// still open, the batch closes the connection when dropped.
    fn rollback(&mut self) {
        if let Err(e) = self.conn.execute_batch("ROLLBACK")
            && !self.conn.is_autocommit()
        {
            tracing::warn!(error = %e, "ROLLBACK failed; closing the writer connection");
            return;
        }
        *self.open = false;
    }
}

/// An open transaction of [`Locked::transaction`].
pub struct Tx<'c> {
    conn: &'c rusqlite::Connection,
}

impl Tx<'_> {
    /// Runs `script`'s statements in order.
    pub fn run(&self, script: Script) -> Result<(), StoreError> {
        for statement in script.into_parts() {
            let mut prepared = self.prepare(&statement)?;
            prepared.raw_execute()?;
        }
        Ok(())
    }

    /// The rows of `statement`, each read by `read`.
    pub(crate) fn rows<T>(
        &self,
        statement: &Statement,
        mut read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut prepared = self.prepare(statement)?;
        let mut rows = prepared.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read(row)?);
        }
        Ok(out)
    }

    /// `statement`, prepared once per connection and kept, its values bound.
    fn prepare(&self, statement: &Statement) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
        let mut prepared = self.conn.prepare_cached(&statement.sql)?;
        let values = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
        if values.len() != prepared.parameter_count() {
            return Err(StoreError::Corrupt(format!(
                "{} values for {} parameters",
                values.len(),
                prepared.parameter_count()
            )));
        }
        for (i, value) in values.iter().enumerate() {
            bind(&mut prepared, i + 1, value)?;
        }
        Ok(prepared)
    }
}

/// Binds `value` as sqlx binds it on SQLite (sea-query's values: booleans
/// and integers as integers, JSON as its text).
fn bind(
    statement: &mut rusqlite::Statement<'_>,
    i: usize,
    value: &Value,
) -> Result<(), StoreError> {
    let bound = match value {
        Value::Bool(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::TinyInt(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::SmallInt(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::Int(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::BigInt(v) => statement.raw_bind_parameter(i, v),
        Value::TinyUnsigned(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::SmallUnsigned(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::Unsigned(v) => statement.raw_bind_parameter(i, v.map(i64::from)),
        Value::BigUnsigned(v) => {
            let v = v
                .map(i64::try_from)
                .transpose()
                .map_err(|_| StoreError::Corrupt(format!("{v:?} does not fit SQLite's integer")))?;
            statement.raw_bind_parameter(i, v)
        }
        Value::Float(v) => statement.raw_bind_parameter(i, v.map(f64::from)),
        Value::Double(v) => statement.raw_bind_parameter(i, v),
        Value::String(v) => statement.raw_bind_parameter(i, v.as_deref()),
        Value::Char(v) => statement.raw_bind_parameter(i, v.map(String::from)),
        Value::Bytes(v) => statement.raw_bind_parameter(i, v.as_deref()),
        Value::Json(v) => statement.raw_bind_parameter(i, v.as_ref().map(|j| j.to_string())),
        other => {
            return Err(StoreError::Corrupt(format!(
                "a {other:?} value has no SQLite binding here"
            )));
        }
    };
    Ok(bound?)
}
