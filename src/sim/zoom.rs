//! The Zoom side of the simulator: the chatbot's client-credentials token endpoint and the
//! Chatbot API's send and edit calls, validating requests and answering errors the way Zoom
//! does (`{"code","message"}`, codes from `shared/api/zoom/chatbot.openapi.json`), and keeping
//! what each channel shows.

use super::{ChannelEvent, ChannelEventKind, Inner, SimMessage, State as Shared, bearer_token};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;
use url::form_urlencoded;

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
        .route("/v2/im/chat/messages/{message_id}", put(edit))
}

/// A Zoom API error: HTTP status plus the `{"code","message"}` body.
struct ZoomError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ZoomError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ZoomError {
        ZoomError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 7001, Zoom's answer to any malformed request body.
    fn bad_body(message: impl Into<String>) -> ZoomError {
        ZoomError::new(StatusCode::BAD_REQUEST, 7001, message)
    }
}

impl IntoResponse for ZoomError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
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

/// `POST /oauth/token?grant_type=client_credentials` with Basic client credentials.
async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    inner.lock().stats.zoom_token_requests += 1;
    let app = &inner.options.zoom;
    let known = basic_credentials(&headers)
        .is_some_and(|(id, secret)| id == app.client_id && secret == app.client_secret);
    if !known {
        let body =
            json!({ "reason": "Invalid client_id or client_secret", "error": "invalid_client" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    // Zoom documents the grant type in the query; OAuth clients often put it in a form body.
    let query = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes());
    let grant_type = query
        .chain(form_urlencoded::parse(&body))
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    if grant_type.as_deref() != Some("client_credentials") {
        let body = json!({ "reason": "Unsupported grant type", "error": "unsupported_grant_type" });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }

    let access_token: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    let lifetime = inner.options.zoom_token_lifetime;
    inner
        .lock()
        .tokens
        .insert(access_token.clone(), Instant::now().checked_add(lifetime));
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs(),
        "scope": "imchat:bot",
    }))
    .into_response()
}

/// `POST /v2/im/chat/messages`.
async fn send(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    chat_call(&inner, &headers, &body, None)
}

/// `PUT /v2/im/chat/messages/{message_id}`.
async fn edit(
    State(inner): State<Arc<Inner>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat_call(&inner, &headers, &body, Some(&message_id))
}

/// Runs a send (`editing` is `None`) or an edit under the state lock, counting it.
fn chat_call(inner: &Inner, headers: &HeaderMap, body: &[u8], editing: Option<&str>) -> Response {
    let mut state = inner.lock();
    state.stats.zoom_requests += 1;
    let mut response = match answer(inner, &mut state, headers, body, editing) {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(error) => {
            if error.status.is_client_error() {
                state.stats.zoom_rejected += 1;
            }
            error.into_response()
        }
    };
    // Zoom tags every answer with a tracking id for its support; clients log it on errors.
    let rid: u64 = rand::rng().random();
    if let Ok(value) = HeaderValue::from_str(&format!("v=2.0;clid=sim;rid=SIM_{rid:016x}")) {
        response.headers_mut().insert("x-zm-trackingid", value);
    }
    response
}

/// The answer to one chat call, or the error Zoom would give, with the state updated.
fn answer(
    inner: &Inner,
    state: &mut Shared,
    headers: &HeaderMap,
    body: &[u8],
    editing: Option<&str>,
) -> Result<(StatusCode, Value), ZoomError> {
    // Checks run in Zoom's order: header, token, body, then the identities the body names.
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
    if state.failures_pending > 0 {
        state.failures_pending -= 1;
        return Err(ZoomError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            503,
            "Service temporarily unavailable.",
        ));
    }
    let request = ChatRequest::parse(body, editing.is_none())?;
    let app = &inner.options.zoom;
    if request.robot_jid != app.robot_jid {
        return Err(ZoomError::new(
            StatusCode::NOT_FOUND,
            7002,
            "Invalid robot_jid value specified in the Request Body.",
        ));
    }
    if request.account_id != app.account_id {
        return Err(ZoomError::new(
            StatusCode::FORBIDDEN,
            7004,
            "Not authorized.",
        ));
    }
    let now = inner.clock.now();
    match editing {
        None => post_message(inner, state, request, now),
        Some(message_id) => edit_message(inner, state, message_id, request.content, now),
    }
}

/// A send that passed the common checks: the channel and thread must exist.
fn post_message(
    inner: &Inner,
    state: &mut Shared,
    request: ChatRequest,
    now: f64,
) -> Result<(StatusCode, Value), ZoomError> {
    let app = &inner.options.zoom;
    // `parse` insists on `to_jid` when sending.
    let to_jid = request.to_jid.unwrap_or_default();
    if !app.channels.contains(&to_jid) {
        return Err(ZoomError::new(
            StatusCode::FORBIDDEN,
            7004,
            "No channel or user can be found with the given to_jid value.",
        ));
    }
    if let Some(parent) = &request.reply_to {
        let in_channel = state
            .by_id
            .get(parent)
            .and_then(|&i| state.messages.get(i))
            .is_some_and(|m| m.to_jid == to_jid);
        if !in_channel {
            return Err(ZoomError::bad_body(format!(
                "Invalid reply_to: no message '{parent}' in this channel."
            )));
        }
    }
    let message_id = new_message_id();
    state.by_id.insert(message_id.clone(), state.messages.len());
    state.messages.push(SimMessage {
        message_id: message_id.clone(),
        to_jid: to_jid.clone(),
        content: request.content.clone(),
        first_content: request.content.clone(),
        reply_to: request.reply_to,
        posted_at: now,
        edits: Vec::new(),
    });
    state.stats.posts += 1;
    tracing::debug!(%to_jid, %message_id, "simulated Zoom: message posted");
    // Sent under the lock so subscribers see events in posting order; nobody listening is fine.
    let _ = inner.events.send(ChannelEvent {
        kind: ChannelEventKind::Posted,
        to_jid: to_jid.clone(),
        message_id: message_id.clone(),
        content: request.content,
        at: now,
    });
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

/// An edit that passed the common checks: the message must exist.
fn edit_message(
    inner: &Inner,
    state: &mut Shared,
    message_id: &str,
    content: Value,
    now: f64,
) -> Result<(StatusCode, Value), ZoomError> {
    let index = state.by_id.get(message_id).copied();
    let Some(message) = index.and_then(|i| state.messages.get_mut(i)) else {
        return Err(ZoomError::new(
            StatusCode::NOT_FOUND,
            8001,
            "Invalid message_id.",
        ));
    };
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

/// A message id in Zoom's upper-case UUID form, e.g. `5AF2A82E-9220-4600-AFB2-A028852E377C`.
fn new_message_id() -> String {
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
        if fields
            .get("is_markdown_support")
            .is_some_and(|v| !v.is_boolean())
        {
            return Err(ZoomError::bad_body(
                "Invalid field: 'is_markdown_support' must be a boolean.",
            ));
        }
        Ok(ChatRequest {
            robot_jid,
            account_id,
            to_jid,
            user_jid,
            reply_to,
            content,
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
fn validate_content(content: &Map<String, Value>) -> Result<(), ZoomError> {
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
    use crate::sim::{ChannelEventKind, Scenario, SimOptions, Simulator};
    use serde_json::{Value, json};
    use std::time::Duration;

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
