//! The audit trail: who changed which setting, and when.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a change did to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    Create,
    Update,
    Delete,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Create, Self::Update, Self::Delete]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the fields a change touched. A secret field is listed by name
/// only: its value never enters the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangedFields(Vec<String>);

impl ChangedFields {
    pub fn new() -> Self {
        Self::default()
    }

    /// A change known to touch exactly these fields (a creation, a password).
    pub fn of(names: &[&str]) -> Self {
        let mut fields = Self::new();
        names.iter().for_each(|n| fields.push(n));
        fields
    }

    /// Records `name` when `before` and `after` differ.
    pub fn compare<T: PartialEq + ?Sized>(&mut self, name: &str, before: &T, after: &T) {
        if before != after {
            self.push(name);
        }
    }

    pub fn push(&mut self, name: &str) {
        if !self.0.iter().any(|n| n == name) {
            self.0.push(name.to_owned());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for ChangedFields {
    fn from(names: Vec<String>) -> Self {
        let mut fields = Self::new();
        names.iter().for_each(|n| fields.push(n));
        fields
    }
}
