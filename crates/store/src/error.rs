use sea_orm::{DbErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; names the input field.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// A stored value no longer parses: the database was changed by hand or
    /// by a newer Herald.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
    #[error("sealed secret: {0}")]
    Sealing(#[from] herald_crypto::KeyRingError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// From SQLite's writer connection driven directly (see `Batch`).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        use rusqlite::ffi;
        match self {
            StoreError::Db(e) => matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }

    /// Turns a unique-constraint violation into a conflict on `field`.
    pub(crate) fn unique_as(err: DbErr, field: &'static str) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => StoreError::Conflict(field),
            _ => StoreError::Db(err),
        }
    }
}
