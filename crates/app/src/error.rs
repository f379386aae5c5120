use herald_domain::InvalidInput;
use herald_store::StoreError;

/// Why a use case refused or failed. The HTTP layer maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input that does not parse or breaks a rule; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// Input refused at a nested field, named by its dotted path.
    #[error("{message}")]
    InvalidField { field: String, message: String },
    /// The message is larger than the rules allow (Max Size).
    #[error("{0}")]
    TooLarge(String),
    /// No such resource in the caller's tenant (also: it is another tenant's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No or wrong credentials. Says nothing about which part was wrong.
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// Anything else. The detail is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn conflict(field: Option<&'static str>, message: impl Into<String>) -> Self {
        AppError::Conflict {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(field) => {
                AppError::conflict(Some(field), format!("{field} is already taken"))
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}
