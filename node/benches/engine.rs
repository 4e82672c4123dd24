//! Criterion benchmarks of the engine's hot paths: the sibling-set merge,
//! the storage codec, and a coordinated write and a read through fjall.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_main};
use dynamo_node::codec;
use dynamo_node::storage::{Durability, NewWrite, Storage};
use dynamo_node::version::{Clock, Dot, SiblingSet, Version};

fn version(node: u64, counter: u64, past: Clock) -> Version {
    Version {
        dot: Dot { node, counter },
        past,
        value: Bytes::from(vec![7u8; 1024]),
        tombstone: false,
        timestamp_ms: counter,
    }
}

/// Two replicas' sets of three concurrent siblings each, half overlapping.
fn replica_sets() -> (SiblingSet, SiblingSet) {
    let base = Clock::from_entries([(1, 10), (2, 10), (3, 10)]);
    let left = SiblingSet::from_versions((1..=3).map(|n| version(n, 11, base.clone())).collect());
    let right = SiblingSet::from_versions((2..=4).map(|n| version(n, 11, base.clone())).collect());
    (left, right)
}

fn merge(c: &mut Criterion) {
    let (left, right) = replica_sets();
    c.bench_function("version/merge 3+3 siblings", |b| {
        b.iter_batched(
            || left.clone(),
            |mut set| {
                set.merge(&right);
                set
            },
            BatchSize::SmallInput,
        );
    });
    let mut merged = left.clone();
    merged.merge(&right);
    c.bench_function("version/context of 4 siblings", |b| {
        b.iter(|| merged.context())
    });
    c.bench_function("codec/encode+decode 4 x 1 KiB", |b| {
        b.iter(|| codec::decode(&codec::encode(&merged)).expect("decodes"));
    });
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), 0).expect("open");
    let value = Bytes::from(vec![1u8; 1024]);
    let mut i = 0u64;
    c.bench_function("storage/coordinate 1 KiB (buffer)", |b| {
        b.iter(|| {
            i += 1;
            let key = format!("key-{}", i % 100_000);
            let write = NewWrite {
                value: value.clone(),
                tombstone: false,
                context: Clock::new(),
                timestamp_ms: i,
            };
            // A blind write per key would pile up siblings; replace them.
            let context = storage.read(1, key.as_bytes()).expect("read").context();
            storage
                .write_new_version(
                    1,
                    key.as_bytes(),
                    NewWrite { context, ..write },
                    64,
                    Durability::Buffer,
                )
                .expect("write")
        });
    });
    c.bench_function("storage/read 1 KiB", |b| {
        let mut j = 0u64;
        b.iter(|| {
            j += 1;
            storage
                .read(1, format!("key-{}", j % 100_000).as_bytes())
                .expect("read")
        });
    });
}

mod group {
    #![allow(missing_docs)]
    use super::{merge, storage};
    criterion::criterion_group!(benches, merge, storage);
}

criterion_main!(group::benches);
