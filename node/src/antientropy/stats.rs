//! What an anti-entropy pass or exchange did.

/// What a pass (or one exchange) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Partition replica pairs compared.
    pub exchanges: u64,
    /// Pairs whose roots differed.
    pub differing: u64,
    /// Keys whose versions moved in either direction.
    pub keys_repaired: u64,
    /// Bytes sent to peers.
    pub bytes_sent: u64,
    /// Bytes received from peers.
    pub bytes_received: u64,
    /// Tombstones dropped on all replicas.
    pub tombstones_dropped: u64,
}

impl Stats {
    /// Adds the counts of `other`.
    pub fn add(&mut self, other: Stats) {
        self.exchanges += other.exchanges;
        self.differing += other.differing;
        self.keys_repaired += other.keys_repaired;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.tombstones_dropped += other.tombstones_dropped;
    }
}
