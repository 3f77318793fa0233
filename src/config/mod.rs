//! Configuration: the admin's TOML file becomes a validated [`Config`].
//!
//! Like ripgrep's low-level/high-level arguments, parsing happens in two steps: `raw` mirrors the
//! file (serde, unknown keys rejected, spans kept), then [`Config::load`] validates it into the
//! types below, which the rest of bbzoom uses and which cannot hold an invalid value. Every error
//! names the file, the line and the key, and says what to do.

pub mod edit;
mod error;
mod raw;

pub use error::ConfigError;

use crate::domain::{EventKind, RepoId};
use crate::glob::BranchGlob;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

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
    /// Default budget of each Cloud credential (900 per hour, under Bitbucket's 1,000).
    pub rate_limit: RateLimit,
    /// `[bitbucket.datacenter.NAME]`: Data Center / Server instances, by name.
    pub datacenter: BTreeMap<String, DataCenterConfig>,
    /// `[bitbucket.budgets]`: a budget for a named credential, overriding its instance's default.
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
    /// Default budget of its credentials (3,600 per hour).
    pub rate_limit: RateLimit,
}

/// Where a subscription's builds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Bitbucket Cloud Pipelines.
    Pipelines,
    /// Build statuses posted on commits by external CI (Cloud or Data Center).
    Statuses,
}

impl SourceKind {
    pub const ALL: [SourceKind; 2] = [SourceKind::Pipelines, SourceKind::Statuses];

    /// Its name in the configuration file, and wherever else it is written down.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Pipelines => "pipelines",
            SourceKind::Statuses => "statuses",
        }
    }

    pub fn from_name(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A request budget: at most `requests` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
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
}

/// `[zoom.chatbot]`: the Zoom Team Chat chatbot app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatbotConfig {
    /// Name of the credential holding the app's client id and secret.
    pub credential: String,
    /// The Zoom account the app is installed on.
    pub account_id: String,
    /// The bot's JID, ending `@xmpp.zoom.us`.
    pub robot_jid: String,
    /// The JID of the user the bot posts on behalf of (required by the send API).
    pub user_jid: String,
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
    /// More cards than this waiting for one channel are folded into one summary card. Default 10.
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

/// `[[subscription]]`: which builds of which repository go to which channels.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The repository URL as the admin wrote it.
    pub url: String,
    /// The repository, including which instance it lives on.
    pub repo: RepoId,
    /// Pipelines (Cloud only; the default there) or statuses (always on Data Center).
    pub source: SourceKind,
    /// The credential polling it: the subscription's own, else its instance's default.
    pub credential: String,
    /// Branch patterns; a build on a branch matching any of them is announced.
    pub branches: Vec<BranchGlob>,
    pub events: BTreeSet<EventKind>,
    /// Names of `[zoom.channels]` entries.
    pub channels: Vec<String>,
}

impl Subscription {
    /// Whether a build of this subscription's repository on `branch` with `event` is announced.
    pub fn wants(&self, branch: Option<&str>, event: EventKind) -> bool {
        let branch_ok = match branch {
            Some(b) => self.branches.iter().any(|g| g.matches(b)),
            None => false,
        };
        branch_ok && self.events.iter().any(|&w| event.satisfies(w))
    }
}

impl Config {
    /// The request budget of `credential`: its `[bitbucket.budgets]` entry, else the default of
    /// the instance its subscriptions are on.
    pub fn budget_for(&self, credential: &str) -> RateLimit {
        if let Some(budget) = self.bitbucket.budgets.get(credential) {
            return *budget;
        }
        let instance = self
            .subscriptions
            .iter()
            .find(|s| s.credential == credential)
            .map(|s| s.repo.instance.as_str());
        match instance.and_then(|name| self.bitbucket.datacenter.get(name)) {
            Some(dc) => dc.rate_limit,
            None => self.bitbucket.rate_limit,
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        Config::parse(path, &text)
    }

    /// The control socket the daemon of the file at `path` listens on, read leniently: the
    /// daemon keeps running on its last good configuration when the file is broken, and
    /// `bbzoom status` must still reach it then. Only if `[daemon]` itself cannot be read is
    /// the full validation's error returned.
    pub fn control_socket(path: &Path) -> Result<PathBuf, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
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

    /// Validates `text` as if read from `path` (the path only appears in messages and resolves
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        raw::parse(path, text)
    }
}
