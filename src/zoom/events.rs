//! The Server-to-Server OAuth app of `[zoom.events]`: its account-credentials token, the event
//! subscription's WebSocket (opened with it, TLS through the rustls and platform verifier
//! reqwest uses) and Team Chat's list-messages API, which reads back what the socket missed;
//! and the scopes the app needs for what a configuration uses (`bbzoom check --online`).
//! Zoom's frames and JSON stay here; the rest of the crate sees [`Incoming`] and
//! [`ChatMessage`].

use super::{
    AccountGate, AppCredentials, CachedToken, ZoomAnswer, ZoomError, classify, request_token,
};
use futures_util::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

/// What the app is asked for, with the scope that grants it and the classic scope that does too.
type Need = (&'static str, [&'static str; 2]);

/// Channel messages over the socket, and read back after a reconnect: always.
const COMMANDS: [Need; 2] = [
    (
        "channel messages",
        [
            "team_chat:read:user_message:admin",
            "chat_message:read:admin",
        ],
    ),
    (
        "reading a channel back after a reconnect",
        [
            "team_chat:read:list_user_messages:admin",
            "chat_message:read:admin",
        ],
    ),
];
/// A user's JID or e-mail address by e-mail address or user id.
const USERS: Need = (
    "looking up [people] by e-mail and admins by user id",
    ["user:read:user:admin", "user:read:admin"],
);
/// War rooms.
const MEETINGS: Need = (
    "war rooms (meeting_on)",
    ["meeting:write:meeting:admin", "meeting:write:admin"],
);

/// What the app lacks of what it is asked for, given the scopes `granted` (as its token lists
/// them): for each use, the scope to add and the use. `looks_up_users`: `[people]` names someone
/// by e-mail address, or `admins` someone by user id; `creates_meetings`: some subscription
/// has a `meeting_on`.
pub fn missing_scopes(
    granted: &[String],
    looks_up_users: bool,
    creates_meetings: bool,
) -> Vec<(&'static str, &'static str)> {
    let asked = COMMANDS
        .into_iter()
        .chain(looks_up_users.then_some(USERS))
        .chain(creates_meetings.then_some(MEETINGS));
    asked
        .filter(|(_, scopes)| !scopes.iter().any(|s| granted.iter().any(|g| g == s)))
        .map(|(what, [scope, _])| (scope, what))
        .collect()
}

/// Zoom's largest `page_size` for list-messages.
pub(crate) const PAGE_SIZE: u32 = 50;

/// A Zoom Server-to-Server OAuth app: tokens for one account.
pub struct ServerToServerApp {
    /// The client its requests go through (timeouts, TLS 1.2+).
    http: reqwest::Client,
    /// Token endpoint, `https://zoom.us/oauth/token`.
    oauth_url: Url,
    /// REST base, `https://api.zoom.us/v2`, where list-messages is.
    api_url: Url,
    /// The account the app's tokens are for: the grant names it.
    account_id: String,
    /// The app's OAuth client.
    app: AppCredentials,
    /// What the account admits, the chatbot's (invariant 4): Zoom's rate limits and daily
    /// allowance are the account's, whichever of its apps calls. Every REST call
    /// (list-messages, and the account's calls of `account.rs`) passes it, and a daily-limit
    /// 429 it meets pauses the chatbot too. `None` only without a chatbot, where no REST call
    /// is made (a credential checked alone by `bbzoom connect`).
    account: Option<Arc<AccountGate>>,
}

/// A token for the WebSocket and list-messages, and when to replace it.
pub(crate) struct EventsToken {
    /// The token itself (it goes into the WebSocket URL: never log that URL).
    pub(crate) value: SecretString,
    /// When to reconnect with a fresh one, a margin before Zoom expires it.
    pub(crate) renew_at: Instant,
}

/// A channel message as bbzoom reads it, from the socket or from list-messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChatMessage {
    /// Zoom's message id: what "handled once" is recorded by.
    pub(crate) id: String,
    /// The channel's id (a JID's local part).
    pub(crate) channel_id: String,
    /// Who posted it: an email (lower case) where Zoom gives one, else a user id.
    pub(crate) sender: String,
    /// The poster's Zoom user id where Zoom gives it (the event's `operator_id`); empty
    /// otherwise (list-messages names the sender by email).
    pub(crate) sender_id: String,
    /// The text as posted (untrusted).
    pub(crate) text: String,
    /// People it mentions.
    pub(crate) mentions: Vec<Mention>,
    /// The thread it was posted in, if it is a reply: an answer goes to the same thread.
    pub(crate) thread: Option<String>,
    /// When it was posted, Unix milliseconds.
    pub(crate) at_ms: i64,
}

/// An @-mention in a message (Zoom's `at_items`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mention {
    /// The mentioned user's email (`at_contact`), or its id when no email is given.
    pub(crate) user: String,
    /// The mentioned user's id (`at_contact_user_id`).
    pub(crate) user_id: String,
    /// Where the mention starts and ends in the text (characters).
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// What a frame from the socket means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A channel message was posted.
    Message(ChatMessage),
    /// Anything else: `build_connection`, a heartbeat's answer, other events.
    Other,
}

/// The event WebSocket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// One page of list-messages: the messages (newest first) and the next page's token.
pub(crate) struct Page {
    pub(crate) messages: Vec<ChatMessage>,
    pub(crate) next: Option<String>,
}

impl ServerToServerApp {
    pub fn new(
        http: reqwest::Client,
        oauth_url: Url,
        api_url: Url,
        account_id: String,
        app: AppCredentials,
        account: Option<Arc<AccountGate>>,
    ) -> ServerToServerApp {
        ServerToServerApp {
            http,
            oauth_url,
            api_url,
            account_id,
            app,
            account,
        }
    }

    /// Waits for the account to admit one REST call; refused while it is paused for the day.
    pub(crate) async fn turn(&self) -> Result<(), ZoomError> {
        match &self.account {
            Some(account) => account.turn().await,
            None => Ok(()),
        }
    }

    /// A failed REST answer as an error; a daily-limit 429 pauses the whole account.
    pub(super) fn failed(&self, answer: ZoomAnswer) -> ZoomError {
        match &self.account {
            Some(account) => account.failed(answer),
            None => answer.into_error(),
        }
    }

    /// The account its tokens are for.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Fetches a token, to check the app's credentials (`bbzoom connect`).
    pub async fn verify(&self) -> Result<(), ZoomError> {
        self.fetch_token().await.map(drop)
    }

    /// A fresh token: each connection opens with its own, and lasts until its renewal time.
    pub(crate) async fn token(&self) -> Result<EventsToken, ZoomError> {
        let CachedToken {
            value, renew_at, ..
        } = self.fetch_token().await?;
        Ok(EventsToken { value, renew_at })
    }

    /// The scopes a fresh token carries, as Zoom lists them; `None` when its answer lists none.
    pub async fn granted_scopes(&self) -> Result<Option<Vec<String>>, ZoomError> {
        Ok(self.fetch_token().await?.scopes)
    }

    /// A fresh token (`grant_type=account_credentials`).
    async fn fetch_token(&self) -> Result<CachedToken, ZoomError> {
        let grant = [
            ("grant_type", "account_credentials"),
            ("account_id", self.account_id.as_str()),
        ];
        request_token(
            &self.http,
            &self.oauth_url,
            &grant,
            &self.app,
            "the Server-to-Server app's",
        )
        .await
    }

    /// `GET /chat/users/{user}/messages?to_channel=...&from=...`: one page of a channel's
    /// messages, newest first, from `from_ms` (rounded down to Zoom's whole seconds) on.
    pub(crate) async fn list_messages(
        &self,
        token: &SecretString,
        user: &str,
        channel_id: &str,
        from_ms: i64,
        page: Option<&str>,
    ) -> Result<Page, ZoomError> {
        let mut url = super::endpoint(&self.api_url, &["chat", "users", user, "messages"])?;
        url.query_pairs_mut()
            .append_pair("to_channel", channel_id)
            .append_pair("from", &crate::clock::utc_seconds(from_ms))
            .append_pair("page_size", &PAGE_SIZE.to_string());
        if let Some(page) = page {
            url.query_pairs_mut().append_pair("next_page_token", page);
        }
        self.turn().await?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| {
                ZoomError::transient(format!("Zoom list-messages failed: {}", e.without_url()))
            })?;
        let answer = classify(response)
            .await
            .map_err(|answer| self.failed(answer))?;
        let listed: ListAnswer = serde_json::from_value(answer)
            .map_err(|e| ZoomError::transient(format!("unreadable list-messages answer: {e}")))?;
        Ok(Page {
            messages: listed
                .messages
                .into_iter()
                // The chatbot's own posts (its answers, cards) are never commands.
                .filter(|m| m.bot_message.is_none())
                .map(|m| m.into_message(channel_id))
                .collect(),
            next: listed.next_page_token.filter(|t| !t.is_empty()),
        })
    }
}

/// Opens the subscription's WebSocket at `url` with `token`. Errors never show the URL: its
/// query holds the token.
pub(crate) async fn connect(
    url: &Url,
    subscription_id: &str,
    token: &SecretString,
) -> Result<Socket, String> {
    let mut url = url.clone();
    url.query_pairs_mut()
        .append_pair("subscriptionId", subscription_id)
        .append_pair("access_token", token.expose_secret());
    let tls = tls_config().map_err(|e| format!("no TLS configuration: {e}"))?;
    let opened = tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        None,
        true,
        Some(Connector::Rustls(tls)),
    )
    .await;
    match opened {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(format!(
            "Zoom refused the event WebSocket (HTTP {}){}",
            response.status(),
            match response.status().as_u16() {
                401 => ": the access token was not accepted",
                404 => ": check [zoom.events] subscription_id",
                _ => "",
            }
        )),
        Err(e) => Err(format!(
            "cannot open the event WebSocket: {}",
            described(&e)
        )),
    }
}

/// A socket error in words that cannot hold the URL (and so the token).
pub(crate) fn described(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Url(_) => "the [zoom.events] url is not a WebSocket URL".to_owned(),
        other => other.to_string(),
    }
}

/// rustls with the platform's verifier, as reqwest's; rustls speaks only TLS 1.2 and 1.3.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The heartbeat frame Zoom asks for.
pub(crate) fn heartbeat() -> Message {
    Message::Text(r#"{"module":"heartbeat"}"#.into())
}

/// Sends `message`; the error in words.
pub(crate) async fn send(socket: &mut Socket, message: Message) -> Result<(), String> {
    socket
        .send(message)
        .await
        .map_err(|e| format!("the event WebSocket failed: {}", described(&e)))
}

/// The next frame read as [`Incoming`]; `Err` once the socket closed or failed.
pub(crate) async fn next(socket: &mut Socket) -> Result<Incoming, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(read_frame(&text)),
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(frame) => format!(
                        "Zoom closed the event WebSocket ({}: {})",
                        u16::from(frame.code),
                        crate::render::clean(&frame.reason, 200)
                    ),
                    None => "Zoom closed the event WebSocket".to_owned(),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("the event WebSocket failed: {}", described(&e))),
            None => return Err("the event WebSocket ended".to_owned()),
        }
    }
}

/// A text frame: Zoom's envelope `{"module":"message","content":"<event JSON>"}`, or, as
/// Zoom's own sample reads it, the event at the top level.
pub(crate) fn read_frame(text: &str) -> Incoming {
    let Ok(frame) = serde_json::from_str::<Frame>(text) else {
        return Incoming::Other;
    };
    let event = match (frame.module.as_deref(), frame.content) {
        (Some("message"), Some(content)) => serde_json::from_str::<Event>(&content).ok(),
        (None, _) => serde_json::from_str::<Event>(text).ok(),
        _ => None,
    };
    match event {
        Some(event) if event.event == "team_chat.channel_message_posted" => {
            let payload = event.payload;
            let object = payload.object;
            let sender_id = payload.operator_id.unwrap_or_default();
            let sender = payload
                .operator
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| sender_id.clone())
                .to_lowercase();
            Incoming::Message(ChatMessage {
                id: object.message_id,
                channel_id: object.channel_id,
                sender,
                sender_id,
                text: object.message.unwrap_or_default(),
                mentions: mentions(object.at_items),
                thread: object.reply_main_message_id,
                at_ms: object.timestamp.unwrap_or_default(),
            })
        }
        _ => Incoming::Other,
    }
}

fn mentions(items: Vec<AtItem>) -> Vec<Mention> {
    items
        .into_iter()
        .map(|item| Mention {
            user: item
                .at_contact
                .unwrap_or_else(|| item.at_contact_user_id.clone().unwrap_or_default())
                .to_lowercase(),
            user_id: item.at_contact_user_id.unwrap_or_default(),
            start: item.start_position.unwrap_or_default(),
            end: item.end_position.unwrap_or_default(),
        })
        .collect()
}

/// The socket's envelope.
#[derive(Deserialize)]
struct Frame {
    module: Option<String>,
    content: Option<String>,
}

/// A webhook-shaped event.
#[derive(Deserialize)]
struct Event {
    event: String,
    payload: EventPayload,
}

#[derive(Deserialize)]
struct EventPayload {
    operator: Option<String>,
    operator_id: Option<String>,
    object: EventObject,
}

#[derive(Deserialize)]
struct EventObject {
    message_id: String,
    channel_id: String,
    message: Option<String>,
    #[serde(default)]
    at_items: Vec<AtItem>,
    reply_main_message_id: Option<String>,
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct AtItem {
    at_contact: Option<String>,
    at_contact_user_id: Option<String>,
    start_position: Option<usize>,
    end_position: Option<usize>,
}

/// list-messages' answer.
#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    messages: Vec<ListedMessage>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListedMessage {
    id: String,
    #[serde(default)]
    message: String,
    sender: Option<String>,
    #[serde(default)]
    at_items: Vec<AtItem>,
    reply_main_message_id: Option<String>,
    timestamp: Option<i64>,
    bot_message: Option<serde_json::Value>,
}

impl ListedMessage {
    fn into_message(self, channel_id: &str) -> ChatMessage {
        ChatMessage {
            id: self.id,
            channel_id: channel_id.to_owned(),
            sender: self.sender.unwrap_or_default().to_lowercase(),
            sender_id: String::new(),
            text: self.message,
            mentions: mentions(self.at_items),
            thread: self.reply_main_message_id,
            at_ms: self.timestamp.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arbitrary::json;
    use proptest::prelude::*;

    #[test]
    fn a_channel_message_is_read_from_zoom_s_envelope() {
        let event = r#"{"event":"team_chat.channel_message_posted","payload":{"operator":"Jane@Example.com","operator_id":"u1","object":{"message_id":"m1","channel_id":"ci","message":"bbzoom help","timestamp":1700000000123,"reply_main_message_id":"t0","at_items":[{"at_contact":"bot@example.com","at_contact_user_id":"b1","start_position":0,"end_position":7}]}}}"#;
        let frame = serde_json::json!({"module": "message", "content": event}).to_string();
        let expected = Incoming::Message(ChatMessage {
            id: "m1".into(),
            channel_id: "ci".into(),
            sender: "jane@example.com".into(),
            sender_id: "u1".into(),
            text: "bbzoom help".into(),
            mentions: vec![Mention {
                user: "bot@example.com".into(),
                user_id: "b1".into(),
                start: 0,
                end: 7,
            }],
            thread: Some("t0".into()),
            at_ms: 1_700_000_000_123,
        });
        assert_eq!(read_frame(&frame), expected);
        // Zoom's own sample reads the event at the top level: so does bbzoom.
        assert_eq!(read_frame(event), expected);
        assert_eq!(
            read_frame(r#"{"module":"heartbeat","content":"live"}"#),
            Incoming::Other
        );
        assert_eq!(read_frame("not json"), Incoming::Other);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any JSON in a frame, bare or inside the envelope, is read without a panic.
        #[test]
        fn any_frame_reads_without_a_panic(value in json()) {
            let _ = read_frame(&value.to_string());
            let wrapped = serde_json::json!({"module": "message", "content": value.to_string()});
            let _ = read_frame(&wrapped.to_string());
            let _ = serde_json::from_value::<ListAnswer>(value);
        }
    }
}
