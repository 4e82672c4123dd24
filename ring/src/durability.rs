//! Durability: how hard a write is pushed to disk before a replica
//! acknowledges it. One type from the client's options to the storage
//! engine; the wire carries it as the protocol's enum.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How hard a write is pushed to disk before a replica acknowledges it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Written to the journal and handed to the operating system.
    #[default]
    Buffer,
    /// Written to the journal and fsynced.
    Sync,
}

impl Durability {
    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buffer => "buffer",
            Self::Sync => "sync",
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A durability name that is neither `buffer` nor `sync`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("durability must be buffer or sync, not {given:?}")]
pub struct DurabilityError {
    /// The text given.
    pub given: String,
}

impl std::str::FromStr for Durability {
    type Err = DurabilityError;

    /// Parses `buffer` or `sync`.
    ///
    /// # Errors
    /// [`DurabilityError`] for anything else.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "buffer" => Ok(Self::Buffer),
            "sync" => Ok(Self::Sync),
            other => Err(DurabilityError {
                given: other.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for durability in [Durability::Buffer, Durability::Sync] {
            assert_eq!(durability.to_string().parse(), Ok(durability));
        }
        let error = "fsync".parse::<Durability>().expect_err("not a durability");
        assert_eq!(
            error.to_string(),
            "durability must be buffer or sync, not \"fsync\""
        );
        assert_eq!(Durability::default(), Durability::Buffer);
    }
}
