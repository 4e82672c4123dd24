//! The membership driver: moves the cluster, one node at a time, from the
//! ring it has to the member count the spec asks for.
//!
//! A join: start the member, wait until it is ready, propose a ring whose
//! `next_owners` give it its partitions, wait until every node streamed what
//! it gains, commit. A leave: propose a ring in which the leaver owns
//! nothing, wait for the streams, commit, stop the member, then commit a ring
//! without it. The ring on the nodes carries the change in flight, so every
//! step is re-derived from what the nodes report: the driver is idempotent,
//! and a driver that crashed at any step finishes the change after a
//! restart. It runs against a [`Platform`], so the same code drives local
//! processes and Kubernetes pods.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use dynamo_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{info, warn};

use dynamo_crd::{BucketSpec, DynamoClusterSpec};

use crate::admin::{Admin, GrpcAdmin};
use crate::plan::{self, Layout, PlanError, PlanMember};

#[cfg(test)]
mod tests;

/// Why a platform could not start or stop a member.
#[derive(Debug, Error)]
pub enum PlatformError {
    /// A file, directory or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What the platform was doing, for example `create /data/demo-1`.
        action: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a driver step failed. Unreachable nodes are not errors: the driver
/// waits for them.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The platform failed to start or stop a member.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The planner refused the ring it was asked for.
    #[error("cannot plan the next ring: {source}")]
    Plan {
        /// The planner's error.
        #[from]
        source: PlanError,
    },
    /// The planner named an owner that is not a member (a planner bug).
    #[error("planned owner {id} is not a member")]
    PlannedOwner {
        /// The owner's id.
        id: String,
    },
}

/// The kind of membership change in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// A member is joining: it gains partitions.
    Join,
    /// A member is leaving: its partitions stream away.
    Leave,
    /// A member's capacity weight changed: partitions stream to the members
    /// whose share grew.
    Reweigh,
}

impl Change {
    /// `join`, `leave` or `reweigh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Reweigh => "reweigh",
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a member process is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// One of the first members: every first member gets the same list and
    /// computes the same initial ring.
    Bootstrap {
        /// All first members.
        members: Vec<pb::Member>,
    },
    /// A member joining a running cluster through these node addresses.
    Join {
        /// Addresses of running members.
        seeds: Vec<String>,
    },
}

/// Where members run: local processes or Kubernetes pods.
pub trait Platform: Send + Sync {
    /// Member `index` as the ring names it (id, address, zone, weight; a
    /// weight of 0 means 1).
    fn member(&self, index: usize) -> pb::Member;
    /// The zone of member `index` when the platform knows it; `None` while
    /// it cannot tell yet (a pod not yet placed on a machine). A known zone
    /// that differs from the ring's is committed by the driver.
    fn zone(&self, index: usize) -> Option<String> {
        Some(self.member(index).zone)
    }
    /// Starts member `index`; starting a running member does nothing.
    fn start(
        &self,
        index: usize,
        launch: Launch,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// The platform index of the member named `id`; `None` when `id` is no
    /// name this platform gives (such a ring member is not wanted).
    fn index_of(&self, id: &str) -> Option<usize>;
    /// Indexes of members the platform runs or ran beyond the shape's (pods
    /// or processes that exist), asked for the ring too.
    fn known(&self) -> Vec<usize> {
        Vec::new()
    }
    /// True when member `index` runs and answers.
    fn is_ready(&self, index: usize) -> impl Future<Output = bool> + Send;
    /// Stops member `index` for good (it has left the ring).
    fn stop(&self, index: usize) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// The cluster the spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Cluster name.
    pub name: String,
    /// Platform indexes of the members the spec asks for. Missing members
    /// join in index order; ring members not listed leave, highest index
    /// first, after every join.
    pub members: BTreeSet<usize>,
    /// Partitions Q.
    pub partitions: u32,
    /// Replication factor N.
    pub n: u32,
    /// Default read quorum R.
    pub r: u32,
    /// Default write quorum W.
    pub w: u32,
    /// Declared buckets. The driver adds new ones and updates R, W and
    /// durability with a ring of the same owners; it never removes a bucket
    /// or changes its N (the nodes refuse such a ring).
    pub buckets: Vec<pb::Bucket>,
}

impl Shape {
    /// The shape of cluster `name` with `spec`'s partitions, quorums and
    /// buckets, and the members at the platform's `members` indexes.
    pub fn from_spec(name: &str, spec: &DynamoClusterSpec, members: BTreeSet<usize>) -> Self {
        Self {
            name: name.to_owned(),
            members,
            partitions: spec.partitions,
            n: spec.replication.factor,
            r: spec.replication.read_quorum,
            w: spec.replication.write_quorum,
            buckets: spec.buckets.iter().map(ring_bucket).collect(),
        }
    }

    /// The desired member count.
    pub fn replicas(&self) -> usize {
        self.members.len()
    }
}

/// The ring's declaration of bucket `spec`. A bucket without a durability
/// of its own declares the protocol's default, which each node reads as its
/// configured one (the cluster's `spec.durability`).
pub fn ring_bucket(spec: &BucketSpec) -> pb::Bucket {
    pb::Bucket {
        name: spec.name.clone(),
        n: spec.factor,
        r: spec.read_quorum,
        w: spec.write_quorum,
        durability: dynamo_client::durability_to_proto(spec.durability).into(),
    }
}

/// The step the driver is on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum Step {
    /// Nothing to do.
    #[default]
    Idle,
    /// Starting the first members.
    Bootstrap,
    /// Starting a joining member and waiting until it is ready.
    StartMember {
        /// The member.
        member: String,
    },
    /// Streaming partitions of a proposed ring.
    Stream {
        /// Epoch of the proposed ring.
        epoch: u64,
        /// A join or a leave.
        change: Change,
        /// The member joining or leaving.
        member: String,
    },
    /// Stopping a member that has left the ring.
    StopMember {
        /// The member.
        member: String,
    },
}

/// The driver's resumable state and its report, persisted after every step
/// (a file for the local platform, the custom resource's status on
/// Kubernetes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverState {
    /// True once the first members were started.
    pub bootstrapped: bool,
    /// The step in progress.
    pub step: Step,
    /// Epoch of the newest ring seen.
    pub epoch: u64,
    /// Members in that ring.
    pub members: usize,
    /// Partitions still to stream in the change in flight.
    pub partitions_left: u32,
    /// Estimated bytes still to stream.
    pub bytes_left: u64,
    /// A sentence for people: what runs, or why the driver waits.
    pub message: String,
}

/// The membership driver, over a platform `P` and the nodes' Admin service
/// `A` (gRPC unless a test supplies another).
pub struct Driver<P, A = GrpcAdmin> {
    platform: P,
    admin: Arc<A>,
    shape: Shape,
    state: DriverState,
    ring: Option<pb::Ring>,
    refusal: Option<String>,
}

/// The newest ring the members report, and each member's epoch.
struct Observed {
    ring: pb::Ring,
    epochs: BTreeMap<String, u64>,
}

impl<P: Platform, A: Admin> Driver<P, A> {
    /// A driver resuming from `state`, calling the nodes through `admin`
    /// (the same caller the platform uses, so one timeout applies).
    pub fn new(platform: P, admin: Arc<A>, shape: Shape, state: DriverState) -> Self {
        Self {
            platform,
            admin,
            shape,
            state,
            ring: None,
            refusal: None,
        }
    }

    /// The newest ring the last step observed, if any member answered.
    pub fn ring(&self) -> Option<&pb::Ring> {
        self.ring.as_ref()
    }

    /// What the last step refused to do, in words: a change of the replica
    /// count that has to wait until the change in flight completes.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// The state to persist.
    pub fn state(&self) -> &DriverState {
        &self.state
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Changes the desired shape (a new replica count).
    pub fn set_shape(&mut self, shape: Shape) {
        self.shape = shape;
    }

    /// Takes one step towards the desired shape. Returns true when the
    /// cluster has it and nothing is in flight.
    ///
    /// # Errors
    /// When the platform fails to start or stop a member, or a planned ring
    /// is invalid. Unreachable nodes are not errors: the driver waits.
    pub async fn step(&mut self) -> Result<bool, DriverError> {
        self.refusal = None;
        let Some(observed) = self.observe().await else {
            self.ring = None;
            return self.bootstrap().await;
        };
        self.ring = Some(observed.ring.clone());
        self.state.bootstrapped = true;
        self.state.epoch = observed.ring.epoch;
        self.state.members = observed.ring.members.len();
        self.catch_up(&observed).await;
        if observed.ring.next_owners.is_empty() {
            self.stable(observed.ring).await
        } else {
            self.in_flight(&observed).await?;
            Ok(false)
        }
    }

    /// Reads the ring from every member that may exist and keeps the newest.
    async fn observe(&self) -> Option<Observed> {
        let mut candidates: Vec<String> = self
            .shape
            .members
            .iter()
            .copied()
            .chain(self.platform.known())
            .map(|index| self.platform.member(index).address)
            .collect();
        let mut newest: Option<pb::Ring> = None;
        let mut epochs = BTreeMap::new();
        let mut asked = BTreeSet::new();
        while let Some(address) = candidates.pop() {
            if !asked.insert(address.clone()) {
                continue;
            }
            let Ok(ring) = self.admin.ring(&address).await else {
                continue;
            };
            epochs.insert(address, ring.epoch);
            candidates.extend(ring.members.iter().map(|m| m.address.clone()));
            if newest.as_ref().is_none_or(|best| ring.epoch > best.epoch) {
                newest = Some(ring);
            }
        }
        let ring = newest?;
        let epochs = ring
            .members
            .iter()
            .filter_map(|m| epochs.get(&m.address).map(|&epoch| (m.id.clone(), epoch)))
            .collect();
        Some(Observed { ring, epochs })
    }

    /// No member answers: start the first ones, or wait for them.
    async fn bootstrap(&mut self) -> Result<bool, DriverError> {
        if self.state.bootstrapped {
            self.report("no member answers; waiting for the members to come back");
            return Ok(false);
        }
        let members: Vec<pb::Member> = self
            .shape
            .members
            .iter()
            .map(|&index| self.platform.member(index))
            .collect();
        for &index in &self.shape.members {
            let launch = Launch::Bootstrap {
                members: members.clone(),
            };
            self.platform.start(index, launch).await?;
        }
        self.state.step = Step::Bootstrap;
        self.report(&format!("starting the first {} members", members.len()));
        Ok(false)
    }

    /// Installs the newest ring on members that missed it.
    async fn catch_up(&self, observed: &Observed) {
        let ring = &observed.ring;
        for member in &ring.members {
            let Some(&epoch) = observed.epochs.get(&member.id) else {
                continue;
            };
            if epoch >= ring.epoch {
                continue;
            }
            let installed = if ring.next_owners.is_empty() {
                self.admin.commit(&member.address, ring).await
            } else {
                self.admin.propose(&member.address, ring).await
            };
            if let Err(error) = installed {
                warn!(member = member.id, %error, "cannot install the ring");
            }
        }
    }

    /// No change in flight: remove a member that left, or start the next
    /// join or leave, or report convergence.
    async fn stable(&mut self, ring: pb::Ring) -> Result<bool, DriverError> {
        let owned = owned(&ring.owners, ring.members.len());
        if let Some(leaver) = (0..ring.members.len()).find(|&i| owned[i] == 0) {
            let member = ring.members[leaver].clone();
            self.state.step = Step::StopMember {
                member: member.id.clone(),
            };
            self.report(&format!("{} owns nothing; stopping it", member.id));
            if let Some(index) = self.index_of(&member.id) {
                self.platform.stop(index).await?;
            }
            let mut members = ring.members.clone();
            members.remove(leaver);
            let owners = ring
                .owners
                .iter()
                .map(|&owner| {
                    if owner as usize > leaver {
                        owner - 1
                    } else {
                        owner
                    }
                })
                .collect();
            let next = pb::Ring {
                epoch: ring.epoch + 1,
                members,
                owners,
                next_owners: Vec::new(),
                ..ring
            };
            self.commit_everywhere(&next).await;
            info!(
                member = member.id,
                epoch = next.epoch,
                "member removed from the ring"
            );
            return Ok(false);
        }
        if let Some((members, moved)) = self.rezoned(&ring) {
            return self.rezone(ring, members, moved).await;
        }
        if let Some(members) = self.reweighed(&ring) {
            return self.reweigh(ring, members).await;
        }
        let buckets = self.declared_buckets(&ring);
        if buckets != ring.buckets {
            return Ok(self.declare(ring, buckets).await);
        }
        if let Some(&index) = self.shape.members.iter().find(|&&index| {
            !ring
                .members
                .iter()
                .any(|m| m.id == self.platform.member(index).id)
        }) {
            return self.join(ring, index).await;
        }
        if let Some(leaver) = self.next_leaver(&ring) {
            return self.leave(ring, leaver).await;
        }
        let size = ring.members.len();
        self.state.step = Step::Idle;
        self.state.partitions_left = 0;
        self.state.bytes_left = 0;
        self.report(&format!(
            "{size} members, ring epoch {}: nothing to do",
            ring.epoch
        ));
        Ok(true)
    }

    /// Starts member `index` and, once it is ready, proposes its join.
    async fn join(&mut self, ring: pb::Ring, index: usize) -> Result<bool, DriverError> {
        let joiner = self.platform.member(index);
        if !self.platform.is_ready(index).await {
            let seeds = ring.members.iter().map(|m| m.address.clone()).collect();
            self.platform.start(index, Launch::Join { seeds }).await?;
            self.state.step = Step::StartMember {
                member: joiner.id.clone(),
            };
            self.report(&format!(
                "starting {} and waiting until it is ready",
                joiner.id
            ));
            return Ok(false);
        }
        let mut members = ring.members.clone();
        members.push(joiner.clone());
        let next = self.plan(&ring, &members)?;
        self.propose(ring, members, next, Change::Join, &joiner.id)
            .await;
        self.report(&format!("{} joins: streaming partitions", joiner.id));
        Ok(false)
    }

    /// Proposes `ring` with `members` and the planned `next` owners, and
    /// records the stream of `change` for `member` as the step in progress.
    async fn propose(
        &mut self,
        ring: pb::Ring,
        members: Vec<pb::Member>,
        next: Vec<u32>,
        change: Change,
        member: &str,
    ) {
        let proposed = pb::Ring {
            epoch: ring.epoch + 1,
            members,
            next_owners: next,
            ..ring
        };
        self.install_everywhere(&proposed, true).await;
        self.installed(&proposed);
        info!(member, epoch = proposed.epoch, %change, "proposed a change");
        self.state.step = Step::Stream {
            epoch: proposed.epoch,
            change,
            member: member.to_owned(),
        };
    }

    /// The ring's members with the zones the platform now reports, and the
    /// ids of those whose zone changed; `None` when none did.
    fn rezoned(&self, ring: &pb::Ring) -> Option<(Vec<pb::Member>, Vec<String>)> {
        let mut moved = Vec::new();
        let members = ring
            .members
            .iter()
            .map(|member| {
                let zone = self
                    .index_of(&member.id)
                    .and_then(|index| self.platform.zone(index));
                match zone {
                    Some(zone) if zone != member.zone => {
                        moved.push(member.id.clone());
                        pb::Member {
                            zone,
                            ..member.clone()
                        }
                    }
                    _ => member.clone(),
                }
            })
            .collect();
        (!moved.is_empty()).then_some((members, moved))
    }

    /// Members changed zones (on Kubernetes: the first members, whose pods
    /// were placed only after the first ring was made). Owners stay where
    /// they are, since the planner balances partition counts and zones only
    /// steer each key's preference walk, so the new zones are committed at
    /// once. Keys whose preference list changes get their new replicas from
    /// read repair and anti-entropy; for the first ring there are none yet.
    async fn rezone(
        &mut self,
        ring: pb::Ring,
        members: Vec<pb::Member>,
        moved: Vec<String>,
    ) -> Result<bool, DriverError> {
        let committed = pb::Ring {
            epoch: ring.epoch + 1,
            members,
            ..ring
        };
        self.commit_everywhere(&committed).await;
        let who = moved.join(", ");
        info!(members = who, epoch = committed.epoch, "zones committed");
        self.report(&format!(
            "zones of {who} committed at epoch {}",
            committed.epoch
        ));
        Ok(false)
    }

    /// The ring's members with the first weight change the platform reports
    /// applied (one member at a time); `None` when no weight changed.
    /// Members the shape no longer lists keep their weight until they leave.
    fn reweighed(&self, ring: &pb::Ring) -> Option<Vec<pb::Member>> {
        let (position, weight) =
            ring.members
                .iter()
                .enumerate()
                .find_map(|(position, member)| {
                    let index = self
                        .index_of(&member.id)
                        .filter(|index| self.shape.members.contains(index))?;
                    let wanted = weight(&self.platform.member(index));
                    (wanted != weight(member)).then_some((position, wanted))
                })?;
        let mut members = ring.members.clone();
        members[position].weight = weight;
        Some(members)
    }

    /// Proposes a ring in which one member has its new weight and the
    /// owners its new share, streamed and committed like a join; committed
    /// at once when no partition has to move.
    async fn reweigh(
        &mut self,
        ring: pb::Ring,
        members: Vec<pb::Member>,
    ) -> Result<bool, DriverError> {
        let changed = members
            .iter()
            .zip(&ring.members)
            .find(|(new, old)| new.weight != old.weight)
            .map(|(new, _)| (new.id.clone(), new.weight))
            .expect("a reweighed ring changes one weight");
        let next = self.plan(&ring, &members)?;
        let (id, weight) = changed;
        if next == ring.owners {
            let committed = pb::Ring {
                epoch: ring.epoch + 1,
                members,
                ..ring
            };
            self.commit_everywhere(&committed).await;
            self.report(&format!(
                "weight {weight} of {id} committed at epoch {} without moves",
                committed.epoch
            ));
            return Ok(false);
        }
        self.propose(ring, members, next, Change::Reweigh, &id)
            .await;
        self.report(&format!("{id} takes weight {weight}: streaming partitions"));
        Ok(false)
    }

    /// The ring member to leave next: one the shape does not list, the
    /// highest platform index first (names the platform does not know
    /// before all others).
    fn next_leaver(&self, ring: &pb::Ring) -> Option<(usize, pb::Member)> {
        ring.members
            .iter()
            .enumerate()
            .filter_map(|(position, member)| {
                let index = self.index_of(&member.id);
                let wanted = index.is_some_and(|i| self.shape.members.contains(&i));
                (!wanted).then_some((index.map_or(0, |i| i + 1), position, member))
            })
            .max_by_key(|&(rank, position, _)| (std::cmp::Reverse(rank == 0), rank, position))
            .map(|(_, position, member)| (position, member.clone()))
    }

    /// The most replicas any key needs: the ring's N or a bucket's.
    fn widest_n(&self, ring: &pb::Ring) -> usize {
        ring.buckets
            .iter()
            .map(|bucket| bucket.n)
            .chain([ring.n, self.shape.n])
            .max()
            .unwrap_or(1) as usize
    }

    /// Proposes the leave of `leaver` (its position in the ring and the
    /// member), unless the members left would be fewer than a key's N.
    async fn leave(
        &mut self,
        ring: pb::Ring,
        leaver: (usize, pb::Member),
    ) -> Result<bool, DriverError> {
        let widest = self.widest_n(&ring);
        if ring.members.len() <= widest {
            let refusal = format!(
                "refusing to remove {}: {} members must stay for keys with N = {widest}",
                leaver.1.id,
                ring.members.len()
            );
            self.state.step = Step::Idle;
            self.report(&refusal);
            self.refusal = Some(refusal);
            return Ok(false);
        }
        let staying: Vec<pb::Member> = ring
            .members
            .iter()
            .filter(|m| m.id != leaver.1.id)
            .cloned()
            .collect();
        let next = self.plan(&ring, &staying)?;
        let members = ring.members.clone();
        self.propose(ring, members, next, Change::Leave, &leaver.1.id)
            .await;
        self.report(&format!(
            "{} leaves: streaming its partitions away",
            leaver.1.id
        ));
        Ok(false)
    }

    /// A change is in flight: commit it once every member has streamed
    /// what it gains.
    async fn in_flight(&mut self, observed: &Observed) -> Result<(), DriverError> {
        let ring = &observed.ring;
        let now = owned(&ring.owners, ring.members.len());
        let next = owned(&ring.next_owners, ring.members.len());
        let change = if now.iter().zip(&next).any(|(a, b)| *a > 0 && *b == 0) {
            Change::Leave
        } else if now.iter().zip(&next).any(|(a, b)| *a == 0 && *b > 0) {
            Change::Join
        } else {
            Change::Reweigh
        };
        let mut refusal = String::new();
        let wanted = |member: &pb::Member| {
            self.index_of(&member.id)
                .is_some_and(|index| self.shape.members.contains(&index))
        };
        let moving = |changed: &dyn Fn(u32, u32) -> bool| {
            ring.members
                .iter()
                .zip(now.iter().zip(&next))
                .find(|(_, (a, b))| changed(**a, **b))
                .map(|(member, _)| member)
        };
        if change == Change::Leave
            && let Some(leaver) = moving(&|a, b| a > 0 && b == 0).filter(|m| wanted(m))
        {
            refusal = format!(
                "refusing to keep {} while its leave is unfinished: it completes first",
                leaver.id
            );
        } else if change == Change::Join
            && let Some(joiner) = moving(&|a, b| a == 0 && b > 0).filter(|m| !wanted(m))
        {
            refusal = format!(
                "refusing to remove {} while its join is unfinished: it completes first",
                joiner.id
            );
        }
        if !refusal.is_empty() {
            self.refusal = Some(refusal.clone());
            refusal.insert_str(0, "; ");
        }
        let mut partitions_left = 0;
        let mut bytes_left = 0;
        let mut waiting = Vec::new();
        for member in &ring.members {
            match self.admin.transfers(&member.address).await {
                Ok(progress) if progress.epoch == ring.epoch => {
                    let left = progress.partitions_total
                        - progress.partitions_done.min(progress.partitions_total);
                    partitions_left += left;
                    bytes_left += progress.bytes_left;
                    if left > 0 {
                        waiting.push(format!("{} ({left} left)", member.id));
                    }
                }
                Ok(_) => waiting.push(format!(
                    "{} (has not installed epoch {})",
                    member.id, ring.epoch
                )),
                Err(error) => waiting.push(format!("{} (unreachable: {error})", member.id)),
            }
        }
        self.state.partitions_left = partitions_left;
        self.state.bytes_left = bytes_left;
        if !waiting.is_empty() {
            self.report(&format!(
                "{change} in flight at epoch {}: {partitions_left} partitions and about {bytes_left} bytes left; waiting for {}{refusal}",
                ring.epoch,
                waiting.join(", ")
            ));
            return Ok(());
        }
        let committed = pb::Ring {
            epoch: ring.epoch + 1,
            owners: ring.next_owners.clone(),
            next_owners: Vec::new(),
            ..ring.clone()
        };
        self.commit_everywhere(&committed).await;
        info!(epoch = committed.epoch, %change, "committed");
        self.report(&format!(
            "{change} committed at epoch {}{refusal}",
            committed.epoch
        ));
        Ok(())
    }

    /// Plans next owners for `members`, as indexes into `members`' order
    /// within `ring.members` extended by new members.
    fn plan(&self, ring: &pb::Ring, desired: &[pb::Member]) -> Result<Vec<u32>, DriverError> {
        let current = Layout {
            members: ring.members.iter().map(plan_member).collect(),
            owners: ring.owners.clone(),
        };
        let wanted: Vec<PlanMember> = desired.iter().map(plan_member).collect();
        let next = plan::next(&current, &wanted, self.shape.n as usize)?;
        let mut all = ring.members.clone();
        for member in desired {
            if !all.iter().any(|m| m.id == member.id) {
                all.push(member.clone());
            }
        }
        next.owners
            .iter()
            .map(|&owner| {
                let id = &next.members[owner as usize].id;
                all.iter()
                    .position(|m| &m.id == id)
                    .map(|index| index as u32)
                    .ok_or_else(|| DriverError::PlannedOwner { id: id.clone() })
            })
            .collect()
    }

    /// Installs `ring` on every member it names.
    async fn install_everywhere(&self, ring: &pb::Ring, proposal: bool) {
        for member in &ring.members {
            let installed = if proposal {
                self.admin.propose(&member.address, ring).await
            } else {
                self.admin.commit(&member.address, ring).await
            };
            if let Err(error) = installed {
                warn!(
                    member = member.id,
                    %error, "cannot install the ring; gossip or the next step will"
                );
            }
        }
    }

    /// Installs `ring` as committed on every member it names and records it
    /// as the newest seen.
    async fn commit_everywhere(&mut self, ring: &pb::Ring) {
        self.install_everywhere(ring, false).await;
        self.installed(ring);
    }

    /// Records a ring the driver just installed as the newest seen.
    fn installed(&mut self, ring: &pb::Ring) {
        self.state.epoch = ring.epoch;
        self.state.members = ring.members.len();
        self.ring = Some(ring.clone());
    }

    /// The platform index of member `id`.
    fn index_of(&self, id: &str) -> Option<usize> {
        self.platform.index_of(id)
    }

    /// The buckets the next ring declares: the ring's, with R, W and
    /// durability from the shape, plus the shape's new buckets whose N the
    /// members can hold. A bucket the shape drops or whose N it changes
    /// stays as it is, and the step reports why.
    fn declared_buckets(&mut self, ring: &pb::Ring) -> Vec<pb::Bucket> {
        let mut declared = Vec::with_capacity(ring.buckets.len());
        let mut refusals = Vec::new();
        for bucket in &ring.buckets {
            match self.shape.buckets.iter().find(|b| b.name == bucket.name) {
                Some(wanted) if wanted.n == bucket.n => declared.push(wanted.clone()),
                Some(wanted) => {
                    refusals.push(format!(
                        "bucket {} keeps N = {}: N never changes (asked for {})",
                        bucket.name, bucket.n, wanted.n
                    ));
                    declared.push(bucket.clone());
                }
                None => {
                    refusals.push(format!(
                        "bucket {} stays: a bucket is never removed",
                        bucket.name
                    ));
                    declared.push(bucket.clone());
                }
            }
        }
        for wanted in &self.shape.buckets {
            if declared.iter().any(|b| b.name == wanted.name) {
                continue;
            }
            if wanted.n as usize > ring.members.len() {
                refusals.push(format!(
                    "bucket {} waits: N = {} needs as many members, the ring has {}",
                    wanted.name,
                    wanted.n,
                    ring.members.len()
                ));
            } else {
                declared.push(wanted.clone());
            }
        }
        if !refusals.is_empty() {
            self.refusal = Some(refusals.join("; "));
        }
        declared
    }

    /// Commits `ring` with `buckets` and the same owners.
    async fn declare(&mut self, ring: pb::Ring, buckets: Vec<pb::Bucket>) -> bool {
        let names: Vec<&str> = buckets.iter().map(|b| b.name.as_str()).collect();
        let names = names.join(", ");
        let committed = pb::Ring {
            epoch: ring.epoch + 1,
            buckets,
            ..ring
        };
        self.commit_everywhere(&committed).await;
        info!(
            epoch = committed.epoch,
            buckets = names,
            "buckets committed"
        );
        self.report(&format!(
            "buckets [{names}] committed at epoch {}",
            committed.epoch
        ));
        false
    }

    fn report(&mut self, message: &str) {
        if self.state.message != message {
            info!(step = ?self.state.step, "{message}");
            self.state.message = message.to_owned();
        }
    }
}

/// The capacity weight of a ring member: 0 (unset, as in rings written
/// before weights) reads as 1.
pub fn weight(member: &pb::Member) -> u32 {
    member.weight.max(1)
}

/// The planner's view of a ring member.
fn plan_member(member: &pb::Member) -> PlanMember {
    PlanMember::new(member.id.clone(), member.zone.clone()).with_weight(weight(member))
}

/// Partitions owned per member index.
fn owned(owners: &[u32], members: usize) -> Vec<u32> {
    let mut counts = vec![0; members];
    for &owner in owners {
        if let Some(count) = counts.get_mut(owner as usize) {
            *count += 1;
        }
    }
    counts
}
