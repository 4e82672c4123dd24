//! Partition math: Q equal partitions of the MD5 space, a key's position
//! and its partition, and the one limit on Q.

use md5::{Digest as _, Md5};
use thiserror::Error;

/// Most partitions a ring may have (Q).
pub const MAX_PARTITIONS: u32 = 1 << 16;

/// A partition count that no ring may have.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("partitions must be a power of two between 1 and {MAX_PARTITIONS}, not {partitions}")]
pub struct PartitionsError {
    /// The partition count given.
    pub partitions: u64,
}

/// Checks that `partitions` is a power of two in `1..=MAX_PARTITIONS`.
///
/// # Errors
/// [`PartitionsError`] otherwise.
///
/// # Examples
/// ```
/// assert_eq!(dynamo_ring::check_partitions(256), Ok(256));
/// assert!(dynamo_ring::check_partitions(100).is_err());
/// assert!(dynamo_ring::check_partitions(1 << 17).is_err());
/// ```
pub fn check_partitions(partitions: u64) -> Result<u32, PartitionsError> {
    match u32::try_from(partitions) {
        Ok(q) if q.is_power_of_two() && q <= MAX_PARTITIONS => Ok(q),
        _ => Err(PartitionsError { partitions }),
    }
}

/// A key's position on the ring: the top 64 bits of its MD5. Shown in logs
/// and spans as 16 hex digits (`key_hash`), so one key's requests can be
/// followed across nodes without logging the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

impl Position {
    /// The position of `key`.
    pub fn of(key: &[u8]) -> Self {
        let digest: [u8; 16] = Md5::digest(key).into();
        let mut top = [0; 8];
        top.copy_from_slice(&digest[..8]);
        Self(u64::from_be_bytes(top))
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The partition `key` falls in among `partitions` equal partitions: the
/// top `log2(partitions)` bits of its MD5 digest read big-endian. With 256
/// partitions it is the first byte of the digest.
///
/// # Panics
/// When `partitions` is not a power of two (no valid ring has such a count;
/// see [`check_partitions`]).
///
/// # Examples
/// ```
/// // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72
/// assert_eq!(dynamo_ring::partition_of(b"abc", 256), 0x90);
/// ```
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    partition_at(Position::of(key), partitions)
}

/// The partition holding `position` among `partitions` equal partitions.
///
/// # Panics
/// When `partitions` is not a power of two.
pub fn partition_at(position: Position, partitions: u32) -> u32 {
    assert!(
        partitions.is_power_of_two(),
        "partition count {partitions} is not a power of two"
    );
    let bits = partitions.trailing_zeros();
    if bits == 0 {
        0
    } else {
        // `bits` is at most 31, so the shifted value fits in a u32.
        (position.0 >> (64 - bits)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partition_is_the_top_bits_of_md5() {
        // MD5("abc") = 90 01 50 98 3c d2 4f b0 d6 96 3f 7d 28 e1 7f 72
        assert_eq!(partition_of(b"abc", 256), 0x90);
        assert_eq!(partition_of(b"abc", 1024), 0b10_0100_0000);
        assert_eq!(partition_of(b"abc", 2), 1);
        assert_eq!(partition_of(b"abc", 1), 0);
        // MD5("") = d4 1d 8c d9 ...
        assert_eq!(partition_of(b"", 256), 0xd4);
        assert_eq!(partition_of(b"", 2), 1);
        assert_eq!(partition_of(b"", 1), 0);
        assert_eq!(partition_of(b"", 65536), 0xd41d);
        // MD5("The quick brown fox jumps over the lazy dog") = 9e 10 7d 9d ...
        let fox = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(partition_of(fox, MAX_PARTITIONS), 0x9e10);
        assert_eq!(Position::of(b"abc").to_string(), "900150983cd24fb0");
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn partition_count_must_be_a_power_of_two() {
        partition_of(b"abc", 12);
    }

    #[test]
    fn partition_counts_are_checked() {
        for q in [1u64, 2, 256, 65536] {
            assert_eq!(check_partitions(q).map(u64::from), Ok(q));
        }
        for q in [0u64, 3, 100, 1 << 17, 1 << 32, u64::MAX] {
            assert_eq!(check_partitions(q), Err(PartitionsError { partitions: q }));
        }
        let message = PartitionsError { partitions: 100 }.to_string();
        assert!(
            message.contains("power of two") && message.contains("65536"),
            "{message}"
        );
    }

    proptest! {
        #[test]
        fn partitions_nest_as_q_doubles(key in any::<Vec<u8>>(), log_q in 0u32..16) {
            let q = 1u32 << log_q;
            let p = partition_of(&key, q);
            prop_assert!(p < q);
            // Doubling Q splits every partition in two: the key stays in a half.
            prop_assert_eq!(partition_of(&key, q * 2) / 2, p);
        }
    }
}
