//! Validation of the file as written ([`super::shapes`]) into a [`Config`]: everything serde
//! cannot know (URLs, durations, JIDs, globs, cross references between sections), checked in
//! file order, stopping at the first error, which names the file, line, key and the fix.

use super::defaults::*;
use super::diagnose::{closest, empty_message, guess, is_bare, segment, shape_error, syntax_error};
use super::error::line_column;
use super::shapes::*;
use super::{
    BitbucketConfig, BudgetSpec, Channel, ChatbotConfig, Config, ConfigError, DaemonConfig,
    DataCenterConfig, DeliveryConfig, Destination, EventsConfig, MeetingsConfig, People, Person,
    PollingConfig, RateLimit, RefFilter, SourceKind, Style, Subscription, Watch, WebhookFormat,
    ZoomConfig,
};
use crate::domain::{CLOUD, EventKind, ZoomUser};
use crate::glob::RefGlob;
use crate::repo_url::{Site, parse_repo_url};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;
use toml::de::DeTable;
use url::Url;

/// Parses and validates `text`, read from `path`, with the `[zoom.events]
/// subscriptions_file` it names: `chat` as its text, or (`None`) as read from disk.
///
/// The chat's file holds `[[subscription]]` tables only (checked first, against that file), so
/// it is validated as if appended to the configuration: one set of subscriptions, checked by
/// the same code in one pass, every error then placed in the file and line it is about.
pub(super) fn parse(path: &Path, text: &str, chat: Option<&str>) -> Result<Config, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| syntax_error(path, text, &e))?;
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| shape_error(path, text, doc.get_ref(), &e))?;
    let checker = Checker {
        path,
        text,
        chat: None,
    };
    let named = raw.zoom.get_ref().events.as_ref();
    let Some(file) = named.and_then(|e| e.subscriptions_file.as_ref()) else {
        return checker.config(raw);
    };
    let chat_path = checker.file(file, "zoom.events.subscriptions_file")?;
    if chat_path == path {
        return Err(checker.err(
            file.span(),
            "zoom.events.subscriptions_file",
            "names this configuration file itself; name a file of its own for the \
             subscriptions made in the chat, like \"chat-subscriptions.toml\""
                .into(),
        ));
    }
    let chat_text = match chat {
        Some(chat) => chat.to_owned(),
        None => match crate::files::read_text(&chat_path) {
            Ok((chat, _)) => chat,
            // Nobody subscribed from the chat yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ConfigError::io(&chat_path, &e)),
        },
    };
    only_subscriptions(&chat_path, &chat_text, path)?;
    let first_table = raw.subscription.len();
    let combined = format!("{text}\n{chat_text}");
    let part = ChatPart {
        path: &chat_path,
        text: &chat_text,
        lines_before: text.matches('\n').count() + 1,
        first_table,
    };
    let (lines_before, chat_path) = (part.lines_before, chat_path.clone());
    let relocate = |e: ConfigError| e.relocated(&chat_path, lines_before, first_table);
    let doc = DeTable::parse(&combined).map_err(|e| relocate(syntax_error(path, &combined, &e)))?;
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| relocate(shape_error(path, &combined, doc.get_ref(), &e)))?;
    Checker {
        path,
        text: &combined,
        chat: Some(part),
    }
    .config(raw)
    .map_err(relocate)
}

/// Checks that the chat's subscriptions file `text` (at `path`, named by the configuration at
/// `config`) is TOML holding `[[subscription]]` tables and nothing else.
fn only_subscriptions(path: &Path, text: &str, config: &Path) -> Result<(), ConfigError> {
    DeTable::parse(text).map_err(|e| syntax_error(path, text, &e))?;
    let doc = text.parse::<toml_edit::DocumentMut>().map_err(|e| {
        ConfigError::at(
            path,
            text,
            e.span(),
            None,
            format!("invalid TOML: {}", e.message()),
        )
    })?;
    for (key, item) in doc.iter() {
        if key == "subscription" && item.is_array_of_tables() {
            continue;
        }
        let span = doc.as_table().key(key).and_then(toml_edit::Key::span);
        return Err(ConfigError::at(
            path,
            text,
            span,
            Some(key.to_owned()),
            format!(
                "this file holds the subscriptions made in the chat, as [[subscription]] \
                 tables only; move {key:?} to {}",
                config.display()
            ),
        ));
    }
    Ok(())
}

/// The chat's subscriptions file as validation sees it: appended to the configuration's
/// text after a newline.
struct ChatPart<'a> {
    path: &'a Path,
    text: &'a str,
    /// Lines of the combined text before the file's first.
    lines_before: usize,
    /// How many `[[subscription]]` tables the configuration has: the file's first is this one.
    first_table: usize,
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1h30m"`; `None` if malformed or overflowing.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let count: u32 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(count)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A `[polling]` interval, with what an order error says about it.
struct Interval {
    name: &'static str,
    value: Duration,
    /// As written, or the default marked as such.
    shown: String,
    /// Where it was written; `None` for a default.
    span: Option<Range<usize>>,
}

/// Validation of the raw file, with what it needs to make located errors.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    /// The chat's subscriptions file, appended to `text`, if the configuration names one.
    chat: Option<ChatPart<'a>>,
}

impl Checker<'_> {
    fn err(&self, span: Range<usize>, key: &str, message: String) -> ConfigError {
        ConfigError::at(
            self.path,
            self.text,
            Some(span),
            Some(key.to_owned()),
            message,
        )
    }

    fn config(&self, mut raw: RawConfig) -> Result<Config, ConfigError> {
        let daemon = self.daemon(raw.daemon)?;
        let polling = self.polling(raw.polling)?;
        // Whether a budget is used is only known once the subscriptions are.
        let budgets = std::mem::take(&mut raw.bitbucket.budgets);
        let mut bitbucket = self.bitbucket(raw.bitbucket)?;
        let zoom = self.zoom(raw.zoom)?;
        let (subscriptions, mut watches) =
            self.subscriptions(raw.subscription, &bitbucket, &zoom)?;
        bitbucket.budgets = self.budgets(budgets, &subscriptions)?;
        let people = Arc::new(self.people(raw.people, &zoom)?);
        for watch in &mut watches {
            watch.people = people.clone();
        }
        Ok(Config {
            source: self.path.to_owned(),
            daemon,
            polling,
            bitbucket,
            zoom,
            subscriptions,
            watches,
            people,
        })
    }

    fn daemon(&self, raw: RawDaemon) -> Result<DaemonConfig, ConfigError> {
        let state_dir = self.file(&raw.state_dir, "daemon.state_dir")?;
        let (control_socket, span, key) = match &raw.control_socket {
            Some(raw) => (
                self.file(raw, "daemon.control_socket")?,
                raw.span(),
                "daemon.control_socket",
            ),
            None => (
                state_dir.join("control.sock"),
                raw.state_dir.span(),
                "daemon.state_dir",
            ),
        };
        if control_socket.as_os_str().len() > super::MAX_SOCKET_PATH {
            return Err(self.err(
                span,
                key,
                format!(
                    "makes the control socket {} longer than the {} bytes its path may have; \
                     set [daemon] control_socket to a shorter path",
                    control_socket.display(),
                    super::MAX_SOCKET_PATH
                ),
            ));
        }
        let metrics = match &raw.metrics {
            None => None,
            Some(address) => Some(self.metrics_address(address)?),
        };
        Ok(DaemonConfig {
            state_dir,
            control_socket,
            metrics,
            request_timeout: self.duration_or(
                raw.request_timeout,
                "daemon.request_timeout",
                DEFAULT_REQUEST_TIMEOUT,
                LONGEST_REQUEST_TIMEOUT,
            )?,
            credentials_file: self.file(&raw.credentials, "daemon.credentials")?,
            identity_file: self.file(&raw.identity, "daemon.identity")?,
        })
    }

    /// `[daemon] metrics`: an address and port on the loopback interface only, since bbzoom
    /// opens no port to the network.
    fn metrics_address(&self, raw: &Spanned<String>) -> Result<std::net::SocketAddr, ConfigError> {
        let key = "daemon.metrics";
        let address: std::net::SocketAddr = raw.get_ref().parse().map_err(|_| {
            self.err(
                raw.span(),
                key,
                format!(
                    "{:?} is not an address and port; write e.g. metrics = \"127.0.0.1:9464\"",
                    raw.get_ref()
                ),
            )
        })?;
        if !address.ip().is_loopback() {
            return Err(self.err(
                raw.span(),
                key,
                format!(
                    "{address} is not a loopback address: bbzoom serves metrics to this machine \
                     only; use 127.0.0.1 or [::1] (and a local agent or tunnel to reach it)"
                ),
            ));
        }
        Ok(address)
    }

    fn polling(&self, raw: RawPolling) -> Result<PollingConfig, ConfigError> {
        let hot = self.interval(raw.hot, "hot", DEFAULT_HOT, LONGEST_INTERVAL)?;
        let warm = self.interval(raw.warm, "warm", DEFAULT_WARM, LONGEST_INTERVAL)?;
        let cold = self.interval(raw.cold, "cold", DEFAULT_COLD, LONGEST_INTERVAL)?;
        self.in_order(&hot, &warm)?;
        self.in_order(&warm, &cold)?;
        Ok(PollingConfig {
            hot: hot.value,
            warm: warm.value,
            cold: cold.value,
            warm_for: self
                .interval(raw.warm_for, "warm_for", DEFAULT_WARM_FOR, LONGEST_WARM_FOR)?
                .value,
            settle: self
                .interval(raw.settle, "settle", DEFAULT_SETTLE, LONGEST_INTERVAL)?
                .value,
            scan: match raw.scan {
                Some(off) if off.get_ref() == "off" => None,
                Some(bad) if parse_duration(bad.get_ref()).is_none() => {
                    return Err(self.err(
                        bad.span(),
                        "polling.scan",
                        format!(
                            "invalid scan {:?}; write a duration like \"30s\" or \"1m\", or \"off\" \
                             to find every change by polling each repository alone",
                            bad.get_ref()
                        ),
                    ));
                }
                scan => Some(
                    self.interval(scan, "scan", DEFAULT_SCAN, LONGEST_INTERVAL)?
                        .value,
                ),
            },
        })
    }

    /// The `[polling]` duration `name`, at most `longest`, or its default.
    fn interval(
        &self,
        raw: Option<Spanned<String>>,
        name: &'static str,
        default: &'static str,
        longest: &str,
    ) -> Result<Interval, ConfigError> {
        let Some(raw) = raw else {
            let value = parse_duration(default).expect("default durations are valid");
            return Ok(Interval {
                name,
                value,
                shown: format!("{default:?} (the default)"),
                span: None,
            });
        };
        Ok(Interval {
            name,
            value: self.duration(&raw, &format!("polling.{name}"), longest)?,
            shown: format!("{:?}", raw.get_ref()),
            span: Some(raw.span()),
        })
    }

    /// Checks `shorter <= longer`, blaming the one that was written (the later if both were:
    /// the defaults are in order, so at least one was).
    fn in_order(&self, shorter: &Interval, longer: &Interval) -> Result<(), ConfigError> {
        if shorter.value <= longer.value {
            return Ok(());
        }
        let (blamed, span) = [longer, shorter]
            .into_iter()
            .find_map(|i| i.span.clone().map(|span| (i.name, span)))
            .expect("the defaults are in order, so one of the two was written");
        Err(self.err(
            span,
            &format!("polling.{blamed}"),
            format!(
                "{} = {} is longer than {} = {}; the intervals must satisfy hot <= warm <= cold \
                 (a busier repository is polled more often)",
                shorter.name, shorter.shown, longer.name, longer.shown
            ),
        ))
    }

    fn bitbucket(&self, raw: RawBitbucket) -> Result<BitbucketConfig, ConfigError> {
        let api_url = self.url(raw.api_url, "bitbucket.api_url", DEFAULT_BITBUCKET_API)?;
        let web_url = self.url(raw.web_url, "bitbucket.web_url", DEFAULT_BITBUCKET_WEB)?;
        // Each site configured so far, and where, so one server is not configured twice.
        let mut sites = vec![(Site::of(&web_url), "[bitbucket] web_url".to_owned())];
        let mut datacenter = BTreeMap::new();
        for (name, raw) in raw.datacenter {
            let key = format!("bitbucket.datacenter.{}", segment(name.get_ref()));
            self.table_name(&name, &key, "an instance")?;
            if name.get_ref().eq_ignore_ascii_case(CLOUD) {
                return Err(self.err(
                    name.span(),
                    &key,
                    format!(
                        "the name {CLOUD:?} is reserved for Bitbucket Cloud, which is configured \
                         in [bitbucket]; rename the table, e.g. [bitbucket.datacenter.corp]"
                    ),
                ));
            }
            let url_key = format!("{key}.url");
            let url_span = raw.url.span();
            let url = self.url(Some(raw.url), &url_key, EXAMPLE_DATACENTER_URL)?;
            let site = Site::of(&url);
            if let Some((_, first)) = sites.iter().find(|(s, _)| *s == site) {
                return Err(self.err(
                    url_span,
                    &url_key,
                    format!(
                        "{site} is already configured as {first}; configure each server once \
                         (remove this instance, or give its subscriptions to that one)"
                    ),
                ));
            }
            sites.push((site, format!("[{key}] url")));
            let name = name.into_inner();
            let instance = DataCenterConfig {
                name: name.clone(),
                url,
                credential: self.name(raw.credential, &format!("{key}.credential"))?,
                rate_limit: self.budget_or(
                    raw.rate_limit,
                    &format!("{key}.rate_limit"),
                    DEFAULT_DATACENTER_BUDGET,
                )?,
            };
            datacenter.insert(name, instance);
        }
        Ok(BitbucketConfig {
            api_url,
            web_url,
            oauth_url: self.url(
                raw.oauth_url,
                "bitbucket.oauth_url",
                DEFAULT_BITBUCKET_OAUTH,
            )?,
            credential: raw
                .credential
                .map(|c| self.name(c, "bitbucket.credential"))
                .transpose()?,
            rate_limit: self.budget_or(
                raw.rate_limit,
                "bitbucket.rate_limit",
                DEFAULT_CLOUD_BUDGET,
            )?,
            datacenter,
            budgets: BTreeMap::new(),
        })
    }

    /// `[bitbucket.budgets]`, each naming a credential some subscription polls with: a budget
    /// for any other name would silently do nothing.
    fn budgets(
        &self,
        raw: BTreeMap<Spanned<String>, RawRateLimit>,
        subscriptions: &[Subscription],
    ) -> Result<BTreeMap<String, RateLimit>, ConfigError> {
        let used: BTreeSet<&str> = subscriptions
            .iter()
            .flat_map(|s| s.credentials.iter().map(String::as_str))
            .collect();
        let mut budgets = BTreeMap::new();
        for (credential, limit) in raw {
            let key = format!("bitbucket.budgets.{}", segment(credential.get_ref()));
            if !used.contains(credential.get_ref().as_str()) {
                return Err(self.err(
                    credential.span(),
                    &key,
                    format!(
                        "unused budget: no subscription polls with the credential {:?}{}; \
                         remove it or check the name",
                        credential.get_ref(),
                        guess(closest(credential.get_ref(), used.iter().copied()))
                    ),
                ));
            }
            let limit = self.rate_limit(limit, &key)?;
            budgets.insert(credential.into_inner(), limit);
        }
        Ok(budgets)
    }

    fn zoom(&self, raw: Spanned<RawZoom>) -> Result<ZoomConfig, ConfigError> {
        let zoom_span = raw.span();
        let raw = raw.into_inner();
        let oauth_url = self.url(raw.oauth_url, "zoom.oauth_url", DEFAULT_ZOOM_OAUTH)?;
        let api_url = self.url(raw.api_url, "zoom.api_url", DEFAULT_ZOOM_API)?;
        let chatbot = raw.chatbot.map(|c| self.chatbot(c)).transpose()?;
        let channels = self.channels(raw.channels, zoom_span, chatbot.is_some())?;
        let events = raw
            .events
            .map(|e| self.zoom_events(e, &channels))
            .transpose()?;
        let meetings = self.meetings(raw.meetings, events.as_ref())?;
        Ok(ZoomConfig {
            oauth_url,
            api_url,
            channels,
            chatbot,
            delivery: self.delivery(raw.delivery)?,
            events,
            meetings,
        })
    }

    /// `[zoom.meetings]`: who hosts the war rooms the Server-to-Server app of `[zoom.events]`
    /// creates; `None` without that app.
    fn meetings(
        &self,
        raw: Option<Spanned<RawMeetings>>,
        events: Option<&EventsConfig>,
    ) -> Result<Option<MeetingsConfig>, ConfigError> {
        let Some(events) = events else {
            return match raw {
                None => Ok(None),
                Some(raw) => Err(self.err(
                    raw.span(),
                    "zoom.meetings",
                    "war rooms are created by the Server-to-Server app of [zoom.events], and \
                     this file has no [zoom.events]; add it, or remove [zoom.meetings]"
                        .into(),
                )),
            };
        };
        let host = match raw.and_then(|raw| raw.into_inner().host) {
            None => events.user.clone(),
            Some(host) => {
                let text = host.get_ref().trim();
                if text != "me" && !is_zoom_user(text) {
                    return Err(self.err(
                        host.span(),
                        "zoom.meetings.host",
                        format!(
                            "{text:?} is neither a Zoom user id nor an e-mail address; write \
                             the e-mail address of the user who hosts war rooms, like \
                             \"oncall@example.com\", or remove the key for [zoom.events] user"
                        ),
                    ));
                }
                text.to_owned()
            }
        };
        Ok(Some(MeetingsConfig { host }))
    }

    /// `[zoom.events]`; `channels` are `[zoom.channels]`, which command channels must name.
    fn zoom_events(
        &self,
        raw: RawEvents,
        channels: &BTreeMap<String, Channel>,
    ) -> Result<EventsConfig, ConfigError> {
        let url = match raw.url {
            None => Url::parse(DEFAULT_ZOOM_EVENTS).expect("the default URL is valid"),
            Some(url) => self.url_with(
                &url,
                "zoom.events.url",
                DEFAULT_ZOOM_EVENTS,
                Some("remove it: bbzoom adds subscriptionId and access_token itself"),
            )?,
        };
        if raw.channels.get_ref().is_empty() {
            return Err(self.err(
                raw.channels.span(),
                "zoom.events.channels",
                "no channel is named: list the [zoom.channels] whose messages are commands, \
                 like channels = [\"ci\"]"
                    .into(),
            ));
        }
        let mut command_channels: Vec<String> = Vec::new();
        for name in raw.channels.into_inner() {
            let key = "zoom.events.channels";
            let chatbot_channel = channels
                .get(name.get_ref())
                .is_some_and(|c| matches!(c.destination, Destination::Chatbot { .. }));
            if !chatbot_channel {
                let known = channels.keys().map(String::as_str);
                let why = if channels.contains_key(name.get_ref()) {
                    "is an Incoming Webhook channel, which cannot answer: name a channel with a \
                     to_jid"
                        .to_owned()
                } else {
                    format!(
                        "is not a [zoom.channels] table{}",
                        guess(closest(name.get_ref(), known))
                    )
                };
                return Err(self.err(name.span(), key, format!("{:?} {why}", name.get_ref())));
            }
            if command_channels.contains(name.get_ref()) {
                return Err(self.err(
                    name.span(),
                    key,
                    format!("{:?} is named twice; remove one", name.get_ref()),
                ));
            }
            command_channels.push(name.into_inner());
        }
        let mut admins: Vec<String> = Vec::new();
        for admin in raw.admins {
            let text = admin.get_ref().trim();
            if !is_zoom_user(text) {
                return Err(self.err(
                    admin.span(),
                    "zoom.events.admins",
                    format!(
                        "{text:?} is neither a Zoom user id nor an email address; write the \
                         user's email, like \"jane@example.com\", or the user id from the Zoom \
                         admin portal"
                    ),
                ));
            }
            // Zoom compares emails without case; ids are kept as written.
            let admin_id = if text.contains('@') {
                text.to_lowercase()
            } else {
                text.to_owned()
            };
            if !admins.contains(&admin_id) {
                admins.push(admin_id);
            }
        }
        Ok(EventsConfig {
            credential: self.name(raw.credential, "zoom.events.credential")?,
            subscription_id: self.name(raw.subscription_id, "zoom.events.subscription_id")?,
            url,
            user: self.name(raw.user, "zoom.events.user")?,
            channels: command_channels,
            admins,
            heartbeat: self.duration_or(
                raw.heartbeat,
                "zoom.events.heartbeat",
                parse_duration(DEFAULT_HEARTBEAT).expect("the default is a valid duration"),
                LONGEST_HEARTBEAT,
            )?,
            subscriptions_file: raw
                .subscriptions_file
                .map(|file| self.file(&file, "zoom.events.subscriptions_file"))
                .transpose()?,
        })
    }

    fn chatbot(&self, raw: RawChatbot) -> Result<ChatbotConfig, ConfigError> {
        let plan = match raw.plan {
            None => DEFAULT_PLAN,
            Some(plan) => find_plan(plan.get_ref()).ok_or_else(|| {
                let names: Vec<&str> = PLANS.iter().map(|p| p.name).collect();
                self.err(
                    plan.span(),
                    "zoom.chatbot.plan",
                    format!(
                        "unknown Zoom plan {:?}; use one of: {} (business also for higher plans)",
                        plan.get_ref(),
                        names.join(", ")
                    ),
                )
            })?,
        };
        let plan_limit = RateLimit {
            requests: plan.per_second,
            per: Duration::from_secs(1),
        };
        Ok(ChatbotConfig {
            credential: self.name(raw.credential, "zoom.chatbot.credential")?,
            account_id: self.name(raw.account_id, "zoom.chatbot.account_id")?,
            robot_jid: self.jid(
                raw.robot_jid,
                "zoom.chatbot.robot_jid",
                USER_DOMAIN,
                "copy the Bot JID from the chatbot app's Features page in the Zoom App Marketplace",
            )?,
            user_jid: self.jid(
                raw.user_jid,
                "zoom.chatbot.user_jid",
                USER_DOMAIN,
                "use the JID of the Zoom user the bot posts on behalf of",
            )?,
            rate_limit: self.rate_limit_or(
                raw.rate_limit,
                "zoom.chatbot.rate_limit",
                plan_limit,
            )?,
            daily_limit: match raw.daily_limit {
                None => plan.per_day,
                Some(limit) if !(1..=MOST_DAILY_LIMIT).contains(limit.get_ref()) => {
                    return Err(self.err(
                        limit.span(),
                        "zoom.chatbot.daily_limit",
                        format!(
                            "a daily limit of {} is out of range: 0 would never let the chatbot \
                             post, and it may be at most {MOST_DAILY_LIMIT}; set the account's \
                             limit, or remove the key for the plan's (free: 2000, pro and \
                             business: none)",
                            limit.get_ref()
                        ),
                    ));
                }
                Some(limit) => Some(limit.into_inner()),
            },
        })
    }

    /// `[zoom.channels]`, checked in file order; `chatbot` is whether `[zoom.chatbot]` exists.
    fn channels(
        &self,
        raw: Option<Spanned<BTreeMap<Spanned<String>, RawChannel>>>,
        zoom_span: Range<usize>,
        chatbot: bool,
    ) -> Result<BTreeMap<String, Channel>, ConfigError> {
        let (span, raw) = raw.map_or((zoom_span, BTreeMap::new()), |c| (c.span(), c.into_inner()));
        if raw.is_empty() {
            return Err(self.err(
                span,
                "zoom.channels",
                "no channels defined; add at least one table like [zoom.channels.ci] with a \
                 to_jid (a channel the chatbot posts to) or a webhook_url (an Incoming Webhook), \
                 for subscriptions to post to"
                    .into(),
            ));
        }
        let mut raw: Vec<_> = raw.into_iter().collect();
        raw.sort_by_key(|(name, _)| name.span().start);
        let mut channels = BTreeMap::new();
        for (name, channel) in raw {
            let key = format!("zoom.channels.{}", segment(name.get_ref()));
            self.table_name(&name, &key, "a channel")?;
            let channel = self.channel(&name, channel, &key, chatbot)?;
            channels.insert(channel.name.clone(), channel);
        }
        Ok(channels)
    }

    /// One `[zoom.channels.NAME]` table, at `key`.
    fn channel(
        &self,
        name: &Spanned<String>,
        raw: RawChannel,
        key: &str,
        chatbot: bool,
    ) -> Result<Channel, ConfigError> {
        let style_key = format!("{key}.style");
        let style = raw
            .style
            .as_ref()
            .map(|style| {
                self.choice(
                    style,
                    &style_key,
                    &STYLES,
                    "style",
                    "\"update\" (one card, edited as the build moves on), \"post\" (a new card \
                     per event) or \"update+reply\" (edited, and the result also replied in a \
                     thread so people are notified)",
                )
            })
            .transpose()?;
        let (destination, style) = match (raw.to_jid, raw.webhook_url) {
            (Some(to_jid), Some(url)) => {
                // Blame the one written second.
                let (later, span) = if url.span().start > to_jid.span().start {
                    ("webhook_url", url.span())
                } else {
                    ("to_jid", to_jid.span())
                };
                return Err(self.err(
                    span,
                    &format!("{key}.{later}"),
                    format!(
                        "[{key}] has both to_jid and webhook_url; keep to_jid for a channel the \
                         chatbot posts to, or webhook_url for an Incoming Webhook, or split it \
                         into two channels"
                    ),
                ));
            }
            (None, None) => {
                return Err(self.err(
                    name.span(),
                    key,
                    format!(
                        "[{key}] has no destination; add to_jid = \
                         \"NAME{CHANNEL_DOMAIN}\" for a channel the chatbot posts to, or \
                         webhook_url = \"{EXAMPLE_WEBHOOK_URL}\" for an Incoming Webhook"
                    ),
                ));
            }
            (Some(to_jid), None) => {
                for (field, value) in [("credential", &raw.credential), ("format", &raw.format)] {
                    if let Some(value) = value {
                        return Err(self.err(
                            value.span(),
                            &format!("{key}.{field}"),
                            format!(
                                "{field} is only for webhook channels (with webhook_url); remove \
                                 it: the chatbot posts to a to_jid channel with [zoom.chatbot] \
                                 credential"
                            ),
                        ));
                    }
                }
                let jid_key = format!("{key}.to_jid");
                let span = to_jid.span();
                let to_jid = self.jid(
                    to_jid,
                    &jid_key,
                    CHANNEL_DOMAIN,
                    "copy the channel JID from the channel's details in Zoom Team Chat",
                )?;
                if !chatbot {
                    return Err(self.err(
                        span,
                        &jid_key,
                        "add a [zoom.chatbot] section: a to_jid channel is posted to by the \
                         chatbot (or post through an Incoming Webhook with webhook_url instead)"
                            .into(),
                    ));
                }
                (
                    Destination::Chatbot { to_jid },
                    style.unwrap_or(DEFAULT_STYLE),
                )
            }
            (None, Some(url)) => {
                let url = self.url_with(
                    &url,
                    &format!("{key}.webhook_url"),
                    EXAMPLE_WEBHOOK_URL,
                    Some(
                        "remove it: bbzoom sets the query itself; choose a card or plain text \
                         with format = \"full\" or \"message\"",
                    ),
                )?;
                let credential_key = format!("{key}.credential");
                let credential = match raw.credential {
                    Some(credential) => self.name(credential, &credential_key)?,
                    None => {
                        return Err(self.err(
                            name.span(),
                            &credential_key,
                            format!(
                                "missing key \"credential\" in [{key}]: a webhook channel needs \
                                 the name of the credentials file entry holding the \
                                 connection's verification token; add it, e.g. credential = \
                                 \"alerts-webhook\""
                            ),
                        ));
                    }
                };
                let format = raw
                    .format
                    .map(|format| {
                        self.choice(
                            &format,
                            &format!("{key}.format"),
                            &FORMATS,
                            "format",
                            "\"full\" (a card) or \"message\" (plain text)",
                        )
                    })
                    .transpose()?
                    .unwrap_or(WebhookFormat::Full);
                if let (Some(style), Some(written)) = (style, &raw.style)
                    && style != Style::Post
                {
                    return Err(self.err(
                        written.span(),
                        &style_key,
                        format!(
                            "style {:?} is not possible on a webhook channel: Zoom returns no \
                             message id for webhook posts, so cards cannot be edited; remove \
                             the key or set style = \"post\"",
                            written.get_ref()
                        ),
                    ));
                }
                (
                    Destination::Webhook {
                        url,
                        credential,
                        format,
                    },
                    Style::Post,
                )
            }
        };
        Ok(Channel {
            name: name.get_ref().clone(),
            destination,
            style,
        })
    }

    fn delivery(&self, raw: RawDelivery) -> Result<DeliveryConfig, ConfigError> {
        let default_max_age = parse_duration(DEFAULT_MAX_AGE).expect("default durations are valid");
        let fold_after = match raw.fold_after {
            None => DEFAULT_FOLD_AFTER,
            Some(n) if !(1..=MOST_FOLD_AFTER).contains(n.get_ref()) => {
                return Err(self.err(
                    n.span(),
                    "zoom.delivery.fold_after",
                    format!(
                        "fold_after must be at least 1 and at most {MOST_FOLD_AFTER}: it is how \
                         many cards may be queued for a channel whose deliveries are failing \
                         before its backlog is folded into summary cards"
                    ),
                ));
            }
            Some(n) => usize::try_from(n.into_inner()).unwrap_or(usize::MAX),
        };
        Ok(DeliveryConfig {
            max_age: self.duration_or(
                raw.max_age,
                "zoom.delivery.max_age",
                default_max_age,
                LONGEST_MAX_AGE,
            )?,
            fold_after,
        })
    }

    /// One of the named values in `table` (`what` for the message, `help` listing them).
    fn choice<T: Copy>(
        &self,
        raw: &Spanned<String>,
        key: &str,
        table: &[(&'static str, T)],
        what: &str,
        help: &str,
    ) -> Result<T, ConfigError> {
        let value = raw.get_ref();
        table
            .iter()
            .find(|&&(name, _)| name == value)
            .map(|&(_, t)| t)
            .ok_or_else(|| {
                self.err(
                    raw.span(),
                    key,
                    format!(
                        "unknown {what} {value:?}{}; use {help}",
                        guess(closest(value, table.iter().map(|&(name, _)| name)))
                    ),
                )
            })
    }

    /// `[people]`: Bitbucket identities to Zoom users, checked in file order; `zoom` says
    /// whether a direct message can be sent (the chatbot) and an e-mail address looked up
    /// (the Server-to-Server app of `[zoom.events]`).
    fn people(
        &self,
        raw: Option<Spanned<RawPeople>>,
        zoom: &ZoomConfig,
    ) -> Result<People, ConfigError> {
        let chatbot_channels = (zoom.channels.values())
            .filter(|c| matches!(c.destination, Destination::Chatbot { .. }))
            .map(|c| c.name.clone())
            .collect();
        let Some(raw) = raw else {
            return Ok(People {
                accounts: BTreeMap::new(),
                chatbot_channels,
            });
        };
        let raw = raw.into_inner();
        let everyone = raw.direct_message.as_ref().is_some_and(|d| *d.get_ref());
        if let Some(flag) = raw.direct_message.as_ref().filter(|d| *d.get_ref()) {
            self.can_message(flag.span(), "people.direct_message", zoom)?;
        }
        let mut entries: Vec<_> = raw.accounts.into_iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut accounts: BTreeMap<String, Person> = BTreeMap::new();
        // Where each identity was named, for "named twice".
        let mut named_at: BTreeMap<String, String> = BTreeMap::new();
        for (account, value) in entries {
            let key = format!("people.accounts.{}", segment(account.get_ref()));
            let id = account.get_ref().trim();
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.err(
                    account.span(),
                    &key,
                    "a Bitbucket account is named by its uuid (\"{...}\"), account id,                      nickname, Data Center user slug or e-mail address, without spaces;                      write e.g. \"{0a1b2c3d-...}\" = \"jane@example.com\""
                        .into(),
                ));
            }
            let (zoom_user, zoom_span, zoom_key, own_flag) = match value.get_ref() {
                toml::Value::String(user) => (user.clone(), value.span(), key.clone(), None),
                toml::Value::Table(table) => {
                    for name in table.keys() {
                        if !["zoom", "direct_message"].contains(&name.as_str()) {
                            return Err(self.err(
                                value.span(),
                                &format!("{key}.{}", segment(name)),
                                format!(
                                    "unknown key {name:?}{}; a person takes zoom and \
                                     direct_message",
                                    guess(closest(name, ["zoom", "direct_message"]))
                                ),
                            ));
                        }
                    }
                    let user = table.get("zoom").and_then(toml::Value::as_str);
                    let Some(user) = user else {
                        return Err(self.err(
                            value.span(),
                            &format!("{key}.zoom"),
                            "zoom is missing or not a string: write the person's Zoom e-mail \
                             address or JID, like { zoom = \"jane@example.com\", \
                             direct_message = true }"
                                .into(),
                        ));
                    };
                    let flag = match table.get("direct_message") {
                        None => None,
                        Some(toml::Value::Boolean(flag)) => Some(*flag),
                        Some(_) => {
                            return Err(self.err(
                                value.span(),
                                &format!("{key}.direct_message"),
                                "direct_message takes true or false".into(),
                            ));
                        }
                    };
                    (user.to_owned(), value.span(), format!("{key}.zoom"), flag)
                }
                _ => {
                    return Err(self.err(
                        value.span(),
                        &key,
                        "a person is a Zoom user's e-mail address or JID, or a table; write \
                         it like \"jane@example.com\" or { zoom = \"jane@example.com\", \
                         direct_message = true }"
                            .into(),
                    ));
                }
            };
            let zoom_user = self.zoom_user(&zoom_user, zoom_span.clone(), &zoom_key, zoom)?;
            let direct_message = own_flag.unwrap_or(everyone);
            if own_flag == Some(true) {
                self.can_message(zoom_span.clone(), &format!("{key}.direct_message"), zoom)?;
            }
            let normal = id.to_lowercase();
            if let Some(first) = named_at.get(&normal) {
                return Err(self.err(
                    account.span(),
                    &key,
                    format!(
                        "{id:?} is already named by {first} (identities are compared without \
                         case); keep one"
                    ),
                ));
            }
            named_at.insert(normal.clone(), key.clone());
            accounts.insert(
                normal,
                Person {
                    zoom: zoom_user,
                    direct_message,
                },
            );
        }
        Ok(People {
            accounts,
            chatbot_channels,
        })
    }

    /// A Zoom user as `[people]` names them: a user JID, or an e-mail address (whose JID is
    /// looked up, which takes the Server-to-Server app of `[zoom.events]`).
    fn zoom_user(
        &self,
        text: &str,
        span: Range<usize>,
        key: &str,
        zoom: &ZoomConfig,
    ) -> Result<ZoomUser, ConfigError> {
        let text = text.trim();
        if text.ends_with(CHANNEL_DOMAIN) {
            return Err(self.err(
                span,
                key,
                format!(
                    "{text:?} is a channel's JID; a person is mentioned and messaged by their \
                     own: an e-mail address or a JID ending {USER_DOMAIN}"
                ),
            ));
        }
        if let Some(local) = text.strip_suffix(USER_DOMAIN) {
            let valid = !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(self.err(
                    span,
                    key,
                    format!(
                        "{text:?} is not a user's JID: it must look like ID{USER_DOMAIN}, the \
                         ID of letters, digits, '.', '_' and '-'"
                    ),
                ));
            }
            return Ok(ZoomUser::Jid(text.to_owned()));
        }
        let email = text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>|\"'`".contains(c))
        });
        if !email {
            return Err(self.err(
                span,
                key,
                format!(
                    "{text:?} is neither an e-mail address nor a Zoom user's JID; write the \
                     person's Zoom e-mail address, like \"jane@example.com\", or their JID, \
                     like \"abcdefghijklmnopqrstuv{USER_DOMAIN}\""
                ),
            ));
        }
        if zoom.events.is_none() {
            return Err(self.err(
                span,
                key,
                format!(
                    "a Zoom user named by e-mail address is found through the Server-to-Server \
                     app of [zoom.events] (scope user:read:user:admin), which this file has \
                     not; add [zoom.events] (see README, \"People\"), or write {text:?}'s JID, \
                     like \"abcdefghijklmnopqrstuv{USER_DOMAIN}\""
                ),
            ));
        }
        Ok(ZoomUser::Email(text.to_lowercase()))
    }

    /// A direct message is sent by the chatbot: `[zoom.chatbot]` must exist.
    fn can_message(
        &self,
        span: Range<usize>,
        key: &str,
        zoom: &ZoomConfig,
    ) -> Result<(), ConfigError> {
        if zoom.chatbot.is_none() {
            return Err(self.err(
                span,
                key,
                "direct messages are sent by the chatbot, and there is no [zoom.chatbot]; add \
                 it, or set direct_message = false"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The subscriptions in file order, and what polling them takes: each (repository,
    /// source) once, with one credential.
    fn subscriptions(
        &self,
        raw: Vec<Spanned<RawSubscription>>,
        bitbucket: &BitbucketConfig,
        zoom: &ZoomConfig,
    ) -> Result<(Vec<Subscription>, Vec<Watch>), ConfigError> {
        let channels = &zoom.channels;
        let datacenter: Vec<(&str, &Url)> = bitbucket
            .datacenter
            .values()
            .map(|dc| (dc.name.as_str(), &dc.url))
            .collect();
        let mut subscriptions = Vec::with_capacity(raw.len());
        let mut watches: Vec<Watch> = Vec::new();
        // Where each watch's credential was settled: its subscription and line.
        let mut settled_by: Vec<(usize, usize)> = Vec::new();
        for (i, sub) in raw.into_iter().enumerate() {
            let key = format!("subscription[{i}]");
            let header = sub.span();
            let line = line_column(self.text, header.start).0;
            let sub = sub.into_inner();
            let repo_key = format!("{key}.repository");
            let span = sub.repository.span();
            let repo = parse_repo_url(sub.repository.get_ref(), &bitbucket.web_url, &datacenter)
                .map_err(|message| self.err(span.clone(), &repo_key, message))?;
            let instance = bitbucket.datacenter.get(&repo.instance);
            let credential_key = format!("{key}.credential");
            let credential_span = sub
                .credential
                .as_ref()
                .map_or(header.clone(), Spanned::span);
            let credentials = match (&sub.credential, instance) {
                (Some(own), _) => self.credential_pool(own, &credential_key)?,
                (None, Some(dc)) => vec![dc.credential.clone()],
                (None, None) => vec![bitbucket.credential.clone().ok_or_else(|| {
                    self.err(
                        header.clone(),
                        &credential_key,
                        "no credential: set [bitbucket] credential or this subscription's \
                         credential"
                            .into(),
                    )
                })?],
            };
            let refs = RefFilter {
                branches: self.patterns(sub.branches, &format!("{key}.branches"))?,
                tags: self.patterns(sub.tags, &format!("{key}.tags"))?,
                commits: sub.commits.as_ref().is_none_or(|c| *c.get_ref()),
            };
            if refs.branches.is_empty() && refs.tags.is_empty() && !refs.commits {
                return Err(self.err(
                    header,
                    &key,
                    "this subscription takes no build at all (branches and tags are empty and \
                     commits is false); list the branches or tags to announce, or remove it"
                        .into(),
                ));
            }
            let events = self.events(sub.events, &key)?;
            let subscription = Subscription {
                origin: self.origin(i, line),
                url: sub.repository.into_inner(),
                sources: self.sources(sub.source, &key, instance.is_some())?,
                repo,
                credentials,
                refs,
                channels: self.subscription_channels(sub.channels, &key, channels)?,
                meeting_on: self.meeting_on(sub.meeting_on, &key, &events, zoom)?,
                events,
            };
            for &source in &subscription.sources {
                let found = watches
                    .iter()
                    .position(|w| w.repo == subscription.repo && w.source == source);
                let Some(at) = found else {
                    watches.push(Watch {
                        repo: subscription.repo.clone(),
                        source,
                        // Settled below, once every watch is known.
                        credential: String::new(),
                        pool: subscription.credentials.clone(),
                        url: subscription.url.clone(),
                        subscriptions: vec![subscription.clone()],
                        pipelines: Vec::new(),
                        // Set once `[people]` is read.
                        people: Arc::default(),
                    });
                    settled_by.push((i, line));
                    continue;
                };
                let watch = &mut watches[at];
                if watch.pool != subscription.credentials {
                    let (first, first_line) = settled_by[at];
                    let named = shown_pool(&watch.pool);
                    return Err(self.err(
                        credential_span,
                        &credential_key,
                        format!(
                            "{}'s {} are already polled with credential {named} by {}, and \
                             each source of a repository is polled once, with the same \
                             credentials; use {named} here too",
                            subscription.repo,
                            source.name(),
                            self.table_place(first, first_line),
                        ),
                    ));
                }
                watch.subscriptions.push(subscription.clone());
            }
            subscriptions.push(subscription);
        }
        assign_credentials(&mut watches);
        for watch in &mut watches {
            watch.pipelines = subscriptions
                .iter()
                .filter(|s| s.repo == watch.repo && s.sources.contains(&SourceKind::Pipelines))
                .cloned()
                .collect();
        }
        Ok((subscriptions, watches))
    }

    /// Where the `index`-th `[[subscription]]` (of the configuration, then of the chat's
    /// file), whose header is at `line` of the text checked, is written.
    fn origin(&self, index: usize, line: usize) -> super::Origin {
        match &self.chat {
            Some(chat) if index >= chat.first_table => {
                let line = line.saturating_sub(chat.lines_before);
                super::Origin {
                    file: chat.path.to_owned(),
                    line,
                    index: index - chat.first_table,
                    chat: Some(super::ChatMade::above(chat.text, line)),
                }
            }
            _ => super::Origin {
                file: self.path.to_owned(),
                line,
                index,
                chat: None,
            },
        }
    }

    /// `subscription[2] at line 40`, naming the chat's file for a table in it.
    fn table_place(&self, index: usize, line: usize) -> String {
        let origin = self.origin(index, line);
        match origin.chat {
            None => format!("subscription[{index}] at line {line}"),
            Some(_) => format!(
                "subscription[{}] of {} at line {}",
                origin.index,
                origin.file.display(),
                origin.line
            ),
        }
    }

    /// Where a subscription's builds come from: `"pipelines"`, `"statuses"` or a list of
    /// both. Pipelines by default on Cloud, statuses on Data Center, which has no Pipelines.
    fn sources(
        &self,
        raw: Option<Spanned<toml::Value>>,
        sub_key: &str,
        datacenter: bool,
    ) -> Result<Vec<SourceKind>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(vec![if datacenter {
                SourceKind::Statuses
            } else {
                SourceKind::Pipelines
            }]);
        };
        let key = format!("{sub_key}.source");
        let span = raw.span();
        let names = self.string_or_list(
            &raw,
            &key,
            r#"source = "pipelines" or source = ["pipelines", "statuses"]"#,
        )?;
        if names.is_empty() {
            return Err(self.err(
                span,
                &key,
                "the list is empty; name at least one of \"pipelines\" and \"statuses\", or \
                 remove the key for the default"
                    .into(),
            ));
        }
        let known = SourceKind::ALL.map(SourceKind::name);
        let mut sources = Vec::new();
        for value in names {
            let Some(source) = SourceKind::from_name(value) else {
                return Err(self.err(
                    span,
                    &key,
                    format!(
                        "unknown source {value:?}{}; use \"pipelines\" (Bitbucket Pipelines, \
                         Cloud only), \"statuses\" (build statuses other CI posts on commits) \
                         or both as [\"pipelines\", \"statuses\"]",
                        guess(closest(value, known))
                    ),
                ));
            };
            if datacenter && source == SourceKind::Pipelines {
                return Err(self.err(
                    span,
                    &key,
                    "Data Center has no Pipelines; use source = \"statuses\" (the default \
                     there)"
                        .into(),
                ));
            }
            if sources.contains(&source) {
                return Err(self.err(span, &key, format!("{value:?} is listed twice; keep one")));
            }
            sources.push(source);
        }
        sources.sort();
        Ok(sources)
    }

    /// `branches` or `tags`: absent, every name; an empty list, none.
    fn patterns(
        &self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Result<Vec<RefGlob>, ConfigError> {
        let Some(list) = raw else {
            return Ok(vec![RefGlob::any()]);
        };
        let mut globs = Vec::with_capacity(list.get_ref().len());
        for (j, pattern) in list.into_inner().into_iter().enumerate() {
            let glob = RefGlob::new(pattern.get_ref())
                .map_err(|message| self.err(pattern.span(), &format!("{key}[{j}]"), message))?;
            globs.push(glob);
        }
        Ok(globs)
    }

    fn events(
        &self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        sub_key: &str,
    ) -> Result<BTreeSet<EventKind>, ConfigError> {
        let Some(list) = raw else {
            return Ok(BTreeSet::from([EventKind::Failed, EventKind::Fixed]));
        };
        let key = format!("{sub_key}.events");
        self.non_empty(
            &list,
            &key,
            "remove the key for the default [\"failed\", \"fixed\"]",
        )?;
        let mut events = BTreeSet::new();
        for (j, name) in list.into_inner().into_iter().enumerate() {
            if name.get_ref() == "all" {
                events.extend(EventKind::ALL);
                continue;
            }
            let event = EventKind::from_config_name(name.get_ref()).ok_or_else(|| {
                let valid = EventKind::ALL.map(EventKind::config_name);
                self.err(
                    name.span(),
                    &format!("{key}[{j}]"),
                    format!(
                        "unknown event {:?}{}; use one of: {}, or all",
                        name.get_ref(),
                        guess(closest(name.get_ref(), valid.into_iter().chain(["all"]))),
                        valid.join(", ")
                    ),
                )
            })?;
            events.insert(event);
        }
        Ok(events)
    }

    /// `meeting_on`: failures this subscription announces, made by the Server-to-Server app of
    /// `[zoom.events]`, which must be there.
    fn meeting_on(
        &self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        sub_key: &str,
        events: &BTreeSet<EventKind>,
        zoom: &ZoomConfig,
    ) -> Result<BTreeSet<EventKind>, ConfigError> {
        let Some(list) = raw else {
            return Ok(BTreeSet::new());
        };
        let key = format!("{sub_key}.meeting_on");
        self.non_empty(
            &list,
            &key,
            "remove the key for no war room (the default), or write meeting_on = [\"failed\"]",
        )?;
        if zoom.events.is_none() {
            return Err(self.err(
                list.span(),
                &key,
                "a war room is an instant Zoom meeting that the Server-to-Server app of \
                 [zoom.events] creates, and this file has no [zoom.events]: add it (credential, \
                 subscription_id, user, channels), give its app the scope \
                 meeting:write:meeting:admin, and see README, \"War rooms\""
                    .into(),
            ));
        }
        let mut failures = BTreeSet::new();
        for (j, name) in list.into_inner().into_iter().enumerate() {
            let item = format!("{key}[{j}]");
            let event = match name.get_ref().as_str() {
                "failed" => EventKind::Failed,
                "still_failing" => EventKind::StillFailing,
                other => {
                    let why = match EventKind::from_config_name(other) {
                        Some(_) => " is no failure".to_owned(),
                        None => format!(
                            " is no event{}",
                            guess(closest(other, ["failed", "still_failing"]))
                        ),
                    };
                    return Err(self.err(
                        name.span(),
                        &item,
                        format!(
                            "{other:?}{why}; a war room is for failures: use \"failed\" (a \
                             meeting for each failing streak, still failing included) or \
                             \"still_failing\" (once a branch failed twice in a row)"
                        ),
                    ));
                }
            };
            if !events.iter().any(|&wanted| event.satisfies(wanted)) {
                return Err(self.err(
                    name.span(),
                    &item,
                    format!(
                        "this subscription does not announce {event}, so the war room's link \
                         would have no card to go in; add {event:?} to its events",
                        event = event.config_name()
                    ),
                ));
            }
            failures.insert(event);
        }
        Ok(failures)
    }

    fn subscription_channels(
        &self,
        list: Spanned<Vec<Spanned<String>>>,
        sub_key: &str,
        defined: &BTreeMap<String, Channel>,
    ) -> Result<Vec<String>, ConfigError> {
        let key = format!("{sub_key}.channels");
        self.non_empty(
            &list,
            &key,
            "name at least one [zoom.channels] table, e.g. [\"ci\"]",
        )?;
        let mut names: Vec<String> = Vec::with_capacity(list.get_ref().len());
        for (j, name) in list.into_inner().into_iter().enumerate() {
            let item_key = format!("{key}[{j}]");
            let value = name.get_ref();
            if !defined.contains_key(value) {
                let known: Vec<&str> = defined.keys().map(String::as_str).collect();
                return Err(self.err(
                    name.span(),
                    &item_key,
                    format!(
                        "unknown channel {value:?}{}; define it as [zoom.channels.{}] or use one \
                         of: {}",
                        guess(closest(value, known.iter().copied())),
                        segment(value),
                        known.join(", ")
                    ),
                ));
            }
            if names.contains(value) {
                return Err(self.err(
                    name.span(),
                    &item_key,
                    format!(
                        "channel {value:?} is listed twice; remove one, or it gets every card twice"
                    ),
                ));
            }
            names.push(name.into_inner());
        }
        Ok(names)
    }

    fn non_empty<T>(
        &self,
        list: &Spanned<Vec<T>>,
        key: &str,
        fix: &str,
    ) -> Result<(), ConfigError> {
        if list.get_ref().is_empty() {
            return Err(self.err(list.span(), key, format!("the list is empty; {fix}")));
        }
        Ok(())
    }

    /// A table name others refer to (`[zoom.channels.NAME]`, `[bitbucket.datacenter.NAME]`):
    /// restricted to bare-key characters so it can be written anywhere without quoting.
    fn table_name(&self, name: &Spanned<String>, key: &str, what: &str) -> Result<(), ConfigError> {
        if is_bare(name.get_ref()) {
            return Ok(());
        }
        Err(self.err(
            name.span(),
            key,
            format!(
                "{what} name may only contain ASCII letters, digits, '-' and '_'; rename the table"
            ),
        ))
    }

    /// A non-blank name or identifier, kept as written.
    /// A key that takes a string or an array of strings, as its strings.
    fn string_or_list<'v>(
        &self,
        raw: &'v Spanned<toml::Value>,
        key: &str,
        example: &str,
    ) -> Result<Vec<&'v str>, ConfigError> {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let shape = || {
            self.err(
                raw.span(),
                key,
                format!("{leaf} takes a string or an array of strings; write it like {example}"),
            )
        };
        match raw.get_ref() {
            toml::Value::String(name) => Ok(vec![name]),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().ok_or_else(shape))
                .collect(),
            _ => Err(shape()),
        }
    }

    /// A subscription's `credential`: one name, or several whose budgets its repositories
    /// share (each repository source polled with one of them).
    fn credential_pool(
        &self,
        raw: &Spanned<toml::Value>,
        key: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let names = self.string_or_list(
            raw,
            key,
            r#"credential = "acme-ci" or credential = ["ci-a", "ci-b"]"#,
        )?;
        let mut pool: Vec<String> = Vec::new();
        for name in names {
            if name.trim().is_empty() {
                return Err(self.err(raw.span(), key, empty_message(key)));
            }
            if pool.iter().any(|n| n == name) {
                return Err(self.err(
                    raw.span(),
                    key,
                    format!("{name:?} is listed twice; name each credential once"),
                ));
            }
            pool.push(name.to_owned());
        }
        if pool.is_empty() {
            return Err(self.err(
                raw.span(),
                key,
                "the list is empty; name at least one credential, or remove the key for \
                 [bitbucket] credential"
                    .into(),
            ));
        }
        Ok(pool)
    }

    fn name(&self, raw: Spanned<String>, key: &str) -> Result<String, ConfigError> {
        if raw.get_ref().trim().is_empty() {
            return Err(self.err(raw.span(), key, empty_message(key)));
        }
        Ok(raw.into_inner())
    }

    /// A path, relative ones taken from the configuration file's directory so the daemon does
    /// not depend on the directory it was started in.
    fn file(&self, raw: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        if raw.get_ref().trim().is_empty() {
            return Err(self.err(raw.span(), key, empty_message(key)));
        }
        if raw.get_ref().contains('\0') {
            return Err(self.err(
                raw.span(),
                key,
                "the path contains a NUL byte (\\u0000), which no file name can hold; remove it"
                    .into(),
            ));
        }
        let dir = self.path.parent().unwrap_or(Path::new(""));
        Ok(dir.join(raw.get_ref()))
    }

    fn duration_or(
        &self,
        raw: Option<Spanned<String>>,
        key: &str,
        default: Duration,
        longest: &str,
    ) -> Result<Duration, ConfigError> {
        raw.map_or(Ok(default), |raw| self.duration(&raw, key, longest))
    }

    /// A duration from 1ms to `longest` (written as the admin would).
    fn duration(
        &self,
        raw: &Spanned<String>,
        key: &str,
        longest: &str,
    ) -> Result<Duration, ConfigError> {
        let text = raw.get_ref();
        match parse_duration(text) {
            Some(d) if d.is_zero() => Err(self.err(
                raw.span(),
                key,
                format!("the duration {text:?} is zero; it must be greater than 0"),
            )),
            Some(d) if d > parse_duration(longest).expect("the bounds are valid durations") => {
                Err(self.err(
                    raw.span(),
                    key,
                    format!(
                        "the duration {text:?} is longer than {longest:?}, the most this key \
                         allows; write a duration from \"1ms\" to {longest:?}"
                    ),
                ))
            }
            Some(d) => Ok(d),
            None => Err(self.err(
                raw.span(),
                key,
                format!(
                    "invalid duration {text:?}; write a number and a unit (ms, s, m, h), like \
                     \"250ms\", \"30s\", \"5m\", \"1h\" or \"1h30m\""
                ),
            )),
        }
    }

    fn url(
        &self,
        raw: Option<Spanned<String>>,
        key: &str,
        default: &str,
    ) -> Result<Url, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Url::parse(default).expect("default URLs are valid"));
        };
        self.url_with(&raw, key, default, None)
    }

    /// An http(s) URL (ws(s) when `example` is one) without user, password or fragment, like
    /// `example`; a query is refused too, with `query_fix` as the advice when given.
    fn url_with(
        &self,
        raw: &Spanned<String>,
        key: &str,
        example: &str,
        query_fix: Option<&str>,
    ) -> Result<Url, ConfigError> {
        let text = raw.get_ref();
        let (family, schemes) = if example.starts_with("ws") {
            ("a ws(s)", ["ws", "wss"])
        } else {
            ("an http(s)", ["http", "https"])
        };
        let fix = format!("write {family} URL like \"{example}\"");
        let url = Url::parse(text).map_err(|e| {
            self.err(
                raw.span(),
                key,
                format!("invalid URL {text:?} ({e}); {fix}"),
            )
        })?;
        if !schemes.contains(&url.scheme()) || !url.has_host() {
            return Err(self.err(
                raw.span(),
                key,
                format!("{text:?} is not {family} URL; {fix}"),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoed: the user part may hold a secret.
            return Err(self.err(
                raw.span(),
                key,
                "the URL contains a user name or password; remove it (credentials belong in the \
                 credentials file)"
                    .into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            // Not echoed either: a query may carry a token.
            let message = match query_fix {
                Some(query_fix) if url.query().is_some() => {
                    format!("the URL has a query (?...); {query_fix}")
                }
                _ => format!("the URL has a query (?...) or fragment (#...); remove it and {fix}"),
            };
            return Err(self.err(raw.span(), key, message));
        }
        Ok(url)
    }

    fn rate_limit_or(
        &self,
        raw: Option<RawRateLimit>,
        key: &str,
        default: RateLimit,
    ) -> Result<RateLimit, ConfigError> {
        raw.map_or(Ok(default), |raw| self.rate_limit(raw, key))
    }

    /// A Bitbucket instance's `rate_limit`: as written, a ceiling; else `default`.
    fn budget_or(
        &self,
        raw: Option<RawRateLimit>,
        key: &str,
        default: BudgetSpec,
    ) -> Result<BudgetSpec, ConfigError> {
        raw.map_or(Ok(default), |raw| Ok(self.rate_limit(raw, key)?.into()))
    }

    fn rate_limit(&self, raw: RawRateLimit, key: &str) -> Result<RateLimit, ConfigError> {
        let requests = *raw.requests.get_ref();
        if !(1..=MOST_REQUESTS).contains(&requests) {
            return Err(self.err(
                raw.requests.span(),
                &format!("{key}.requests"),
                format!(
                    "a rate limit must allow at least 1 request and at most {MOST_REQUESTS}; to \
                     go slower, lengthen \"per\", to go faster, shorten it"
                ),
            ));
        }
        let per = self.duration(&raw.per, &format!("{key}.per"), LONGEST_INTERVAL)?;
        Ok(RateLimit { requests, per })
    }

    /// A Zoom JID: a non-empty local part without spaces, then `domain`.
    fn jid(
        &self,
        raw: Spanned<String>,
        key: &str,
        domain: &str,
        hint: &str,
    ) -> Result<String, ConfigError> {
        let text = raw.get_ref();
        let valid = text.strip_suffix(domain).is_some_and(|local| {
            !local.is_empty() && !local.contains('@') && !local.chars().any(char::is_whitespace)
        });
        if !valid {
            return Err(self.err(
                raw.span(),
                key,
                format!("{text:?} is not a valid JID: it must look like NAME{domain}; {hint}"),
            ));
        }
        Ok(raw.into_inner())
    }
}

/// Whether `text` names a Zoom user: an email address, or a user id (letters, digits, `-` and
/// `_`, as Zoom's ids are).
fn is_zoom_user(text: &str) -> bool {
    let email = text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.contains('@')
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    let id = (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    email || id
}

/// A credential pool as the file writes it: `"ci"` or `["ci-a", "ci-b"]`.
fn shown_pool(pool: &[String]) -> String {
    match pool {
        [one] => format!("{one:?}"),
        many => format!("{many:?}"),
    }
}

/// Gives each watch one credential of its pool: the one polling the fewest watches so far
/// (watches of a single credential counted first, ties to the pool's order), so a pool's
/// repositories spread evenly over its budgets, the same way for the same file.
fn assign_credentials(watches: &mut [Watch]) {
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for watch in watches.iter_mut().filter(|w| w.pool.len() == 1) {
        watch.credential = watch.pool[0].clone();
        *load.entry(watch.credential.clone()).or_default() += 1;
    }
    for watch in watches.iter_mut().filter(|w| w.pool.len() > 1) {
        let least = watch
            .pool
            .iter()
            .min_by_key(|name| load.get(*name).copied().unwrap_or(0))
            .expect("a pool is never empty")
            .clone();
        *load.entry(least.clone()).or_default() += 1;
        watch.credential = least;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m500ms", Duration::from_millis(60_500)),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_duration(text), Some(expected), "{text:?}");
        }
        for text in [
            "",
            "30",
            "s",
            "1.5s",
            "30 s",
            "-1s",
            "1d",
            "1hm",
            "99999999999h",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }
}
