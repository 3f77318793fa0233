//! Zoom Team Chat clients: the chatbot (an access token cached and renewed before it expires,
//! one rate limiter and one daily allowance for the account) and Incoming Webhooks. Every answer
//! is classified here (after vector's sinks, *what* to retry lives here; *when* is the outbox's
//! business). A daily-limit 429 pauses the whole account until Zoom's reset.

pub mod account;
pub mod events;
mod webhook;

pub(crate) use webhook::WebhookClient;

use crate::http::Limiter;
use crate::retry::parse_retry_after;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

/// The longest Zoom is believed about a wait (`Retry-After`): a day, the span of its longest
/// limit, the daily one, which resets at 00:00 UTC.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

/// What the caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (5xx, timeouts, connection errors, 429), not before `retry_after` if given.
    Transient { retry_after: Option<Duration> },
    /// Retrying cannot help (bad request, unknown bot or channel, missing scope): an admin must act.
    Permanent,
    /// The message to edit no longer exists (404, code 8001): post a new one instead.
    MessageGone,
}

/// A failed Zoom call: its class and a message for the log (never holding a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct ZoomError {
    pub class: ErrorClass,
    pub(crate) detail: String,
}

impl ZoomError {
    fn transient(detail: impl Into<String>) -> ZoomError {
        ZoomError {
            class: ErrorClass::Transient { retry_after: None },
            detail: detail.into(),
        }
    }
}

/// Where and as whom the chatbot posts.
#[derive(Debug, Clone)]
pub struct ChatbotIdentity {
    pub account_id: String,
    pub robot_jid: String,
    pub user_jid: String,
}

/// The chatbot app's OAuth client.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// The REST endpoint `segments` under `api_url`; a name no request can carry (see
/// [`crate::http::api_url`]) is a permanent error, and nothing is sent.
pub(crate) fn endpoint(api_url: &Url, segments: &[&str]) -> Result<Url, ZoomError> {
    crate::http::api_url(api_url, segments).map_err(|step| ZoomError {
        class: ErrorClass::Permanent,
        detail: format!("{step:?} is not a name a request can carry; nothing was sent"),
    })
}

/// A Zoom chatbot client for one account.
pub struct ChatbotClient {
    http: reqwest::Client,
    /// Token endpoint, `https://zoom.us/oauth/token`.
    oauth_url: Url,
    /// REST base, `https://api.zoom.us/v2`.
    api_url: Url,
    app: AppCredentials,
    identity: ChatbotIdentity,
    /// The current access token; a tokio mutex so one renewal serves every waiting sender.
    token: Mutex<Option<CachedToken>>,
    /// What the account admits (invariant 4), shared with the Server-to-Server app of
    /// `[zoom.events]`: Zoom counts the calls of every app of an account together.
    account: Arc<AccountGate>,
}

/// What a Zoom account admits of all its apps' REST calls: one rate limiter, the daily
/// allowance of its plan, and the pause after a daily-limit 429 (or once the allowance is
/// spent), until Zoom's reset.
pub struct AccountGate {
    /// The account's one limiter (invariant 4).
    limiter: Limiter,
    /// Calls allowed per UTC day, from the plan or the config; `None`: no daily cap.
    daily_limit: Option<u32>,
    /// Calls made today: (days since the Unix epoch, count).
    today: std::sync::Mutex<(u64, u32)>,
    /// Until when the account is paused after a daily-limit 429 (or our own count reached it).
    paused_until: std::sync::Mutex<Option<SystemTime>>,
}

/// An access token as issued.
struct CachedToken {
    /// The token itself.
    value: SecretString,
    /// Renew from this instant on, a margin before Zoom expires it.
    renew_at: Instant,
    /// The scopes Zoom says it carries, when it says.
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
    /// Space-separated.
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct SendAnswer {
    message_id: String,
}

impl ChatbotClient {
    pub fn new(
        http: reqwest::Client,
        oauth_url: Url,
        api_url: Url,
        app: AppCredentials,
        identity: ChatbotIdentity,
        limiter: Limiter,
        daily_limit: Option<u32>,
    ) -> ChatbotClient {
        ChatbotClient {
            http,
            oauth_url,
            api_url,
            app,
            identity,
            token: Mutex::new(None),
            account: Arc::new(AccountGate::new(limiter, daily_limit)),
        }
    }

    /// What the account admits, for the account's other app to pass too.
    pub(crate) fn account(&self) -> Arc<AccountGate> {
        Arc::clone(&self.account)
    }

    /// Posts `content` (a chatbot card) to `to_jid`, as a thread reply when `reply_to` is given.
    /// Returns the new message's id.
    pub async fn send(
        &self,
        to_jid: &str,
        content: &Value,
        reply_to: Option<&str>,
    ) -> Result<String, ZoomError> {
        self.send_card(to_jid, content, reply_to, false).await
    }

    /// [`ChatbotClient::send`], with Zoom's markdown on when `markdown` (a card that mentions
    /// someone: see `render::chatbot_markdown`). `to_jid` is a channel's JID, or a user's for
    /// a direct message from the bot.
    pub(crate) async fn send_card(
        &self,
        to_jid: &str,
        content: &Value,
        reply_to: Option<&str>,
        markdown: bool,
    ) -> Result<String, ZoomError> {
        let mut body = json!({
            "robot_jid": self.identity.robot_jid,
            "to_jid": to_jid,
            "account_id": self.identity.account_id,
            "user_jid": self.identity.user_jid,
            "content": content,
        });
        if let Some(parent) = reply_to {
            body["reply_to"] = json!(parent);
        }
        if markdown {
            body["is_markdown_support"] = json!(true);
        }
        let url = self.endpoint(&["im", "chat", "messages"])?;
        let answer = self.call(reqwest::Method::POST, url, &body).await?;
        serde_json::from_value::<SendAnswer>(answer)
            .map(|a| a.message_id)
            .map_err(|e| {
                ZoomError::transient(format!(
                    "Zoom accepted the message but its answer is unreadable: {e}"
                ))
            })
    }

    /// Fetches an access token, to check the app's credentials (`bbzoom check --online`).
    pub async fn verify(&self) -> Result<(), ZoomError> {
        *self.token.lock().await = None;
        self.token().await.map(drop)
    }

    /// Replaces the content of a message the bot posted earlier, with Zoom's markdown on when
    /// `markdown`.
    pub(crate) async fn edit(
        &self,
        message_id: &str,
        content: &Value,
        markdown: bool,
    ) -> Result<(), ZoomError> {
        let mut body = json!({
            "robot_jid": self.identity.robot_jid,
            "account_id": self.identity.account_id,
            "user_jid": self.identity.user_jid,
            "content": content,
        });
        if markdown {
            body["is_markdown_support"] = json!(true);
        }
        let url = self.endpoint(&["im", "chat", "messages", message_id])?;
        self.call(reqwest::Method::PUT, url, &body).await.map(drop)
    }

    /// The API's `segments` ([`crate::http::api_url`]). A message id from an answer that would
    /// step to another path names no message that can be edited: a new one is posted instead.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, ZoomError> {
        crate::http::api_url(&self.api_url, segments).map_err(|step| ZoomError {
            class: ErrorClass::MessageGone,
            detail: format!("{step:?} is not a message id a request can carry; nothing was sent"),
        })
    }

    /// One API call; an expired or revoked token (code 124) is renewed and the call made once more.
    async fn call(
        &self,
        method: reqwest::Method,
        url: Url,
        body: &Value,
    ) -> Result<Value, ZoomError> {
        let mut renewed = false;
        loop {
            self.account.admit()?;
            let token = self.token().await?;
            self.account.limiter.until_ready().await;
            let response = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret())
                .json(body)
                .send()
                .await
                .map_err(|e| {
                    ZoomError::transient(format!("Zoom request failed: {}", e.without_url()))
                })?;
            match classify(response).await {
                Err(ZoomAnswer::TokenRejected) if !renewed => {
                    tracing::info!("Zoom rejected the access token (code 124); fetching a new one");
                    *self.token.lock().await = None;
                    renewed = true;
                }
                Err(ZoomAnswer::TokenRejected) => {
                    return Err(ZoomError::transient(
                        "Zoom rejected a freshly issued access token (code 124)",
                    ));
                }
                Err(answer) => return Err(self.account.failed(answer)),
                Ok(value) => return Ok(value),
            }
        }
    }

    /// The cached token, renewed first if it is within its margin of expiry.
    async fn token(&self) -> Result<SecretString, ZoomError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<CachedToken, ZoomError> {
        request_token(
            &self.http,
            &self.oauth_url,
            &[("grant_type", "client_credentials")],
            &self.app,
            "the chatbot's",
        )
        .await
    }
}

impl AccountGate {
    pub(crate) fn new(limiter: Limiter, daily_limit: Option<u32>) -> AccountGate {
        AccountGate {
            limiter,
            daily_limit,
            today: std::sync::Mutex::new((0, 0)),
            paused_until: std::sync::Mutex::new(None),
        }
    }

    /// One call's turn: refused while the account is paused or its allowance is spent (the
    /// call is counted against it), then its place at the limiter.
    pub(crate) async fn turn(&self) -> Result<(), ZoomError> {
        self.admit()?;
        self.limiter.until_ready().await;
        Ok(())
    }

    /// Refuses the call while the account is paused, and counts it against the daily cap.
    fn admit(&self) -> Result<(), ZoomError> {
        let now = SystemTime::now();
        let mut paused = self.paused_until.lock().expect("pause lock");
        if let Some(until) = paused.filter(|&until| until > now) {
            let wait = until.duration_since(now).unwrap_or_default();
            return Err(ZoomError {
                class: ErrorClass::Transient {
                    retry_after: Some(wait),
                },
                detail: format!(
                    "the Zoom account is paused for {}s after reaching its daily limit",
                    wait.as_secs()
                ),
            });
        }
        let day = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 86_400;
        let mut today = self.today.lock().expect("daily count lock");
        if today.0 != day {
            *today = (day, 0);
        }
        if self.daily_limit.is_some_and(|limit| today.1 >= limit) {
            let reset = next_utc_midnight(now);
            *paused = Some(reset);
            tracing::warn!(
                "the Zoom account's daily limit is used up; pausing until 00:00 UTC, the outbox keeps every card"
            );
            return Err(ZoomError {
                class: ErrorClass::Transient {
                    retry_after: reset.duration_since(now).ok(),
                },
                detail: "the Zoom account's daily limit is used up".into(),
            });
        }
        today.1 += 1;
        Ok(())
    }

    /// After Zoom said the daily limit is reached: pause every call until its reset.
    fn pause_for_the_day(&self, retry_after: Option<Duration>) -> Duration {
        let now = SystemTime::now();
        let wait = retry_after.unwrap_or_else(|| {
            next_utc_midnight(now)
                .duration_since(now)
                .unwrap_or_default()
        });
        *self.paused_until.lock().expect("pause lock") = Some(now + wait);
        tracing::warn!(
            pause_s = wait.as_secs(),
            "Zoom says the account's daily limit is reached; pausing every chat call, the outbox keeps every card"
        );
        wait
    }

    /// A failed answer as an error; a daily-limit 429 pauses every app of the account first.
    fn failed(&self, answer: ZoomAnswer) -> ZoomError {
        match answer {
            ZoomAnswer::DailyLimit(retry_after) => ZoomError {
                class: ErrorClass::Transient {
                    retry_after: Some(self.pause_for_the_day(retry_after)),
                },
                detail: "Zoom's daily limit for the account is reached (HTTP 429)".into(),
            },
            other => other.into_error(),
        }
    }
}

/// Asks Zoom's token endpoint for a token with the `grant` parameters and `app`'s Basic
/// credentials; `whose` names the app in errors ("the chatbot's").
async fn request_token(
    http: &reqwest::Client,
    oauth_url: &Url,
    grant: &[(&str, &str)],
    app: &AppCredentials,
    whose: &str,
) -> Result<CachedToken, ZoomError> {
    let mut url = oauth_url.clone();
    url.query_pairs_mut().extend_pairs(grant);
    let response = http
        .post(url)
        .basic_auth(&app.client_id, Some(app.client_secret.expose_secret()))
        .send()
        .await
        .map_err(|e| {
            ZoomError::transient(format!("Zoom token request failed: {}", e.without_url()))
        })?;
    let status = response.status();
    if status.is_client_error() && status.as_u16() != 429 {
        return Err(ZoomError {
            class: ErrorClass::Permanent,
            detail: format!(
                "Zoom refused {whose} client credentials (HTTP {status}): check the client id and secret stored for it"
            ),
        });
    }
    if !status.is_success() {
        return Err(ZoomError::transient(format!(
            "Zoom token endpoint answered HTTP {status}"
        )));
    }
    let answer: TokenAnswer = response.json().await.map_err(|e| {
        ZoomError::transient(format!("unreadable Zoom token answer: {}", e.without_url()))
    })?;
    Ok(CachedToken {
        value: answer.access_token,
        renew_at: Instant::now()
            + crate::http::token_renewal(answer.expires_in, Duration::from_secs(60)),
        scopes: (answer.scope).map(|scope| scope.split_whitespace().map(str::to_owned).collect()),
    })
}

enum ZoomAnswer {
    /// 401 with code 124: the token expired or was revoked.
    TokenRejected,
    /// 429 naming the daily limit, with when it resets if Zoom said.
    DailyLimit(Option<Duration>),
    Failed(ZoomError),
}

impl ZoomAnswer {
    /// The answer as an error, pausing nothing: callers pass a failed answer through
    /// [`AccountGate::failed`], which pauses the account on a daily limit first.
    fn into_error(self) -> ZoomError {
        match self {
            ZoomAnswer::TokenRejected => {
                ZoomError::transient("Zoom rejected the access token (code 124)")
            }
            ZoomAnswer::DailyLimit(retry_after) => ZoomError {
                class: ErrorClass::Transient { retry_after },
                detail: "Zoom's daily limit for the account is reached (HTTP 429)".into(),
            },
            ZoomAnswer::Failed(err) => err,
        }
    }
}

/// Sorts an answer into success, a rejected token, or a classified error.
async fn classify(response: reqwest::Response) -> Result<Value, ZoomAnswer> {
    let status = response.status().as_u16();
    let tracking_id = response
        .headers()
        .get("x-zm-trackingid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now(), LONGEST_WAIT));
    let headers_say_daily = response
        .headers()
        .get("x-ratelimit-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("daily"));
    let body = response.bytes().await.unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
    }
    let error: Option<ErrorAnswer> = serde_json::from_slice(&body).ok();
    let code = error.as_ref().and_then(|e| e.code);
    let message = error.and_then(|e| e.message).unwrap_or_default();
    if status == 401 && code == Some(124) {
        return Err(ZoomAnswer::TokenRejected);
    }
    let daily = headers_say_daily || message.to_ascii_lowercase().contains("daily");
    if status == 429 && daily {
        return Err(ZoomAnswer::DailyLimit(retry_after));
    }
    let class = match (status, code) {
        (404, Some(8001)) => ErrorClass::MessageGone,
        (429 | 408, _) | (500..=599, _) => ErrorClass::Transient { retry_after },
        _ => ErrorClass::Permanent,
    };
    let detail = format!(
        "Zoom answered HTTP {status}{}{}{}",
        code.map(|c| format!(", code {c}")).unwrap_or_default(),
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        },
        tracking_id
            .map(|t| format!(" (x-zm-trackingid {t})"))
            .unwrap_or_default(),
    );
    Err(ZoomAnswer::Failed(ZoomError { class, detail }))
}

/// The next 00:00 UTC after `now`, when Zoom's daily limits reset.
fn next_utc_midnight(now: SystemTime) -> SystemTime {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs((secs / 86_400 + 1) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arbitrary::json;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any JSON Zoom could answer decodes to an error or to a token whose renewal time is
        /// within a day, never a panic.
        #[test]
        fn any_zoom_json_decodes_without_a_panic(value in json()) {
            if let Ok(token) = serde_json::from_value::<TokenAnswer>(value.clone()) {
                let renewal = crate::http::token_renewal(token.expires_in, Duration::from_secs(60));
                prop_assert!(renewal <= crate::http::LONGEST_TOKEN_LIFE);
            }
            let _ = serde_json::from_value::<ErrorAnswer>(value.clone());
            let _ = serde_json::from_value::<SendAnswer>(value);
        }
    }
}
