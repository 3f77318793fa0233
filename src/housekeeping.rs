//! Housekeeping: cron-shaped jobs on tokio-cron-scheduler (the polling cadence is adaptive and
//! has its own scheduler; this is for work that belongs to a time of day).
//!
//! Today one job: forget finished builds long after they ended, so the store stays small over
//! months. A build record is only needed to notice a rerun of a recent build; a pruned build
//! that shows up again below the cursor is recorded as history, never announced twice.

use crate::store::Store;
use std::time::Duration;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// Daily at 04:00 UTC (cron with seconds).
pub const DAILY: &str = "0 0 4 * * *";

/// How long a finished build is remembered.
pub const BUILD_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Starts the housekeeping scheduler; the caller shuts it down with the daemon.
pub async fn start(
    store: Store,
    schedule: &str,
    retention: Duration,
) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_, _| {
        let store = store.clone();
        Box::pin(async move {
            let cutoff =
                crate::poller::now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            match tokio::task::spawn_blocking(move || store.prune_finished_builds(cutoff)).await {
                Ok(Ok(pruned)) => tracing::info!(
                    pruned,
                    "housekeeping: forgot finished builds past retention"
                ),
                Ok(Err(err)) => tracing::error!(%err, "housekeeping failed"),
                Err(err) => tracing::error!(%err, "housekeeping task failed"),
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
