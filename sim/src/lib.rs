//! A faithful, stateful simulator of the services bbzoom talks to: Bitbucket's read side
//! (Cloud Pipelines, Cloud commit statuses, branches and tags, Data Center build statuses,
//! branches and tags, the OAuth consumer token endpoint) and Zoom's Chatbot API (OAuth token, send,
//! edit and delete messages) and Incoming Webhooks.
//!
//! No machine that builds or tests bbzoom can reach these services, so `bbzoom demo`, the
//! integration tests and the benchmarks point the real clients at this simulator instead. It
//! serves every API over HTTP on one loopback port with the real wire shapes, plays a scripted
//! [`Scenario`] on a sped-up clock, records every chat message it accepts, enforces
//! Bitbucket's rolling hourly limit per credential, and offers fault knobs (5xx, 429 storms,
//! slow and malformed answers, revoked and expiring tokens) for tests of retries, backoff and
//! token renewal. The Zoom side also serves Incoming Webhooks, Zoom's per-second and daily
//! rate limits and outages (see [`SimZoomApp`]), and, for chat commands, a Server-to-Server
//! OAuth app's event subscription delivered over a WebSocket, people posting into channels and
//! Team Chat's list-messages API (see [`SimEventsApp`], [`Simulator::post_to_channel`]); the
//! same app's account calls, a user by id or e-mail address and instant meetings, kept for
//! tests ([`Simulator::meetings`]); the account's users ([`SimZoomApp::users`]), whom the
//! chatbot may message directly, and the mentions its markdown messages make
//! ([`SimMessage::mentions`]).
//!
//! [`score`] reads the channels back and checks them against what the scenario implies, on
//! its own reading of the product's rules, so a run is judged without bbzoom's own code.

pub mod scenario;
pub mod score;
pub mod view;

mod account;
mod api;
mod auth;
mod bbql;
mod bitbucket;
mod clock;
mod cron;
mod datacenter;
mod events;
mod fields;
mod ids;
mod limits;
mod paging;
mod statuses;
#[cfg(test)]
mod testing;
mod webhook;
mod zoom;

pub use account::{SimMeeting, SimMeetingFault};
pub use auth::{SimCredential, SimCredentialKind};
pub use cron::calendar_ms;
pub use limits::{BitbucketFault, BitbucketFaults};
pub use scenario::{
    Scenario, SimBuild, SimRepo, SimSchedule, SimSource, SimState, SimTarget, SimTrigger, TraceMix,
    pipeline_status_key, repo_created_at,
};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use url::Url;

/// `Retry-After` values asking for a pause of `wait` from now, in each of the three forms
/// (delta-seconds rounded up, HTTP-date, RFC 3339): what the simulated Bitbucket and Zoom are
/// told to send in tests and the demo's `zoom-rate-limit` faults.
pub fn retry_after_forms(wait: Duration) -> [String; 3] {
    let at = SystemTime::now() + wait;
    let rfc3339 = OffsetDateTime::from(at)
        .format(&Rfc3339)
        .expect("a UTC instant formats as RFC 3339");
    [
        wait.as_secs_f64().ceil().to_string(),
        httpdate::fmt_http_date(at),
        rfc3339,
    ]
}

/// How many channel events a slow subscriber may fall behind before it starts losing them.
const EVENT_BUFFER: usize = 1024;

/// How long `shutdown` waits for open connections to finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Options; `Default` gives the demo's values.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Simulated seconds per real second (scenario times are simulated). Default 1.0.
    pub speed: f64,
    /// The credentials the Bitbucket side knows, each counted and limited on its own. Names
    /// must be unique. Default: one access token, "sim-bitbucket" / "sim-bitbucket-token".
    pub bitbucket_credentials: Vec<SimCredential>,
    /// Lifetime of access tokens issued to OAuth consumers, in REAL time (the `expires_in` it
    /// answers). Default 7200 s, as Bitbucket.
    pub oauth_token_lifetime: Duration,
    /// Requests each credential may make in any rolling simulated hour before it gets 429s.
    /// Default 1000, Bitbucket Cloud's limit for repository data. `X-RateLimit-Limit` carries
    /// it scaled to a real hour (times `speed`).
    pub bitbucket_limit_per_hour: u64,
    /// Scaled limits: requests per rolling simulated hour of the named access-token
    /// credentials, in place of `bitbucket_limit_per_hour` (Bitbucket gives access tokens of
    /// workspaces above 100 paid seats 1,000 plus 10 per further seat, at most 10,000: 2,500
    /// for 250 seats). Only access tokens get them: naming another kind, or no credential, is
    /// refused at start. Default none.
    pub bitbucket_scaled_limits: BTreeMap<String, u64>,
    /// Whether Cloud 429s carry `Retry-After` (real ones have been seen without). Data Center
    /// 429s always do. Default false.
    pub bitbucket_retry_after: bool,
    /// Faults from the start; change them later with [`Simulator::set_bitbucket_faults`].
    /// Default none.
    pub bitbucket_faults: BitbucketFaults,
    /// The Zoom chatbot app the Zoom side knows.
    pub zoom: SimZoomApp,
    /// Lifetime of Zoom access tokens in REAL seconds (the `expires_in` it answers). Default 3600.
    pub zoom_token_lifetime: Duration,
    /// The Server-to-Server OAuth app whose event subscription is delivered over a WebSocket.
    pub zoom_events: SimEventsApp,
    /// When the clock starts. Default: with the simulator.
    pub start: SimStart,
    /// The simulated second the clock starts from. Default 0; later, the scenario's earlier
    /// part is already history when the daemon first looks, without waiting for it to pass.
    pub starts_at: f64,
}

/// When a simulator's clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimStart {
    /// With the simulator: for tests that wait for a moment of the scenario before they start
    /// the daemon.
    #[default]
    Immediately,
    /// At the first request of any kind (or the first calendar instant shown): the scenario
    /// begins once the daemon under test is up, however long its start took.
    AtFirstRequest,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            speed: 1.0,
            bitbucket_credentials: vec![SimCredential {
                name: "sim-bitbucket".to_owned(),
                kind: SimCredentialKind::AccessToken {
                    token: "sim-bitbucket-token".to_owned(),
                },
            }],
            oauth_token_lifetime: Duration::from_secs(7200),
            bitbucket_limit_per_hour: 1000,
            bitbucket_scaled_limits: BTreeMap::new(),
            bitbucket_retry_after: false,
            bitbucket_faults: BitbucketFaults::default(),
            zoom: SimZoomApp::default(),
            zoom_token_lifetime: Duration::from_secs(3600),
            zoom_events: SimEventsApp::default(),
            start: SimStart::default(),
            starts_at: 0.0,
        }
    }
}

impl SimOptions {
    /// The token of the first access-token credential: what the demo writes into its
    /// credentials file. `None` when there is no such credential.
    pub fn bitbucket_token(&self) -> Option<&str> {
        self.bitbucket_credentials
            .iter()
            .find_map(|c| match &c.kind {
                SimCredentialKind::AccessToken { token } => Some(token.as_str()),
                _ => None,
            })
    }
}

/// The one Zoom chatbot app installed on the simulated Zoom account: its credentials and where
/// it may post.
#[derive(Debug, Clone)]
pub struct SimZoomApp {
    /// OAuth client id (the user half of the token endpoint's Basic credentials).
    pub client_id: String,
    /// OAuth client secret (the password half).
    pub client_secret: String,
    /// The account the app is installed on; chat calls must name it.
    pub account_id: String,
    /// The bot's JID; chat calls must name it.
    pub robot_jid: String,
    /// The installing user's JID, sent along with every message.
    pub user_jid: String,
    /// Channel JIDs that exist (the ones the chatbot may post to).
    pub channels: Vec<String>,
    /// The account's users: whom the chatbot may message directly (`to_jid` their JID), a
    /// card may mention, the account's REST calls find (`GET /users/{userId}`) and a
    /// meeting may be hosted by. Default: the events app's user ("admin@example.com", id
    /// "sim-admin-user") and [`SimPerson::named`] for the scenarios' authors.
    pub users: Vec<SimPerson>,
    /// Incoming Webhook connections (`/inc connect`), each posting into one channel. Endpoint
    /// ids must be unique. Default: one, [`SimWebhook::default`].
    pub webhooks: Vec<SimWebhook>,
    /// Chatbot API calls (send, edit, delete) the account may make per simulated day (86,400
    /// simulated seconds from second 0); further calls answer 429 `Daily-limit` until the next
    /// simulated day. Webhook posts are not counted. Default `None`: no daily cap (Zoom's Free
    /// plan has 2,000 a day). [`Simulator::exhaust_zoom_daily_limit`] hits the cap on demand.
    pub daily_limit: Option<u32>,
    /// Chatbot API calls and webhook posts, together, the account may make per REAL second
    /// (sliding window); further calls answer 429 `QPS` with `Retry-After: 1`. Default `None`
    /// (Zoom: 2/s Free, 20/s Pro, 60/s Business+ for these "Medium" APIs).
    pub per_second: Option<u32>,
    /// A simulated window `[from, to)` in which every Zoom request (token, chat, webhook)
    /// answers 502 Bad Gateway with an HTML page, as a proxy in front of an unreachable service
    /// would. Default `None`; switch one on and off with [`Simulator::set_zoom_outage`].
    pub outage: Option<(f64, f64)>,
}

/// The Server-to-Server OAuth app on the simulated Zoom account, with one event subscription
/// (to `team_chat.channel_message_posted` in every channel of [`SimZoomApp::channels`])
/// delivered over a WebSocket, and the user whose view of a channel list-messages reads.
#[derive(Debug, Clone)]
pub struct SimEventsApp {
    /// OAuth client id (Basic user of `grant_type=account_credentials`).
    pub client_id: String,
    /// OAuth client secret (the password half).
    pub client_secret: String,
    /// The `account_id` the token request must name.
    pub account_id: String,
    /// The event subscription's id, the WebSocket URL's `subscriptionId`.
    pub subscription_id: String,
    /// The user id list-messages accepts as `{userId}` (a member of every channel).
    pub user_id: String,
    /// That user's email, accepted in place of the id.
    pub user_email: String,
    /// Lifetime of the app's access tokens in REAL time (the `expires_in` it answers); a
    /// WebSocket opened with a token is closed when it expires. Default 3600 s, as Zoom.
    pub token_lifetime: Duration,
    /// Simulated seconds a WebSocket may stay without a heartbeat before it is closed.
    /// Default 60: Zoom asks for one every 30 s.
    pub heartbeat_timeout: f64,
    /// The scopes the app was given: its tokens carry them, and the account's REST calls
    /// check them (`GET /users/{userId}` needs `user:read:user:admin` or classic
    /// `user:read:admin`; `POST /users/{userId}/meetings` `meeting:write:meeting:admin` or
    /// classic `meeting:write:admin`, or for `me` also `meeting:write:meeting`). Default: the
    /// chat events' two, `user:read:user:admin` and `meeting:write:meeting:admin`.
    pub scopes: Vec<String>,
    /// Meetings one user may have created per simulated day (86,400 simulated seconds from
    /// second 0); further creations answer 429 until the next day. Zoom: 100.
    pub meetings_per_day: u32,
}

impl Default for SimEventsApp {
    fn default() -> Self {
        SimEventsApp {
            client_id: "sim-s2s-client-id".to_owned(),
            client_secret: "sim-s2s-client-secret".to_owned(),
            account_id: "simaccount".to_owned(),
            subscription_id: "sim-subscription".to_owned(),
            user_id: "sim-admin-user".to_owned(),
            user_email: "admin@example.com".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            heartbeat_timeout: 60.0,
            scopes: [
                "team_chat:read:list_user_messages:admin",
                "team_chat:read:user_message:admin",
                "user:read:user:admin",
                "meeting:write:meeting:admin",
            ]
            .map(str::to_owned)
            .to_vec(),
            meetings_per_day: 100,
        }
    }
}

/// A person on the simulated Zoom account, who posts into channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPerson {
    /// Zoom user id (`operator_id` in events).
    pub user_id: String,
    /// Display name (`sender_display_name` in list-messages).
    pub name: String,
    /// Email (`operator` in events, `sender` in list-messages).
    pub email: String,
}

impl SimPerson {
    /// The person called `name`, with the e-mail address the simulated Bitbucket gives the
    /// same name (`jane.dev@example.com` for "Jane Dev") and a user id made from it.
    pub fn named(name: &str) -> SimPerson {
        SimPerson {
            user_id: format!(
                "u{:016x}",
                ids::fnv1a(format!("zoom-user/{name}").as_bytes())
            ),
            name: name.to_owned(),
            email: ids::email(name),
        }
    }

    /// Their JID, as Zoom makes it: the user id in lower case `@xmpp.zoom.us`. A chatbot
    /// message sent to it is a direct message, and mentions them.
    pub fn jid(&self) -> String {
        format!("{}@xmpp.zoom.us", self.user_id.to_lowercase())
    }
}

/// An @-mention in a post: Zoom's `at_items` entry (a contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMention {
    /// The mentioned user's id (`at_contact_user_id`).
    pub user_id: String,
    /// The mentioned user's email (`at_contact`).
    pub email: String,
    /// Where the mention starts in the text (`start_position`, a character index).
    pub start: usize,
    /// Where it ends (`end_position`).
    pub end: usize,
}

/// One Incoming Webhook connection: the URL and verification token a channel admin gets from
/// `/inc connect NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWebhook {
    /// The last path segment of the webhook URL.
    pub endpoint_id: String,
    /// The verification token, sent raw (no scheme word) as the `Authorization` header.
    pub token: String,
    /// The channel JID the webhook posts into.
    pub channel: String,
}

impl Default for SimWebhook {
    /// Endpoint "sim-alerts", token "sim-webhook-token", posting into
    /// "alerts@conference.xmpp.zoom.us".
    fn default() -> Self {
        SimWebhook {
            endpoint_id: "sim-alerts".to_owned(),
            token: "sim-webhook-token".to_owned(),
            channel: "alerts@conference.xmpp.zoom.us".to_owned(),
        }
    }
}

impl Default for SimZoomApp {
    fn default() -> Self {
        SimZoomApp {
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            account_id: "simaccount".to_owned(),
            robot_jid: "bbzoom-bot@xmpp.zoom.us".to_owned(),
            user_jid: "admin@xmpp.zoom.us".to_owned(),
            channels: vec![
                "ci@conference.xmpp.zoom.us".to_owned(),
                "releases@conference.xmpp.zoom.us".to_owned(),
                "alerts@conference.xmpp.zoom.us".to_owned(),
            ],
            users: std::iter::once(SimPerson {
                user_id: "sim-admin-user".to_owned(),
                name: "Sim Admin".to_owned(),
                email: "admin@example.com".to_owned(),
            })
            .chain(
                [
                    "Priya Raman",
                    "Tom Okafor",
                    "Hannah Schulz",
                    "Lena Fischer",
                    "Sam Developer",
                    "Jane Dev",
                ]
                .map(SimPerson::named),
            )
            .collect(),
            webhooks: vec![SimWebhook::default()],
            daily_limit: None,
            per_second: None,
            outage: None,
        }
    }
}

/// How a message reached its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MessageVia {
    /// The Chatbot API (`POST /v2/im/chat/messages`); `content` is the card as sent.
    Chatbot,
    /// An Incoming Webhook with `format=message`; `content` is `{"text": <the text>}`.
    WebhookMessage,
    /// An Incoming Webhook with `format=fields`; `content` is the key/value object as sent.
    WebhookFields,
    /// An Incoming Webhook with `format=full`; `content` is the card (unwrapped from
    /// `{"content": ...}` when it came wrapped).
    WebhookFull,
}

/// A chat message the Zoom side accepted, as the channel shows it now.
#[derive(Debug, Clone, Serialize)]
pub struct SimMessage {
    /// The id Zoom answered, the handle for edits and replies.
    pub message_id: String,
    /// The channel it was posted to.
    pub to_jid: String,
    /// `content` as last set.
    pub content: serde_json::Value,
    /// `content` as first posted, before any edit.
    pub first_content: serde_json::Value,
    /// The message this one answers in a thread, if any.
    pub reply_to: Option<String>,
    /// Simulated second of the post.
    pub posted_at: f64,
    /// Simulated seconds of each edit, oldest first, with the content it set.
    pub edits: Vec<(f64, serde_json::Value)>,
    /// How it was posted. Only chatbot messages can be edited or deleted through the API.
    pub via: MessageVia,
    /// Deleted (by the bot's `DELETE` call or by a person, [`Simulator::delete_message`]): the
    /// channel no longer shows it ([`Simulator::channel`] leaves it out) and edits answer 404,
    /// code 8001.
    pub deleted: bool,
    /// Whether the chatbot sent it (or last edited it) with `is_markdown_support`.
    pub markdown: bool,
    /// Who it notified as mentioned, each once, over the post and every edit: a
    /// user's JID, or `@all` for the whole channel. Zoom reads mentions in markdown only:
    /// `<!JID|name>` (a user), `<!all>`, `<!here>`, `<!channel>`, `@all`, `@here`,
    /// `@channel`, `@everyone` (everyone) and `@` and a user's e-mail address, in a header,
    /// sub-header, text without a link or field value.
    pub mentions: Vec<String>,
}

/// Whether a [`ChannelEvent`] is a new message or a change to one.
#[derive(Debug, Clone, Serialize)]
pub enum ChannelEventKind {
    /// A message was sent.
    Posted,
    /// A message's content was replaced.
    Edited,
}

/// One post or edit as it happens, for live printouts and tests that wait for messages.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelEvent {
    /// Post or edit.
    pub kind: ChannelEventKind,
    /// The channel concerned.
    pub to_jid: String,
    /// The message posted or edited.
    pub message_id: String,
    /// The content the message shows from now on.
    pub content: serde_json::Value,
    /// Simulated second it happened.
    pub at: f64,
    /// How the message was posted.
    pub via: MessageVia,
}

/// Counters a test or benchmark reads to check how hard bbzoom worked the services.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    /// Requests to the Bitbucket APIs (Cloud and Data Center), errors included.
    pub bitbucket_requests: u64,
    /// Requests to Bitbucket's OAuth token endpoint.
    pub bitbucket_token_requests: u64,
    /// Chat calls (send, edit, delete) and webhook posts to the Zoom side, errors (outage
    /// answers included).
    pub zoom_requests: u64,
    /// Requests to the Zoom token endpoint, outage answers included.
    pub zoom_token_requests: u64,
    /// Chat calls and webhook posts answered with a 4xx (429s included).
    pub zoom_rejected: u64,
    /// Chat calls and webhook posts answered 429 (forced, per-second or daily).
    pub zoom_rate_limited: u64,
    /// Zoom requests of any kind (token, chat, webhook) answered 502 during an outage.
    pub zoom_unavailable: u64,
    /// Messages sent successfully, through the chatbot or a webhook.
    pub posts: u64,
    /// Of `posts`, those sent through an Incoming Webhook.
    pub webhook_posts: u64,
    /// Messages edited successfully.
    pub edits: u64,
    /// Messages the bot deleted successfully (deletions by a person are not counted).
    pub deletes: u64,
    /// Event WebSocket connections opened.
    pub zoom_events_connections: u64,
    /// Event WebSocket handshakes refused (unknown subscription, bad or expired token).
    pub zoom_events_refused: u64,
    /// Heartbeats received on event WebSockets.
    pub zoom_heartbeats: u64,
    /// Event WebSockets closed for want of a heartbeat.
    pub zoom_events_silent_closes: u64,
    /// Events delivered over event WebSockets.
    pub zoom_events_delivered: u64,
    /// Requests to list-messages, errors included.
    pub zoom_list_requests: u64,
}

/// The scenario's calendar as a running simulator keeps it: simulated second `t` is the
/// calendar instant [`calendar_ms`]`(t)`, on which schedules fire. It runs `speed` times faster
/// than real time, while the wire's timestamps and a daemon's timers keep real time: a daemon
/// waiting for a scheduled run reads the calendar here and waits the real time until it.
#[derive(Debug, Clone)]
pub struct SimCalendar {
    /// The simulator's clock.
    clock: Arc<clock::Clock>,
    /// Simulated seconds per real second ([`SimOptions::speed`]).
    speed: f64,
}

impl SimCalendar {
    /// The calendar instant the scenario is at now, in Unix milliseconds (its first second's
    /// while the clock is held).
    pub fn now_ms(&self) -> i64 {
        calendar_ms(self.clock.now())
    }

    /// Simulated seconds per real second: a calendar second lasts `1 / speed` real seconds.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

/// A running simulator. It owns the server task: dropping it or calling [`Simulator::shutdown`]
/// stops serving.
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    /// `http://127.0.0.1:PORT/`, from which every public URL is derived.
    base: Url,
    /// Dropping this (with the simulator) tells the server to stop; `shutdown` sends on it.
    stop: oneshot::Sender<()>,
    /// The server, which `shutdown` waits for.
    task: JoinHandle<io::Result<()>>,
}

/// What the request handlers share: fixed configuration plus the one lock on mutable state.
struct Inner {
    scenario: Scenario,
    options: SimOptions,
    /// Shared with every [`SimCalendar`] handed out, which may outlive the simulator.
    clock: Arc<clock::Clock>,
    /// `http://127.0.0.1:PORT` without a trailing slash: the prefix of every link in answers.
    origin: String,
    events: broadcast::Sender<ChannelEvent>,
    /// Each person's post as its `team_chat.channel_message_posted` event's JSON, for the
    /// event WebSocket (`events.rs`).
    chat_events: broadcast::Sender<Arc<str>>,
    state: Mutex<State>,
}

/// Everything that changes while the simulator runs. Never held across an `.await`.
#[derive(Default)]
struct State {
    stats: SimStats,
    /// Zoom access tokens issued, each with the real instant it expires (`None`: never, for a
    /// lifetime too long to represent).
    tokens: HashMap<String, Option<Instant>>,
    /// Chat calls and webhook posts still to be failed with 503.
    failures_pending: u32,
    /// Zoom's rate limits and outage switch.
    zoom_limits: zoom::Limits,
    /// People's posts, the event WebSocket and its tokens.
    events: events::Events,
    /// The account's REST calls: meetings created, faults asked for.
    account: account::Account,
    /// Every accepted message, all channels together, in posting order.
    messages: Vec<SimMessage>,
    /// Message id to its index in `messages`.
    by_id: HashMap<String, usize>,
    /// Access tokens issued to Bitbucket OAuth consumers.
    bitbucket_grants: auth::Grants,
    /// Bitbucket requests per credential, the limiter's window and the fault knobs.
    bitbucket: limits::Ledger,
    /// Requests by the route that answered them (its template, such as
    /// `/2.0/repositories/{workspace}/{repo_slug}/pipelines`).
    by_route: BTreeMap<String, u64>,
}

impl Inner {
    /// The state lock. A handler that panicked cannot leave the state half-updated in a way that
    /// matters to a simulator, so a poisoned lock is used as is rather than failing every
    /// later request.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether credential `name` of `options` may have a scaled limit: only access tokens get
/// them on Bitbucket.
fn may_scale(options: &SimOptions, name: &str) -> io::Result<()> {
    let access_token = options
        .bitbucket_credentials
        .iter()
        .any(|c| c.name == name && matches!(c.kind, SimCredentialKind::AccessToken { .. }));
    if access_token {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("only access tokens have scaled limits, and {name:?} is none"),
        ))
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively,
/// as HTTP says), or `None` when the header is missing or uses another scheme.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Lets a held clock ([`SimStart::AtFirstRequest`]) run before any request is answered, and
/// counts the request by its route.
async fn start_clock(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    inner.clock.start();
    if let Some(route) = request.extensions().get::<axum::extract::MatchedPath>() {
        *inner
            .lock()
            .by_route
            .entry(route.as_str().to_owned())
            .or_default() += 1;
    }
    next.run(request).await
}

impl Simulator {
    /// Serves on 127.0.0.1 with an OS-chosen port. Simulated time starts as
    /// [`SimOptions::start`] says; simulated second 0 is the wall-clock time it starts at (see
    /// [`Simulator::epoch`]).
    pub async fn start(scenario: Scenario, options: SimOptions) -> io::Result<Simulator> {
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "simulator speed must be a positive number, not {}",
                    options.speed
                ),
            ));
        }
        if !(options.starts_at.is_finite() && options.starts_at >= 0.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the simulator's first second must be 0 or later, not {}",
                    options.starts_at
                ),
            ));
        }
        let mut names: Vec<&str> = options
            .bitbucket_credentials
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("two Bitbucket credentials are named {:?}", twice[0]),
            ));
        }
        for name in options.bitbucket_scaled_limits.keys() {
            may_scale(&options, name)?;
        }
        zoom::check_options(&options.zoom)?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let base =
            Url::parse(&origin).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (chat_events, _) = broadcast::channel(EVENT_BUFFER);
        let state = State {
            bitbucket: limits::Ledger::new(&options),
            ..State::default()
        };
        let inner = Arc::new(Inner {
            clock: Arc::new(clock::Clock::new(
                options.speed,
                options.starts_at,
                options.start,
            )),
            scenario,
            options,
            origin,
            events,
            chat_events,
            state: Mutex::new(state),
        });
        let app = bitbucket::routes()
            .merge(datacenter::routes())
            .merge(auth::routes())
            .merge(zoom::routes())
            .merge(events::routes())
            .merge(account::routes())
            .merge(webhook::routes())
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&inner),
                start_clock,
            ))
            .with_state(Arc::clone(&inner));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                // Either a send or the sender's drop ends the wait.
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::debug!(%addr, "simulator serving");
        Ok(Simulator {
            inner,
            addr,
            base,
            stop,
            task,
        })
    }

    /// The loopback address served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    /// Base of the Bitbucket REST API, `http://127.0.0.1:PORT/2.0`.
    pub fn bitbucket_api_url(&self) -> Url {
        self.url("/2.0")
    }

    /// Base of Bitbucket's web pages, `http://127.0.0.1:PORT` (repositories at `{web}/{ws}/{slug}`).
    pub fn bitbucket_web_url(&self) -> Url {
        self.url("")
    }

    /// Bitbucket's OAuth consumer token endpoint, `http://127.0.0.1:PORT/site/oauth2/access_token`.
    pub fn bitbucket_oauth_url(&self) -> Url {
        self.url("/site/oauth2/access_token")
    }

    /// Base of the simulated Bitbucket Data Center, `http://127.0.0.1:PORT/dc` (no trailing
    /// slash): its REST API is under `{base}/rest`, repository pages at
    /// `{base}/projects/{PROJECT}/repos/{slug}/browse`. The `/dc` prefix keeps it a different
    /// base URL from [`Simulator::bitbucket_web_url`] on the same port.
    pub fn datacenter_url(&self) -> Url {
        self.url(datacenter::PREFIX)
    }

    /// Zoom's token endpoint, `http://127.0.0.1:PORT/oauth/token`.
    pub fn zoom_oauth_url(&self) -> Url {
        self.url("/oauth/token")
    }

    /// The event subscription's WebSocket, `ws://127.0.0.1:PORT/ws` (add
    /// `?subscriptionId=...&access_token=...`).
    pub fn zoom_events_url(&self) -> Url {
        let mut url = self.url("/ws");
        // Same host and port, another scheme: http and ws always convert into each other.
        let _ = url.set_scheme("ws");
        url
    }

    /// Base of Zoom's REST API, `http://127.0.0.1:PORT/v2`.
    pub fn zoom_api_url(&self) -> Url {
        self.url("/v2")
    }

    /// The URL of Incoming Webhook `endpoint_id`,
    /// `http://127.0.0.1:PORT/chat/webhooks/incomingwebhook/{endpoint_id}` (add `?format=...`).
    /// Any id gives a URL; ids not in [`SimZoomApp::webhooks`] answer 404.
    pub fn zoom_webhook_url(&self, endpoint_id: &str) -> Url {
        let mut url = self.url(webhook::PREFIX);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(endpoint_id);
        }
        url
    }

    /// The options it was started with.
    pub fn options(&self) -> &SimOptions {
        &self.inner.options
    }

    /// The scenario it plays.
    pub fn scenario(&self) -> &Scenario {
        &self.inner.scenario
    }

    /// The current simulated second ([`SimOptions::starts_at`] while the clock is held).
    pub fn now(&self) -> f64 {
        self.inner.clock.now()
    }

    /// The scenario's calendar, which its schedules fire by, as a handle a daemon under test
    /// keeps (it outlives any borrow of the simulator).
    pub fn calendar(&self) -> SimCalendar {
        SimCalendar {
            clock: Arc::clone(&self.inner.clock),
            speed: self.inner.options.speed,
        }
    }

    /// The calendar instant of simulated second 0: the wall-clock time the clock started at,
    /// to the millisecond (asked of a held clock, it starts it). Every timestamp the APIs answer for simulated second `t` is
    /// this plus `t` seconds, so with a speed above 1 timestamps run ahead of the wall clock.
    pub fn epoch(&self) -> SystemTime {
        self.inner.clock.epoch()
    }

    /// [`Simulator::epoch`] in milliseconds since the Unix epoch (Data Center's timestamp
    /// form): simulated second `t` is shown as `epoch_ms() + t * 1000 / speed`.
    pub fn epoch_ms(&self) -> i64 {
        self.inner.clock.epoch_millis(0.0)
    }

    /// The link a card about `build` of `repo` carries when announcing its state at simulated
    /// second `at`: the pipeline's page (whatever it ran for, under the repository's slug at
    /// `at`), the link the CI server posted
    /// with the status at that moment (a rerun posts a new one), or, for the status Pipelines
    /// posts for a run ([`SimBuild::pipeline_status`]), the run's page in the Pipelines add-on.
    /// Scoreboards match cards to builds with it. Empty for a status not in the scenario.
    pub fn card_link(&self, repo: &SimRepo, build: &SimBuild, at: f64) -> String {
        let origin = &self.inner.origin;
        let index = self.repo_index(repo);
        let posted_by_pipelines = repo.source.runs_pipelines()
            && index.is_some_and(|i| build.key == pipeline_status_key(i, build.number));
        if posted_by_pipelines {
            statuses::pipeline_url(origin, repo, build.number)
        } else if repo.runs_pipeline(build) {
            format!(
                "{origin}/{}/{}/pipelines/results/{}",
                repo.workspace,
                repo.slug_at(at),
                build.number
            )
        } else {
            let repo = (index.unwrap_or_default(), repo);
            statuses::posted(origin, [repo], &build.commit, at)
                .into_iter()
                .find(|status| status.key == build.key)
                .map(|status| status.url)
                .unwrap_or_default()
        }
    }

    /// The position of `repo` in the scenario (which seeds its identifiers), found by where it
    /// lives: workspace and slug (any case) and source.
    fn repo_index(&self, repo: &SimRepo) -> Option<usize> {
        self.inner.scenario.repos.iter().position(|r| {
            r.source == repo.source
                && r.workspace.eq_ignore_ascii_case(&repo.workspace)
                && r.slug.eq_ignore_ascii_case(&repo.slug)
        })
    }

    /// What a channel shows now, in posting order (deleted messages left out).
    pub fn channel(&self, to_jid: &str) -> Vec<SimMessage> {
        let state = self.inner.lock();
        state
            .messages
            .iter()
            .filter(|m| m.to_jid == to_jid && !m.deleted)
            .cloned()
            .collect()
    }

    /// One message by id, deleted or not (webhook messages have ids here too, though Zoom never
    /// tells the poster).
    pub fn message(&self, message_id: &str) -> Option<SimMessage> {
        let state = self.inner.lock();
        let index = state.by_id.get(message_id).copied()?;
        state.messages.get(index).cloned()
    }

    /// A person deletes message `message_id` in Zoom: the channel stops showing it and later
    /// edits or deletions by the bot answer 404, code 8001. Returns whether a message that was
    /// still shown was deleted.
    pub fn delete_message(&self, message_id: &str) -> bool {
        let mut state = self.inner.lock();
        let index = state.by_id.get(message_id).copied();
        match index.and_then(|i| state.messages.get_mut(i)) {
            Some(message) if !message.deleted => {
                message.deleted = true;
                true
            }
            _ => false,
        }
    }

    /// `person` posts `text` into channel `to_jid` (one of [`SimZoomApp::channels`]),
    /// mentioning `mentions`, as a reply in the thread of `reply_to` if given. The event goes
    /// to the subscription's open WebSocket, if one is open at this moment, and never later;
    /// list-messages shows the post. Returns its message id; an unknown channel or thread is
    /// refused.
    pub fn post_to_channel(
        &self,
        to_jid: &str,
        person: &SimPerson,
        text: &str,
        mentions: &[SimMention],
        reply_to: Option<&str>,
    ) -> io::Result<String> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        if !self.inner.options.zoom.channels.iter().any(|c| c == to_jid) {
            return Err(invalid(format!("no channel {to_jid:?} on the account")));
        }
        let mut state = self.inner.lock();
        if let Some(parent) = reply_to
            && !zoom::in_channel(&state, parent, to_jid)
        {
            return Err(invalid(format!("no message {parent:?} in {to_jid:?}")));
        }
        let message_id = zoom::new_message_id();
        let post = events::Post {
            message_id: message_id.clone(),
            to_jid: to_jid.to_owned(),
            person: person.clone(),
            text: text.to_owned(),
            mentions: mentions.to_vec(),
            reply_to: reply_to.map(str::to_owned),
            at: self.inner.clock.now(),
        };
        events::post(&self.inner, &mut state, post);
        Ok(message_id)
    }

    /// Every meeting created so far, oldest first, with its host's start link (which must
    /// never show anywhere else).
    pub fn meetings(&self) -> Vec<SimMeeting> {
        self.inner.lock().account.meetings.clone()
    }

    /// Requests to the account's REST calls (a user, a meeting), errors included.
    pub fn account_requests(&self) -> u64 {
        self.inner.lock().account.requests
    }

    /// The next `n` meeting creations that get past the token and scope checks meet `fault`
    /// instead (replacing any still pending).
    pub fn fail_next_meetings(&self, n: u32, fault: SimMeetingFault) {
        let mut state = self.inner.lock();
        state.account.faults = n;
        state.account.fault = Some(fault);
    }

    /// Whether the event subscription has a WebSocket open.
    pub fn events_connected(&self) -> bool {
        events::connected(&self.inner.lock())
    }

    /// Closes the event subscription's open WebSocket, as Zoom going away would; whether one
    /// was open.
    pub fn disconnect_events(&self) -> bool {
        events::disconnect(&mut self.inner.lock())
    }

    /// Every post and edit as it happens (for the demo's live printout).
    pub fn subscribe(&self) -> broadcast::Receiver<ChannelEvent> {
        self.inner.events.subscribe()
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.inner.lock().stats.clone()
    }

    /// The next `n` Zoom chat API calls (send, edit, delete) and webhook posts that get past
    /// authentication and the rate limits answer 503.
    pub fn fail_next_zoom_calls(&self, n: u32) {
        self.inner.lock().failures_pending = n;
    }

    /// The next `n` Zoom chat API calls and webhook posts that get past authentication answer
    /// 429 with Zoom's per-second message, `X-RateLimit-Type: QPS` and, when given,
    /// `Retry-After: <retry_after>` verbatim (any text: delta-seconds, an HTTP-date, an RFC 3339
    /// instant). Replaces any calls still pending.
    pub fn zoom_rate_limit_next(&self, n: u32, retry_after: Option<String>) {
        self.inner.lock().zoom_limits.force(n, retry_after);
    }

    /// The daily cap is hit now, whatever [`SimZoomApp::daily_limit`] says: chat API calls
    /// answer 429 `Daily-limit` until the next simulated day begins (second `86400 * k`).
    pub fn exhaust_zoom_daily_limit(&self) {
        let now = self.inner.clock.now();
        self.inner.lock().zoom_limits.exhaust_day(now);
    }

    /// Switches a Zoom outage on or off (besides any [`SimZoomApp::outage`] window): while on,
    /// every Zoom request answers 502 Bad Gateway with an HTML page.
    pub fn set_zoom_outage(&self, on: bool) {
        self.inner.lock().zoom_limits.outage = on;
    }

    /// Every Zoom access token issued so far, the chatbot's and the Server-to-Server app's,
    /// becomes invalid (answers 401 code 124; open WebSockets stay open).
    pub fn revoke_zoom_tokens(&self) {
        let mut state = self.inner.lock();
        state.tokens.clear();
        state.events.tokens.clear();
    }

    /// Every access token issued to Bitbucket OAuth consumers so far becomes invalid (401).
    pub fn revoke_bitbucket_oauth_tokens(&self) {
        self.inner.lock().bitbucket_grants.clear();
    }

    /// Replaces the random Bitbucket faults from now on.
    pub fn set_bitbucket_faults(&self, faults: BitbucketFaults) {
        self.inner.lock().bitbucket.faults = faults;
    }

    /// Gives access token `credential` a scaled limit of `per_hour` requests per simulated
    /// hour from now on, as Bitbucket does when its workspace's paid seats change: its
    /// `X-RateLimit-Limit` says so at once, and its rolling hour keeps what it already holds.
    /// Refused for any other kind of credential, as at start.
    pub fn set_bitbucket_scaled_limit(&self, credential: &str, per_hour: u64) -> io::Result<()> {
        may_scale(&self.inner.options, credential)?;
        let mut state = self.inner.lock();
        state
            .bitbucket
            .scaled_limits
            .insert(credential.to_owned(), per_hour);
        Ok(())
    }

    /// The next `n` Bitbucket API calls that present a valid credential get `fault` (replacing
    /// any calls still pending). Other faults are still subject to the rate limit.
    pub fn fail_next_bitbucket_calls(&self, n: u32, fault: BitbucketFault) {
        self.inner.lock().bitbucket.inject(n, fault);
    }

    /// Bitbucket API requests per credential name, refused ones included (requests without a
    /// valid credential are counted only in [`SimStats::bitbucket_requests`]).
    pub fn bitbucket_requests_by_credential(&self) -> BTreeMap<String, u64> {
        self.inner.lock().bitbucket.requests_by_credential()
    }

    /// Requests by the route template that answered them (a path with a trailing `/` is its
    /// own route), refused ones included: what a client spent its budget on.
    pub fn requests_by_route(&self) -> BTreeMap<String, u64> {
        self.inner.lock().by_route.clone()
    }

    /// The most requests any one credential made in any rolling simulated hour, refused ones
    /// included: what to compare with the budget a daemon was given.
    pub fn bitbucket_max_per_hour(&self) -> u64 {
        self.bitbucket_max_per_hour_from(f64::NEG_INFINITY)
    }

    /// As [`Simulator::bitbucket_max_per_hour`], over the rolling simulated hours that start
    /// at simulated second `from` or later: what to compare with a limit that changed then.
    pub fn bitbucket_max_per_hour_from(&self, from: f64) -> u64 {
        self.inner.lock().bitbucket.max_per_hour(from)
    }

    /// Stops serving: refuses new connections, lets requests in flight finish for a short grace
    /// period, then cuts off whatever is left.
    pub async fn shutdown(self) {
        let Simulator { stop, task, .. } = self;
        let _ = stop.send(());
        let abort = task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_serving_without_waiting_on_idle_connections() {
        let sim = Simulator::start(Scenario { repos: vec![] }, SimOptions::default())
            .await
            .expect("simulator starts");
        let url = sim.zoom_oauth_url();
        let client = reqwest::Client::new();
        let answer = client.post(url.clone()).send().await.expect("serving");
        assert_eq!(answer.status().as_u16(), 401);
        // The client keeps that connection alive in its pool; shutdown must not wait for it.
        let started = Instant::now();
        sim.shutdown().await;
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(client.post(url).send().await.is_err());
    }

    #[tokio::test]
    async fn mixed_scenario_is_served_by_every_api() {
        use testing::{Auth, TOKEN, get, wait_until};
        let mut options = SimOptions {
            speed: 2000.0,
            ..SimOptions::default()
        };
        options.bitbucket_credentials.push(SimCredential {
            name: "dc".to_owned(),
            kind: SimCredentialKind::DataCenterToken {
                token: "dc-token".to_owned(),
            },
        });
        let sim = testing::start(Scenario::mixed(), options).await;
        wait_until(&sim, sim.scenario().end() + 1.0).await;
        let cloud = |path: &str| format!("{}{path}", sim.bitbucket_api_url());
        let dc = |path: &str| format!("{}/rest{path}", sim.datacenter_url());

        let pipelines = get(
            &cloud("/repositories/acme/api/pipelines"),
            Auth::Bearer(TOKEN),
        )
        .await;
        assert_eq!(pipelines.json()["size"], 3);

        let url = cloud("/repositories/acme/web/refs/branches?sort=-target.date");
        let branches = get(&url, Auth::Bearer(TOKEN)).await.json();
        assert_eq!(branches["values"][0]["name"], "main");
        let tip = branches["values"][0]["target"]["hash"]
            .as_str()
            .expect("hash");
        let url = cloud(&format!("/repositories/acme/web/commit/{tip}/statuses"));
        let statuses = get(&url, Auth::Bearer(TOKEN)).await.json();
        let shown: Vec<(&str, &str)> = statuses["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|s| Some((s["name"].as_str()?, s["state"].as_str()?)))
            .collect();
        assert_eq!(
            shown,
            [
                ("jenkins-build #104", "SUCCESSFUL"),
                ("sonar-scan #1", "SUCCESSFUL")
            ]
        );

        let url = dc("/api/latest/projects/PLAT/repos/platform/branches?orderBy=MODIFICATION");
        let branches = get(&url, Auth::Bearer("dc-token")).await.json();
        assert_eq!(branches["values"][0]["displayId"], "main");
        let tip = branches["values"][0]["latestCommit"]
            .as_str()
            .expect("commit");
        let url = dc(&format!("/build-status/latest/commits/{tip}"));
        let statuses = get(&url, Auth::Bearer("dc-token")).await.json();
        assert_eq!(statuses["values"][0]["state"], "CANCELLED");
        assert_eq!(statuses["values"][0]["key"], "PLAT-BUILD");
        let url = dc("/api/latest/projects/PLAT/repos/platform/tags");
        let tags = get(&url, Auth::Bearer("dc-token")).await.json();
        assert_eq!(tags["values"][0]["displayId"], "v3.0.0");

        let url = cloud("/repositories/acme/web/refs/tags");
        let tags = get(&url, Auth::Bearer(TOKEN)).await.json();
        assert_eq!(tags["values"][0]["name"], "v5.2.0");

        // acme/ops: pipelines, and on their commits the scanner's statuses beside theirs.
        let url = cloud("/repositories/acme/ops/pipelines");
        let pipelines = get(&url, Auth::Bearer(TOKEN)).await.json();
        assert_eq!(pipelines["size"], 3);
        let first = pipelines["values"][0]["target"]["commit"]["hash"]
            .as_str()
            .expect("hash");
        let url = cloud(&format!("/repositories/acme/ops/commit/{first}/statuses"));
        let statuses = get(&url, Auth::Bearer(TOKEN)).await.json();
        let mut names: Vec<&str> = statuses["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["Pipeline #1", "security-scan #31"]);
    }

    #[tokio::test]
    async fn second_zero_is_the_wall_clock_at_start() {
        let millis = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as i64
        };
        let before = millis(SystemTime::now());
        let sim = testing::start(Scenario { repos: vec![] }, SimOptions::default()).await;
        let after = millis(SystemTime::now());
        assert!((before..=after).contains(&sim.epoch_ms()));
        assert_eq!(millis(sim.epoch()), sim.epoch_ms());
    }

    #[tokio::test]
    async fn the_calendar_starts_on_monday_morning_and_runs_at_the_speed() {
        let options = SimOptions {
            speed: 100.0,
            starts_at: 3600.0,
            start: SimStart::AtFirstRequest,
            ..SimOptions::default()
        };
        let sim = testing::start(Scenario { repos: vec![] }, options).await;
        let calendar = sim.calendar();
        drop(sim);
        // Held at its first second, 10:00 on Monday 2026-01-05, a handle outliving the
        // simulator.
        assert_eq!(calendar.now_ms(), 1_767_607_200_000);
        assert_eq!(calendar.speed(), 100.0);
        assert_eq!(calendar_ms(-9.0 * 3600.0), 1_767_571_200_000);
    }

    #[tokio::test]
    async fn refuses_a_speed_that_is_not_positive() {
        let options = SimOptions {
            speed: 0.0,
            ..SimOptions::default()
        };
        let refused = Simulator::start(Scenario { repos: vec![] }, options).await;
        assert!(refused.is_err_and(|e| e.kind() == io::ErrorKind::InvalidInput));
    }
}
