//! Bitbucket clients: Cloud (pipelines, branches, commit statuses) and Data Center (branches,
//! build statuses), each speaking through the [`Account`] of one credential.
//!
//! The account owns the credential's one rate limiter (invariant 4) and its pause: a 429 pauses
//! every request of the credential, for `Retry-After` when given, else for an exponential,
//! jittered backoff. What the account retries in-process, bounded: 5xx, timeouts and connection
//! errors. A 401 is retried once only for an OAuth consumer, after renewing its token; otherwise
//! the credential is marked broken and the error is the poll's. Wire types stay inside this
//! module (invariant 2): callers get domain types.

mod auth;
mod cloud;
mod datacenter;
mod wire;

pub use auth::{Auth, OAuthConsumer};
pub use cloud::{CloudClient, PipelinePage, RepoSchedules, WorkspaceChanges};
pub(crate) use datacenter::DataCenterClient;

use crate::domain::{BudgetOrigin, BudgetSpec, HOUR, RateLimit, less_margin};
use crate::http::Budget;
use crate::retry::{Backoff, parse_retry_after};
use backon::Retryable;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use url::Url;

/// The ref a status says it built, `name` (bare, or `refs/heads/...`, `refs/tags/...`): the ref
/// it was found at (`tip`) when the names agree or it says none, else what `known` makes of a
/// bare name (a listed tag or branch), else `tip`'s ref again: a name bbzoom cannot place is
/// not guessed into a branch.
fn named_ref(
    name: Option<&str>,
    tip: &crate::domain::RefTip,
    known: impl Fn(&str) -> Option<crate::domain::BuildRef>,
) -> crate::domain::BuildRef {
    use crate::domain::BuildRef;
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return tip.git_ref.clone();
    };
    if let Some(branch) = name.strip_prefix("refs/heads/") {
        return BuildRef::Branch(branch.to_owned());
    }
    if let Some(tag) = name.strip_prefix("refs/tags/") {
        return BuildRef::Tag(tag.to_owned());
    }
    if tip.git_ref.name() == Some(name) {
        return tip.git_ref.clone();
    }
    known(name).unwrap_or_else(|| tip.git_ref.clone())
}

/// The statuses posted on one commit, in domain form, and which of them Bitbucket Pipelines
/// posted for its own runs (on Cloud; its link is the pipeline's page).
#[derive(Debug, Default)]
pub struct CommitStatuses {
    pub builds: Vec<crate::domain::BuildStatus>,
    pub by_pipelines: std::collections::BTreeSet<crate::domain::BuildKey>,
}

/// Branch and tag tips as listed, and the requests that took (a listing may read pages).
#[derive(Debug, Default)]
pub(crate) struct RefTips {
    pub(crate) tips: Vec<crate::domain::RefTip>,
    pub(crate) requests: u64,
}

/// Why a request failed, classified for the poller.
#[derive(Debug, thiserror::Error)]
pub enum BitbucketError {
    #[error("rate limited by Bitbucket; credential paused for {0:?}")]
    RateLimited(Duration),
    #[error(
        "credential rejected (HTTP {0}): check that it exists, has not expired and may read repositories and pipelines"
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
    #[error(
        "{0:?} is not a name a request can carry (an empty name, \".\" or \"..\" would reach another API path); nothing was sent"
    )]
    NotAName(String),
}

impl BitbucketError {
    /// Worth another try within the same call.
    fn is_transient(&self) -> bool {
        match self {
            BitbucketError::Status(code) => *code >= 500,
            BitbucketError::Transport(_) => true,
            _ => false,
        }
    }
}

/// How an account retries and backs off; injectable so tests run in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra tries for a transient failure within one call.
    pub attempts: usize,
    /// Delays between those tries.
    pub backoff: Backoff,
    /// Pauses after a 429 without `Retry-After`, by consecutive 429 count.
    pub rate_limit_backoff: Backoff,
    /// The longest pause after a 429, whatever its `Retry-After` says: an hour of Bitbucket's,
    /// its limits' window, after which every request it counted has left it.
    pub longest_pause: Duration,
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
            longest_pause: crate::domain::HOUR,
        }
    }
}

/// One credential as the clients use it: identity, budget, pause and health.
pub struct Account {
    /// The credential's name in the configuration, for logs and `status`.
    pub(crate) name: String,
    http: reqwest::Client,
    auth: Auth,
    /// The credential's one limiter, starting at the configured budget and following in place
    /// (never replaced) what the server advertises, within `spec`'s ceiling.
    budget: Budget,
    /// What the budget was configured as: its ceiling, and where it comes from.
    spec: BudgetSpec,
    /// What Bitbucket last advertised, for `status` and to log each change once.
    advertised: Mutex<Advertised>,
    retry: RetryPolicy,
    /// When a 429 paused this credential, the instant requests may resume.
    paused_until: Mutex<Option<Instant>>,
    /// 429s in a row, for the backoff when no `Retry-After` came.
    consecutive_429: AtomicU32,
    /// What it spent since the daemon started, for the metrics: requests sent, 429s
    /// answered, polls made.
    pub(crate) spent: Spent,
    /// Why the credential was last rejected (401/403), until a request succeeds again.
    broken: Mutex<Option<String>>,
}

/// What a credential spent since the daemon started.
#[derive(Debug, Default)]
pub(crate) struct Spent {
    pub(crate) requests: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) polls: AtomicU64,
}

/// What Bitbucket said of a credential's limit in its last answers that said anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Requests per hour (`X-RateLimit-Limit` on Cloud; Data Center's token bucket's
    /// `X-RateLimit-FillRate` per `X-RateLimit-Interval-Seconds`, as an hourly rate).
    pub per_hour: Option<u64>,
    /// The bucket the limit is of (`X-RateLimit-Resource`, `api` for `/2.0/repositories/*`),
    /// cleaned for logs and `status`.
    pub resource: Option<String>,
    /// `X-RateLimit-NearLimit: true`: little of the hour's allowance is left.
    pub near_limit: bool,
}

/// A credential's budget in force and where it comes from, for `status` and the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetNow {
    /// The budget in force.
    pub limit: RateLimit,
    /// Where `limit` comes from.
    pub source: BudgetSource,
    /// What Bitbucket last advertised.
    pub advertised: Advertised,
}

/// Where a budget in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetSource {
    /// The admin's number, which is a ceiling.
    Configured,
    /// What Bitbucket advertises, less the margin.
    Advertised,
    /// The instance's default: nothing advertised yet, or more than the default's ceiling.
    Default,
}

impl std::fmt::Display for BudgetNow {
    /// Where the budget comes from, in words: "configured (a ceiling)", "advertised by
    /// Bitbucket: 3000/h (api), less a tenth", "default, nothing advertised yet", with "; near
    /// its limit" while Bitbucket says so.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Advertised {
            per_hour,
            resource,
            near_limit,
        } = &self.advertised;
        let said = per_hour.map(|n| {
            let resource = resource
                .as_deref()
                .map_or(String::new(), |r| format!(" ({r})"));
            format!("{n}/h{resource}")
        });
        match (self.source, said) {
            (BudgetSource::Configured, None) => write!(f, "configured (a ceiling)")?,
            (BudgetSource::Configured, Some(said)) => {
                write!(f, "configured (a ceiling); Bitbucket advertises {said}")?;
            }
            (BudgetSource::Advertised, said) => write!(
                f,
                "advertised by Bitbucket: {}, less a tenth",
                said.unwrap_or_default()
            )?,
            (BudgetSource::Default, None) => write!(f, "default, nothing advertised yet")?,
            (BudgetSource::Default, Some(said)) => {
                write!(f, "default at its ceiling; Bitbucket advertises {said}")?;
            }
        }
        if *near_limit {
            write!(f, "; near its limit")?;
        }
        Ok(())
    }
}

impl Account {
    /// The account of credential `name`, whose budget starts at `budget` (a [`RateLimit`]
    /// is a budget the admin wrote: a ceiling).
    pub fn new(
        name: String,
        http: reqwest::Client,
        auth: Auth,
        budget: impl Into<BudgetSpec>,
        retry: RetryPolicy,
    ) -> Account {
        let spec = budget.into();
        Account {
            name,
            http,
            auth,
            budget: Budget::new(spec.start),
            spec,
            advertised: Mutex::default(),
            retry,
            paused_until: Mutex::new(None),
            consecutive_429: AtomicU32::new(0),
            spent: Spent::default(),
            broken: Mutex::new(None),
        }
    }

    /// Requests within the budget's window (its `per`, compressed with the clock in a
    /// simulated run): under way, or answered less than a window ago. Compare with the budget.
    pub(crate) fn requests_in_window(&self) -> usize {
        self.budget.in_window()
    }

    /// The budget in force, as it follows what Bitbucket advertises: cheap (one uncontended
    /// lock), so a scheduler may ask before every plan.
    pub fn budget(&self) -> RateLimit {
        self.budget.limit()
    }

    /// The budget in force, where it comes from and what Bitbucket last advertised.
    pub fn budget_now(&self) -> BudgetNow {
        let limit = self.budget.limit();
        let advertised = self.advertised.lock().expect("advertised lock").clone();
        let capped = advertised
            .per_hour
            .is_none_or(|per_hour| allowed_in_window(per_hour, limit.per) >= self.spec.ceiling);
        let source = match (capped, self.spec.origin) {
            (true, BudgetOrigin::Configured) => BudgetSource::Configured,
            (true, BudgetOrigin::Default) => BudgetSource::Default,
            (false, _) => BudgetSource::Advertised,
        };
        BudgetNow {
            limit,
            source,
            advertised,
        }
    }

    /// Why the credential is broken, if its last answer was a 401/403.
    pub fn broken(&self) -> Option<String> {
        self.broken.lock().expect("broken lock").clone()
    }

    /// When requests resume, if a 429 paused the credential.
    pub fn paused_until(&self) -> Option<Instant> {
        let until = *self.paused_until.lock().expect("pause lock");
        until.filter(|&t| t > Instant::now())
    }

    /// GETs `url` and decodes the JSON answer, retrying transient failures.
    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<T, BitbucketError> {
        let result = (|| self.get_renewing(url.clone()))
            .retry(self.retry.backoff.delays(self.retry.attempts))
            .when(BitbucketError::is_transient)
            .notify(|err, after| tracing::debug!(credential = %self.name, %err, ?after, "retrying Bitbucket request"))
            .await;
        let mut broken = self.broken.lock().expect("broken lock");
        match &result {
            Err(BitbucketError::Unauthorized(status)) => {
                if broken.is_none() {
                    tracing::error!(
                        credential = %self.name, status,
                        "Bitbucket rejects this credential: every request made with it fails until it is fixed (other credentials go on)"
                    );
                }
                *broken = Some(format!("rejected with HTTP {status}"));
            }
            Ok(_) => *broken = None,
            Err(_) => {}
        }
        result
    }

    /// One try, plus one more with a renewed token if an OAuth token was refused.
    async fn get_renewing<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<T, BitbucketError> {
        match self.get_once(url.clone()).await {
            Err(BitbucketError::Unauthorized(401)) if self.auth.forget_token().await => {
                self.get_once(url).await
            }
            other => other,
        }
    }

    async fn get_once<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<T, BitbucketError> {
        if let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until).await;
        }
        // Held until the answer is read: the request counts in the budget's window until a
        // whole window after that, wherever the server counted it (invariant 4).
        let _slot = self.budget.admit().await;
        self.spent.requests.fetch_add(1, Ordering::Relaxed);
        let request = self.auth.authorize(self.http.get(url)).await?;
        let response = request
            .send()
            .await
            .map_err(|e| BitbucketError::Transport(e.without_url().to_string()))?;
        self.heed_advertised_limit(response.headers());
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
                    BitbucketError::Malformed(format!("{e}; the body starts {start:?}"))
                })
            }
            429 => {
                self.spent.rate_limited.fetch_add(1, Ordering::Relaxed);
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        parse_retry_after(v, SystemTime::now(), self.retry.longest_pause)
                    });
                let streak = self.consecutive_429.fetch_add(1, Ordering::Relaxed);
                let pause =
                    retry_after.unwrap_or_else(|| self.retry.rate_limit_backoff.delay(streak));
                let until = Instant::now() + pause;
                let mut paused = self.paused_until.lock().expect("pause lock");
                *paused = Some(paused.map_or(until, |p| p.max(until)));
                tracing::warn!(
                    credential = %self.name, ?pause, retry_after = retry_after.is_some(),
                    "Bitbucket rate limit hit; pausing every request of this credential"
                );
                Err(BitbucketError::RateLimited(pause))
            }
            401 | 403 => Err(BitbucketError::Unauthorized(status)),
            404 => Err(BitbucketError::NotFound),
            _ => Err(BitbucketError::Status(status)),
        }
    }

    /// Has the budget follow what the server advertises, less the margin, within the
    /// configured ceiling, and records what it said.
    ///
    /// What this relies on (Atlassian's "API request limits" page and its blog post
    /// introducing scaled rate limits): Bitbucket Cloud counts requests per credential in a
    /// rolling hour; answers to access tokens (repository, project, workspace) on scaled
    /// endpoints (`/2.0/repositories/*`, the `api` resource group) carry `X-RateLimit-Limit`,
    /// the requests permitted per hour, `X-RateLimit-Resource`, the group, and
    /// `X-RateLimit-NearLimit` (issue 12: `true` under a fifth of the hour left; no stored copy
    /// of Atlassian's page gives the threshold); other credentials and endpoints get none, and
    /// keep the base limit. Data Center sends, when its admin turned rate limiting on, a token
    /// bucket: `X-RateLimit-Limit` is then its size (a burst, not an hourly rate), refilled by
    /// `X-RateLimit-FillRate` every `X-RateLimit-Interval-Seconds`, which is what it sustains.
    ///
    /// The budget keeps its own window (its `per`, which a simulated run compresses with the
    /// clock, invariant 15) and takes the same rate in it; its limiter keeps what it already
    /// admitted, whichever way it moves.
    fn heed_advertised_limit(&self, headers: &reqwest::header::HeaderMap) {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let per_hour = advertised_per_hour(text);
        let near_limit = text("x-ratelimit-nearlimit").map(|v| v.eq_ignore_ascii_case("true"));
        let resource = text("x-ratelimit-resource").map(cleaned);
        let mut advertised = self.advertised.lock().expect("advertised lock");
        if let Some(near) = near_limit.filter(|&near| near != advertised.near_limit) {
            advertised.near_limit = near;
            // Once per change: a budget that takes 90% of the hour leaves a tenth, below the
            // fifth that sets this, so it is expected while the budget is fully used. Lasting
            // while it is not, it says someone else spends the same credential's allowance.
            if near {
                tracing::info!(credential = %self.name, resource = ?resource, "Bitbucket says this credential is near its hourly limit (expected while its budget is used in full; else something else uses it too)");
            } else {
                tracing::debug!(credential = %self.name, "Bitbucket no longer says this credential is near its limit");
            }
        }
        let Some(per_hour) = per_hour else {
            return;
        };
        advertised.per_hour = Some(per_hour);
        advertised.resource = resource;
        let per = self.budget.limit().per;
        let requests = allowed_in_window(per_hour, per).min(self.spec.ceiling);
        if let Some(budget) = self.budget.follow(requests) {
            tracing::info!(
                credential = %self.name, advertised_per_hour = per_hour,
                resource = advertised.resource.as_deref().unwrap_or("-"),
                ?budget, ceiling = self.spec.ceiling,
                "Bitbucket advertises a limit; the budget follows it, less a tenth"
            );
        }
    }
}

/// Requests per hour the server advertises, from the headers' trimmed values: Data Center's
/// token bucket's sustained rate when it describes one, else Cloud's `X-RateLimit-Limit`.
/// `None` for anything unusable: missing, not a whole number (negative included), zero.
/// Values are read as `u64` and multiplied in `u128`, so no header can overflow; the
/// budget's ceiling then bounds whatever is left.
fn advertised_per_hour<'a>(text: impl Fn(&str) -> Option<&'a str>) -> Option<u64> {
    let number = |name: &str| text(name)?.parse::<u64>().ok().filter(|&n| n > 0);
    // A bucket's size is no hourly rate: where a fill rate is sent, only it is read.
    let per_hour = if text("x-ratelimit-fillrate").is_some() {
        let fill = number("x-ratelimit-fillrate")?;
        let interval = number("x-ratelimit-interval-seconds")?;
        u128::from(fill) * u128::from(HOUR.as_secs()) / u128::from(interval)
    } else {
        u128::from(number("x-ratelimit-limit")?)
    };
    (per_hour > 0).then(|| u64::try_from(per_hour).unwrap_or(u64::MAX))
}

/// A header's text fit for a log line and `status`: at most 40 characters, graphic ASCII.
fn cleaned(value: &str) -> String {
    value
        .chars()
        .filter(char::is_ascii_graphic)
        .take(40)
        .collect()
}

/// `per_hour` requests per hour less the margin, as requests per window of `per` (rounded
/// down, at least one, saturating).
fn allowed_in_window(per_hour: u64, per: Duration) -> u32 {
    let in_window = less_margin(u128::from(per_hour)) * per.as_nanos() / HOUR.as_nanos();
    u32::try_from(in_window).unwrap_or(u32::MAX).max(1)
}

/// A build status as either API posts it, before it becomes a domain [`crate::domain::BuildStatus`]: the one
/// place both statuses sources meet, so Cloud and Data Center statuses read alike.
struct PostedStatus<'a> {
    key: &'a str,
    name: Option<&'a str>,
    /// The API's state word (`INPROGRESS`, `SUCCESSFUL`, `FAILED`, `STOPPED`/`CANCELLED`, ...).
    state: &'a str,
    number: Option<u64>,
    git_ref: crate::domain::BuildRef,
    /// The branch's or tag's page.
    ref_url: Option<String>,
    commit_url: String,
    /// The CI's link, if it gave a usable one.
    url: Option<String>,
    created_ms: i64,
    updated_ms: i64,
    /// As reported; otherwise derived from the times once finished.
    duration_secs: Option<u64>,
}

impl PostedStatus<'_> {
    fn into_build(
        self,
        repo: &crate::domain::RepoId,
        tip: &crate::domain::RefTip,
    ) -> crate::domain::BuildStatus {
        use crate::domain::{BuildKey, BuildState, Outcome};
        let state = match self.state {
            "INPROGRESS" => BuildState::Running,
            "SUCCESSFUL" => BuildState::Completed(Outcome::Successful),
            "FAILED" => BuildState::Completed(Outcome::Failed),
            "STOPPED" | "CANCELLED" => BuildState::Completed(Outcome::Stopped),
            other => BuildState::InProgressOther(other.to_owned()),
        };
        let derived = u64::try_from((self.updated_ms - self.created_ms) / 1000).unwrap_or(0);
        crate::domain::BuildStatus {
            key: BuildKey {
                repo: repo.clone(),
                id: format!("{}/{}", tip.commit, self.key),
            },
            job: self.key.to_owned(),
            name: self
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or(self.key)
                .to_owned(),
            number: self.number,
            revision: self.updated_ms,
            git_ref: self.git_ref,
            ref_url: self.ref_url,
            commit: Some(tip.commit.clone()),
            commit_message: tip.message.clone(),
            author: tip.author.clone(),
            authors: (!tip.author_ids.is_empty())
                .then(|| tip.author_ids.clone())
                .into_iter()
                .collect(),
            duration_secs: state
                .is_finished()
                .then(|| self.duration_secs.unwrap_or(derived)),
            state,
            created_ms: self.created_ms,
            url: self.url.unwrap_or_else(|| self.commit_url.clone()),
            commit_url: Some(self.commit_url),
            // A status says nothing of what started its build.
            scheduled: false,
        }
    }
}

/// `base` with `segments` appended, each one encoded segment ([`crate::http::api_url`]); a
/// name that would step to another path is refused before anything is sent.
fn join(base: &Url, segments: &[&str]) -> Result<Url, BitbucketError> {
    crate::http::api_url(base, segments).map_err(|step| BitbucketError::NotAName(step.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RefTip, RepoId};
    use std::sync::Arc;

    /// A Bitbucket on loopback that answers 404 to everything and records each path asked.
    async fn recording() -> (Url, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = asked.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            record.lock().unwrap().push(uri.path().to_owned());
            async { axum::http::StatusCode::NOT_FOUND }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, asked)
    }

    /// No name, whatever got through, makes a request reach another API path: `.` and `..`
    /// are refused before anything is sent, and everything else is one encoded segment.
    #[tokio::test]
    async fn no_name_changes_an_api_path() {
        let (base, asked) = recording().await;
        let account = Arc::new(Account::new(
            "test".into(),
            crate::http::client(Duration::from_secs(5)),
            Auth::Bearer("token".to_owned().into()),
            RateLimit {
                requests: 1000,
                per: Duration::from_secs(1),
            },
            RetryPolicy::default(),
        ));
        let cloud = CloudClient::new(account.clone(), base.join("2.0").unwrap(), base.clone());
        let datacenter = DataCenterClient::new(account, base.clone());
        let tip = |commit: &str| RefTip::branch_at("main", commit);
        for name in ["..", ".", ""] {
            let hostile = RepoId::new("acme", name);
            let api = RepoId::new("acme", "api");
            let _ = cloud.pipelines(&hostile, None).await;
            let _ = cloud.pipeline(&api, name).await;
            let _ = cloud.commits_since(&api, name, "c0ffee").await;
            let _ = cloud.statuses(&api, &tip(name), |_| None).await;
            let _ = cloud.changed_repositories(name, 0).await;
            let _ = datacenter.branch_tips(&hostile, |_| false).await;
            let _ = datacenter.statuses(&api, &tip(name), |_| None).await;
            assert_eq!(*asked.lock().unwrap(), Vec::<String>::new(), "{name:?}");
        }
        let _ = cloud
            .commits_since(&RepoId::new("acme", "api"), "a/../b?c#%2e%2e", "c0ffee")
            .await;
        assert_eq!(
            *asked.lock().unwrap(),
            ["/2.0/repositories/acme/api/commits/a%2F..%2Fb%3Fc%23%252e%252e"]
        );
    }

    /// The advertised hourly limit, less a tenth, taken in the budget's own window: an hour,
    /// a minute, or a simulated hour of a run at 120x (whose header says 120 times the limit).
    #[test]
    fn an_advertised_limit_is_taken_in_the_budgets_window() {
        let secs = Duration::from_secs;
        assert_eq!(allowed_in_window(1000, secs(3600)), 900);
        assert_eq!(allowed_in_window(3000, secs(3600)), 2700);
        assert_eq!(allowed_in_window(1000, secs(60)), 15);
        assert_eq!(allowed_in_window(120_000, secs(30)), 900);
        assert_eq!(allowed_in_window(1000, secs(1)), 1, "at least one");
        assert_eq!(allowed_in_window(1, secs(3600)), 1, "at least one");
        assert_eq!(allowed_in_window(u64::MAX, secs(3600 * 24)), u32::MAX);
    }

    /// What the headers advertise: Cloud's hourly limit, Data Center's token bucket as the
    /// rate it sustains, and nothing for what is absurd, never a panic.
    #[test]
    fn headers_advertise_an_hourly_rate_or_nothing() {
        let read = |pairs: &[(&str, &str)]| {
            let pairs = pairs.to_vec();
            advertised_per_hour(move |name| pairs.iter().find(|(n, _)| *n == name).map(|&(_, v)| v))
        };
        assert_eq!(read(&[("x-ratelimit-limit", "3000")]), Some(3000));
        assert_eq!(
            read(&[("x-ratelimit-limit", "99999999999")]),
            Some(99_999_999_999),
            "the ceiling bounds it"
        );
        for absurd in ["-5", "abc", "0", "", "1e4", "12.5", "18446744073709551616"] {
            assert_eq!(read(&[("x-ratelimit-limit", absurd)]), None, "{absurd:?}");
        }
        assert_eq!(read(&[]), None);
        // Data Center: a bucket of 60, 5 more every second: 18,000 an hour, not 60.
        let dc = [
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-fillrate", "5"),
            ("x-ratelimit-interval-seconds", "1"),
        ];
        assert_eq!(read(&dc), Some(18_000));
        let huge = [
            ("x-ratelimit-fillrate", "18446744073709551615"),
            ("x-ratelimit-interval-seconds", "1"),
        ];
        assert_eq!(read(&huge), Some(u64::MAX), "saturates");
        let no_interval = [
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-fillrate", "5"),
            ("x-ratelimit-interval-seconds", "0"),
        ];
        assert_eq!(
            read(&no_interval),
            None,
            "a bucket's size is not read as a rate"
        );
    }
}
