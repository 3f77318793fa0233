//! Configuration: the admin's TOML file becomes a validated [`Config`].
//!
//! Like ripgrep's low-level/high-level arguments, parsing happens in two steps: `raw` mirrors the
//! file (serde, unknown keys rejected, spans kept), then [`Config::load`] validates it into the
//! types below, which the rest of bbzoom uses and which cannot hold an invalid value. Every error
//! names the file, the line and the key, and says what to do.

mod defaults;
mod diagnose;
pub mod edit;
mod error;
mod shapes;
mod validate;

pub use error::ConfigError;
pub(crate) use validate::parse_duration;

pub use crate::domain::{BudgetOrigin, BudgetSpec, RateLimit, SourceKind};

use crate::domain::{AuthorIds, BuildRef, EventKind, RepoId, ZoomUser};
use crate::glob::RefGlob;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The longest control socket path: the kernel's limit for a Unix socket address (sun_path,
/// 108 bytes with its NUL) less the staging suffix `control::bind` adds (`.` and a process id).
pub(crate) const MAX_SOCKET_PATH: usize = 107 - 8;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from, for messages and reloads.
    pub source: PathBuf,
    pub daemon: DaemonConfig,
    pub polling: PollingConfig,
    pub bitbucket: BitbucketConfig,
    pub zoom: ZoomConfig,
    pub subscriptions: Vec<Subscription>,
    /// What is polled: each (repository, source) once, however many subscriptions name it.
    pub watches: Vec<Watch>,
    /// `[people]`: whom a failing build mentions, and messages directly.
    pub people: Arc<People>,
}

/// `[people]`: the Zoom users Bitbucket accounts belong to. A failing build's card in a
/// chatbot channel mentions its author when they are here (only them: never the channel),
/// and the chatbot may also message them directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    /// By Bitbucket identity (a Cloud account's uuid, account id or nickname; a Data Center
    /// user's slug or name; an e-mail address), in lower case.
    pub(crate) accounts: BTreeMap<String, Person>,
    /// The channels the chatbot posts to: the only ones whose cards can mention, and whose
    /// builds' authors are sent direct messages.
    pub(crate) chatbot_channels: BTreeSet<String>,
}

/// One person of `[people]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub zoom: ZoomUser,
    /// Whether the chatbot also sends them a direct message when their build fails.
    pub direct_message: bool,
}

impl People {
    /// The person a build belongs to, with the place among `authors` (most responsible
    /// first: the commit's author, then who started the run) that matched: the first author
    /// with an identity named here.
    pub(crate) fn find(&self, authors: &[AuthorIds]) -> Option<(usize, &Person)> {
        authors.iter().enumerate().find_map(|(i, author)| {
            let person = author
                .0
                .iter()
                .find_map(|id| self.accounts.get(&id.to_lowercase()))?;
            Some((i, person))
        })
    }

    /// Each Zoom user messaged directly, once.
    pub fn direct_messaged(&self) -> BTreeSet<&ZoomUser> {
        (self.accounts.values())
            .filter(|p| p.direct_message)
            .map(|p| &p.zoom)
            .collect()
    }

    /// Whether anyone is named.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Whether someone is named by e-mail address: their JID is looked up.
    pub fn names_by_email(&self) -> bool {
        (self.accounts.values()).any(|p| matches!(p.zoom, ZoomUser::Email(_)))
    }
}

/// `[daemon]`: where state and secrets live.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Directory of the sled store (created if missing).
    pub state_dir: PathBuf,
    /// Timeout of one HTTP request to Bitbucket or Zoom.
    pub request_timeout: Duration,
    /// The age-encrypted credentials file.
    pub credentials_file: PathBuf,
    /// The age X25519 identity that decrypts `credentials_file`.
    pub identity_file: PathBuf,
    /// The Unix socket `bbzoom status` and `bbzoom reload` talk to the daemon over.
    pub control_socket: PathBuf,
    /// Where Prometheus metrics are served (`GET /metrics`): a loopback address, or none.
    pub metrics: Option<std::net::SocketAddr>,
}

/// `[polling]`: how often a repository is looked at, by how busy it is. The planner stretches
/// these when a credential's budget cannot pay for them (latency grows, nothing is missed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollingConfig {
    /// Interval for a repository with a build running (default 15s).
    pub hot: Duration,
    /// Interval for one active within `warm_for` (default 1m).
    pub warm: Duration,
    /// Interval for an idle one (default 10m).
    pub cold: Duration,
    /// How long after its last change a repository stays warm (default 30m).
    pub warm_for: Duration,
    /// How long a commit's statuses are still read after their last change, because external
    /// CI posts late (default 10m).
    pub settle: Duration,
    /// How often each Bitbucket Cloud workspace is asked which of its repositories changed
    /// (default 30s); `None` (`scan = "off"`): never, every repository is found by its own
    /// polls alone.
    pub scan: Option<Duration>,
}

/// `[bitbucket]`: Bitbucket Cloud, plus any Data Center instances.
#[derive(Debug, Clone)]
pub struct BitbucketConfig {
    /// REST API base, `https://api.bitbucket.org/2.0` unless pointed at the simulator.
    pub api_url: Url,
    /// Web host repository URLs are written with, `https://bitbucket.org`.
    pub web_url: Url,
    /// OAuth token endpoint for OAuth consumers, `https://bitbucket.org/site/oauth2/access_token`.
    pub oauth_url: Url,
    /// Credential for Cloud subscriptions that do not name their own.
    pub credential: Option<String>,
    /// Budget of each Cloud credential without one of its own: `rate_limit` as written (a
    /// ceiling), else the default that follows `X-RateLimit-Limit` (900 per hour until
    /// Bitbucket says more).
    pub(crate) rate_limit: BudgetSpec,
    /// `[bitbucket.datacenter.NAME]`: Data Center / Server instances, by name.
    pub datacenter: BTreeMap<String, DataCenterConfig>,
    /// `[bitbucket.budgets]`: a budget for a named credential, overriding its instance's; a
    /// ceiling, as every written budget.
    pub budgets: BTreeMap<String, RateLimit>,
}

/// `[bitbucket.datacenter.NAME]`: one Bitbucket Data Center or Server instance.
#[derive(Debug, Clone)]
pub struct DataCenterConfig {
    pub name: String,
    /// Base URL people browse (`https://git.example.com`); the REST API is under `/rest`.
    pub url: Url,
    /// Credential (an HTTP access token) for its subscriptions that do not name their own.
    pub credential: String,
    /// Budget of its credentials without one of their own: `rate_limit` as written, else
    /// 3,600 per hour; a ceiling either way.
    pub(crate) rate_limit: BudgetSpec,
}

/// `[zoom]`: where cards go (chatbot channels and Incoming Webhooks) and how they get there.
#[derive(Debug, Clone)]
pub struct ZoomConfig {
    /// OAuth token endpoint, `https://zoom.us/oauth/token`.
    pub oauth_url: Url,
    /// REST API base, `https://api.zoom.us/v2`.
    pub api_url: Url,
    /// `[zoom.chatbot]`, required only when some channel uses the chatbot (has `to_jid`).
    pub chatbot: Option<ChatbotConfig>,
    /// Named destinations, keyed by the name subscriptions use.
    pub channels: BTreeMap<String, Channel>,
    /// `[zoom.delivery]`
    pub delivery: DeliveryConfig,
    /// `[zoom.events]`: chat commands over Zoom's event WebSocket; `None`, none are read.
    pub events: Option<EventsConfig>,
    /// War-room meetings (`meeting_on`), created by the Server-to-Server app of
    /// `[zoom.events]`: `Some` exactly when that table is there.
    pub meetings: Option<MeetingsConfig>,
}

/// `[zoom.meetings]`: war rooms, instant meetings a failing lane gets (`meeting_on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingsConfig {
    /// The Zoom user (e-mail address or user id) who hosts them, the `{userId}` of `POST
    /// /users/{userId}/meetings`: `host`, else `[zoom.events] user`.
    pub host: String,
}

/// `[zoom.events]`: a Server-to-Server OAuth app's event subscription, delivered over an
/// outbound WebSocket, whose channel messages addressed to bbzoom are commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Name of the `zoom_server_to_server` credential (account id, client id and secret).
    pub credential: String,
    /// The event subscription's id: the WebSocket URL's `subscriptionId`.
    pub subscription_id: String,
    /// The WebSocket endpoint, `wss://ws.zoom.us/ws`.
    pub url: Url,
    /// The Zoom user (id or email), a member of every command channel, whose view of a
    /// channel the list-messages API reads to catch up after a reconnect.
    pub user: String,
    /// Names of `[zoom.channels]` (chatbot channels) whose messages are read as commands.
    pub channels: Vec<String>,
    /// Zoom users (ids, or emails in lower case) allowed the commands that change
    /// subscriptions.
    pub admins: Vec<String>,
    /// How often a heartbeat is sent over the WebSocket (Zoom: every 30 s).
    pub heartbeat: Duration,
    /// The file of the subscriptions made in the chat (`bbzoom subscribe`), read with this
    /// one; `None`: admins cannot subscribe from the chat.
    pub subscriptions_file: Option<PathBuf>,
}

/// `[zoom.chatbot]`: the Zoom Team Chat chatbot app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatbotConfig {
    /// Name of the credential holding the app's client id and secret.
    pub credential: String,
    /// The Zoom account the app is installed on.
    pub account_id: String,
    /// The bot's JID, ending `@xmpp.zoom.us`.
    pub(crate) robot_jid: String,
    /// The JID of the user the bot posts on behalf of (required by the send API).
    pub(crate) user_jid: String,
    /// Our budget for chat calls on this account (Zoom's plan limit: Free 2/s, Pro 20/s, Business+ 60/s).
    pub rate_limit: RateLimit,
    /// Chat calls Zoom allows per day on this account: the plan's (Free: 2,000; others: none) or
    /// `daily_limit = N`.
    pub daily_limit: Option<u32>,
}

/// `[zoom.delivery]`: how long and how much is kept for a channel Zoom does not take cards for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Give up retrying a card (dead letter) this long after it was queued. Default "24h".
    pub max_age: Duration,
    /// Once a channel's deliveries are failing, more cards than this queued since are folded
    /// into summary cards (see `delivery::outage_backlog`). Default 10.
    pub fold_after: usize,
}

/// `[zoom.channels.NAME]`: one place cards go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The table's name, which subscriptions refer to.
    pub name: String,
    /// Where and how its cards are sent.
    pub destination: Destination,
    /// How a build's card evolves there (always [`Style::Post`] for a webhook).
    pub style: Style,
}

/// Where a channel's cards are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A channel the chatbot posts to.
    Chatbot {
        /// Channel JID, ending `@conference.xmpp.zoom.us`.
        to_jid: String,
    },
    /// A Zoom Incoming Webhook connection.
    Webhook {
        /// The connection's endpoint, without a query (bbzoom adds `format`).
        url: Url,
        /// Name of the credential holding the connection's verification token.
        credential: String,
        /// What is posted: a card or plain text.
        format: WebhookFormat,
    },
    /// Direct messages from the chatbot to a person of `[people]`. Never written in the file:
    /// one is made for each person who asked for direct messages (see
    /// [`People::direct_messaged`]), under the name [`ZoomUser::direct_channel`].
    Direct { user: ZoomUser },
}

/// What an Incoming Webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// A card (`format=full`), the default.
    Full,
    /// Plain text (`format=message`).
    Message,
}

/// How a build's card evolves in a chatbot channel (webhooks cannot edit: always `Post`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One card per build, edited as the build moves on (`"update"`).
    Update,
    /// A new card per event (`"post"`).
    Post,
    /// One card, edited, and the final result also posted as a thread reply so people get
    /// notified (`"update+reply"`, the default for chatbot channels).
    UpdateAndReply,
}

/// `[[subscription]]`: which builds of which repository go to which channels. A repository
/// may have several (failures of `main` to one channel, everything of `release/*` to another).
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Where its table is written: the configuration file, or the chat's subscriptions file.
    pub origin: Origin,
    /// The repository URL as the admin wrote it.
    pub url: String,
    /// The repository, including which instance it lives on.
    pub repo: RepoId,
    /// Where its builds come from, each once, in [`SourceKind::ALL`] order: Pipelines (the
    /// Cloud default), commit statuses (always on Data Center), or both.
    pub sources: Vec<SourceKind>,
    /// The credentials polling it: the subscription's own (one, or a pool whose budgets its
    /// repositories share), else its instance's default.
    pub credentials: Vec<String>,
    /// Which branches, tags and bare commits it takes builds of.
    pub refs: RefFilter,
    pub events: BTreeSet<EventKind>,
    /// Names of `[zoom.channels]` entries.
    pub channels: Vec<String>,
    /// The failures that get a war room: an instant Zoom meeting per failing streak of a
    /// branch or tag and job, whose join link the card shows (`failed`, which
    /// `still_failing` refines, or `still_failing` alone). Empty: none, the default.
    pub meeting_on: BTreeSet<EventKind>,
}

impl Subscription {
    /// "pipelines", "pipelines and statuses".
    pub fn source_names(&self) -> String {
        let names: Vec<&str> = self.sources.iter().map(|source| source.name()).collect();
        names.join(" and ")
    }

    /// Its settings in one line, defaults included, as `bbzoom subscriptions` and the chat's
    /// `list` show them.
    pub fn describe(&self) -> String {
        let war_room = if self.meeting_on.is_empty() {
            String::new()
        } else {
            format!("; war room on {}", event_names(&self.meeting_on))
        };
        format!(
            "channels {}; source {}; credential {}; {}; events {}{war_room}",
            self.channels.join(", "),
            self.source_names(),
            self.credentials.join(", "),
            self.refs,
            event_names(&self.events)
        )
    }

    /// Whether `event` of a build for `git_ref` gets a war room here: announced, and a
    /// failure `meeting_on` names (or one it refines).
    pub(crate) fn wants_meeting(&self, git_ref: &BuildRef, event: EventKind) -> bool {
        self.wants(git_ref, event) && self.meeting_on.iter().any(|&w| event.satisfies(w))
    }

    /// Whether a build of this subscription's repository for `git_ref` with `event` is
    /// announced.
    pub fn wants(&self, git_ref: &BuildRef, event: EventKind) -> bool {
        self.refs.matches(git_ref) && self.events.iter().any(|&w| event.satisfies(w))
    }
}

/// Where a `[[subscription]]` table is written, for `bbzoom subscriptions`, the chat's `list`
/// and the commands that edit it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The file: the configuration, or its `[zoom.events] subscriptions_file`.
    pub file: PathBuf,
    /// The 1-based line of its `[[subscription]]` header in that file.
    pub line: usize,
    /// Its place among that file's `[[subscription]]` tables, from 0 (what `edit` takes).
    pub index: usize,
    /// `Some` when it is in the chat's subscriptions file: who made it and when, as the
    /// comment above it says (`bbzoom subscribe` writes one).
    pub chat: Option<ChatMade>,
}

/// A subscription made in the chat, as the comment `bbzoom subscribe` writes above its table
/// says ([`chat_comment`]); a table written there by hand has none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatMade {
    /// The Zoom user who made it (email or user id), as written.
    pub by: Option<String>,
    /// When (RFC 3339, UTC), as written.
    pub at: Option<String>,
    /// The `[zoom.channels]` name it was made in.
    pub channel: Option<String>,
}

/// What a comment saying who made a subscription in the chat begins with.
const CHAT_MARK: &str = "# Made in the chat by ";

/// The comment `bbzoom subscribe` writes above the table it adds: who (`by`, an email or user
/// id), in which channel and when (`at`, RFC 3339). Read back by [`ChatMade::above`].
pub fn chat_comment(by: &str, channel: &str, at: &str) -> String {
    // One line whatever the words hold, and nothing that would end the comment.
    let word = |text: &str| -> String {
        text.chars()
            .filter(|c| !c.is_control() || c.is_whitespace())
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .take(200)
            .collect()
    };
    format!(
        "{CHAT_MARK}{} at {} in #{}",
        word(by),
        word(at),
        word(channel)
    )
}

impl ChatMade {
    /// What the comment directly above line `line` (1-based, a table's header) of `text`
    /// says of who made the table, if it is one [`chat_comment`] wrote.
    pub(crate) fn above(text: &str, line: usize) -> ChatMade {
        let lines: Vec<&str> = text.lines().take(line.saturating_sub(1)).collect();
        let comment = lines
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .find_map(|l| l.trim().strip_prefix(CHAT_MARK));
        let Some(rest) = comment else {
            return ChatMade::default();
        };
        let (by, rest) = rest.split_once(" at ").unwrap_or((rest, ""));
        let (at, channel) = rest.split_once(" in #").unwrap_or((rest, ""));
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ChatMade {
            by: some(by),
            at: some(at),
            channel: some(channel),
        }
    }
}

impl std::fmt::Display for Origin {
    /// "config.toml line 12", or "chat, by jane@example.com at 2025-06-01T10:00:00Z
    /// (chat-subscriptions.toml line 4)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = format!("{} line {}", self.file.display(), self.line);
        match &self.chat {
            None => f.write_str(&place),
            Some(made) => {
                f.write_str("chat")?;
                if let Some(by) = &made.by {
                    write!(f, ", by {by}")?;
                }
                if let Some(at) = &made.at {
                    write!(f, " at {at}")?;
                }
                write!(f, " ({place})")
            }
        }
    }
}

/// `branches`, `tags` and `commits`: which builds a subscription takes, by what they ran
/// for. What the admin did not filter out is taken: without the keys, every branch, every
/// tag and every bare commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefFilter {
    /// Branch patterns; a branch build matching any is taken. Empty: no branch builds.
    pub branches: Vec<RefGlob>,
    /// Tag patterns; a tag build matching any is taken. Empty: no tag builds.
    pub tags: Vec<RefGlob>,
    /// Builds of a bare commit (custom pipelines run on a commit).
    pub commits: bool,
}

/// The events as the file would name them: "all" when it is every one.
pub fn event_names(events: &BTreeSet<EventKind>) -> String {
    if events.len() == EventKind::ALL.len() {
        return "all".into();
    }
    let names: Vec<&str> = events.iter().map(|e| e.config_name()).collect();
    names.join(", ")
}

impl std::fmt::Display for RefFilter {
    /// "branches main, release/*; tags v*; bare commits": what the filter takes, in the
    /// configuration's words ("no branches", "no tags", "no bare commits" for what it leaves
    /// out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |word: &str, globs: &[RefGlob]| {
            if globs.is_empty() {
                format!("no {word}")
            } else {
                let patterns: Vec<&str> = globs.iter().map(RefGlob::as_str).collect();
                format!("{word} {}", patterns.join(", "))
            }
        };
        let commits = if self.commits {
            "bare commits"
        } else {
            "no bare commits"
        };
        write!(
            f,
            "{}; {}; {commits}",
            list("branches", &self.branches),
            list("tags", &self.tags)
        )
    }
}

impl RefFilter {
    /// Every branch, tag and commit: the default.
    pub fn everything() -> RefFilter {
        RefFilter {
            branches: vec![RefGlob::any()],
            tags: vec![RefGlob::any()],
            commits: true,
        }
    }

    /// Whether a build for `git_ref` is taken.
    pub fn matches(&self, git_ref: &BuildRef) -> bool {
        match git_ref {
            BuildRef::Branch(name) => self.branches.iter().any(|g| g.matches(name)),
            BuildRef::Tag(name) => self.tags.iter().any(|g| g.matches(name)),
            BuildRef::Commit => self.commits,
        }
    }
}

/// A build both filters take, described ("branch main", "tag v1.2", or with `commits`, "a
/// bare commit").
fn common_ref(a: &RefFilter, b: &RefFilter, commits: bool) -> Option<String> {
    let both = |left: &[RefGlob], right: &[RefGlob]| {
        left.iter()
            .flat_map(|l| right.iter().map(move |r| (l, r)))
            .find_map(|(l, r)| l.overlap(r))
    };
    both(&a.branches, &b.branches)
        .map(|name| format!("branch {name}"))
        .or_else(|| both(&a.tags, &b.tags).map(|name| format!("tag {name}")))
        .or_else(|| (commits && a.commits && b.commits).then(|| "a bare commit".to_owned()))
}

/// One repository read through one source, with every subscription it serves: what a
/// scheduler polls. A repository two subscriptions name is still polled once per source, and
/// a channel two of them name gets each card once.
#[derive(Debug, Clone)]
pub struct Watch {
    pub repo: RepoId,
    pub source: SourceKind,
    /// The credential it is polled with: one of `pool`, the least loaded.
    pub credential: String,
    /// The credentials its subscriptions name (the same for every one: validated).
    pub pool: Vec<String>,
    /// The first subscription's URL, for messages.
    pub url: String,
    /// The subscriptions of `repo` that read `source`, in file order.
    pub subscriptions: Vec<Subscription>,
    /// The repository's subscriptions that read its Pipelines (for a statuses watch: where
    /// each pipeline run is announced already, so the status Pipelines posts for it is not).
    pub pipelines: Vec<Subscription>,
    /// `[people]`, the same for every watch: whom a failing build mentions and messages.
    pub people: Arc<People>,
}

impl Watch {
    /// The channels `event` of a build for `git_ref` goes to: every channel of every
    /// subscription that wants it, each once.
    pub fn channels_for(&self, git_ref: &BuildRef, event: EventKind) -> BTreeSet<&str> {
        self.subscriptions
            .iter()
            .filter(|s| s.wants(git_ref, event))
            .flat_map(|s| s.channels.iter().map(String::as_str))
            .collect()
    }

    /// [`Watch::channels_for`] a status Pipelines posted for one of its own runs: but for a
    /// channel that hears the run as a pipeline already (a subscription of the repository's
    /// Pipelines names it and takes `git_ref`), so each run is told once in each channel.
    pub fn channels_for_pipeline_status(
        &self,
        git_ref: &BuildRef,
        event: EventKind,
    ) -> BTreeSet<&str> {
        let as_pipeline = self.hearing_as_pipeline(git_ref);
        let mut channels = self.channels_for(git_ref, event);
        channels.retain(|c| !as_pipeline.contains(c));
        channels
    }

    /// Whether some channel of this watch hears, for `git_ref`, the statuses Pipelines posts
    /// for its own runs (whatever the event): false when every channel taking `git_ref`
    /// hears the runs as pipelines already, and such statuses are nobody's news here.
    pub fn hears_pipeline_statuses(&self, git_ref: &BuildRef) -> bool {
        let as_pipeline = self.hearing_as_pipeline(git_ref);
        self.subscriptions
            .iter()
            .filter(|s| s.refs.matches(git_ref))
            .flat_map(|s| &s.channels)
            .any(|c| !as_pipeline.contains(c.as_str()))
    }

    /// The channels that hear `git_ref`'s Pipelines runs as pipelines.
    fn hearing_as_pipeline(&self, git_ref: &BuildRef) -> BTreeSet<&str> {
        self.pipelines
            .iter()
            .filter(|s| s.refs.matches(git_ref))
            .flat_map(|s| s.channels.iter().map(String::as_str))
            .collect()
    }

    /// The channels where `event` of a build for `git_ref` shows a war room: those of the
    /// subscriptions that want one for it.
    pub(crate) fn meeting_channels(&self, git_ref: &BuildRef, event: EventKind) -> BTreeSet<&str> {
        self.subscriptions
            .iter()
            .filter(|s| s.wants_meeting(git_ref, event))
            .flat_map(|s| s.channels.iter().map(String::as_str))
            .collect()
    }

    /// Whether some subscription takes builds of `git_ref` at all: the statuses sources read
    /// only the branches and tags some subscription takes.
    pub(crate) fn follows(&self, git_ref: &BuildRef) -> bool {
        self.subscriptions.iter().any(|s| s.refs.matches(git_ref))
    }

    /// Whether some subscription takes tag builds: only then are tags listed.
    pub(crate) fn follows_tags(&self) -> bool {
        self.subscriptions.iter().any(|s| !s.refs.tags.is_empty())
    }
}

/// Two subscriptions of one repository that send some build to the same channel with
/// different events: the channel gets each card once, for the events of either, which may
/// not be what the admin meant. `bbzoom check` warns about each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// Indices into [`Config::subscriptions`], the first the earlier.
    pub first: usize,
    pub second: usize,
    pub channel: String,
    /// A build both take: "branch main", "tag v1.2", "a bare commit".
    pub example: String,
}

impl Config {
    /// Every [`Overlap`] between the subscriptions, in file order.
    pub fn overlaps(&self) -> Vec<Overlap> {
        let mut overlaps = Vec::new();
        for (i, a) in self.subscriptions.iter().enumerate() {
            for (j, b) in self.subscriptions.iter().enumerate().skip(i + 1) {
                let shares_source = a.sources.iter().any(|s| b.sources.contains(s));
                if a.repo != b.repo || !shares_source || a.events == b.events {
                    continue;
                }
                // Only pipelines run on a bare commit; statuses are always found at a ref.
                let pipelines = [a, b]
                    .iter()
                    .all(|s| s.sources.contains(&SourceKind::Pipelines));
                let Some(example) = common_ref(&a.refs, &b.refs, pipelines) else {
                    continue;
                };
                for channel in a.channels.iter().filter(|c| b.channels.contains(c)) {
                    overlaps.push(Overlap {
                        first: i,
                        second: j,
                        channel: channel.clone(),
                        example: example.clone(),
                    });
                }
            }
        }
        overlaps
    }

    /// The request budget of `credential`: its `[bitbucket.budgets]` entry, else the budget of
    /// the instance its subscriptions are on (its `rate_limit`, else its default). A written
    /// one is a ceiling; Cloud's default follows what Bitbucket advertises.
    pub fn budget_for(&self, credential: &str) -> BudgetSpec {
        if let Some(budget) = self.bitbucket.budgets.get(credential) {
            return BudgetSpec::from(*budget);
        }
        let instance = self
            .subscriptions
            .iter()
            .find(|s| s.credentials.iter().any(|c| c == credential))
            .map(|s| s.repo.instance.as_str());
        match instance.and_then(|name| self.bitbucket.datacenter.get(name)) {
            Some(dc) => dc.rate_limit,
            None => self.bitbucket.rate_limit,
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = Config::read(path)?;
        Config::parse(path, &text)
    }

    /// The control socket the daemon of the file at `path` listens on, read leniently: the
    /// daemon keeps running on its last good configuration when the file is broken, and
    /// `bbzoom status` must still reach it then. Only if `[daemon]` itself cannot be read is
    /// the full validation's error returned.
    pub fn control_socket(path: &Path) -> Result<PathBuf, ConfigError> {
        let text = Config::read(path)?;
        let daemon = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|doc| doc.get("daemon")?.as_table().cloned());
        let key = |name: &str| daemon.as_ref()?.get(name)?.as_str().map(PathBuf::from);
        let dir = path.parent().unwrap_or(Path::new(""));
        match (key("control_socket"), key("state_dir")) {
            (Some(socket), _) => Ok(dir.join(socket)),
            (None, Some(state)) => Ok(dir.join(state).join("control.sock")),
            (None, None) => Config::parse(path, &text).map(|c| c.daemon.control_socket),
        }
    }

    /// The text of the file at `path`, read as every reader of the configuration reads it
    /// ([`crate::files::read_text`]: a regular file, bounded).
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        crate::files::read_text(path)
            .map(|(text, _)| text)
            .map_err(|e| ConfigError::io(path, &e))
    }

    /// Validates `text` as if read from `path` (the path only appears in messages and resolves
    /// relative paths). A `[zoom.events] subscriptions_file` it names is read from disk (a
    /// missing one holds no subscriptions), as the daemon would read it.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        validate::parse(path, text, None)
    }

    /// As [`Config::parse`], with `chat` as the text of its `[zoom.events]
    /// subscriptions_file` instead of what is on disk: what the configuration would be with the
    /// chat's file changed so.
    pub fn parse_with_chat(path: &Path, text: &str, chat: &str) -> Result<Config, ConfigError> {
        validate::parse(path, text, Some(chat))
    }
}
