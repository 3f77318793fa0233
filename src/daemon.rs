//! The daemon: builds the clients from the configuration and credentials, starts one poller per
//! subscription and one delivery worker per channel, and stops them all on shutdown.

use crate::bitbucket::{CloudClient, RetryPolicy};
use crate::config::Config;
use crate::credentials::{Credential, Credentials};
use crate::delivery::{self, DeliveryContext, Wakeups};
use crate::http;
use crate::poller::{self, PollContext};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::zoom::{AppCredentials, ChatbotClient, ChatbotIdentity};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Counters for the log, `status` and the demo's summary.
#[derive(Debug, Default)]
pub struct Metrics {
    pub transitions: AtomicU64,
    pub delivered: AtomicU64,
    pub delivery_failures: AtomicU64,
    pub dead_letters: AtomicU64,
    pub poll_errors: AtomicU64,
}

/// Delays that tests shorten; the defaults suit production.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub bitbucket_retry: RetryPolicy,
    /// Between delivery attempts of one outbox row.
    pub delivery_backoff: Backoff,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            bitbucket_retry: RetryPolicy::default(),
            delivery_backoff: Backoff {
                base: Duration::from_secs(2),
                max: Duration::from_secs(300),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot start the housekeeping scheduler: {0}")]
    Housekeeping(String),
    #[error(
        "credential \"{name}\" (named by {used_by}) is not in the credentials file; store it there"
    )]
    MissingCredential { name: String, used_by: &'static str },
    #[error("credential \"{name}\" (named by {used_by}) is a {found}, but a {expected} is needed")]
    WrongCredential {
        name: String,
        used_by: &'static str,
        found: &'static str,
        expected: &'static str,
    },
}

/// Runs until `shutdown` triggers, then lets every task finish what it has under way.
pub async fn run(
    config: &Config,
    credentials: &Credentials,
    store: Store,
    tuning: Tuning,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Result<(), DaemonError> {
    let bitbucket = Arc::new(bitbucket_client(config, credentials, tuning)?);
    let zoom = Arc::new(zoom_client(config, credentials)?);
    let wakeups = Arc::new(Wakeups::new(
        config.zoom.channels.keys().map(String::as_str),
    ));

    let mut tasks = tokio::task::JoinSet::new();
    let poll = PollContext {
        client: bitbucket,
        store: store.clone(),
        wakeups: wakeups.clone(),
        metrics: metrics.clone(),
    };
    for subscription in &config.subscriptions {
        tasks.spawn(poller::run(
            poll.clone(),
            subscription.clone(),
            config.daemon.poll_interval,
            shutdown.clone(),
        ));
    }
    let deliver = DeliveryContext {
        store: store.clone(),
        zoom,
        wakeups,
        metrics,
        backoff: tuning.delivery_backoff,
    };
    for channel in config.zoom.channels.values() {
        tasks.spawn(delivery::run(
            deliver.clone(),
            channel.clone(),
            shutdown.clone(),
        ));
    }
    let mut housekeeping = crate::housekeeping::start(
        store.clone(),
        crate::housekeeping::DAILY,
        crate::housekeeping::BUILD_RETENTION,
    )
    .await
    .map_err(|e| DaemonError::Housekeeping(e.to_string()))?;
    tracing::info!(
        subscriptions = config.subscriptions.len(),
        channels = config.zoom.channels.len(),
        "bbzoom running"
    );
    while tasks.join_next().await.is_some() {}
    if let Err(err) = housekeeping.shutdown().await {
        tracing::warn!(%err, "housekeeping scheduler did not stop cleanly");
    }
    if let Err(err) = store.flush() {
        tracing::error!(%err, "final store flush failed");
    }
    tracing::info!("bbzoom stopped");
    Ok(())
}

fn bitbucket_client(
    config: &Config,
    credentials: &Credentials,
    tuning: Tuning,
) -> Result<CloudClient, DaemonError> {
    let name = &config.bitbucket.credential;
    let token = match credentials.get(name) {
        Some(Credential::BitbucketAccessToken { token }) => token.clone(),
        Some(other) => {
            return Err(DaemonError::WrongCredential {
                name: name.clone(),
                used_by: "[bitbucket] credential",
                found: other.kind(),
                expected: "bitbucket_access_token",
            });
        }
        None => {
            return Err(DaemonError::MissingCredential {
                name: name.clone(),
                used_by: "[bitbucket] credential",
            });
        }
    };
    Ok(CloudClient::new(
        http::client(config.daemon.request_timeout),
        config.bitbucket.api_url.clone(),
        config.bitbucket.web_url.clone(),
        token,
        http::budget_limiter(config.bitbucket.rate_limit),
        tuning.bitbucket_retry,
    ))
}

fn zoom_client(config: &Config, credentials: &Credentials) -> Result<ChatbotClient, DaemonError> {
    let bot = &config.zoom.chatbot;
    let app = match credentials.get(&bot.credential) {
        Some(Credential::ZoomChatbot {
            client_id,
            client_secret,
        }) => AppCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        },
        Some(other) => {
            return Err(DaemonError::WrongCredential {
                name: bot.credential.clone(),
                used_by: "[zoom.chatbot] credential",
                found: other.kind(),
                expected: "zoom_chatbot",
            });
        }
        None => {
            return Err(DaemonError::MissingCredential {
                name: bot.credential.clone(),
                used_by: "[zoom.chatbot] credential",
            });
        }
    };
    Ok(ChatbotClient::new(
        http::client(config.daemon.request_timeout),
        config.zoom.oauth_url.clone(),
        config.zoom.api_url.clone(),
        app,
        ChatbotIdentity {
            account_id: bot.account_id.clone(),
            robot_jid: bot.robot_jid.clone(),
            user_jid: bot.user_jid.clone(),
        },
        http::budget_limiter(bot.rate_limit),
    ))
}
