//! Housekeeping: cron-shaped jobs on tokio-cron-scheduler (the polling cadence is adaptive and
//! has its own scheduler; this is for work that belongs to a time of day).
//!
//! Today one job: forget finished builds and handled chat commands long after they ended, so
//! the store stays small over months. A build record is only needed to notice a rerun of a
//! recent build; a pruned build that shows up again below the cursor is recorded as history,
//! never announced twice. A handled command's id is only needed while a backfill could list
//! it again, and backfills start at the channel's cursor, newer than anything pruned.

use crate::clock::Clock;
use crate::shutdown::Shutdown;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// Daily at 04:00 UTC (cron with seconds): a time of day on the calendar, which no simulator
/// compresses.
pub(crate) const DAILY: &str = "0 0 4 * * *";

/// Runs the jobs on `schedule` until shutdown, forgetting builds finished and commands handled
/// longer than `retention` before `clock`'s now. The cron job only rings this task, which owns
/// the store handle, so the store is released when the daemon stops (sled locks its directory
/// until the last handle is dropped).
pub(crate) async fn run(
    store: Store,
    schedule: &str,
    retention: Duration,
    clock: Arc<dyn Clock>,
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
                let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                let cutoff = clock.now_ms().saturating_sub(retention);
                let pruned = store
                    .blocking(move |store| {
                        Ok::<_, crate::store::StoreError>((
                            store.prune_finished_builds(cutoff)?,
                            store.prune_handled_commands(cutoff)?,
                        ))
                    })
                    .await;
                match pruned {
                    Ok((builds, commands)) => tracing::info!(builds, commands, "housekeeping: forgot finished builds and handled chat commands past retention"),
                    Err(err) => tracing::error!(%err, "housekeeping failed"),
                }
            }
        }
    }
    scheduler.shutdown().await
}
