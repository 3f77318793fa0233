//! Counters the daemon keeps for the log, `status` and the demo's summary: incremented by the
//! pollers and delivery workers, read by whoever reports.

use std::sync::atomic::AtomicU64;

/// What happened since the daemon started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Build state changes recorded (baselines aside).
    pub(crate) transitions: AtomicU64,
    /// Outbox rows Zoom accepted.
    pub(crate) delivered: AtomicU64,
    /// Delivery attempts that failed and will be retried.
    pub delivery_failures: AtomicU64,
    /// Rows moved to the dead letters.
    pub(crate) dead_letters: AtomicU64,
    /// Polls that failed.
    pub poll_errors: AtomicU64,
}
