//! The Kubernetes side of the operator: a kube-rs `Controller` that turns a
//! `DynamoCluster` into Services, a ConfigMap, a StatefulSet per node pool, a
//! PodDisruptionBudget and optionally a NetworkPolicy, and runs the membership [`Driver`](crate::driver::Driver)
//! through a [`KubePlatform`] whose state lives in the custom resource's status.
//!
//! The pipeline is split by what needs a client: [`cluster`] validates a
//! resource into a [`ValidatedCluster`] and [`builders`] turn that into
//! objects without any I/O; [`controller`] reads pods, steps the driver,
//! writes the status and applies the objects.

pub mod builders;
pub mod certs;
pub mod cluster;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod network;
pub mod nodeconfig;
pub mod platform;
pub mod pools;
pub mod render;
pub mod state;
pub mod status;
pub mod zones;

pub use cluster::{Refusal, ValidatedCluster};
pub use controller::{Context, Error};
pub use platform::KubePlatform;
pub use state::{ClusterState, MemberLaunch};
