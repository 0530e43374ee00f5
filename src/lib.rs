//! ratatosk: a thread-per-core, multi-tenant MQTT broker.
//!
//! The library exports what the `ratatosk` binary and the load tool use: the MQTT codec
//! ([`protocol`]), the configuration ([`config`]) and [`run`]. Everything else is internal; the
//! layers are described in `ARCHITECTURE.md`.

mod broker;
pub mod config;
pub mod protocol;
mod router;
mod session;
mod store;
mod tenant;

pub use broker::{run, BrokerError};
