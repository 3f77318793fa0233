//! What the configuration means where the file is silent, and the fixed vocabularies its
//! keys choose from (Zoom plans, channel styles, webhook formats). The validation reads these;
//! `config.example.toml` and README show the same values.

use super::{BudgetOrigin, BudgetSpec, RateLimit, Style, WebhookFormat};
use crate::domain::{HOUR, less_margin};
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
/// Bitbucket Cloud's default budget: it follows `X-RateLimit-Limit`, which Bitbucket sends
/// access tokens (repository, project, workspace) on `/2.0/repositories/*`, less the margin.
/// It starts at the base limit of repository data, 1,000 requests per rolling hour per
/// credential, less the margin (900), since OAuth consumers and API tokens never get the
/// header and keep that limit. It rises to at most Bitbucket's documented maximum scaled limit,
/// 10,000 per hour, less the margin (9,000), whatever a header says: the clamp of a value
/// that is absurd or wrong. Source: support.atlassian.com/bitbucket-cloud/docs/api-request-limits/
/// and Atlassian's "Introducing Scaled Rate Limits for Bitbucket Cloud API" (1,000 plus 10 per
/// paid seat above 100, capped at 10,000).
pub(super) const DEFAULT_CLOUD_BUDGET: BudgetSpec = BudgetSpec {
    start: RateLimit {
        requests: less_margin(1000) as u32,
        per: HOUR,
    },
    ceiling: less_margin(10_000) as u32,
    origin: BudgetOrigin::Default,
};
/// One per second on average: far below what Data Center's rate limiting allows with its default
/// settings (bursts of 60, then 5 per second per user), and a load its admins do not notice.
/// Its own ceiling: Data Center advertises its token bucket (`X-RateLimit-FillRate` per
/// `X-RateLimit-Interval-Seconds`) only when its admin turned rate limiting on, and a rate
/// below this one lowers the budget, but no header raises it.
pub(super) const DEFAULT_DATACENTER_BUDGET: BudgetSpec = BudgetSpec {
    start: RateLimit {
        requests: 3600,
        per: HOUR,
    },
    ceiling: 3600,
    origin: BudgetOrigin::Default,
};
/// Shown where a Data Center URL is expected.
pub(super) const EXAMPLE_DATACENTER_URL: &str = "https://git.example.com";
pub(super) const DEFAULT_ZOOM_OAUTH: &str = "https://zoom.us/oauth/token";
pub(super) const DEFAULT_ZOOM_API: &str = "https://api.zoom.us/v2";
/// Zoom's event WebSocket (`[zoom.events] url`).
pub(super) const DEFAULT_ZOOM_EVENTS: &str = "wss://ws.zoom.us/ws";
/// How often a heartbeat goes over the event WebSocket: Zoom asks for one every 30 s.
pub(super) const DEFAULT_HEARTBEAT: &str = "30s";
/// The longest `[zoom.events] heartbeat`: Zoom closes a connection silent for much longer.
pub(super) const LONGEST_HEARTBEAT: &str = "5m";
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
/// The longest each kind of duration may be, as an admin would write it. Every duration is at
/// least 1ms (0 is refused) and at most one of these: long past any sane setting, and short
/// enough that no arithmetic on it can overflow (README's configuration reference lists them).
pub(super) const LONGEST_REQUEST_TIMEOUT: &str = "10m";
/// `[polling]` hot, warm, cold, settle and scan, and every rate limit's `per`.
pub(super) const LONGEST_INTERVAL: &str = "24h";
/// `[polling] warm_for`: a week.
pub(super) const LONGEST_WARM_FOR: &str = "168h";
/// `[zoom.delivery] max_age`: thirty days.
pub(super) const LONGEST_MAX_AGE: &str = "720h";
/// The most requests a rate limit may allow per its `per`.
pub(super) const MOST_REQUESTS: u32 = 1_000_000;
/// The most `[zoom.chatbot] daily_limit` may be.
pub(super) const MOST_DAILY_LIMIT: u32 = 10_000_000;
/// The most `[zoom.delivery] fold_after` may be.
pub(super) const MOST_FOLD_AFTER: u32 = 10_000;
pub(super) const DEFAULT_FOLD_AFTER: usize = 10;

/// The Zoom plan called `name`.
pub(super) fn find_plan(name: &str) -> Option<ZoomPlan> {
    PLANS.iter().find(|p| p.name == name).copied()
}
