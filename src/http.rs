//! The HTTP plumbing both clients share: one reqwest client per upstream with TLS 1.2 or newer
//! and a timeout, budget-shaped governor limiters, and [`Budget`], the limiter of a Bitbucket
//! credential, which keeps its promise as the server counts.

use crate::domain::RateLimit;
use governor::{DefaultDirectRateLimiter, Quota};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A limiter every request to one upstream account passes (invariant: exactly one per credential).
pub(crate) type Limiter = DefaultDirectRateLimiter;

/// The longest an OAuth access token is believed to live, whatever its `expires_in` says: a
/// day, beyond Bitbucket's two hours and Zoom's one, and far inside what a clock can add.
pub(crate) const LONGEST_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// How long after it was issued a token said to live `expires_in` seconds is renewed: `early`
/// before it runs out, or a quarter of its life early for a short-lived one.
pub(crate) fn token_renewal(expires_in: u64, early: Duration) -> Duration {
    let life = Duration::from_secs(expires_in).min(LONGEST_TOKEN_LIFE);
    life - early.min(life / 4)
}

/// The HTTP client for one upstream. Credentials are attached per request with reqwest's
/// `bearer_auth`/`basic_auth`, which mark the header sensitive so it never shows in `Debug`.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .user_agent(concat!("bbzoom/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend is compiled in")
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment (`/`, `?`,
/// `#` and `%` included), so no name from a configuration or an answer can change which path a
/// request reaches. A segment that is empty, `.` or `..` is refused and returned: the URL
/// standard drops or resolves those (`repositories/acme/../pipelines` would ask for
/// `repositories/acme/pipelines`), and an empty one asks for a listing instead.
pub(crate) fn api_url<'s>(base: &url::Url, segments: &[&'s str]) -> Result<url::Url, &'s str> {
    if let Some(step) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
        return Err(step);
    }
    Ok(with_segments(base, segments.iter().copied()))
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment: the one
/// way every URL is built from names (a request's, through [`api_url`], or a link's).
pub(crate) fn with_segments<'a>(
    base: &url::Url,
    segments: impl IntoIterator<Item = &'a str>,
) -> url::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("an http(s) base URL")
        .pop_if_empty()
        .extend(segments);
    url
}

/// A limiter that never lets more than `limit.requests` through in any window of `limit.per`.
pub fn budget_limiter(limit: RateLimit) -> Limiter {
    Limiter::direct(budget_quota(limit))
}

/// The quota behind [`budget_limiter`]: see [`pace`].
pub(crate) fn budget_quota(limit: RateLimit) -> Quota {
    let (burst, period) = pace(limit);
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst).expect("burst is at least one"))
}

/// The burst and the period of a GCRA that spreads `limit` over its window.
///
/// GCRA with a burst `b` and a period `t` admits at most `b - 1 + ceil(per / t)` requests in
/// a window, so a burst the size of the whole budget would let nearly twice the budget through
/// an hour. The burst is kept to a sixtieth of the budget and the period stretched so that the
/// two add up to the budget: `t` is rounded UP to the nanosecond, since a period a nanosecond
/// short lets one request more into every window (1,001 in an hour for 1,000).
fn pace(limit: RateLimit) -> (u32, Duration) {
    let requests = limit.requests.max(1);
    let burst = (requests / 60).max(1);
    let steps = u128::from(requests - burst + 1);
    let nanos = limit.per.as_nanos().div_ceil(steps).max(1);
    (
        burst,
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
    )
}

/// The one limiter of a Bitbucket credential (invariant 4): never more than the budget's
/// `requests` in any window of its `per`, as the server counts them, for the life of the
/// credential's account.
///
/// Two parts, one ledger, on tokio's clock. The pace (GCRA, see [`pace`]) spreads requests
/// over the window: a sixtieth of the budget at once, then one at a time. The window enforces:
/// a request holds its place from admission until `per` after its answer came back (it reached
/// the server somewhere in between), so no window of the server's, wherever it falls and
/// however long requests took on the way, holds more than the budget. Nothing is ever
/// replaced: [`Budget::follow`] changes how many requests the window takes, up or down, and
/// keeps what it has admitted, and the window itself is fixed at creation, the budget's own (invariant 15).
pub(crate) struct Budget {
    ledger: Mutex<Ledger>,
    /// Signalled when a request ends, for an admission waiting on a window of requests that
    /// are all still under way.
    ended: Notify,
}

struct Ledger {
    limit: RateLimit,
    /// The pace's period and tolerance (`period * (burst - 1)`).
    period: Duration,
    tolerance: Duration,
    /// The pace's theoretical arrival time: when the next request would be due at the steady
    /// rate. `None` before the first.
    due: Option<Instant>,
    /// Requests admitted and not yet answered.
    in_flight: usize,
    /// When each answered request ended, oldest first, for as long as it is within `per`.
    ended: VecDeque<Instant>,
}

impl Ledger {
    fn set_limit(&mut self, limit: RateLimit) {
        let (burst, period) = pace(limit);
        self.limit = limit;
        self.period = period;
        self.tolerance = period * (burst - 1);
    }

    /// Forgets the requests that ended a whole window ago.
    fn expire(&mut self, now: Instant) {
        while self
            .ended
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.limit.per)
        {
            self.ended.pop_front();
        }
    }

    /// Admits a request now, or says when to ask again (`None`: when a request ends).
    fn try_admit(&mut self, now: Instant) -> Result<(), Option<Instant>> {
        self.expire(now);
        // GCRA: due at most `tolerance` early.
        let paced = self
            .due
            .and_then(|due| due.checked_sub(self.tolerance))
            .filter(|&at| now < at);
        if let Some(at) = paced {
            return Err(Some(at));
        }
        if self.held() >= self.limit.requests as usize {
            return Err(self.ended.front().map(|&at| at + self.limit.per));
        }
        self.due = Some(self.due.map_or(now, |due| due.max(now)) + self.period);
        self.in_flight += 1;
        Ok(())
    }

    /// A request admitted earlier ended at `now`: its window starts.
    fn end(&mut self, now: Instant) {
        self.in_flight -= 1;
        self.ended.push_back(now);
    }

    fn held(&self) -> usize {
        self.in_flight + self.ended.len()
    }
}

/// A request's place in its [`Budget`]'s window; dropping it (answered, failed or abandoned)
/// starts the window it still counts in.
pub(crate) struct Slot<'a> {
    budget: &'a Budget,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        // Not `expect`: a drop while unwinding must not panic again.
        let mut ledger = self.budget.ledger.lock().unwrap_or_else(|e| e.into_inner());
        ledger.end(Instant::now());
        drop(ledger);
        self.budget.ended.notify_waiters();
    }
}

impl Budget {
    pub(crate) fn new(limit: RateLimit) -> Budget {
        let mut ledger = Ledger {
            limit,
            period: Duration::ZERO,
            tolerance: Duration::ZERO,
            due: None,
            in_flight: 0,
            ended: VecDeque::new(),
        };
        ledger.set_limit(limit);
        Budget {
            ledger: Mutex::new(ledger),
            ended: Notify::new(),
        }
    }

    /// The budget in force.
    pub(crate) fn limit(&self) -> RateLimit {
        self.ledger.lock().expect("budget lock").limit
    }

    /// Waits for the pace and for a place in the window; hold the slot until the answer is in.
    pub(crate) async fn admit(&self) -> Slot<'_> {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let verdict = self
                .ledger
                .lock()
                .expect("budget lock")
                .try_admit(Instant::now());
            match verdict {
                Ok(()) => return Slot { budget: self },
                Err(Some(at)) => tokio::time::sleep_until(at).await,
                // Every place is held by a request under way: its end starts its window.
                Err(None) => ended.await,
            }
        }
    }

    /// Requests within the window: under way, or answered less than `per` ago.
    pub(crate) fn in_window(&self) -> usize {
        let mut ledger = self.ledger.lock().expect("budget lock");
        ledger.expire(Instant::now());
        ledger.held()
    }

    /// Takes at most `requests` (at least one) per window from now on, more or fewer than
    /// before, keeping the window, the pace's state and every request already in the window.
    /// Returns the budget in force if that changed it.
    ///
    /// Either way no window of the server's holds more than the new limit once a request is
    /// admitted under it: an admission needs fewer than the limit in force held in the ledger,
    /// and every request a server could count in one window with it is still held then
    /// (under way, or answered less than a window ago). After a rise, the requests admitted
    /// under the old limit take their places in the new one; after a fall, admissions wait
    /// until enough of them have left the window, rather than forget them.
    pub(crate) fn follow(&self, requests: u32) -> Option<RateLimit> {
        let mut ledger = self.ledger.lock().expect("budget lock");
        let requests = requests.max(1);
        if requests == ledger.limit.requests {
            return None;
        }
        let limit = RateLimit {
            requests,
            ..ledger.limit
        };
        ledger.set_limit(limit);
        Some(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::{Clock, FakeRelativeClock};
    use std::sync::Arc;

    /// The instants a limiter of `quota` admits a request at when it is asked without pause
    /// from 0 to `until`: governor's fake clock jumps to exactly each next admission, so a
    /// window's edge is found to the nanosecond.
    fn admissions(quota: Quota, until: Duration) -> Vec<Duration> {
        let clock = FakeRelativeClock::default();
        let limiter = governor::RateLimiter::direct_with_clock(quota, clock.clone());
        let mut admitted = Vec::new();
        loop {
            // The fake clock starts at 0.
            let now: Duration = clock.now().into();
            if now >= until {
                return admitted;
            }
            match limiter.check() {
                Ok(()) => admitted.push(now),
                Err(not_until) => clock.advance(not_until.wait_time_from(clock.now())),
            }
        }
    }

    /// The most of `at` (sorted) in any window `[t, t + per)`.
    fn most_in_a_window(at: &[Duration], per: Duration) -> usize {
        let mut first = 0;
        let mut most = 0;
        for (last, &t) in at.iter().enumerate() {
            while t - at[first] >= per {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// Every window of the quota, exactly: budgets whose period does not divide evenly
    /// included (1,000 an hour once let 1,001 through).
    #[test]
    fn budget_is_never_exceeded_in_any_window() {
        for (requests, per) in [
            (900, 3600),
            (1000, 3600),
            (999, 3600),
            (60, 3600),
            (7, 3),
            (20, 1),
            (2, 60),
            (1, 60),
        ] {
            let limit = RateLimit {
                requests,
                per: Duration::from_secs(per),
            };
            let admitted = admissions(budget_quota(limit), limit.per * 5);
            let most = most_in_a_window(&admitted, limit.per);
            assert!(
                most <= requests as usize,
                "{requests}/{per}s: {most} in one window"
            );
            assert!(
                admitted.len() as u32 >= requests * 4,
                "{requests}/{per}s uses its budget: {}",
                admitted.len()
            );
        }
    }

    fn limit(requests: u32, per_secs: u64) -> RateLimit {
        RateLimit {
            requests,
            per: Duration::from_secs(per_secs),
        }
    }

    /// `clients` callers asking a budget's ledger without pause, each request taking a
    /// pseudo-random time of up to `longest`, from `start` until `until` later: each
    /// request's admission and end.
    fn hammer(
        ledger: &mut Ledger,
        start: Instant,
        clients: usize,
        longest: Duration,
        until: Duration,
    ) -> Vec<(Instant, Instant)> {
        enum Client {
            Asking(Instant),
            Waiting,
            Sending(Instant, Instant),
        }
        let mut seed = 0x2545_f491_u64;
        let mut took = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            longest.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64)
        };
        let mut clients: Vec<Client> = (0..clients).map(|_| Client::Asking(start)).collect();
        let mut requests = Vec::new();
        loop {
            // The next thing to happen: a request ending, else an ask.
            let next = clients
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    Client::Sending(_, ends) => Some((*ends, 0, i)),
                    Client::Asking(at) => Some((*at, 1, i)),
                    Client::Waiting => None,
                })
                .min()
                .expect("someone is asking or sending");
            let (now, _, i) = next;
            if now >= start + until {
                return requests;
            }
            match clients[i] {
                Client::Sending(admitted, ended) => {
                    ledger.end(ended);
                    requests.push((admitted, ended));
                    for client in &mut clients {
                        if matches!(client, Client::Waiting) {
                            *client = Client::Asking(now);
                        }
                    }
                    clients[i] = Client::Asking(now);
                }
                Client::Asking(at) => {
                    clients[i] = match ledger.try_admit(at) {
                        Ok(()) => Client::Sending(at, at + took()),
                        Err(Some(later)) => Client::Asking(later),
                        Err(None) => Client::Waiting,
                    }
                }
                Client::Waiting => unreachable!("never chosen"),
            }
        }
    }

    /// However many callers and however long their requests take, no window of the server's
    /// holds more than the budget; and the budget is used, not just kept.
    #[test]
    fn a_budget_holds_in_every_window_a_server_can_count() {
        for (requests, per, clients, longest_ms) in [
            (60, 3600, 8, 30_000),
            (1000, 3600, 16, 5_000),
            (20, 1, 4, 30),
            (7, 3, 3, 300),
            (1, 60, 2, 10_000),
        ] {
            let limit = limit(requests, per);
            let budget = Budget::new(limit);
            let mut ledger = budget.ledger.into_inner().unwrap();
            let longest = Duration::from_millis(longest_ms);
            let start = Instant::now();
            let sent = hammer(&mut ledger, start, clients, longest, limit.per * 5);
            let most = most_a_server_counts_from(&sent, limit.per, start);
            assert!(
                most <= requests as usize,
                "{requests}/{per}s: {most} in one window"
            );
            assert!(
                sent.len() as u32 >= requests * 4,
                "{requests}/{per}s uses its budget: {}",
                sent.len()
            );
        }
    }

    /// The first moment from `at` on that `ledger` admits a request (which then ends at once).
    fn next_admission(ledger: &mut Ledger, mut at: Instant) -> Instant {
        loop {
            match ledger.try_admit(at) {
                Ok(()) => {
                    ledger.end(at);
                    return at;
                }
                Err(Some(later)) => at = later,
                Err(None) => panic!("nothing under way to wait for"),
            }
        }
    }

    /// Lowering keeps what was admitted: a lower budget whose window is already full waits
    /// for places to free, instead of starting afresh.
    #[test]
    fn lowering_keeps_the_window() {
        let budget = Budget::new(limit(10, 60));
        let start = Instant::now();
        let secs = |at: Instant| (at - start).as_secs_f64();
        let mut at = start;
        for expected in [0.0, 6.0, 12.0, 18.0, 24.0] {
            let mut ledger = budget.ledger.lock().unwrap();
            at = next_admission(&mut ledger, at);
            assert_eq!(secs(at), expected, "one every 6 s");
        }
        assert_eq!(budget.follow(4), Some(limit(4, 60)));
        assert_eq!(budget.follow(4), None, "unchanged");
        assert_eq!(budget.follow(0), Some(limit(1, 60)), "at least one");
        assert_eq!(budget.follow(4), Some(limit(4, 60)));
        assert_eq!(budget.limit(), limit(4, 60));
        let mut ledger = budget.ledger.lock().unwrap();
        // Five in the window: the fourth place frees when the first two have left it.
        assert_eq!(secs(next_admission(&mut ledger, at)), 66.0);
    }

    /// A budget of `from` a minute asked by eight tasks without pause on tokio's paused clock
    /// for 300 s, task `i`'s requests taking `2 * i` s; at 150 s it follows `to`. Each
    /// request's admission and end, and the start.
    async fn follow_mid_run(from: u32, to: u32) -> (Vec<(Instant, Instant)>, Instant) {
        let budget = Arc::new(Budget::new(limit(from, 60)));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 1..=8 {
            let budget = budget.clone();
            tasks.spawn(async move {
                let mut sent = Vec::new();
                while Instant::now() < start + Duration::from_secs(300) {
                    let slot = budget.admit().await;
                    let admitted = Instant::now();
                    tokio::time::sleep(Duration::from_secs(2) * i).await;
                    drop(slot);
                    sent.push((admitted, Instant::now()));
                }
                sent
            });
        }
        tokio::time::sleep(Duration::from_secs(150)).await;
        assert_eq!(budget.follow(to), Some(limit(to, 60)));
        (tasks.join_all().await.concat(), start)
    }

    /// The most requests a server could count in one window of `per` starting at `from` or
    /// later: those whose time on the way, from admission to end, meets the window, wherever
    /// in it each arrived.
    fn most_a_server_counts_from(
        requests: &[(Instant, Instant)],
        per: Duration,
        from: Instant,
    ) -> usize {
        // The fullest window starts where a request could last have arrived, or at `from`.
        let starts = requests.iter().map(|&(_, ended)| ended.max(from));
        starts
            .map(|start| {
                requests
                    .iter()
                    .filter(|&&(admitted, ended)| ended >= start && admitted < start + per)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// A rise takes effect at once and only as far as the new limit: no window of the
    /// server's, even one holding requests admitted under the old limit, holds more than the
    /// new one, and the new one is used.
    #[tokio::test(start_paused = true)]
    async fn a_rise_never_lets_a_window_hold_more_than_the_new_limit() {
        let (sent, start) = follow_mid_run(10, 30).await;
        let minute = Duration::from_secs(60);
        let most_from = |from| most_a_server_counts_from(&sent, minute, start + from);
        assert!(most_from(Duration::ZERO) <= 30);
        let before: Vec<_> = sent
            .iter()
            .copied()
            .filter(|&(_, ended)| ended < start + Duration::from_secs(150))
            .collect();
        assert!(most_a_server_counts_from(&before, minute, start) <= 10);
        let used = most_from(Duration::from_secs(210));
        assert!(used >= 25, "the new limit is used: {used} in a window");
    }

    /// A fall keeps what was admitted: no window starting at the fall or later holds more
    /// than the new limit, though the old limit's requests were still in the window then.
    #[tokio::test(start_paused = true)]
    async fn a_fall_is_obeyed_in_every_window_from_the_fall_on() {
        let (sent, start) = follow_mid_run(30, 10).await;
        let minute = Duration::from_secs(60);
        let most_from = |from| most_a_server_counts_from(&sent, minute, start + from);
        let fullest = most_from(Duration::ZERO);
        assert!((25..=30).contains(&fullest), "{fullest} before the fall");
        assert!(most_from(Duration::from_secs(150)) <= 10);
        let used = most_from(Duration::from_secs(210));
        assert!(used >= 8, "the new limit is used: {used} in a window");
    }

    /// Through the async API, on tokio's paused clock: all places held by requests under way,
    /// the next waits for one to end, then a window.
    #[tokio::test(start_paused = true)]
    async fn a_window_of_requests_under_way_waits_for_their_end() {
        let budget = Arc::new(Budget::new(limit(1, 10)));
        let start = Instant::now();
        let held = budget.admit().await;
        assert_eq!(budget.in_window(), 1);
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                drop(budget.admit().await);
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_secs(25)).await;
        drop(held);
        let admitted = waiting.await.unwrap();
        assert_eq!(admitted - start, Duration::from_secs(35));
        assert_eq!(budget.in_window(), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(budget.in_window(), 0);
    }
}
