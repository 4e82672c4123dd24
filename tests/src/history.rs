//! The record of a fault test's client writes and the invariants the
//! replicas must satisfy once the cluster has healed and converged.
//!
//! Every written value is unique, so a value names one version. A write's
//! context is the one its preceding read returned, so the write covers
//! exactly the values that read saw (`observed`). From that:
//!
//! * convergence: all replicas of a key hold the same versions (dots);
//! * no loss: an acknowledged put survives as a live value unless some
//!   write (acknowledged or not) had read it, and so may have replaced it;
//! * no resurrection: a value read by an acknowledged put or delete is not
//!   live any more (a deleted key stays deleted);
//! * no invention: every live value was written to that key by a client.
//!
//! A delete does not hide a value its read did not see: such a value stays
//! as a concurrent sibling, as Dynamo specifies. Those are counted as
//! survivors, not reported as violations.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use dynamo_proto::v1 as pb;
use tokio::time::Instant;

use crate::nemesis::Played;

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stored a value.
    Put {
        /// The value, unique in the test.
        value: String,
    },
    /// Stored a tombstone.
    Delete,
}

/// One attempted write.
#[derive(Clone, Debug)]
pub struct Write {
    /// The key.
    pub key: String,
    /// Put or delete.
    pub action: Action,
    /// Live values returned by the read whose context the write carried.
    pub observed: Vec<String>,
    /// True when the cluster acknowledged the write.
    pub acked: bool,
    /// The client that sent it.
    pub client: usize,
    /// Position in that client's sequence of operations.
    pub seq: u64,
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.action {
            Action::Put { value } => format!("put {value:?}"),
            Action::Delete => String::from("delete"),
        };
        let acked = if self.acked {
            "acknowledged"
        } else {
            "unacknowledged"
        };
        write!(
            f,
            "{acked} {what} #{} of client {} (its read saw {:?})",
            self.seq, self.client, self.observed
        )
    }
}

/// Everything the clients did.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Every attempted write.
    pub writes: Vec<Write>,
    /// Reads that answered.
    pub reads: u64,
    /// Reads of a client's own key that missed the client's last
    /// acknowledged put (allowed under sloppy quorum; a figure only).
    pub stale_reads: u64,
    /// Failed requests per gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each failing gRPC code.
    pub examples: BTreeMap<String, String>,
    /// Every acknowledged request (answered read, acknowledged write) and
    /// how long it took.
    pub acknowledged: Vec<Timed>,
}

/// One acknowledged request and when it ran.
#[derive(Clone, Debug)]
pub struct Timed {
    /// `get`, `put` or `delete`.
    pub what: &'static str,
    /// The node it was sent to, its coordinator.
    pub node: usize,
    /// When it was sent.
    pub began: Instant,
    /// When its answer arrived.
    pub ended: Instant,
}

impl Timed {
    /// How long it took.
    pub fn latency(&self) -> Duration {
        self.ended - self.began
    }
}

/// The acknowledged requests the fault suite's latency bound applies to:
/// those during which at most one node was faulty (no overlapping step of
/// `played` made more than one node faulty) and whose coordinator was not
/// the faulty one. A client waiting on a faulty coordinator is the client
/// library's to hedge; the suite's clients send raw gRPC.
pub fn with_at_most_one_faulty_replica<'a>(
    acknowledged: &'a [Timed],
    played: &'a [Played],
) -> impl Iterator<Item = &'a Timed> + 'a {
    acknowledged.iter().filter(move |request| {
        played
            .iter()
            .filter(|step| step.from < request.ended && request.began < step.to)
            .all(|step| step.faulty.len() <= 1 && !step.faulty.contains(&request.node))
    })
}

impl History {
    /// Adds another client's history.
    pub fn extend(&mut self, other: History) {
        self.writes.extend(other.writes);
        self.reads += other.reads;
        self.stale_reads += other.stale_reads;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
        for (code, message) in other.examples {
            self.examples.entry(code).or_insert(message);
        }
        self.acknowledged.extend(other.acknowledged);
    }

    /// Counts a failed request.
    pub fn failed(&mut self, status: &tonic::Status) {
        let code = format!("{:?}", status.code());
        *self.errors.entry(code.clone()).or_default() += 1;
        self.examples
            .entry(code)
            .or_insert_with(|| status.message().to_owned());
    }

    /// The writes of `key`.
    pub fn writes_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Write> + 'a {
        self.writes.iter().filter(move |write| write.key == key)
    }

    /// `(acknowledged, attempted)` puts and deletes.
    pub fn counts(&self) -> WriteCounts {
        let mut counts = WriteCounts::default();
        for write in &self.writes {
            let (acked, attempted) = match write.action {
                Action::Put { .. } => (&mut counts.puts_acked, &mut counts.puts),
                Action::Delete => (&mut counts.deletes_acked, &mut counts.deletes),
            };
            *attempted += 1;
            if write.acked {
                *acked += 1;
            }
        }
        counts
    }
}

/// Numbers of writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Puts attempted.
    pub puts: u64,
    /// Puts acknowledged.
    pub puts_acked: u64,
    /// Deletes attempted.
    pub deletes: u64,
    /// Deletes acknowledged.
    pub deletes_acked: u64,
}

/// One replica's local copy of a key.
#[derive(Clone, Debug)]
pub struct Copy {
    /// Member id of the replica.
    pub node: String,
    /// Its versions.
    pub versions: Vec<pb::Version>,
}

impl Copy {
    /// Sorted dots `(node, counter, tombstone)`.
    fn dots(&self) -> Vec<(u64, u64, bool)> {
        let mut dots: Vec<_> = self
            .versions
            .iter()
            .map(|version| (version.dot_node, version.dot_counter, version.tombstone))
            .collect();
        dots.sort_unstable();
        dots
    }

    /// Live values.
    fn live(&self) -> impl Iterator<Item = String> + '_ {
        self.versions
            .iter()
            .filter(|version| !version.tombstone)
            .map(|version| String::from_utf8_lossy(&version.value).into_owned())
    }
}

/// True when every copy holds the same versions (dots and tombstone flags).
pub fn converged(copies: &[Copy]) -> bool {
    copies
        .split_first()
        .is_none_or(|(first, rest)| rest.iter().all(|copy| copy.dots() == first.dots()))
}

/// The verdict on one key.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Broken invariants, one sentence each.
    pub violations: Vec<String>,
    /// Live values a later acknowledged delete had not seen.
    pub survivors: usize,
    /// True when the key ends with no live value.
    pub deleted: bool,
    /// Most versions any replica holds.
    pub siblings: usize,
}

/// Checks one key against its writes and its replicas' copies.
pub fn check_key<'a>(
    key: &str,
    writes: impl IntoIterator<Item = &'a Write>,
    copies: &[Copy],
) -> Verdict {
    let writes: Vec<&Write> = writes.into_iter().collect();
    let mut verdict = Verdict::default();
    let Some(first) = copies.first() else {
        verdict
            .violations
            .push(format!("{key}: no replica copies to check"));
        return verdict;
    };
    let reference = first.dots();
    for copy in &copies[1..] {
        if copy.dots() != reference {
            verdict.violations.push(format!(
                "{key}: replicas differ after anti-entropy: {} has {:?}, {} has {:?}",
                first.node,
                reference,
                copy.node,
                copy.dots()
            ));
        }
    }
    verdict.siblings = copies.iter().map(|c| c.versions.len()).max().unwrap_or(0);
    let written: BTreeMap<&str, &Write> = writes
        .iter()
        .filter_map(|write| match &write.action {
            Action::Put { value } => Some((value.as_str(), *write)),
            Action::Delete => None,
        })
        .collect();
    let seen_by = |value: &str| -> Vec<&Write> {
        writes
            .iter()
            .copied()
            .filter(|write| write.observed.iter().any(|v| v == value))
            .collect()
    };
    for copy in copies {
        for value in copy.live() {
            if !written.contains_key(value.as_str()) {
                verdict.violations.push(format!(
                    "{key}: {} holds live value {value:?} that no client wrote to this key",
                    copy.node
                ));
            }
            if let Some(write) = seen_by(&value).into_iter().find(|write| write.acked) {
                verdict.violations.push(format!(
                    "{key}: {} holds live value {value:?} although {write} replaced it",
                    copy.node
                ));
            }
        }
    }
    for (value, put) in &written {
        if put.acked
            && seen_by(value).is_empty()
            && let Some(copy) = copies.iter().find(|copy| !copy.live().any(|v| v == *value))
        {
            verdict.violations.push(format!(
                "{key}: {put} is lost: {} lacks it and no later write had read it",
                copy.node
            ));
        }
    }
    let live: Vec<String> = first.live().collect();
    verdict.deleted = live.is_empty();
    verdict.survivors = live
        .iter()
        .filter(|value| {
            writes.iter().any(|write| {
                write.acked
                    && write.action == Action::Delete
                    && !write.observed.contains(value)
                    && written
                        .get(value.as_str())
                        .is_some_and(|put| put.client == write.client && put.seq < write.seq)
            })
        })
        .count();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(value: &str, observed: &[&str], acked: bool, seq: u64) -> Write {
        Write {
            key: "k".into(),
            action: Action::Put {
                value: value.into(),
            },
            observed: observed.iter().map(|v| v.to_string()).collect(),
            acked,
            client: 0,
            seq,
        }
    }

    fn delete(observed: &[&str], acked: bool, seq: u64) -> Write {
        Write {
            action: Action::Delete,
            ..put("", observed, acked, seq)
        }
    }

    fn version(counter: u64, value: &str, tombstone: bool) -> pb::Version {
        pb::Version {
            dot_node: 1,
            dot_counter: counter,
            value: value.as_bytes().to_vec().into(),
            tombstone,
            ..Default::default()
        }
    }

    fn copies(versions: &[pb::Version]) -> Vec<Copy> {
        ["node-0", "node-1", "node-2"]
            .iter()
            .map(|node| Copy {
                node: node.to_string(),
                versions: versions.to_vec(),
            })
            .collect()
    }

    #[test]
    fn a_replaced_value_may_vanish_and_the_last_one_must_stay() {
        let writes = [put("a", &[], true, 0), put("b", &["a"], true, 1)];
        let verdict = check_key("k", &writes, &copies(&[version(2, "b", false)]));
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        let verdict = check_key("k", &writes, &copies(&[version(1, "a", false)]));
        assert_eq!(verdict.violations.len(), 3 + 1, "{:?}", verdict.violations);
    }

    #[test]
    fn an_unacknowledged_write_that_read_a_value_excuses_its_absence() {
        let writes = [put("a", &[], true, 0), delete(&["a"], false, 1)];
        let verdict = check_key("k", &writes, &copies(&[version(2, "", true)]));
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert!(verdict.deleted);
        let verdict = check_key("k", &writes, &copies(&[version(1, "a", false)]));
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    }

    #[test]
    fn a_deleted_value_must_not_come_back_but_an_unseen_one_survives() {
        let writes = [
            put("a", &[], true, 0),
            put("b", &[], true, 1),
            delete(&["a"], true, 2),
        ];
        let verdict = check_key(
            "k",
            &writes,
            &copies(&[version(2, "b", false), version(3, "", true)]),
        );
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert_eq!(verdict.survivors, 1);
        let verdict = check_key(
            "k",
            &writes,
            &copies(&[version(1, "a", false), version(2, "b", false)]),
        );
        assert_eq!(verdict.violations.len(), 3, "{:?}", verdict.violations);
    }

    #[test]
    fn diverging_replicas_and_invented_values_are_reported() {
        let writes = [put("a", &[], true, 0)];
        let mut diverged = copies(&[version(1, "a", false)]);
        diverged[2].versions.push(version(9, "zzz", false));
        let verdict = check_key("k", &writes, &diverged);
        let text = verdict.violations.join("\n");
        assert!(text.contains("replicas differ"), "{text}");
        assert!(text.contains("no client wrote"), "{text}");
    }
}
