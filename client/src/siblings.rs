//! What a read returns, and helpers to resolve concurrent siblings.

use bytes::Bytes;

use crate::Context;

/// One concurrent version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The value; empty for a tombstone.
    pub value: Bytes,
    /// True when this sibling records a delete.
    pub tombstone: bool,
    /// Coordinator wall-clock time of the write, milliseconds since the Unix
    /// epoch. Only a hint: clocks of different nodes disagree.
    pub timestamp_ms: u64,
}

impl From<dynamo_proto::v1::Sibling> for Sibling {
    fn from(sibling: dynamo_proto::v1::Sibling) -> Self {
        Self {
            value: sibling.value,
            tombstone: sibling.tombstone,
            timestamp_ms: sibling.timestamp_ms,
        }
    }
}

/// The result of a read: every concurrent version and the context covering
/// them all.
///
/// A key that does not exist (never written, or deleted) is a result without
/// live siblings, not an error.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use dynamo_client::{Context, GetResult, Sibling};
///
/// let sibling = |value: &'static str, timestamp_ms| Sibling {
///     value: Bytes::from_static(value.as_bytes()),
///     tombstone: false,
///     timestamp_ms,
/// };
/// let result = GetResult {
///     siblings: vec![sibling("milk", 20), sibling("eggs", 10)],
///     context: Context::default(),
/// };
/// assert!(result.is_found());
/// assert_eq!(result.last_writer_wins().map(|s| &s.value[..]), Some(&b"milk"[..]));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResult {
    /// Every concurrent version, tombstones included.
    pub siblings: Vec<Sibling>,
    /// Context covering all siblings; pass it to the next write to replace
    /// them.
    pub context: Context,
}

impl GetResult {
    /// True when at least one sibling is not a tombstone.
    pub fn is_found(&self) -> bool {
        self.live().next().is_some()
    }

    /// The siblings that are not tombstones, in the order the node sent them.
    pub fn live(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(|sibling| !sibling.tombstone)
    }

    /// The live sibling with the highest timestamp; on equal timestamps the
    /// one with the greatest value bytes, so every reader picks the same.
    /// `None` when the key is not found.
    ///
    /// Last-writer-wins silently drops concurrent writes; use
    /// [`resolve_with`](Self::resolve_with) when they must be merged.
    pub fn last_writer_wins(&self) -> Option<&Sibling> {
        self.live().max_by(|a, b| order_key(a).cmp(&order_key(b)))
    }

    /// Merges the live siblings with `merge` and returns the value to write
    /// back (with [`context`](Self::context)) so the merge replaces them.
    ///
    /// `merge` gets the live values oldest first (ordered as in
    /// [`last_writer_wins`](Self::last_writer_wins)), so an order-sensitive
    /// merge still gives every reader the same answer. It is called only
    /// when there are at least two live siblings; a single one is returned
    /// as is, and `None` means the key is not found.
    ///
    /// # Examples
    ///
    /// A shopping cart whose value is a comma-separated list of items, merged
    /// by union:
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use bytes::Bytes;
    /// use dynamo_client::{Context, GetResult, Sibling};
    ///
    /// let cart = |items: &'static str| Sibling {
    ///     value: Bytes::from_static(items.as_bytes()),
    ///     tombstone: false,
    ///     timestamp_ms: 0,
    /// };
    /// let result = GetResult {
    ///     siblings: vec![cart("milk,eggs"), cart("eggs,bread")],
    ///     context: Context::default(),
    /// };
    /// let merged = result.resolve_with(|values| {
    ///     let items: BTreeSet<&[u8]> = values
    ///         .iter()
    ///         .flat_map(|value| value.split(|byte| *byte == b','))
    ///         .collect();
    ///     Bytes::from(items.into_iter().collect::<Vec<_>>().join(&b","[..]))
    /// });
    /// assert_eq!(merged.as_deref(), Some(&b"bread,eggs,milk"[..]));
    /// ```
    pub fn resolve_with(&self, merge: impl FnOnce(&[Bytes]) -> Bytes) -> Option<Bytes> {
        let mut live: Vec<&Sibling> = self.live().collect();
        match live.as_slice() {
            [] => None,
            [only] => Some(only.value.clone()),
            _ => {
                live.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
                let values: Vec<Bytes> = live.iter().map(|sibling| sibling.value.clone()).collect();
                Some(merge(&values))
            }
        }
    }
}

impl From<dynamo_proto::v1::GetResponse> for GetResult {
    /// Siblings with the same value (two coordinators applied one retried
    /// or hedged write) are folded into one, with the later timestamp: the
    /// context still covers both, so the next write replaces both.
    fn from(response: dynamo_proto::v1::GetResponse) -> Self {
        let mut siblings: Vec<Sibling> = Vec::with_capacity(response.siblings.len());
        for sibling in response.siblings.into_iter().map(Sibling::from) {
            match siblings
                .iter_mut()
                .find(|s| s.tombstone == sibling.tombstone && s.value == sibling.value)
            {
                Some(same) => same.timestamp_ms = same.timestamp_ms.max(sibling.timestamp_ms),
                None => siblings.push(sibling),
            }
        }
        Self {
            siblings,
            context: Context::from_bytes(response.context),
        }
    }
}

/// Total order of siblings used by both resolution helpers.
fn order_key(sibling: &Sibling) -> (u64, &[u8]) {
    (sibling.timestamp_ms, &sibling.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_with_the_same_value_are_folded_into_one() {
        let pb = |value: &'static str, tombstone, timestamp_ms| dynamo_proto::v1::Sibling {
            value: Bytes::from_static(value.as_bytes()),
            tombstone,
            timestamp_ms,
        };
        let response = dynamo_proto::v1::GetResponse {
            siblings: vec![
                pb("a", false, 5),
                pb("b", false, 6),
                pb("a", false, 9),
                pb("", true, 7),
                pb("", true, 3),
            ],
            context: Bytes::from_static(b"ctx"),
            ..Default::default()
        };
        let result = GetResult::from(response);
        assert_eq!(
            result.siblings,
            vec![live("a", 9), live("b", 6), tombstone(7)]
        );
        assert_eq!(
            result.context,
            Context::from_bytes(Bytes::from_static(b"ctx"))
        );
    }

    fn live(value: &'static str, timestamp_ms: u64) -> Sibling {
        Sibling {
            value: Bytes::from_static(value.as_bytes()),
            tombstone: false,
            timestamp_ms,
        }
    }

    fn tombstone(timestamp_ms: u64) -> Sibling {
        Sibling {
            value: Bytes::new(),
            tombstone: true,
            timestamp_ms,
        }
    }

    fn result(siblings: Vec<Sibling>) -> GetResult {
        GetResult {
            siblings,
            context: Context::default(),
        }
    }

    #[test]
    fn not_found_without_live_siblings() {
        assert!(!result(vec![]).is_found());
        assert!(!result(vec![tombstone(5)]).is_found());
        assert!(result(vec![tombstone(5), live("a", 1)]).is_found());
    }

    #[test]
    fn last_writer_wins_ignores_tombstones() {
        let read = result(vec![live("old", 1), tombstone(9), live("new", 3)]);
        assert_eq!(read.last_writer_wins(), Some(&live("new", 3)));
        assert_eq!(result(vec![tombstone(9)]).last_writer_wins(), None);
    }

    #[test]
    fn last_writer_wins_breaks_ties_by_value_in_any_order() {
        let forward = result(vec![live("apple", 7), live("pear", 7), live("fig", 7)]);
        let backward = result(vec![live("fig", 7), live("pear", 7), live("apple", 7)]);
        assert_eq!(forward.last_writer_wins(), Some(&live("pear", 7)));
        assert_eq!(backward.last_writer_wins(), Some(&live("pear", 7)));
    }

    #[test]
    fn resolve_with_orders_values_oldest_first() {
        let read = result(vec![live("c", 3), tombstone(4), live("a", 1), live("b", 1)]);
        let merged = read.resolve_with(|values| {
            assert_eq!(values, [b"a", b"b", b"c"].map(|v| Bytes::from_static(v)));
            Bytes::from(values.concat())
        });
        assert_eq!(merged, Some(Bytes::from_static(b"abc")));
    }

    #[test]
    fn resolve_with_skips_merge_for_zero_or_one_live_sibling() {
        let never = |_: &[Bytes]| -> Bytes { panic!("merge must not be called") };
        assert_eq!(result(vec![tombstone(1)]).resolve_with(never), None);
        let single = result(vec![tombstone(2), live("x", 1)]);
        assert_eq!(single.resolve_with(never), Some(Bytes::from_static(b"x")));
    }
}
