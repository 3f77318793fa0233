//! How a request proves who it is, per credential kind: a bearer token (access tokens, Data
//! Center HTTP tokens), HTTP Basic (API tokens with the account e-mail), or an OAuth consumer
//! whose 2-hour access token is fetched with the client-credentials grant and renewed before
//! it runs out (and once more after a 401).

use super::BitbucketError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

/// A credential in the form requests use it.
pub enum Auth {
    Bearer(SecretString),
    Basic {
        user: String,
        password: SecretString,
    },
    OAuth(OAuthConsumer),
}

/// An OAuth consumer and its current access token.
pub struct OAuthConsumer {
    http: reqwest::Client,
    /// `https://bitbucket.org/site/oauth2/access_token`.
    token_url: Url,
    key: String,
    secret: SecretString,
    /// The access token and when to renew it; a tokio mutex so one renewal serves all waiters.
    token: Mutex<Option<(SecretString, Instant)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

impl OAuthConsumer {
    pub fn new(
        http: reqwest::Client,
        token_url: Url,
        key: String,
        secret: SecretString,
    ) -> OAuthConsumer {
        OAuthConsumer {
            http,
            token_url,
            key,
            secret,
            token: Mutex::new(None),
        }
    }

    async fn access_token(&self) -> Result<SecretString, BitbucketError> {
        let mut cached = self.token.lock().await;
        if let Some((token, _)) = cached
            .as_ref()
            .filter(|(_, renew_at)| Instant::now() < *renew_at)
        {
            return Ok(token.clone());
        }
        let response = self
            .http
            .post(self.token_url.clone())
            .basic_auth(&self.key, Some(self.secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| {
                BitbucketError::Transport(format!("OAuth token request: {}", e.without_url()))
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            400 | 401 | 403 => return Err(BitbucketError::Unauthorized(status)),
            _ => return Err(BitbucketError::Status(status)),
        }
        let answer: TokenAnswer = response.json().await.map_err(|e| {
            BitbucketError::Malformed(format!("OAuth token answer: {}", e.without_url()))
        })?;
        let renew_at = Instant::now()
            + crate::http::token_renewal(answer.expires_in, Duration::from_secs(300));
        *cached = Some((answer.access_token.clone(), renew_at));
        Ok(answer.access_token)
    }
}

impl Auth {
    /// `request` with this credential's `Authorization` header (marked sensitive by reqwest).
    pub(crate) async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BitbucketError> {
        Ok(match self {
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
            Auth::OAuth(consumer) => {
                request.bearer_auth(consumer.access_token().await?.expose_secret())
            }
        })
    }

    /// After a 401: drops a renewable token so the next request fetches a new one. Returns
    /// whether trying again can help.
    pub(crate) async fn forget_token(&self) -> bool {
        match self {
            Auth::OAuth(consumer) => consumer.token.lock().await.take().is_some(),
            _ => false,
        }
    }
}
