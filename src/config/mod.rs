//! Configuration: the admin's TOML file becomes a validated [`Config`].
//!
//! Like ripgrep's low-level/high-level arguments, parsing happens in two steps: `raw` mirrors the
//! file (serde, unknown keys rejected, spans kept), then [`Config::load`] validates it into the
//! types below, which the rest of bbzoom uses and which cannot hold an invalid value. Every error
//! names the file, the line and the key, and says what to do.

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
    pub bitbucket: BitbucketConfig,
    pub zoom: ZoomConfig,
    pub subscriptions: Vec<Subscription>,
}

/// `[daemon]`: where state lives and how often to look.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Directory of the sled store (created if missing).
    pub state_dir: PathBuf,
    /// Fixed interval between two polls of one repository.
    pub poll_interval: Duration,
    /// Timeout of one HTTP request to Bitbucket or Zoom.
    pub request_timeout: Duration,
    /// The age-encrypted credentials file.
    pub credentials_file: PathBuf,
    /// The age X25519 identity that decrypts `credentials_file`.
    pub identity_file: PathBuf,
}

/// `[bitbucket]`: the Bitbucket Cloud instance polled.
#[derive(Debug, Clone)]
pub struct BitbucketConfig {
    /// REST API base, `https://api.bitbucket.org/2.0` unless pointed at the simulator.
    pub api_url: Url,
    /// Web host repository URLs are written with, `https://bitbucket.org`.
    pub web_url: Url,
    /// Name of the credential (in the credentials file) used for every request.
    pub credential: String,
    /// Our own request budget for that credential.
    pub rate_limit: RateLimit,
}

/// A request budget: at most `requests` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

/// `[zoom]`: the chatbot that posts and the channels it posts to.
#[derive(Debug, Clone)]
pub struct ZoomConfig {
    /// OAuth token endpoint, `https://zoom.us/oauth/token`.
    pub oauth_url: Url,
    /// REST API base, `https://api.zoom.us/v2`.
    pub api_url: Url,
    pub chatbot: ChatbotConfig,
    /// Named destinations, keyed by the name subscriptions use.
    pub channels: BTreeMap<String, Channel>,
}

/// `[zoom.chatbot]`: the Zoom Team Chat chatbot app.
#[derive(Debug, Clone)]
pub struct ChatbotConfig {
    /// Name of the credential holding the app's client id and secret.
    pub credential: String,
    pub account_id: String,
    /// The bot's JID, ending `@xmpp.zoom.us`.
    pub robot_jid: String,
    /// The JID of the user the bot posts on behalf of (required by the send API).
    pub user_jid: String,
    /// Our budget for chat calls on this account (Zoom's plan limit: Free 2/s, Pro 20/s, Business+ 60/s).
    pub rate_limit: RateLimit,
}

/// `[zoom.channels.NAME]`: one place cards go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    /// Channel JID, ending `@conference.xmpp.zoom.us`.
    pub to_jid: String,
}

/// `[[subscription]]`: which builds of which repository go to which channels.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The repository URL as the admin wrote it.
    pub url: String,
    pub repo: RepoId,
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
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        Config::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (the path only appears in messages and resolves
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        raw::parse(path, text)
    }
}
