//! Buckets: named kinds of data with their own replication factor, quorums
//! and durability, declared in `spec.buckets`.
//!
//! The operator declares them in the ring; a client picks one by name. A
//! bucket's `factor` never changes and a bucket is never removed (the nodes
//! refuse such a ring), so the CRD refuses both edits with a transition
//! rule, and [`DynamoClusterSpec::validate_update`](crate::DynamoClusterSpec::validate_update)
//! does the same without an API server.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::spec::{Durability, N_AT_LEAST_ONE_RULE, R_AT_MOST_N_RULE, W_AT_MOST_N_RULE};
use crate::validate::SpecError;

/// Pattern of a bucket name: 1 to 63 of `a-z`, `0-9` and `-`, not starting
/// or ending with `-` (the rule of `dynamo_ring::check_bucket_name`).
pub const BUCKET_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Most buckets a cluster may declare (bounds the cost of the CEL rules).
pub const MAX_BUCKETS: usize = 64;
/// CEL rule on `buckets`: no two buckets share a name.
pub const BUCKET_NAMES_UNIQUE_RULE: &str = "self.all(b, self.exists_one(c, c.name == b.name))";
/// CEL rule on the spec: no bucket has more replicas than the cluster has
/// nodes.
pub const BUCKET_FACTOR_AT_MOST_REPLICAS_RULE: &str =
    "!has(self.buckets) || self.buckets.all(b, b.factor <= self.replicas)";
/// CEL transition rule on the spec: every bucket of the old spec is still
/// declared, with the same factor.
///
/// It sits on the spec rather than on `buckets`, because a rule on a field
/// does not run when the new object drops the field altogether.
pub const BUCKETS_KEPT_RULE: &str = "!has(oldSelf.buckets) || oldSelf.buckets.all(o, has(self.buckets) && self.buckets.exists(b, b.name == o.name && b.factor == o.factor))";

/// A named bucket: keys of one kind, stored on `factor` nodes, read and
/// written with their own quorums.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new(N_AT_LEAST_ONE_RULE)
        .message("a bucket's factor must be at least 1")
        .field_path(".factor"),
    validation = Rule::new(R_AT_MOST_N_RULE)
        .message("a bucket's readQuorum must not be greater than its factor")
        .field_path(".readQuorum"),
    validation = Rule::new(W_AT_MOST_N_RULE)
        .message("a bucket's writeQuorum must not be greater than its factor")
        .field_path(".writeQuorum")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSpec {
    /// Name of the bucket, which clients pass as `--bucket`: 1 to 63
    /// lower-case letters, digits and '-', not starting or ending with '-'.
    #[schemars(length(min = 1, max = 63), regex(pattern = BUCKET_NAME_PATTERN))]
    pub name: String,
    /// Replication factor N of the bucket's keys, from 1 to `replicas`.
    /// Fixed when the bucket is declared: it cannot be changed afterwards.
    #[schemars(range(min = 1, max = 255))]
    pub factor: u32,
    /// Read quorum R of the bucket, from 1 to `factor`.
    #[schemars(range(min = 1))]
    pub read_quorum: u32,
    /// Write quorum W of the bucket, from 1 to `factor`.
    #[schemars(range(min = 1))]
    pub write_quorum: u32,
    /// Durability of the bucket's writes (`buffer` or `sync`);
    /// `spec.durability` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "durability_schema")]
    pub durability: Option<Durability>,
}

/// The schema of [`Durability`] without its own description, so the
/// `durability` field keeps its doc comment (kube would put the type's
/// description in place of an optional field's).
fn durability_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Durability>();
    if let Some(object) = schema.as_object_mut() {
        object.remove("description");
    }
    schema
}

/// Checks the declared buckets of a spec with `replicas` nodes: valid and
/// unique names, `factor` from 1 to `replicas`, quorums from 1 to `factor`.
pub(crate) fn validate(buckets: &[BucketSpec], replicas: i32) -> Result<(), SpecError> {
    if buckets.len() > MAX_BUCKETS {
        return Err(SpecError::TooManyBuckets {
            count: buckets.len(),
        });
    }
    for (index, bucket) in buckets.iter().enumerate() {
        let name = || bucket.name.clone();
        if dynamo_ring::check_bucket_name(&bucket.name).is_err() {
            return Err(SpecError::InvalidBucketName {
                index,
                name: name(),
            });
        }
        if buckets[..index].iter().any(|b| b.name == bucket.name) {
            return Err(SpecError::DuplicateBucket {
                index,
                name: name(),
            });
        }
        if !(1..=dynamo_ring::MAX_BUCKET_N).contains(&bucket.factor) {
            return Err(SpecError::BucketFactorOutOfRange {
                index,
                n: bucket.factor,
            });
        }
        if i64::from(bucket.factor) > i64::from(replicas) {
            return Err(SpecError::BucketFactorExceedsReplicas {
                index,
                n: bucket.factor,
                replicas,
            });
        }
        for (field, quorum) in [
            ("readQuorum", bucket.read_quorum),
            ("writeQuorum", bucket.write_quorum),
        ] {
            if !(1..=bucket.factor).contains(&quorum) {
                return Err(SpecError::BucketQuorumOutOfRange {
                    index,
                    field,
                    quorum,
                    n: bucket.factor,
                });
            }
        }
    }
    Ok(())
}

/// Checks a change of the declared buckets: every old bucket is still
/// declared, with the same factor.
pub(crate) fn validate_update(new: &[BucketSpec], old: &[BucketSpec]) -> Result<(), SpecError> {
    for bucket in old {
        match new.iter().position(|b| b.name == bucket.name) {
            None => {
                return Err(SpecError::BucketRemoved {
                    name: bucket.name.clone(),
                    n: bucket.factor,
                });
            }
            Some(index) if new[index].factor != bucket.factor => {
                return Err(SpecError::BucketFactorChanged {
                    index,
                    name: bucket.name.clone(),
                    old: bucket.factor,
                    new: new[index].factor,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(name: &str, factor: u32, r: u32, w: u32) -> BucketSpec {
        BucketSpec {
            name: name.to_owned(),
            factor,
            read_quorum: r,
            write_quorum: w,
            durability: None,
        }
    }

    #[test]
    fn a_bucket_reads_from_camel_case_and_refuses_short_names() {
        let parsed: BucketSpec = serde_yaml::from_str(
            "name: carts\nfactor: 3\nreadQuorum: 2\nwriteQuorum: 2\ndurability: sync\n",
        )
        .expect("parses");
        assert_eq!(parsed.durability, Some(Durability::Sync));
        assert!(serde_yaml::from_str::<BucketSpec>("name: a\nn: 1\nr: 1\nw: 1\n").is_err());
    }

    #[test]
    fn the_name_pattern_is_the_ring_rule() {
        // The schema's pattern and length say what check_bucket_name says.
        let by_pattern = |name: &str| {
            let bytes = name.as_bytes();
            let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
            (1..=63).contains(&name.len())
                && bytes.iter().all(inner)
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        };
        assert_eq!(dynamo_ring::MAX_BUCKET_NAME, 63);
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for name in [
            "a", "carts-2", "0", &long, "", "-a", "a-", "A", "a_b", &too_long,
        ] {
            assert_eq!(
                by_pattern(name),
                dynamo_ring::check_bucket_name(name).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn each_rule_has_its_error() {
        assert_eq!(
            validate(&[bucket("a", 3, 2, 2), bucket("b", 1, 1, 1)], 3),
            Ok(())
        );
        let check = |buckets: &[BucketSpec], expected: SpecError| {
            assert_eq!(validate(buckets, 3), Err(expected));
        };
        check(
            &[bucket("ok", 1, 1, 1), bucket("Bad", 1, 1, 1)],
            SpecError::InvalidBucketName {
                index: 1,
                name: "Bad".into(),
            },
        );
        check(
            &[bucket("a", 1, 1, 1), bucket("a", 2, 1, 1)],
            SpecError::DuplicateBucket {
                index: 1,
                name: "a".into(),
            },
        );
        check(
            &[bucket("a", 0, 1, 1)],
            SpecError::BucketFactorOutOfRange { index: 0, n: 0 },
        );
        check(
            &[bucket("a", 4, 1, 1)],
            SpecError::BucketFactorExceedsReplicas {
                index: 0,
                n: 4,
                replicas: 3,
            },
        );
        check(
            &[bucket("a", 2, 3, 1)],
            SpecError::BucketQuorumOutOfRange {
                index: 0,
                field: "readQuorum",
                quorum: 3,
                n: 2,
            },
        );
        check(
            &[bucket("a", 2, 1, 0)],
            SpecError::BucketQuorumOutOfRange {
                index: 0,
                field: "writeQuorum",
                quorum: 0,
                n: 2,
            },
        );
        let many: Vec<BucketSpec> = (0..=MAX_BUCKETS)
            .map(|i| bucket(&format!("b{i}"), 1, 1, 1))
            .collect();
        check(&many, SpecError::TooManyBuckets { count: 65 });
    }

    #[test]
    fn buckets_stay_with_their_factor() {
        let old = [bucket("a", 3, 2, 2), bucket("b", 1, 1, 1)];
        // Quorums may change, and new buckets may come.
        let retuned = [
            bucket("b", 1, 1, 1),
            bucket("a", 3, 1, 3),
            bucket("c", 2, 1, 1),
        ];
        assert_eq!(validate_update(&retuned, &old), Ok(()));
        assert_eq!(
            validate_update(&[bucket("a", 3, 2, 2)], &old),
            Err(SpecError::BucketRemoved {
                name: "b".into(),
                n: 1
            })
        );
        assert_eq!(
            validate_update(&[bucket("b", 1, 1, 1), bucket("a", 2, 1, 1)], &old),
            Err(SpecError::BucketFactorChanged {
                index: 1,
                name: "a".into(),
                old: 3,
                new: 2
            })
        );
    }
}
