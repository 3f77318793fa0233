//! The Zoom side of the simulator: the chatbot's client-credentials token endpoint and the
//! Chatbot API's send, edit and delete calls, validating requests and answering errors the way
//! Zoom does (`{"code","message"}`, codes from the Chatbot API reference at
//! developers.zoom.us/docs/api/chatbot), and keeping what each channel shows. Also what every
//! Zoom request meets first, Incoming Webhooks (`webhook.rs`) included: outages (502 from the
//! proxy in front) and Zoom's rate limits (429 per second or per day, with the messages of
//! Zoom's "Rate limits" page, developers.zoom.us/docs/api/rate-limits).

use super::{
    ChannelEvent, ChannelEventKind, Inner, MessageVia, SimMessage, SimStats, SimZoomApp,
    State as Shared, bearer_token,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};
use std::collections::{HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::form_urlencoded;

/// Simulated seconds in a day: the period of [`SimZoomApp::daily_limit`].
const DAY: f64 = 86_400.0;

/// Zoom's answer text when the per-second limit is hit (`rate-limits.page.md`).
const QPS_MESSAGE: &str =
    "You have reached the maximum per-second rate limit for this API. Try again later.";

/// Zoom's answer text when the daily limit is hit (`rate-limits.page.md`).
const DAILY_MESSAGE: &str = "You have reached the maximum daily rate limit for this API. Refer \
                             to the response header for details on when you can make another \
                             request.";

/// What a reverse proxy (nginx) in front of an unreachable Zoom answers.
const BAD_GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n\
                                <body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n\
                                <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Card body element types Zoom renders for a chatbot that has no inbound endpoint.
const BODY_TYPES: [&str; 6] = [
    "message",
    "fields",
    "section",
    "divider",
    "attachments",
    "actions",
];

/// The Zoom routes, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/v2/im/chat/messages", post(send))
        .route(
            "/v2/im/chat/messages/{message_id}",
            put(edit).delete(delete),
        )
}

/// Refuses Zoom options the simulator cannot serve: two webhooks with one endpoint id, an
/// outage window that is not a pair of numbers.
pub(super) fn check_options(app: &SimZoomApp) -> io::Result<()> {
    let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    let mut ids = HashSet::new();
    for webhook in &app.webhooks {
        if !ids.insert(webhook.endpoint_id.as_str()) {
            return invalid(format!(
                "two Zoom webhooks have the endpoint id {:?}",
                webhook.endpoint_id
            ));
        }
    }
    if let Some((from, to)) = app.outage
        && (from.is_nan() || to.is_nan())
    {
        return invalid(format!(
            "Zoom outage window [{from}, {to}) is not a pair of numbers"
        ));
    }
    Ok(())
}

/// Zoom's rate limits and outage switch: what the gate in front of every Zoom call reads.
#[derive(Default)]
pub(super) struct Limits {
    /// Calls still to be answered 429 QPS ([`super::Simulator::zoom_rate_limit_next`]).
    forced: u32,
    /// The `Retry-After` those answers carry, verbatim.
    forced_retry_after: Option<String>,
    /// [`super::Simulator::set_zoom_outage`].
    pub(super) outage: bool,
    /// The simulated day `day_calls` counts.
    day: u64,
    /// Chatbot calls admitted during `day`.
    day_calls: u32,
    /// A day [`super::Simulator::exhaust_zoom_daily_limit`] closed.
    exhausted_day: Option<u64>,
    /// Real instants of the calls admitted within the last real second, oldest first.
    recent: VecDeque<Instant>,
}

impl Limits {
    pub(super) fn force(&mut self, n: u32, retry_after: Option<String>) {
        self.forced = n;
        self.forced_retry_after = retry_after;
    }

    pub(super) fn exhaust_day(&mut self, now: f64) {
        self.exhausted_day = Some(day_of(now));
    }
}

/// The simulated day (0, 1, ...) simulated second `t` falls in.
fn day_of(t: f64) -> u64 {
    // Saturating: a negative or NaN time is day 0.
    (t / DAY).floor() as u64
}

/// Whether Zoom is unreachable at simulated second `now`.
pub(super) fn in_outage(inner: &Inner, state: &Shared, now: f64) -> bool {
    state.zoom_limits.outage
        || inner
            .options
            .zoom
            .outage
            .is_some_and(|(from, to)| from <= now && now < to)
}

/// The answer during an outage: what a proxy in front of an unreachable service says.
pub(super) fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(CONTENT_TYPE, "text/html")],
        BAD_GATEWAY_PAGE,
    )
        .into_response()
}

/// Zoom's rate limits, in order: calls forced to 429, the per-second limit (chat calls and
/// webhook posts together), and, for chatbot calls (`daily`), the daily cap. A call that
/// passes is counted.
pub(super) fn rate_limit(
    inner: &Inner,
    state: &mut Shared,
    now: f64,
    daily: bool,
) -> Result<(), ZoomError> {
    let app = &inner.options.zoom;
    let limits = &mut state.zoom_limits;
    if limits.forced > 0 {
        limits.forced -= 1;
        let mut error = ZoomError::rate_limited("QPS", QPS_MESSAGE);
        if let Some(retry_after) = &limits.forced_retry_after {
            error = error.with_header(RETRY_AFTER, retry_after.clone());
        }
        return Err(error);
    }
    if let Some(per_second) = app.per_second {
        let real_now = Instant::now();
        while limits
            .recent
            .front()
            .is_some_and(|&t| real_now.duration_since(t) >= Duration::from_secs(1))
        {
            limits.recent.pop_front();
        }
        if limits.recent.len() >= per_second as usize {
            return Err(ZoomError::rate_limited("QPS", QPS_MESSAGE)
                .with_header(RETRY_AFTER, "1".to_owned())
                .with_header(
                    HeaderName::from_static("x-ratelimit-limit"),
                    per_second.to_string(),
                ));
        }
        limits.recent.push_back(real_now);
    }
    if daily {
        let day = day_of(now);
        if limits.day != day {
            limits.day = day;
            limits.day_calls = 0;
        }
        let capped = app.daily_limit.is_some_and(|cap| limits.day_calls >= cap);
        if capped || limits.exhausted_day == Some(day) {
            // The real instant the next simulated day begins, rounded up to the millisecond the
            // text shows (plus one for the epoch's own rounding), so a client waiting until then
            // is not early.
            let reset = (day + 1) as f64 * DAY + 0.002 * inner.options.speed;
            let mut error = ZoomError::rate_limited("Daily-limit", DAILY_MESSAGE)
                .with_header(RETRY_AFTER, inner.clock.rfc3339(reset));
            if let Some(cap) = app.daily_limit {
                error = error.with_header(
                    HeaderName::from_static("x-ratelimit-limit"),
                    cap.to_string(),
                );
            }
            return Err(error);
        }
        limits.day_calls = limits.day_calls.saturating_add(1);
    }
    Ok(())
}

/// A call still to be failed with 503 ([`super::Simulator::fail_next_zoom_calls`]).
pub(super) fn injected_failure(state: &mut Shared) -> Result<(), ZoomError> {
    if state.failures_pending > 0 {
        state.failures_pending -= 1;
        return Err(ZoomError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            503,
            "Service temporarily unavailable.",
        ));
    }
    Ok(())
}

/// Counts a refused chat call or webhook post.
pub(super) fn count_refusal(stats: &mut SimStats, status: StatusCode) {
    if status.is_client_error() {
        stats.zoom_rejected += 1;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        stats.zoom_rate_limited += 1;
    }
}

/// Tags an answer with a tracking id, as Zoom does for its support; clients log it on errors.
pub(super) fn add_tracking_id(response: &mut Response) {
    let rid: u64 = rand::rng().random();
    if let Ok(value) = HeaderValue::from_str(&format!("v=2.0;clid=sim;rid=SIM_{rid:016x}")) {
        response.headers_mut().insert("x-zm-trackingid", value);
    }
}

/// A Zoom API error: HTTP status plus the `{"code","message"}` body, and any headers.
pub(super) struct ZoomError {
    pub(super) status: StatusCode,
    code: u32,
    message: String,
    headers: Vec<(HeaderName, String)>,
}

impl ZoomError {
    pub(super) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ZoomError {
        ZoomError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A 429 of limit type `kind` (`QPS`, `Daily-limit`).
    fn rate_limited(kind: &str, message: &str) -> ZoomError {
        ZoomError::new(StatusCode::TOO_MANY_REQUESTS, 429, message)
            .with_header(
                HeaderName::from_static("x-ratelimit-category"),
                "Medium".to_owned(),
            )
            .with_header(HeaderName::from_static("x-ratelimit-type"), kind.to_owned())
    }

    /// The `message` of the body.
    pub(super) fn message(&self) -> &str {
        &self.message
    }

    pub(super) fn with_header(mut self, name: HeaderName, value: String) -> ZoomError {
        self.headers.push((name, value));
        self
    }

    /// 7001, Zoom's answer to any malformed request body.
    pub(super) fn bad_body(message: impl Into<String>) -> ZoomError {
        ZoomError::new(StatusCode::BAD_REQUEST, 7001, message)
    }
}

impl IntoResponse for ZoomError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        for (name, value) in self.headers {
            // A verbatim value a test chose may not be a valid header; leave it out then.
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// `client_id` and `client_secret` from an `Authorization: Basic` header.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Standard base64 (padding optional): the crate has no base64 dependency and Basic
/// credentials are the only place that needs one.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `POST /oauth/token` with an app's Basic client credentials: `grant_type=client_credentials`
/// for the chatbot app (a token of scope `imchat:bot` for the Chatbot API), or
/// `grant_type=account_credentials&account_id=...` for the Server-to-Server OAuth app that owns
/// the event subscription (a token for its WebSocket and the Team Chat API, `events.rs`).
async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    {
        let mut state = inner.lock();
        state.stats.zoom_token_requests += 1;
        if in_outage(&inner, &state, inner.clock.now()) {
            state.stats.zoom_unavailable += 1;
            return bad_gateway();
        }
    }
    let chatbot = &inner.options.zoom;
    let events = &inner.options.zoom_events;
    let app = basic_credentials(&headers).and_then(|(id, secret)| {
        if id == chatbot.client_id && secret == chatbot.client_secret {
            Some(Grant::Chatbot)
        } else if id == events.client_id && secret == events.client_secret {
            Some(Grant::ServerToServer)
        } else {
            None
        }
    });
    let Some(app) = app else {
        let body =
            json!({ "reason": "Invalid client_id or client_secret", "error": "invalid_client" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    };
    // Zoom documents the parameters in the query; OAuth clients often put them in a form body.
    let params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .chain(form_urlencoded::parse(&body).into_owned())
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let grant_type = match app {
        Grant::Chatbot => "client_credentials",
        Grant::ServerToServer => "account_credentials",
    };
    if param("grant_type") != Some(grant_type) {
        let body = json!({ "reason": "Unsupported grant type", "error": "unsupported_grant_type" });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if app == Grant::ServerToServer && param("account_id") != Some(events.account_id.as_str()) {
        let body = json!({ "reason": "Invalid account_id", "error": "invalid_request" });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }

    let access_token: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    let (lifetime, scope) = match app {
        Grant::Chatbot => (inner.options.zoom_token_lifetime, "imchat:bot".to_owned()),
        Grant::ServerToServer => (events.token_lifetime, events.scopes.join(" ")),
    };
    let expiry = Instant::now().checked_add(lifetime);
    {
        let mut state = inner.lock();
        let tokens = match app {
            Grant::Chatbot => &mut state.tokens,
            Grant::ServerToServer => &mut state.events.tokens,
        };
        tokens.insert(access_token.clone(), expiry);
    }
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs(),
        "scope": scope,
    }))
    .into_response()
}

/// Which app a token request is from: each has its grant, lifetime and tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// The chatbot app, `client_credentials`.
    Chatbot,
    /// The Server-to-Server OAuth app, `account_credentials`.
    ServerToServer,
}

/// `POST /v2/im/chat/messages`.
async fn send(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    chat_call(&inner, &headers, Call::Send(&body))
}

/// `PUT /v2/im/chat/messages/{message_id}`.
async fn edit(
    State(inner): State<Arc<Inner>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat_call(&inner, &headers, Call::Edit(&message_id, &body))
}

/// `DELETE /v2/im/chat/messages/{message_id}?robot_jid=&account_id=[&user_jid=]`.
async fn delete(
    State(inner): State<Arc<Inner>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    chat_call(
        &inner,
        &headers,
        Call::Delete(&message_id, uri.query().unwrap_or("")),
    )
}

/// One Chatbot API call.
#[derive(Clone, Copy)]
enum Call<'a> {
    /// A send, with its body.
    Send(&'a [u8]),
    /// An edit of a message id, with its body.
    Edit(&'a str, &'a [u8]),
    /// A deletion of a message id, with the query string.
    Delete(&'a str, &'a str),
}

/// Runs a chat call under the state lock, counting it.
fn chat_call(inner: &Inner, headers: &HeaderMap, call: Call<'_>) -> Response {
    let mut state = inner.lock();
    state.stats.zoom_requests += 1;
    let now = inner.clock.now();
    if in_outage(inner, &state, now) {
        state.stats.zoom_unavailable += 1;
        return bad_gateway();
    }
    let mut response = match answer(inner, &mut state, headers, call, now) {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(error) => {
            count_refusal(&mut state.stats, error.status);
            error.into_response()
        }
    };
    add_tracking_id(&mut response);
    response
}

/// The answer to one chat call, or the error Zoom would give, with the state updated.
fn answer(
    inner: &Inner,
    state: &mut Shared,
    headers: &HeaderMap,
    call: Call<'_>,
    now: f64,
) -> Result<(StatusCode, Value), ZoomError> {
    // Checks run in Zoom's order: header, token, the account's rate limits (the token names
    // the account), body, then the identities the body names.
    let unauthorized = |code, message| ZoomError::new(StatusCode::UNAUTHORIZED, code, message);
    if !headers.contains_key(AUTHORIZATION) {
        return Err(unauthorized(7010, "Missing Authorization header."));
    }
    let token = bearer_token(headers).ok_or(unauthorized(7010, "Invalid Authorization token."))?;
    match state.tokens.get(token) {
        None => return Err(unauthorized(124, "Invalid access token.")),
        Some(Some(expiry)) if *expiry <= Instant::now() => {
            return Err(unauthorized(124, "Access token is expired."));
        }
        Some(_) => {}
    }
    rate_limit(inner, state, now, true)?;
    injected_failure(state)?;
    match call {
        Call::Send(body) => {
            let request = ChatRequest::parse(body, true)?;
            check_identities(&inner.options.zoom, &request.robot_jid, &request.account_id)?;
            post_message(inner, state, request, now)
        }
        Call::Edit(message_id, body) => {
            let request = ChatRequest::parse(body, false)?;
            check_identities(&inner.options.zoom, &request.robot_jid, &request.account_id)?;
            let mentions = if request.markdown {
                mentions_in(&inner.options.zoom, &request.content)
            } else {
                Vec::new()
            };
            let answer = edit_message(inner, state, message_id, request.content, now)?;
            let message = chatbot_message(state, message_id)?;
            message.markdown = request.markdown;
            for mention in mentions {
                if !message.mentions.contains(&mention) {
                    message.mentions.push(mention);
                }
            }
            Ok(answer)
        }
        Call::Delete(message_id, query) => {
            let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let param = |name: &str| {
                query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .ok_or_else(|| {
                        ZoomError::bad_body(format!("Invalid field: '{name}' is required."))
                    })
            };
            let robot_jid = param("robot_jid")?;
            let account_id = param("account_id")?;
            check_identities(&inner.options.zoom, robot_jid, account_id)?;
            let user_jid = param("user_jid").ok().map(str::to_owned);
            delete_chatbot_message(inner, state, message_id, user_jid, now)
        }
    }
}

/// The bot and account a call names must be the app's.
fn check_identities(app: &SimZoomApp, robot_jid: &str, account_id: &str) -> Result<(), ZoomError> {
    if robot_jid != app.robot_jid {
        return Err(ZoomError::new(
            StatusCode::NOT_FOUND,
            7002,
            "Invalid robot_jid value specified in the Request Body.",
        ));
    }
    if account_id != app.account_id {
        return Err(ZoomError::new(
            StatusCode::FORBIDDEN,
            7004,
            "Not authorized.",
        ));
    }
    Ok(())
}

/// Records an accepted message in its channel and tells subscribers; returns its id.
pub(super) fn record_message(
    inner: &Inner,
    state: &mut Shared,
    to_jid: &str,
    content: Value,
    reply_to: Option<String>,
    via: MessageVia,
    now: f64,
) -> String {
    let message_id = new_message_id();
    state.by_id.insert(message_id.clone(), state.messages.len());
    state.messages.push(SimMessage {
        message_id: message_id.clone(),
        to_jid: to_jid.to_owned(),
        content: content.clone(),
        first_content: content.clone(),
        reply_to,
        posted_at: now,
        edits: Vec::new(),
        via,
        deleted: false,
        markdown: false,
        mentions: Vec::new(),
    });
    state.stats.posts += 1;
    if via != MessageVia::Chatbot {
        state.stats.webhook_posts += 1;
    }
    tracing::debug!(%to_jid, %message_id, ?via, "simulated Zoom: message posted");
    // Sent under the lock so subscribers see events in posting order; nobody listening is fine.
    let _ = inner.events.send(ChannelEvent {
        kind: ChannelEventKind::Posted,
        to_jid: to_jid.to_owned(),
        message_id: message_id.clone(),
        content,
        at: now,
        via,
    });
    message_id
}

/// The chatbot message `message_id` as the API sees it: it must exist, be the bot's and not be
/// deleted.
fn chatbot_message<'s>(
    state: &'s mut Shared,
    message_id: &str,
) -> Result<&'s mut SimMessage, ZoomError> {
    let index = state.by_id.get(message_id).copied();
    index
        .and_then(|i| state.messages.get_mut(i))
        .filter(|m| m.via == MessageVia::Chatbot && !m.deleted)
        .ok_or_else(|| ZoomError::new(StatusCode::NOT_FOUND, 8001, "Invalid message_id."))
}

/// A send that passed the common checks: the channel and thread must exist.
fn post_message(
    inner: &Inner,
    state: &mut Shared,
    request: ChatRequest,
    now: f64,
) -> Result<(StatusCode, Value), ZoomError> {
    let app = &inner.options.zoom;
    // `parse` insists on `to_jid` when sending. A user's JID: a direct message from the bot.
    let to_jid = request.to_jid.unwrap_or_default();
    let to_user = app.users.iter().any(|u| u.jid() == to_jid);
    if !app.channels.contains(&to_jid) && !to_user {
        return Err(ZoomError::new(
            StatusCode::FORBIDDEN,
            7004,
            "No channel or user can be found with the given to_jid value.",
        ));
    }
    if let Some(parent) = &request.reply_to
        && !in_channel(state, parent, &to_jid)
    {
        return Err(ZoomError::bad_body(format!(
            "Invalid reply_to: no message '{parent}' in this channel."
        )));
    }
    let mentions = if request.markdown {
        mentions_in(app, &request.content)
    } else {
        Vec::new()
    };
    let message_id = record_message(
        inner,
        state,
        &to_jid,
        request.content,
        request.reply_to,
        MessageVia::Chatbot,
        now,
    );
    if let Some(message) = state.messages.last_mut() {
        message.markdown = request.markdown;
        message.mentions = mentions;
    }
    Ok((
        StatusCode::CREATED,
        json!({
            "message_id": message_id,
            "robot_jid": app.robot_jid,
            "to_jid": to_jid,
            "sent_time": inner.clock.zoom_time(now),
            "user_jid": request.user_jid,
        }),
    ))
}

/// Whether message `message_id`, the chatbot's or a person's, is shown in channel `to_jid`.
pub(super) fn in_channel(state: &Shared, message_id: &str, to_jid: &str) -> bool {
    let bot = state
        .by_id
        .get(message_id)
        .and_then(|&i| state.messages.get(i))
        .is_some_and(|m| m.to_jid == to_jid && !m.deleted);
    bot || state
        .events
        .posts
        .iter()
        .any(|p| p.message_id == message_id && p.to_jid == to_jid)
}

/// An edit that passed the common checks: the message must exist.
fn edit_message(
    inner: &Inner,
    state: &mut Shared,
    message_id: &str,
    content: Value,
    now: f64,
) -> Result<(StatusCode, Value), ZoomError> {
    let message = chatbot_message(state, message_id)?;
    message.content = content.clone();
    message.edits.push((now, content.clone()));
    let to_jid = message.to_jid.clone();
    state.stats.edits += 1;
    tracing::debug!(%to_jid, %message_id, "simulated Zoom: message edited");
    let _ = inner.events.send(ChannelEvent {
        kind: ChannelEventKind::Edited,
        to_jid: to_jid.clone(),
        message_id: message_id.to_owned(),
        content,
        at: now,
        via: MessageVia::Chatbot,
    });
    Ok((
        StatusCode::OK,
        json!({
            "message_id": message_id,
            "robot_jid": inner.options.zoom.robot_jid,
            "to_jid": to_jid,
            "sent_time": inner.clock.zoom_time(now),
        }),
    ))
}

/// A deletion that passed the common checks: the message must exist and still be shown. It
/// is kept, marked deleted.
fn delete_chatbot_message(
    inner: &Inner,
    state: &mut Shared,
    message_id: &str,
    user_jid: Option<String>,
    now: f64,
) -> Result<(StatusCode, Value), ZoomError> {
    let message = chatbot_message(state, message_id)?;
    message.deleted = true;
    let to_jid = message.to_jid.clone();
    state.stats.deletes += 1;
    tracing::debug!(%to_jid, %message_id, "simulated Zoom: message deleted");
    let mut answer = json!({
        "message_id": message_id,
        "robot_jid": inner.options.zoom.robot_jid,
        "to_jid": to_jid,
        "sent_time": inner.clock.zoom_time(now),
    });
    if let Some(user_jid) = user_jid {
        answer["user_jid"] = json!(user_jid);
    }
    Ok((StatusCode::OK, answer))
}

/// Who a card sent with markdown notifies, each once: users' JIDs and `@all` (see
/// [`super::SimMessage::mentions`]). Only the texts Zoom applies markdown to are read: the
/// header and sub-header, texts without a link, field values.
fn mentions_in(app: &SimZoomApp, content: &Value) -> Vec<String> {
    let mut texts: Vec<&str> = Vec::new();
    let head = &content["head"];
    texts.extend(head["text"].as_str());
    texts.extend(head["sub_head"]["text"].as_str());
    fn walk<'v>(element: &'v Value, texts: &mut Vec<&'v str>) {
        if let Some(items) = element.as_array() {
            items.iter().for_each(|item| walk(item, texts));
            return;
        }
        if !element.is_object() {
            return;
        }
        if element.get("link").is_none() {
            texts.extend(element["text"].as_str());
        }
        if element["type"] == "fields"
            && let Some(items) = element["items"].as_array()
        {
            texts.extend(items.iter().filter_map(|item| item["value"].as_str()));
        }
        walk(&element["sections"], texts);
    }
    walk(&content["body"], &mut texts);
    let mut found: Vec<String> = Vec::new();
    let mut note = |who: String| {
        if !found.contains(&who) {
            found.push(who);
        }
    };
    for text in texts {
        // `<!...>` markup: a user's JID, or everyone.
        let mut rest = text;
        while let Some(at) = rest.find("<!") {
            let inner = &rest[at + 2..];
            let Some(end) = inner.find('>') else { break };
            let target = inner[..end].split('|').next().unwrap_or_default();
            match target {
                "all" | "here" | "channel" | "everyone" => note("@all".to_owned()),
                jid if app.users.iter().any(|u| u.jid() == jid) => note(jid.to_owned()),
                _ => {}
            }
            rest = &inner[end..];
        }
        // A plain `@word`: everyone, or a user by e-mail address.
        for (at, _) in text.match_indices('@') {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric()) {
                continue;
            }
            let word: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
                .collect();
            let word = word.trim_end_matches('.').to_lowercase();
            if ["all", "here", "channel", "everyone"].contains(&word.as_str()) {
                note("@all".to_owned());
            } else if let Some(user) = app
                .users
                .iter()
                .find(|u| u.email.eq_ignore_ascii_case(&word))
            {
                note(user.jid());
            }
        }
    }
    found
}

/// A message id in Zoom's upper-case UUID form, e.g. `5AF2A82E-9220-4600-AFB2-A028852E377C`.
pub(super) fn new_message_id() -> String {
    let n: u128 = rand::rng().random();
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

/// The fields of a send or edit body that the simulator acts on, after validation.
struct ChatRequest {
    robot_jid: String,
    account_id: String,
    /// Present on sends (where it is required), absent on edits.
    to_jid: Option<String>,
    user_jid: Option<String>,
    reply_to: Option<String>,
    content: Value,
    /// `is_markdown_support`: Zoom reads markdown, and mentions, only then.
    markdown: bool,
}

impl ChatRequest {
    /// Validates a body as Zoom does, answering 7001 naming the first bad field. Sends need
    /// `to_jid` and `user_jid` and may carry `reply_to`; edits need neither.
    fn parse(body: &[u8], sending: bool) -> Result<ChatRequest, ZoomError> {
        let not_object = || ZoomError::bad_body("Request Body should be a valid JSON object.");
        let value: Value = serde_json::from_slice(body).map_err(|_| not_object())?;
        let Value::Object(fields) = value else {
            return Err(not_object());
        };
        let robot_jid = required_string(&fields, "robot_jid")?;
        let to_jid = if sending {
            Some(required_string(&fields, "to_jid")?)
        } else {
            None
        };
        let account_id = required_string(&fields, "account_id")?;
        let user_jid = if sending {
            Some(required_string(&fields, "user_jid")?)
        } else {
            optional_string(&fields, "user_jid")?
        };
        let content = match fields.get("content") {
            None => return Err(ZoomError::bad_body("Invalid field: 'content' is required.")),
            Some(Value::Object(content)) => {
                validate_content(content)?;
                Value::Object(content.clone())
            }
            Some(_) => {
                return Err(ZoomError::bad_body(
                    "Invalid field: 'content' must be an object.",
                ));
            }
        };
        let reply_to = if sending {
            optional_string(&fields, "reply_to")?
        } else {
            None
        };
        let markdown = match fields.get("is_markdown_support") {
            None => false,
            Some(Value::Bool(on)) => *on,
            Some(_) => {
                return Err(ZoomError::bad_body(
                    "Invalid field: 'is_markdown_support' must be a boolean.",
                ));
            }
        };
        Ok(ChatRequest {
            robot_jid,
            account_id,
            to_jid,
            user_jid,
            reply_to,
            content,
            markdown,
        })
    }
}

fn required_string(fields: &Map<String, Value>, name: &str) -> Result<String, ZoomError> {
    optional_string(fields, name)?
        .ok_or_else(|| ZoomError::bad_body(format!("Invalid field: '{name}' is required.")))
}

fn optional_string(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, ZoomError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ZoomError::bad_body(format!(
            "Invalid field: '{name}' must be a string."
        ))),
    }
}

/// A card needs a head with text and/or a body of known elements.
pub(super) fn validate_content(content: &Map<String, Value>) -> Result<(), ZoomError> {
    let head = content.get("head");
    let body = content.get("body");
    if head.is_none() && body.is_none() {
        return Err(ZoomError::bad_body(
            "Invalid field: 'content' needs a 'head' or a 'body'.",
        ));
    }
    if head.is_some_and(|head| !head.get("text").is_some_and(Value::is_string)) {
        return Err(ZoomError::bad_body(
            "Invalid field: 'content.head' must be an object with a string 'text'.",
        ));
    }
    if let Some(body) = body {
        let Some(items) = body.as_array() else {
            return Err(ZoomError::bad_body(
                "Invalid field: 'content.body' must be an array.",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            validate_element(item, &format!("content.body[{i}]"))?;
        }
    }
    Ok(())
}

/// One card element at JSON path `at`: `section`s nest elements, `fields` carry key/value pairs.
fn validate_element(element: &Value, at: &str) -> Result<(), ZoomError> {
    let bad = |what: String| ZoomError::bad_body(format!("Invalid field: '{at}{what}"));
    if !element.is_object() {
        return Err(bad("' must be an object.".to_owned()));
    }
    let Some(kind) = element.get("type").and_then(Value::as_str) else {
        return Err(bad(".type' must be a string.".to_owned()));
    };
    if !BODY_TYPES.contains(&kind) {
        return Err(bad(format!(".type' has unknown value '{kind}'.")));
    }
    match kind {
        "fields" => {
            let Some(items) = element.get("items").and_then(Value::as_array) else {
                return Err(bad(".items' must be an array.".to_owned()));
            };
            for (j, item) in items.iter().enumerate() {
                let pair = ["key", "value"]
                    .iter()
                    .all(|k| item.get(*k).is_some_and(Value::is_string));
                if !pair {
                    return Err(bad(format!(
                        ".items[{j}]' must be an object with string 'key' and 'value'."
                    )));
                }
            }
        }
        "section" => {
            let Some(sections) = element.get("sections").and_then(Value::as_array) else {
                return Err(bad(".sections' must be an array.".to_owned()));
            };
            for (j, nested) in sections.iter().enumerate() {
                validate_element(nested, &format!("{at}.sections[{j}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{ChannelEventKind, MessageVia, Scenario, SimOptions, Simulator, testing};
    use serde_json::{Value, json};
    use std::time::{Duration, SystemTime};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    const CHANNEL: &str = "ci@conference.xmpp.zoom.us";

    async fn start(options: SimOptions) -> Simulator {
        Simulator::start(Scenario { repos: vec![] }, options)
            .await
            .expect("simulator starts")
    }

    async fn fetch_token(sim: &Simulator) -> String {
        let app = &sim.options().zoom;
        let response = reqwest::Client::new()
            .post(sim.zoom_oauth_url())
            .query(&[("grant_type", "client_credentials")])
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .send()
            .await
            .expect("request goes through");
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(
            body["expires_in"],
            sim.options().zoom_token_lifetime.as_secs()
        );
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    fn card(text: &str) -> Value {
        json!({
            "head": { "text": text, "sub_head": { "text": "Pipeline #1" } },
            "body": [{
                "type": "section",
                "sidebar_color": "#D72638",
                "sections": [
                    { "type": "fields", "items": [{ "key": "Author", "value": "Jane", "short": true }] },
                    { "type": "message", "text": "Open", "link": "http://example.invalid/" },
                ],
            }],
        })
    }

    fn send_body(sim: &Simulator, content: Value) -> Value {
        let app = &sim.options().zoom;
        json!({
            "robot_jid": app.robot_jid,
            "to_jid": CHANNEL,
            "account_id": app.account_id,
            "user_jid": app.user_jid,
            "content": content,
        })
    }

    async fn call(
        sim: &Simulator,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let url = format!("{}{path}", sim.zoom_api_url());
        let mut request = reqwest::Client::new().request(method, url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request goes through");
        assert!(response.headers().contains_key("x-zm-trackingid"));
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    async fn send(sim: &Simulator, token: &str, body: &Value) -> (u16, Value) {
        call(
            sim,
            reqwest::Method::POST,
            "/im/chat/messages",
            Some(token),
            body,
        )
        .await
    }

    async fn edit(sim: &Simulator, token: &str, id: &str, content: Value) -> (u16, Value) {
        let app = &sim.options().zoom;
        let body =
            json!({ "robot_jid": app.robot_jid, "account_id": app.account_id, "content": content });
        call(
            sim,
            reqwest::Method::PUT,
            &format!("/im/chat/messages/{id}"),
            Some(token),
            &body,
        )
        .await
    }

    /// Mentions count only in markdown, in the texts Zoom reads it in; a direct message goes
    /// to a user of the account, and only to one.
    #[tokio::test]
    async fn mentions_are_recorded_in_markdown_only_and_direct_messages_reach_users() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let users = &sim.options().zoom.users;
        let (priya, tom) = (users[1].clone(), users[2].clone());
        let mentioning = |text: String| {
            let mut content = card("FAILED");
            content["body"][0]["sections"]
                .as_array_mut()
                .unwrap()
                .insert(0, json!({"type": "message", "text": text}));
            content
        };
        let text = format!("<!{}|Priya> and @{} <!all>", priya.jid(), tom.email);
        let mut body = send_body(&sim, mentioning(text.clone()));
        let (status, plain) = send(&sim, &token, &body).await;
        assert_eq!(status, 201);
        body["is_markdown_support"] = json!(true);
        let (status, marked) = send(&sim, &token, &body).await;
        assert_eq!(status, 201);
        let message = |answer: &Value| sim.message(answer["message_id"].as_str().unwrap()).unwrap();
        assert!(message(&plain).mentions.is_empty());
        assert!(!message(&plain).markdown);
        let mut mentioned = message(&marked).mentions;
        mentioned.sort();
        let mut expected = [priya.jid(), tom.jid(), "@all".to_owned()];
        expected.sort();
        assert_eq!(mentioned, expected);
        // Text under a link is not markdown, so not a mention; a look-alike is nothing.
        let mut linked = mentioning(format!("<!{}|Priya>", priya.jid()));
        linked["body"][0]["sections"][0]["link"] = json!("https://example.com/");
        let mut body = send_body(&sim, linked);
        body["is_markdown_support"] = json!(true);
        let (_, answer) = send(&sim, &token, &body).await;
        assert!(message(&answer).mentions.is_empty());
        let mut body = send_body(
            &sim,
            mentioning("＠all ‹!all› ＠priya.raman@example.com".into()),
        );
        body["is_markdown_support"] = json!(true);
        let (_, answer) = send(&sim, &token, &body).await;
        assert!(message(&answer).mentions.is_empty());
        // An edit that mentions adds to who was mentioned.
        let id = plain["message_id"].as_str().unwrap();
        let app = &sim.options().zoom;
        let edit_body = json!({"robot_jid": app.robot_jid, "account_id": app.account_id,
            "content": mentioning(format!("<!{}|Tom>", tom.jid())), "is_markdown_support": true});
        let path = format!("/im/chat/messages/{id}");
        let (status, _) = call(&sim, reqwest::Method::PUT, &path, Some(&token), &edit_body).await;
        assert_eq!(status, 200);
        assert_eq!(sim.message(id).unwrap().mentions, [tom.jid()]);

        let mut direct = send_body(&sim, card("FAILED"));
        direct["to_jid"] = json!(priya.jid());
        let (status, _) = send(&sim, &token, &direct).await;
        assert_eq!(status, 201);
        assert_eq!(sim.channel(&priya.jid()).len(), 1);
        direct["to_jid"] = json!("nobody@xmpp.zoom.us");
        let (status, body) = send(&sim, &token, &direct).await;
        assert_eq!((status, &body["code"]), (403, &json!(7004)));
    }

    #[tokio::test]
    async fn token_send_edit_round_trip() {
        let sim = start(SimOptions::default()).await;
        let mut events = sim.subscribe();
        let token = fetch_token(&sim).await;

        let (status, sent) = send(&sim, &token, &send_body(&sim, card("RUNNING"))).await;
        assert_eq!(status, 201, "{sent}");
        assert_eq!(sent["to_jid"], CHANNEL);
        assert_eq!(sent["robot_jid"], "bbzoom-bot@xmpp.zoom.us");
        assert_eq!(
            sent["sent_time"].as_str().map(str::len),
            Some("2026-01-05 09:00:00".len())
        );
        let id = sent["message_id"].as_str().expect("message_id").to_owned();

        let mut reply = send_body(&sim, json!({ "head": { "text": "log" } }));
        reply["reply_to"] = json!(id);
        let (status, _) = send(&sim, &token, &reply).await;
        assert_eq!(status, 201);

        let (status, edited) = edit(&sim, &token, &id, card("PASSED")).await;
        assert_eq!(status, 200, "{edited}");
        assert_eq!(edited["message_id"], id.as_str());

        let shown = sim.channel(CHANNEL);
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0].message_id, id);
        assert_eq!(shown[0].content["head"]["text"], "PASSED");
        assert_eq!(shown[0].first_content["head"]["text"], "RUNNING");
        assert_eq!(shown[0].edits.len(), 1);
        assert_eq!(shown[0].edits[0].1["head"]["text"], "PASSED");
        assert_eq!(shown[1].reply_to.as_deref(), Some(id.as_str()));
        assert!(sim.channel("releases@conference.xmpp.zoom.us").is_empty());

        let kinds: Vec<ChannelEventKind> = (0..3)
            .map(|_| events.try_recv().expect("event").kind)
            .collect();
        assert!(
            matches!(
                kinds[..],
                [
                    ChannelEventKind::Posted,
                    ChannelEventKind::Posted,
                    ChannelEventKind::Edited
                ]
            ),
            "{kinds:?}"
        );

        let stats = sim.stats();
        assert_eq!(
            (
                stats.zoom_token_requests,
                stats.zoom_requests,
                stats.posts,
                stats.edits,
                stats.zoom_rejected
            ),
            (1, 3, 2, 1, 0)
        );
    }

    #[tokio::test]
    async fn token_endpoint_refuses_wrong_credentials_and_grant() {
        let sim = start(SimOptions::default()).await;
        let client = reqwest::Client::new();
        let response = client
            .post(sim.zoom_oauth_url())
            .query(&[("grant_type", "client_credentials")])
            .basic_auth("sim-client-id", Some("wrong"))
            .send()
            .await
            .expect("request goes through");
        assert_eq!(response.status().as_u16(), 401);
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["error"], "invalid_client");
        let response = client
            .post(sim.zoom_oauth_url())
            .query(&[("grant_type", "password")])
            .basic_auth("sim-client-id", Some("sim-client-secret"))
            .send()
            .await
            .expect("request goes through");
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(sim.stats().zoom_token_requests, 2);
    }

    #[tokio::test]
    async fn missing_user_jid_is_7001() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let mut body = send_body(&sim, card("x"));
        body.as_object_mut().expect("object").remove("user_jid");
        let (status, error) = send(&sim, &token, &body).await;
        assert_eq!(status, 400);
        assert_eq!(error["code"], 7001);
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("user_jid")
        );
        assert_eq!(sim.stats().zoom_rejected, 1);
        assert!(sim.channel(CHANNEL).is_empty());
    }

    #[tokio::test]
    async fn bad_cards_and_identities_are_refused() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let bad_field =
            json!({ "body": [{ "type": "fields", "items": [{ "key": "k", "value": 1 }] }] });
        let (status, error) = send(&sim, &token, &send_body(&sim, bad_field)).await;
        assert_eq!((status, error["code"].clone()), (400, json!(7001)));
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("content.body[0].items[0]")
        );
        let nested = json!({ "body": [{ "type": "section", "sections": [{ "type": "button" }] }] });
        let (status, _) = send(&sim, &token, &send_body(&sim, nested)).await;
        assert_eq!(status, 400);

        let mut body = send_body(&sim, card("x"));
        body["to_jid"] = json!("nowhere@conference.xmpp.zoom.us");
        let (status, error) = send(&sim, &token, &body).await;
        assert_eq!((status, error["code"].clone()), (403, json!(7004)));
        let mut body = send_body(&sim, card("x"));
        body["robot_jid"] = json!("other@xmpp.zoom.us");
        let (status, error) = send(&sim, &token, &body).await;
        assert_eq!((status, error["code"].clone()), (404, json!(7002)));
        let mut body = send_body(&sim, card("x"));
        body["reply_to"] = json!("NOT-A-MESSAGE");
        let (status, error) = send(&sim, &token, &body).await;
        assert_eq!((status, error["code"].clone()), (400, json!(7001)));

        let (status, error) = call(
            &sim,
            reqwest::Method::POST,
            "/im/chat/messages",
            None,
            &send_body(&sim, card("x")),
        )
        .await;
        assert_eq!((status, error["code"].clone()), (401, json!(7010)));
        assert_eq!(sim.stats().zoom_rejected, 6);
    }

    #[tokio::test]
    async fn revoked_token_is_124() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        sim.revoke_zoom_tokens();
        let (status, error) = send(&sim, &token, &send_body(&sim, card("x"))).await;
        assert_eq!((status, error["code"].clone()), (401, json!(124)));
        // A token fetched after the revocation works.
        let fresh = fetch_token(&sim).await;
        let (status, _) = send(&sim, &fresh, &send_body(&sim, card("x"))).await;
        assert_eq!(status, 201);
    }

    #[tokio::test]
    async fn expired_token_is_124() {
        let options = SimOptions {
            zoom_token_lifetime: Duration::ZERO,
            ..SimOptions::default()
        };
        let sim = start(options).await;
        let token = fetch_token(&sim).await;
        let (status, error) = send(&sim, &token, &send_body(&sim, card("x"))).await;
        assert_eq!((status, error["code"].clone()), (401, json!(124)));
    }

    #[tokio::test]
    async fn unknown_message_id_is_8001() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let (status, error) = edit(&sim, &token, "NO-SUCH-ID", card("x")).await;
        assert_eq!((status, error["code"].clone()), (404, json!(8001)));
        assert_eq!(sim.stats().edits, 0);
    }

    /// A send answered whole: status, headers and body text (502s are not JSON).
    async fn send_raw(sim: &Simulator, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/im/chat/messages", sim.zoom_api_url()))
            .bearer_auth(token)
            .json(&send_body(sim, card("x")))
            .send()
            .await
            .expect("request goes through");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("body"))
    }

    fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> Option<&'h str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn forced_429s_carry_retry_after_verbatim() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let forms = [
            Some("7"),
            Some("Wed, 21 Oct 2026 07:28:00 GMT"),
            Some("2026-10-21T07:28:00Z"),
            None,
        ];
        for form in forms {
            sim.zoom_rate_limit_next(1, form.map(str::to_owned));
            let (status, headers, text) = send_raw(&sim, &token).await;
            assert_eq!(status, 429, "{text}");
            let body: Value = serde_json::from_str(&text).expect("JSON body");
            assert_eq!(
                body,
                json!({
                    "code": 429,
                    "message": "You have reached the maximum per-second rate limit for this API. Try again later."
                })
            );
            assert_eq!(header(&headers, "retry-after"), form);
            assert_eq!(header(&headers, "x-ratelimit-type"), Some("QPS"));
            assert!(headers.contains_key("x-zm-trackingid"));
        }
        // Only `n` calls are refused; then Zoom answers again.
        sim.zoom_rate_limit_next(2, None);
        assert_eq!(send_raw(&sim, &token).await.0, 429);
        assert_eq!(send_raw(&sim, &token).await.0, 429);
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        let stats = sim.stats();
        assert_eq!(
            (stats.zoom_rate_limited, stats.zoom_rejected, stats.posts),
            (6, 6, 1)
        );
    }

    #[tokio::test]
    async fn per_second_limit_counts_real_seconds() {
        let mut options = SimOptions {
            speed: 1000.0,
            ..SimOptions::default()
        };
        options.zoom.per_second = Some(2);
        let sim = start(options).await;
        let token = fetch_token(&sim).await;
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        let (status, headers, _) = send_raw(&sim, &token).await;
        assert_eq!(status, 429);
        assert_eq!(header(&headers, "retry-after"), Some("1"));
        assert_eq!(header(&headers, "x-ratelimit-type"), Some("QPS"));
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(send_raw(&sim, &token).await.0, 201);
    }

    /// The instant a `Retry-After` in RFC 3339 names.
    fn instant(text: &str) -> SystemTime {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339");
        SystemTime::from(parsed)
    }

    #[tokio::test]
    async fn daily_cap_answers_until_the_next_simulated_day() {
        // A simulated day lasts four real seconds: time for a loaded machine to ask thrice.
        let mut options = SimOptions {
            speed: 86_400.0 / 4.0,
            ..SimOptions::default()
        };
        options.zoom.daily_limit = Some(2);
        let sim = start(options).await;
        let token = fetch_token(&sim).await;
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        let (status, headers, text) = send_raw(&sim, &token).await;
        assert!(sim.now() < 86_400.0, "machine too slow for this test");
        assert_eq!(status, 429);
        let body: Value = serde_json::from_str(&text).expect("JSON body");
        assert_eq!(
            body["message"],
            "You have reached the maximum daily rate limit for this API. Refer to the response \
             header for details on when you can make another request."
        );
        assert_eq!(header(&headers, "x-ratelimit-type"), Some("Daily-limit"));
        let reset = instant(header(&headers, "retry-after").expect("Retry-After"));
        // Day 1 begins four real seconds after the epoch; the header is not early.
        let day_one = sim.epoch() + Duration::from_secs(4);
        let late = reset.duration_since(day_one).expect("not before the reset");
        assert!(late < Duration::from_millis(10), "{late:?}");
        let wait = reset
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        assert_eq!(sim.stats().zoom_rate_limited, 1);
    }

    #[tokio::test]
    async fn exhausting_the_day_needs_no_configured_cap() {
        // A simulated day lasts one real second.
        let options = SimOptions {
            speed: 86_400.0,
            ..SimOptions::default()
        };
        let sim = start(options).await;
        let token = fetch_token(&sim).await;
        // Once day 1 is under way, so the reset is the next boundary.
        testing::wait_until(&sim, 86_400.0 * 1.2).await;
        sim.exhaust_zoom_daily_limit();
        let (status, headers, _) = send_raw(&sim, &token).await;
        assert_eq!(status, 429);
        assert_eq!(header(&headers, "x-ratelimit-type"), Some("Daily-limit"));
        let reset = instant(header(&headers, "retry-after").expect("Retry-After"));
        let day_two = sim.epoch() + Duration::from_secs(2);
        assert!(reset >= day_two && reset < day_two + Duration::from_millis(10));
        testing::wait_until(&sim, 86_400.0 * 2.0).await;
        assert_eq!(send_raw(&sim, &token).await.0, 201);
    }

    #[tokio::test]
    async fn outage_window_answers_502_to_everything() {
        let mut options = SimOptions {
            speed: 1000.0,
            ..SimOptions::default()
        };
        // Long enough (1.5 real seconds) that a loaded machine still asks within it.
        options.zoom.outage = Some((0.0, 1500.0));
        let sim = start(options).await;
        let app = &sim.options().zoom;
        let response = reqwest::Client::new()
            .post(sim.zoom_oauth_url())
            .query(&[("grant_type", "client_credentials")])
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .send()
            .await
            .expect("request goes through");
        assert_eq!(response.status().as_u16(), 502);
        let page = response.text().await.expect("body");
        assert!(page.contains("<h1>502 Bad Gateway</h1>"), "{page}");
        let (status, _, _) = send_raw(&sim, "any-token").await;
        assert!(sim.now() < 1500.0, "machine too slow for this test");
        assert_eq!(status, 502);

        testing::wait_until(&sim, 1500.0).await;
        let token = fetch_token(&sim).await;
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        // The switch works outside any window.
        sim.set_zoom_outage(true);
        let (status, headers, _) = send_raw(&sim, &token).await;
        assert_eq!(status, 502);
        assert_eq!(header(&headers, "content-type"), Some("text/html"));
        sim.set_zoom_outage(false);
        assert_eq!(send_raw(&sim, &token).await.0, 201);
        let stats = sim.stats();
        assert_eq!(
            (
                stats.zoom_token_requests,
                stats.zoom_requests,
                stats.zoom_unavailable,
                stats.zoom_rejected,
                stats.posts
            ),
            (2, 4, 3, 0, 2)
        );
    }

    async fn delete(
        sim: &Simulator,
        token: &str,
        id: &str,
        query: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = reqwest::Client::new()
            .delete(format!("{}/im/chat/messages/{id}", sim.zoom_api_url()))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .expect("request goes through");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    #[tokio::test]
    async fn deleted_messages_leave_the_channel_and_cannot_be_edited() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let (robot, account) = {
            let app = &sim.options().zoom;
            (app.robot_jid.clone(), app.account_id.clone())
        };
        let ids = [(); 3];
        let mut posted = Vec::new();
        for _ in ids {
            let (status, sent) = send(&sim, &token, &send_body(&sim, card("RUNNING"))).await;
            assert_eq!(status, 201);
            posted.push(sent["message_id"].as_str().expect("id").to_owned());
        }
        let query = [
            ("robot_jid", robot.as_str()),
            ("account_id", account.as_str()),
        ];

        // The bot deletes the first.
        let (status, answer) = delete(&sim, &token, &posted[0], &query).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["message_id"], posted[0].as_str());
        assert_eq!(answer["to_jid"], CHANNEL);
        let (status, error) = edit(&sim, &token, &posted[0], card("PASSED")).await;
        assert_eq!((status, error["code"].clone()), (404, json!(8001)));
        let (status, error) = delete(&sim, &token, &posted[0], &query).await;
        assert_eq!((status, error["code"].clone()), (404, json!(8001)));
        let gone = sim.message(&posted[0]).expect("kept");
        assert!(gone.deleted);

        // A person deletes the second in Zoom.
        assert!(sim.delete_message(&posted[1]));
        assert!(!sim.delete_message(&posted[1]));
        let (status, error) = edit(&sim, &token, &posted[1], card("PASSED")).await;
        assert_eq!((status, error["code"].clone()), (404, json!(8001)));
        let mut reply = send_body(&sim, card("log"));
        reply["reply_to"] = json!(posted[1]);
        let (status, error) = send(&sim, &token, &reply).await;
        assert_eq!((status, error["code"].clone()), (400, json!(7001)));

        // Deleting needs the bot's identities in the query.
        let (status, error) = delete(&sim, &token, &posted[2], &query[..1]).await;
        assert_eq!((status, error["code"].clone()), (400, json!(7001)));
        let wrong = [
            ("robot_jid", "other@xmpp.zoom.us"),
            ("account_id", account.as_str()),
        ];
        let (status, error) = delete(&sim, &token, &posted[2], &wrong).await;
        assert_eq!((status, error["code"].clone()), (404, json!(7002)));

        let shown: Vec<String> = sim
            .channel(CHANNEL)
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(shown, [posted[2].clone()]);
        let stats = sim.stats();
        assert_eq!((stats.deletes, stats.edits, stats.posts), (1, 0, 3));
    }

    #[tokio::test]
    async fn replies_record_their_parent() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        let (_, sent) = send(&sim, &token, &send_body(&sim, card("FAILED"))).await;
        let parent = sent["message_id"].as_str().expect("id").to_owned();
        let mut reply = send_body(&sim, json!({ "head": { "text": "log tail" } }));
        reply["reply_to"] = json!(parent);
        let (status, answer) = send(&sim, &token, &reply).await;
        assert_eq!(status, 201);
        let id = answer["message_id"].as_str().expect("id");
        let recorded = sim.message(id).expect("recorded");
        assert_eq!(recorded.reply_to.as_deref(), Some(parent.as_str()));
        assert_eq!(recorded.via, MessageVia::Chatbot);
        assert!(sim.message(&parent).expect("parent").reply_to.is_none());
        // A reply must name a message of the same channel.
        reply["to_jid"] = json!("releases@conference.xmpp.zoom.us");
        let (status, _) = send(&sim, &token, &reply).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn fault_knob_answers_503_then_recovers() {
        let sim = start(SimOptions::default()).await;
        let token = fetch_token(&sim).await;
        sim.fail_next_zoom_calls(1);
        let (status, _) = send(&sim, &token, &send_body(&sim, card("x"))).await;
        assert_eq!(status, 503);
        let (status, _) = send(&sim, &token, &send_body(&sim, card("x"))).await;
        assert_eq!(status, 201);
        let stats = sim.stats();
        assert_eq!(
            (stats.zoom_requests, stats.zoom_rejected, stats.posts),
            (2, 0, 1)
        );
        sim.shutdown().await;
    }
}
