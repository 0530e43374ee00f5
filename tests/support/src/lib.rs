//! The broker process that integration tests run against, shared by the broker's own tests and
//! the load tool's, so that both start, watch and stop it the same way.
//!
//! The caller names the binary: the broker's tests have it from Cargo (`CARGO_BIN_EXE_ratatosk`),
//! while other packages' tests cannot and look for it in the target directory.

mod broker;
mod launcher;

pub use broker::Broker;
pub use launcher::Launcher;
