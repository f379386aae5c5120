//! Herald's storage: sea-orm over SQLite (the embedded default) or PostgreSQL,
//! one set of migrations, and repositories that always take the tenant.
//!
//! Repository functions take any connection (`store.read()` for the read
//! pool, `tx.conn()` inside a write transaction) so the same query serves both.
//! They return domain records, never entities.

pub mod api_keys;
pub mod audit;
mod batch;
pub mod body;
mod convert;
mod entity;
mod error;
pub mod events;
pub mod idempotency;
pub mod identities;
pub mod leases;
pub mod messages;
pub mod oauth;
pub mod relay_profiles;
mod script;
pub mod secrets;
pub mod sessions;
pub mod suppressions;
pub mod tenants;
pub mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use batch::{Batch, Locked, Tx as LockedTx};
pub use error::StoreError;
pub use script::Script;
pub use sea_orm::ConnectionTrait as Connection;
pub use sea_orm::DbBackend;
pub use sea_orm::Statement;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: a writer and a reader. On SQLite the writer is one
/// connection whose transactions begin IMMEDIATE (so writers queue on the
/// busy timeout instead of failing with "database is locked") and the reader
/// a pool of read-only connections, which WAL lets run beside the writer. On
/// PostgreSQL both are the same pool.
#[derive(Debug, Clone)]
pub struct Store {
    /// SQLite only: the writer's statements prepared for [`Batch`].
    /// Declared first, so that the last store dropped finalizes them
    /// before its writer pool can close the connection they are on.
    direct: Arc<batch::DirectSlot>,
    writer: DatabaseConnection,
    reader: DatabaseConnection,
    /// SQLite only: the connection that copies the WAL into the database
    /// file (see [`checkpoint_loop`]).
    checkpointer: Option<DatabaseConnection>,
    backend: Backend,
}

/// An open write transaction. Dropping it without [`Tx::commit`] rolls back.
pub struct Tx(DatabaseTransaction);

impl Tx {
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.0
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(StoreError::from)
    }
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection. Batched statements come in a
/// few shapes each (see [`shaped`]); SQLite's writer sees about a hundred.
const STATEMENT_CACHE: usize = 256;

/// Splits `items` into runs of `max`, then of falling powers of two down
/// to [`SMALL`], then what is left (1,000 rows at 256: 256, 256, 256, 128,
/// 64, 32, 8). A statement with a row or a parameter per item then takes a
/// few large shapes, which each connection prepares once and keeps,
/// instead of parsing a new statement of thousands of parameters for every
/// batch size (on SQLite that parse cost more than running it). Below
/// `SMALL` a statement is cheap to parse, and one more round trip to the
/// database would cost more than the parse saves.
pub(crate) fn shaped<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= max {
            max
        } else if rest.len() >= SMALL {
            1 << rest.len().ilog2()
        } else {
            rest.len()
        };
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

/// The `i`th (from 0) bind parameter in the backend's syntax.
pub(crate) fn placeholder(backend: sea_orm::DbBackend, i: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${}", i + 1),
        _ => "?".to_owned(),
    }
}

/// Batches smaller than this go in one statement, whatever their size.
const SMALL: usize = 32;

impl Store {
    /// Opens `url`: `sqlite://PATH` (created if missing, with its directory)
    /// or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut opts = ConnectOptions::new(url);
            opts.max_connections(16)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .sqlx_logging(false)
                .map_sqlx_postgres_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE));
            let pool = Database::connect(opts).await?;
            return Ok(Self {
                writer: pool.clone(),
                reader: pool,
                checkpointer: None,
                direct: Arc::default(),
                backend: Backend::Postgres,
            });
        }
        let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::Config(format!(
                "database URL must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or_default()
            )));
        };
        let path = path.split('?').next().unwrap_or_default().to_owned();
        if let Some(dir) = Path::new(&path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let sqlite = |read_only: bool, writer: bool, max: u32, autocheckpoint: u32| {
            let mut opts = ConnectOptions::new(format!("sqlite://{path}"));
            if writer {
                // The writer: it keeps its connection for good, since the
                // statements `Batch` keeps prepared on it must be finalized
                // before it closes (see `batch`).
                opts.idle_timeout(None).max_lifetime(None);
            }
            opts.max_connections(max)
                .min_connections(1)
                .acquire_timeout(BUSY_TIMEOUT * 2)
                // The pool's health check before every acquire is a round
                // trip to the connection's thread (two context switches,
                // each a wait for a core under load) that can find nothing
                // wrong with a local file.
                .test_before_acquire(false)
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(!read_only)
                        .read_only(read_only)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(BUSY_TIMEOUT)
                        .foreign_keys(true)
                        // Rows cross from SQLite's thread to the caller
                        // through a bounded channel; at sqlx's 50 a claim
                        // of 256 messages blocked the thread five times.
                        .row_buffer_size(1024)
                        .statement_cache_capacity(STATEMENT_CACHE)
                        .pragma("wal_autocheckpoint", autocheckpoint.to_string())
                        // Statement journals, RETURNING buffers and sorts
                        // stay in memory: as files, the writer created and
                        // deleted one every 30 ms of a delivery run.
                        .pragma("temp_store", "memory")
                        // The writer's statements kept by `Batch` may be
                        // finalized from another thread than sqlx's.
                        .serialized(writer)
                });
            opts
        };
        // The writer first: it creates the file and switches it to WAL.
        let writer = Database::connect(sqlite(false, true, 1, WRITER_AUTOCHECKPOINT)).await?;
        let reader = Database::connect(sqlite(true, false, 4, 0)).await?;
        let checkpointer = Database::connect(sqlite(false, false, 1, 0)).await?;
        tokio::spawn(checkpoint_loop(checkpointer.clone()));
        Ok(Self {
            writer,
            reader,
            checkpointer: Some(checkpointer),
            direct: Arc::default(),
            backend: Backend::Sqlite,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations and returns how many ran (0 when the
    /// schema is current).
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let pending = Migrator::get_pending_migrations(&self.writer).await?.len();
        Migrator::up(&self.writer, None).await?;
        Ok(pending)
    }

    /// The read pool.
    pub fn read(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// Begins a write transaction (IMMEDIATE on SQLite).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.backend == Backend::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok(Tx(self.writer.begin_with_options(options).await?))
    }

    /// On SQLite, the writer's connection for a [`Batch`]: a transaction
    /// that begins and commits with its statements. `None` on PostgreSQL,
    /// whose transactions are [`Store::begin`]'s.
    pub async fn batch(&self) -> Option<Result<Batch, StoreError>> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        Some(
            self.writer
                .get_sqlite_connection_pool()
                .acquire()
                .await
                .map(|conn| Batch::new(conn, self.direct.clone()))
                .map_err(batch::acquire_err),
        )
    }

    /// Checks that the database answers (for /readyz).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.reader.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    pub async fn close(self) {
        // Before the pools: SQLite refuses to close the writer connection
        // while the statements `Batch` keeps are prepared.
        self.direct.close();
        let _ = self.reader.close().await;
        let _ = self.writer.close().await;
        if let Some(c) = self.checkpointer {
            let _ = c.close().await;
        }
    }
}

/// How soon the checkpointer looks again after a pass that found new
/// commits. The writer restarts the WAL with a checkpoint of its own every
/// [`WRITER_AUTOCHECKPOINT`] pages, and that checkpoint, inside a commit
/// that every waiting submission waits for, copies whatever this one has
/// not copied yet. Passes 50 ms apart left up to 50 ms of commits (6 MB at
/// the acceptance peak) to it: every 250 ms one group commit took 6–25 ms
/// instead of 2, and that set the p99 of acceptance (18–22 ms in each
/// quarter second of a run at 80% of the peak). 10 ms apart, those commits
/// took 3–7 ms at 80% and the p99 in most quarter seconds was 7–12 ms; the
/// p99 at the peak went from 17–19 ms to 9–13 ms (`scripts/bench --parts
/// acceptance`, each commit's duration and each request's latency logged
/// with timestamps by a patch not kept). Near the writer's checkpoint the
/// checkpointer looks sooner still ([`CHECKPOINT_NEAR_RESTART`]).
const CHECKPOINT_BUSY: Duration = Duration::from_millis(10);

/// How soon the checkpointer looks again once the WAL is within an eighth
/// of the writer's own checkpoint: what that checkpoint copies and syncs
/// inside its commit is what arrived since this one's last pass. At 10 ms,
/// that was 400–600 pages, and on a slow day the commit carrying it took
/// 10–21 ms, 34–36 times in a 10 s run at 80% of the peak; once the
/// database had grown, the peak's p99 was 17.8–19.2 ms with 39 commits
/// over 8 ms. At 1 ms near the restart: no commit over 8 ms at 80% but the
/// device's own stalls, and the later peak's p99 11.1–13.8 ms in four of
/// five runs (every pass and commit timed by a patch not kept).
const CHECKPOINT_NEAR_RESTART: Duration = Duration::from_millis(1);

/// How soon the checkpointer looks again after a pass that found nothing
/// new: an idle server is not woken 100 times a second.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(100);

/// WAL pages after which the writer checkpoints itself (the fallback when
/// the checkpointer falls behind). SQLite's default, 1,000 pages, made
/// every tenth group commit also copy 4 MB into the database file and wait
/// for it to reach the disk, with every submission of the next batch
/// waiting behind it.
const WRITER_AUTOCHECKPOINT: u32 = 8_000;

/// Copies committed WAL pages into the database file, on a connection of
/// its own, so that commits only append to the WAL. A PASSIVE checkpoint
/// takes no lock the writer needs: commits go on while it copies. It cannot
/// start the WAL over while commits keep coming; the writer does that at
/// its own checkpoint every [`WRITER_AUTOCHECKPOINT`] pages, which finds
/// nearly everything copied already (at most [`CHECKPOINT_BUSY`] of
/// commits). Ends when the store is closed.
async fn checkpoint_loop(db: DatabaseConnection) {
    let mut last = None;
    loop {
        let pause = match checkpoint(&db).await {
            Ok(pass) => pause_after(&mut last, pass),
            Err(sea_orm::DbErr::ConnectionAcquire(
                sea_orm::error::ConnAcquireErr::ConnectionClosed,
            )) => return,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                CHECKPOINT_IDLE
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// How long the checkpointer waits after a pass that read `pass` (the WAL's
/// frames and how many are in the database file; `None` if the writer was
/// checkpointing itself), given the `last` pass that could read them.
///
/// While the writer checkpoints itself, the checkpointer looks again soon:
/// the writer restarts the WAL as soon as it is done, and the new WAL's
/// first pages are this one's to copy. That is no reading of the WAL: once
/// SQLite's -1 for both counts was taken for one, the second such pass in a
/// row looked like an idle WAL, and the checkpointer slept
/// [`CHECKPOINT_IDLE`] after every restart, while the restarted WAL filled
/// with ~2,800 frames at 80% of the acceptance peak; its next pass then
/// took 50–80 ms and left more for the writer's next own checkpoint.
fn pause_after(last: &mut Option<(i64, i64)>, pass: Option<(i64, i64)>) -> Duration {
    let Some(frames) = pass else {
        return CHECKPOINT_NEAR_RESTART;
    };
    let idle = *last == Some(frames);
    *last = Some(frames);
    if idle {
        CHECKPOINT_IDLE
    } else if frames.0 >= i64::from(WRITER_AUTOCHECKPOINT) * 7 / 8 {
        CHECKPOINT_NEAR_RESTART
    } else {
        CHECKPOINT_BUSY
    }
}

/// One PASSIVE checkpoint: the WAL's frames and how many of them are in the
/// database file now, or `None` if it could not start because another
/// checkpoint was running (the writer's own: SQLite then reports -1 for
/// both counts, which are no reading of the WAL).
async fn checkpoint(db: &DatabaseConnection) -> Result<Option<(i64, i64)>, sea_orm::DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?;
    let column = |i| row.as_ref().map_or(Ok(0), |r| r.try_get_by_index::<i64>(i));
    if column(0)? != 0 {
        return Ok(None);
    }
    Ok(Some((column(1)?, column(2)?)))
}

#[cfg(test)]
mod tests {
    use super::{
        CHECKPOINT_BUSY, CHECKPOINT_IDLE, CHECKPOINT_NEAR_RESTART, WRITER_AUTOCHECKPOINT,
        pause_after, shaped,
    };

    #[test]
    fn the_checkpointer_rests_only_when_the_wal_stood_still() {
        let mut last = None;
        assert_eq!(pause_after(&mut last, Some((100, 100))), CHECKPOINT_BUSY);
        assert_eq!(pause_after(&mut last, Some((100, 100))), CHECKPOINT_IDLE);
        let near = i64::from(WRITER_AUTOCHECKPOINT) - 10;
        assert_eq!(
            pause_after(&mut last, Some((near, near))),
            CHECKPOINT_NEAR_RESTART
        );
        // The writer checkpoints itself, for several passes: each is looked
        // at again soon, and none counts as a reading of the WAL.
        for _ in 0..3 {
            assert_eq!(pause_after(&mut last, None), CHECKPOINT_NEAR_RESTART);
        }
        assert_eq!(last, Some((near, near)));
        // The restarted WAL is busy, not idle.
        assert_eq!(pause_after(&mut last, Some((40, 40))), CHECKPOINT_BUSY);
    }

    #[test]
    fn batches_split_into_few_shapes_and_lose_nothing() {
        let items: Vec<u32> = (0..1000).collect();
        let sizes: Vec<usize> = shaped(&items, 256).map(<[u32]>::len).collect();
        assert_eq!(sizes, [256, 256, 256, 128, 64, 32, 8]);
        // A group commit's usual batch is one statement.
        assert_eq!(shaped(&items[..31], 256).count(), 1);
        let back: Vec<u32> = shaped(&items, 256).flatten().copied().collect();
        assert_eq!(back, items);
        for n in 0..600 {
            let items: Vec<u32> = (0..n).collect();
            let chunks: Vec<&[u32]> = shaped(&items, 256).collect();
            assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), n as usize);
            if let Some((last, big)) = chunks.split_last() {
                let shape = |c: &&[u32]| c.len() == 256 || c.len().is_power_of_two();
                assert!(big.iter().all(shape));
                assert!(last.len() < 32 || shape(last));
            }
            assert!(chunks.len() <= 4 + n as usize / 256, "{n}: {chunks:?}");
        }
    }
}
