//! TCP proxies on the directed links between nodes, so a test can cut, stall
//! and heal the network one link at a time.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a link does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Bytes flow both ways.
    Open,
    /// Live connections are closed and new ones are closed as soon as they
    /// are accepted: the sender sees a fast failure.
    Refuse,
    /// Live connections stall and new ones are accepted but never answered:
    /// the sender sees a timeout. Stalled connections close on the next
    /// change of state.
    Blackhole,
    /// One way only: bytes from the sender reach the target, but nothing
    /// comes back, so requests arrive (and may be applied) while their
    /// answers are lost. Live connections are closed first.
    DropReplies,
    /// Bytes flow both ways, but what the target sends back arrives this
    /// much later: a node that answers every request late. Live
    /// connections are closed first.
    DelayReplies(std::time::Duration),
}

/// A proxy for one directed link: listens on 127.0.0.1 and forwards every
/// connection to a target address.
pub struct Link {
    listen: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    state: watch::Sender<LinkState>,
    accept: JoinHandle<()>,
}

impl Link {
    /// Starts a proxy on a free port of 127.0.0.1 that forwards to `target`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState::Open);
        let target = Arc::new(Mutex::new(target));
        let accept = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&target),
            state.subscribe(),
        ));
        Ok(Self {
            listen,
            target,
            state,
            accept,
        })
    }

    /// The address senders dial.
    pub fn address(&self) -> SocketAddr {
        self.listen
    }

    /// What the link currently does.
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// Sets what the link does; connections of a state that ends are closed.
    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    /// Closes live connections and refuses new ones.
    pub fn cut(&self) {
        self.set(LinkState::Refuse);
    }

    /// Lets traffic flow again.
    pub fn heal(&self) {
        self.set(LinkState::Open);
    }

    /// Forwards new connections to `target` from now on.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Connection tasks end when the state sender is dropped.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<Mutex<SocketAddr>>,
    state: watch::Receiver<LinkState>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off, then go on.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let target = *target.lock().unwrap_or_else(|e| e.into_inner());
        tokio::spawn(serve(inbound, target, state.clone()));
    }
}

/// Carries one connection until it ends or the link's state changes.
async fn serve(mut inbound: TcpStream, target: SocketAddr, mut state: watch::Receiver<LinkState>) {
    let initial = *state.borrow_and_update();
    match initial {
        LinkState::Refuse => return,
        LinkState::Blackhole => {
            // Hold the connection unanswered until the link changes.
            let _ = state.changed().await;
            return;
        }
        LinkState::Open | LinkState::DropReplies | LinkState::DelayReplies(_) => {}
    }
    let mut outbound = tokio::select! {
        connected = TcpStream::connect(target) => match connected {
            Ok(outbound) => outbound,
            Err(_) => return,
        },
        _ = state.changed() => return,
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    match initial {
        LinkState::DropReplies | LinkState::DelayReplies(_) => {
            tokio::select! {
                () = carry_one_way(inbound, outbound, initial) => {}
                () = until_changed(&mut state, initial) => {}
            }
            return;
        }
        LinkState::Open | LinkState::Refuse | LinkState::Blackhole => {}
    }
    tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => return,
        () = until_changed(&mut state, LinkState::Open) => {}
    }
    if *state.borrow() == LinkState::Blackhole {
        // Stall: keep both sockets open without moving bytes.
        let _ = state.changed().await;
    }
}

/// Returns when the state is no longer `current` or the link is dropped.
async fn until_changed(state: &mut watch::Receiver<LinkState>, current: LinkState) {
    loop {
        if state.changed().await.is_err() || *state.borrow() != current {
            return;
        }
    }
}

/// Carries a connection under [`LinkState::DropReplies`] (what comes back
/// is read and thrown away) or [`LinkState::DelayReplies`] (what comes back
/// is written after the delay, in order).
async fn carry_one_way(inbound: TcpStream, outbound: TcpStream, state: LinkState) {
    let (mut from_sender, mut to_sender) = inbound.into_split();
    let (mut from_target, mut to_target) = outbound.into_split();
    let forward = async {
        let _ = tokio::io::copy(&mut from_sender, &mut to_target).await;
    };
    let back = async {
        let (delayed, mut due) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let read = async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match from_target.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => {
                        if let LinkState::DelayReplies(delay) = state {
                            let at = tokio::time::Instant::now() + delay;
                            if delayed.send((at, buffer[..read].to_vec())).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        };
        let write = async {
            while let Some((at, bytes)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                if to_sender.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        };
        tokio::join!(read, write);
    };
    tokio::select! {
        () = forward => {}
        () = back => {}
    }
}

/// The full mesh of links of a cluster: `link(i, j)` carries what node `i`
/// sends to node `j`.
pub struct Network {
    links: Vec<Vec<Option<Link>>>,
}

impl Network {
    /// Starts a proxy for every ordered pair of distinct nodes; `targets[j]`
    /// is node `j`'s real address.
    ///
    /// # Errors
    /// When a proxy cannot bind a port.
    pub async fn start(targets: &[SocketAddr]) -> io::Result<Self> {
        let mut links = Vec::with_capacity(targets.len());
        for from in 0..targets.len() {
            let mut row = Vec::with_capacity(targets.len());
            for (to, &target) in targets.iter().enumerate() {
                row.push(if from == to {
                    None
                } else {
                    Some(Link::start(target).await?)
                });
            }
            links.push(row);
        }
        Ok(Self { links })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The link from node `from` to node `to`.
    ///
    /// # Panics
    /// When `from == to`: a node talks to itself without a proxy.
    pub fn link(&self, from: usize, to: usize) -> &Link {
        self.links[from][to]
            .as_ref()
            .expect("a node has no link to itself")
    }

    /// The address node `from` dials to reach node `to`.
    pub fn address(&self, from: usize, to: usize) -> SocketAddr {
        self.link(from, to).address()
    }

    /// Points every link into node `to` at a new real address.
    pub fn retarget(&self, to: usize, target: SocketAddr) {
        for from in 0..self.len() {
            if from != to {
                self.link(from, to).retarget(target);
            }
        }
    }

    /// Sets the state of every link between `side` and `other`, both ways.
    pub fn split(&self, side: &[usize], other: &[usize], state: LinkState) {
        for &a in side {
            for &b in other {
                if a != b {
                    self.link(a, b).set(state);
                    self.link(b, a).set(state);
                }
            }
        }
    }

    /// Refuses all traffic between the two groups, both ways.
    pub fn partition(&self, side: &[usize], other: &[usize]) {
        self.split(side, other, LinkState::Refuse);
    }

    /// Refuses all traffic between `node` and every other node.
    pub fn isolate(&self, node: usize) {
        let others: Vec<usize> = (0..self.len()).filter(|&i| i != node).collect();
        self.partition(&[node], &others);
    }

    /// Opens every link.
    pub fn heal_all(&self) {
        for link in self.links.iter().flatten().flatten() {
            link.heal();
        }
    }

    /// Links that are not open, as `(from, to, state)`.
    pub fn faults(&self) -> Vec<(usize, usize, LinkState)> {
        let mut faults = Vec::new();
        for (from, row) in self.links.iter().enumerate() {
            for (to, link) in row.iter().enumerate() {
                if let Some(link) = link
                    && link.state() != LinkState::Open
                {
                    faults.push((from, to, link.state()));
                }
            }
        }
        faults
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let address = listener.local_addr().expect("echo address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    /// Sends `ping` through `address` and returns what came back, or `None`
    /// when the connection failed or stayed silent for 300 ms.
    async fn round_trip(address: SocketAddr) -> Option<Vec<u8>> {
        let attempt = async {
            let mut socket = TcpStream::connect(address).await.ok()?;
            socket.write_all(b"ping").await.ok()?;
            let mut buffer = [0u8; 4];
            socket.read_exact(&mut buffer).await.ok()?;
            Some(buffer.to_vec())
        };
        tokio::time::timeout(Duration::from_millis(300), attempt)
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_link_forwards_cuts_stalls_and_heals() {
        let link = Link::start(echo().await).await.expect("start link");
        assert_eq!(
            round_trip(link.address()).await.as_deref(),
            Some(&b"ping"[..])
        );

        let mut live = TcpStream::connect(link.address()).await.expect("connect");
        live.write_all(b"ping").await.expect("write");
        let mut buffer = [0u8; 4];
        live.read_exact(&mut buffer).await.expect("echo");
        link.cut();
        let closed = tokio::time::timeout(Duration::from_secs(2), live.read(&mut buffer))
            .await
            .expect("a cut closes live connections");
        assert!(matches!(closed, Ok(0) | Err(_)));
        assert_eq!(round_trip(link.address()).await, None);

        link.set(LinkState::Blackhole);
        assert_eq!(round_trip(link.address()).await, None);

        link.heal();
        assert_eq!(
            round_trip(link.address()).await.as_deref(),
            Some(&b"ping"[..])
        );
    }

    #[tokio::test]
    async fn a_partition_cuts_both_directions_between_groups_only() {
        let targets = [echo().await, echo().await, echo().await];
        let network = Network::start(&targets).await.expect("start network");
        network.partition(&[0], &[1, 2]);
        assert_eq!(network.faults().len(), 4);
        assert_eq!(round_trip(network.address(0, 1)).await, None);
        assert_eq!(round_trip(network.address(2, 0)).await, None);
        assert!(round_trip(network.address(1, 2)).await.is_some());
        network.heal_all();
        assert!(network.faults().is_empty());
        assert!(round_trip(network.address(0, 1)).await.is_some());
    }
}
