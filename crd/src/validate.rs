//! Checks of a `DynamoClusterSpec` that need no API server.
//!
//! They are the schema's and CEL's rules (`replication.factor <= replicas` and
//! `partitions >= replicas` among them), so that the local platform, which
//! has no API server, and the operator's status report the same sentences.

use crate::spec::{DynamoClusterSpec, MAX_PARTITIONS};

/// Why a spec cannot be run. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `replicas` is below 1.
    #[error(
        "spec.replicas is {replicas}, but a cluster needs at least 1 node: set spec.replicas to 1 or more"
    )]
    TooFewReplicas {
        /// The requested number of nodes.
        replicas: i32,
    },

    /// `replication.factor` is 0.
    #[error(
        "spec.replication.factor is 0, but every key needs at least 1 replica: set spec.replication.factor to 1 or more (3 is usual)"
    )]
    ReplicationFactorZero,

    /// `replication.readQuorum` is not in `1..=factor`.
    #[error(
        "spec.replication.readQuorum is {r}, but a read can wait for 1 to spec.replication.factor ({n}) replicas: set spec.replication.readQuorum between 1 and {n}, or raise spec.replication.factor"
    )]
    ReadQuorumOutOfRange {
        /// The requested read quorum.
        r: u32,
        /// The replication factor.
        n: u32,
    },

    /// `replication.writeQuorum` is not in `1..=factor`.
    #[error(
        "spec.replication.writeQuorum is {w}, but a write can wait for 1 to spec.replication.factor ({n}) replicas: set spec.replication.writeQuorum between 1 and {n}, or raise spec.replication.factor"
    )]
    WriteQuorumOutOfRange {
        /// The requested write quorum.
        w: u32,
        /// The replication factor.
        n: u32,
    },

    /// `partitions` is not a power of two in `1..=65536`.
    #[error(
        "spec.partitions is {partitions}, but it must be a power of two from 1 to {max}: use a value such as 256 or 1024",
        max = MAX_PARTITIONS
    )]
    PartitionsNotPowerOfTwo {
        /// The requested number of partitions.
        partitions: u32,
    },

    /// `replication.factor` is larger than `replicas`.
    #[error(
        "spec.replication.factor is {n}, but the cluster has only {replicas} nodes (spec.replicas), so a key cannot get {n} distinct replicas: set spec.replicas to at least {n} or lower spec.replication.factor"
    )]
    ReplicationExceedsReplicas {
        /// The replication factor.
        n: u32,
        /// The requested number of nodes.
        replicas: i32,
    },

    /// `partitions` is smaller than `replicas`.
    #[error(
        "spec.partitions is {partitions}, fewer than the {replicas} nodes of spec.replicas, so some nodes would own no data: lower spec.replicas to at most {partitions} (partitions cannot change after creation)"
    )]
    TooFewPartitions {
        /// The number of partitions.
        partitions: u32,
        /// The requested number of nodes.
        replicas: i32,
    },

    /// `partitions` differs from the value the cluster was created with.
    #[error(
        "spec.partitions cannot change after the cluster is created: it is {old}, and the new spec asks for {new}; set it back to {old}"
    )]
    PartitionsChanged {
        /// The value the cluster was created with.
        old: u32,
        /// The value the new spec asks for.
        new: u32,
    },

    /// `image` is empty.
    #[error("spec.image is empty: remove it to use the default image, or name a dynamo-node image")]
    EmptyImage,

    /// `storage.size` is not a positive Kubernetes quantity.
    #[error(
        "spec.storage.size is {size:?}, which is not a positive Kubernetes quantity: use a size such as \"10Gi\" or \"500Mi\""
    )]
    InvalidStorageSize {
        /// The requested size.
        size: String,
    },

    /// An interval is zero.
    #[error(
        "spec.{field} is 0, but it must be at least 1 millisecond: remove it to use the default"
    )]
    ZeroInterval {
        /// The field's name in the manifest (`gossipIntervalMs` or `antiEntropyIntervalMs`).
        field: &'static str,
    },

    /// Two pools share a name.
    #[error("spec.pools has two pools named {name:?}: pool names must be unique")]
    DuplicatePool {
        /// The repeated name.
        name: String,
    },

    /// A pool's name is not a DNS label.
    #[error(
        "spec.pools has a pool named {name:?}, but a pool name must be a DNS label of at most {max} characters (lower-case letters, digits and '-'): rename it",
        max = crate::MAX_POOL_NAME_LEN
    )]
    InvalidPoolName {
        /// The pool's name.
        name: String,
    },

    /// A pool's weight is not in `1..=16`.
    #[error(
        "pool {name:?} has weight {weight}, but a capacity weight is from 1 to {max}: set spec.pools[].weight in that range",
        max = crate::MAX_POOL_WEIGHT
    )]
    PoolWeightOutOfRange {
        /// The pool's name.
        name: String,
        /// The requested weight.
        weight: u32,
    },

    /// A pool's replicas is negative.
    #[error("pool {name:?} has replicas {replicas}: set it to 0 or more")]
    NegativePoolReplicas {
        /// The pool's name.
        name: String,
        /// The requested number of nodes.
        replicas: i32,
    },

    /// `replicas` is not the sum of the pools' replicas.
    #[error(
        "spec.replicas is {replicas}, but the pools have {total} nodes in all: with pools, set spec.replicas to {total} (scale a pool by editing its replicas)"
    )]
    PoolReplicasMismatch {
        /// `spec.replicas`.
        replicas: i32,
        /// The sum of the pools' replicas.
        total: i64,
    },

    /// More buckets than [`MAX_BUCKETS`](crate::MAX_BUCKETS).
    #[error(
        "spec.buckets declares {count} buckets, but a cluster may declare at most {max}",
        max = crate::MAX_BUCKETS
    )]
    TooManyBuckets {
        /// The number declared.
        count: usize,
    },

    /// More pools than [`MAX_POOLS`](crate::MAX_POOLS).
    #[error(
        "spec.pools declares {count} pools, but a cluster may declare at most {max}",
        max = crate::MAX_POOLS
    )]
    TooManyPools {
        /// The number declared.
        count: usize,
    },

    /// A bucket's name breaks the bucket name rule.
    #[error(
        "spec.buckets[{index}].name is {name:?}, but a bucket name needs 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-': rename it"
    )]
    InvalidBucketName {
        /// Position of the bucket in `spec.buckets`.
        index: usize,
        /// The name given.
        name: String,
    },

    /// Two buckets share a name.
    #[error(
        "spec.buckets[{index}].name is {name:?}, the name of an earlier bucket: bucket names must be unique"
    )]
    DuplicateBucket {
        /// Position of the second bucket of that name.
        index: usize,
        /// The repeated name.
        name: String,
    },

    /// A bucket's factor is 0 or above the most replicas a bucket may have.
    #[error(
        "spec.buckets[{index}].factor is {n}, but a bucket's factor is from 1 to {max}",
        max = dynamo_ring::MAX_BUCKET_N
    )]
    BucketFactorOutOfRange {
        /// Position of the bucket in `spec.buckets`.
        index: usize,
        /// The factor given.
        n: u32,
    },

    /// A bucket's factor is larger than `replicas`.
    #[error(
        "spec.buckets[{index}].factor is {n}, but the cluster has only {replicas} nodes (spec.replicas), so its keys cannot get {n} distinct replicas: keep spec.replicas at {n} or more"
    )]
    BucketFactorExceedsReplicas {
        /// Position of the bucket in `spec.buckets`.
        index: usize,
        /// The bucket's factor.
        n: u32,
        /// The requested number of nodes.
        replicas: i32,
    },

    /// A bucket's read or write quorum is not in `1..=factor`.
    #[error(
        "spec.buckets[{index}].{field} is {quorum}, but it must be from 1 to the bucket's factor ({n})"
    )]
    BucketQuorumOutOfRange {
        /// Position of the bucket in `spec.buckets`.
        index: usize,
        /// `readQuorum` or `writeQuorum`.
        field: &'static str,
        /// The quorum given.
        quorum: u32,
        /// The bucket's factor.
        n: u32,
    },

    /// A declared bucket is missing from the new spec.
    #[error(
        "spec.buckets no longer declares bucket {name:?}, but a bucket is never removed: put it back (name {name}, factor {n})"
    )]
    BucketRemoved {
        /// The bucket's name.
        name: String,
        /// Its factor.
        n: u32,
    },

    /// A declared bucket's factor differs from the one it was declared with.
    #[error(
        "spec.buckets[{index}].factor of bucket {name:?} cannot change after it is declared: it is {old}, and the new spec asks for {new}; set it back to {old}, or declare a new bucket"
    )]
    BucketFactorChanged {
        /// Position of the bucket in the new `spec.buckets`.
        index: usize,
        /// The bucket's name.
        name: String,
        /// The factor it was declared with.
        old: u32,
        /// The factor the new spec asks for.
        new: u32,
    },

    /// `zones.topologyKey` is empty.
    #[error(
        "spec.zones.topologyKey is empty: name a node label such as \"topology.kubernetes.io/zone\", or remove spec.zones"
    )]
    EmptyTopologyKey,
}

impl DynamoClusterSpec {
    /// Checks the spec without an API server: the rules of the CRD's schema
    /// and CEL. The API server refuses such specs too; the operator reports
    /// one that got past it (a CRD installed before the rule) as a Degraded
    /// condition.
    ///
    /// # Errors
    ///
    /// The first rule the spec breaks, as a [`SpecError`] whose message tells
    /// the user what to change.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamo_crd::{DynamoClusterSpec, SpecError};
    ///
    /// let mut spec = DynamoClusterSpec::with_replicas(3);
    /// spec.replication.read_quorum = 4;
    /// assert_eq!(spec.validate(), Err(SpecError::ReadQuorumOutOfRange { r: 4, n: 3 }));
    /// ```
    pub fn validate(&self) -> Result<(), SpecError> {
        let replication = self.replication;
        self.validate_pools()?;
        if self.replicas < 1 {
            return Err(SpecError::TooFewReplicas {
                replicas: self.replicas,
            });
        }
        if replication.factor == 0 {
            return Err(SpecError::ReplicationFactorZero);
        }
        if !(1..=replication.factor).contains(&replication.read_quorum) {
            return Err(SpecError::ReadQuorumOutOfRange {
                r: replication.read_quorum,
                n: replication.factor,
            });
        }
        if !(1..=replication.factor).contains(&replication.write_quorum) {
            return Err(SpecError::WriteQuorumOutOfRange {
                w: replication.write_quorum,
                n: replication.factor,
            });
        }
        if dynamo_ring::check_partitions(u64::from(self.partitions)).is_err() {
            return Err(SpecError::PartitionsNotPowerOfTwo {
                partitions: self.partitions,
            });
        }
        if self.image.is_empty() {
            return Err(SpecError::EmptyImage);
        }
        if !is_positive_quantity(&self.storage.size) {
            return Err(SpecError::InvalidStorageSize {
                size: self.storage.size.clone(),
            });
        }
        if self.gossip_interval_ms == 0 {
            return Err(SpecError::ZeroInterval {
                field: "gossipIntervalMs",
            });
        }
        if self.anti_entropy_interval_ms == 0 {
            return Err(SpecError::ZeroInterval {
                field: "antiEntropyIntervalMs",
            });
        }
        if self.topology_key() == Some("") {
            return Err(SpecError::EmptyTopologyKey);
        }
        if i64::from(replication.factor) > i64::from(self.replicas) {
            return Err(SpecError::ReplicationExceedsReplicas {
                n: replication.factor,
                replicas: self.replicas,
            });
        }
        if i64::from(self.partitions) < i64::from(self.replicas) {
            return Err(SpecError::TooFewPartitions {
                partitions: self.partitions,
                replicas: self.replicas,
            });
        }
        crate::buckets::validate(&self.buckets, self.replicas)
    }

    /// The pool rules: unique DNS-label names, weights in range, replicas
    /// not negative and summing to `replicas`. With `replicas` equal to the
    /// total, the replication and partition rules below hold for the total.
    fn validate_pools(&self) -> Result<(), SpecError> {
        if self.pools.is_empty() {
            return Ok(());
        }
        if self.pools.len() > crate::MAX_POOLS {
            return Err(SpecError::TooManyPools {
                count: self.pools.len(),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for pool in &self.pools {
            if !crate::is_pool_name(&pool.name) {
                return Err(SpecError::InvalidPoolName {
                    name: pool.name.clone(),
                });
            }
            if !names.insert(pool.name.as_str()) {
                return Err(SpecError::DuplicatePool {
                    name: pool.name.clone(),
                });
            }
            if !(1..=crate::MAX_POOL_WEIGHT).contains(&pool.weight) {
                return Err(SpecError::PoolWeightOutOfRange {
                    name: pool.name.clone(),
                    weight: pool.weight,
                });
            }
            if pool.replicas < 0 {
                return Err(SpecError::NegativePoolReplicas {
                    name: pool.name.clone(),
                    replicas: pool.replicas,
                });
            }
        }
        let total: i64 = self.pools.iter().map(|pool| i64::from(pool.replicas)).sum();
        if total != i64::from(self.replicas) {
            return Err(SpecError::PoolReplicasMismatch {
                replicas: self.replicas,
                total,
            });
        }
        Ok(())
    }

    /// Checks a change from `old` to `self`: the transition rules
    /// (`partitions` is immutable; every bucket stays, with its factor),
    /// then [`validate`](Self::validate) on the new spec.
    ///
    /// # Errors
    ///
    /// The first rule the new spec or the change breaks.
    pub fn validate_update(&self, old: &Self) -> Result<(), SpecError> {
        if self.partitions != old.partitions {
            return Err(SpecError::PartitionsChanged {
                old: old.partitions,
                new: self.partitions,
            });
        }
        crate::buckets::validate_update(&self.buckets, &old.buckets)?;
        self.validate()
    }
}

/// Whether `text` is a Kubernetes quantity greater than zero, following the
/// grammar of [`QUANTITY_PATTERN`](crate::QUANTITY_PATTERN).
fn is_positive_quantity(text: &str) -> bool {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let Some((number_is_zero, suffix)) = split_decimal(rest) else {
        return false;
    };
    let suffix_ok = match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        exponent if exponent.starts_with(['e', 'E']) => {
            let digits = exponent[1..].trim_start_matches(['+', '-']);
            exponent[1..].len() - digits.len() <= 1
                && split_decimal(digits).is_some_and(|(_, tail)| tail.is_empty())
        }
        _ => false,
    };
    suffix_ok && !negative && !number_is_zero
}

/// Splits a leading decimal number (`12`, `1.5`, `.5`, `3.`) off `text`.
/// Returns whether the number is zero and the rest, or `None` when `text`
/// does not start with a number.
fn split_decimal(text: &str) -> Option<(bool, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number = &text[..end];
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let dots = number.len() - digits;
    if digits == 0 || dots > 1 {
        return None;
    }
    let is_zero = number.chars().all(|c| c == '0' || c == '.');
    Some((is_zero, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for good in [
            "10Gi", "1", "500Mi", "1.5Ti", ".5Gi", "1e9", "1E+3", "100k", "+2G",
        ] {
            assert!(is_positive_quantity(good), "{good} should be accepted");
        }
        for bad in [
            "", "Gi", "10GB", "10 Gi", "-1Gi", "0", "0Gi", "0.0", "1..2Gi", "1e", "1e+-3", "ten",
        ] {
            assert!(!is_positive_quantity(bad), "{bad} should be rejected");
        }
    }

    #[test]
    fn the_partitions_rule_lists_every_count_the_ring_accepts() {
        let allowed: Vec<u32> = (0..=MAX_PARTITIONS.trailing_zeros())
            .map(|b| 1 << b)
            .collect();
        let listed = format!(
            "self in [{}]",
            allowed
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(crate::spec::PARTITIONS_POWER_OF_TWO_RULE, listed);
    }

    fn pool(name: &str, replicas: i32, weight: u32) -> crate::PoolSpec {
        serde_json::from_value(
            serde_json::json!({"name": name, "replicas": replicas, "weight": weight}),
        )
        .expect("a pool")
    }

    #[test]
    fn pool_rules() {
        let mut spec = DynamoClusterSpec::with_replicas(5);
        spec.pools = vec![pool("small", 3, 1), pool("big", 2, 2)];
        assert_eq!(spec.validate(), Ok(()));

        let broken = |edit: &dyn Fn(&mut DynamoClusterSpec), expected: SpecError| {
            let mut changed = spec.clone();
            edit(&mut changed);
            assert_eq!(changed.validate(), Err(expected));
        };
        broken(
            &|s| s.pools[1].name = "small".into(),
            SpecError::DuplicatePool {
                name: "small".into(),
            },
        );
        broken(
            &|s| {
                s.pools = (0..=crate::MAX_POOLS)
                    .map(|i| pool(&format!("p{i}"), 0, 1))
                    .collect();
            },
            SpecError::TooManyPools {
                count: crate::MAX_POOLS + 1,
            },
        );
        broken(
            &|s| s.pools[1].name = "Big".into(),
            SpecError::InvalidPoolName { name: "Big".into() },
        );
        broken(
            &|s| s.pools[1].weight = 17,
            SpecError::PoolWeightOutOfRange {
                name: "big".into(),
                weight: 17,
            },
        );
        broken(
            &|s| s.pools[0].weight = 0,
            SpecError::PoolWeightOutOfRange {
                name: "small".into(),
                weight: 0,
            },
        );
        broken(
            &|s| s.pools[1].replicas = -1,
            SpecError::NegativePoolReplicas {
                name: "big".into(),
                replicas: -1,
            },
        );
        broken(
            &|s| s.replicas = 6,
            SpecError::PoolReplicasMismatch {
                replicas: 6,
                total: 5,
            },
        );
        // The replication factor and partitions count against the total.
        broken(
            &|s| {
                s.pools = vec![pool("small", 1, 1), pool("big", 1, 2)];
                s.replicas = 2;
            },
            SpecError::ReplicationExceedsReplicas { n: 3, replicas: 2 },
        );
        broken(
            &|s| s.partitions = 4,
            SpecError::TooFewPartitions {
                partitions: 4,
                replicas: 5,
            },
        );
        // A pool may be empty (on its way out) while the others hold the nodes.
        let mut draining = spec.clone();
        draining.pools[1].replicas = 0;
        draining.replicas = 3;
        assert_eq!(draining.validate(), Ok(()));
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DynamoClusterSpec::with_replicas(3).validate(), Ok(()));
        assert_eq!(DynamoClusterSpec::with_replicas(256).validate(), Ok(()));
    }

    #[test]
    fn each_rule_has_its_error() {
        let base = DynamoClusterSpec::with_replicas(3);
        let check = |change: &dyn Fn(&mut DynamoClusterSpec), expected: SpecError| {
            let mut spec = base.clone();
            change(&mut spec);
            assert_eq!(spec.validate(), Err(expected));
        };
        check(
            &|s| s.replicas = 0,
            SpecError::TooFewReplicas { replicas: 0 },
        );
        check(
            &|s| s.replication.factor = 0,
            SpecError::ReplicationFactorZero,
        );
        check(
            &|s| s.replication.read_quorum = 0,
            SpecError::ReadQuorumOutOfRange { r: 0, n: 3 },
        );
        check(
            &|s| s.replication.write_quorum = 4,
            SpecError::WriteQuorumOutOfRange { w: 4, n: 3 },
        );
        check(
            &|s| s.partitions = 100,
            SpecError::PartitionsNotPowerOfTwo { partitions: 100 },
        );
        check(
            &|s| s.partitions = 0,
            SpecError::PartitionsNotPowerOfTwo { partitions: 0 },
        );
        check(
            &|s| s.partitions = 1 << 17,
            SpecError::PartitionsNotPowerOfTwo {
                partitions: 1 << 17,
            },
        );
        check(&|s| s.image.clear(), SpecError::EmptyImage);
        check(
            &|s| s.storage.size = "10GB".into(),
            SpecError::InvalidStorageSize {
                size: "10GB".into(),
            },
        );
        check(
            &|s| s.gossip_interval_ms = 0,
            SpecError::ZeroInterval {
                field: "gossipIntervalMs",
            },
        );
        check(
            &|s| s.anti_entropy_interval_ms = 0,
            SpecError::ZeroInterval {
                field: "antiEntropyIntervalMs",
            },
        );
        check(
            &|s| {
                s.zones = Some(crate::ZonesSpec {
                    topology_key: String::new(),
                })
            },
            SpecError::EmptyTopologyKey,
        );
        check(
            &|s| {
                s.replication = crate::ReplicationSpec {
                    factor: 5,
                    read_quorum: 3,
                    write_quorum: 3,
                }
            },
            SpecError::ReplicationExceedsReplicas { n: 5, replicas: 3 },
        );
        check(
            &|s| {
                s.partitions = 2;
                s.replication.factor = 1;
                s.replication.read_quorum = 1;
                s.replication.write_quorum = 1;
            },
            SpecError::TooFewPartitions {
                partitions: 2,
                replicas: 3,
            },
        );
    }

    #[test]
    fn partitions_are_immutable() {
        let old = DynamoClusterSpec::with_replicas(3);
        let mut new = old.clone();
        new.replicas = 5;
        assert_eq!(new.validate_update(&old), Ok(()));
        new.partitions = 512;
        assert_eq!(
            new.validate_update(&old),
            Err(SpecError::PartitionsChanged { old: 256, new: 512 })
        );
    }
}
