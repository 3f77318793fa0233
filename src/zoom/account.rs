//! The REST calls the Server-to-Server app of `[zoom.events]` makes for the account besides
//! chat events: finding a person's JID by e-mail address (`[people]`) or an admin's e-mail
//! address by user id (chat commands read back after a reconnect), and creating a war-room
//! meeting (`meeting_on`). Its token is kept and renewed before it expires; a rejected token
//! (code 124) is replaced and the call made once more.
//!
//! A meeting's answer is read for its id and join link only: the host's start link
//! (`start_url`, which starts the meeting as its host) is never even deserialised, so it can
//! be neither stored, logged nor shown.

use super::events::{EventsToken, ServerToServerApp};
use super::{ZoomAnswer, ZoomError, classify};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

/// The Server-to-Server app's REST calls for the account.
pub struct AccountApi {
    app: Arc<ServerToServerApp>,
    http: reqwest::Client,
    /// REST base, `https://api.zoom.us/v2`.
    api_url: Url,
    /// The current token; one renewal serves every waiting caller.
    token: Mutex<Option<EventsToken>>,
}

/// An instant meeting as created: what may be kept and shown of it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Meeting {
    /// Zoom's meeting id (a number, kept as its digits).
    pub(crate) id: String,
    /// The participants' link (it carries the passcode); never the host's start link.
    pub(crate) join_url: String,
}

impl std::fmt::Debug for Meeting {
    /// The id only: the join link carries the meeting's passcode.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meeting").field("id", &self.id).finish()
    }
}

/// `POST /users/{userId}/meetings`' answer, as much as is read: never `start_url`.
#[derive(Deserialize)]
struct MeetingAnswer {
    id: Value,
    join_url: String,
}

/// `GET /users/{userId}`' answer, as much as is read.
#[derive(Deserialize, Clone)]
struct UserAnswer {
    jid: Option<String>,
    email: Option<String>,
}

impl AccountApi {
    pub fn new(app: Arc<ServerToServerApp>, http: reqwest::Client, api_url: Url) -> AccountApi {
        AccountApi {
            app,
            http,
            api_url,
            token: Mutex::new(None),
        }
    }

    /// What Zoom says of the user `user` (an e-mail address or user id): `GET /users/{user}`,
    /// scope `user:read:user:admin` (classic `user:read:admin`). An unreadable answer reads as
    /// one without the fields wanted.
    async fn user(&self, user: &str) -> Result<UserAnswer, ZoomError> {
        let url = self.endpoint(&["users", user])?;
        let answer = self.call(reqwest::Method::GET, url, None).await?;
        Ok(serde_json::from_value(answer).unwrap_or(UserAnswer {
            jid: None,
            email: None,
        }))
    }

    /// Creates an instant meeting (type 1) hosted by `host` (an e-mail address, user id or
    /// `me`) called `topic`: `POST /users/{host}/meetings`, scope `meeting:write:meeting:admin`
    /// (classic `meeting:write:admin`).
    pub(crate) async fn create_meeting(
        &self,
        host: &str,
        topic: &str,
    ) -> Result<Meeting, ZoomError> {
        let url = self.endpoint(&["users", host, "meetings"])?;
        let body = json!({"topic": topic, "type": 1});
        let answer = self.call(reqwest::Method::POST, url, Some(&body)).await?;
        let unreadable = |why: &str| ZoomError {
            class: super::ErrorClass::Permanent,
            detail: format!("Zoom created a meeting but its answer {why}"),
        };
        let meeting: MeetingAnswer =
            serde_json::from_value(answer).map_err(|_| unreadable("is unreadable"))?;
        let id = match meeting.id {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s,
            _ => return Err(unreadable("has no meeting id")),
        };
        let join_url = crate::render::safe_link(&meeting.join_url)
            .ok_or_else(|| unreadable("has no http(s) join link"))?;
        Ok(Meeting { id, join_url })
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ZoomError> {
        super::endpoint(&self.api_url, segments)
    }

    /// One call; a rejected token (code 124) is replaced and the call made once more.
    async fn call(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ZoomError> {
        let mut renewed = false;
        loop {
            // The account's limiter first: a call waiting its turn must not hold a token
            // that may expire meanwhile.
            self.app.turn().await?;
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| {
                ZoomError::transient(format!("Zoom request failed: {}", e.without_url()))
            })?;
            match classify(response).await {
                Ok(value) => return Ok(value),
                Err(ZoomAnswer::TokenRejected) if !renewed => {
                    tracing::info!(
                        "Zoom rejected the Server-to-Server app's token (code 124); fetching a new one"
                    );
                    *self.token.lock().await = None;
                    renewed = true;
                }
                Err(answer) => return Err(self.app.failed(answer)),
            }
        }
    }

    /// The kept token, renewed first once within its margin of expiry.
    async fn token(&self) -> Result<SecretString, ZoomError> {
        let mut kept = self.token.lock().await;
        if let Some(token) = kept.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let fresh = self.app.token().await?;
        let value = fresh.value.clone();
        *kept = Some(fresh);
        Ok(value)
    }
}

/// Whether `jid` is a plain user JID, `ID@xmpp.zoom.us`, the ID of letters, digits, `.`, `_`
/// and `-`: the only form that reaches a mention or a `to_jid`.
pub(crate) fn is_user_jid(jid: &str) -> bool {
    jid.strip_suffix("@xmpp.zoom.us").is_some_and(|local| {
        !local.is_empty()
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    })
}

/// Zoom users as Zoom last described them, by the e-mail address or user id they were asked
/// by: people `[people]` names by e-mail address (their JIDs), and admins listed by user id
/// (their e-mail addresses). Kept for a while (`ttl`) so a burst of failures asks once. One
/// lookup at a time: a card and a direct message about the same failure wait for one answer.
pub struct Directory {
    api: Arc<AccountApi>,
    ttl: Duration,
    known: Mutex<HashMap<String, (UserAnswer, Instant)>>,
}

impl Directory {
    pub fn new(api: Arc<AccountApi>, ttl: Duration) -> Directory {
        Directory {
            api,
            ttl,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The JID of the person with e-mail address `email`. An answer without a plain user JID
    /// is an error: nothing else may reach a mention or a `to_jid`.
    pub(crate) async fn jid(&self, email: &str) -> Result<String, ZoomError> {
        let jid = |user: &UserAnswer| user.jid.clone().filter(|jid| is_user_jid(jid));
        self.lookup(email, jid, "user JID").await
    }

    /// The e-mail address of the Zoom user `id`, lower case.
    pub(crate) async fn email(&self, id: &str) -> Result<String, ZoomError> {
        let email = |user: &UserAnswer| {
            (user.email.as_deref())
                .filter(|e| e.contains('@'))
                .map(str::to_lowercase)
        };
        self.lookup(id, email, "e-mail address").await
    }

    /// `read` (naming `what` it reads) of the user `who`, as kept or asked of Zoom; an answer
    /// is kept only when it holds what was wanted.
    async fn lookup<T>(
        &self,
        who: &str,
        read: impl Fn(&UserAnswer) -> Option<T>,
        what: &str,
    ) -> Result<T, ZoomError> {
        let mut known = self.known.lock().await;
        let now = Instant::now();
        let kept = (known.get(who))
            .filter(|(_, at)| now.duration_since(*at) < self.ttl)
            .and_then(|(user, _)| read(user));
        if let Some(value) = kept {
            return Ok(value);
        }
        let user = self.api.user(who).await?;
        let value = read(&user).ok_or_else(|| ZoomError {
            class: super::ErrorClass::Permanent,
            detail: format!("Zoom's answer about the user holds no {what}"),
        })?;
        known.insert(who.to_owned(), (user, now));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An account API whose Server-to-Server app passes `account` and reaches nothing.
    fn unreachable_api(account: Arc<super::super::AccountGate>) -> AccountApi {
        let http = crate::http::client(Duration::from_secs(1));
        let nowhere: Url = "http://127.0.0.1:1/v2".parse().unwrap();
        let app = ServerToServerApp::new(
            http.clone(),
            "http://127.0.0.1:1/oauth/token".parse().unwrap(),
            nowhere.clone(),
            "account".into(),
            super::super::AppCredentials {
                client_id: "id".into(),
                client_secret: "secret".to_owned().into(),
            },
            Some(account),
        );
        AccountApi::new(Arc::new(app), http, nowhere)
    }

    /// An account admitting one call an hour and `daily` a day.
    fn account(daily: Option<u32>) -> Arc<super::super::AccountGate> {
        let one_an_hour = crate::http::budget_limiter(crate::config::RateLimit {
            requests: 1,
            per: Duration::from_secs(3600),
        });
        Arc::new(super::super::AccountGate::new(one_an_hour, daily))
    }

    #[tokio::test]
    async fn the_account_s_calls_wait_their_turn_at_the_chatbot_s_limiter() {
        let wait = Duration::from_millis(300);
        // The chatbot spent the hour's one call: a meeting waits, nothing is sent.
        let spent = account(None);
        spent.turn().await.unwrap();
        let api = unreachable_api(spent);
        let waited = tokio::time::timeout(wait, api.create_meeting("me", "war room")).await;
        assert!(
            waited.is_err(),
            "the call went out past the account's limiter"
        );
        // With the call still to spend, it goes out (and finds nobody there).
        let api = unreachable_api(account(None));
        let answered = tokio::time::timeout(wait, api.create_meeting("me", "war room")).await;
        let Ok(Err(err)) = answered else {
            panic!("{answered:?}")
        };
        assert!(err.detail.contains("token request failed"), "{err}");
    }

    #[tokio::test]
    async fn the_account_s_calls_count_against_the_chatbot_s_daily_allowance() {
        // The chatbot spent the day's one call: a meeting is refused at once, nothing sent,
        // and told to wait for the reset.
        let spent = account(Some(1));
        spent.turn().await.unwrap();
        let api = unreachable_api(spent.clone());
        let refused = api.create_meeting("me", "war room").await.unwrap_err();
        assert!(refused.detail.contains("daily limit"), "{refused}");
        assert!(
            matches!(refused.class, super::super::ErrorClass::Transient { retry_after: Some(wait) } if wait > Duration::ZERO),
            "{:?}",
            refused.class
        );
        // The pause holds for the chatbot as well.
        assert!(spent.turn().await.is_err());
    }

    #[test]
    fn only_plain_user_jids_pass() {
        for jid in ["abc@xmpp.zoom.us", "a.b_c-1@xmpp.zoom.us"] {
            assert!(is_user_jid(jid), "{jid}");
        }
        for jid in [
            "@xmpp.zoom.us",
            "a|b@xmpp.zoom.us",
            "a>b@xmpp.zoom.us",
            "ci@conference.xmpp.zoom.us",
            "a b@xmpp.zoom.us",
            "jane@example.com",
        ] {
            assert!(!is_user_jid(jid), "{jid}");
        }
    }

    #[test]
    fn a_meeting_answer_is_read_without_its_start_link() {
        let answer = json!({
            "id": 85746065432u64,
            "join_url": "https://zoom.us/j/85746065432?pwd=abc",
            "start_url": "https://zoom.us/s/85746065432?zak=HOST-SECRET",
        });
        let meeting: MeetingAnswer = serde_json::from_value(answer).unwrap();
        assert_eq!(meeting.join_url, "https://zoom.us/j/85746065432?pwd=abc");
        let shown = format!(
            "{:?}",
            Meeting {
                id: "85746065432".into(),
                join_url: meeting.join_url
            }
        );
        assert!(!shown.contains("pwd") && !shown.contains("zak"), "{shown}");
    }
}
