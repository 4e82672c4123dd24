//! Durability on the wire: the one [`Durability`] type of client, coordinator
//! and disk, converted to and from its protobuf enum.

use dynamo_proto::v1 as pb;

pub use dynamo_ring::Durability;

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

/// The durability a message names, `None` for DEFAULT.
pub fn durability_of_pb(durability: pb::Durability) -> Option<Durability> {
    match durability {
        pb::Durability::Sync => Some(Durability::Sync),
        pb::Durability::Buffer => Some(Durability::Buffer),
        pb::Durability::Default => None,
    }
}

/// A durability field that names no [`pb::Durability`] value.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[error("durability {value} is unknown; use DEFAULT (0), BUFFER (1) or SYNC (2)")]
pub struct UnknownDurability {
    /// The value received.
    pub value: i32,
}

/// The durability field of a message, refusing a value the protocol does
/// not define (prost would read it as `DEFAULT`).
///
/// # Errors
/// [`UnknownDurability`] for such a value.
pub fn check_durability(value: i32) -> Result<pb::Durability, UnknownDurability> {
    pb::Durability::try_from(value).map_err(|_| UnknownDurability { value })
}
