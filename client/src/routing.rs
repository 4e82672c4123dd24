//! Single-hop routing: which members to try, in which order, for a key.

use crate::Ring;

/// Member indexes to try for `partition`, each at most once: the preference
/// list rotated to begin at `start` (modulo its length), so successive
/// requests spread over the replicas, then the fallbacks in ring order.
pub(crate) fn attempt_order(ring: &Ring, partition: usize, start: usize) -> Vec<usize> {
    let preference = ring.preference_indexes(partition);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests::sample;

    #[test]
    fn rotates_the_preference_list_then_tries_fallbacks() {
        let ring = Ring::try_from(sample(5, 8)).expect("sample ring is consistent");
        // Partition 6: preference m1 m2 m3, fallbacks m4 m0.
        assert_eq!(attempt_order(&ring, 6, 0), [1, 2, 3, 4, 0]);
        assert_eq!(attempt_order(&ring, 6, 1), [2, 3, 1, 4, 0]);
        assert_eq!(attempt_order(&ring, 6, 5), [3, 1, 2, 4, 0]);
    }

    #[test]
    fn every_replica_starts_equally_often() {
        let ring = Ring::try_from(sample(4, 4)).expect("sample ring is consistent");
        let mut first = [0; 4];
        for start in 0..300 {
            first[attempt_order(&ring, 2, start)[0]] += 1;
        }
        assert_eq!(first, [100, 0, 100, 100]);
    }

    #[test]
    fn repeated_members_are_tried_once() {
        let mut response = sample(3, 2);
        response.preferences[0].members = vec![0, 1, 0, 2, 1];
        let ring = Ring::try_from(response).expect("repeats are tolerated");
        assert_eq!(attempt_order(&ring, 0, 2), [0, 1, 2]);
    }
}
