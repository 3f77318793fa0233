//! Bitbucket credentials: the kinds a daemon can hold, how each authenticates a request (and
//! how each fails, with Bitbucket's wording), and the OAuth consumer token endpoint
//! (`POST /site/oauth2/access_token`, client-credentials grant) that turns a consumer's key
//! and secret into expiring bearer tokens.

use super::api::Api;
use super::zoom::basic_credentials;
use super::{Inner, SimOptions, bearer_token};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use url::form_urlencoded;

/// A credential the simulated Bitbucket knows, under the name its requests are counted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCredential {
    /// Name for counters and limits (`bitbucket_requests_by_credential`); unique.
    pub name: String,
    /// What it is and its secrets.
    pub kind: SimCredentialKind,
}

/// The kinds of Bitbucket credential a daemon can be given, each with its own way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimCredentialKind {
    /// Cloud repository, project or workspace access token, sent as `Bearer`. The only kind
    /// whose answers carry `X-RateLimit-*` headers.
    AccessToken {
        /// The bearer token.
        token: String,
    },
    /// Cloud OAuth consumer: key and secret buy access tokens at the token endpoint, which are
    /// then sent as `Bearer` and expire after `SimOptions::oauth_token_lifetime`.
    OAuthConsumer {
        /// Consumer key (the user half of the token endpoint's Basic credentials).
        key: String,
        /// Consumer secret (the password half).
        secret: String,
    },
    /// Cloud API token of an Atlassian account, sent only as HTTP Basic `email:token`; as
    /// `Bearer` it is refused, as on Bitbucket.
    ApiToken {
        /// The account's e-mail address (the Basic user name).
        email: String,
        /// The token (the Basic password).
        token: String,
    },
    /// Data Center HTTP access token, sent as `Bearer`; accepted only under `/dc/rest`.
    DataCenterToken {
        /// The bearer token.
        token: String,
    },
}

/// An access token issued to an OAuth consumer.
pub(super) struct Grant {
    /// Name of the consumer credential it stands for.
    credential: String,
    /// Real instant it stops working (`None`: a lifetime too long to represent).
    expires: Option<Instant>,
}

/// Issued OAuth access tokens by token.
pub(super) type Grants = HashMap<String, Grant>;

/// Why a request was not let in; each API words it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denial {
    /// No `Authorization` header.
    Missing,
    /// A credential this API does not know (or a revoked OAuth token).
    Invalid,
    /// An OAuth access token past its lifetime.
    Expired,
    /// An API token sent as `Bearer` instead of Basic.
    ApiTokenAsBearer,
}

/// The credential a request presents, if `api` accepts it.
pub(super) fn identify<'a>(
    options: &'a SimOptions,
    grants: &Grants,
    headers: &HeaderMap,
    api: Api,
) -> Result<&'a SimCredential, Denial> {
    use SimCredentialKind::{AccessToken, ApiToken, DataCenterToken};
    if !headers.contains_key(AUTHORIZATION) {
        return Err(Denial::Missing);
    }
    let found = match (api, bearer_token(headers)) {
        (Api::DataCenter, Some(token)) => find(options, |kind| {
            matches!(kind, DataCenterToken { token: t } if t == token)
        }),
        (Api::DataCenter, None) => None,
        (Api::Cloud, Some(token)) => {
            if let Some(grant) = grants.get(token) {
                if grant.expires.is_some_and(|at| at <= Instant::now()) {
                    return Err(Denial::Expired);
                }
                let consumer = &grant.credential;
                options
                    .bitbucket_credentials
                    .iter()
                    .find(|c| c.name == *consumer)
            } else if find(options, |kind| matches!(kind, ApiToken { token: t, .. } if t == token))
                .is_some()
            {
                return Err(Denial::ApiTokenAsBearer);
            } else {
                find(options, |kind| {
                    matches!(kind, AccessToken { token: t } if t == token)
                })
            }
        }
        (Api::Cloud, None) => basic_credentials(headers).and_then(|(email, token)| {
            find(options, |kind| {
                matches!(kind, ApiToken { email: e, token: t } if *e == email && *t == token)
            })
        }),
    };
    found.ok_or(Denial::Invalid)
}

/// The first credential of a kind `accept` takes.
fn find(
    options: &SimOptions,
    accept: impl Fn(&SimCredentialKind) -> bool,
) -> Option<&SimCredential> {
    options
        .bitbucket_credentials
        .iter()
        .find(|c| accept(&c.kind))
}

/// The token endpoint's route, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Arc<Inner>> {
    Router::new().route("/site/oauth2/access_token", post(access_token))
}

/// An OAuth error answer, `{"error","error_description"}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, axum::Json(body)).into_response()
}

/// `POST /site/oauth2/access_token` with Basic `key:secret` and the form body
/// `grant_type=client_credentials`.
async fn access_token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.lock().stats.bitbucket_token_requests += 1;
    let consumer = basic_credentials(&headers).and_then(|(key, secret)| {
        find(&inner.options, |kind| {
            matches!(kind, SimCredentialKind::OAuthConsumer { key: k, secret: s }
                if *k == key && *s == secret)
        })
    });
    let Some(consumer) = consumer else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid OAuth client credentials",
        );
    };
    let grant_type = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    if grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        );
    }
    let lifetime = inner.options.oauth_token_lifetime;
    let access_token = random_token();
    inner.lock().bitbucket_grants.insert(
        access_token.clone(),
        Grant {
            credential: consumer.name.clone(),
            expires: Instant::now().checked_add(lifetime),
        },
    );
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs(),
        "scopes": "pipeline repository",
        "state": "client_credentials",
        // Never accepted back: a client-credentials consumer just asks again.
        "refresh_token": random_token(),
    }))
    .into_response()
}

/// 64 random alphanumerics.
fn random_token() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(64)
        .map(char::from)
        .collect()
}
