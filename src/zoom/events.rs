//! The Server-to-Server OAuth app of `[zoom.events]`: its account-credentials token, which
//! opens the event subscription's WebSocket and Team Chat's list-messages API.

use super::{AppCredentials, CachedToken, ZoomError, request_token};
use url::Url;

/// A Zoom Server-to-Server OAuth app: tokens for one account.
pub struct ServerToServerApp {
    /// The client its requests go through (timeouts, TLS 1.2+).
    http: reqwest::Client,
    /// Token endpoint, `https://zoom.us/oauth/token`.
    oauth_url: Url,
    /// The account the app's tokens are for: the grant names it.
    account_id: String,
    /// The app's OAuth client.
    app: AppCredentials,
}

impl ServerToServerApp {
    pub fn new(
        http: reqwest::Client,
        oauth_url: Url,
        account_id: String,
        app: AppCredentials,
    ) -> ServerToServerApp {
        ServerToServerApp {
            http,
            oauth_url,
            account_id,
            app,
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
}
