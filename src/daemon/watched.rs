//! Long-lived tasks under watch. A credential's scheduler or a channel's delivery worker that
//! panics, or ends while nobody asked it to stop, is logged with its cause, counted (for
//! `bbzoom status` and the metrics), and started again after a backoff. One that keeps failing
//! (more restarts than the policy allows within its window) is given up on and marks the
//! daemon unable to do its job ([`TaskHealth::failing`]): the supervisor then stops with a
//! status of its own, so systemd (or whoever runs it) acts, rather than a daemon that pings its
//! watchdog while a credential's repositories are never polled again.

use crate::clock::Clock;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// When a task that ended is started again, and when it is given up on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    /// The delay before each restart, doubling while the task keeps failing.
    pub(crate) backoff: Backoff,
    /// Restarts within `window` beyond which the task is given up on.
    pub(crate) limit: usize,
    /// How far back restarts count; a task that ran this long without failing starts its
    /// backoff afresh.
    pub(crate) window: Duration,
}

/// What is known of one task's restarts, as `bbzoom status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRestarts {
    /// The task: `scheduler <credential>` or `delivery <channel>`.
    pub task: String,
    /// Times it was started again since the daemon started.
    pub restarts: u64,
    /// Why it ended the last time (a panic's message, or that it ended unasked).
    pub last_cause: String,
    /// When it last ended (Unix milliseconds).
    pub last_at_ms: i64,
}

/// Every watched task's restarts, and the one given up on, if any.
#[derive(Debug, Default)]
pub(crate) struct TaskHealth {
    restarts: Mutex<BTreeMap<String, TaskRestarts>>,
    given_up: Mutex<Option<(String, String)>>,
}

impl TaskHealth {
    /// Each task that was restarted, by name.
    pub(crate) fn restarts(&self) -> Vec<TaskRestarts> {
        self.restarts
            .lock()
            .expect("task health lock")
            .values()
            .cloned()
            .collect()
    }

    /// The task given up on, and why it last ended: the daemon cannot do its job.
    pub(crate) fn failing(&self) -> Option<(String, String)> {
        self.given_up.lock().expect("task health lock").clone()
    }

    fn ended(&self, task: &str, cause: &str, at_ms: i64) {
        let mut restarts = self.restarts.lock().expect("task health lock");
        let entry = restarts
            .entry(task.to_owned())
            .or_insert_with(|| TaskRestarts {
                task: task.to_owned(),
                restarts: 0,
                last_cause: String::new(),
                last_at_ms: at_ms,
            });
        entry.restarts += 1;
        entry.last_cause = cause.to_owned();
        entry.last_at_ms = at_ms;
    }

    fn give_up(&self, task: &str, cause: &str) {
        *self.given_up.lock().expect("task health lock") =
            Some((task.to_owned(), cause.to_owned()));
    }
}

/// Runs what `start` makes as the task `name`, and starts it again whenever it ends while
/// `shutdown` has not fired (see the module doc). The handle ends when the task ended because
/// it was asked to stop, or was given up on.
pub(crate) fn spawn<F, Fut>(
    name: String,
    health: Arc<TaskHealth>,
    policy: RestartPolicy,
    clock: Arc<dyn Clock>,
    mut shutdown: Shutdown,
    mut start: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ends: VecDeque<Instant> = VecDeque::new();
        loop {
            let started = Instant::now();
            // A task of its own, so that its panic is an error here, not the end of this loop.
            let ended = tokio::spawn(start()).await;
            if shutdown.is_triggered() {
                return;
            }
            let cause = match ended {
                Ok(()) => "it ended though it was not asked to stop".to_owned(),
                Err(err) if err.is_panic() => format!("panicked: {}", panic_message(err)),
                Err(err) => format!("it was cancelled: {err}"),
            };
            let now = Instant::now();
            if now.saturating_duration_since(started) >= policy.window {
                ends.clear();
            }
            ends.push_back(now);
            while ends
                .front()
                .is_some_and(|at| now.saturating_duration_since(*at) > policy.window)
            {
                ends.pop_front();
            }
            health.ended(&name, &cause, clock.now_ms());
            if ends.len() > policy.limit {
                tracing::error!(task = %name, %cause, restarts = ends.len() - 1, window = ?policy.window, "a task keeps failing: given up on; bbzoom stops, as it can no longer do its job");
                health.give_up(&name, &cause);
                return;
            }
            let attempt = u32::try_from(ends.len() - 1).unwrap_or(u32::MAX);
            let delay = policy.backoff.delay(attempt);
            tracing::error!(task = %name, %cause, restart_in = ?delay, "a task ended unexpectedly; it is started again");
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    })
}

/// A panic's message, when it has one.
fn panic_message(err: tokio::task::JoinError) -> String {
    let payload = err.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(limit: usize) -> RestartPolicy {
        RestartPolicy {
            backoff: Backoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(4),
            },
            limit,
            window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_is_restarted_counted_and_given_up_on_past_the_limit() {
        let health = Arc::new(TaskHealth::default());
        let (_trigger, shutdown) = crate::shutdown::channel();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let handle = spawn(
            "scheduler ci".into(),
            health.clone(),
            policy(3),
            Arc::new(SystemClock),
            shutdown,
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move { panic!("poll {n} went wrong") }
            },
        );
        handle.await.unwrap();
        // The first run and three restarts; the fourth end gives up.
        assert_eq!(starts.load(Ordering::SeqCst), 4);
        let restarts = health.restarts();
        assert_eq!(restarts.len(), 1);
        assert_eq!(restarts[0].task, "scheduler ci");
        assert_eq!(restarts[0].restarts, 4);
        assert_eq!(restarts[0].last_cause, "panicked: poll 3 went wrong");
        assert_eq!(
            health.failing(),
            Some(("scheduler ci".into(), "panicked: poll 3 went wrong".into()))
        );
    }

    #[tokio::test]
    async fn a_task_that_ends_unasked_is_restarted_and_one_asked_to_stop_is_not() {
        let health = Arc::new(TaskHealth::default());
        let (trigger, shutdown) = crate::shutdown::channel();
        let starts = Arc::new(AtomicU32::new(0));
        let (counted, stopping, mut stopped) = (starts.clone(), shutdown.clone(), shutdown.clone());
        let handle = spawn(
            "delivery #ci".into(),
            health.clone(),
            policy(10),
            Arc::new(SystemClock),
            shutdown,
            move || {
                // Ends at once the first time (unasked); then runs until asked to stop.
                let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
                let mut stop = stopping.clone();
                async move {
                    if !first {
                        stop.wait().await;
                    }
                }
            },
        );
        while starts.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        trigger.trigger();
        handle.await.unwrap();
        stopped.wait().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "not restarted once asked to stop"
        );
        assert_eq!(health.restarts()[0].restarts, 1);
        assert!(health.failing().is_none());
        assert!(
            health.restarts()[0]
                .last_cause
                .contains("not asked to stop"),
            "{:?}",
            health.restarts()
        );
    }
}
