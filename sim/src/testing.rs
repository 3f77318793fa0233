//! What the simulator's own tests share: starting one, calling it as a client would, and
//! waiting for simulated time to pass.

use super::{Scenario, SimOptions, Simulator};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// How a test request authenticates.
#[derive(Clone, Copy)]
pub(super) enum Auth<'a> {
    /// No `Authorization` header.
    Nothing,
    /// `Bearer <token>`.
    Bearer(&'a str),
    /// HTTP Basic `user:password`.
    Basic(&'a str, &'a str),
}

/// The default credential's token.
pub(super) const TOKEN: &str = "sim-bitbucket-token";

/// An answer, read whole.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
}

impl Answer {
    /// The body as JSON.
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.text).expect("JSON body")
    }

    /// A header's value as text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A simulator playing `scenario`.
pub(super) async fn start(scenario: Scenario, options: SimOptions) -> Simulator {
    Simulator::start(scenario, options)
        .await
        .expect("simulator starts")
}

thread_local! {
    /// One client per test (each test runs on its own thread and runtime): building one per
    /// request takes long enough in debug builds to blur the simulated moments tests look at.
    static CLIENT: reqwest::Client = reqwest::Client::new();
}

/// `GET url`.
pub(super) async fn get(url: &str, auth: Auth<'_>) -> Answer {
    let request = CLIENT.with(|client| client.get(url));
    let request = match auth {
        Auth::Nothing => request,
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
    };
    let response = request.send().await.expect("request goes through");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

/// Sleeps until the simulator's clock reaches simulated second `t`.
pub(super) async fn wait_until(sim: &Simulator, t: f64) {
    while sim.now() < t {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
