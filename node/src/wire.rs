//! Conversions between engine types and `dynamo.v1` messages. Everything that
//! arrives from the network is checked here before the engine sees it.

use dynamo_proto::v1 as pb;

use crate::config::{LimitError, Limits};
pub use crate::durability::{
    UnknownDurability, check_durability, durability_from_pb, durability_of_pb, durability_to_pb,
};
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
    /// The set breaks one of this node's [`Limits`].
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A key is not a valid bucket-qualified key.
    #[error(transparent)]
    Key(#[from] dynamo_ring::QualifiedKeyError),
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

/// Checks and converts a sibling set a peer sent for this node to store
/// (a replica write, a hint, a streamed partition): besides the checks of
/// [`set_from_pb`], at most `max_replica_siblings` versions and no value
/// over `max_value_bytes`. A missing set is empty.
///
/// # Errors
/// [`WireError`] when the set breaks a limit or an invariant.
pub fn set_from_peer(
    message: Option<pb::SiblingSet>,
    limits: &Limits,
) -> Result<SiblingSet, WireError> {
    if let Some(set) = &message {
        if set.versions.len() > limits.max_replica_siblings {
            return Err(LimitError::TooManyVersions {
                count: set.versions.len(),
                limit: limits.max_replica_siblings,
            }
            .into());
        }
        for version in &set.versions {
            limits.check_value(&version.value)?;
        }
    }
    set_from_pb(message)
}

/// The client-facing view of one version.
pub fn sibling_to_pb(version: &Version) -> pb::Sibling {
    pb::Sibling {
        value: version.value.clone(),
        tombstone: version.tombstone,
        timestamp_ms: version.timestamp_ms,
    }
}

/// Checks a bucket-qualified key from a peer: it decodes, and its user
/// key is within the key size limit.
///
/// # Errors
/// [`WireError::Key`] or [`WireError::Limit`].
pub fn check_engine_key(key: &[u8], limits: &Limits) -> Result<(), WireError> {
    // A key longer than any header plus the largest user key is refused by
    // its size before its header is read.
    let header = 2 + dynamo_ring::MAX_BUCKET_NAME;
    if key.len() > header + limits.max_key_bytes {
        return Err(LimitError::KeyTooLarge {
            bytes: key.len(),
            limit: limits.max_key_bytes,
        }
        .into());
    }
    let qualified = dynamo_ring::QualifiedKey::decode(key)?;
    limits.check_key(qualified.key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(value: &'static [u8]) -> pb::Version {
        pb::Version {
            dot_node: 1,
            dot_counter: 1,
            value: bytes::Bytes::from_static(value),
            ..pb::Version::default()
        }
    }

    #[test]
    fn an_engine_key_past_any_header_is_refused_by_its_size_first() {
        let limits = Limits::default();
        let long = vec![b'k'; 2 + dynamo_ring::MAX_BUCKET_NAME + limits.max_key_bytes + 1];
        assert!(matches!(
            check_engine_key(&long, &limits),
            Err(WireError::Limit(LimitError::KeyTooLarge { .. }))
        ));
    }

    #[test]
    fn sets_from_peers_keep_to_the_value_and_sibling_limits() {
        let limits = Limits {
            max_value_bytes: 2,
            max_replica_siblings: 2,
            ..Limits::default()
        };
        let set = |versions: Vec<pb::Version>| Some(pb::SiblingSet { versions });
        assert!(set_from_peer(set(vec![version(b"ab")]), &limits).is_ok());
        assert_eq!(
            set_from_peer(set(vec![version(b"abc")]), &limits),
            Err(WireError::Limit(LimitError::ValueTooLarge {
                bytes: 3,
                limit: 2
            }))
        );
        let three = vec![version(b"a"), version(b"b"), version(b"c")];
        assert!(matches!(
            set_from_peer(set(three), &limits),
            Err(WireError::Limit(LimitError::TooManyVersions {
                count: 3,
                limit: 2
            }))
        ));
        assert_eq!(set_from_peer(None, &limits).map(|s| s.len()), Ok(0));
    }

    #[test]
    fn unknown_durabilities_are_refused() {
        assert_eq!(check_durability(2), Ok(pb::Durability::Sync));
        assert_eq!(check_durability(99), Err(UnknownDurability { value: 99 }));
        assert!(check_durability(-1).is_err());
    }
}
