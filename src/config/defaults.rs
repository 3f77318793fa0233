//! What the configuration means where the file is silent, and the fixed vocabularies its
//! keys choose from (Zoom plans, channel styles, webhook formats). The validation reads these;
//! `config.example.toml` and README show the same values.

use super::{RateLimit, Style, WebhookFormat};
use std::time::Duration;

pub(super) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// `[polling]` defaults, as an admin would write them (they appear in order errors).
pub(super) const DEFAULT_HOT: &str = "15s";
pub(super) const DEFAULT_WARM: &str = "1m";
pub(super) const DEFAULT_COLD: &str = "10m";
pub(super) const DEFAULT_WARM_FOR: &str = "30m";
pub(super) const DEFAULT_SETTLE: &str = "10m";
pub(super) const DEFAULT_SCAN: &str = "30s";
pub(super) const DEFAULT_BITBUCKET_API: &str = "https://api.bitbucket.org/2.0";
pub(super) const DEFAULT_BITBUCKET_WEB: &str = "https://bitbucket.org";
pub(super) const DEFAULT_BITBUCKET_OAUTH: &str = "https://bitbucket.org/site/oauth2/access_token";
/// Under Bitbucket Cloud's 1,000 per hour per user, leaving room for people using the same
/// account.
pub(super) const DEFAULT_CLOUD_LIMIT: RateLimit = RateLimit {
    requests: 900,
    per: Duration::from_secs(3600),
};
/// One per second on average: far below what Data Center's rate limiting allows with its default
/// settings (bursts of 60, then 5 per second per user), and a load its admins do not notice.
pub(super) const DEFAULT_DATACENTER_LIMIT: RateLimit = RateLimit {
    requests: 3600,
    per: Duration::from_secs(3600),
};
/// Shown where a Data Center URL is expected.
pub(super) const EXAMPLE_DATACENTER_URL: &str = "https://git.example.com";
pub(super) const DEFAULT_ZOOM_OAUTH: &str = "https://zoom.us/oauth/token";
pub(super) const DEFAULT_ZOOM_API: &str = "https://api.zoom.us/v2";
/// Domain of Zoom user and bot JIDs.
pub(super) const USER_DOMAIN: &str = "@xmpp.zoom.us";
/// Domain of Zoom channel JIDs.
pub(super) const CHANNEL_DOMAIN: &str = "@conference.xmpp.zoom.us";
/// A Zoom plan's limits on chat calls.
#[derive(Clone, Copy)]
pub(super) struct ZoomPlan {
    pub(super) name: &'static str,
    pub(super) per_second: u32,
    /// `None`: the plan has no daily cap.
    pub(super) per_day: Option<u32>,
}
/// Zoom Team Chat plans and their chat message limits.
pub(super) const PLANS: [ZoomPlan; 3] = [
    ZoomPlan {
        name: "free",
        per_second: 2,
        per_day: Some(2000),
    },
    ZoomPlan {
        name: "pro",
        per_second: 20,
        per_day: None,
    },
    ZoomPlan {
        name: "business",
        per_second: 60,
        per_day: None,
    },
];
/// Pro: the plan most teams with a chatbot app have.
pub(super) const DEFAULT_PLAN: ZoomPlan = PLANS[1];
/// Shown where an Incoming Webhook URL is expected.
pub(super) const EXAMPLE_WEBHOOK_URL: &str =
    "https://integrations.zoom.us/chat/webhooks/incomingwebhook/XXXX";
/// The values of a channel's `style`.
pub(super) const STYLES: [(&str, Style); 3] = [
    ("update", Style::Update),
    ("post", Style::Post),
    ("update+reply", Style::UpdateAndReply),
];
/// Edited in place, and the result replied in a thread so people are notified of it.
pub(super) const DEFAULT_STYLE: Style = Style::UpdateAndReply;
/// The values of a webhook channel's `format`.
pub(super) const FORMATS: [(&str, WebhookFormat); 2] = [
    ("full", WebhookFormat::Full),
    ("message", WebhookFormat::Message),
];
/// `[zoom.delivery]` defaults.
pub(super) const DEFAULT_MAX_AGE: &str = "24h";
pub(super) const DEFAULT_FOLD_AFTER: usize = 10;

/// The Zoom plan called `name`.
pub(super) fn find_plan(name: &str) -> Option<ZoomPlan> {
    PLANS.iter().find(|p| p.name == name).copied()
}
