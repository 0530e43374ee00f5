//! The full mesh of bounded SPSC channels between shards, built from glommio's shared channels.
//!
//! Every pair of shards has two channels in each direction, one per [`Lane`]: control messages
//! (hand-offs, route updates, acknowledgements) never queue behind data, so a shard whose data
//! channel is full still hands off connections and answers route updates at once.
//!
//! glommio's own `MeshBuilder` shares an `Rc` between the executor threads while they join, and
//! one start in a hundred (several brokers starting at once) left a broker's shards without
//! listeners for seconds. Here every channel is created up front on the starting thread and each
//! shard only connects its own ends, all at once, so no shard waits on another's progress.

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::GlommioError;

/// Which of the two channels between a pair of shards a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Small, rare messages that others wait for: hand-offs, route updates, acknowledgements.
    Control,
    /// Forwarded application messages.
    Data,
}

/// Slots of the channels in each direction between two shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneCapacity {
    /// Capacity of the control channel.
    pub control: usize,
    /// Capacity of the data channel.
    pub data: usize,
}

impl LaneCapacity {
    /// Capacities for a mesh of `shards` shards whose data channels hold at most `max_data` slots.
    ///
    /// Each shard allocates its receiving slots up front, `(shards - 1) × (control + data)`, so
    /// the capacity shrinks as the shard count grows: about 32 Ki data slots per shard in all
    /// (1024 per peer up to 33 shards, where throughput needs it; never below 32), and a quarter
    /// of that for control (at least 16). glommio rounds capacities up to a power of two, so
    /// these are powers of two already.
    pub fn for_shards(shards: usize, max_data: usize) -> LaneCapacity {
        let peers = shards.saturating_sub(1).max(1);
        let budget = (32 * 1024 / peers).max(1);
        let data = prev_power_of_two(budget.min(max_data.max(1))).max(32);
        LaneCapacity { control: (data / 4).max(16), data }
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n.is_power_of_two() {
        n
    } else {
        n.next_power_of_two() / 2
    }
}

struct Pair<A, B> {
    control: A,
    data: B,
}

/// One shard's unconnected ends: a sender to and a receiver from every other shard, per lane.
pub struct MeshEnds<T: Send + 'static> {
    senders: Vec<Option<Pair<SharedSender<T>, SharedSender<T>>>>,
    receivers: Vec<Option<Pair<SharedReceiver<T>, SharedReceiver<T>>>>,
}

/// Creates the channels of a full mesh of `n` shards; element `i` belongs to shard `i`.
pub fn full_mesh<T: Send + 'static>(n: usize, capacity: LaneCapacity) -> Vec<MeshEnds<T>> {
    let mut ends: Vec<MeshEnds<T>> = (0..n)
        .map(|_| MeshEnds { senders: (0..n).map(|_| None).collect(), receivers: (0..n).map(|_| None).collect() })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (ctx, crx) = shared_channel::new_bounded(capacity.control);
                let (dtx, drx) = shared_channel::new_bounded(capacity.data);
                ends[from].senders[to] = Some(Pair { control: ctx, data: dtx });
                ends[to].receivers[from] = Some(Pair { control: crx, data: drx });
            }
        }
    }
    ends
}

/// A shard's connected ends of the mesh.
pub struct Mesh<T: Send + 'static> {
    senders: Vec<Option<Pair<ConnectedSender<T>, ConnectedSender<T>>>>,
    receivers: Vec<Option<PeerReceivers<T>>>,
}

/// The receiving ends of the two channels from one peer shard.
pub struct PeerReceivers<T: Send + 'static> {
    /// The shard these channels come from.
    pub peer: usize,
    /// Its control channel.
    pub control: ConnectedReceiver<T>,
    /// Its data channel.
    pub data: ConnectedReceiver<T>,
}

impl<T: Send + 'static> MeshEnds<T> {
    /// Connects every end inside the current executor. All connections proceed concurrently: a
    /// sender's connect completes when the peer connects the receiving end, whatever the order.
    /// The peers' progress is seen only when this executor polls, so the caller keeps it awake
    /// meanwhile (see `nudge`).
    pub async fn connect(self) -> Mesh<T> {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| s.map(|s| (glommio::spawn_local(s.control.connect()), glommio::spawn_local(s.data.connect()))))
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|r| r.map(|r| (glommio::spawn_local(r.control.connect()), glommio::spawn_local(r.data.connect()))))
            .collect();
        let mut mesh = Mesh { senders: Vec::new(), receivers: Vec::new() };
        for s in senders {
            mesh.senders.push(match s {
                Some((control, data)) => Some(Pair { control: control.await, data: data.await }),
                None => None,
            });
        }
        for (peer, r) in receivers.into_iter().enumerate() {
            mesh.receivers.push(match r {
                Some((control, data)) => Some(PeerReceivers { peer, control: control.await, data: data.await }),
                None => None,
            });
        }
        mesh
    }
}

impl<T: Send + 'static> Mesh<T> {
    fn sender(&self, to: usize, lane: Lane) -> Option<&ConnectedSender<T>> {
        let pair = self.senders.get(to)?.as_ref()?;
        Some(match lane {
            Lane::Control => &pair.control,
            Lane::Data => &pair.data,
        })
    }

    /// Sends to shard `to` on `lane`, waiting while that channel is full; `Err` when it is closed
    /// or `to` is this shard.
    pub async fn send_to(&self, to: usize, lane: Lane, msg: T) -> Result<(), GlommioError<T>> {
        match self.sender(to, lane) {
            Some(s) => s.send(msg).await,
            None => Err(GlommioError::Closed(glommio::ResourceType::Channel(msg))),
        }
    }

    /// Sends to shard `to` on `lane` without waiting; `WouldBlock` when that channel is full.
    pub fn try_send_to(&self, to: usize, lane: Lane, msg: T) -> Result<(), GlommioError<T>> {
        match self.sender(to, lane) {
            Some(s) => s.try_send(msg),
            None => Err(GlommioError::Closed(glommio::ResourceType::Channel(msg))),
        }
    }

    /// Takes the receivers, one pair per peer shard.
    pub fn take_receivers(&mut self) -> Vec<PeerReceivers<T>> {
        self.receivers.iter_mut().filter_map(Option::take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_capacity_shrinks_with_the_shard_count_and_stays_a_power_of_two() {
        assert_eq!(LaneCapacity::for_shards(2, 1024), LaneCapacity { control: 256, data: 1024 });
        assert_eq!(LaneCapacity::for_shards(16, 1024).data, 1024);
        assert_eq!(LaneCapacity::for_shards(64, 1024).data, 512);
        assert_eq!(LaneCapacity::for_shards(200, 1024), LaneCapacity { control: 32, data: 128 });
        assert_eq!(LaneCapacity::for_shards(1024, 1024), LaneCapacity { control: 16, data: 32 });
        for n in 2..300 {
            let c = LaneCapacity::for_shards(n, 1024);
            assert!(c.data.is_power_of_two() && c.control.is_power_of_two(), "{n}: {c:?}");
        }
    }
}
