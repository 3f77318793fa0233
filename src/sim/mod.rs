//! A faithful, stateful simulator of the two services bbzoom talks to: Bitbucket Cloud's
//! Pipelines API (read side) and Zoom's Chatbot API (OAuth token, send and edit messages).
//!
//! No machine that builds or tests bbzoom can reach either service, so `bbzoom demo`, the
//! integration tests and the benchmarks point the real clients at this simulator instead. It
//! serves both APIs over HTTP on a loopback port with the real wire shapes, plays a scripted
//! [`Scenario`] of pipelines on a sped-up clock, records every chat message it accepts, and
//! offers fault knobs (failing calls, revoked tokens) for tests of retries and token renewal.

pub mod scenario;

mod bitbucket;
mod clock;
mod zoom;

pub use scenario::{Scenario, SimBuild, SimRepo, SimState};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use url::Url;

/// How many channel events a slow subscriber may fall behind before it starts losing them.
const EVENT_BUFFER: usize = 1024;

/// How long `shutdown` waits for open connections to finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Options; `Default` gives the demo's values.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Simulated seconds per real second (scenario times are simulated). Default 1.0.
    pub speed: f64,
    /// Bearer token the Bitbucket side accepts. Default "sim-bitbucket-token".
    pub bitbucket_token: String,
    /// The Zoom chatbot app the Zoom side knows.
    pub zoom: SimZoomApp,
    /// Lifetime of Zoom access tokens in REAL seconds (the `expires_in` it answers). Default 3600.
    pub zoom_token_lifetime: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            speed: 1.0,
            bitbucket_token: "sim-bitbucket-token".to_owned(),
            zoom: SimZoomApp::default(),
            zoom_token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// The one Zoom chatbot app installed on the simulated Zoom account: its credentials and where
/// it may post.
#[derive(Debug, Clone)]
pub struct SimZoomApp {
    /// OAuth client id (the user half of the token endpoint's Basic credentials).
    pub client_id: String,
    /// OAuth client secret (the password half).
    pub client_secret: String,
    /// The account the app is installed on; chat calls must name it.
    pub account_id: String,
    /// The bot's JID; chat calls must name it.
    pub robot_jid: String,
    /// The installing user's JID, sent along with every message.
    pub user_jid: String,
    /// Channel JIDs that exist.
    pub channels: Vec<String>,
}

impl Default for SimZoomApp {
    fn default() -> Self {
        SimZoomApp {
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            account_id: "simaccount".to_owned(),
            robot_jid: "bbzoom-bot@xmpp.zoom.us".to_owned(),
            user_jid: "admin@xmpp.zoom.us".to_owned(),
            channels: vec![
                "ci@conference.xmpp.zoom.us".to_owned(),
                "releases@conference.xmpp.zoom.us".to_owned(),
            ],
        }
    }
}

/// A chat message the Zoom side accepted, as the channel shows it now.
#[derive(Debug, Clone, Serialize)]
pub struct SimMessage {
    /// The id Zoom answered, the handle for edits and replies.
    pub message_id: String,
    /// The channel it was posted to.
    pub to_jid: String,
    /// `content` as last set.
    pub content: serde_json::Value,
    /// `content` as first posted, before any edit.
    pub first_content: serde_json::Value,
    /// The message this one answers in a thread, if any.
    pub reply_to: Option<String>,
    /// Simulated second of the post.
    pub posted_at: f64,
    /// Simulated seconds of each edit, oldest first, with the content it set.
    pub edits: Vec<(f64, serde_json::Value)>,
}

/// Whether a [`ChannelEvent`] is a new message or a change to one.
#[derive(Debug, Clone, Serialize)]
pub enum ChannelEventKind {
    /// A message was sent.
    Posted,
    /// A message's content was replaced.
    Edited,
}

/// One post or edit as it happens, for live printouts and tests that wait for messages.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelEvent {
    /// Post or edit.
    pub kind: ChannelEventKind,
    /// The channel concerned.
    pub to_jid: String,
    /// The message posted or edited.
    pub message_id: String,
    /// The content the message shows from now on.
    pub content: serde_json::Value,
    /// Simulated second it happened.
    pub at: f64,
}

/// Counters a test or benchmark reads to check how hard bbzoom worked the services.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    /// Requests to the Bitbucket side, errors included.
    pub bitbucket_requests: u64,
    /// Chat calls (send and edit) to the Zoom side, errors included.
    pub zoom_requests: u64,
    /// Requests to the Zoom token endpoint.
    pub zoom_token_requests: u64,
    /// Chat calls answered with a 4xx.
    pub zoom_rejected: u64,
    /// Messages sent successfully.
    pub posts: u64,
    /// Messages edited successfully.
    pub edits: u64,
}

/// A running simulator. It owns the server task: dropping it or calling [`Simulator::shutdown`]
/// stops serving.
pub struct Simulator {
    inner: Arc<Inner>,
    addr: SocketAddr,
    /// `http://127.0.0.1:PORT/`, from which every public URL is derived.
    base: Url,
    /// Dropping this (with the simulator) tells the server to stop; `shutdown` sends on it.
    stop: oneshot::Sender<()>,
    /// The server, which `shutdown` waits for.
    task: JoinHandle<io::Result<()>>,
}

/// What the request handlers share: fixed configuration plus the one lock on mutable state.
struct Inner {
    scenario: Scenario,
    options: SimOptions,
    clock: clock::Clock,
    /// `http://127.0.0.1:PORT` without a trailing slash: the prefix of every link in answers.
    origin: String,
    events: broadcast::Sender<ChannelEvent>,
    state: Mutex<State>,
}

/// Everything that changes while the simulator runs. Never held across an `.await`.
#[derive(Default)]
struct State {
    stats: SimStats,
    /// Zoom access tokens issued, each with the real instant it expires (`None`: never, for a
    /// lifetime too long to represent).
    tokens: HashMap<String, Option<Instant>>,
    /// Chat calls still to be failed with 503.
    failures_pending: u32,
    /// Every accepted message, all channels together, in posting order.
    messages: Vec<SimMessage>,
    /// Message id to its index in `messages`.
    by_id: HashMap<String, usize>,
}

impl Inner {
    /// The state lock. A handler that panicked cannot leave the state half-updated in a way that
    /// matters to a simulator, so a poisoned lock is used as is rather than failing every
    /// later request.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively,
/// as HTTP says), or `None` when the header is missing or uses another scheme.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Simulator {
    /// Serves on 127.0.0.1 with an OS-chosen port. Simulated time starts now.
    pub async fn start(scenario: Scenario, options: SimOptions) -> io::Result<Simulator> {
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "simulator speed must be a positive number, not {}",
                    options.speed
                ),
            ));
        }
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let base =
            Url::parse(&origin).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let inner = Arc::new(Inner {
            clock: clock::Clock::new(options.speed),
            scenario,
            options,
            origin,
            events,
            state: Mutex::default(),
        });
        let app = bitbucket::routes()
            .merge(zoom::routes())
            .with_state(Arc::clone(&inner));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                // Either a send or the sender's drop ends the wait.
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::debug!(%addr, "simulator serving");
        Ok(Simulator {
            inner,
            addr,
            base,
            stop,
            task,
        })
    }

    /// The loopback address served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    /// Base of the Bitbucket REST API, `http://127.0.0.1:PORT/2.0`.
    pub fn bitbucket_api_url(&self) -> Url {
        self.url("/2.0")
    }

    /// Base of Bitbucket's web pages, `http://127.0.0.1:PORT` (repositories at `{web}/{ws}/{slug}`).
    pub fn bitbucket_web_url(&self) -> Url {
        self.url("")
    }

    /// Zoom's token endpoint, `http://127.0.0.1:PORT/oauth/token`.
    pub fn zoom_oauth_url(&self) -> Url {
        self.url("/oauth/token")
    }

    /// Base of Zoom's REST API, `http://127.0.0.1:PORT/v2`.
    pub fn zoom_api_url(&self) -> Url {
        self.url("/v2")
    }

    /// The options it was started with.
    pub fn options(&self) -> &SimOptions {
        &self.inner.options
    }

    /// The scenario it plays.
    pub fn scenario(&self) -> &Scenario {
        &self.inner.scenario
    }

    /// Current simulated second since start.
    pub fn now(&self) -> f64 {
        self.inner.clock.now()
    }

    /// What a channel shows now, in posting order.
    pub fn channel(&self, to_jid: &str) -> Vec<SimMessage> {
        let state = self.inner.lock();
        state
            .messages
            .iter()
            .filter(|m| m.to_jid == to_jid)
            .cloned()
            .collect()
    }

    /// Every post and edit as it happens (for the demo's live printout).
    pub fn subscribe(&self) -> broadcast::Receiver<ChannelEvent> {
        self.inner.events.subscribe()
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.inner.lock().stats.clone()
    }

    /// The next `n` Zoom chat API calls (send/edit) answer 503.
    pub fn fail_next_zoom_calls(&self, n: u32) {
        self.inner.lock().failures_pending = n;
    }

    /// Every Zoom access token issued so far becomes invalid (answers 401 code 124).
    pub fn revoke_zoom_tokens(&self) {
        self.inner.lock().tokens.clear();
    }

    /// Stops serving: refuses new connections, lets requests in flight finish for a short grace
    /// period, then cuts off whatever is left.
    pub async fn shutdown(self) {
        let Simulator { stop, task, .. } = self;
        let _ = stop.send(());
        let abort = task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_serving_without_waiting_on_idle_connections() {
        let sim = Simulator::start(Scenario { repos: vec![] }, SimOptions::default())
            .await
            .expect("simulator starts");
        let url = sim.zoom_oauth_url();
        let client = reqwest::Client::new();
        let answer = client.post(url.clone()).send().await.expect("serving");
        assert_eq!(answer.status().as_u16(), 401);
        // The client keeps that connection alive in its pool; shutdown must not wait for it.
        let started = Instant::now();
        sim.shutdown().await;
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(client.post(url).send().await.is_err());
    }

    #[tokio::test]
    async fn refuses_a_speed_that_is_not_positive() {
        let options = SimOptions {
            speed: 0.0,
            ..SimOptions::default()
        };
        let refused = Simulator::start(Scenario { repos: vec![] }, options).await;
        assert!(refused.is_err_and(|e| e.kind() == io::ErrorKind::InvalidInput));
    }
}
