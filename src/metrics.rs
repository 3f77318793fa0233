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
    /// Workspace scans made (a request or more each) and those that failed.
    pub scans: AtomicU64,
    pub scan_errors: AtomicU64,
    /// Pushes the scans showed (a repository and its `updated_on`, each once).
    pub scan_hints: AtomicU64,
    /// New builds, by what the poll that first saw them was made for: a workspace scan's hint,
    /// the sweep of idle repositories, following a running build, a Pipelines schedule's
    /// run. Shows an admin (and us) what the scan is worth on their Bitbucket.
    pub found_by_scan: AtomicU64,
    pub found_by_sweep: AtomicU64,
    pub found_following: AtomicU64,
    pub found_by_schedule: AtomicU64,
}
