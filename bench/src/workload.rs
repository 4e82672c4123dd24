//! The workload: how many records, how big their values are, which key
//! each operation picks (uniform or zipfian) and whether it reads or writes.

use bytes::Bytes;
use rand::Rng;

/// Key popularity (also a command-line value: `uniform`, `zipfian`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with theta 0.99: a few keys take most requests.
    Zipfian,
}

/// What the operations of a run look like.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Records loaded before the run and drawn from during it.
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Share of reads, 0.0 to 1.0 (values outside are clamped).
    pub read_proportion: f64,
    /// Key popularity.
    pub distribution: Distribution,
}

impl Workload {
    /// The value every write stores: `value_size` bytes.
    pub fn value(&self) -> Bytes {
        Bytes::from(vec![b'v'; self.value_size])
    }

    /// The generator of this workload's operations.
    pub fn generator(&self) -> Generator {
        let records = self.records.max(1);
        Generator {
            keys: match self.distribution {
                Distribution::Uniform => Keys::Uniform { records },
                Distribution::Zipfian => Keys::Zipfian(Zipfian::new(records)),
            },
            read_proportion: self.read_proportion.clamp(0.0, 1.0),
        }
    }
}

/// The name under which record `index` is stored: `bench-` and twelve
/// digits, so every backend sees the same keys.
pub fn key(index: u64) -> String {
    format!("bench-{index:012}")
}

/// What one operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A read of the record.
    Read,
    /// A write of the record.
    Write,
}

/// One operation drawn from a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Read or write.
    pub op: Op,
    /// The record, `0..records`.
    pub record: u64,
}

/// Draws operations of a [`Workload`]; shared by the workers, each with its
/// own random number generator.
#[derive(Debug)]
pub struct Generator {
    keys: Keys,
    read_proportion: f64,
}

impl Generator {
    /// The next operation: first its record, then whether it reads.
    pub fn next(&self, rng: &mut impl Rng) -> Request {
        let record = match &self.keys {
            Keys::Uniform { records } => rng.random_range(0..*records),
            Keys::Zipfian(zipfian) => zipfian.next(rng),
        };
        let op = if rng.random_bool(self.read_proportion) {
            Op::Read
        } else {
            Op::Write
        };
        Request { op, record }
    }
}

#[derive(Debug)]
enum Keys {
    Uniform { records: u64 },
    Zipfian(Zipfian),
}

/// YCSB's zipfian generator over `0..items` (Gray et al.), theta 0.99.
#[derive(Debug)]
struct Zipfian {
    items: f64,
    theta: f64,
    alpha: f64,
    zeta: f64,
    eta: f64,
}

impl Zipfian {
    fn new(items: u64) -> Self {
        let theta = 0.99;
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(items);
        let zeta_2 = zeta(2.min(items));
        let n = items as f64;
        Self {
            items: n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta: zeta_n,
            eta: (1.0 - (2.0 / n).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
        }
    }

    fn next(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zeta;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let value = self.items * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (value as u64).min(self.items as u64 - 1)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn workload(records: u64, read_proportion: f64, distribution: Distribution) -> Workload {
        Workload {
            records,
            value_size: 16,
            read_proportion,
            distribution,
        }
    }

    fn draws(workload: &Workload, count: usize) -> Vec<Request> {
        let generator = workload.generator();
        let mut rng = StdRng::seed_from_u64(7);
        (0..count).map(|_| generator.next(&mut rng)).collect()
    }

    #[test]
    fn zipfian_prefers_low_keys_and_stays_in_range() {
        let draws = draws(&workload(1000, 0.5, Distribution::Zipfian), 10_000);
        assert!(draws.iter().all(|draw| draw.record < 1000));
        let hot = draws.iter().filter(|draw| draw.record < 10).count();
        assert!(
            hot > 3_000,
            "the 1% hottest keys got only {hot} of 10,000 draws"
        );
    }

    #[test]
    fn uniform_spreads_evenly_over_every_record() {
        let draws = draws(&workload(10, 0.5, Distribution::Uniform), 100_000);
        let mut counts = [0usize; 10];
        for draw in &draws {
            counts[usize::try_from(draw.record).expect("below 10")] += 1;
        }
        for (record, count) in counts.iter().enumerate() {
            assert!(
                (9_500..=10_500).contains(count),
                "record {record} got {count} of 100,000 draws: {counts:?}"
            );
        }
    }

    #[test]
    fn reads_take_their_share() {
        for (proportion, low, high) in [(0.0, 0, 0), (0.3, 29_000, 31_000), (1.0, 100_000, 100_000)]
        {
            let draws = draws(&workload(100, proportion, Distribution::Uniform), 100_000);
            let reads = draws.iter().filter(|draw| draw.op == Op::Read).count();
            assert!(
                (low..=high).contains(&reads),
                "read proportion {proportion}: {reads} reads of 100,000"
            );
        }
    }

    #[test]
    fn a_single_record_is_always_drawn() {
        for distribution in [Distribution::Uniform, Distribution::Zipfian] {
            let draws = draws(&workload(1, 0.5, distribution), 1_000);
            assert!(
                draws.iter().all(|draw| draw.record == 0),
                "{distribution:?}"
            );
        }
    }

    #[test]
    fn keys_and_values_have_the_promised_shape() {
        assert_eq!(key(42), "bench-000000000042");
        assert_eq!(workload(1, 0.5, Distribution::Uniform).value().len(), 16);
    }
}
