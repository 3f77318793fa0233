//! Zoom Incoming Webhooks: the channel admin's `/inc connect` gives a URL and a verification
//! token; bbzoom posts a card (`format=full`) or plain text (`format=message`). No message id
//! comes back, so webhook cards are never edited.

use super::{ErrorClass, ZoomAnswer, ZoomError, classify};
use crate::config::WebhookFormat;
use crate::http::Limiter;
use crate::render::{self, Card};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// One Incoming Webhook connection.
pub struct WebhookClient {
    http: reqwest::Client,
    /// The connection's URL, without the `format` query (added per request).
    url: Url,
    /// The verification token, sent raw in `Authorization` (no scheme word).
    token: SecretString,
    format: WebhookFormat,
    /// This connection's limiter.
    limiter: Limiter,
}

impl WebhookClient {
    pub(crate) fn new(
        http: reqwest::Client,
        url: Url,
        token: SecretString,
        format: WebhookFormat,
        limiter: Limiter,
    ) -> WebhookClient {
        WebhookClient {
            http,
            url,
            token,
            format,
            limiter,
        }
    }

    /// How its cards travel: what fits them.
    pub(crate) fn form(&self) -> crate::render::Form {
        match self.format {
            WebhookFormat::Full => crate::render::Form::WebhookFull,
            WebhookFormat::Message => crate::render::Form::WebhookMessage,
        }
    }

    /// Posts `card` in the connection's format.
    pub async fn post(&self, card: &Card) -> Result<(), ZoomError> {
        let mut url = self.url.clone();
        let (format, body) = match self.format {
            WebhookFormat::Full => ("full", render::webhook_full(card)),
            WebhookFormat::Message => (
                "message",
                serde_json::Value::String(render::webhook_message(card)),
            ),
        };
        url.query_pairs_mut().append_pair("format", format);
        self.limiter.until_ready().await;
        let mut token = reqwest::header::HeaderValue::from_str(self.token.expose_secret())
            .map_err(|_| ZoomError {
                class: ErrorClass::Permanent,
                detail: "the webhook token is not a valid header value".into(),
            })?;
        token.set_sensitive(true);
        let response = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, token)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                ZoomError::transient(format!("Zoom webhook request failed: {}", e.without_url()))
            })?;
        match classify(response).await {
            Ok(_) => Ok(()),
            Err(ZoomAnswer::Failed(err)) => Err(err),
            Err(ZoomAnswer::DailyLimit(retry_after)) => Err(ZoomError {
                class: ErrorClass::Transient { retry_after },
                detail: "Zoom's daily limit is reached (HTTP 429)".into(),
            }),
            Err(ZoomAnswer::TokenRejected) => Err(ZoomError {
                class: ErrorClass::Permanent,
                detail: "Zoom refused the webhook's verification token: reconnect it with /inc and store the new token".into(),
            }),
        }
    }
}
