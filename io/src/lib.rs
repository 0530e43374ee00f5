//! Listeners and transports for ratatosk on glommio.
//!
//! Knows nothing of MQTT: it binds listeners (one per shard, with SO_REUSEPORT so the kernel spreads
//! connections), accepts without letting descriptor exhaustion stop the accept loop, offers every
//! kind of connection through one [`Transport`] trait, and detaches a connection from one shard's
//! executor so that another shard can adopt it.

// A test that unwraps reports the failure it was written to find.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod handoff;
mod listener;
mod parking;
mod stamped;
mod transport;

pub use handoff::DetachedStream;
pub use listener::{Listener, ListenerError};
pub use parking::{ParkingError, ParkingLot, ParkingSpot, Woken};
pub use stamped::{enable_rx_timestamps, realtime_ns, try_read_stamped};
pub use transport::{Detached, Received, TcpTransport, Transport};
