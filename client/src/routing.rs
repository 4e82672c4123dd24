//! Single-hop routing: which members to try, in which order, for a key.

use crate::{Error, Ring};

/// Member indexes to try for `partition`, each at most once: the preference
/// list rotated to begin at `start` (modulo its length), so successive
/// requests spread over the replicas, then the fallbacks in ring order.
pub(crate) fn attempt_order(ring: &Ring, partition: usize, n: u32, start: usize) -> Vec<usize> {
    let preference = ring.bucket_preference(partition, n);
    let first = start % preference.len();
    let rotated = preference[first..].iter().chain(&preference[..first]);
    let fallbacks = &ring.candidate_indexes(partition)[preference.len()..];
    let mut order: Vec<usize> = Vec::with_capacity(preference.len() + fallbacks.len());
    for index in rotated.chain(fallbacks) {
        if !order.contains(index) {
            order.push(*index);
        }
    }
    order
}

/// Of two retryable failures of one request, the one to report: a node's
/// own answer (`Unavailable`, such as too few acknowledgements) says more
/// than a timeout, which says more than a node that could not be reached;
/// among equals, the later one.
pub(crate) fn most_telling(earlier: Option<Error>, later: Error) -> Error {
    fn rank(err: &Error) -> u8 {
        match err {
            Error::Unavailable { .. } => 2,
            Error::Timeout { .. } => 1,
            _ => 0,
        }
    }
    match earlier {
        Some(earlier) if rank(&earlier) > rank(&later) => earlier,
        _ => later,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests::sample;

    #[test]
    fn rotates_the_preference_list_then_tries_fallbacks() {
        let ring = Ring::try_from(sample(5, 8)).expect("sample ring is consistent");
        // Partition 6: preference m1 m2 m3, fallbacks m4 m0.
        assert_eq!(attempt_order(&ring, 6, ring.n(), 0), [1, 2, 3, 4, 0]);
        assert_eq!(attempt_order(&ring, 6, ring.n(), 1), [2, 3, 1, 4, 0]);
        assert_eq!(attempt_order(&ring, 6, ring.n(), 5), [3, 1, 2, 4, 0]);
    }

    #[test]
    fn every_replica_starts_equally_often() {
        let ring = Ring::try_from(sample(4, 4)).expect("sample ring is consistent");
        let mut first = [0; 4];
        for start in 0..300 {
            first[attempt_order(&ring, 2, ring.n(), start)[0]] += 1;
        }
        assert_eq!(first, [100, 0, 100, 100]);
    }

    #[test]
    fn repeated_members_are_tried_once() {
        let mut response = sample(3, 2);
        response.preferences[0].members = vec![0, 1, 0, 2, 1];
        let ring = Ring::try_from(response).expect("repeats are tolerated");
        assert_eq!(attempt_order(&ring, 0, ring.n(), 2), [0, 1, 2]);
    }

    #[test]
    fn node_answers_outrank_unreachable_nodes() {
        let unavailable = |address: &str| Error::Unavailable {
            address: address.into(),
            message: "only 2 of 3 replicas acknowledged".into(),
        };
        let timeout = || Error::Timeout {
            address: "t:1".into(),
            message: "no answer within 5s".into(),
        };
        let unreachable = || Error::Transport {
            address: "down:1".into(),
            source: tonic::Status::from_error("connection refused".into()),
        };
        let kept = most_telling(Some(unavailable("a:1")), unreachable());
        assert!(matches!(&kept, Error::Unavailable { address, .. } if address == "a:1"));
        let kept = most_telling(Some(kept), timeout());
        assert!(matches!(kept, Error::Unavailable { .. }));
        let kept = most_telling(Some(unavailable("a:1")), unavailable("b:1"));
        assert!(matches!(&kept, Error::Unavailable { address, .. } if address == "b:1"));
        assert!(matches!(
            most_telling(Some(unreachable()), timeout()),
            Error::Timeout { .. }
        ));
        assert!(matches!(
            most_telling(None, unreachable()),
            Error::Transport { .. }
        ));
    }
}
