//! The wall clock, behind a trait: records that must mean the same after a restart (when a row
//! was queued, when to try it next, when a poll finished) are stamped in Unix milliseconds from
//! the [`Clock`] a task was given, so a test can drive time without waiting for it.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the time comes from.
pub trait Clock: Debug + Send + Sync {
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock: what the daemon runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// Unix milliseconds now, by the system's wall clock (0 before 1970, which no clock shows).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
