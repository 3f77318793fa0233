//! Counters the daemon keeps for the log, `status`, the demo's summary and Prometheus:
//! incremented by the pollers and delivery workers, read by whoever reports. With
//! `[daemon] metrics` set, [`serve`] answers `GET /metrics` on that loopback address in the
//! Prometheus text format, from the running daemon's status report and these counters.

use crate::control::{Answer, Envelope, Request, StatusReport};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// What happened since the daemon started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Build state changes recorded (baselines aside).
    pub(crate) transitions: AtomicU64,
    /// Outbox rows Zoom accepted.
    pub(crate) delivered: AtomicU64,
    /// Delivery attempts that failed and will be retried.
    pub delivery_failures: AtomicU64,
    /// Rows moved to the dead letters.
    pub(crate) dead_letters: AtomicU64,
    /// Polls that failed.
    pub poll_errors: AtomicU64,
    /// Workspace scans made (a request or more each) and those that failed.
    pub scans: AtomicU64,
    pub scan_errors: AtomicU64,
    /// Pushes the scans showed (a repository and its `updated_on`, each once).
    pub scan_hints: AtomicU64,
    /// New builds, by what the poll that first saw them was made for: a workspace scan's hint,
    /// the sweep of idle repositories, following a running build, a Pipelines schedule's
    /// run. Shows an admin (and us) what the scan is worth on their Bitbucket.
    pub found_by_scan: AtomicU64,
    pub found_by_sweep: AtomicU64,
    pub found_following: AtomicU64,
    pub found_by_schedule: AtomicU64,
    /// Seconds from a card queued to Zoom accepting it.
    pub(crate) delivery_latency: DeliveryLatency,
}

/// A histogram of delivery latencies, in seconds.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryLatency(Histogram);

impl Default for DeliveryLatency {
    fn default() -> Self {
        // From a card sent at once to one that waited out an outage of an hour.
        DeliveryLatency(Histogram::new([
            0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
        ]))
    }
}

impl DeliveryLatency {
    pub(crate) fn observe(&self, seconds: f64) {
        self.0.observe(seconds.max(0.0));
    }
}

/// The Prometheus text exposition of `report` (the running daemon's status) and `metrics`.
pub fn exposition(report: &StatusReport, metrics: &Metrics) -> String {
    let mut registry = Registry::with_prefix("bbzoom");
    let total = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let counter = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    };
    type Labelled<M> = Family<Vec<(&'static str, String)>, M>;
    let by = |label: &'static str, value: &str| vec![(label, value.to_owned())];

    let (polls, requests, rate_limited, budget_left) = (
        Labelled::<Counter>::default(),
        Labelled::<Counter>::default(),
        Labelled::<Counter>::default(),
        Labelled::<Gauge>::default(),
    );
    for credential in &report.credentials {
        let labels = by("credential", &credential.name);
        polls.get_or_create(&labels).inc_by(credential.polls_total);
        requests
            .get_or_create(&labels)
            .inc_by(credential.requests_total);
        rate_limited
            .get_or_create(&labels)
            .inc_by(credential.rate_limited_total);
        let left = credential
            .budget_limit
            .saturating_sub(credential.requests_in_window as u64);
        budget_left
            .get_or_create(&labels)
            .set(i64::try_from(left).unwrap_or(i64::MAX));
    }
    registry.register("polls", "Polls made, by credential", polls);
    registry.register(
        "bitbucket_requests",
        "Requests sent to Bitbucket, by credential",
        requests,
    );
    registry.register(
        "bitbucket_rate_limited",
        "429 answers from Bitbucket, by credential",
        rate_limited,
    );
    registry.register(
        "budget_left",
        "Requests the credential's budget still allows within its window",
        budget_left,
    );
    counter(
        &mut registry,
        "poll_errors",
        "Polls that failed",
        total(&metrics.poll_errors),
    );
    counter(
        &mut registry,
        "transitions",
        "Build state changes recorded",
        total(&metrics.transitions),
    );
    counter(
        &mut registry,
        "cards_sent",
        "Cards (posts and edits) Zoom accepted",
        total(&metrics.delivered),
    );
    counter(
        &mut registry,
        "delivery_failures",
        "Delivery attempts that failed and are retried",
        total(&metrics.delivery_failures),
    );
    let outbox = Labelled::<Gauge>::default();
    for channel in &report.channels {
        outbox
            .get_or_create(&by("channel", &channel.name))
            .set(i64::try_from(channel.outbox).unwrap_or(i64::MAX));
    }
    registry.register("outbox_depth", "Cards waiting, by channel", outbox);
    let dead_letters: Gauge = Gauge::default();
    dead_letters.set(i64::try_from(report.dead_letters).unwrap_or(i64::MAX));
    registry.register(
        "dead_letters",
        "Cards kept as dead letters (see `bbzoom dead-letters`)",
        dead_letters,
    );
    registry.register_with_unit(
        "delivery_latency",
        "From a card queued to Zoom accepting it",
        prometheus_client::registry::Unit::Seconds,
        metrics.delivery_latency.0.clone(),
    );
    let restarts = Labelled::<Counter>::default();
    for task in &report.task_restarts {
        restarts
            .get_or_create(&by("task", &task.task))
            .inc_by(task.restarts);
    }
    registry.register(
        "task_restarts",
        "Times a task ended unexpectedly and was started again",
        restarts,
    );
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// Answers `GET /metrics` on `listener` (any other path: 404) until the process ends, asking
/// `supervisor` for the daemon's status at each scrape.
pub async fn serve(
    listener: tokio::net::TcpListener,
    supervisor: mpsc::Sender<Envelope>,
    metrics: std::sync::Arc<Metrics>,
) {
    use axum::http::StatusCode;
    use axum::http::header::CONTENT_TYPE;
    let scrape = move || {
        let (supervisor, metrics) = (supervisor.clone(), metrics.clone());
        async move {
            let (reply, answer) = oneshot::channel();
            let report = match supervisor.send((Request::Status, reply)).await {
                Ok(()) => answer.await.ok().and_then(Result::ok),
                Err(_) => None,
            };
            match report {
                Some(Answer::Status(report)) => (
                    StatusCode::OK,
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    exposition(&report, &metrics),
                ),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "bbzoom is stopping\n".to_owned(),
                ),
            }
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape));
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(%err, "the metrics endpoint stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::TaskRestarts;

    #[test]
    fn task_restarts_show_by_task() {
        let report = StatusReport {
            task_restarts: vec![TaskRestarts {
                task: "scheduler ci".into(),
                restarts: 2,
                last_cause: "panicked: boom".into(),
                last_at_ms: 0,
            }],
            ..StatusReport::default()
        };
        let text = exposition(&report, &Metrics::default());
        assert!(
            text.contains("bbzoom_task_restarts_total{task=\"scheduler ci\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
