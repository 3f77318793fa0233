//! Chat commands over Zoom's event WebSocket, with no inbound port: one outbound connection
//! per `[zoom.events]` subscription, kept open (a fresh token per connection, renewed before
//! it expires; a heartbeat every `heartbeat`; reconnection with jittered backoff after any
//! close or error), and the commands people post in the command channels, each handled once.
//!
//! Zoom does not replay what it sent while no connection was open, so after every connect the
//! task reads each command channel's messages since its cursor (list-messages, at most
//! [`MAX_BACKFILL_PAGES`] pages; the first connect ever starts the cursor, durably, as soon as
//! it is open) and handles the
//! commands among them, oldest first. A command runs only once its message id is recorded in
//! the store (`Store::claim_command`), so one seen live and in a backfill, or again after a
//! restart, runs once. Its answer, a reply in the command's thread through the chatbot, is
//! queued in the store (`Store::queue_answer`) and sent by [`send_answers`], in order, retried
//! while Zoom fails transiently for up to `[zoom.delivery] max_age`, and again after a restart;
//! only an answer Zoom refuses for good, or one that old, is given up (logged as an error).

pub(crate) mod admin;
pub(crate) mod commands;

use crate::clock::Clock;
use crate::config::{Config, EventsConfig};
use crate::domain::{Health, RateLimit, RepoId};
use crate::mute::{self, Fate, Mute, MuteScope};
use crate::render::Card;
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::store::{ChatAnswer, Store, StoreError};
use crate::wakeups::Wakeups;
use crate::zoom::account::Directory;
use crate::zoom::events::{self, ChatMessage, Incoming, ServerToServerApp};
use crate::zoom::{ChatbotClient, ErrorClass};
use commands::{Command, Muted, Target};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The most list-messages pages read per channel after a reconnect (50 messages each): a
/// long outage costs a bounded catch-up, and the oldest messages beyond it are left (logged).
pub(crate) const MAX_BACKFILL_PAGES: usize = 4;

/// Everything the task runs with; built by the supervisor from the configuration.
pub(crate) struct ChatContext {
    /// The Server-to-Server app: tokens, the socket, list-messages.
    pub(crate) app: Arc<ServerToServerApp>,
    /// The account's users, through that app: the e-mail addresses of admins listed by user id.
    pub(crate) directory: Arc<Directory>,
    /// `[zoom.events]`.
    pub(crate) events: EventsConfig,
    /// Each command channel by Zoom channel id: its name in `[zoom.channels]` and its JID.
    pub(crate) channels: BTreeMap<String, (String, String)>,
    /// Where answers go out.
    pub(crate) chatbot: Arc<ChatbotClient>,
    /// The configuration running now, for `list` and `status` (a reload changes it in place).
    pub(crate) config: watch::Receiver<Arc<Config>>,
    /// Handled commands and channel cursors.
    pub(crate) store: Store,
    /// Stamps handled commands and cursors.
    pub(crate) clock: Arc<dyn Clock>,
    /// Between reconnection attempts.
    pub(crate) reconnect: Backoff,
    /// Between attempts at sending an answer.
    pub(crate) answer_backoff: Backoff,
    /// How long an answer Zoom keeps failing to take is retried (`[zoom.delivery] max_age`).
    pub(crate) answer_max_age: std::time::Duration,
    /// Wakes [`send_answers`] when an answer is queued.
    pub(crate) answers_queued: Arc<tokio::sync::Notify>,
    /// Commands one person may send per window before being told to slow down.
    pub(crate) command_rate: RateLimit,
    /// What `bbzoom status` shows of the connection.
    pub(crate) log: Arc<ConnectionLog>,
    /// Delivery workers, woken when a mute ends so its summary goes out at once.
    pub(crate) wakeups: Arc<Wakeups>,
    /// How a span people type (a mute's length) runs on the daemon's clock: 1, or
    /// `1/speed` in a compressed run (`Tuning::typed_time`).
    pub(crate) typed_time: f64,
    /// Where `subscribe` and `unsubscribe` go: the supervisor, which edits the chat's
    /// subscriptions file and reloads, one request at a time.
    pub(crate) admin: mpsc::Sender<AdminRequest>,
}

/// A change of the chat's subscriptions asked for in a channel by an admin (`subscribe`,
/// `unsubscribe`), carried out by the supervisor like a reload, one at a time; its answer
/// comes back on `answer`.
pub(crate) struct AdminRequest {
    pub(crate) command: Command,
    /// The `[zoom.channels]` name it was asked in, which it subscribes.
    pub(crate) channel: String,
    /// Who asked: the Zoom user's email or id.
    pub(crate) sender: String,
    pub(crate) answer: oneshot::Sender<Card>,
}

/// Admin requests that may wait for the supervisor at once; more are refused as busy.
pub(crate) const ADMIN_QUEUE: usize = 8;

/// The connection as `bbzoom status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsStatus {
    /// The event subscription.
    pub subscription_id: String,
    /// Since when the current connection is open (Unix ms); `None` while disconnected.
    pub connected_since_ms: Option<i64>,
    /// When the last channel message arrived over it (Unix ms).
    pub last_event_ms: Option<i64>,
    /// Connections opened after the first (renewals included).
    pub reconnects: u64,
    /// Why the last connection ended, if it failed.
    pub last_error: Option<String>,
}

/// The shared, updated [`EventsStatus`].
#[derive(Debug, Default)]
pub(crate) struct ConnectionLog(Mutex<EventsStatus>);

impl ConnectionLog {
    pub(crate) fn new(subscription_id: &str) -> ConnectionLog {
        ConnectionLog(Mutex::new(EventsStatus {
            subscription_id: subscription_id.to_owned(),
            ..EventsStatus::default()
        }))
    }

    pub(crate) fn now(&self) -> EventsStatus {
        self.0.lock().expect("connection log lock").clone()
    }

    fn update(&self, change: impl FnOnce(&mut EventsStatus)) {
        change(&mut self.0.lock().expect("connection log lock"));
    }
}

/// How one connection ended.
enum Ended {
    /// The daemon is stopping, or the task was replaced.
    Shutdown,
    /// Its token is due for renewal: connect again at once.
    Renew,
    /// It closed or failed, or catching up failed: connect again after a backoff.
    Failed(String),
}

/// Per person, commands admitted, and who was told to slow down.
struct Flood {
    /// One GCRA per sender.
    limiter: DefaultKeyedRateLimiter<String>,
    /// Senders told to slow down and ignored since, until the limiter admits them again.
    told: Mutex<HashSet<String>>,
}

/// What the flood guard says of one command.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    Run,
    /// Over the limit for the first time in a row: answer "slow down" instead.
    SlowDown,
    /// Over the limit again: say nothing.
    Ignore,
}

impl Flood {
    fn new(rate: RateLimit) -> Flood {
        Flood {
            // A person may send the whole allowance at once, then one per share of the window.
            limiter: RateLimiter::keyed(
                governor::Quota::with_period(rate.per / rate.requests.max(1))
                    .expect("rate limits are at least 1ms")
                    .allow_burst(
                        std::num::NonZeroU32::new(rate.requests.max(1)).expect("at least one"),
                    ),
            ),
            told: Mutex::new(HashSet::new()),
        }
    }

    fn admit(&self, sender: &str) -> Admission {
        let mut told = self.told.lock().expect("flood lock");
        if self.limiter.check_key(&sender.to_owned()).is_ok() {
            told.remove(sender);
            Admission::Run
        } else if told.insert(sender.to_owned()) {
            Admission::SlowDown
        } else {
            Admission::Ignore
        }
    }
}

/// What a catch-up found: commands to handle, oldest first, and how far each channel was read.
struct CaughtUp {
    messages: Vec<ChatMessage>,
    cursors: Vec<(String, i64)>,
}

/// Keeps the subscription's connection until `shutdown`, reconnecting whenever it ends, and
/// sends the answers.
pub(crate) async fn run(ctx: Arc<ChatContext>, shutdown: Shutdown) {
    tokio::join!(
        keep_connected(ctx.clone(), shutdown.clone()),
        send_answers(ctx, shutdown)
    );
}

/// Keeps the subscription's connection until `shutdown`, reconnecting whenever it ends.
async fn keep_connected(ctx: Arc<ChatContext>, mut shutdown: Shutdown) {
    let flood = Flood::new(ctx.command_rate);
    let mut failures = 0u32;
    let mut first = true;
    loop {
        if !first {
            ctx.log.update(|s| s.reconnects += 1);
        }
        first = false;
        let opened = Instant::now();
        let ended = ctx.connection(&mut shutdown, &flood).await;
        ctx.log.update(|s| s.connected_since_ms = None);
        let why = match ended {
            Ended::Shutdown => return,
            Ended::Renew => {
                tracing::info!("event WebSocket: reconnecting with a fresh token");
                failures = 0;
                continue;
            }
            Ended::Failed(why) => why,
        };
        // A connection that held for a few heartbeats was good: back off afresh.
        if opened.elapsed() > ctx.events.heartbeat.saturating_mul(3) {
            failures = 0;
        }
        let delay = ctx.reconnect.delay(failures);
        failures = failures.saturating_add(1);
        tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "event WebSocket lost; reconnecting");
        ctx.log.update(|s| s.last_error = Some(why));
        tokio::select! {
            _ = shutdown.wait() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

impl ChatContext {
    /// One connection, from its token to its end.
    async fn connection(&self, shutdown: &mut Shutdown, flood: &Flood) -> Ended {
        let token = match self.app.token().await {
            Ok(token) => token,
            Err(err) => return Ended::Failed(err.to_string()),
        };
        let url = &self.events.url;
        let mut socket =
            match events::connect(url, &self.events.subscription_id, &token.value).await {
                Ok(socket) => socket,
                Err(err) => return Ended::Failed(err),
            };
        let connected_ms = self.clock.now_ms();
        self.log
            .update(|s| s.connected_since_ms = Some(connected_ms));
        // The URL without its query: the query holds the token.
        tracing::info!(url = %format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or_default(), url.path()), "event WebSocket connected");
        let beat = self.events.heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + beat, beat);
        // A channel's first connection ever starts its cursor now, before anything can end
        // this connection: what is posted from now on is a command, even if this connection
        // drops before its catch-up is done.
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        let started = self
            .store
            .blocking(move |store| {
                (channels.iter()).try_for_each(|c| store.start_chat_cursor(c, connected_ms))
            })
            .await;
        if let Err(err) = started {
            return Ended::Failed(format!(
                "cannot record where the command channels begin: {err}"
            ));
        }
        let backfill = self.catch_up(&token.value, connected_ms);
        tokio::pin!(backfill);
        let mut caught_up = false;
        let ended = loop {
            tokio::select! {
                _ = shutdown.wait() => break Ended::Shutdown,
                () = tokio::time::sleep_until(token.renew_at) => break Ended::Renew,
                _ = heartbeat.tick() => {
                    if let Err(err) = events::send(&mut socket, events::heartbeat()).await {
                        break Ended::Failed(err);
                    }
                }
                frame = events::next(&mut socket) => match frame {
                    Ok(Incoming::Message(message)) => {
                        self.log.update(|s| s.last_event_ms = Some(self.clock.now_ms()));
                        if !self.channels.contains_key(&message.channel_id) {
                            continue;
                        }
                        self.handle(&message, flood).await;
                        // Before the catch-up is done, its cursor covers this message.
                        if caught_up {
                            self.advance(vec![(message.channel_id, message.at_ms)]).await;
                        }
                    }
                    Ok(Incoming::Other) => {}
                    Err(err) => break Ended::Failed(err),
                },
                found = &mut backfill, if !caught_up => match found {
                    Ok(found) => {
                        caught_up = true;
                        for message in &found.messages {
                            self.handle(message, flood).await;
                        }
                        self.advance(found.cursors).await;
                    }
                    Err(err) => break Ended::Failed(format!("catching up on the command channels failed: {err}")),
                },
            }
        };
        let _ = socket.close(None).await;
        ended
    }

    /// The command channels' messages since their cursors, oldest first (see the module doc).
    async fn catch_up(&self, token: &SecretString, connected_ms: i64) -> Result<CaughtUp, String> {
        let mut found = CaughtUp {
            messages: Vec::new(),
            cursors: Vec::new(),
        };
        for channel_id in self.channels.keys() {
            let id = channel_id.clone();
            let cursor = self
                .store
                .blocking(move |store| store.chat_cursor(&id))
                .await
                .map_err(|e| e.to_string())?;
            // Started at the first connection ever: older messages are history, not commands.
            let from = cursor.unwrap_or(connected_ms);
            let (mut page, mut pages, mut newest) = (None, 0, from);
            loop {
                let listed = self
                    .app
                    .list_messages(token, &self.events.user, channel_id, from, page.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                pages += 1;
                for message in listed.messages.into_iter().filter(|m| m.at_ms >= from) {
                    newest = newest.max(message.at_ms);
                    found.messages.push(message);
                }
                match listed.next {
                    Some(next) if pages < MAX_BACKFILL_PAGES => page = Some(next),
                    Some(_) => {
                        tracing::warn!(channel = %self.channels[channel_id].0, pages, "catching up: older messages of the outage left unread (page cap)");
                        break;
                    }
                    None => break,
                }
            }
            tracing::debug!(channel = %self.channels[channel_id].0, from, newest, pages, "caught up on a command channel");
            found.cursors.push((channel_id.clone(), newest));
        }
        // Listed newest first: a stable sort by time keeps same-instant posts in order.
        found.messages.reverse();
        found.messages.sort_by_key(|m| m.at_ms);
        Ok(found)
    }

    /// Moves channel cursors forward; an error is logged (the next catch-up reads more).
    async fn advance(&self, cursors: Vec<(String, i64)>) {
        let moved = self
            .store
            .blocking(move |store| {
                cursors
                    .iter()
                    .try_for_each(|(channel, at)| store.advance_chat_cursor(channel, *at))
            })
            .await;
        if let Err(err) = moved {
            tracing::error!(%err, "cannot record how far the command channels were read");
        }
    }

    /// Runs the command `message` holds, if it holds one and was not handled before.
    async fn handle(&self, message: &ChatMessage, flood: &Flood) {
        let Some(command) = commands::parse(message, &self.events.user) else {
            return;
        };
        let Some((channel, to_jid)) = self.channels.get(&message.channel_id).cloned() else {
            return;
        };
        let (id, now) = (message.id.clone(), self.clock.now_ms());
        match self
            .store
            .blocking(move |store| store.claim_command(&id, now))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                // What cannot be recorded is not run: it could otherwise run twice.
                tracing::error!(%err, "cannot record a chat command as handled; not running it");
                return;
            }
        }
        let card = match flood.admit(&message.sender) {
            Admission::Run if command.admin_only() && !self.is_admin(message).await => {
                tracing::warn!(
                    %channel, sender = %crate::terminal::shown(&message.sender),
                    "chat command refused: only [zoom.events] admins may change subscriptions"
                );
                commands::refused(&command)
            }
            Admission::Run => {
                tracing::info!(%channel, ?command, "chat command");
                match self.run_command(command, message, &channel, &to_jid) {
                    Some(card) => card.await,
                    None => return,
                }
            }
            Admission::SlowDown => {
                tracing::info!(%channel, "chat commands: a person is over the rate limit; told to slow down");
                commands::slow_down()
            }
            Admission::Ignore => return,
        };
        let answer = ChatAnswer {
            to_jid,
            thread: message.thread.clone().unwrap_or_else(|| message.id.clone()),
            content: crate::render::chatbot_content(&card),
            queued_ms: self.clock.now_ms(),
        };
        let id = message.id.clone();
        match self
            .store
            .blocking(move |store| store.queue_answer(&id, &answer))
            .await
        {
            Ok(()) => self.answers_queued.notify_one(),
            Err(err) => tracing::error!(%err, "cannot queue the answer to a chat command"),
        }
    }

    /// Runs `command`, posted as `message` in `channel` (whose JID is `to_jid`): its answer,
    /// or `None` when it is answered later (a change of subscriptions, carried out by the
    /// supervisor, is answered from the background once done).
    fn run_command<'a>(
        &'a self,
        command: Command,
        message: &'a ChatMessage,
        channel: &'a str,
        to_jid: &str,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = Card> + Send + 'a>>> {
        match command {
            Command::Mute { target, length } => {
                Some(Box::pin(self.mute(channel, message, target, length)))
            }
            Command::Unmute(target) => Some(Box::pin(self.unmute(channel, target))),
            Command::Subscribe(_) | Command::Unsubscribe { .. } => {
                let (answer, answered) = oneshot::channel();
                let request = AdminRequest {
                    command,
                    channel: channel.to_owned(),
                    sender: message.sender.clone(),
                    answer,
                };
                if self.admin.try_send(request).is_err() {
                    return Some(Box::pin(std::future::ready(commands::failed(
                        "Nothing changed: bbzoom is busy",
                        "other subscription changes are waiting; try again in a minute",
                    ))));
                }
                let (id, thread) = (
                    message.id.clone(),
                    message.thread.clone().unwrap_or_else(|| message.id.clone()),
                );
                let (store, clock, queued, to_jid) = (
                    self.store.clone(),
                    self.clock.clone(),
                    self.answers_queued.clone(),
                    to_jid.to_owned(),
                );
                // Answered once the supervisor is done, queued like every answer.
                tokio::spawn(async move {
                    let card = answered.await.unwrap_or_else(|_| {
                        commands::failed(
                            "Nothing changed: bbzoom is stopping",
                            "try again once it runs",
                        )
                    });
                    let answer = ChatAnswer {
                        to_jid,
                        thread,
                        content: crate::render::chatbot_content(&card),
                        queued_ms: clock.now_ms(),
                    };
                    match store
                        .blocking(move |store| store.queue_answer(&id, &answer))
                        .await
                    {
                        Ok(()) => queued.notify_one(),
                        Err(err) => {
                            tracing::error!(%err, "cannot queue the answer to a chat command")
                        }
                    }
                });
                None
            }
            command => {
                let (config, channel) = (self.config.borrow().clone(), channel.to_owned());
                let now = self.clock.now_ms();
                Some(Box::pin(self.store.blocking(move |store| {
                    let muted = muted(store, &channel, now);
                    commands::answer(&command, &channel, &config, &muted, |repo| {
                        lanes(store, repo)
                    })
                })))
            }
        }
    }

    /// Whether the sender of `message` is one of `[zoom.events] admins`: by email or user id,
    /// in any case. A command read back after a reconnect names its sender by email only
    /// (list-messages): the admins listed by user id are then looked up (`GET /users/{id}`,
    /// kept a while by the directory).
    async fn is_admin(&self, message: &ChatMessage) -> bool {
        let listed = |who: &str| {
            !who.is_empty()
                && self
                    .events
                    .admins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(who))
        };
        if listed(&message.sender) || listed(&message.sender_id) {
            return true;
        }
        if !message.sender_id.is_empty() || message.sender.is_empty() {
            return false;
        }
        for admin in self.events.admins.iter().filter(|a| !a.contains('@')) {
            match self.directory.email(admin).await {
                Ok(email) if email.eq_ignore_ascii_case(&message.sender) => return true,
                Ok(_) => {}
                Err(err) => tracing::warn!(
                    admin = %crate::terminal::shown(admin), %err,
                    "cannot look up the email of an admin listed by user id, so a command read back after a reconnect cannot be theirs; list the admin by email, or grant the Server-to-Server app user:read:user:admin"
                ),
            }
        }
        false
    }

    /// `mute`: records the mute of `target` in `channel` for `length` (as typed).
    async fn mute(
        &self,
        channel: &str,
        message: &ChatMessage,
        target: Target,
        length: String,
    ) -> Card {
        let typed = match mute::length(&length) {
            Ok(typed) => typed,
            Err(why) => return commands::failed("Not muted", &why),
        };
        let scope = match target {
            Target::All => MuteScope::All,
            Target::Repo(typed) => {
                let config = self.config.borrow().clone();
                match resolve(&config, channel, &typed, &[]) {
                    Ok(repo) => MuteScope::Repo(repo),
                    Err(why) => return commands::failed("Not muted", &why),
                }
            }
        };
        let real = crate::clock::scaled(typed, self.typed_time);
        let now = self.clock.now_ms();
        let mute = Mute {
            channel: channel.to_owned(),
            scope,
            since_ms: now,
            until_ms: now.saturating_add(i64::try_from(real.as_millis()).unwrap_or(i64::MAX)),
            by: message.sender.clone(),
        };
        let recorded = mute.clone();
        let set = self
            .store
            .blocking(move |store| {
                let replaced = store.set_mute(&recorded)?;
                let all = store
                    .mutes(Some(&recorded.channel))?
                    .into_iter()
                    .find(|m| m.scope == MuteScope::All && m.active(now));
                Ok::<_, StoreError>((replaced, all))
            })
            .await;
        match set {
            Ok((replaced, all)) => {
                tracing::info!(%channel, scope = %mute.scope, until_ms = mute.until_ms, "muted");
                self.wakeups.wake(channel);
                commands::muted(&mute, &length, replaced.as_ref(), all.as_ref())
            }
            Err(err) => {
                tracing::error!(%err, %channel, "cannot record a mute");
                commands::failed(
                    "Not muted",
                    "bbzoom could not record the mute (see its log)",
                )
            }
        }
    }

    /// `unmute`: ends `channel`'s mute of `target` (every mute with `None`) now; the delivery
    /// worker sends the summary.
    async fn unmute(&self, channel: &str, target: Option<String>) -> Card {
        let config = self.config.borrow().clone();
        let now = self.clock.now_ms();
        let chan = channel.to_owned();
        let ended = self
            .store
            .blocking(move |store| {
                let mutes = store.mutes(Some(&chan))?;
                let scope = match target {
                    None => None,
                    Some(typed) => {
                        let muted: Vec<RepoId> = mutes
                            .iter()
                            .filter_map(|m| match &m.scope {
                                MuteScope::Repo(repo) => Some(repo.clone()),
                                MuteScope::All => None,
                            })
                            .collect();
                        match resolve(&config, &chan, &typed, &muted) {
                            Ok(repo) => Some(MuteScope::Repo(repo)),
                            Err(why) => return Ok(Err(why)),
                        }
                    }
                };
                let ended = store.end_mutes(&chan, scope.as_ref(), now)?;
                let after = store.mutes(Some(&chan))?;
                let summarised = store
                    .outbox(&chan)?
                    .rows
                    .iter()
                    .filter(|r| {
                        mute::fate(&r.build.key.repo, r.enqueued_ms, &after, now)
                            == Fate::Summarised
                    })
                    .count();
                let still: Vec<Mute> = after
                    .into_iter()
                    .filter(|m| {
                        m.active(now)
                            && match &scope {
                                None => true,
                                Some(MuteScope::Repo(repo)) => m.scope.covers(repo),
                                Some(MuteScope::All) => false,
                            }
                    })
                    .collect();
                Ok::<_, StoreError>(Ok((ended, summarised, still)))
            })
            .await;
        match ended {
            Ok(Ok((ended, summarised, still))) => {
                tracing::info!(%channel, ended = ended.len(), summarised, "unmuted");
                self.wakeups.wake(channel);
                commands::unmuted(channel, &ended, summarised, &still)
            }
            Ok(Err(why)) => commands::failed("Nothing unmuted", &why),
            Err(err) => {
                tracing::error!(%err, %channel, "cannot end a mute");
                commands::failed(
                    "Nothing unmuted",
                    "bbzoom could not record the change (see its log)",
                )
            }
        }
    }

    /// Sends one queued answer, retrying while Zoom fails transiently and the answer is younger
    /// than `answer_max_age`; `false` if shutdown came first (it stays queued).
    async fn send_answer(&self, answer: &ChatAnswer, shutdown: &mut Shutdown) -> bool {
        for attempt in 0u32.. {
            let err = match (self.chatbot)
                .send(&answer.to_jid, &answer.content, Some(&answer.thread))
                .await
            {
                Ok(_) => return true,
                Err(err) => err,
            };
            let age_ms = self.clock.now_ms().saturating_sub(answer.queued_ms);
            let young = u128::try_from(age_ms).unwrap_or(0) < self.answer_max_age.as_millis();
            match err.class {
                ErrorClass::Transient { retry_after } if young => {
                    let backoff = self.answer_backoff;
                    let wait = retry_after.unwrap_or_else(|| backoff.delay(attempt));
                    tracing::warn!(%err, attempt, "the answer to a chat command failed; will retry");
                    tokio::select! {
                        _ = shutdown.wait() => return false,
                        () = tokio::time::sleep(wait.min(backoff.max)) => {}
                    }
                }
                _ => {
                    tracing::error!(%err, attempt, "the answer to a chat command could not be delivered; giving it up");
                    return true;
                }
            }
        }
        true
    }
}

/// Sends the queued answers, oldest first, until `shutdown`: those left from before a restart
/// first, then each as it is queued. An answer leaves the store once sent or given up.
async fn send_answers(ctx: Arc<ChatContext>, mut shutdown: Shutdown) {
    loop {
        match ctx.store.blocking(Store::pending_answers).await {
            Ok(pending) => {
                for (id, answer) in pending {
                    if !ctx.send_answer(&answer, &mut shutdown).await {
                        return;
                    }
                    if let Err(err) = ctx.store.blocking(move |s| s.answer_done(&id)).await {
                        tracing::error!(%err, "cannot record a chat answer as sent; it may be sent again");
                    }
                }
            }
            Err(err) => tracing::error!(%err, "cannot read the queued chat answers"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            () = ctx.answers_queued.notified() => {}
        }
    }
}

/// The repository `typed` names among `channel`'s subscriptions (and `also`): a URL in any form
/// the configuration takes (read by the same code), or `workspace/repo` as `list` shows it.
fn resolve(config: &Config, channel: &str, typed: &str, also: &[RepoId]) -> Result<RepoId, String> {
    let mut mine: Vec<&RepoId> = config
        .subscriptions
        .iter()
        .filter(|s| s.channels.iter().any(|c| c == channel))
        .map(|s| &s.repo)
        .chain(also)
        .collect();
    mine.sort();
    mine.dedup();
    let subscribed = || {
        let names: Vec<String> = mine.iter().map(ToString::to_string).collect();
        if names.is_empty() {
            format!("{channel} has no subscriptions")
        } else {
            format!("{channel} has {}", names.join(", "))
        }
    };
    let shown = crate::render::clean(typed, 100);
    if typed.contains(':') || typed.contains('@') {
        let repo = crate::config::edit::repository_of(config, typed)?;
        return if mine.contains(&&repo) {
            Ok(repo)
        } else {
            Err(format!(
                "{repo} is not subscribed in {channel} ({})",
                subscribed()
            ))
        };
    }
    let found: Vec<&&RepoId> = mine
        .iter()
        .filter(|r| r.to_string().eq_ignore_ascii_case(typed))
        .collect();
    match found.as_slice() {
        [one] => Ok((**one).clone()),
        [] => Err(format!(
            "{shown} is not a repository subscribed in {channel} ({}); name it as workspace/repo \
             or by its URL",
            subscribed()
        )),
        _ => Err(format!(
            "{shown} is on several Bitbucket instances; give its URL to say which"
        )),
    }
}

/// `channel`'s mutes in force at `now_ms` and the cards they hold, for `list` and `status`.
fn muted(store: &Store, channel: &str, now_ms: i64) -> Muted {
    let read = || -> Result<Muted, StoreError> {
        let mutes: Vec<Mute> = store
            .mutes(Some(channel))?
            .into_iter()
            .filter(|m| m.active(now_ms))
            .collect();
        let held = if mutes.is_empty() {
            0
        } else {
            store
                .outbox(channel)?
                .rows
                .iter()
                .filter(|r| {
                    mute::fate(&r.build.key.repo, r.enqueued_ms, &mutes, now_ms) == Fate::Held
                })
                .count()
        };
        Ok(Muted { mutes, held })
    };
    read().unwrap_or_else(|err| {
        tracing::error!(%err, channel, "cannot read a channel's mutes");
        Muted::default()
    })
}

/// Each lane of `repo` as "branch · job", and whether it is failing.
fn lanes(store: &Store, repo: &RepoId) -> Vec<(String, bool)> {
    store.repo_summary(repo).map_or_else(
        |err| {
            tracing::error!(%repo, %err, "cannot read a repository's lanes");
            Vec::new()
        },
        |summary| {
            summary
                .lanes
                .into_iter()
                .map(|(lane, health)| (lane.to_string(), health == Health::Failing))
                .collect()
        },
    )
}
