//! The gate every Bitbucket API request passes before it is answered: the credential check,
//! Bitbucket's rolling limit of requests per credential per hour (in simulated time; an access
//! token's scaled limit if it has one), and the faults a test asks for (5xx, 429 storms, slow,
//! truncated or HTML answers).
//!
//! Order per request: count it; identify the credential (401 if none); record it under the
//! credential; then an injected 429, a storm, or the full window answers 429 (plain text, as
//! Bitbucket); otherwise the request takes a slot in the window and an injected or randomly
//! drawn fault (503, delay, broken body) shapes the answer.

use super::api::{Api, cloud_error, datacenter_error};
use super::auth::{self, Denial, SimCredential};
use super::{Inner, SimOptions};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The window of the rate limit, in simulated seconds.
const HOUR: f64 = 3600.0;

/// The body of every 429, as Bitbucket Cloud sends it (`text/plain`).
const RATE_LIMITED: &str = "Rate limit for this resource has been exceeded";

/// What a `Html` fault answers: the login page a misconfigured proxy or SSO shows instead of
/// the API.
const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Log in to continue - Log in with Atlassian account</title></head>\n<body>\
<form id=\"form-login\" action=\"/login\" method=\"post\"><input name=\"username\" type=\"email\">\
<button type=\"submit\">Continue</button></form></body></html>\n";

/// Faults drawn at random for every Bitbucket API request that passes the credential check
/// and the rate limit; `Default` is none. Rates are shares of requests, 0 to 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BitbucketFaults {
    /// Share answered 503, as Bitbucket does during incidents.
    pub server_error_rate: f64,
    /// Share answered only after `slow_by`, to test client timeouts.
    pub slow_rate: f64,
    /// How long a slow answer takes, in REAL time.
    pub slow_by: Duration,
    /// Share answered 200 with a truncated JSON body.
    pub malformed_rate: f64,
    /// Simulated seconds `[from, to)` during which every request is answered 429 (plain text;
    /// `Retry-After`, to the storm's end, as `bitbucket_retry_after` says).
    pub storm: Option<(f64, f64)>,
}

/// One fault for [`Simulator::fail_next_bitbucket_calls`](super::Simulator::fail_next_bitbucket_calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitbucketFault {
    /// 503 with the API's error body.
    ServerError,
    /// 429 with the plain-text body and this `Retry-After` value verbatim, if any (so tests can
    /// send delta-seconds, HTTP-date or RFC 3339 forms).
    RateLimited {
        /// The `Retry-After` header value, or `None` for no header.
        retry_after: Option<String>,
    },
    /// 200 with the answer's JSON cut in half.
    Malformed,
    /// 200 with an HTML login page (`text/html`).
    Html,
    /// The right answer, after this REAL delay.
    Slow(Duration),
}

/// A 401 for `denial`, worded as `api` words it.
fn deny(api: Api, denial: Denial) -> Response {
    let status = StatusCode::UNAUTHORIZED;
    match api {
        Api::Cloud => cloud_error(
            status,
            match denial {
                Denial::Missing | Denial::Invalid => "Access token expired or invalid",
                Denial::Expired => "Access token expired.",
                Denial::ApiTokenAsBearer => {
                    "Token is invalid, expired, or not supported for this endpoint."
                }
            },
            None,
        ),
        Api::DataCenter => match denial {
            Denial::Missing => datacenter_error(
                status,
                "You are not permitted to access this resource",
                "com.atlassian.bitbucket.AuthorisationException",
            ),
            _ => datacenter_error(
                status,
                "Authentication failed. Please check your credentials and try again.",
                "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
            ),
        },
    }
}

/// A 503 in `api`'s error shape.
fn unavailable(api: Api) -> Response {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let message = "Service temporarily unavailable";
    match api {
        Api::Cloud => cloud_error(status, message, None),
        Api::DataCenter => datacenter_error(
            status,
            message,
            "com.atlassian.bitbucket.ServiceUnavailableException",
        ),
    }
}

/// The requests of one credential.
#[derive(Default)]
struct Usage {
    /// Simulated second of every request, refused ones included, in order.
    requests: Vec<f64>,
    /// Simulated seconds of the requests the limiter let through in the last hour, oldest
    /// first.
    admitted: VecDeque<f64>,
}

impl Usage {
    /// Takes a slot in the rolling window at `now`, or says how many simulated seconds remain
    /// until one frees.
    fn take_slot(&mut self, now: f64, limit: u64) -> Result<(), f64> {
        while self.admitted.front().is_some_and(|&t| now - t >= HOUR) {
            self.admitted.pop_front();
        }
        if (self.admitted.len() as u64) < limit {
            self.admitted.push_back(now);
            Ok(())
        } else {
            Err(self.admitted.front().map_or(HOUR, |&t| t + HOUR - now))
        }
    }

    /// How many admitted requests the rolling hour up to `now` holds.
    fn used(&self, now: f64) -> u64 {
        self.admitted
            .iter()
            .rev()
            .take_while(|&&t| now - t < HOUR)
            .count() as u64
    }

    /// The most requests in any simulated hour (`[t, t + 3600)`) with `t` at `from` or
    /// later, by a sliding window.
    fn max_per_hour(&self, from: f64) -> usize {
        let requests = &self.requests[self.requests.partition_point(|&t| t < from)..];
        let mut first = 0;
        let mut most = 0;
        for (last, &t) in requests.iter().enumerate() {
            while t - requests[first] >= HOUR {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }
}

/// What changes on the Bitbucket side while the simulator runs: requests per credential and
/// the fault knobs.
#[derive(Default)]
pub(super) struct Ledger {
    /// Per credential name.
    usage: BTreeMap<String, Usage>,
    /// The random faults in force.
    pub(super) faults: BitbucketFaults,
    /// A fault injected for the next calls, with how many calls it still applies to.
    injected: Option<(u32, BitbucketFault)>,
    /// Access tokens' scaled limits in force, per simulated hour, by credential name.
    pub(super) scaled_limits: BTreeMap<String, u64>,
}

impl Ledger {
    /// A ledger with no requests yet, and the faults and scaled limits of `options` in force.
    pub(super) fn new(options: &SimOptions) -> Ledger {
        Ledger {
            faults: options.bitbucket_faults.clone(),
            scaled_limits: options.bitbucket_scaled_limits.clone(),
            ..Ledger::default()
        }
    }

    /// The next `n` admitted calls get `fault`.
    pub(super) fn inject(&mut self, n: u32, fault: BitbucketFault) {
        self.injected = (n > 0).then_some((n, fault));
    }

    /// The injected fault for this call, if any calls are left.
    fn take_injected(&mut self) -> Option<BitbucketFault> {
        let (left, fault) = self.injected.take()?;
        if left > 1 {
            self.injected = Some((left - 1, fault.clone()));
        }
        Some(fault)
    }

    pub(super) fn requests_by_credential(&self) -> BTreeMap<String, u64> {
        self.usage
            .iter()
            .map(|(name, usage)| (name.clone(), usage.requests.len() as u64))
            .collect()
    }

    pub(super) fn max_per_hour(&self, from: f64) -> u64 {
        self.usage
            .values()
            .map(|usage| usage.max_per_hour(from))
            .max()
            .unwrap_or(0) as u64
    }
}

impl BitbucketFaults {
    /// A fault for one request, drawn by the rates.
    fn draw(&self) -> Option<BitbucketFault> {
        let total = self.server_error_rate + self.slow_rate + self.malformed_rate;
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let roll: f64 = rand::rng().random();
        if roll < self.server_error_rate {
            Some(BitbucketFault::ServerError)
        } else if roll < self.server_error_rate + self.slow_rate {
            Some(BitbucketFault::Slow(self.slow_by))
        } else if roll < total {
            Some(BitbucketFault::Malformed)
        } else {
            None
        }
    }
}

/// How an admitted request is answered.
#[derive(Default)]
struct Plan {
    /// Wait this long (real time) before answering.
    delay: Option<Duration>,
    /// What replaces a 200's body, if anything.
    broken: Option<Broken>,
}

/// A 200 answer's body replaced by something a client cannot use.
enum Broken {
    /// The JSON cut in half.
    Truncated,
    /// A login page.
    Html,
}

/// Answers a Bitbucket API request: through the gate, then `answer`'s body (200) or error,
/// then the faults planned for it. Access tokens' answers all carry `X-RateLimit-Limit`,
/// `X-RateLimit-Resource` and `X-RateLimit-NearLimit`.
///
/// `X-RateLimit-Limit` is requests per REAL hour, as clients read it, while the limiter counts
/// per simulated hour: it carries the credential's limit times `speed`, rounded (1000 at speed
/// 40 says 40000; at speed 1 the limit itself), the rate the limit allows against the wall
/// clock. `X-RateLimit-NearLimit` is `true` once less than a fifth of the hour's allowance is
/// left (this answer's request counted), as issue 12 states Bitbucket does: Atlassian's pages
/// name the header, but no stored copy of them gives its threshold.
pub(super) async fn serve<E: IntoResponse>(
    inner: &Inner,
    headers: &HeaderMap,
    api: Api,
    answer: impl FnOnce() -> Result<Value, E>,
) -> Response {
    let (allowance, verdict) = admit(inner, headers, api);
    let mut response = match verdict {
        Err(refused) => refused,
        Ok(plan) => {
            if let Some(delay) = plan.delay {
                tokio::time::sleep(delay).await;
            }
            match (answer(), plan.broken) {
                (Ok(_), Some(Broken::Html)) => {
                    ([(CONTENT_TYPE, "text/html;charset=UTF-8")], LOGIN_PAGE).into_response()
                }
                (Ok(body), Some(Broken::Truncated)) => {
                    let mut bytes = body.to_string().into_bytes();
                    bytes.truncate(bytes.len() / 2);
                    ([(CONTENT_TYPE, "application/json")], bytes).into_response()
                }
                (Ok(body), None) => axum::Json(body).into_response(),
                (Err(error), _) => error.into_response(),
            }
        }
    };
    if let Some(Allowance { limit, left }) = allowance {
        let real_limit = HeaderValue::from(real_hour_limit(limit, inner.options.speed));
        // Less than a fifth left: `left / limit < 1 / 5`.
        let near = if left.saturating_mul(5) < limit {
            "true"
        } else {
            "false"
        };
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", real_limit);
        headers.insert("x-ratelimit-resource", HeaderValue::from_static("api"));
        headers.insert("x-ratelimit-nearlimit", HeaderValue::from_static(near));
    }
    response
}

/// What an access token's answer tells of its hour, in simulated requests.
struct Allowance {
    /// Its limit per hour.
    limit: u64,
    /// How many more requests the rolling hour takes after this one.
    left: u64,
}

/// The requests per simulated hour `credential` may make: its scaled limit in force, if it
/// has one, else the base limit.
fn hourly_limit(options: &SimOptions, ledger: &Ledger, credential: &SimCredential) -> u64 {
    ledger
        .scaled_limits
        .get(&credential.name)
        .copied()
        .unwrap_or(options.bitbucket_limit_per_hour)
}

/// A per-simulated-hour limit as requests per real hour: `round(limit * speed)`, saturating
/// at `u64::MAX`; exactly the limit at speed 1.
fn real_hour_limit(limit: u64, speed: f64) -> u64 {
    if speed == 1.0 {
        return limit;
    }
    // A float-to-int `as` saturates; the speed is positive and finite (checked at start).
    (limit as f64 * speed).round() as u64
}

/// The gate's decision, under the state lock: for an access token what its headers tell, and
/// the plan or the refusal.
fn admit(
    inner: &Inner,
    headers: &HeaderMap,
    api: Api,
) -> (Option<Allowance>, Result<Plan, Response>) {
    let options = &inner.options;
    let mut state = inner.lock();
    state.stats.bitbucket_requests += 1;
    let credential = match auth::identify(options, &state.bitbucket_grants, headers, api) {
        Ok(credential) => credential,
        Err(denial) => return (None, Err(deny(api, denial))),
    };
    let access_token = matches!(credential.kind, auth::SimCredentialKind::AccessToken { .. });
    let now = inner.clock.now();
    let ledger = &mut state.bitbucket;
    let limit = hourly_limit(options, ledger, credential);
    let fault = ledger.take_injected();
    let usage = ledger.usage.entry(credential.name.clone()).or_default();
    usage.requests.push(now);
    // Read once the window has or has not taken this request.
    let allowance = |usage: &Usage| {
        access_token.then(|| Allowance {
            limit,
            left: limit.saturating_sub(usage.used(now)),
        })
    };

    // Delta-seconds in real time, rounded up, for a wait in simulated seconds; only where
    // the API sends the header at all.
    let retry_after = |sim_secs: f64| {
        (options.bitbucket_retry_after || api == Api::DataCenter)
            .then(|| format!("{}", (sim_secs / options.speed).ceil()))
    };
    // An injected 429 answers as given, whatever the storm and the window say.
    if !matches!(fault, Some(BitbucketFault::RateLimited { .. })) {
        let storm = ledger.faults.storm;
        if let Some((_, end)) = storm.filter(|(from, to)| (*from..*to).contains(&now)) {
            return (allowance(usage), Err(too_many(retry_after(end - now))));
        }
        if let Err(wait) = usage.take_slot(now, limit) {
            return (allowance(usage), Err(too_many(retry_after(wait))));
        }
    }
    let allowance = allowance(usage);
    let plan = match fault.or_else(|| ledger.faults.draw()) {
        None => Plan::default(),
        Some(BitbucketFault::RateLimited { retry_after }) => {
            return (allowance, Err(too_many(retry_after)));
        }
        Some(BitbucketFault::ServerError) => return (allowance, Err(unavailable(api))),
        Some(BitbucketFault::Slow(delay)) => Plan {
            delay: Some(delay),
            broken: None,
        },
        Some(BitbucketFault::Malformed) => Plan {
            delay: None,
            broken: Some(Broken::Truncated),
        },
        Some(BitbucketFault::Html) => Plan {
            delay: None,
            broken: Some(Broken::Html),
        },
    };
    (allowance, Ok(plan))
}

/// A 429 as Bitbucket sends it: plain text, with `Retry-After` if given.
fn too_many(retry_after: Option<String>) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(CONTENT_TYPE, "text/plain")],
        RATE_LIMITED,
    )
        .into_response();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rolls_and_says_when_a_slot_frees() {
        let mut usage = Usage::default();
        assert_eq!(usage.take_slot(0.0, 2), Ok(()));
        assert_eq!(usage.take_slot(100.0, 2), Ok(()));
        assert_eq!(usage.take_slot(200.0, 2), Err(3400.0));
        assert_eq!(usage.take_slot(3600.0, 2), Ok(()));
        assert_eq!(usage.take_slot(3650.0, 2), Err(50.0));
        assert_eq!(Usage::default().take_slot(0.0, 0), Err(3600.0));
    }

    #[test]
    fn max_per_hour_slides() {
        let usage = Usage {
            requests: vec![0.0, 10.0, 3599.0, 3600.0, 3601.0, 3602.0, 9000.0],
            admitted: VecDeque::new(),
        };
        // [10, 3610) holds 10, 3599, 3600, 3601, 3602.
        assert_eq!(usage.max_per_hour(f64::NEG_INFINITY), 5);
        // From 3600 on: 3600, 3601, 3602.
        assert_eq!(usage.max_per_hour(3600.0), 3);
        assert_eq!(Usage::default().max_per_hour(0.0), 0);
    }

    #[test]
    fn header_limit_is_per_real_hour() {
        let at = real_hour_limit;
        assert_eq!(at(1000, 40.0), 40_000);
        assert_eq!(at(1000, 1.0), 1000);
        assert_eq!(at(u64::MAX, 1.0), u64::MAX);
        assert_eq!(at(1000, 0.5), 500);
        assert_eq!(at(3, 0.25), 1);
        assert_eq!(at(7, 1.5), 11);
        assert_eq!(at(u64::MAX, 2.0), u64::MAX);
    }

    #[test]
    fn injected_faults_run_out() {
        let mut ledger = Ledger::default();
        ledger.inject(2, BitbucketFault::Html);
        assert_eq!(ledger.take_injected(), Some(BitbucketFault::Html));
        assert_eq!(ledger.take_injected(), Some(BitbucketFault::Html));
        assert_eq!(ledger.take_injected(), None);
        ledger.inject(0, BitbucketFault::Html);
        assert_eq!(ledger.take_injected(), None);
    }

    #[test]
    fn draws_by_the_rates() {
        assert_eq!(BitbucketFaults::default().draw(), None);
        let always = BitbucketFaults {
            server_error_rate: 1.0,
            ..BitbucketFaults::default()
        };
        assert_eq!(always.draw(), Some(BitbucketFault::ServerError));
        let slow = BitbucketFaults {
            slow_rate: 1.0,
            slow_by: Duration::from_millis(5),
            ..BitbucketFaults::default()
        };
        assert_eq!(
            slow.draw(),
            Some(BitbucketFault::Slow(Duration::from_millis(5)))
        );
    }
}
