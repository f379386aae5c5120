//! Stored strings back into domain types. A value that fails to parse here
//! was written by something other than Herald: report it, never panic.

use std::str::FromStr;

use crate::StoreError;

pub(crate) fn parse<T>(value: &str, what: &str) -> Result<T, StoreError>
where
    T: FromStr,
{
    T::from_str(value).map_err(|_| StoreError::Corrupt(format!("{what}: {value:?}")))
}

pub(crate) fn parse_with<T, E>(
    value: &str,
    what: &str,
    f: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    f(value).map_err(|_| StoreError::Corrupt(format!("{what}: {value:?}")))
}
