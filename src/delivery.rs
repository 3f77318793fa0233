//! Delivery: one worker per channel takes the channel's outbox rows in order, renders each card
//! and shows it in Zoom, and removes a row only after Zoom said yes.
//!
//! A chatbot channel keeps one card per build, edited in place as the build moves on (style
//! `update`), with the final result also posted as a thread reply (`update+reply`, so people are
//! notified), or posts a card per event (`post`); the card's message id is kept in the store. A
//! webhook channel always posts. After an outage the channel gets each build's latest state, not
//! a stale sequence (a start or pause already followed by a later event is dropped), and a
//! backlog longer than `fold_after` is folded into one summary card.
//!
//! What to retry is the Zoom client's classification; when is decided here and persisted in the
//! row (attempts, next attempt time) so a restart resumes the backoff. A row still failing
//! `max_age` after it was queued, or refused for good, becomes a dead letter.

use crate::config::Style;
use crate::daemon::Metrics;
use crate::poller::now_ms;
use crate::render;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::store::{OutboxRow, Store, StoreError};
use crate::zoom::{ChatbotClient, ErrorClass, WebhookClient, ZoomError};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One wake-up signal per channel: pollers ring it after committing rows for that channel.
/// Channels come and go with reloads, so a signal is made the first time either side asks.
#[derive(Debug, Default)]
pub struct Wakeups {
    by_channel: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// Wakes `channel`'s worker; a wake-up sent while it is busy (or not started yet) is kept
    /// for its next wait.
    pub fn wake(&self, channel: &str) {
        self.signal(channel).notify_one();
    }

    fn signal(&self, channel: &str) -> Arc<Notify> {
        self.by_channel
            .lock()
            .expect("wakeups lock")
            .entry(channel.to_owned())
            .or_default()
            .clone()
    }
}

/// Where a channel's cards go.
#[derive(Clone)]
pub enum Destination {
    Chatbot {
        client: Arc<ChatbotClient>,
        to_jid: String,
        style: Style,
    },
    Webhook {
        client: Arc<WebhookClient>,
    },
}

/// A channel and its destination.
#[derive(Clone)]
pub struct Route {
    pub channel: String,
    pub destination: Destination,
}

/// What a delivery worker needs.
#[derive(Clone)]
pub struct DeliveryContext {
    pub store: Store,
    pub wakeups: Arc<Wakeups>,
    pub metrics: Arc<Metrics>,
    /// Delay between attempts of a row Zoom could not take yet.
    pub backoff: Backoff,
    /// A row still failing this long after it was queued becomes a dead letter.
    pub max_age: Duration,
    /// More due rows than this are folded into one summary card.
    pub fold_after: usize,
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Zoom(#[from] ZoomError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Delivers `route`'s outbox until shutdown. A delivery under way is finished first.
pub async fn run(ctx: DeliveryContext, route: Route, mut shutdown: Shutdown) {
    let signal = ctx.wakeups.signal(&route.channel);
    while !shutdown.is_triggered() {
        let wait = match step(&ctx, &route).await {
            Ok(wait) => wait,
            Err(err) => {
                tracing::error!(channel = %route.channel, %err, "cannot read or update the outbox");
                Some(ctx.backoff.max)
            }
        };
        if wait == Some(Duration::ZERO) {
            continue;
        }
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

/// One step: drop superseded rows, or deliver the head row (or a folded backlog). Returns how
/// long to wait before the next step (`None`: until woken).
async fn step(ctx: &DeliveryContext, route: &Route) -> Result<Option<Duration>, StoreError> {
    let store = ctx.store.clone();
    let channel = route.channel.clone();
    let rows = blocking(move || store.outbox(&channel)).await?;
    let Some(head) = rows.first().cloned() else {
        return Ok(None);
    };
    let superseded = superseded(&rows);
    if !superseded.is_empty() {
        let store = ctx.store.clone();
        blocking(move || store.complete(&superseded, None)).await?;
        return Ok(Some(Duration::ZERO));
    }
    let now = now_ms();
    if head.next_attempt_ms > now {
        return Ok(Some(Duration::from_millis(
            (head.next_attempt_ms - now) as u64,
        )));
    }
    let due: Vec<OutboxRow> = rows
        .into_iter()
        .filter(|r| r.next_attempt_ms <= now)
        .collect();
    if due.len() > ctx.fold_after {
        deliver_folded(ctx, route, due).await?;
    } else {
        deliver(ctx, route, head).await?;
    }
    Ok(Some(Duration::ZERO))
}

/// Starts and pauses already followed by a later row of the same build: the channel should show
/// the latest state, not a stale sequence. Endings are never dropped.
fn superseded(rows: &[OutboxRow]) -> Vec<OutboxRow> {
    rows.iter()
        .enumerate()
        .filter(|(i, row)| {
            !row.event.is_terminal()
                && rows[i + 1..]
                    .iter()
                    .any(|later| later.build.key == row.build.key)
        })
        .map(|(_, row)| row.clone())
        .collect()
}

/// One attempt at one row, and its bookkeeping.
async fn deliver(ctx: &DeliveryContext, route: &Route, row: OutboxRow) -> Result<(), StoreError> {
    match show(ctx, route, &row).await {
        Ok(message_id) => {
            tracing::info!(channel = %route.channel, build = %row.build.key, event = %row.event, "card delivered");
            ctx.metrics.delivered.fetch_add(1, Ordering::Relaxed);
            let store = ctx.store.clone();
            blocking(move || {
                let card = message_id.as_deref().map(|id| (&row.build.key, id));
                store.complete(std::slice::from_ref(&row), card)
            })
            .await
        }
        Err(DeliveryError::Store(err)) => Err(err),
        Err(DeliveryError::Zoom(err)) => failed(ctx, route, vec![row], err).await,
    }
}

/// Shows `row` in the channel; returns the message id to remember for later edits, if any.
async fn show(
    ctx: &DeliveryContext,
    route: &Route,
    row: &OutboxRow,
) -> Result<Option<String>, DeliveryError> {
    let card = render::card(&row.build, row.event);
    let (client, to_jid, style) = match &route.destination {
        Destination::Webhook { client } => return Ok(client.post(&card).await.map(|()| None)?),
        Destination::Chatbot {
            client,
            to_jid,
            style,
        } => (client, to_jid, *style),
    };
    let content = render::chatbot_content(&card);
    let existing = match style {
        Style::Post => None,
        Style::Update | Style::UpdateAndReply => {
            ctx.store.card_message(&route.channel, &row.build.key)?
        }
    };
    if let Some(message_id) = existing {
        match client.edit(&message_id, &content).await {
            Ok(()) => {
                if style == Style::UpdateAndReply && row.event.is_terminal() {
                    // An edit may notify no one: the result also goes into the card's thread.
                    client.send(to_jid, &content, Some(&message_id)).await?;
                }
                return Ok(None);
            }
            Err(err) if err.class == ErrorClass::MessageGone => {
                tracing::info!(channel = %route.channel, build = %row.build.key, "the card was deleted in Zoom; posting a new one");
                ctx.store
                    .forget_card_message(&route.channel, &row.build.key)?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    let message_id = client.send(to_jid, &content, None).await?;
    Ok((style != Style::Post).then_some(message_id))
}

/// Folds a backlog into one summary card, so a channel is not flooded after an outage.
async fn deliver_folded(
    ctx: &DeliveryContext,
    route: &Route,
    rows: Vec<OutboxRow>,
) -> Result<(), StoreError> {
    let cards: Vec<render::Card> = rows
        .iter()
        .map(|r| render::card(&r.build, r.event))
        .collect();
    let summary = render::summary_card(&cards, "while Zoom could not be reached");
    let result = match &route.destination {
        Destination::Webhook { client } => client.post(&summary).await,
        Destination::Chatbot { client, to_jid, .. } => client
            .send(to_jid, &render::chatbot_content(&summary), None)
            .await
            .map(drop),
    };
    match result {
        Ok(()) => {
            tracing::info!(channel = %route.channel, cards = rows.len(), "backlog folded into one summary card");
            ctx.metrics
                .delivered
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            let store = ctx.store.clone();
            blocking(move || store.complete(&rows, None)).await
        }
        Err(err) => failed(ctx, route, rows, err).await,
    }
}

/// Books a failed attempt at `rows`: retried later, or dead-lettered when refused for good or
/// too old.
async fn failed(
    ctx: &DeliveryContext,
    route: &Route,
    rows: Vec<OutboxRow>,
    err: ZoomError,
) -> Result<(), StoreError> {
    let now = now_ms();
    let max_age = i64::try_from(ctx.max_age.as_millis()).unwrap_or(i64::MAX);
    // One attempt, one delay: rows tried together (a fold) stay due together.
    let attempts = rows.first().map_or(0, |r| r.attempts);
    let retry_after = match err.class {
        ErrorClass::Transient { retry_after } => retry_after,
        _ => None,
    };
    let delay = ctx
        .backoff
        .delay(attempts)
        .max(retry_after.unwrap_or_default());
    if matches!(err.class, ErrorClass::Transient { .. }) {
        ctx.metrics
            .delivery_failures
            .fetch_add(1, Ordering::Relaxed);
    }
    for row in rows {
        let store = ctx.store.clone();
        let too_old = now - row.enqueued_ms > max_age;
        match err.class {
            ErrorClass::Transient { .. } if !too_old => {
                tracing::warn!(channel = %route.channel, build = %row.build.key, attempts = row.attempts + 1, ?delay, %err, "delivery failed; will retry");
                let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                blocking(move || store.reschedule(&row, next)).await?;
            }
            _ => {
                let reason = if too_old && matches!(err.class, ErrorClass::Transient { .. }) {
                    format!("gave up after {:?} of retries: {err}", ctx.max_age)
                } else {
                    err.detail.clone()
                };
                tracing::error!(
                    channel = %route.channel, build = %row.build.key, %reason,
                    "card kept as a dead letter: check the channel's to_jid or webhook, the chatbot's robot_jid, account_id and scopes; then `bbzoom dead-letters retry`"
                );
                ctx.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                blocking(move || store.dead_letter(&row, &reason, now)).await?;
            }
        }
    }
    Ok(())
}

/// Runs a store operation (which may fsync) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store operations do not panic")
}
