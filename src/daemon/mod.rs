//! The daemon: builds one account per Bitbucket credential and the clients that speak through
//! them; its [`supervisor`] starts one scheduler per credential (each polling its repositories
//! within its budget) and one delivery worker per channel, changes them in place on reload, and
//! stops them all on shutdown.
//!
//! Building is separate from running so a reload can build everything from the new files
//! first (any error leaves the running configuration untouched) and reuse what did not change:
//! an account whose credential and budget are the same keeps its limiter, pause and counts; a
//! chatbot client whose app is the same keeps its token.

mod supervisor;
pub(crate) mod watched;

pub use supervisor::{Control, run, run_with_control};
pub use watched::TaskRestarts;

use crate::clock::{Calendar, Clock, SystemCalendar, SystemClock};

use crate::bitbucket::{Account, Auth, CloudClient, DataCenterClient, OAuthConsumer, RetryPolicy};
use crate::config::{
    BudgetSpec, ChatbotConfig, Config, Destination, EventsConfig, RateLimit, SourceKind, Watch,
};
use crate::credentials::{Credential, Credentials, Role};
use crate::delivery::{Route, Sender, Services};
use crate::domain::CLOUD;
use crate::http;
use crate::poller::Source;
use crate::retry::Backoff;
use crate::war_room::{MeetingRetry, WarRooms};
use crate::zoom::account::{AccountApi, Directory};
use crate::zoom::events::ServerToServerApp;
use crate::zoom::{AccountGate, AppCredentials, ChatbotClient, ChatbotIdentity, WebhookClient};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Delays that tests shorten, and the clock records are stamped by; the defaults suit
/// production.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The wall clock (a test may drive its own).
    pub(crate) clock: Arc<dyn Clock>,
    /// Bitbucket's calendar, which Pipelines schedules fire by: the wall clock, or a
    /// simulator's, which runs at its speed (see [`Tuning::with_calendar`]).
    pub(crate) calendar: Arc<dyn Calendar>,
    pub(crate) bitbucket_retry: RetryPolicy,
    /// Between delivery attempts of one outbox row.
    pub(crate) delivery_backoff: Backoff,
    /// The most messages one channel is sent per window (Zoom's per-channel limits).
    pub(crate) channel_pace: Vec<RateLimit>,
    /// The most messages one Incoming Webhook connection is sent.
    pub(crate) webhook_pace: RateLimit,
    /// How long a stopping scheduler waits for its polls under way before it abandons them
    /// (to be made again later): well inside the unit's `TimeoutStopSec`.
    pub(crate) stop_grace: Duration,
    /// How often the systemd status line is refreshed when no watchdog sets the pace.
    pub(crate) status_every: Duration,
    /// How long a repository's builds take to count half as much for how often it is swept
    /// when idle (a week: "ran 50 builds last week").
    pub(crate) sweep_history: Duration,
    /// How often a repository's Pipelines schedules are read again (they change seldom; a
    /// scheduled run seen while none is known has them read at the next poll).
    pub(crate) schedules_every: Duration,
    /// How long a finished build is remembered (to notice a rerun of a recent one).
    pub(crate) build_retention: Duration,
    /// An hour of Bitbucket's on the daemon's clock: the window of the default budgets, which
    /// are stated per hour (a budget the admin wrote keeps its own window).
    pub(crate) hour: Duration,
    /// How a scheduler or delivery worker that ended unexpectedly is started again, and when
    /// it is given up on (the daemon then stops: it cannot do its job).
    pub(crate) task_restarts: watched::RestartPolicy,
    /// Between attempts to reconnect the event WebSocket (Zoom's guidance: capped at 30 s).
    pub(crate) events_reconnect: Backoff,
    /// Chat commands one person may send per window before being told to slow down.
    pub(crate) command_rate: RateLimit,
    /// How a span people type in the chat (a mute's length) runs on the daemon's clock: 1,
    /// or `1/speed` in a compressed run, where "mute 30m" lasts 30 simulated minutes.
    pub(crate) typed_time: f64,
    /// Uses of the store failing in a row (polls' commits, delivery steps) after which the
    /// daemon stops: it can no longer record or deliver anything (a count, not a time).
    pub(crate) store_failures: u32,
    /// How long what Zoom said of a user (the JID of a person `[people]` names by e-mail, the
    /// e-mail address of an admin listed by user id) is used before it is asked again.
    pub(crate) people_kept: Duration,
    /// How creating a war room is retried before its card goes out without the link.
    pub(crate) meeting_retry: MeetingRetry,
}

impl Tuning {
    /// The same tuning on another calendar: a simulator's, whose schedules fire on a calendar
    /// compressed as its time is (the calendar says how long a real wait is, so `compressed`
    /// leaves it alone).
    pub fn with_calendar(self, calendar: Arc<dyn Calendar>) -> Tuning {
        Tuning { calendar, ..self }
    }

    /// Every delay divided by `speed`: for runs against the simulator with compressed time.
    pub fn compressed(&self, speed: f64) -> Tuning {
        let scale = |backoff: Backoff| Backoff {
            base: backoff.base.div_f64(speed),
            max: backoff.max.div_f64(speed),
        };
        Tuning {
            clock: self.clock.clone(),
            calendar: self.calendar.clone(),
            bitbucket_retry: RetryPolicy {
                backoff: scale(self.bitbucket_retry.backoff),
                rate_limit_backoff: scale(self.bitbucket_retry.rate_limit_backoff),
                longest_pause: self.bitbucket_retry.longest_pause.div_f64(speed),
                ..self.bitbucket_retry
            },
            delivery_backoff: scale(self.delivery_backoff),
            channel_pace: self
                .channel_pace
                .iter()
                .map(|limit| limit.compressed(speed))
                .collect(),
            webhook_pace: self.webhook_pace.compressed(speed),
            stop_grace: self.stop_grace.div_f64(speed),
            status_every: self.status_every.div_f64(speed),
            sweep_history: self.sweep_history.div_f64(speed),
            schedules_every: self.schedules_every.div_f64(speed),
            build_retention: self.build_retention.div_f64(speed),
            hour: self.hour.div_f64(speed),
            task_restarts: watched::RestartPolicy {
                backoff: scale(self.task_restarts.backoff),
                window: self.task_restarts.window.div_f64(speed),
                ..self.task_restarts
            },
            events_reconnect: scale(self.events_reconnect),
            command_rate: self.command_rate.compressed(speed),
            typed_time: self.typed_time / speed,
            store_failures: self.store_failures,
            people_kept: self.people_kept.div_f64(speed),
            meeting_retry: MeetingRetry {
                backoff: scale(self.meeting_retry.backoff),
                longest_wait: self.meeting_retry.longest_wait.div_f64(speed),
                hold: self.meeting_retry.hold.div_f64(speed),
                ..self.meeting_retry
            },
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            clock: Arc::new(SystemClock),
            calendar: Arc::new(SystemCalendar),
            bitbucket_retry: RetryPolicy::default(),
            delivery_backoff: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(300),
            },
            channel_pace: crate::delivery::ZOOM_CHANNEL_PACE.to_vec(),
            webhook_pace: crate::delivery::WEBHOOK_PACE,
            stop_grace: Duration::from_secs(10),
            status_every: Duration::from_secs(30),
            sweep_history: Duration::from_secs(7 * 24 * 3600),
            schedules_every: Duration::from_secs(24 * 3600),
            build_retention: Duration::from_secs(30 * 24 * 3600),
            hour: crate::domain::HOUR,
            // Five restarts within ten minutes (backing off from 1 s to a minute) is a loop.
            task_restarts: watched::RestartPolicy {
                backoff: Backoff {
                    base: Duration::from_secs(1),
                    max: Duration::from_secs(60),
                },
                limit: 5,
                window: Duration::from_secs(600),
            },
            events_reconnect: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            // Five a minute: more than a person types, less than a script flooding a channel.
            command_rate: RateLimit {
                requests: 5,
                per: Duration::from_secs(60),
            },
            typed_time: 1.0,
            // Every poll and delivery step of every task failing, twenty times in a row: not a
            // passing hiccup (one success anywhere ends the streak).
            store_failures: 20,
            // A person's JID does not change; an hour bounds a stale one after a mix-up.
            people_kept: Duration::from_secs(3600),
            // Three tries, a wait of at most half a minute between two (a Retry-After beyond
            // that gives up at once), a minute in all: a card is held no longer for its war
            // room.
            meeting_retry: MeetingRetry {
                backoff: Backoff {
                    base: Duration::from_secs(2),
                    max: Duration::from_secs(10),
                },
                attempts: 3,
                longest_wait: Duration::from_secs(30),
                hold: Duration::from_secs(60),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "the task {task} kept failing (last: {cause}); bbzoom stopped, as it could no longer do its job: see the log above for each failure"
    )]
    TaskFailing { task: String, cause: String },
    #[error(
        "the store kept failing ({failures} uses in a row, last: {cause}); bbzoom stopped, as it could no longer record or deliver anything: free space or fix what the error names in the state directory, then start it again"
    )]
    StoreFailing { failures: u32, cause: String },
    #[error(
        "credential \"{name}\" (named by {used_by}) is not in the credentials file; store it with `bbzoom connect {} --name {name}`", .role.service()
    )]
    MissingCredential {
        name: String,
        used_by: String,
        role: Role,
    },
    #[error(
                "credential \"{name}\" (named by {used_by}) is a {found}, which cannot be used there: it takes {}; replace it with `bbzoom connect {} --name {name}`", .role.kinds(), .role.service()
    )]
    WrongCredential {
        name: String,
        used_by: String,
        found: &'static str,
        role: Role,
    },
}

/// The Bitbucket accounts a configuration needs, one per credential, and the sources of its
/// watches; shared by `run` and `bbzoom check --online`.
pub struct Bitbucket {
    pub accounts: BTreeMap<String, Arc<Account>>,
    /// Each watch (a repository and one of its sources) with the source that reads it, in
    /// configuration order.
    pub watches: Vec<(Watch, Source)>,
    /// What each account was made from, to tell on reload whether it can be kept.
    specs: BTreeMap<String, AccountSpec>,
}

/// Everything an [`Account`] is made from: on reload, an equal spec keeps the account.
#[derive(Clone, PartialEq)]
struct AccountSpec {
    credential: Credential,
    budget: BudgetSpec,
    on_cloud: bool,
    oauth_url: url::Url,
    request_timeout: Duration,
    retry: RetryPolicy,
}

impl Bitbucket {
    /// The accounts and sources of `config`, timed by `tuning` (its retries, and the hour
    /// a default budget is kept in).
    pub fn new(
        config: &Config,
        credentials: &Credentials,
        tuning: &Tuning,
    ) -> Result<Bitbucket, DaemonError> {
        Bitbucket::reusing(config, credentials, tuning, None)
    }

    /// As [`Bitbucket::new`], keeping `previous`' account of every credential whose spec is
    /// unchanged.
    fn reusing(
        config: &Config,
        credentials: &Credentials,
        tuning: &Tuning,
        previous: Option<&Bitbucket>,
    ) -> Result<Bitbucket, DaemonError> {
        let retry = tuning.bitbucket_retry;
        let http = http::client(config.daemon.request_timeout);
        let mut accounts: BTreeMap<String, Arc<Account>> = BTreeMap::new();
        let mut specs = BTreeMap::new();
        let mut watches = Vec::new();
        for watch in &config.watches {
            let name = &watch.credential;
            let on_cloud = watch.repo.instance == CLOUD;
            let used_by = format!("the subscription of {}", watch.url);
            let account = match accounts.get(name) {
                Some(account) => account.clone(),
                None => {
                    let auth = auth(config, credentials, name, on_cloud, &used_by, &http)?;
                    let spec = AccountSpec {
                        credential: credentials.get(name).expect("auth checked it").clone(),
                        budget: config.budget_for(name).in_hour(tuning.hour),
                        on_cloud,
                        oauth_url: config.bitbucket.oauth_url.clone(),
                        request_timeout: config.daemon.request_timeout,
                        retry,
                    };
                    let kept = previous
                        .filter(|p| p.specs.get(name) == Some(&spec))
                        .map(|p| p.accounts[name].clone());
                    let account = kept.unwrap_or_else(|| {
                        Arc::new(Account::new(
                            name.clone(),
                            http.clone(),
                            auth,
                            spec.budget,
                            retry,
                        ))
                    });
                    accounts.insert(name.clone(), account.clone());
                    specs.insert(name.clone(), spec);
                    account
                }
            };
            let source = if on_cloud {
                let client = Arc::new(CloudClient::new(
                    account,
                    config.bitbucket.api_url.clone(),
                    config.bitbucket.web_url.clone(),
                ));
                match watch.source {
                    SourceKind::Pipelines => Source::Pipelines(client),
                    SourceKind::Statuses => Source::CloudStatuses(client),
                }
            } else {
                let instance = &config.bitbucket.datacenter[&watch.repo.instance];
                Source::DataCenterStatuses(Arc::new(DataCenterClient::new(
                    account,
                    instance.url.clone(),
                )))
            };
            watches.push((watch.clone(), source));
        }
        Ok(Bitbucket {
            accounts,
            watches,
            specs,
        })
    }
}

/// The source `watch` is read with, through a fresh account of its credential: for the
/// one-off commands (`connect`'s live check, `preview`), which poll nothing on a schedule.
pub fn one_off_source(
    config: &Config,
    credentials: &Credentials,
    watch: &Watch,
) -> Result<Source, DaemonError> {
    let alone = Config {
        watches: vec![watch.clone()],
        ..config.clone()
    };
    let mut bitbucket = Bitbucket::new(&alone, credentials, &Tuning::default())?;
    Ok(bitbucket.watches.remove(0).1)
}

/// The request form of credential `name`, checked to fit where it is used.
fn auth(
    config: &Config,
    credentials: &Credentials,
    name: &str,
    on_cloud: bool,
    used_by: &str,
    http: &reqwest::Client,
) -> Result<Auth, DaemonError> {
    let role = if on_cloud {
        Role::Cloud
    } else {
        Role::DataCenter
    };
    Ok(match credential_for(credentials, name, role, used_by)? {
        Credential::BitbucketAccessToken { token } | Credential::DatacenterToken { token } => {
            Auth::Bearer(token.clone())
        }
        Credential::BitbucketOauthConsumer { key, secret } => Auth::OAuth(OAuthConsumer::new(
            http.clone(),
            config.bitbucket.oauth_url.clone(),
            key.clone(),
            secret.clone(),
        )),
        Credential::BitbucketApiToken { email, token } => Auth::Basic {
            user: email.clone(),
            password: token.clone(),
        },
        Credential::ZoomChatbot { .. }
        | Credential::ZoomWebhook { .. }
        | Credential::ZoomServerToServer { .. } => {
            unreachable!("credential_for gives only a Bitbucket credential here")
        }
    })
}

/// Credential `name`, which must fit `role`; the errors say who uses it and how to fix it.
fn credential_for<'a>(
    credentials: &'a Credentials,
    name: &str,
    role: Role,
    used_by: &str,
) -> Result<&'a Credential, DaemonError> {
    match credentials.get(name) {
        Some(credential) if role.fits(credential) => Ok(credential),
        Some(other) => Err(DaemonError::WrongCredential {
            name: name.to_owned(),
            used_by: used_by.to_owned(),
            found: other.kind(),
            role,
        }),
        None => Err(DaemonError::MissingCredential {
            name: name.to_owned(),
            used_by: used_by.to_owned(),
            role,
        }),
    }
}

/// The Zoom side: the chatbot client (when some channel uses it) and every channel's route.
pub struct Zoom {
    pub chatbot: Option<Arc<ChatbotClient>>,
    pub routes: Vec<Route>,
    /// What the chatbot client was made from, to tell on reload whether it can be kept.
    chatbot_spec: Option<ChatbotSpec>,
    /// What each route was made from: on reload, a channel whose spec changed gets a new worker.
    route_specs: BTreeMap<String, RouteSpec>,
    /// The Server-to-Server app of `[zoom.events]`, if configured, and what its connection is
    /// made from: on reload, a changed spec restarts the connection.
    pub(crate) events: Option<(Arc<ServerToServerApp>, EventsSpec)>,
    /// The account's REST calls (people's JIDs by e-mail address, war rooms), through the
    /// Server-to-Server app of `[zoom.events]`.
    pub(crate) account: Option<Arc<AccountApi>>,
}

impl Zoom {
    /// The Server-to-Server app of `[zoom.events]`, if configured.
    pub fn events_app(&self) -> Option<&Arc<ServerToServerApp>> {
        self.events.as_ref().map(|(app, _)| app)
    }

    /// What deliveries use besides their channel's client, for `config`, timed by `tuning`.
    pub(crate) fn services(&self, config: &Config, tuning: &Tuning) -> Services {
        let api = self.account.as_ref();
        Services {
            directory: api.map(|api| Arc::new(Directory::new(api.clone(), tuning.people_kept))),
            war_rooms: api
                .zip(config.zoom.meetings.as_ref())
                .map(|(api, meetings)| {
                    Arc::new(WarRooms::new(
                        api.clone(),
                        meetings.host.clone(),
                        tuning.meeting_retry,
                    ))
                }),
        }
    }
}

/// Everything the event connection is made from.
#[derive(Clone, PartialEq)]
pub(crate) struct EventsSpec {
    pub(crate) config: EventsConfig,
    credential: Option<Credential>,
    /// The chatbot answers go through.
    chatbot: Option<ChatbotSpec>,
    /// The command channels (name and JID).
    pub(crate) channels: Vec<crate::config::Channel>,
    oauth_url: url::Url,
    api_url: url::Url,
    request_timeout: Duration,
}

/// Everything a [`ChatbotClient`] is made from.
#[derive(Clone, PartialEq)]
struct ChatbotSpec {
    config: ChatbotConfig,
    credential: Option<Credential>,
    oauth_url: url::Url,
    api_url: url::Url,
    request_timeout: Duration,
}

/// Everything a channel's delivery worker is made from.
#[derive(Clone, PartialEq)]
struct RouteSpec {
    channel: crate::config::Channel,
    chatbot: Option<ChatbotSpec>,
    webhook_credential: Option<Credential>,
    delivery: crate::config::DeliveryConfig,
    request_timeout: Duration,
}

impl Zoom {
    /// The chatbot and a route per channel; each Incoming Webhook connection sends at most at
    /// `webhook_pace`.
    pub fn new(
        config: &Config,
        credentials: &Credentials,
        webhook_pace: RateLimit,
    ) -> Result<Zoom, DaemonError> {
        Zoom::reusing(config, credentials, webhook_pace, None)
    }

    /// As [`Zoom::new`], keeping `previous`' chatbot client if its spec is unchanged.
    fn reusing(
        config: &Config,
        credentials: &Credentials,
        webhook_pace: RateLimit,
        previous: Option<&Zoom>,
    ) -> Result<Zoom, DaemonError> {
        let http = http::client(config.daemon.request_timeout);
        let chatbot_spec = config.zoom.chatbot.as_ref().map(|bot| ChatbotSpec {
            config: bot.clone(),
            credential: credentials.get(&bot.credential).cloned(),
            oauth_url: config.zoom.oauth_url.clone(),
            api_url: config.zoom.api_url.clone(),
            request_timeout: config.daemon.request_timeout,
        });
        let kept = previous
            .filter(|p| p.chatbot_spec.is_some() && p.chatbot_spec == chatbot_spec)
            .and_then(|p| p.chatbot.clone());
        let chatbot = match (&config.zoom.chatbot, kept) {
            (Some(_), Some(client)) => Some(client),
            (Some(bot), None) => Some(Arc::new(chatbot_client(config, bot, credentials, &http)?)),
            (None, _) => None,
        };
        let mut routes = Vec::new();
        let mut route_specs = BTreeMap::new();
        // A channel of direct messages for each person who asked for them, sent by the
        // chatbot (none without one: a configuration made for a one-off check may lack it).
        let direct: Vec<crate::config::Channel> = (config.people.direct_messaged().into_iter())
            .filter(|_| chatbot.is_some())
            .map(|user| crate::config::Channel {
                name: user.direct_channel(),
                destination: Destination::Direct { user: user.clone() },
                style: crate::config::Style::Post,
            })
            .collect();
        for channel in config.zoom.channels.values().chain(&direct) {
            let webhook_credential = match &channel.destination {
                Destination::Webhook { credential, .. } => credentials.get(credential).cloned(),
                Destination::Chatbot { .. } | Destination::Direct { .. } => None,
            };
            route_specs.insert(
                channel.name.clone(),
                RouteSpec {
                    channel: channel.clone(),
                    chatbot: chatbot_spec
                        .clone()
                        .filter(|_| webhook_credential.is_none()),
                    webhook_credential,
                    delivery: config.zoom.delivery,
                    request_timeout: config.daemon.request_timeout,
                },
            );
            let sender = match &channel.destination {
                Destination::Direct { user } => Sender::Direct {
                    client: chatbot
                        .clone()
                        .expect("validated: direct messages have a [zoom.chatbot]"),
                    user: user.clone(),
                },
                Destination::Chatbot { to_jid } => Sender::Chatbot {
                    client: chatbot
                        .clone()
                        .expect("validated: a to_jid channel has a [zoom.chatbot]"),
                    to_jid: to_jid.clone(),
                    style: channel.style,
                },
                Destination::Webhook {
                    url,
                    credential,
                    format,
                } => {
                    let used_by = format!("[zoom.channels.{}] credential", channel.name);
                    let Credential::ZoomWebhook { token } =
                        credential_for(credentials, credential, Role::Webhook, &used_by)?
                    else {
                        unreachable!("credential_for gives only a webhook credential here")
                    };
                    let limiter = http::budget_limiter(webhook_pace);
                    Sender::Webhook {
                        client: Arc::new(WebhookClient::new(
                            http.clone(),
                            url.clone(),
                            token.clone(),
                            *format,
                            limiter,
                        )),
                    }
                }
            };
            routes.push(Route {
                channel: channel.name.clone(),
                sender,
            });
        }
        let events = match &config.zoom.events {
            None => None,
            Some(events) => {
                let spec = EventsSpec {
                    config: events.clone(),
                    credential: credentials.get(&events.credential).cloned(),
                    chatbot: chatbot_spec.clone(),
                    channels: (events.channels.iter())
                        .filter_map(|name| config.zoom.channels.get(name))
                        .cloned()
                        .collect(),
                    oauth_url: config.zoom.oauth_url.clone(),
                    api_url: config.zoom.api_url.clone(),
                    request_timeout: config.daemon.request_timeout,
                };
                let account = chatbot.as_ref().map(|bot| bot.account());
                let app = events_app(config, events, credentials, account)?;
                Some((Arc::new(app), spec))
            }
        };
        // The account's REST calls go through the Server-to-Server app of `[zoom.events]`.
        let account = events.as_ref().map(|(app, _)| {
            Arc::new(AccountApi::new(
                app.clone(),
                http.clone(),
                config.zoom.api_url.clone(),
            ))
        });
        Ok(Zoom {
            chatbot,
            routes,
            chatbot_spec,
            route_specs,
            events,
            account,
        })
    }
}

/// The Server-to-Server app of `[zoom.events]`, with its credential from `credentials`, its
/// REST calls passing `account`, the chatbot's: its limiter and daily allowance.
pub fn events_app(
    config: &Config,
    events: &EventsConfig,
    credentials: &Credentials,
    account: Option<Arc<AccountGate>>,
) -> Result<ServerToServerApp, DaemonError> {
    let used_by = "[zoom.events] credential".to_owned();
    let Credential::ZoomServerToServer {
        account_id,
        client_id,
        client_secret,
    } = credential_for(credentials, &events.credential, Role::Events, &used_by)?
    else {
        unreachable!("credential_for gives only a Server-to-Server credential here")
    };
    let app = AppCredentials {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    };
    Ok(ServerToServerApp::new(
        http::client(config.daemon.request_timeout),
        config.zoom.oauth_url.clone(),
        config.zoom.api_url.clone(),
        account_id.clone(),
        app,
        account,
    ))
}

fn chatbot_client(
    config: &Config,
    bot: &ChatbotConfig,
    credentials: &Credentials,
    http: &reqwest::Client,
) -> Result<ChatbotClient, DaemonError> {
    let used_by = "[zoom.chatbot] credential".to_owned();
    let Credential::ZoomChatbot {
        client_id,
        client_secret,
    } = credential_for(credentials, &bot.credential, Role::Chatbot, &used_by)?
    else {
        unreachable!("credential_for gives only a chatbot credential here")
    };
    let app = AppCredentials {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    };
    Ok(ChatbotClient::new(
        http.clone(),
        config.zoom.oauth_url.clone(),
        config.zoom.api_url.clone(),
        app,
        ChatbotIdentity {
            account_id: bot.account_id.clone(),
            robot_jid: bot.robot_jid.clone(),
            user_jid: bot.user_jid.clone(),
        },
        http::budget_limiter(bot.rate_limit),
        bot.daily_limit,
    ))
}
