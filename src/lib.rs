//! ratatosk: a thread-per-core, multi-tenant MQTT broker.
//!
//! `protocol` is the pure MQTT codec (also used by the load tool); `router` holds the topic
//! structures; `session` the per-client state; `broker` wires them onto shards.

pub mod broker;
pub mod config;
pub mod protocol;
pub mod router;
pub mod session;
