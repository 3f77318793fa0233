//! The configuration file as written: the `Raw*` types mirror the TOML one to one.
//!
//! serde rejects unknown keys, wrong types and missing required keys; every value keeps its
//! byte span ([`Spanned`]) so that `validate` can point at the line. Nothing here has a
//! meaning yet: `validate` turns these into [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) daemon: RawDaemon,
    #[serde(default)]
    pub(super) polling: RawPolling,
    #[serde(default)]
    pub(super) bitbucket: RawBitbucket,
    /// Spanned so "no channels" can point at `[zoom]`.
    pub(super) zoom: Spanned<RawZoom>,
    /// Spanned so an error about a key left out can point at its `[[subscription]]`.
    #[serde(default)]
    pub(super) subscription: Vec<Spanned<RawSubscription>>,
    /// Optional: whom a failing build mentions.
    pub(super) people: Option<Spanned<RawPeople>>,
}

/// `[people]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeople {
    pub(super) direct_message: Option<Spanned<bool>>,
    /// Bitbucket identity to a Zoom user: a string, or a table `{ zoom = "...",
    /// direct_message = true }`, checked by hand so the message can say so.
    #[serde(default)]
    pub(super) accounts: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// `[daemon]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) state_dir: Spanned<String>,
    pub(super) request_timeout: Option<Spanned<String>>,
    pub(super) credentials: Spanned<String>,
    pub(super) identity: Spanned<String>,
    pub(super) control_socket: Option<Spanned<String>>,
    pub(super) metrics: Option<Spanned<String>>,
}

/// `[polling]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolling {
    pub(super) hot: Option<Spanned<String>>,
    pub(super) warm: Option<Spanned<String>>,
    pub(super) cold: Option<Spanned<String>>,
    pub(super) warm_for: Option<Spanned<String>>,
    pub(super) settle: Option<Spanned<String>>,
    /// A duration, or `"off"`.
    pub(super) scan: Option<Spanned<String>>,
}

/// `[bitbucket]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBitbucket {
    pub(super) api_url: Option<Spanned<String>>,
    pub(super) web_url: Option<Spanned<String>>,
    pub(super) oauth_url: Option<Spanned<String>>,
    pub(super) credential: Option<Spanned<String>>,
    pub(super) rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub(super) datacenter: BTreeMap<Spanned<String>, RawDataCenter>,
    #[serde(default)]
    pub(super) budgets: BTreeMap<Spanned<String>, RawRateLimit>,
}

/// `[bitbucket.datacenter.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataCenter {
    pub(super) url: Spanned<String>,
    pub(super) credential: Spanned<String>,
    pub(super) rate_limit: Option<RawRateLimit>,
}

/// `{ requests = N, per = "DURATION" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) requests: Spanned<u32>,
    pub(super) per: Spanned<String>,
}

/// `[zoom]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZoom {
    pub(super) oauth_url: Option<Spanned<String>>,
    pub(super) api_url: Option<Spanned<String>>,
    /// Optional: only channels with a `to_jid` need it.
    pub(super) chatbot: Option<RawChatbot>,
    /// Optional for serde so that a missing table gets the "define a channel" message.
    pub(super) channels: Option<Spanned<BTreeMap<Spanned<String>, RawChannel>>>,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    /// Optional: chat commands over Zoom's event WebSocket.
    pub(super) events: Option<RawEvents>,
    /// Optional: who hosts war-room meetings.
    pub(super) meetings: Option<Spanned<RawMeetings>>,
}

/// `[zoom.meetings]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeetings {
    pub(super) host: Option<Spanned<String>>,
}

/// `[zoom.events]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) credential: Spanned<String>,
    pub(super) subscription_id: Spanned<String>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) user: Spanned<String>,
    pub(super) channels: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) admins: Vec<Spanned<String>>,
    pub(super) heartbeat: Option<Spanned<String>>,
    pub(super) subscriptions_file: Option<Spanned<String>>,
}

/// `[zoom.chatbot]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChatbot {
    pub(super) credential: Spanned<String>,
    pub(super) account_id: Spanned<String>,
    pub(super) robot_jid: Spanned<String>,
    pub(super) user_jid: Spanned<String>,
    pub(super) plan: Option<Spanned<String>>,
    pub(super) rate_limit: Option<RawRateLimit>,
    pub(super) daily_limit: Option<Spanned<u32>>,
}

/// `[zoom.channels.NAME]`: exactly one of `to_jid` (chatbot) and `webhook_url` (Incoming
/// Webhook), which the checks enforce so that the message can say what to do.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    pub(super) to_jid: Option<Spanned<String>>,
    pub(super) webhook_url: Option<Spanned<String>>,
    /// Webhooks only: the verification token's credential.
    pub(super) credential: Option<Spanned<String>>,
    /// Webhooks only.
    pub(super) format: Option<Spanned<String>>,
    pub(super) style: Option<Spanned<String>>,
}

/// `[zoom.delivery]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) max_age: Option<Spanned<String>>,
    pub(super) fold_after: Option<Spanned<u32>>,
}

/// `[[subscription]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubscription {
    pub(super) repository: Spanned<String>,
    /// A string or an array of strings: checked by hand so the message can say so.
    pub(super) source: Option<Spanned<toml::Value>>,
    /// A string or an array of strings.
    pub(super) credential: Option<Spanned<toml::Value>>,
    pub(super) branches: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) tags: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) commits: Option<Spanned<bool>>,
    pub(super) events: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) channels: Spanned<Vec<Spanned<String>>>,
    pub(super) meeting_on: Option<Spanned<Vec<Spanned<String>>>>,
}
