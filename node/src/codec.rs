//! On-disk encoding of a sibling set (format 1).
//!
//! Layout: `format u8 | versions varint | per version: node u64 LE, counter
//! varint, timestamp varint, flags u8, past entries varint, (node u64 LE,
//! counter varint)*, value length varint, value bytes`.

use bytes::Bytes;

use crate::encoding::{DecodeError, Reader, put_varint};
use crate::version::{Clock, Dot, SiblingSet, Version};

/// The storage format this node writes.
pub const FORMAT: u8 = 1;

const TOMBSTONE: u8 = 1;
const MAX_VERSIONS: usize = 1 << 16;
const MAX_PAST: usize = 1 << 16;
const MAX_VALUE: usize = 1 << 31;

/// Encodes a sibling set for storage.
pub fn encode(set: &SiblingSet) -> Vec<u8> {
    let size: usize = set
        .versions()
        .iter()
        .map(|version| 32 + version.past.len() * 12 + version.value.len())
        .sum();
    let mut out = Vec::with_capacity(2 + size);
    out.push(FORMAT);
    put_varint(&mut out, set.len() as u64);
    for version in set.versions() {
        out.extend_from_slice(&version.dot.node.to_le_bytes());
        put_varint(&mut out, version.dot.counter);
        put_varint(&mut out, version.timestamp_ms);
        out.push(if version.tombstone { TOMBSTONE } else { 0 });
        put_varint(&mut out, version.past.len() as u64);
        for (node, counter) in version.past.entries() {
            out.extend_from_slice(&node.to_le_bytes());
            put_varint(&mut out, counter);
        }
        put_varint(&mut out, version.value.len() as u64);
        out.extend_from_slice(&version.value);
    }
    out
}

/// Decodes a stored sibling set.
///
/// # Errors
/// [`DecodeError`] when the bytes are not a format-1 sibling set.
pub fn decode(bytes: &[u8]) -> Result<SiblingSet, DecodeError> {
    let mut reader = Reader::new(bytes);
    if reader.u8("sibling set format")? != FORMAT {
        return Err(DecodeError {
            what: "sibling set format",
            offset: 0,
        });
    }
    let count = reader.len(MAX_VERSIONS, "version count")?;
    let mut versions = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let node = reader.u64_le("dot node")?;
        let counter = reader.varint("dot counter")?;
        let timestamp_ms = reader.varint("timestamp")?;
        let flags = reader.u8("flags")?;
        let past_len = reader.len(MAX_PAST, "past length")?;
        let mut past = Vec::with_capacity(past_len.min(64));
        for _ in 0..past_len {
            past.push((reader.u64_le("past node")?, reader.varint("past counter")?));
        }
        let value_len = reader.len(MAX_VALUE, "value length")?;
        let value = Bytes::copy_from_slice(reader.take(value_len, "value")?);
        versions.push(Version {
            dot: Dot { node, counter },
            past: Clock::from_entries(past),
            value,
            tombstone: flags & TOMBSTONE != 0,
            timestamp_ms,
        });
    }
    Ok(SiblingSet::from_versions(versions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sets_round_trip(raw in proptest::collection::vec(
            (any::<u64>(), 1u64..100, any::<u64>(), any::<bool>(),
             proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
             proptest::collection::vec(any::<u8>(), 0..40)), 0..5)) {
            let versions = raw.into_iter().map(|(node, counter, ts, tomb, past, value)| Version {
                dot: Dot { node, counter },
                past: Clock::from_entries(past.into_iter().filter(|&(n, _)| n != node)),
                value: Bytes::from(value),
                tombstone: tomb,
                timestamp_ms: ts,
            }).collect();
            let set = SiblingSet::from_versions(versions);
            prop_assert_eq!(decode(&encode(&set)), Ok(set));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&bytes);
        }
    }
}
