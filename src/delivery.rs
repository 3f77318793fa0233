//! Delivery: one worker per channel takes the channel's outbox rows in order, renders each card
//! and shows it in Zoom, and removes a row only after Zoom said yes.
//!
//! A chatbot channel keeps one card per build, edited in place as the build moves on (style
//! `update`), with the final result also posted as a thread reply (`update+reply`, so people are
//! notified), or posts a card per event (`post`); the card's message id is kept in the store. A
//! webhook channel always posts. Messages sent to one channel are paced to Zoom's per-channel
//! limits, so a burst (a release ending forty builds at once) is delivered card by card.
//!
//! After an outage the channel gets each build's latest state, not a stale sequence (a start or
//! pause already followed by a later event is dropped). The fold rule ([`outage_backlog`]): only
//! a channel whose deliveries are really failing, with more than `fold_after` cards queued
//! since they began to fail, has its backlog folded into summary cards, as many as it takes
//! to list every update: a fold never hides a result.
//!
//! A mute (see [`crate::mute`]) holds the rows it covers in the outbox; when it ends, they go
//! out as one summary card, removed with the mute once Zoom took it.
//!
//! What to retry is the Zoom client's classification; when is decided here and persisted in the
//! row (attempts, next attempt time) so a restart resumes the backoff. A row still failing
//! `max_age` after it was queued, or refused for good, becomes a dead letter, and so does a row
//! the store cannot read: it must never block its channel.

use crate::clock::Clock;
use crate::config::Style;
use crate::domain::{Mention, RateLimit, ZoomUser};
use crate::metrics::Metrics;
use crate::mute::{self, Fate, Mute};
use crate::render::{self, Form};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::store::{OutboxRow, Store, StoreError};
use crate::wakeups::Wakeups;
use crate::war_room::{MeetingTurns, WarRooms};
use crate::zoom::account::Directory;
use crate::zoom::{ChatbotClient, ErrorClass, WebhookClient, ZoomError};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// What sends a channel's cards: the client for its [`crate::config::Destination`].
#[derive(Clone)]
pub enum Sender {
    Chatbot {
        client: Arc<ChatbotClient>,
        to_jid: String,
        style: Style,
    },
    Webhook {
        client: Arc<WebhookClient>,
    },
    /// Direct messages from the chatbot to one person of `[people]`: a new card per event.
    Direct {
        client: Arc<ChatbotClient>,
        user: ZoomUser,
    },
}

/// What deliveries use besides their channel's client; a reload replaces it without
/// restarting any worker.
#[derive(Default)]
pub struct Services {
    /// Finds the JID of a person `[people]` names by e-mail address, and the chat the e-mail
    /// address of an admin listed by user id (the Server-to-Server app of `[zoom.events]`).
    pub directory: Option<Arc<Directory>>,
    /// Creates war-room meetings (`meeting_on`), through the same app.
    pub war_rooms: Option<Arc<WarRooms>>,
}

/// A channel and what sends into it.
#[derive(Clone)]
pub struct Route {
    pub channel: String,
    pub sender: Sender,
}

/// What a delivery worker needs.
#[derive(Clone)]
pub(crate) struct DeliveryContext {
    pub(crate) store: Store,
    pub(crate) wakeups: Arc<Wakeups>,
    pub(crate) metrics: Arc<Metrics>,
    /// Stamps rows (their next attempt, their first failure) and tells how old they are.
    pub(crate) clock: Arc<dyn Clock>,
    /// Delay between attempts of a row Zoom could not take yet.
    pub(crate) backoff: Backoff,
    /// A row still failing this long after it was queued becomes a dead letter.
    pub(crate) max_age: Duration,
    /// See [`outage_backlog`].
    pub(crate) fold_after: usize,
    /// The most messages one channel is sent in any window of each limit's length.
    pub(crate) channel_pace: Vec<RateLimit>,
    /// The services of the configuration running now.
    pub(crate) services: tokio::sync::watch::Receiver<Arc<Services>>,
    /// One worker at a time creates a lane's war room.
    pub(crate) meeting_turns: Arc<MeetingTurns>,
}

/// Our pace for one Incoming Webhook connection: Zoom publishes no figure for them.
pub const WEBHOOK_PACE: RateLimit = RateLimit {
    requests: 2,
    per: Duration::from_secs(1),
};

/// The most messages Zoom lets one channel receive in its windows (10 a second, 30 in 10 s, 60
/// in 100 s, 450 in 1,000 s; beyond them it blocks the channel for 10 to 300 s).
pub(crate) const ZOOM_CHANNEL_PACE: [RateLimit; 4] = [
    RateLimit {
        requests: 10,
        per: Duration::from_secs(1),
    },
    RateLimit {
        requests: 30,
        per: Duration::from_secs(10),
    },
    RateLimit {
        requests: 60,
        per: Duration::from_secs(100),
    },
    RateLimit {
        requests: 450,
        per: Duration::from_secs(1000),
    },
];

/// One channel's pace: the times of its recent messages, so that no window of any limit holds
/// more than the limit (an exact sliding window: a burst goes out at once while it fits).
struct Pace {
    limits: Vec<RateLimit>,
    sent: VecDeque<Instant>,
}

impl Pace {
    fn new(limits: Vec<RateLimit>) -> Pace {
        Pace {
            limits,
            sent: VecDeque::new(),
        }
    }

    /// Waits until one more message fits every window, and counts it.
    async fn ready(&mut self) {
        loop {
            let now = Instant::now();
            let longest = self.limits.iter().map(|l| l.per).max().unwrap_or_default();
            while self
                .sent
                .front()
                .is_some_and(|&at| now.duration_since(at) >= longest)
            {
                self.sent.pop_front();
            }
            // The earliest moment each full window frees a place.
            let wait_until = self
                .limits
                .iter()
                .filter_map(|limit| {
                    let in_window = self
                        .sent
                        .iter()
                        .rev()
                        .take_while(|&&at| now.duration_since(at) < limit.per)
                        .count();
                    let full = in_window >= limit.requests as usize;
                    full.then(|| self.sent[self.sent.len() - in_window] + limit.per)
                })
                .max();
            match wait_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => {
                    self.sent.push_back(now);
                    return;
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Zoom(#[from] ZoomError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Delivers `route`'s outbox until shutdown. A delivery under way is finished first.
pub(crate) async fn run(ctx: DeliveryContext, route: Route, mut shutdown: Shutdown) {
    let signal = ctx.wakeups.signal(&route.channel);
    let mut worker = Worker {
        pace: Pace::new(ctx.channel_pace.clone()),
        ctx,
        route,
        failing_since: None,
        restored: false,
    };
    while !shutdown.is_triggered() {
        let step = worker.step().await;
        worker.ctx.store.note(&step);
        let wait = match step {
            Ok(wait) => wait,
            Err(err) => {
                tracing::error!(channel = %worker.route.channel, %err, "cannot read or update the outbox");
                Some(worker.ctx.backoff.max)
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

/// The fold rule: the due rows of a channel are folded into summary cards only while its
/// deliveries are really failing (`failing_since`: the first failure of the streak its last
/// attempt belongs to) and more than `fold_after` rows were queued since then: the backlog
/// grew while Zoom refused or could not be reached. A burst with Zoom healthy never folds.
pub(crate) fn outage_backlog(
    due: &[OutboxRow],
    fold_after: usize,
    failing_since: Option<i64>,
) -> bool {
    let Some(since) = failing_since else {
        return false;
    };
    due.iter().filter(|row| row.enqueued_ms > since).count() > fold_after
}

/// One channel's worker: what it needs, its pace, and whether its deliveries are failing.
struct Worker {
    ctx: DeliveryContext,
    route: Route,
    pace: Pace,
    /// When the current streak of transient failures began (`None` after a success, or once
    /// the outbox is empty). A row superseded meanwhile takes its own failure time with it, so
    /// the worker remembers the streak; at start it is read back from the rows
    /// (`OutboxRow::first_failed_ms`), so a restart mid-outage keeps it.
    failing_since: Option<i64>,
    /// Whether `failing_since` was read back from the rows yet.
    restored: bool,
}

impl Worker {
    /// One step: bury unreadable rows, drop superseded ones, or deliver the head row (or a
    /// folded backlog). Returns how long to wait before the next step (`None`: until woken).
    async fn step(&mut self) -> Result<Option<Duration>, StoreError> {
        let ctx = &self.ctx;
        let channel = self.route.channel.clone();
        let outbox = ctx
            .store
            .blocking(move |store| store.outbox(&channel))
            .await?;
        if !outbox.unreadable.is_empty() {
            for row in outbox.unreadable {
                tracing::error!(
                    channel = %row.channel, error = %row.error,
                    "an outbox row cannot be read; kept as a dead letter (`bbzoom dead-letters`) so the channel goes on"
                );
                ctx.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                let now = ctx.clock.now_ms();
                ctx.store
                    .blocking(move |store| store.dead_letter_unreadable(&row, now))
                    .await?;
            }
            return Ok(Some(Duration::ZERO));
        }
        let rows = outbox.rows;
        if !self.restored {
            self.failing_since = rows.iter().filter_map(|r| r.first_failed_ms).min();
            self.restored = true;
        }
        if rows.is_empty() {
            // Nothing waits: no backlog can have grown, whatever happened before.
            self.failing_since = None;
        }
        let superseded = superseded(&rows);
        if !superseded.is_empty() {
            ctx.store
                .blocking(move |store| store.complete(&superseded, None))
                .await?;
            return Ok(Some(Duration::ZERO));
        }
        let now = ctx.clock.now_ms();
        // Mutes: rows a mute in force covers stay where they are; those of mutes that ended go
        // out as one summary before anything else (see `mute`).
        let channel = self.route.channel.clone();
        let mutes = ctx
            .store
            .blocking(move |store| store.mutes(Some(&channel)))
            .await?;
        let (mut summarised, mut rows_now) = (Vec::new(), Vec::new());
        for row in rows {
            match mute::fate(&row.build.key.repo, row.enqueued_ms, &mutes, now) {
                Fate::Deliver => rows_now.push(row),
                Fate::Summarised => summarised.push(row),
                Fate::Held => {}
            }
        }
        let ended: Vec<Mute> = mutes.iter().filter(|m| !m.active(now)).cloned().collect();
        if !ended.is_empty() {
            let due_at = summarised.iter().map(|r| r.next_attempt_ms).max();
            match due_at {
                // Nothing was held, or it is still held by another mute: the mute is done.
                None => {
                    ctx.store
                        .blocking(move |store| store.finish_mutes(&[], &ended))
                        .await?;
                }
                Some(at) if at > now => return Ok(Some(millis_until(at, now))),
                Some(_) => self.deliver_mute_summary(summarised, ended).await?,
            }
            return Ok(Some(Duration::ZERO));
        }
        // The next mute to end, which the worker wakes for.
        let mute_ends = mutes.iter().map(|m| millis_until(m.until_ms, now)).min();
        let Some(head) = rows_now.first().cloned() else {
            return Ok(mute_ends);
        };
        if head.next_attempt_ms > now {
            let wait = millis_until(head.next_attempt_ms, now);
            return Ok(Some(mute_ends.map_or(wait, |ends| ends.min(wait))));
        }
        let due: Vec<OutboxRow> = rows_now
            .into_iter()
            .filter(|r| r.next_attempt_ms <= now)
            .collect();
        if outage_backlog(&due, ctx.fold_after, self.failing_since) {
            self.deliver_folded(due).await?;
        } else {
            self.deliver(head).await?;
        }
        Ok(Some(Duration::ZERO))
    }

    /// One attempt at one row, and its bookkeeping.
    async fn deliver(&mut self, row: OutboxRow) -> Result<(), StoreError> {
        match self.show(&row).await {
            Ok(message_id) => {
                self.failing_since = None;
                tracing::info!(channel = %self.route.channel, build = %row.build.key, event = %row.event, "card delivered");
                self.ctx.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                let waited_ms = self.ctx.clock.now_ms().saturating_sub(row.enqueued_ms);
                self.ctx
                    .metrics
                    .delivery_latency
                    .observe(waited_ms as f64 / 1000.0);
                self.ctx
                    .store
                    .blocking(move |store| {
                        let card = message_id.as_deref().map(|id| (&row.build.key, id));
                        store.complete(std::slice::from_ref(&row), card)
                    })
                    .await
            }
            Err(DeliveryError::Store(err)) => Err(err),
            Err(DeliveryError::Zoom(err)) => {
                // A refusal for good is no outage: the row becomes a dead letter, and the
                // channel's next cards go out as usual.
                if matches!(err.class, ErrorClass::Transient { .. }) {
                    self.failing_since.get_or_insert(self.ctx.clock.now_ms());
                }
                failed(&self.ctx, &self.route, vec![row], err, None).await
            }
        }
    }

    /// Shows `row` in the channel; returns the message id to remember for later edits, if any.
    async fn show(&mut self, row: &OutboxRow) -> Result<Option<String>, DeliveryError> {
        let war_room = match &row.war_room {
            Some(room) => self.war_room(row, room).await?,
            None => None,
        };
        let (client, to_jid, style, mut card) = match &self.route.sender {
            Sender::Webhook { client } => {
                let mut card = render::card(&row.build, row.event);
                render::add_war_room(&mut card, war_room);
                self.pace.ready().await;
                return Ok(client.post(&card).await.map(|()| None)?);
            }
            Sender::Chatbot {
                client,
                to_jid,
                style,
            } => (
                client.clone(),
                to_jid.clone(),
                *style,
                render::card(&row.build, row.event),
            ),
            Sender::Direct { client, user } => (
                client.clone(),
                self.jid_of(user).await?,
                Style::Post,
                render::direct_card(&row.build, row.event),
            ),
        };
        if let Some(mention) = &row.mention {
            card.mention = self.mention(mention).await;
        }
        render::add_war_room(&mut card, war_room);
        let (client, to_jid) = (&client, &to_jid);
        let channel = &self.route.channel;
        let content = render::chatbot_content(&card);
        let markdown = render::chatbot_markdown(&card);
        let existing = match style {
            Style::Post => None,
            Style::Update | Style::UpdateAndReply => {
                let (channel, build) = (channel.clone(), row.build.key.clone());
                self.ctx
                    .store
                    .blocking(move |store| store.card_message(&channel, &build))
                    .await?
            }
        };
        if let Some(message_id) = existing {
            match client.edit(&message_id, &content, markdown).await {
                Ok(()) => {
                    if style == Style::UpdateAndReply && row.event.is_terminal() {
                        // An edit may notify no one: the result also goes into the card's
                        // thread.
                        self.pace.ready().await;
                        (client.send_card(to_jid, &content, Some(&message_id), markdown)).await?;
                    }
                    return Ok(None);
                }
                Err(err) if err.class == ErrorClass::MessageGone => {
                    tracing::info!(%channel, build = %row.build.key, "the card was deleted in Zoom; posting a new one");
                    let (channel, build) = (channel.clone(), row.build.key.clone());
                    self.ctx
                        .store
                        .blocking(move |store| store.forget_card_message(&channel, &build))
                        .await?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        self.pace.ready().await;
        let message_id = client.send_card(to_jid, &content, None, markdown).await?;
        Ok((style != Style::Post).then_some(message_id))
    }

    /// The join link of `room`, the war room `row` shows: `None` without one (no longer
    /// wanted, or Zoom would not create it in time).
    async fn war_room(
        &self,
        row: &OutboxRow,
        room: &crate::domain::WarRoom,
    ) -> Result<Option<String>, StoreError> {
        let rooms = self.ctx.services.borrow().war_rooms.clone();
        let Some(rooms) = rooms else {
            tracing::warn!(
                channel = %self.route.channel, build = %row.build.key,
                "the card asks for a war room, and [zoom.events] is gone; it goes out without one"
            );
            return Ok(None);
        };
        rooms
            .join_url(&self.ctx.store, &self.ctx.meeting_turns, &row.build, room)
            .await
    }

    /// The JID of `user`: as `[people]` writes it, or looked up by e-mail address.
    async fn jid_of(&self, user: &ZoomUser) -> Result<String, ZoomError> {
        match user {
            ZoomUser::Jid(jid) => Ok(jid.clone()),
            ZoomUser::Email(email) => {
                let directory = self.ctx.services.borrow().directory.clone();
                match directory {
                    Some(directory) => directory.jid(email).await,
                    None => Err(ZoomError {
                        class: ErrorClass::Permanent,
                        detail: format!(
                            "{email} is named by e-mail address, which is looked up through \
                             [zoom.events], and it is gone"
                        ),
                    }),
                }
            }
        }
    }

    /// The card's mention of `mention`; `None`, logged, when the person cannot be found: the
    /// card goes out without it rather than wait.
    async fn mention(&self, mention: &Mention) -> Option<render::CardMention> {
        match self.jid_of(&mention.user).await {
            Ok(jid) => Some(render::CardMention {
                jid,
                name: mention.name.clone(),
            }),
            Err(err) => {
                tracing::warn!(
                    channel = %self.route.channel, user = %mention.user, %err,
                    "cannot find the Zoom user to mention; the card goes out without the mention"
                );
                None
            }
        }
    }

    /// Folds a failing channel's backlog into summary cards, as many as every update takes,
    /// so the channel is not flooded after an outage and nothing is hidden. Each card's rows
    /// are completed as soon as Zoom took it; the rest are booked as failed if one is refused.
    async fn deliver_folded(&mut self, rows: Vec<OutboxRow>) -> Result<(), StoreError> {
        let form = match &self.route.sender {
            Sender::Chatbot { .. } | Sender::Direct { .. } => Form::Chatbot,
            Sender::Webhook { client } => client.form(),
        };
        let updates: Vec<(crate::domain::EventKind, render::Card)> = rows
            .iter()
            .map(|r| (r.event, render::card(&r.build, r.event)))
            .collect();
        let failing_for = self
            .failing_since
            .map_or(0, |since| self.ctx.clock.now_ms().saturating_sub(since));
        let why = format!(
            "held back while Zoom was failing for {}",
            render::duration(u64::try_from(failing_for / 1000).unwrap_or(0))
        );
        let summaries = render::summary_cards(&updates, &why, form);
        let mut rest = rows.as_slice();
        for summary in &summaries {
            let (shown, after) = rest.split_at(summary.lines.len().min(rest.len()));
            self.pace.ready().await;
            let result = match &self.route.sender {
                Sender::Webhook { client } => client.post(summary).await,
                Sender::Chatbot { client, to_jid, .. } => client
                    .send(to_jid, &render::chatbot_content(summary), None)
                    .await
                    .map(drop),
                Sender::Direct { client, user } => match self.jid_of(user).await {
                    Ok(to_jid) => client
                        .send(&to_jid, &render::chatbot_content(summary), None)
                        .await
                        .map(drop),
                    Err(err) => Err(err),
                },
            };
            if let Err(err) = result {
                return failed(&self.ctx, &self.route, rest.to_vec(), err, None).await;
            }
            self.failing_since = None;
            tracing::info!(channel = %self.route.channel, cards = shown.len(), summaries = summaries.len(), "backlog folded into a summary card");
            self.ctx
                .metrics
                .delivered
                .fetch_add(shown.len() as u64, Ordering::Relaxed);
            let shown = shown.to_vec();
            self.ctx
                .store
                .blocking(move |store| store.complete(&shown, None))
                .await?;
            rest = after;
        }
        Ok(())
    }
}

/// Milliseconds from `now_ms` to `at_ms`, none if it is past.
fn millis_until(at_ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0))
}

impl Worker {
    /// Sends the one summary card of what `ended` mutes held (`rows`), then removes the rows
    /// and the mutes together; a failed attempt is booked on the rows like any, their age
    /// counted from the mute's end.
    async fn deliver_mute_summary(
        &mut self,
        rows: Vec<OutboxRow>,
        ended: Vec<Mute>,
    ) -> Result<(), StoreError> {
        let updates: Vec<(crate::domain::EventKind, &crate::domain::BuildStatus)> =
            rows.iter().map(|r| (r.event, &r.build)).collect();
        let card = mute::summary_card(&updates, &ended);
        self.pace.ready().await;
        let result = match &self.route.sender {
            Sender::Webhook { client } => client.post(&card).await,
            Sender::Chatbot { client, to_jid, .. } => client
                .send(to_jid, &render::chatbot_content(&card), None)
                .await
                .map(drop),
            Sender::Direct { client, user } => match self.jid_of(user).await {
                Ok(to_jid) => client
                    .send(&to_jid, &render::chatbot_content(&card), None)
                    .await
                    .map(drop),
                Err(err) => Err(err),
            },
        };
        if let Err(err) = result {
            let held_until = ended.iter().map(|m| m.until_ms).max();
            return failed(&self.ctx, &self.route, rows, err, held_until).await;
        }
        self.failing_since = None;
        tracing::info!(channel = %self.route.channel, cards = rows.len(), "a mute ended: what it held went out as one summary card");
        self.ctx
            .metrics
            .delivered
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        self.ctx
            .store
            .blocking(move |store| store.finish_mutes(&rows, &ended))
            .await
    }
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

/// Books a failed attempt at `rows`: retried later, or dead-lettered when refused for good or
/// too old: `max_age` after they were queued, or after `held_until` for rows a mute held.
async fn failed(
    ctx: &DeliveryContext,
    route: &Route,
    rows: Vec<OutboxRow>,
    err: ZoomError,
    held_until: Option<i64>,
) -> Result<(), StoreError> {
    let now = ctx.clock.now_ms();
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
        let queued = held_until.map_or(row.enqueued_ms, |until| until.max(row.enqueued_ms));
        let too_old = now.saturating_sub(queued) > max_age;
        match err.class {
            ErrorClass::Transient { .. } if !too_old => {
                tracing::warn!(channel = %route.channel, build = %row.build.key, attempts = row.attempts + 1, ?delay, %err, "delivery failed; will retry");
                let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                ctx.store
                    .blocking(move |store| store.reschedule(&row, next, now))
                    .await?;
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
                ctx.store
                    .blocking(move |store| store.dead_letter(&row, &reason, now))
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildKey, BuildRef, BuildState, BuildStatus, EventKind, RepoId};

    /// On tokio's paused clock: a burst goes out at once while it fits, and then no window of
    /// any of Zoom's per-channel limits ever holds more than its limit.
    #[tokio::test(start_paused = true)]
    async fn the_pace_lets_a_burst_through_and_keeps_every_window() {
        let mut pace = Pace::new(ZOOM_CHANNEL_PACE.to_vec());
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..500 {
            pace.ready().await;
            sent.push(start.elapsed());
        }
        assert!(
            sent[..10].iter().all(|at| at.is_zero()),
            "{:?}",
            &sent[..10]
        );
        for limit in ZOOM_CHANNEL_PACE {
            for (i, &at) in sent.iter().enumerate() {
                let in_window = sent[i..]
                    .iter()
                    .take_while(|&&t| t < at + limit.per)
                    .count();
                assert!(
                    in_window <= limit.requests as usize,
                    "{in_window} in {:?} from {at:?}",
                    limit.per
                );
            }
        }
        // No slower than the limits make it: the 61st waits for the 100 s window, no more.
        assert_eq!(sent[60], Duration::from_secs(100));
    }

    fn row(seq: u64, enqueued_ms: i64, first_failed_ms: Option<i64>) -> OutboxRow {
        OutboxRow {
            seq,
            channel: "ci".into(),
            event: EventKind::Failed,
            build: BuildStatus {
                key: BuildKey {
                    repo: RepoId::new("acme", "api"),
                    id: format!("{{{seq}}}"),
                },
                job: "pipeline".into(),
                name: "Pipeline".into(),
                number: Some(seq),
                revision: 0,
                git_ref: BuildRef::Branch("main".into()),
                commit: None,
                commit_message: None,
                author: None,
                authors: Vec::new(),
                state: BuildState::Running,
                duration_secs: None,
                created_ms: 0,
                url: String::new(),
                commit_url: None,
                ref_url: None,
                scheduled: false,
            },
            attempts: u32::from(first_failed_ms.is_some()),
            next_attempt_ms: 0,
            enqueued_ms,
            first_failed_ms,
            mention: None,
            war_room: None,
        }
    }

    #[test]
    fn the_fold_rule_needs_failures_and_a_backlog_that_grew_meanwhile() {
        let burst: Vec<OutboxRow> = (0..40).map(|i| row(i, 1_000, None)).collect();
        assert!(
            !outage_backlog(&burst, 10, None),
            "a burst with Zoom healthy"
        );
        // Failing since 2 s, but nothing came after: a burst hit by one refusal.
        let mut refused = burst.clone();
        refused[0] = row(0, 1_000, Some(2_000));
        assert!(!outage_backlog(&refused, 10, Some(2_000)));
        // Eleven cards queued since: an outage's backlog.
        let mut outage = refused.clone();
        outage.extend((40..51).map(|i| row(i, 3_000, None)));
        assert!(outage_backlog(&outage, 10, Some(2_000)));
        assert!(!outage_backlog(&outage, 11, Some(2_000)));
        assert!(!outage_backlog(&outage, 10, None), "deliveries work again");
        assert!(!outage_backlog(&[], 10, Some(2_000)));
    }
}
