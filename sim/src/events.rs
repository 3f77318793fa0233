//! Zoom's event delivery over an outbound WebSocket, and what a client reads back with: people
//! posting into channels, the event subscription's WebSocket (`GET /ws?subscriptionId=...&
//! access_token=...`) and Team Chat's list-messages API (`GET /v2/chat/users/{userId}/messages`).
//!
//! What is known of the WebSocket (shared/api/change-detection-and-events.md §2.2), and what the
//! simulator does where Zoom does not say:
//! - the token is a Server-to-Server OAuth one (`grant_type=account_credentials`, `zoom.rs`);
//!   an unknown subscription or a bad token is refused before the upgrade (404 / 401);
//! - the server says `{"module":"build_connection",...}` first; the client must send
//!   `{"module":"heartbeat"}` text frames, each answered
//!   `{"module":"heartbeat","success":true,"content":"live","header":{}}`; a connection silent
//!   for [`SimEventsApp::heartbeat_timeout`] simulated seconds is closed (Zoom's exact rule is
//!   not published; ZoomNet reconnects after 45 s without a message);
//! - an event is `{"module":"message","content":"<the event's JSON as a string>"}`;
//! - what is posted while no connection is open is never delivered (no replay);
//! - one connection per subscription: a new one closes the older;
//! - a connection whose token expires is closed (stricter than anything reported, so a client
//!   that never renews its token shows in tests).
//!
//! [`SimEventsApp::heartbeat_timeout`]: crate::SimEventsApp::heartbeat_timeout

use super::zoom::{self, ZoomError};
use super::{Inner, SimMention, SimPerson, State as Shared, bearer_token};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, oneshot};

/// Zoom's largest `page_size` for list-messages (the subset spec's `maximum`).
const MAX_PAGE_SIZE: usize = 50;

/// Its default `page_size`.
const DEFAULT_PAGE_SIZE: usize = 10;

/// Close code for a connection closed by the server's rules (heartbeat, token, a newer one).
const POLICY_CLOSE: u16 = 1008;

/// Close code for a disconnect a test forces: the server going away.
const GOING_AWAY: u16 = 1001;

/// The routes of this module, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/ws", get(connect))
        .route("/v2/chat/users/{user_id}/messages", get(list_messages))
}

/// The event side's share of the simulator's state.
#[derive(Default)]
pub(super) struct Events {
    /// Server-to-Server access tokens issued, each with the real instant it expires (`None`:
    /// never). Apart from the chatbot's: neither app's token opens the other's APIs.
    pub(super) tokens: HashMap<String, Option<Instant>>,
    /// What people posted, all channels together, in posting order.
    pub(super) posts: Vec<Post>,
    /// The open connection of the subscription, if any (Zoom keeps one per subscription).
    open: Option<Open>,
    /// Numbers the connections, so one ending removes itself only, never its successor.
    next_connection: u64,
}

/// The open connection of the subscription.
struct Open {
    /// Its number.
    id: u64,
    /// Tells it to close, with why: a newer connection or a forced disconnect.
    close: oneshot::Sender<Close>,
}

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// Another connection opened for the same subscription.
    Replaced,
    /// [`crate::Simulator::disconnect_events`].
    Forced,
    /// No heartbeat within the timeout.
    Silent,
    /// Its access token expired.
    TokenExpired,
}

impl Close {
    fn frame(self) -> CloseFrame {
        let (code, reason) = match self {
            Close::Replaced => (
                POLICY_CLOSE,
                "another connection opened for the subscription",
            ),
            Close::Forced => (GOING_AWAY, "server going away"),
            Close::Silent => (POLICY_CLOSE, "heartbeat timeout"),
            Close::TokenExpired => (POLICY_CLOSE, "access token expired"),
        };
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// A message a person posted into a channel.
#[derive(Debug, Clone)]
pub(super) struct Post {
    /// Zoom's message id.
    pub(super) message_id: String,
    /// The channel's JID.
    pub(super) to_jid: String,
    /// Who posted it.
    pub(super) person: SimPerson,
    /// The text.
    pub(super) text: String,
    /// People it mentions.
    pub(super) mentions: Vec<SimMention>,
    /// The thread's first message, for a reply.
    pub(super) reply_to: Option<String>,
    /// Simulated second of the post.
    pub(super) at: f64,
}

/// The channel id of a channel JID: its local part, as Zoom's Team Chat API names channels.
pub(super) fn channel_id(to_jid: &str) -> &str {
    to_jid.split_once('@').map_or(to_jid, |(id, _)| id)
}

/// Records a person's post and hands the event to the open connection, if any.
pub(super) fn post(inner: &Inner, state: &mut Shared, post: Post) {
    let event = channel_message_posted(inner, &post);
    state.events.posts.push(post);
    // Sent under the lock, so a connection sees posts in order; nobody listening is no replay.
    let _ = inner.chat_events.send(Arc::from(event.to_string()));
}

/// The `team_chat.channel_message_posted` event of a post (team-chat-events.subset spec).
fn channel_message_posted(inner: &Inner, post: &Post) -> Value {
    let account_id = &inner.options.zoom_events.account_id;
    let channel_id = channel_id(&post.to_jid);
    let millis = inner.clock.epoch_millis(post.at);
    let mut object = json!({
        "message_id": post.message_id,
        "session_id": channel_id,
        "date_time": date_time(inner, post.at),
        "timestamp": millis,
        "channel_id": channel_id,
        "channel_owner_account_id": account_id,
        "channel_name": channel_id,
        "message": post.text,
        "at_items": at_items(&post.mentions),
    });
    if let Some(parent) = &post.reply_to {
        object["reply_main_message_id"] = json!(parent);
    }
    json!({
        "event": "team_chat.channel_message_posted",
        "event_ts": millis,
        "payload": {
            "account_id": account_id,
            "operator": post.person.email,
            "operator_id": post.person.user_id,
            "operator_member_id": member_id(&post.person),
            "by_external_user": false,
            "object": object,
        },
    })
}

/// A person's member id (Zoom's other id of a user, stable per user).
fn member_id(person: &SimPerson) -> String {
    format!("m-{}", person.user_id)
}

/// Mentions in Zoom's `at_items` form (`at_type` 1: a contact).
fn at_items(mentions: &[SimMention]) -> Value {
    mentions
        .iter()
        .map(|m| {
            json!({
                "at_type": 1,
                "at_contact": m.email,
                "at_contact_user_id": m.user_id,
                "start_position": m.start,
                "end_position": m.end,
            })
        })
        .collect()
}

/// Team Chat's `date_time` form, `yyyy-MM-dd'T'HH:mm:ss'Z'`.
fn date_time(inner: &Inner, sim_secs: f64) -> String {
    let millis = inner.clock.epoch_millis(sim_secs);
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The query of the WebSocket URL.
#[derive(Deserialize)]
struct ConnectQuery {
    #[serde(rename = "subscriptionId")]
    subscription_id: Option<String>,
    access_token: Option<String>,
}

/// `GET /ws?subscriptionId=...&access_token=...`: the subscription's event WebSocket.
async fn connect(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<ConnectQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token_expiry = {
        let mut state = inner.lock();
        if zoom::in_outage(&inner, &state, inner.clock.now()) {
            state.stats.zoom_unavailable += 1;
            return zoom::bad_gateway();
        }
        let app = &inner.options.zoom_events;
        if query.subscription_id.as_deref() != Some(app.subscription_id.as_str()) {
            state.stats.zoom_events_refused += 1;
            return ZoomError::new(StatusCode::NOT_FOUND, 404, "Subscription does not exist.")
                .into_response();
        }
        match valid_token(&state, query.access_token.as_deref()) {
            Ok(expiry) => expiry,
            Err(refusal) => {
                state.stats.zoom_events_refused += 1;
                return refusal.into_response();
            }
        }
    };
    upgrade.on_upgrade(move |socket| serve(inner, socket, token_expiry))
}

/// The expiry of a valid Server-to-Server token, or the 401 Zoom answers.
fn valid_token(state: &Shared, token: Option<&str>) -> Result<Option<Instant>, ZoomError> {
    let unauthorized = |message| ZoomError::new(StatusCode::UNAUTHORIZED, 124, message);
    match token.and_then(|t| state.events.tokens.get(t)) {
        None => Err(unauthorized("Invalid access token.")),
        Some(Some(expiry)) if *expiry <= Instant::now() => {
            Err(unauthorized("Access token is expired."))
        }
        Some(expiry) => Ok(*expiry),
    }
}

/// One connection, from the upgrade to its close.
async fn serve(inner: Arc<Inner>, mut socket: WebSocket, token_expiry: Option<Instant>) {
    // Listening starts before the connection counts as open, so nothing posted once it is open
    // is missed; nothing posted earlier is ever seen.
    let mut posted = inner.chat_events.subscribe();
    let (close_tx, mut close_rx) = oneshot::channel();
    let id = {
        let mut state = inner.lock();
        state.stats.zoom_events_connections += 1;
        let id = state.events.next_connection;
        state.events.next_connection += 1;
        let older = state.events.open.replace(Open {
            id,
            close: close_tx,
        });
        if let Some(older) = older {
            let _ = older.close.send(Close::Replaced);
        }
        id
    };
    let silence = Duration::from_secs_f64(
        (inner.options.zoom_events.heartbeat_timeout / inner.options.speed).max(0.0),
    );
    let built = json!({ "module": "build_connection", "success": true, "header": {} });
    let mut closing = None;
    if send(&mut socket, &built).await {
        let mut heard = tokio::time::Instant::now();
        closing = loop {
            tokio::select! {
                // A connection told to close sends nothing more: a post after a forced
                // disconnect must never reach it, whatever else is ready.
                biased;
                why = &mut close_rx => break Some(why.unwrap_or(Close::Forced)),
                frame = socket.recv() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if is_heartbeat(&text) {
                            heard = tokio::time::Instant::now();
                            inner.lock().stats.zoom_heartbeats += 1;
                            let live = json!({
                                "module": "heartbeat", "success": true,
                                "content": "live", "header": {},
                            });
                            if !send(&mut socket, &live).await {
                                break None;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                    Some(Ok(_)) => {}
                },
                event = posted.recv() => match event {
                    Ok(event) => {
                        let frame = json!({ "module": "message", "content": &*event });
                        if !send(&mut socket, &frame).await {
                            break None;
                        }
                        inner.lock().stats.zoom_events_delivered += 1;
                    }
                    // A lagging connection would have lost events silently: close it instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => break Some(Close::Forced),
                    Err(broadcast::error::RecvError::Closed) => break Some(Close::Forced),
                },
                () = tokio::time::sleep_until(heard + silence) => break Some(Close::Silent),
                () = expires(token_expiry) => break Some(Close::TokenExpired),
            }
        };
    }
    if let Some(why) = closing {
        tracing::debug!(?why, "simulated Zoom: event connection closed");
        if matches!(why, Close::Silent) {
            inner.lock().stats.zoom_events_silent_closes += 1;
        }
        let _ = socket.send(Message::Close(Some(why.frame()))).await;
    }
    let mut state = inner.lock();
    if state.events.open.as_ref().is_some_and(|open| open.id == id) {
        state.events.open = None;
    }
}

/// Ends when a token expiring at `expiry` expires; never for one without expiry.
async fn expires(expiry: Option<Instant>) {
    match expiry {
        Some(expiry) => tokio::time::sleep_until(expiry.into()).await,
        None => std::future::pending().await,
    }
}

/// Sends a JSON text frame; false once the connection is gone.
async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Whether a client's text frame is a heartbeat.
fn is_heartbeat(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v["module"] == "heartbeat")
}

/// Whether the subscription has a connection open.
pub(super) fn connected(state: &Shared) -> bool {
    state.events.open.is_some()
}

/// Closes the subscription's open connection; whether there was one.
pub(super) fn disconnect(state: &mut Shared) -> bool {
    match state.events.open.take() {
        Some(open) => {
            let _ = open.close.send(Close::Forced);
            true
        }
        None => false,
    }
}

/// The query of list-messages.
#[derive(Deserialize)]
struct ListQuery {
    to_channel: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page_size: Option<String>,
    next_page_token: Option<String>,
}

/// `GET /v2/chat/users/{userId}/messages?to_channel=...`: a channel's messages as the user sees
/// them, newest first, people's and the chatbot's (as `bot_message`) alike, `from`/`to`
/// inclusive at Zoom's whole seconds, paged by `next_page_token`.
async fn list_messages(
    State(inner): State<Arc<Inner>>,
    Path(user_id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let mut state = inner.lock();
    state.stats.zoom_list_requests += 1;
    let now = inner.clock.now();
    if zoom::in_outage(&inner, &state, now) {
        state.stats.zoom_unavailable += 1;
        return zoom::bad_gateway();
    }
    if let Err(refusal) = valid_token(&state, bearer_token(&headers)) {
        return refusal.into_response();
    }
    if let Err(limited) = zoom::rate_limit(&inner, &mut state, now, false) {
        zoom::count_refusal(&mut state.stats, limited.status);
        return limited.into_response();
    }
    let app = &inner.options.zoom_events;
    if user_id != app.user_id && user_id != app.user_email {
        return ZoomError::new(StatusCode::NOT_FOUND, 1001, "User does not exist.").into_response();
    }
    let bad = |message: &str| ZoomError::new(StatusCode::BAD_REQUEST, 300, message);
    let Some(channel) = query.to_channel else {
        return bad("You must provide either to_contact or to_channel.").into_response();
    };
    let to_jid = inner
        .options
        .zoom
        .channels
        .iter()
        .find(|jid| channel_id(jid) == channel);
    let Some(to_jid) = to_jid else {
        let message = format!("Channel does not exist: {channel}.");
        return ZoomError::new(StatusCode::NOT_FOUND, 4130, message).into_response();
    };
    let page_size = match query.page_size.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => return bad("Invalid field: page_size.").into_response(),
    };
    let bound = |text: Option<&str>| -> Result<Option<i64>, ZoomError> {
        text.map(|t| {
            OffsetDateTime::parse(t, &Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| bad("Invalid field: date-time, expected yyyy-MM-dd'T'HH:mm:ss'Z'."))
        })
        .transpose()
    };
    let (from, to) = match (bound(query.from.as_deref()), bound(query.to.as_deref())) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal.into_response(),
    };
    // The token is the posting-order rank of the last message shown: stable while people post.
    let before = match query.next_page_token.as_deref().filter(|t| !t.is_empty()) {
        None => usize::MAX,
        Some(token) => match token.strip_prefix("sim-").map(str::parse::<usize>) {
            Some(Ok(rank)) => rank,
            _ => return bad("Invalid next_page_token.").into_response(),
        },
    };
    let in_window = |at: f64| {
        let second = inner.clock.epoch_millis(at).div_euclid(1000);
        from.is_none_or(|from| second >= from) && to.is_none_or(|to| second <= to)
    };
    let listed = channel_history(&state, to_jid);
    let matching: Vec<&(usize, f64, Value)> = listed
        .iter()
        .rev()
        .filter(|(rank, at, _)| *rank < before && in_window(*at))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .take(page_size)
        .map(|(_, at, item)| {
            let mut item = item.clone();
            item["date_time"] = json!(date_time(&inner, *at));
            item["timestamp"] = json!(inner.clock.epoch_millis(*at));
            item
        })
        .collect();
    let next_page_token = match (matching.len() > page_size, matching.get(page_size - 1)) {
        (true, Some((rank, _, _))) => format!("sim-{rank}"),
        _ => String::new(),
    };
    let mut answer = json!({
        "messages": page,
        "page_size": page_size,
        "next_page_token": next_page_token,
    });
    if let Some(from) = query.from {
        answer["from"] = json!(from);
    }
    if let Some(to) = query.to {
        answer["to"] = json!(to);
    }
    axum::Json(answer).into_response()
}

/// Every message of a channel in posting order, people's and the chatbot's merged: its rank
/// (a position in one order over both), simulated second and list-messages item.
fn channel_history(state: &Shared, to_jid: &str) -> Vec<(usize, f64, Value)> {
    let people = state
        .events
        .posts
        .iter()
        .filter(|p| p.to_jid == to_jid)
        .map(|p| {
            let mut item = json!({
                "id": p.message_id,
                "message": p.text,
                "message_type": "plain_text_message",
                "sender": p.person.email,
                "sender_display_name": p.person.name,
                "send_member_id": member_id(&p.person),
                "at_items": at_items(&p.mentions),
            });
            if let Some(parent) = &p.reply_to {
                item["reply_main_message_id"] = json!(parent);
            }
            (p.at, item)
        });
    let bot = state
        .messages
        .iter()
        .filter(|m| m.to_jid == to_jid && !m.deleted)
        .map(|m| {
            let mut item = json!({ "id": m.message_id, "message": "", "bot_message": m.content });
            if let Some(parent) = &m.reply_to {
                item["reply_main_message_id"] = json!(parent);
            }
            (m.posted_at, item)
        });
    let mut merged: Vec<(f64, Value)> = people.chain(bot).collect();
    // Stable: posts of one instant keep their order of arrival within each kind.
    merged.sort_by(|a, b| a.0.total_cmp(&b.0));
    merged
        .into_iter()
        .enumerate()
        .map(|(rank, (at, item))| (rank, at, item))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::testing::{Auth, get};
    use crate::{Scenario, SimEventsApp, SimMention, SimOptions, SimPerson, Simulator};
    use futures_util::{SinkExt, StreamExt};
    use serde_json::Value;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    const CHANNEL: &str = "ci@conference.xmpp.zoom.us";

    /// A simulator at 100x: a 60 s heartbeat timeout is 0.6 s of real time.
    async fn start(events: SimEventsApp) -> Simulator {
        let options = SimOptions {
            speed: 100.0,
            zoom_events: events,
            ..SimOptions::default()
        };
        crate::testing::start(Scenario { repos: vec![] }, options).await
    }

    fn jane() -> SimPerson {
        SimPerson {
            user_id: "jane-id".to_owned(),
            name: "Jane Dev".to_owned(),
            email: "jane@example.com".to_owned(),
        }
    }

    /// A Server-to-Server token, or the token endpoint's status.
    async fn s2s_token(sim: &Simulator, account_id: &str) -> Result<String, u16> {
        let app = &sim.options().zoom_events;
        let response = reqwest::Client::new()
            .post(sim.zoom_oauth_url())
            .query(&[
                ("grant_type", "account_credentials"),
                ("account_id", account_id),
            ])
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .send()
            .await
            .expect("request goes through");
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        let body: Value = response.json().await.expect("JSON");
        Ok(body["access_token"].as_str().expect("token").to_owned())
    }

    /// Opens the WebSocket with `token`; the handshake's status when refused.
    async fn open(sim: &Simulator, subscription: &str, token: &str) -> Result<Socket, u16> {
        let mut url = sim.zoom_events_url();
        url.query_pairs_mut()
            .append_pair("subscriptionId", subscription)
            .append_pair("access_token", token);
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("handshake failed: {e}"),
        }
    }

    /// Connects with a fresh token and reads `build_connection`.
    async fn connected(sim: &Simulator) -> Socket {
        let token = s2s_token(sim, "simaccount").await.expect("token");
        let mut socket = open(sim, "sim-subscription", &token).await.expect("opens");
        assert_eq!(next_json(&mut socket).await["module"], "build_connection");
        socket
    }

    /// The next text frame as JSON; `Value::Null` once closed.
    async fn next_json(socket: &mut Socket) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await
                .expect("a frame within 5 s");
            match frame {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Value::Null,
                Some(Ok(_)) => {}
            }
        }
    }

    async fn heartbeat(socket: &mut Socket) {
        let beat = Message::Text(r#"{"module":"heartbeat"}"#.into());
        socket.send(beat).await.expect("sent");
    }

    #[tokio::test]
    async fn account_credentials_grant_needs_the_account_and_opens_only_the_websocket() {
        let sim = start(SimEventsApp::default()).await;
        assert_eq!(s2s_token(&sim, "another").await, Err(400));
        let token = s2s_token(&sim, "simaccount").await.expect("token");
        assert_eq!(open(&sim, "unknown", &token).await.err(), Some(404));
        assert_eq!(
            open(&sim, "sim-subscription", "forged").await.err(),
            Some(401)
        );
        let chatbot = &sim.options().zoom;
        let answer = reqwest::Client::new()
            .post(sim.zoom_oauth_url())
            .query(&[("grant_type", "client_credentials")])
            .basic_auth(&chatbot.client_id, Some(&chatbot.client_secret))
            .send()
            .await
            .expect("request goes through");
        let body: Value = answer.json().await.expect("JSON");
        let chatbot_token = body["access_token"].as_str().expect("token");
        assert_eq!(
            open(&sim, "sim-subscription", chatbot_token).await.err(),
            Some(401)
        );
        assert_eq!(sim.stats().zoom_events_refused, 3);
        assert!(!sim.events_connected());
    }

    #[tokio::test]
    async fn posts_arrive_while_connected_and_never_after() {
        let sim = start(SimEventsApp::default()).await;
        let mut socket = connected(&sim).await;
        assert!(sim.events_connected());
        heartbeat(&mut socket).await;
        let live = next_json(&mut socket).await;
        assert_eq!(live["module"], "heartbeat");
        assert_eq!(live["content"], "live");

        let mention = SimMention {
            user_id: "bot-id".to_owned(),
            email: "bot@example.com".to_owned(),
            start: 0,
            end: 7,
        };
        let id = sim
            .post_to_channel(CHANNEL, &jane(), "@bbzoom status", &[mention], None)
            .expect("posted");
        let frame = next_json(&mut socket).await;
        assert_eq!(frame["module"], "message");
        let event: Value =
            serde_json::from_str(frame["content"].as_str().expect("a JSON string")).expect("JSON");
        assert_eq!(event["event"], "team_chat.channel_message_posted");
        let object = &event["payload"]["object"];
        assert_eq!(object["message_id"], id.as_str());
        assert_eq!(object["channel_id"], "ci");
        assert_eq!(object["message"], "@bbzoom status");
        assert_eq!(object["at_items"][0]["at_contact_user_id"], "bot-id");
        assert_eq!(event["payload"]["operator"], "jane@example.com");

        assert!(sim.disconnect_events());
        assert_eq!(next_json(&mut socket).await, Value::Null);
        sim.post_to_channel(CHANNEL, &jane(), "bbzoom help", &[], None)
            .expect("posted");
        let mut socket = connected(&sim).await;
        heartbeat(&mut socket).await;
        // The heartbeat's answer comes first: the post made while away is not replayed.
        assert_eq!(next_json(&mut socket).await["module"], "heartbeat");
        assert_eq!(sim.stats().zoom_events_delivered, 1);
    }

    #[tokio::test]
    async fn a_new_connection_closes_the_older() {
        let sim = start(SimEventsApp::default()).await;
        let mut first = connected(&sim).await;
        let mut second = connected(&sim).await;
        assert_eq!(next_json(&mut first).await, Value::Null);
        sim.post_to_channel(CHANNEL, &jane(), "bbzoom list", &[], None)
            .expect("posted");
        assert_eq!(next_json(&mut second).await["module"], "message");
        assert!(sim.events_connected());
    }

    #[tokio::test]
    async fn heartbeats_keep_a_connection_and_silence_closes_it() {
        let sim = start(SimEventsApp::default()).await;
        let mut socket = connected(&sim).await;
        // 0.3 s real is 30 simulated seconds: well within the 60 s rule.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            heartbeat(&mut socket).await;
            assert_eq!(next_json(&mut socket).await["content"], "live");
        }
        assert_eq!(sim.stats().zoom_heartbeats, 4);
        assert_eq!(next_json(&mut socket).await, Value::Null);
        assert_eq!(sim.stats().zoom_events_silent_closes, 1);
        assert!(!sim.events_connected());
    }

    #[tokio::test]
    async fn an_expiring_token_closes_its_connection() {
        let sim = start(SimEventsApp {
            token_lifetime: Duration::from_millis(300),
            heartbeat_timeout: 6000.0,
            ..SimEventsApp::default()
        })
        .await;
        let mut socket = connected(&sim).await;
        assert_eq!(next_json(&mut socket).await, Value::Null);
        assert_eq!(sim.stats().zoom_events_silent_closes, 0);
        assert!(!sim.events_connected());
    }

    /// The message ids of a list-messages page, in its order.
    fn ids_shown(page: &Value) -> Vec<&str> {
        let messages = page["messages"].as_array().expect("messages");
        messages
            .iter()
            .map(|m| m["id"].as_str().expect("id"))
            .collect()
    }

    #[tokio::test]
    async fn list_messages_pages_newest_first_within_the_window() {
        let sim = start(SimEventsApp::default()).await;
        let token = s2s_token(&sim, "simaccount").await.expect("token");
        let mut ids = Vec::new();
        for n in 0..5 {
            let text = format!("bbzoom status {n}");
            ids.push(
                sim.post_to_channel(CHANNEL, &jane(), &text, &[], None)
                    .expect("posted"),
            );
        }
        let reply = sim
            .post_to_channel(CHANNEL, &jane(), "thanks", &[], Some(&ids[0]))
            .expect("posted");
        let base = format!("{}/chat/users/sim-admin-user/messages", sim.zoom_api_url());
        let list = |query: String| {
            let url = format!("{base}?to_channel=ci&page_size=4{query}");
            let token = token.clone();
            async move { get(&url, Auth::Bearer(&token)).await }
        };
        let first = list(String::new()).await;
        assert_eq!(first.status, 200, "{}", first.text);
        let first = first.json();
        assert_eq!(
            ids_shown(&first),
            [reply.as_str(), &ids[4], &ids[3], &ids[2]]
        );
        assert_eq!(
            first["messages"][0]["reply_main_message_id"],
            ids[0].as_str()
        );
        assert_eq!(first["messages"][0]["sender"], "jane@example.com");
        let token_text = first["next_page_token"].as_str().expect("token");
        let second = list(format!("&next_page_token={token_text}")).await.json();
        assert_eq!(ids_shown(&second), [&ids[1], &ids[0]]);
        assert_eq!(second["next_page_token"], "");
        // A window that ends before the posts shows none of them.
        let none = list("&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z".to_owned()).await;
        assert_eq!(none.json()["messages"], serde_json::json!([]));

        let url = format!(
            "{}/chat/users/stranger/messages?to_channel=ci",
            sim.zoom_api_url()
        );
        assert_eq!(get(&url, Auth::Bearer(&token)).await.status, 404);
        let url = format!("{base}?to_channel=nowhere");
        assert_eq!(get(&url, Auth::Bearer(&token)).await.status, 404);
        let url = format!("{base}?to_channel=ci");
        assert_eq!(get(&url, Auth::Bearer("forged")).await.status, 401);
    }
}
