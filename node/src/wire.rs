//! Conversions between engine types and `dynamo.v1` messages. Everything that
//! arrives from the network is checked here before the engine sees it.

use dynamo_proto::v1 as pb;

use crate::storage::Durability;
use crate::version::{Clock, Dot, SiblingSet, Version};

/// Most versions a sibling set from a peer may carry.
pub const MAX_WIRE_VERSIONS: usize = 4096;
/// Most clock entries a version from a peer may carry.
pub const MAX_WIRE_PAST: usize = 4096;

/// A peer sent something the engine cannot accept.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Too many versions in one set.
    #[error("a sibling set carries {count} versions; at most {MAX_WIRE_VERSIONS} are accepted")]
    TooManyVersions {
        /// Versions received.
        count: usize,
    },
    /// Too many clock entries in one version.
    #[error("a version carries {count} clock entries; at most {MAX_WIRE_PAST} are accepted")]
    TooManyClockEntries {
        /// Entries received.
        count: usize,
    },
    /// A dot with counter zero, which no coordinator hands out.
    #[error("a version has the invalid dot counter 0")]
    ZeroDot,
}

/// Converts a version to its message.
pub fn version_to_pb(version: &Version) -> pb::Version {
    pb::Version {
        dot_node: version.dot.node,
        dot_counter: version.dot.counter,
        past: clock_to_pb(&version.past),
        value: version.value.clone(),
        tombstone: version.tombstone,
        timestamp_ms: version.timestamp_ms,
    }
}

/// Converts a clock to its entries.
pub fn clock_to_pb(clock: &Clock) -> Vec<pb::ClockEntry> {
    clock
        .entries()
        .map(|(node, counter)| pb::ClockEntry { node, counter })
        .collect()
}

/// Converts a sibling set to its message.
pub fn set_to_pb(set: &SiblingSet) -> pb::SiblingSet {
    pb::SiblingSet {
        versions: set.versions().iter().map(version_to_pb).collect(),
    }
}

/// Checks and converts a version from a peer.
///
/// # Errors
/// [`WireError`] when the version breaks a limit or an invariant.
pub fn version_from_pb(message: pb::Version) -> Result<Version, WireError> {
    if message.past.len() > MAX_WIRE_PAST {
        return Err(WireError::TooManyClockEntries {
            count: message.past.len(),
        });
    }
    if message.dot_counter == 0 {
        return Err(WireError::ZeroDot);
    }
    Ok(Version {
        dot: Dot {
            node: message.dot_node,
            counter: message.dot_counter,
        },
        past: Clock::from_entries(message.past.iter().map(|e| (e.node, e.counter))),
        value: message.value,
        tombstone: message.tombstone,
        timestamp_ms: message.timestamp_ms,
    })
}

/// Checks and converts a sibling set from a peer. A missing set is empty.
///
/// # Errors
/// [`WireError`] when the set breaks a limit or an invariant.
pub fn set_from_pb(message: Option<pb::SiblingSet>) -> Result<SiblingSet, WireError> {
    let versions = message.map(|set| set.versions).unwrap_or_default();
    if versions.len() > MAX_WIRE_VERSIONS {
        return Err(WireError::TooManyVersions {
            count: versions.len(),
        });
    }
    let versions = versions
        .into_iter()
        .map(version_from_pb)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SiblingSet::from_versions(versions))
}

/// The client-facing view of one version.
pub fn sibling_to_pb(version: &Version) -> pb::Sibling {
    pb::Sibling {
        value: version.value.clone(),
        tombstone: version.tombstone,
        timestamp_ms: version.timestamp_ms,
    }
}

/// The wire form of a durability.
pub fn durability_to_pb(durability: Durability) -> pb::Durability {
    match durability {
        Durability::Buffer => pb::Durability::Buffer,
        Durability::Sync => pb::Durability::Sync,
    }
}

/// The durability a message asks for, `default` when it leaves it to the
/// node.
pub fn durability_from_pb(durability: pb::Durability, default: Durability) -> Durability {
    match durability {
        pb::Durability::Sync => Durability::Sync,
        pb::Durability::Buffer => Durability::Buffer,
        pb::Durability::Default => default,
    }
}
