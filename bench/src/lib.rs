//! A YCSB-like load generator as a library: a [`Workload`] (records, value
//! size, read share, uniform or zipfian keys), closed- and open-loop
//! drivers ([`run`]), one HDR latency [`Recorder`], over a small
//! [`Backend`] trait with a DynamoKV and an etcd implementation.
//!
//! `dynamoctl bench` runs it against DynamoKV; the `dynamo-compare` binary
//! runs it against either store, for `scripts/compare-etcd`.
//!
//! # Examples
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use dynamo_bench::{Distribution, EtcdBackend, Plan, Workload, run};
//!
//! let endpoints = ["127.0.0.1:2379".to_owned()];
//! let etcd = Arc::new(EtcdBackend::connect(&endpoints, Duration::from_secs(5)).await?);
//! let plan = Plan {
//!     workload: Workload {
//!         records: 10_000,
//!         value_size: 1024,
//!         read_proportion: 0.5,
//!         distribution: Distribution::Zipfian,
//!     },
//!     duration: Duration::from_secs(15),
//!     warmup: Duration::from_secs(3),
//!     concurrency: 64,
//!     rate: None,
//!     skip_load: false,
//! };
//! let report = run(&etcd, &plan).await?;
//! println!("{} reads/s", report.read.ops_per_second);
//! # Ok(())
//! # }
//! ```

mod backend;
mod driver;
mod dynamo;
pub mod etcd;
mod recorder;
mod workload;

pub use backend::Backend;
pub use driver::{LoadError, Plan, load, measure, run};
pub use dynamo::DynamoBackend;
pub use etcd::{EtcdBackend, EtcdError};
pub use recorder::{BenchReport, OpReport, Recorder};
pub use workload::{Distribution, Generator, Op, Request, Workload, key};
