//! bbzoom: Bitbucket build results in Zoom Team Chat, for networks that block inbound traffic.
//!
//! bbzoom never listens for webhooks. It polls Bitbucket, records every build's state in a sled
//! store, decides which changes are worth telling and delivers them to Zoom from a durable outbox.
//!
//! # Crate map
//!
//! The data path runs one way, top to bottom:
//!
//! - [`config`]: the admin's TOML file, validated into a [`config::Config`].
//! - [`credentials`]: the age-encrypted credentials file, decrypted into secrets.
//! - [`scheduler`]: one per credential: adaptive polling (hot, warm, cold) within its budget.
//! - [`poller`]: one poll of one repository, for each source (pipelines, Cloud and Data Center
//!   statuses).
//! - [`bitbucket`]: Bitbucket Cloud and Data Center clients (wire types stay inside), speaking
//!   through one account (limiter, pause, auth) per credential.
//! - [`domain`]: what everything else talks about: builds, states, events.
//! - [`detect`]: pure transition detection and event classification.
//! - [`store`]: sled. A transition and the notifications it causes are one transaction.
//! - [`delivery`]: outbox workers, one per channel, retrying with jittered backoff; they hold
//!   what a [`mute`] covers and send one summary when it ends.
//! - [`war_room`]: a failing lane's meeting (`meeting_on`), created once per failing streak
//!   when its first card is shown.
//! - [`render`]: pure card rendering (chatbot JSON and plain text).
//! - [`zoom`]: the Zoom chatbot client: token cache, rate limiter, error classes; and the
//!   Server-to-Server app of `[zoom.events]` (its WebSocket, list-messages; the account's
//!   users and meetings).
//! - [`chat`]: chat commands over that WebSocket, each handled once, answered by the chatbot.
//! - [`housekeeping`]: cron-shaped jobs (forgetting long-finished builds).
//! - [`daemon`]: wires the above together under one [`shutdown::Shutdown`]; reloads in place.
//! - [`control`]: the Unix control socket `bbzoom status`, `reload` and `dead-letters` use.
//! - [`demo`] (with the default `demo` feature): `bbzoom demo`, the daemon against the
//!   simulator (the `bbzoom-sim` crate of this workspace), with its scoreboard.
//!
//! The ground floor, which everything above may use and which uses nothing above it:
//! [`domain`], [`clock`] (the wall clock and Bitbucket's calendar behind traits), [`schedule`]
//! (Pipelines schedules' cron patterns), [`metrics`] (counters), [`wakeups`] (pollers waking
//! delivery workers), [`shutdown`].
//!
//! Helpers: [`atomic_file`] (replace a file whole or not at all), [`files`] (read the
//! admin's files: regular ones only, bounded), [`glob`] (branch and tag
//! patterns), [`terminal`] (untrusted text made safe for a terminal), [`repo_url`] (repository URLs as people paste them), [`retry`] (backoff with
//! jitter and `Retry-After`), [`http`] (the shared HTTP client), [`sd_notify`] (telling systemd
//! how the daemon is doing).
//!
//! `pub` is what the `bbzoom` binary (`src/cli/`), the integration tests and the benchmark use;
//! everything else is `pub(crate)`, so the compiler names whatever nothing uses.

// These docs are for the engineers of this daemon (`cargo doc --document-private-items`), so
// they link private items freely.
#![allow(rustdoc::private_intra_doc_links)]

#[cfg(test)]
mod arbitrary;
pub mod atomic_file;
pub mod bitbucket;
pub mod chat;
pub mod clock;
pub mod config;
pub mod control;
pub mod credentials;
pub mod daemon;
pub mod delivery;
#[cfg(feature = "demo")]
pub mod demo;
pub mod detect;
pub mod domain;
pub mod files;
pub mod glob;
pub(crate) mod housekeeping;
pub mod http;
pub mod metrics;
pub mod mute;
pub mod poller;
pub mod render;
pub(crate) mod repo_url;
pub mod retry;
pub mod schedule;
pub(crate) mod scheduler;
pub mod sd_notify;
pub mod shutdown;
pub mod store;
pub mod terminal;
pub mod wakeups;
pub mod war_room;
pub mod zoom;
