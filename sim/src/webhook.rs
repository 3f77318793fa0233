//! Zoom's Incoming Webhook app: `POST /chat/webhooks/incomingwebhook/{endpoint_id}?format=...`
//! with the connection's verification token as a raw `Authorization` header (no scheme word).
//! What Zoom's "Incoming Webhook chatbot" support article and its known clients (Flux's
//! notification-controller, Keep) settle is served as such; what they leave open is served
//! leniently and said so below. Refusals are plain text, except
//! the ones the gate in front of all of Zoom gives (429 and 503 as `{"code","message"}`, 502
//! as an HTML page). A webhook answers `200 OK` and no message id: its messages cannot be
//! edited.

use super::zoom::{
    ZoomError, add_tracking_id, bad_gateway, count_refusal, in_outage, injected_failure,
    rate_limit, record_message, validate_content,
};
use super::{Inner, MessageVia, SimWebhook, State as Shared};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::Arc;
use url::form_urlencoded;

/// The path every webhook URL starts with; the endpoint id follows.
pub(super) const PREFIX: &str = "/chat/webhooks/incomingwebhook";

/// The longest `format=message` text accepted, in characters (the limit clients use).
const MAX_MESSAGE_CHARS: usize = 4000;

/// The webhook route, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new().route(&format!("{PREFIX}/{{endpoint_id}}"), post(incoming))
}

/// Why a post was refused: plain text from the webhook itself, or the gate's JSON.
enum Refusal {
    Plain(StatusCode, String),
    Gate(ZoomError),
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::Plain(StatusCode::BAD_REQUEST, message.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Plain(status, _) => *status,
            Refusal::Gate(error) => error.status,
        }
    }
}

impl From<ZoomError> for Refusal {
    fn from(error: ZoomError) -> Refusal {
        Refusal::Gate(error)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Plain(status, text) => {
                (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
            }
            Refusal::Gate(error) => error.into_response(),
        }
    }
}

/// `POST /chat/webhooks/incomingwebhook/{endpoint_id}`.
async fn incoming(
    State(inner): State<Arc<Inner>>,
    Path(endpoint_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut state = inner.lock();
    state.stats.zoom_requests += 1;
    let now = inner.clock.now();
    if in_outage(&inner, &state, now) {
        state.stats.zoom_unavailable += 1;
        return bad_gateway();
    }
    let query = uri.query().unwrap_or("");
    let mut response = match accept(
        &inner,
        &mut state,
        &endpoint_id,
        &headers,
        query,
        &body,
        now,
    ) {
        Ok(()) => (
            StatusCode::OK,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "OK",
        )
            .into_response(),
        Err(refusal) => {
            count_refusal(&mut state.stats, refusal.status());
            refusal.into_response()
        }
    };
    add_tracking_id(&mut response);
    response
}

/// Checks one post in order (endpoint, token, rate limits, format, body) and records it.
fn accept(
    inner: &Inner,
    state: &mut Shared,
    endpoint_id: &str,
    headers: &HeaderMap,
    query: &str,
    body: &[u8],
    now: f64,
) -> Result<(), Refusal> {
    let webhook: &SimWebhook = inner
        .options
        .zoom
        .webhooks
        .iter()
        .find(|w| w.endpoint_id == endpoint_id)
        .ok_or_else(|| Refusal::Plain(StatusCode::NOT_FOUND, "Not Found".to_owned()))?;
    // The token is the whole header value: `Bearer <token>` is refused.
    let presented = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if presented.map(str::trim) != Some(webhook.token.as_str()) {
        let text = match presented {
            None => "Missing authorization header",
            Some(_) => "Invalid authorization token",
        };
        return Err(Refusal::Plain(StatusCode::UNAUTHORIZED, text.to_owned()));
    }
    rate_limit(inner, state, now, false)?;
    injected_failure(state)?;
    let format = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.into_owned());
    // Without `format` Zoom posts the body as a plain message.
    let (content, via) = match format.as_deref().unwrap_or("message") {
        "message" => (message_content(body)?, MessageVia::WebhookMessage),
        "fields" => (fields_content(body)?, MessageVia::WebhookFields),
        "full" => (full_content(body)?, MessageVia::WebhookFull),
        other => {
            return Err(Refusal::bad_request(format!(
                "Invalid format '{other}': use message, fields or full"
            )));
        }
    };
    let channel = webhook.channel.as_str();
    record_message(inner, state, channel, content, None, via, now);
    Ok(())
}

/// `format=message`: the body is the text as a JSON string, at most 4,000 characters;
/// recorded as `{"text": <the text>}`.
fn message_content(body: &[u8]) -> Result<Value, Refusal> {
    let Ok(Value::String(text)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal::bad_request(
            "Invalid message: the body must be a JSON string",
        ));
    };
    if text.trim().is_empty() {
        return Err(Refusal::bad_request("Message is empty"));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Refusal::bad_request("Message too long"));
    }
    Ok(json!({ "text": text }))
}

/// `format=fields`: a flat, non-empty object whose keys become labels; recorded as sent.
fn fields_content(body: &[u8]) -> Result<Value, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields))
            if !fields.is_empty() && fields.values().all(|v| !v.is_object() && !v.is_array()) =>
        {
            Ok(Value::Object(fields))
        }
        _ => Err(Refusal::bad_request(
            "Invalid fields: the body must be a flat JSON object of keys and values",
        )),
    }
}

/// `format=full`: a card, validated like a chatbot's `content`, wrapped as
/// `{"content": {...}}` (what most clients send) or bare (UNCONFIRMED upstream; accepted);
/// recorded as the card.
fn full_content(body: &[u8]) -> Result<Value, Refusal> {
    let not_object = || Refusal::bad_request("Invalid card: the body must be a JSON object");
    let Ok(Value::Object(mut outer)) = serde_json::from_slice::<Value>(body) else {
        return Err(not_object());
    };
    let card = match outer.remove("content") {
        Some(Value::Object(card)) => card,
        Some(_) => {
            return Err(Refusal::bad_request(
                "Invalid card: 'content' must be an object",
            ));
        }
        None => outer,
    };
    validate_content(&card).map_err(|error| Refusal::bad_request(error.message().to_owned()))?;
    Ok(Value::Object(card))
}

#[cfg(test)]
mod tests {
    use crate::testing::start;
    use crate::{MessageVia, Scenario, SimOptions, SimWebhook, Simulator};
    use serde_json::{Value, json};

    const ALERTS: &str = "alerts@conference.xmpp.zoom.us";
    const TOKEN: &str = "sim-webhook-token";

    /// Posts `body` (raw bytes) to webhook `endpoint` with `format` and `token`; answers status
    /// and body text.
    async fn post_raw(
        sim: &Simulator,
        endpoint: &str,
        format: Option<&str>,
        token: Option<&str>,
        body: String,
    ) -> (u16, String) {
        let mut url = sim.zoom_webhook_url(endpoint);
        if let Some(format) = format {
            url.query_pairs_mut().append_pair("format", format);
        }
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let response = request.send().await.expect("request goes through");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn post(sim: &Simulator, format: &str, body: &Value) -> (u16, String) {
        post_raw(
            sim,
            "sim-alerts",
            Some(format),
            Some(TOKEN),
            body.to_string(),
        )
        .await
    }

    async fn default_sim() -> Simulator {
        start(Scenario { repos: vec![] }, SimOptions::default()).await
    }

    #[tokio::test]
    async fn url_names_the_endpoint() {
        let sim = default_sim().await;
        let url = sim.zoom_webhook_url("sim-alerts");
        assert_eq!(
            url.as_str(),
            format!(
                "http://{}/chat/webhooks/incomingwebhook/sim-alerts",
                sim.addr()
            )
        );
        assert!(sim.options().zoom.channels.iter().any(|c| c == ALERTS));
    }

    #[tokio::test]
    async fn message_format_records_the_text() {
        let sim = default_sim().await;
        let mut events = sim.subscribe();
        let text = "Build #42 on main FAILED\nhttps://bitbucket.org/ws/repo/pipelines/results/42";
        let (status, answer) = post(&sim, "message", &json!(text)).await;
        assert_eq!((status, answer.as_str()), (200, "OK"));
        // No format at all is a plain message too.
        let (status, _) = post_raw(
            &sim,
            "sim-alerts",
            None,
            Some(TOKEN),
            json!("second").to_string(),
        )
        .await;
        assert_eq!(status, 200);

        let shown = sim.channel(ALERTS);
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0].content, json!({ "text": text }));
        assert_eq!(shown[0].via, MessageVia::WebhookMessage);
        assert_eq!(shown[0].reply_to, None);
        let event = events.try_recv().expect("event");
        assert_eq!(
            (event.to_jid.as_str(), event.via),
            (ALERTS, MessageVia::WebhookMessage)
        );
        let stats = sim.stats();
        assert_eq!(
            (stats.zoom_requests, stats.posts, stats.webhook_posts),
            (2, 2, 2)
        );
    }

    #[tokio::test]
    async fn message_format_limits_and_shapes() {
        let sim = default_sim().await;
        // 4,000 characters, not bytes: "é" is two bytes.
        let (status, _) = post(&sim, "message", &json!("é".repeat(4000))).await;
        assert_eq!(status, 200);
        let (status, text) = post(&sim, "message", &json!("x".repeat(4001))).await;
        assert_eq!((status, text.as_str()), (400, "Message too long"));
        // The text must come as a JSON string.
        let (status, _) = post_raw(
            &sim,
            "sim-alerts",
            Some("message"),
            Some(TOKEN),
            "bare".into(),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = post(&sim, "message", &json!({ "text": "x" })).await;
        assert_eq!(status, 400);
        let (status, _) = post(&sim, "message", &json!("  ")).await;
        assert_eq!(status, 400);
        let (status, _) = post(&sim, "markdown", &json!("x")).await;
        assert_eq!(status, 400);
        assert_eq!(sim.channel(ALERTS).len(), 1);
        let stats = sim.stats();
        assert_eq!((stats.zoom_rejected, stats.webhook_posts), (5, 1));
    }

    #[tokio::test]
    async fn full_format_takes_wrapped_and_bare_cards() {
        let sim = default_sim().await;
        let card = json!({
            "head": { "text": "DOWN: host01", "sub_head": { "text": "critical" } },
            "body": [
                { "type": "message", "text": "host unreachable", "link": "https://example.com/" },
                { "type": "fields", "items": [{ "key": "revision", "value": "main@sha1:1" }] },
            ],
        });
        let (status, answer) = post(&sim, "full", &json!({ "content": card })).await;
        assert_eq!((status, answer.as_str()), (200, "OK"));
        let (status, _) = post(&sim, "full", &card).await;
        assert_eq!(status, 200);
        let bad = json!({ "content": { "body": [{ "type": "button" }] } });
        let (status, text) = post(&sim, "full", &bad).await;
        assert_eq!(status, 400);
        assert!(text.contains("content.body[0].type"), "{text}");
        let (status, _) = post(&sim, "full", &json!({ "content": "text" })).await;
        assert_eq!(status, 400);

        let shown = sim.channel(ALERTS);
        assert_eq!(shown.len(), 2);
        assert!(shown.iter().all(|m| m.content == card));
        assert!(shown.iter().all(|m| m.via == MessageVia::WebhookFull));
    }

    #[tokio::test]
    async fn fields_format_records_the_object() {
        let sim = default_sim().await;
        let fields = json!({ "name": "repo-x", "level": "Error", "build": 42 });
        let (status, _) = post(&sim, "fields", &fields).await;
        assert_eq!(status, 200);
        let (status, _) = post(&sim, "fields", &json!({ "nested": { "a": 1 } })).await;
        assert_eq!(status, 400);
        let shown = sim.channel(ALERTS);
        assert_eq!(shown.len(), 1);
        assert_eq!(
            (&shown[0].content, shown[0].via),
            (&fields, MessageVia::WebhookFields)
        );
    }

    #[tokio::test]
    async fn wrong_token_and_unknown_endpoint_are_refused_in_plain_text() {
        let mut options = SimOptions::default();
        options.zoom.webhooks.push(SimWebhook {
            endpoint_id: "ops".to_owned(),
            token: "ops-token".to_owned(),
            channel: "ops@conference.xmpp.zoom.us".to_owned(),
        });
        let sim = start(Scenario { repos: vec![] }, options).await;
        let body = || json!("hello").to_string();
        for token in [
            None,
            Some("wrong"),
            Some("Bearer sim-webhook-token"),
            Some("ops-token"),
        ] {
            let (status, text) = post_raw(&sim, "sim-alerts", Some("message"), token, body()).await;
            assert_eq!(status, 401, "{token:?}");
            assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        }
        let (status, _) = post_raw(&sim, "nope", Some("message"), Some(TOKEN), body()).await;
        assert_eq!(status, 404);
        let (status, _) = post_raw(&sim, "ops", Some("message"), Some("ops-token"), body()).await;
        assert_eq!(status, 200);
        assert!(sim.channel(ALERTS).is_empty());
        assert_eq!(sim.channel("ops@conference.xmpp.zoom.us").len(), 1);
        let stats = sim.stats();
        assert_eq!((stats.zoom_requests, stats.zoom_rejected), (6, 5));
    }

    #[tokio::test]
    async fn two_webhooks_with_one_id_are_refused() {
        let mut options = SimOptions::default();
        options.zoom.webhooks.push(SimWebhook::default());
        let refused = Simulator::start(Scenario { repos: vec![] }, options).await;
        assert!(refused.is_err());
    }

    #[tokio::test]
    async fn gate_applies_to_webhooks() {
        let sim = default_sim().await;
        sim.zoom_rate_limit_next(1, Some("3".to_owned()));
        let (status, text) = post(&sim, "message", &json!("x")).await;
        assert_eq!(status, 429);
        assert_eq!(
            serde_json::from_str::<Value>(&text).expect("JSON")["code"],
            429
        );
        // The daily cap is the chatbot API's, not the webhook's.
        sim.exhaust_zoom_daily_limit();
        sim.fail_next_zoom_calls(1);
        let (status, _) = post(&sim, "message", &json!("x")).await;
        assert_eq!(status, 503);
        sim.set_zoom_outage(true);
        let (status, text) = post(&sim, "message", &json!("x")).await;
        assert_eq!(status, 502);
        assert!(text.contains("Bad Gateway"));
        sim.set_zoom_outage(false);
        let (status, _) = post(&sim, "message", &json!("x")).await;
        assert_eq!(status, 200);
        let stats = sim.stats();
        assert_eq!(
            (
                stats.zoom_requests,
                stats.zoom_rate_limited,
                stats.zoom_unavailable,
                stats.webhook_posts
            ),
            (4, 1, 1, 1)
        );
    }
}
