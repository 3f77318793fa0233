//! Delivery: one worker per channel takes the channel's oldest outbox row, renders its card,
//! posts it through the Zoom client and removes the row only after Zoom said yes.
//!
//! What to retry is the Zoom client's classification; when is decided here, persisted in the
//! row (attempts, next attempt time) so a restart resumes the backoff instead of starting over.
//! Rows of one channel go out in order: a row waiting for its retry holds back the ones after it.

use crate::config::Channel;
use crate::daemon::Metrics;
use crate::poller::now_ms;
use crate::render;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::store::{OutboxRow, Store, StoreError};
use crate::zoom::{ChatbotClient, ErrorClass};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;

/// One wake-up signal per channel: pollers ring it after committing rows for that channel.
#[derive(Debug, Default)]
pub struct Wakeups {
    by_channel: HashMap<String, Arc<Notify>>,
}

impl Wakeups {
    pub fn new<'a>(channels: impl IntoIterator<Item = &'a str>) -> Wakeups {
        Wakeups {
            by_channel: channels
                .into_iter()
                .map(|c| (c.to_owned(), Arc::new(Notify::new())))
                .collect(),
        }
    }

    /// Wakes `channel`'s worker; a wake-up sent while it is busy is kept for its next wait.
    pub fn wake(&self, channel: &str) {
        if let Some(notify) = self.by_channel.get(channel) {
            notify.notify_one();
        }
    }

    fn signal(&self, channel: &str) -> Arc<Notify> {
        self.by_channel.get(channel).cloned().unwrap_or_default()
    }
}

/// What a delivery worker needs.
#[derive(Clone)]
pub struct DeliveryContext {
    pub store: Store,
    pub zoom: Arc<ChatbotClient>,
    pub wakeups: Arc<Wakeups>,
    pub metrics: Arc<Metrics>,
    /// Delay between attempts of a row Zoom could not take yet.
    pub backoff: Backoff,
}

/// Delivers `channel`'s outbox until shutdown. A delivery under way is finished first.
pub async fn run(ctx: DeliveryContext, channel: Channel, mut shutdown: Shutdown) {
    let signal = ctx.wakeups.signal(&channel.name);
    while !shutdown.is_triggered() {
        let wait = match ctx.store.next_outbox(&channel.name) {
            Ok(Some(row)) => {
                let due_in = Duration::from_millis(
                    u64::try_from(row.next_attempt_ms - now_ms()).unwrap_or(0),
                );
                if due_in.is_zero() {
                    if let Err(err) = deliver(&ctx, &channel, row).await {
                        tracing::error!(channel = %channel.name, %err, "cannot update the outbox");
                        Some(ctx.backoff.max)
                    } else {
                        continue;
                    }
                } else {
                    Some(due_in)
                }
            }
            Ok(None) => None,
            Err(err) => {
                tracing::error!(channel = %channel.name, %err, "cannot read the outbox");
                Some(ctx.backoff.max)
            }
        };
        let sleep = async {
            match wait {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = signal.notified() => {}
            _ = shutdown.wait() => {}
        }
    }
}

/// One attempt at one row, and its bookkeeping.
async fn deliver(
    ctx: &DeliveryContext,
    channel: &Channel,
    row: OutboxRow,
) -> Result<(), StoreError> {
    let card = render::card(&row.build, row.event);
    let content = render::chatbot_content(&card);
    let result = ctx.zoom.send(&channel.to_jid, &content, None).await;
    let store = ctx.store.clone();
    match result {
        Ok(message_id) => {
            tracing::info!(channel = %channel.name, build = %row.build.key, event = %row.event, %message_id, "card delivered");
            ctx.metrics.delivered.fetch_add(1, Ordering::Relaxed);
            blocking(move || store.complete(&row)).await
        }
        Err(err) => match err.class {
            ErrorClass::Transient { retry_after } => {
                let delay = ctx
                    .backoff
                    .delay(row.attempts)
                    .max(retry_after.unwrap_or_default());
                tracing::warn!(channel = %channel.name, build = %row.build.key, attempts = row.attempts + 1, ?delay, %err, "delivery failed; will retry");
                ctx.metrics
                    .delivery_failures
                    .fetch_add(1, Ordering::Relaxed);
                let next = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                blocking(move || store.reschedule(&row, next)).await
            }
            ErrorClass::Permanent | ErrorClass::MessageGone => {
                tracing::error!(
                    channel = %channel.name, to_jid = %channel.to_jid, build = %row.build.key, %err,
                    "Zoom refused the card for good; kept as a dead letter. Check the chatbot's robot_jid, account_id, the channel's to_jid and the app's scopes"
                );
                ctx.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                let reason = err.detail.clone();
                blocking(move || store.dead_letter(&row, &reason, now_ms())).await
            }
        },
    }
}

/// Runs a store write (which fsyncs) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store writes do not panic")
}
