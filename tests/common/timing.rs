//! How long tests wait. Every wait is bounded: a helper that waits for something takes a duration
//! (or uses `WAIT`) and panics with a message naming what it waited for when the time runs out.

use std::time::Duration;

/// Longest a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test watches for something that should not happen.
pub const QUIET: Duration = Duration::from_millis(400);
