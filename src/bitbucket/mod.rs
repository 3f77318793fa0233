//! The Bitbucket Cloud client: pipelines of a repository, newest first, and one pipeline by uuid.
//!
//! Every request passes the credential's one rate limiter (invariant 4) and waits out any pause
//! a 429 imposed on the whole credential. What is retried here, in-process and bounded: 5xx,
//! timeouts and connection errors. A 429 is not retried here: it pauses the credential (for
//! `Retry-After`, else an exponential, jittered backoff) and the poll tries again later.

mod wire;

use crate::domain::{BuildStatus, RepoId};
use crate::http::Limiter;
use crate::retry::{Backoff, parse_retry_after};
use backon::{ExponentialBuilder, Retryable};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use url::Url;

/// Pipelines per page when listing; new pipelines beyond one page are found by paging.
pub const PAGE_LEN: u32 = 10;

/// Why a request failed, classified for the poller.
#[derive(Debug, thiserror::Error)]
pub enum BitbucketError {
    #[error("rate limited by Bitbucket; credential paused for {0:?}")]
    RateLimited(Duration),
    #[error(
        "credential rejected (HTTP {0}): check that it exists, has not expired and has the pipeline and repository read scopes"
    )]
    Unauthorized(u16),
    #[error("not found (HTTP 404): check the repository URL and that the credential can see it")]
    NotFound,
    #[error("Bitbucket answered HTTP {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Malformed(String),
}

impl BitbucketError {
    /// Worth another try within the same poll.
    fn is_transient(&self) -> bool {
        match self {
            BitbucketError::Status(code) => *code >= 500,
            BitbucketError::Transport(_) => true,
            _ => false,
        }
    }
}

/// How a client retries and backs off; injectable so tests run in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Extra tries for a transient failure within one call.
    pub attempts: usize,
    /// Delays between those tries.
    pub backoff: Backoff,
    /// Pauses after a 429 without `Retry-After`, by consecutive 429 count.
    pub rate_limit_backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(10),
            },
            rate_limit_backoff: Backoff {
                base: Duration::from_secs(30),
                max: Duration::from_secs(900),
            },
        }
    }
}

/// A Bitbucket Cloud client bound to one credential.
pub struct CloudClient {
    http: reqwest::Client,
    /// REST base, e.g. `https://api.bitbucket.org/2.0`.
    api_url: Url,
    /// Web base for links people open, e.g. `https://bitbucket.org`.
    web_url: Url,
    /// The credential's access token; only ever exposed into a request header.
    token: SecretString,
    /// The credential's one limiter.
    limiter: Limiter,
    retry: RetryPolicy,
    /// When a 429 paused this credential, the instant requests may resume.
    paused_until: Mutex<Option<Instant>>,
    /// 429s in a row, for the backoff when no `Retry-After` came.
    consecutive_429: AtomicU32,
    /// Requests sent, for `status` and the demo.
    requests: AtomicU64,
}

impl CloudClient {
    pub fn new(
        http: reqwest::Client,
        api_url: Url,
        web_url: Url,
        token: SecretString,
        limiter: Limiter,
        retry: RetryPolicy,
    ) -> CloudClient {
        CloudClient {
            http,
            api_url,
            web_url,
            token,
            limiter,
            retry,
            paused_until: Mutex::new(None),
            consecutive_429: AtomicU32::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The first page of `repo`'s pipelines, newest first, or the page at `next`.
    pub async fn pipelines(
        &self,
        repo: &RepoId,
        next: Option<&str>,
    ) -> Result<PipelinePage, BitbucketError> {
        let url = match next {
            Some(next) => Url::parse(next)
                .map_err(|e| BitbucketError::Malformed(format!("bad next link: {e}")))?,
            None => {
                let mut url = self.repo_url(repo, &["pipelines"]);
                url.query_pairs_mut()
                    .append_pair("sort", "-created_on")
                    .append_pair("pagelen", &PAGE_LEN.to_string())
                    .append_pair("fields", "+values.target.commit.message");
                url
            }
        };
        let page: wire::Page<wire::Pipeline> = self.get(url).await?;
        Ok(PipelinePage {
            builds: page
                .values
                .iter()
                .map(|p| p.to_domain(repo, &self.web_url))
                .collect(),
            next: page.next,
        })
    }

    /// One pipeline by its uuid (with braces).
    pub async fn pipeline(&self, repo: &RepoId, uuid: &str) -> Result<BuildStatus, BitbucketError> {
        let mut url = self.repo_url(repo, &["pipelines", uuid]);
        url.query_pairs_mut()
            .append_pair("fields", "+target.commit.message");
        let pipeline: wire::Pipeline = self.get(url).await?;
        Ok(pipeline.to_domain(repo, &self.web_url))
    }

    /// `{api}/repositories/{owner}/{slug}/{tail...}`, each segment percent-encoded.
    fn repo_url(&self, repo: &RepoId, tail: &[&str]) -> Url {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL")
            .pop_if_empty()
            .extend(["repositories", &repo.owner, &repo.slug])
            .extend(tail);
        url
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, BitbucketError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.backoff.base)
            .with_max_delay(self.retry.backoff.max)
            .with_max_times(self.retry.attempts)
            .with_jitter();
        (|| self.get_once(url.clone()))
            .retry(backoff)
            .when(BitbucketError::is_transient)
            .notify(|err, after| tracing::debug!(%err, ?after, "retrying Bitbucket request"))
            .await
    }

    async fn get_once<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<T, BitbucketError> {
        self.wait_out_pause().await;
        self.limiter.until_ready().await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .get(url)
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| BitbucketError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {
                self.consecutive_429.store(0, Ordering::Relaxed);
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| BitbucketError::Transport(e.to_string()))?;
                serde_json::from_slice(&body).map_err(|e| {
                    let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
                    BitbucketError::Malformed(format!("{e}; body starts {start:?}"))
                })
            }
            429 => {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let streak = self.consecutive_429.fetch_add(1, Ordering::Relaxed);
                let pause =
                    retry_after.unwrap_or_else(|| self.retry.rate_limit_backoff.delay(streak));
                *self.paused_until.lock().expect("pause lock") = Some(Instant::now() + pause);
                tracing::warn!(
                    ?pause,
                    with_retry_after = retry_after.is_some(),
                    "Bitbucket rate limit hit; pausing the credential"
                );
                Err(BitbucketError::RateLimited(pause))
            }
            401 | 403 => Err(BitbucketError::Unauthorized(status)),
            404 => Err(BitbucketError::NotFound),
            _ => Err(BitbucketError::Status(status)),
        }
    }

    async fn wait_out_pause(&self) {
        let until = *self.paused_until.lock().expect("pause lock");
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// One page of pipelines, already in domain form.
#[derive(Debug)]
pub struct PipelinePage {
    /// Newest first.
    pub builds: Vec<BuildStatus>,
    /// Where the next (older) page is, if any.
    pub next: Option<String>,
}
