//! Leader election through a `coordination.k8s.io/v1` Lease, so that two
//! operator replicas never drive the same cluster at once. The holder renews
//! the Lease every few seconds; another replica takes it over only after it
//! expired. A leader that cannot renew in time stops reconciling.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

/// Who elects and how often.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How often the leader renews and candidates retry.
    pub retry: Duration,
}

impl LeaseConfig {
    /// A configuration with a 15 s Lease renewed every 2 s.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create one held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Another holder let it expire, or nobody holds it: take it over.
    TakeOver,
    /// Another holder's Lease is still valid.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// Decides, without I/O, what `identity` does with `lease` at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease.and_then(|lease| lease.spec.as_ref()) else {
        return if lease.is_some() {
            Decision::TakeOver
        } else {
            Decision::Create
        };
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let expired = match &spec.renew_time {
        Some(MicroTime(renewed)) => *renewed + SignedDuration::from_secs(seconds) < now,
        None => true,
    };
    if holder.is_empty() || expired {
        Decision::TakeOver
    } else {
        Decision::Wait { holder }
    }
}

/// Campaigns for and holds one Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Elector {
    /// An elector for `config`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Acquires or renews the Lease once. True when this replica holds it
    /// afterwards; a conflicting write by another replica is a false.
    ///
    /// # Errors
    /// When the API server cannot be reached or refuses for another reason.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.config.name).await?;
        let written = match decide(current.as_ref(), &self.config.identity, now) {
            Decision::Wait { .. } => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            decision => {
                let mut lease = current.unwrap_or_default();
                let old = lease.spec.clone().unwrap_or_default();
                let (acquired, transitions) = if decision == Decision::Renew {
                    (old.acquire_time, old.lease_transitions.unwrap_or(0))
                } else {
                    (None, old.lease_transitions.unwrap_or(0).saturating_add(1))
                };
                lease.spec = Some(self.spec(now, acquired, transitions));
                // The resourceVersion makes this a compare-and-swap.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        let mut announced = false;
        loop {
            match self.try_lead().await {
                Ok(true) => {
                    info!(
                        lease = self.config.name,
                        identity = self.config.identity,
                        "leading"
                    );
                    return;
                }
                Ok(false) if !announced => {
                    info!(
                        lease = self.config.name,
                        "another replica leads; standing by"
                    );
                    announced = true;
                }
                Ok(false) => {}
                Err(error) => warn!(lease = self.config.name, "cannot read the Lease: {error}"),
            }
            tokio::time::sleep(self.config.retry).await;
        }
    }

    /// Renews the Lease until leadership is lost (another replica took it,
    /// or no renewal succeeded for a Lease duration), then returns.
    pub async fn hold(&self) {
        let mut renewed = tokio::time::Instant::now();
        // Stop before the Lease could expire, with one retry of margin.
        let deadline = self.config.duration.saturating_sub(self.config.retry);
        loop {
            tokio::time::sleep(self.config.retry).await;
            match self.try_lead().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    warn!(lease = self.config.name, "another replica took the Lease");
                    return;
                }
                Err(error) => {
                    warn!(lease = self.config.name, "cannot renew the Lease: {error}");
                    if renewed.elapsed() >= deadline {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up at shutdown so a standby takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(error) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            warn!(
                lease = self.config.name,
                "cannot release the Lease: {error}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(seconds),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("time"))),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_valid_lease_of_another_holder_is_respected() {
        let now = Timestamp::from_second(1_000).expect("time");
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(
            decide(Some(&lease("a", 990, 15)), "a", now),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease("b", 990, 15)), "a", now),
            Decision::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&lease("b", 980, 15)), "a", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease("", 999, 15)), "a", now),
            Decision::TakeOver
        );
    }
}
