//! The running daemon: one task per credential (its scheduler) and per channel (its delivery
//! worker), owned by a supervisor that applies a configuration, reloads it in place, answers
//! the control socket and keeps systemd informed.
//!
//! A reload builds everything from the new files first; any error is reported and the running
//! configuration stays. Then it changes only what changed: a credential's scheduler gets its
//! new roster and keeps its state (each repository still subscribed keeps its next poll); a
//! scheduler whose account changed, or a worker whose channel changed, is stopped, awaited and
//! started anew, so no two workers ever deliver one channel at once. Schedulers that both hold
//! a repository for a while (it moved between credentials) take turns on it
//! ([`PollTurns`]), so no two polls of it run at once either.

use super::watched::{self, TaskHealth};
use super::{Bitbucket, DaemonError, Tuning, Zoom};
use crate::bitbucket::Account;
use crate::chat::{AdminRequest, ChatContext, ConnectionLog, admin};
use crate::config::Config;
use crate::control::{
    Answer, CredentialStatus, Envelope, Finding, LastPoll, ReloadRecord, ReloadSummary, Reply,
    Request, StatusReport,
};
use crate::credentials::Credentials;
use crate::delivery::{self, DeliveryContext};
use crate::domain::{RepoId, SourceKind};
use crate::metrics::Metrics;
use crate::poller::{PollContext, PollTurns};
use crate::scheduler::{self, PollLog, Roster};
use crate::sd_notify::Notifier;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::store::Store;
use crate::wakeups::Wakeups;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the daemon listens to besides shutdown: the binary's control socket and signals.
pub struct Control {
    /// Requests (from the control socket, or SIGHUP as a reload), each with its reply's way.
    pub requests: mpsc::Receiver<Envelope>,
    /// Tells systemd how the daemon is doing; does nothing outside systemd.
    pub notifier: Notifier,
}

/// Runs until `shutdown` triggers, then lets every task finish what it has under way. No
/// reloads: for the demo and tests that drive the daemon in-process.
pub async fn run(
    config: &Config,
    credentials: &Credentials,
    store: Store,
    tuning: Tuning,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Result<(), DaemonError> {
    let (_no_sender, requests) = mpsc::channel(1);
    let control = Control {
        requests,
        notifier: Notifier::default(),
    };
    run_with_control(
        config,
        credentials,
        store,
        tuning,
        metrics,
        control,
        shutdown,
    )
    .await
}

/// As [`run`], also answering `control`'s requests (status, reload, dead letters).
pub async fn run_with_control(
    config: &Config,
    credentials: &Credentials,
    store: Store,
    tuning: Tuning,
    metrics: Arc<Metrics>,
    mut control: Control,
    mut shutdown: Shutdown,
) -> Result<(), DaemonError> {
    let bitbucket = Bitbucket::new(config, credentials, &tuning)?;
    let zoom = Zoom::new(config, credentials, tuning.webhook_pace)?;
    let started_ms = tuning.clock.now_ms();
    // Subscriptions changed in the chat: carried out here, one at a time like every reload.
    let (admin, mut admin_requests) = mpsc::channel(crate::chat::ADMIN_QUEUE);
    let mut supervisor = Supervisor {
        config: config.clone(),
        bitbucket,
        zoom,
        store: store.clone(),
        tuning,
        metrics,
        wakeups: Arc::new(Wakeups::default()),
        polls: Arc::new(PollLog::default()),
        turns: Arc::new(PollTurns::default()),
        shutdown: shutdown.clone(),
        schedulers: BTreeMap::new(),
        workers: BTreeMap::new(),
        started_ms,
        last_reload: None,
        health: Arc::new(TaskHealth::default()),
        events: None,
        chat_config: watch::channel(Arc::new(config.clone())).0,
        admin,
        services: watch::channel(Arc::default()).0,
        meeting_turns: Arc::default(),
    };
    supervisor.apply(&mut ReloadSummary::default(), None).await;
    // A child of the daemon's shutdown, so that a daemon stopping on a failure stops it too.
    let (stop_housekeeping, housekeeping_shutdown) = shutdown.child();
    let housekeeping = {
        let (store, shutdown) = (store.clone(), housekeeping_shutdown);
        let (retention, clock) = (
            supervisor.tuning.build_retention,
            supervisor.tuning.clock.clone(),
        );
        tokio::spawn(async move {
            let daily = crate::housekeeping::DAILY;
            if let Err(err) =
                crate::housekeeping::run(store, daily, retention, clock, shutdown).await
            {
                tracing::error!(%err, "the housekeeping scheduler failed; old builds are not pruned");
            }
        })
    };
    tracing::info!(
        subscriptions = config.subscriptions.len(),
        credentials = supervisor.schedulers.len(),
        channels = supervisor.workers.len(),
        "bbzoom running"
    );
    let notifier = control.notifier;
    // A stop asked for during start-up: systemd hears STOPPING, never READY.
    if !shutdown.is_triggered() {
        notifier.ready();
    }
    notifier.status(&supervisor.status_line());
    let mut tick = tokio::time::interval(
        notifier
            .watchdog_interval()
            .unwrap_or(supervisor.tuning.status_every),
    );
    let mut failure = None;
    loop {
        // A task given up on: the daemon can no longer do its job. It stops rather than keep
        // the watchdog fed, and says why (a status of its own: see `cli::exit_code`).
        if let Some((task, cause)) = supervisor.health.failing() {
            failure = Some(DaemonError::TaskFailing { task, cause });
            break;
        }
        let failures = supervisor.tuning.store_failures;
        if let Some(cause) = supervisor.store.failing(failures) {
            tracing::error!(failures, %cause, "the store keeps failing; bbzoom stops, as it can no longer record or deliver anything");
            failure = Some(DaemonError::StoreFailing { failures, cause });
            break;
        }
        let store = supervisor.store.clone();
        tokio::select! {
            _ = shutdown.wait() => break,
            () = store.failure_noted() => {}
            Some((request, reply)) = control.requests.recv() => {
                if matches!(request, Request::Reload) {
                    notifier.reloading();
                }
                // A reload may wait for tasks to finish what they have under way: the
                // watchdog keeps hearing from the loop meanwhile.
                let answer = ticking(supervisor.answer(request), &mut tick, &notifier).await;
                let _ = reply.send(answer);
                notifier.ready();
                notifier.status(&supervisor.status_line());
            }
            Some(request) = admin_requests.recv() => {
                notifier.reloading();
                ticking(supervisor.chat_admin(request), &mut tick, &notifier).await;
                notifier.ready();
                notifier.status(&supervisor.status_line());
            }
            _ = tick.tick() => {
                if supervisor.health.failing().is_some()
                    || supervisor.store.failing(supervisor.tuning.store_failures).is_some()
                {
                    continue;
                }
                // The supervisor answers and every task runs: tell the watchdog.
                notifier.watchdog();
                notifier.status(&supervisor.status_line());
            }
        }
    }
    // Requests still queued, and any that come now, are answered "bbzoom is stopping".
    drop(control.requests);
    notifier.stopping();
    notifier.status("stopping: finishing deliveries and polls under way");
    // Every task's shutdown is a child of the daemon's: they are all stopping. The watchdog
    // hears from us until they are done, so a slow last delivery is not taken for a hang.
    let tasks: Vec<Task> = (supervisor.schedulers.into_values().map(|s| s.task))
        .chain(supervisor.workers.into_values().map(|w| w.task))
        .chain(supervisor.events.map(|e| e.task))
        .collect();
    let drained = async {
        // Stopped by the daemon's shutdown, or here when a task or the store failed.
        Task::stop_all(tasks).await;
        stop_housekeeping.trigger();
        let _ = housekeeping.await;
    };
    tokio::pin!(drained);
    loop {
        tokio::select! {
            () = &mut drained => break,
            _ = tick.tick() => notifier.watchdog(),
        }
    }
    if let Err(err) = store.blocking(Store::flush).await {
        tracing::error!(%err, "final store flush failed");
    }
    match failure {
        Some(failure) => Err(failure),
        None => {
            tracing::info!("bbzoom stopped");
            Ok(())
        }
    }
}

/// Runs `work` while the watchdog keeps hearing from the loop (`tick`): a reload may wait for
/// tasks to finish what they have under way.
async fn ticking<T>(
    work: impl std::future::Future<Output = T>,
    tick: &mut tokio::time::Interval,
    notifier: &Notifier,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => notifier.watchdog(),
        }
    }
}

/// A task the supervisor can stop alone.
struct Task {
    stop: ShutdownTrigger,
    handle: JoinHandle<()>,
}

impl Task {
    /// Stops them all at once and waits until each finished what it had under way: a reload
    /// costs the slowest, not the sum.
    async fn stop_all(tasks: Vec<Task>) {
        for task in &tasks {
            task.stop.trigger();
        }
        for task in tasks {
            let _ = task.handle.await;
        }
    }
}

/// One credential's scheduler, and how to hand it a new roster.
struct SchedulerTask {
    /// The account it polls through: a reload that replaces it restarts the scheduler.
    account: Arc<Account>,
    roster: watch::Sender<Roster>,
    task: Task,
}

/// The `[zoom.events]` connection, what it was made from, and what `status` shows of it.
struct EventsTask {
    spec: super::EventsSpec,
    log: Arc<ConnectionLog>,
    task: Task,
}

/// One channel's delivery worker, and what it was made from.
struct WorkerTask {
    spec: super::RouteSpec,
    task: Task,
}

struct Supervisor {
    /// The configuration running now (the last good one).
    config: Config,
    bitbucket: Bitbucket,
    zoom: Zoom,
    store: Store,
    tuning: Tuning,
    metrics: Arc<Metrics>,
    wakeups: Arc<Wakeups>,
    polls: Arc<PollLog>,
    /// Shared by every scheduler, old and new: one poll of a repository at a time.
    turns: Arc<PollTurns>,
    /// The daemon's shutdown; every task's is a child of it.
    shutdown: Shutdown,
    schedulers: BTreeMap<String, SchedulerTask>,
    workers: BTreeMap<String, WorkerTask>,
    started_ms: i64,
    last_reload: Option<ReloadRecord>,
    /// The schedulers' and workers' restarts, and the one given up on.
    health: Arc<TaskHealth>,
    /// The event connection (chat commands), when `[zoom.events]` is configured.
    events: Option<EventsTask>,
    /// The configuration running now, as chat commands read it (a reload replaces it).
    chat_config: watch::Sender<Arc<Config>>,
    /// Where chat commands send subscription changes, which `chat_admin` carries out.
    admin: mpsc::Sender<AdminRequest>,
    /// What delivery workers use besides their channel's client (a reload replaces it).
    services: watch::Sender<Arc<delivery::Services>>,
    /// One worker at a time creates a lane's war room, across reloads.
    meeting_turns: Arc<crate::war_room::MeetingTurns>,
}

impl Supervisor {
    async fn answer(&mut self, request: Request) -> Reply {
        match request {
            Request::Status => Ok(Answer::Status(Box::new(self.status()))),
            Request::Reload => self.reload_recorded().await.map(Answer::Reloaded),
            Request::DeadLetters { action } => {
                let report = crate::control::dead_letters(&self.store, &action)?;
                // Retried letters are back in their outboxes: let the workers look.
                for channel in self.workers.keys() {
                    self.wakeups.wake(channel);
                }
                Ok(Answer::DeadLetters(report))
            }
        }
    }

    /// [`Supervisor::reload`], logged and kept for `status`.
    async fn reload_recorded(&mut self) -> Result<ReloadSummary, String> {
        let outcome = self.reload().await;
        match &outcome {
            Ok(summary) => tracing::info!(?summary, "configuration reloaded"),
            Err(err) => tracing::error!(
                %err,
                "reload refused; the previous configuration keeps running"
            ),
        }
        self.last_reload = Some(ReloadRecord {
            at_ms: self.tuning.clock.now_ms(),
            outcome: outcome.clone(),
        });
        outcome
    }

    /// Carries out a change of the chat's subscriptions an admin asked for in a channel: the
    /// file edited and checked ([`admin::plan`]), written, and applied by a reload; if the
    /// reload refuses it, the file is put back. The answer goes back to the chat.
    async fn chat_admin(&mut self, request: AdminRequest) {
        let AdminRequest {
            command,
            channel,
            sender,
            answer,
        } = request;
        let now = self.tuning.clock.now_ms();
        let who = crate::terminal::shown(&sender);
        let card = match admin::plan(&self.config.source, &command, &channel, &sender, now) {
            Err(card) => {
                tracing::info!(%channel, sender = %who, ?command, "chat subscription change not made");
                *card
            }
            Ok(plan) => match admin::write(&plan.file, &plan.after) {
                Err(err) => {
                    tracing::error!(file = %plan.file.display(), %err, "cannot write the chat's subscriptions file");
                    admin::not_written(&plan, &err)
                }
                Ok(()) => {
                    tracing::info!(%channel, sender = %who, ?command, file = %plan.file.display(), "chat subscriptions changed by an admin; reloading");
                    match self.reload_recorded().await {
                        Ok(summary) => admin::done(&plan, &summary),
                        Err(why) => {
                            let restored = admin::restore(&plan);
                            if let Err(err) = &restored {
                                tracing::error!(file = %plan.file.display(), %err, "cannot put the chat's subscriptions file back after a refused reload");
                            }
                            admin::not_applied(&plan, &why, restored)
                        }
                    }
                }
            },
        };
        let _ = answer.send(card);
    }

    /// Reads the files again and applies them, or says why not and changes nothing.
    async fn reload(&mut self) -> Result<ReloadSummary, String> {
        let config = Config::load(&self.config.source).map_err(|e| e.to_string())?;
        let credentials = Credentials::load(
            &config.daemon.credentials_file,
            &config.daemon.identity_file,
        )
        .map_err(|e| e.to_string())?;
        let bitbucket =
            Bitbucket::reusing(&config, &credentials, &self.tuning, Some(&self.bitbucket))
                .map_err(|e| e.to_string())?;
        let zoom = Zoom::reusing(
            &config,
            &credentials,
            self.tuning.webhook_pace,
            Some(&self.zoom),
        )
        .map_err(|e| e.to_string())?;

        let urls = |config: &Config| -> BTreeMap<_, _> {
            config
                .watches
                .iter()
                .map(|w| {
                    (
                        (w.repo.clone(), w.source),
                        format!("{} ({})", w.url, w.source.name()),
                    )
                })
                .collect()
        };
        let (before, after) = (urls(&self.config), urls(&config));
        let mut summary = ReloadSummary {
            added: after
                .iter()
                .filter(|(repo, _)| !before.contains_key(*repo))
                .map(|(_, url)| url.clone())
                .collect(),
            removed: before
                .iter()
                .filter(|(repo, _)| !after.contains_key(*repo))
                .map(|(_, url)| url.clone())
                .collect(),
            ..ReloadSummary::default()
        };
        let (old, new) = (&self.config.daemon, &config.daemon);
        for (key, changed) in [
            ("[daemon] state_dir", old.state_dir != new.state_dir),
            (
                "[daemon] control_socket",
                old.control_socket != new.control_socket,
            ),
            ("[daemon] metrics", old.metrics != new.metrics),
        ] {
            if changed {
                summary.needs_restart.push(key.to_owned());
            }
        }
        let before = before.into_keys().collect();
        self.config = config;
        self.bitbucket = bitbucket;
        self.zoom = zoom;
        self.apply(&mut summary, Some(&before)).await;
        Ok(summary)
    }

    /// Makes the tasks match `self.config`, `self.bitbucket` and `self.zoom`: see the module
    /// doc. Records restarts in `summary`. `previous` holds the watches of the configuration
    /// replaced (`None` at the start).
    async fn apply(
        &mut self,
        summary: &mut ReloadSummary,
        previous: Option<&BTreeSet<(RepoId, SourceKind)>>,
    ) {
        // Watching begins now for every new repository, whenever its first poll comes: builds
        // created from now on are announced even if the budget takes an hour to baseline them.
        let started = self.tuning.clock.now_ms();
        let watched: BTreeSet<(RepoId, SourceKind)> = self
            .bitbucket
            .watches
            .iter()
            .map(|(w, _)| (w.repo.clone(), w.source))
            .collect();
        // A watch that comes back after it was not polled is baselined rather than replayed:
        // at the start (nothing polls yet) every cursor not watched is forgotten; at a reload,
        // those of the watches new to it, which no scheduler has been polling (one that
        // stopped polling a removed watch could still commit to it in the meantime).
        let forgotten = match previous {
            None => {
                let watched = watched.clone();
                self.store
                    .blocking(move |store| store.forget_unwatched(&watched))
                    .await
            }
            Some(before) => {
                let fresh: BTreeSet<_> = watched.difference(before).cloned().collect();
                self.store.blocking(move |store| store.forget(&fresh)).await
            }
        };
        match forgotten {
            Ok(0) => {}
            Ok(forgotten) => {
                tracing::info!(forgotten, "forgot the cursors of what was not polled")
            }
            Err(err) => tracing::error!(%err, "cannot forget the cursors of what was not polled"),
        }
        let mut rosters: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for (watch, source) in &self.bitbucket.watches {
            if let Err(err) = self
                .store
                .watching_since(&watch.repo, watch.source, started)
            {
                tracing::error!(repo = %watch.repo, %err, "cannot record when watching began");
            }
            rosters
                .entry(watch.credential.clone())
                .or_default()
                .push((watch.clone(), source.clone()));
        }

        self.polls.retain(|key| watched.contains(key));
        self.turns
            .retain(|repo| watched.iter().any(|(r, _)| r == repo));
        let mut stopping = Vec::new();
        let running: Vec<String> = self.schedulers.keys().cloned().collect();
        for name in running {
            let account = self.bitbucket.accounts.get(&name);
            let same = account.is_some_and(|a| Arc::ptr_eq(a, &self.schedulers[&name].account));
            if !same {
                if account.is_some() {
                    summary.restarted_credentials.push(name.clone());
                }
                stopping.push(self.schedulers.remove(&name).expect("listed").task);
            }
        }
        let running: Vec<String> = self.workers.keys().cloned().collect();
        for name in running {
            let spec = self.zoom.route_specs.get(&name);
            if spec != Some(&self.workers[&name].spec) {
                if spec.is_some() {
                    summary.restarted_channels.push(name.clone());
                }
                stopping.push(self.workers.remove(&name).expect("listed").task);
            }
        }
        let events_spec = self.zoom.events.as_ref().map(|(_, spec)| spec);
        if self.events.as_ref().map(|e| &e.spec) != events_spec
            && let Some(running) = self.events.take()
        {
            if events_spec.is_some() {
                summary.restarted_channels.push("[zoom.events]".to_owned());
            }
            stopping.push(running.task);
        }
        self.chat_config.send_replace(Arc::new(self.config.clone()));
        self.services
            .send_replace(Arc::new(self.zoom.services(&self.config, &self.tuning)));
        // Every replaced task is gone before any successor starts (invariant: one task per
        // credential and per channel; one connection per event subscription).
        Task::stop_all(stopping).await;
        if self.events.is_none() {
            self.start_events();
        }
        for (name, watches) in rosters {
            let roster = Roster {
                watches,
                targets: self.config.polling,
            };
            if let Some(running) = self.schedulers.get(&name) {
                running.roster.send_replace(roster);
                continue;
            }
            let account = self.bitbucket.accounts[&name].clone();
            let (sender, receiver) = watch::channel(roster);
            let (stop, shutdown) = self.shutdown.child();
            let poll = PollContext {
                store: self.store.clone(),
                wakeups: self.wakeups.clone(),
                metrics: self.metrics.clone(),
                clock: self.tuning.clock.clone(),
                calendar: self.tuning.calendar.clone(),
                polling: self.turns.clone(),
                settle: self.config.polling.settle,
            };
            let timing = scheduler::Timing {
                stop_grace: self.tuning.stop_grace,
                history: self.tuning.sweep_history,
                schedules_every: self.tuning.schedules_every,
            };
            let (scheduled, polls) = (account.clone(), self.polls.clone());
            let task_shutdown = shutdown.clone();
            let handle = self.watch(format!("scheduler {name}"), task_shutdown, move || {
                scheduler::run(
                    poll.clone(),
                    receiver.clone(),
                    scheduled.clone(),
                    polls.clone(),
                    timing,
                    shutdown.clone(),
                )
            });
            self.schedulers.insert(
                name,
                SchedulerTask {
                    account,
                    roster: sender,
                    task: Task { stop, handle },
                },
            );
        }

        let deliver = DeliveryContext {
            store: self.store.clone(),
            wakeups: self.wakeups.clone(),
            metrics: self.metrics.clone(),
            clock: self.tuning.clock.clone(),
            backoff: self.tuning.delivery_backoff,
            max_age: self.config.zoom.delivery.max_age,
            fold_after: self.config.zoom.delivery.fold_after,
            channel_pace: self.tuning.channel_pace.clone(),
            services: self.services.subscribe(),
            meeting_turns: self.meeting_turns.clone(),
        };
        for route in &self.zoom.routes {
            if self.workers.contains_key(&route.channel) {
                continue;
            }
            let (stop, shutdown) = self.shutdown.child();
            let (name, task_shutdown) = (format!("delivery {}", route.channel), shutdown.clone());
            let (deliver, delivered) = (deliver.clone(), route.clone());
            let handle = self.watch(name, task_shutdown, move || {
                delivery::run(deliver.clone(), delivered.clone(), shutdown.clone())
            });
            self.workers.insert(
                route.channel.clone(),
                WorkerTask {
                    spec: self.zoom.route_specs[&route.channel].clone(),
                    task: Task { stop, handle },
                },
            );
        }
    }

    /// Starts the event connection of `[zoom.events]`, if configured.
    fn start_events(&mut self) {
        // The deliveries' directory: one look-up of a user serves both.
        let directory = self.services.borrow().directory.clone();
        let (Some((app, spec)), Some(chatbot), Some(directory)) =
            (&self.zoom.events, &self.zoom.chatbot, directory)
        else {
            return;
        };
        let channels = (spec.channels.iter())
            .filter_map(|channel| match &channel.destination {
                crate::config::Destination::Chatbot { to_jid } => {
                    let id = to_jid.split_once('@').map_or(to_jid.as_str(), |(id, _)| id);
                    Some((id.to_owned(), (channel.name.clone(), to_jid.clone())))
                }
                crate::config::Destination::Webhook { .. }
                | crate::config::Destination::Direct { .. } => None,
            })
            .collect();
        let log = Arc::new(ConnectionLog::new(&spec.config.subscription_id));
        let context = Arc::new(ChatContext {
            app: app.clone(),
            directory,
            events: spec.config.clone(),
            channels,
            chatbot: chatbot.clone(),
            config: self.chat_config.subscribe(),
            store: self.store.clone(),
            clock: self.tuning.clock.clone(),
            reconnect: self.tuning.events_reconnect,
            answer_backoff: self.tuning.delivery_backoff,
            answer_max_age: self.config.zoom.delivery.max_age,
            answers_queued: Arc::new(tokio::sync::Notify::new()),
            command_rate: self.tuning.command_rate,
            log: log.clone(),
            wakeups: self.wakeups.clone(),
            typed_time: self.tuning.typed_time,
            admin: self.admin.clone(),
        });
        let (stop, shutdown) = self.shutdown.child();
        let handle = self.watch("events".to_owned(), shutdown.clone(), move || {
            crate::chat::run(context.clone(), shutdown.clone())
        });
        self.events = Some(EventsTask {
            spec: spec.clone(),
            log,
            task: Task { stop, handle },
        });
    }

    /// Runs what `start` makes as a watched task (see [`watched`]).
    fn watch<F, Fut>(&self, name: String, shutdown: Shutdown, start: F) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        watched::spawn(
            name,
            self.health.clone(),
            self.tuning.task_restarts,
            self.tuning.clock.clone(),
            shutdown,
            start,
        )
    }

    fn status(&self) -> StatusReport {
        let mut report = StatusReport::from_store(&self.config, &self.store, |watch| {
            let last = self.polls.last(&(watch.repo.clone(), watch.source))?;
            Some(LastPoll {
                at_ms: last.at_ms,
                outcome: match last.outcome {
                    Ok(transitions) => format!("ok, {transitions} change(s)"),
                    Err(err) => format!("failed: {}", crate::terminal::shown(&err)),
                },
            })
        });
        report.running = true;
        report.started_ms = Some(self.started_ms);
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        report.finding = Some(Finding {
            scans: count(&self.metrics.scans),
            scan_errors: count(&self.metrics.scan_errors),
            hints: count(&self.metrics.scan_hints),
            by_scan: count(&self.metrics.found_by_scan),
            by_sweep: count(&self.metrics.found_by_sweep),
            following: count(&self.metrics.found_following),
            by_schedule: count(&self.metrics.found_by_schedule),
        });
        report.last_reload = self.last_reload.clone();
        report.task_restarts = self.health.restarts();
        report.events = self.events.iter().map(|e| e.log.now()).collect();
        report.credentials = self
            .bitbucket
            .accounts
            .iter()
            .map(|(name, account)| {
                let budget = account.budget_now();
                CredentialStatus {
                    name: name.clone(),
                    requests_in_window: account.requests_in_window(),
                    budget: format!(
                        "{} per {}s",
                        budget.limit.requests,
                        budget.limit.per.as_secs()
                    ),
                    budget_source: budget.to_string(),
                    budget_limit: u64::from(budget.limit.requests),
                    paused_for_secs: account
                        .paused_until()
                        .map(|until| until.duration_since(tokio::time::Instant::now()).as_secs()),
                    broken: account.broken(),
                    requests_total: count(&account.spent.requests),
                    rate_limited_total: count(&account.spent.rate_limited),
                    polls_total: count(&account.spent.polls),
                }
            })
            .collect();
        report
    }

    /// One line for `systemctl status`.
    fn status_line(&self) -> String {
        let spent: usize = self
            .bitbucket
            .accounts
            .values()
            .map(|a| a.requests_in_window())
            .sum();
        format!(
            "polling {} repository source(s) with {} credential(s), {} requests within the budgets' windows; {} card(s) waiting",
            self.config.watches.len(),
            self.bitbucket.accounts.len(),
            spent,
            self.store.outbox_len(),
        )
    }
}
