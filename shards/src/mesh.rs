//! The full mesh of bounded SPSC channels between shards, built from glommio's shared channels.
//!
//! glommio's own `MeshBuilder` shares an `Rc` between the executor threads while they join, and
//! one start in a hundred (several brokers starting at once) left a broker's shards without
//! listeners for seconds. Here every channel is created up front on the starting thread and each
//! shard only connects its own ends, all at once, so no shard waits on another's progress.

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::GlommioError;

/// One shard's unconnected ends: a sender to and a receiver from every other shard.
pub struct MeshEnds<T: Send + 'static> {
    senders: Vec<Option<SharedSender<T>>>,
    receivers: Vec<Option<SharedReceiver<T>>>,
}

/// Creates the channels of a full mesh of `n` shards; element `i` belongs to shard `i`.
pub fn full_mesh<T: Send + 'static>(n: usize, capacity: usize) -> Vec<MeshEnds<T>> {
    let mut ends: Vec<MeshEnds<T>> = (0..n)
        .map(|_| MeshEnds { senders: (0..n).map(|_| None).collect(), receivers: (0..n).map(|_| None).collect() })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity);
                ends[from].senders[to] = Some(tx);
                ends[to].receivers[from] = Some(rx);
            }
        }
    }
    ends
}

/// A shard's connected ends of the mesh.
pub struct Mesh<T: Send + 'static> {
    senders: Vec<Option<ConnectedSender<T>>>,
    receivers: Vec<Option<ConnectedReceiver<T>>>,
}

impl<T: Send + 'static> MeshEnds<T> {
    /// Connects every end inside the current executor. All connections proceed concurrently: a
    /// sender's connect completes when the peer connects the receiving end, whatever the order.
    pub async fn connect(self) -> Mesh<T> {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| s.map(|s| glommio::spawn_local(s.connect())))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|r| r.map(|r| glommio::spawn_local(r.connect())))
            .collect();
        // A reactor that wakes re-checks its shared channels; while connecting, a short ticker
        // keeps it waking so that a missed cross-thread wake-up costs milliseconds, not seconds.
        let ticker = glommio::spawn_local(async {
            loop {
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
            }
        });
        let mut mesh = Mesh { senders: Vec::new(), receivers: Vec::new() };
        for s in senders {
            mesh.senders.push(match s {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        for r in receivers {
            mesh.receivers.push(match r {
                Some(task) => Some(task.await),
                None => None,
            });
        }
        drop(ticker);
        mesh
    }
}

impl<T: Send + 'static> Mesh<T> {
    /// Sends to shard `to`, waiting while its channel is full; `Err` when it is closed or `to` is
    /// this shard.
    pub async fn send_to(&self, to: usize, msg: T) -> Result<(), GlommioError<T>> {
        match self.senders.get(to) {
            Some(Some(s)) => s.send(msg).await,
            _ => Err(GlommioError::Closed(glommio::ResourceType::Channel(msg))),
        }
    }

    /// Sends to shard `to` without waiting; `WouldBlock` when its channel is full.
    pub fn try_send_to(&self, to: usize, msg: T) -> Result<(), GlommioError<T>> {
        match self.senders.get(to) {
            Some(Some(s)) => s.try_send(msg),
            _ => Err(GlommioError::Closed(glommio::ResourceType::Channel(msg))),
        }
    }

    /// Takes the receivers, each with the index of the shard it receives from.
    pub fn take_receivers(&mut self) -> Vec<(usize, ConnectedReceiver<T>)> {
        self.receivers.iter_mut().enumerate().filter_map(|(i, r)| r.take().map(|r| (i, r))).collect()
    }
}
