//! Client tasks of a fault test: each owns a few keys and shares a few with
//! the others, and does read-then-put, read-then-delete, blind puts and
//! plain reads against random nodes, recording every attempt in a
//! [`History`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dynamo_proto::v1 as pb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::endpoints::Endpoints;
use crate::history::{Action, History, Timed, Write};

/// The keys of one client.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Keys only this client writes.
    pub own: Vec<String>,
    /// Keys every client writes.
    pub shared: Vec<String>,
}

impl Keys {
    /// `own` keys for client `client` and `shared` keys common to all.
    pub fn new(client: usize, own: usize, shared: usize) -> Self {
        Self {
            own: (0..own)
                .map(|k| format!("client-{client}-key-{k}"))
                .collect(),
            shared: (0..shared).map(|k| format!("shared-key-{k}")).collect(),
        }
    }
}

/// One client: runs until `stop` is set or `until` passes.
pub struct Client {
    /// Index of the client, part of every value it writes.
    pub id: usize,
    /// Its keys.
    pub keys: Keys,
    /// Where the nodes are.
    pub endpoints: Endpoints,
    /// Seed of its choices.
    pub seed: u64,
}

impl Client {
    /// Runs the client and returns what it did.
    pub async fn run(self, stop: Arc<AtomicBool>, until: Instant) -> History {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut history = History::default();
        // The client's last acknowledged put per own key, for stale reads.
        let mut last_put: Vec<Option<String>> = vec![None; self.keys.own.len()];
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            seq += 1;
            let own = rng.random_bool(0.75) || self.keys.shared.is_empty();
            let (key, own_index) = if own {
                let k = rng.random_range(0..self.keys.own.len());
                (self.keys.own[k].clone(), Some(k))
            } else {
                let k = rng.random_range(0..self.keys.shared.len());
                (self.keys.shared[k].clone(), None)
            };
            let node = rng.random_range(0..self.endpoints.len());
            let roll = rng.random_range(0..100);
            let mut kv = self.endpoints.kv(node);
            let began = Instant::now();
            let read = match kv.get(crate::get(&key)).await {
                Ok(read) => {
                    history.acknowledged.push(Timed {
                        what: "get",
                        node,
                        began,
                        ended: Instant::now(),
                    });
                    read.into_inner()
                }
                Err(status) => {
                    history.failed(&status);
                    pause(&mut rng).await;
                    continue;
                }
            };
            history.reads += 1;
            let observed = crate::live_values(&read);
            if let Some(k) = own_index
                && let Some(last) = &last_put[k]
                && !observed.contains(last)
            {
                history.stale_reads += 1;
            }
            if roll < 30 {
                pause(&mut rng).await;
                continue;
            }
            let action = if roll < 85 {
                Action::Put {
                    value: format!("c{}-{seq}", self.id),
                }
            } else {
                Action::Delete
            };
            // One write in fourteen is blind: no context, so it covers nothing
            // and adds a sibling.
            let (context, observed) = if (80..85).contains(&roll) {
                (Default::default(), Vec::new())
            } else {
                (read.context, observed)
            };
            let began = Instant::now();
            let outcome = match &action {
                Action::Put { value } => kv
                    .put(pb::PutRequest {
                        key: key.as_bytes().to_vec().into(),
                        value: value.as_bytes().to_vec().into(),
                        context,
                        ..Default::default()
                    })
                    .await
                    .map(drop),
                Action::Delete => kv
                    .delete(pb::DeleteRequest {
                        key: key.as_bytes().to_vec().into(),
                        context,
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            };
            let acked = match outcome {
                Ok(()) => {
                    history.acknowledged.push(Timed {
                        what: match action {
                            Action::Put { .. } => "put",
                            Action::Delete => "delete",
                        },
                        node,
                        began,
                        ended: Instant::now(),
                    });
                    true
                }
                Err(status) => {
                    history.failed(&status);
                    false
                }
            };
            if let Some(k) = own_index
                && acked
            {
                last_put[k] = match &action {
                    Action::Put { value } => Some(value.clone()),
                    Action::Delete => None,
                };
            }
            history.writes.push(Write {
                key,
                action,
                observed,
                acked,
                client: self.id,
                seq,
            });
            pause(&mut rng).await;
        }
        history
    }
}

/// A short random pause that paces a client (not a synchronisation).
async fn pause(rng: &mut StdRng) {
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
}
