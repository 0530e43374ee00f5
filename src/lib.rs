//! ratatosk: a thread-per-core, multi-tenant MQTT broker.
//!
//! The library exports what the `ratatosk` binary and the load tool use: the MQTT codec
//! ([`protocol`]), the configuration ([`config`]) and [`run`]. Everything else is internal; the
//! layers are described in `ARCHITECTURE.md`.

// A test that unwraps reports the failure it was written to find.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod broker;
pub mod config;
mod message;
pub mod protocol;
mod router;
mod session;
mod store;
mod tenant;

pub use broker::{run, BrokerError};
