//! Shared helpers for the integration tests, one module per kind of helper: the broker process,
//! the MQTT wire format and a hand-written client (3.1, 3.1.1 and 5.0) with byte-level control,
//! raw TCP, rumqttc wrappers and the mosquitto command-line clients. Everything is re-exported
//! here, so a test file needs only `use common::*;`.
//!
//! Every wait is bounded: a helper that waits for something takes a duration (or uses `WAIT`) and
//! panics with a message naming what it waited for when the time runs out.

// Each test file uses a different subset.
#![allow(dead_code)]

mod broker;
mod client;
mod connect;
mod ids;
mod mosquitto;
mod props;
mod raw;
mod rumqtt;
mod timing;
mod wire;

// Each test file uses a different subset, so any of these may go unused in one test crate.
#[allow(unused_imports)]
pub use self::{
    broker::*, client::*, connect::*, ids::*, mosquitto::*, props::*, raw::*, rumqtt::*, timing::*, wire::*,
};
