//! Membership state: every member's newest heartbeat and when it last moved,
//! and the local failure detector built on heartbeat age. This is a pure
//! state machine; [`crate::gossip`] does the I/O.
//!
//! The detector only steers replica choice for sloppy quorum. It never changes
//! who owns what.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How this node currently judges a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// This node itself.
    Myself,
    /// Its heartbeat moved recently.
    Up,
    /// Its heartbeat has not moved for longer than the suspicion timeout,
    /// or it was never heard of.
    Down,
}

impl Liveness {
    /// The word used in status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Myself => "self",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// The newest heartbeat known of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The member's own counter; it only grows within an incarnation.
    pub counter: u64,
    /// Incarnation id (hex) of the member's data directory.
    pub incarnation: String,
}

#[derive(Clone, Debug)]
struct Known {
    heartbeat: Heartbeat,
    moved: Instant,
}

/// Heartbeats of all members and the failure detector.
#[derive(Debug)]
pub struct Membership {
    me: String,
    suspect_after: Duration,
    known: BTreeMap<String, Known>,
}

impl Membership {
    /// Starts with only this node known. The own counter starts at the
    /// current wall-clock milliseconds, so a restarted node's heartbeats are
    /// newer than those it sent before.
    pub fn new(me: &str, incarnation: &str, suspect_after: Duration, now: Instant) -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_millis() as u64);
        let mut known = BTreeMap::new();
        known.insert(
            me.to_owned(),
            Known {
                heartbeat: Heartbeat {
                    counter: start,
                    incarnation: incarnation.to_owned(),
                },
                moved: now,
            },
        );
        Self {
            me: me.to_owned(),
            suspect_after,
            known,
        }
    }

    /// Starts tracking members not known yet, as if just heard of, so a
    /// fresh node does not suspect everyone before the first gossip round.
    pub fn track<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>, now: Instant) {
        for id in ids {
            self.known.entry(id.to_owned()).or_insert(Known {
                heartbeat: Heartbeat {
                    counter: 0,
                    incarnation: String::new(),
                },
                moved: now,
            });
        }
    }

    /// Restarts the grace period of members never heard of, so a node that
    /// spent a while starting does not suspect everyone at once.
    pub fn grace(&mut self, now: Instant) {
        for known in self.known.values_mut() {
            if known.heartbeat.counter == 0 {
                known.moved = now;
            }
        }
    }

    /// Advances this node's own heartbeat.
    pub fn tick(&mut self, now: Instant) {
        if let Some(own) = self.known.get_mut(&self.me) {
            own.heartbeat.counter += 1;
            own.moved = now;
        }
    }

    /// Takes in heartbeats heard from a peer; newer counters win.
    pub fn merge(&mut self, heard: impl IntoIterator<Item = (String, Heartbeat)>, now: Instant) {
        for (id, heartbeat) in heard {
            if id == self.me {
                continue;
            }
            match self.known.get_mut(&id) {
                Some(known) if known.heartbeat.counter >= heartbeat.counter => {}
                Some(known) => {
                    known.heartbeat = heartbeat;
                    known.moved = now;
                }
                None => {
                    self.known.insert(
                        id,
                        Known {
                            heartbeat,
                            moved: now,
                        },
                    );
                }
            }
        }
    }

    /// Marks a member as heard from directly (a successful call).
    pub fn heard_from(&mut self, id: &str, now: Instant) {
        if let Some(known) = self.known.get_mut(id) {
            known.moved = now;
        }
    }

    /// Hook for request outcomes: a call to `id` did not reach it in time
    /// (unreachable or timed out). The peer client calls it for every such
    /// call; the heartbeat-age detector takes nothing from it, an accrual
    /// detector counts it as evidence.
    pub fn failed(&mut self, id: &str, now: Instant) {
        let _ = (id, now);
    }

    /// Every heartbeat known, for a gossip message.
    pub fn heartbeats(&self) -> Vec<(String, Heartbeat)> {
        self.known
            .iter()
            .map(|(id, known)| (id.clone(), known.heartbeat.clone()))
            .collect()
    }

    /// The failure detector's judgement of `id`.
    pub fn liveness(&self, id: &str, now: Instant) -> Liveness {
        if id == self.me {
            return Liveness::Myself;
        }
        match self.known.get(id) {
            Some(known) if now.saturating_duration_since(known.moved) < self.suspect_after => {
                Liveness::Up
            }
            _ => Liveness::Down,
        }
    }

    /// How long ago `id`'s heartbeat last moved, if it was ever heard of.
    pub fn last_heard(&self, id: &str, now: Instant) -> Option<Duration> {
        self.known
            .get(id)
            .map(|known| now.saturating_duration_since(known.moved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(counter: u64) -> Heartbeat {
        Heartbeat {
            counter,
            incarnation: "1".into(),
        }
    }

    #[test]
    fn members_go_down_when_heartbeats_stop_and_up_when_they_move() {
        let start = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut membership = Membership::new("a", "1", timeout, start);
        assert_eq!(membership.liveness("a", start), Liveness::Myself);
        assert_eq!(
            membership.liveness("b", start),
            Liveness::Down,
            "never heard of"
        );
        membership.merge([("b".to_owned(), beat(10))], start);
        assert_eq!(membership.liveness("b", start), Liveness::Up);
        let later = start + Duration::from_secs(6);
        membership.merge([("b".to_owned(), beat(10))], later);
        assert_eq!(
            membership.liveness("b", later),
            Liveness::Down,
            "an old heartbeat is no news"
        );
        membership.merge([("b".to_owned(), beat(11))], later);
        assert_eq!(membership.liveness("b", later), Liveness::Up);
    }

    #[test]
    fn a_slow_start_restarts_the_grace_of_members_never_heard_of() {
        let start = Instant::now();
        let mut membership = Membership::new("a", "1", Duration::from_secs(1), start);
        membership.track(["b", "c"], start);
        membership.merge([("c".to_owned(), beat(5))], start);
        let later = start + Duration::from_secs(3);
        assert_eq!(membership.liveness("b", later), Liveness::Down);
        membership.grace(later);
        assert_eq!(
            membership.liveness("b", later),
            Liveness::Up,
            "never heard of: grace"
        );
        assert_eq!(
            membership.liveness("c", later),
            Liveness::Down,
            "heard of, then silent"
        );
    }

    #[test]
    fn own_heartbeat_only_grows_and_is_not_overwritten() {
        let now = Instant::now();
        let mut membership = Membership::new("a", "1", Duration::from_secs(1), now);
        let before = membership.heartbeats()[0].1.counter;
        membership.tick(now);
        membership.merge([("a".to_owned(), beat(0))], now);
        assert_eq!(membership.heartbeats()[0].1.counter, before + 1);
    }
}
