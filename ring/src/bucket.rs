//! Buckets: named kinds of data with their own replication factor. A key of
//! a bucket travels inside the engine as one bucket-qualified key, so
//! storage, peer messages, hints, Merkle trees and transfers carry its
//! bucket (and with it its N) without a field of their own.
//!
//! The qualified key is `n (1 byte) | name length (1 byte) | name | key`.
//! The default bucket has the empty name. The partition of a default-bucket
//! key is the MD5 partition of the user key alone, as before buckets; a
//! named bucket's key hashes `name length | name | key`, so equal keys of
//! two buckets land on unrelated partitions.

use md5::{Digest as _, Md5};
use thiserror::Error;

use crate::partition::{Position, partition_at};

/// Longest bucket name.
pub const MAX_BUCKET_NAME: usize = 63;

/// Most replicas a bucket may have (N is one byte of the qualified key).
pub const MAX_BUCKET_N: u32 = u8::MAX as u32;

/// A bucket name no cluster may declare.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "bucket name {name:?} is invalid: it needs 1 to {MAX_BUCKET_NAME} characters of a-z, 0-9 and '-', not starting or ending with '-'"
)]
pub struct BucketNameError {
    /// The name given (cut to 80 characters).
    pub name: String,
}

/// Checks a declared bucket name (the default bucket "" is never declared).
///
/// # Errors
/// [`BucketNameError`] when the name is empty, longer than
/// [`MAX_BUCKET_NAME`], has a character outside `[a-z0-9-]`, or starts or
/// ends with `-`.
///
/// # Examples
/// ```
/// assert!(dynamo_ring::check_bucket_name("carts-2").is_ok());
/// assert!(dynamo_ring::check_bucket_name("-carts").is_err());
/// assert!(dynamo_ring::check_bucket_name("Carts").is_err());
/// ```
pub fn check_bucket_name(name: &str) -> Result<(), BucketNameError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_BUCKET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(BucketNameError {
            name: name.chars().take(80).collect(),
        })
    }
}

/// The ring position of `key` in `bucket` ("" is the default bucket).
pub fn bucket_position(bucket: &str, key: &[u8]) -> Position {
    if bucket.is_empty() {
        return Position::of(key);
    }
    let mut md5 = Md5::new();
    md5.update([bucket.len() as u8]);
    md5.update(bucket.as_bytes());
    md5.update(key);
    let digest: [u8; 16] = md5.finalize().into();
    let mut top = [0; 8];
    top.copy_from_slice(&digest[..8]);
    Position(u64::from_be_bytes(top))
}

/// The partition of `key` in `bucket` among `partitions`: for the default
/// bucket the same as [`crate::partition_of`].
///
/// # Panics
/// When `partitions` is not a power of two.
///
/// # Examples
/// ```
/// assert_eq!(dynamo_ring::bucket_partition("", b"abc", 256), 0x90);
/// assert!(dynamo_ring::bucket_partition("carts", b"abc", 256) < 256);
/// ```
pub fn bucket_partition(bucket: &str, key: &[u8], partitions: u32) -> u32 {
    partition_at(bucket_position(bucket, key), partitions)
}

/// A bucket-qualified key that does not decode.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum QualifiedKeyError {
    /// Shorter than its header.
    #[error("a bucket-qualified key is {len} bytes, shorter than its header")]
    Short {
        /// Its length.
        len: usize,
    },
    /// N is zero.
    #[error("a bucket-qualified key names a replication factor of 0")]
    ZeroN,
    /// The bucket name is not valid.
    #[error(transparent)]
    Name(#[from] BucketNameError),
}

/// One key of one bucket, borrowed from a qualified key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QualifiedKey<'a> {
    /// The bucket's replication factor.
    pub n: u8,
    /// The bucket ("" for the default bucket).
    pub bucket: &'a str,
    /// The user's key.
    pub key: &'a [u8],
}

impl<'a> QualifiedKey<'a> {
    /// The engine's encoding: `n | name length | name | key`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.bucket.len() + self.key.len());
        out.push(self.n);
        out.push(self.bucket.len() as u8);
        out.extend_from_slice(self.bucket.as_bytes());
        out.extend_from_slice(self.key);
        out
    }

    /// Decodes an engine key (from the disk or the network).
    ///
    /// # Errors
    /// [`QualifiedKeyError`] when the header is cut, N is 0 or the bucket
    /// name is not valid.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, QualifiedKeyError> {
        let short = QualifiedKeyError::Short { len: bytes.len() };
        let (&n, rest) = bytes.split_first().ok_or(short.clone())?;
        let (&len, rest) = rest.split_first().ok_or(short.clone())?;
        if n == 0 {
            return Err(QualifiedKeyError::ZeroN);
        }
        let name = rest.get(..usize::from(len)).ok_or(short)?;
        let bucket = std::str::from_utf8(name).map_err(|_| BucketNameError {
            name: String::from_utf8_lossy(name).chars().take(80).collect(),
        })?;
        if !bucket.is_empty() {
            check_bucket_name(bucket)?;
        }
        Ok(Self {
            n,
            bucket,
            key: &rest[usize::from(len)..],
        })
    }

    /// The key's ring position.
    pub fn position(&self) -> Position {
        bucket_position(self.bucket, self.key)
    }

    /// The key's partition among `partitions`.
    pub fn partition(&self, partitions: u32) -> u32 {
        partition_at(self.position(), partitions)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "carts", "a-b-9", &"x".repeat(63)] {
            assert_eq!(check_bucket_name(good), Ok(()), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "ä", &"x".repeat(64)] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_bucket_keys_keep_their_partition() {
        assert_eq!(bucket_partition("", b"abc", 256), 0x90);
        assert_eq!(bucket_position("", b"cart"), Position::of(b"cart"));
        // The name is length-prefixed: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(bucket_position("ab", b"c"), bucket_position("a", b"bc"));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(matches!(
            QualifiedKey::decode(b""),
            Err(QualifiedKeyError::Short { .. })
        ));
        assert!(matches!(
            QualifiedKey::decode(&[3, 9, b'a']),
            Err(QualifiedKeyError::Short { .. })
        ));
        assert_eq!(QualifiedKey::decode(&[0, 0]), Err(QualifiedKeyError::ZeroN));
        assert!(matches!(
            QualifiedKey::decode(&[3, 1, b'A']),
            Err(QualifiedKeyError::Name(_))
        ));
        assert!(matches!(
            QualifiedKey::decode(&[3, 1, 0xff]),
            Err(QualifiedKeyError::Name(_))
        ));
    }

    proptest! {
        #[test]
        fn qualified_keys_round_trip(
            n in 1u8..=255,
            bucket in "([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?",
            key in any::<Vec<u8>>(),
        ) {
            let qualified = QualifiedKey { n, bucket: &bucket, key: &key };
            let encoded = qualified.encode();
            prop_assert_eq!(QualifiedKey::decode(&encoded), Ok(qualified));
        }

        #[test]
        fn decoding_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = QualifiedKey::decode(&bytes);
        }
    }
}
