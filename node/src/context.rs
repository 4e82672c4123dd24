//! The opaque causal context handed to clients: a clock, versioned, tagged
//! with the cluster it belongs to and checksummed.
//!
//! Layout (format 1): `format u8 | cluster u64 LE | entries varint |
//! (node u64 LE, counter varint)* | crc32 u32 LE` over everything before it.

use bytes::Bytes;
use thiserror::Error;

use crate::encoding::{DecodeError, Reader, put_varint};
use crate::version::Clock;

/// The context format this node writes and reads.
pub const FORMAT: u8 = 1;

/// Most clock entries a context may carry.
pub const MAX_ENTRIES: usize = 1024;

/// Why a context was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ContextError {
    /// The bytes do not parse.
    #[error("the context is malformed ({source}); pass it exactly as a get returned it")]
    Malformed {
        /// Where parsing failed.
        source: DecodeError,
    },
    /// The checksum does not match the content.
    #[error("the context's checksum does not match; it was altered or truncated")]
    Checksum,
    /// A format this node does not know.
    #[error("the context has format {format}, but this node reads format {FORMAT}")]
    UnsupportedFormat {
        /// The format byte found.
        format: u8,
    },
    /// The context came from another cluster.
    #[error("the context belongs to another cluster; use a context this cluster returned")]
    Foreign,
    /// More clock entries than allowed.
    #[error("the context has {entries} clock entries; at most {MAX_ENTRIES} are allowed")]
    TooLarge {
        /// Entries found.
        entries: u64,
    },
}

impl From<DecodeError> for ContextError {
    fn from(source: DecodeError) -> Self {
        Self::Malformed { source }
    }
}

/// Serializes `clock` as a context of `cluster`.
pub fn encode(cluster: u64, clock: &Clock) -> Bytes {
    let mut out = Vec::with_capacity(1 + 8 + 1 + clock.len() * 12 + 4);
    out.push(FORMAT);
    out.extend_from_slice(&cluster.to_le_bytes());
    put_varint(&mut out, clock.len() as u64);
    for (node, counter) in clock.entries() {
        out.extend_from_slice(&node.to_le_bytes());
        put_varint(&mut out, counter);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Bytes::from(out)
}

/// Parses a context and checks that it belongs to `cluster`. Empty input is
/// the empty clock (a blind write).
///
/// # Errors
/// [`ContextError`] saying what is wrong; never panics on any input.
pub fn decode(cluster: u64, bytes: &[u8]) -> Result<Clock, ContextError> {
    if bytes.is_empty() {
        return Ok(Clock::new());
    }
    let format = bytes[0];
    if format != FORMAT {
        return Err(ContextError::UnsupportedFormat { format });
    }
    let body_len = bytes.len().checked_sub(4).ok_or(DecodeError {
        what: "context checksum",
        offset: 0,
    })?;
    let (body, crc) = bytes.split_at(body_len);
    let crc = u32::from_le_bytes(crc.try_into().expect("split at len - 4"));
    if crc32fast::hash(body) != crc {
        return Err(ContextError::Checksum);
    }
    let mut reader = Reader::new(&body[1..]);
    if reader.u64_le("context cluster")? != cluster {
        return Err(ContextError::Foreign);
    }
    let entries = reader.varint("context entry count")?;
    if entries > MAX_ENTRIES as u64 {
        return Err(ContextError::TooLarge { entries });
    }
    let mut pairs = Vec::with_capacity(entries as usize);
    for _ in 0..entries {
        let node = reader.u64_le("context node")?;
        let counter = reader.varint("context counter")?;
        pairs.push((node, counter));
    }
    if reader.remaining() != 0 {
        return Err(DecodeError {
            what: "context (trailing bytes)",
            offset: body.len() - reader.remaining(),
        }
        .into());
    }
    Ok(Clock::from_entries(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLUSTER: u64 = 42;

    #[test]
    fn empty_means_no_context() {
        assert_eq!(decode(CLUSTER, &[]), Ok(Clock::new()));
    }

    #[test]
    fn foreign_and_altered_contexts_are_refused() {
        let clock = Clock::from_entries([(1, 2), (3, 4)]);
        let bytes = encode(CLUSTER, &clock);
        assert_eq!(decode(CLUSTER + 1, &bytes), Err(ContextError::Foreign));
        let mut altered = bytes.to_vec();
        altered[10] ^= 1;
        assert_eq!(decode(CLUSTER, &altered), Err(ContextError::Checksum));
        let mut future = bytes.to_vec();
        future[0] = 9;
        assert_eq!(
            decode(CLUSTER, &future),
            Err(ContextError::UnsupportedFormat { format: 9 })
        );
        assert!(matches!(
            decode(CLUSTER, &bytes[..3]),
            Err(ContextError::Malformed { .. } | ContextError::Checksum)
        ));
    }

    proptest! {
        #[test]
        fn contexts_round_trip(entries in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..20)) {
            let clock = Clock::from_entries(entries);
            prop_assert_eq!(decode(CLUSTER, &encode(CLUSTER, &clock)), Ok(clock));
        }

        #[test]
        fn garbage_is_refused_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
            bytes[0] = FORMAT;
            prop_assert!(decode(CLUSTER, &bytes).is_err());
        }
    }
}
