//! Housekeeping: cron-shaped jobs on tokio-cron-scheduler (the polling cadence is adaptive and
//! has its own scheduler; this is for work that belongs to a time of day).
//!
//! Today one job: forget finished builds long after they ended, so the store stays small over
//! months. A build record is only needed to notice a rerun of a recent build; a pruned build
//! that shows up again below the cursor is recorded as history, never announced twice.

use crate::shutdown::Shutdown;
use crate::store::Store;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// Daily at 04:00 UTC (cron with seconds).
pub const DAILY: &str = "0 0 4 * * *";

/// How long a finished build is remembered.
pub const BUILD_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs the jobs on `schedule` until shutdown. The cron job only rings this task, which owns
/// the store handle, so the store is released when the daemon stops (sled locks its directory
/// until the last handle is dropped).
pub async fn run(
    store: Store,
    schedule: &str,
    retention: Duration,
    mut shutdown: Shutdown,
) -> Result<(), JobSchedulerError> {
    let (ring, mut rings) = mpsc::channel::<()>(1);
    let mut scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async(schedule, move |_, _| {
            // A ring while the last run is still going is dropped: one run is enough.
            let _ = ring.try_send(());
            Box::pin(async {})
        })?)
        .await?;
    scheduler.start().await?;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(()) = rings.recv() => {
                let cutoff = crate::clock::now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.prune_finished_builds(cutoff)).await {
                    Ok(Ok(pruned)) => tracing::info!(pruned, "housekeeping: forgot finished builds past retention"),
                    Ok(Err(err)) => tracing::error!(%err, "housekeeping failed"),
                    Err(err) => tracing::error!(%err, "housekeeping task failed"),
                }
            }
        }
    }
    scheduler.shutdown().await
}
