//! The integration tests, one binary: each module drives the real `bbzoom` (library, binary or
//! both) against the simulator over loopback, with a real sled store on disk.
//!
//! One binary instead of one per file, so the crate and its dependencies link once; the test
//! harness runs the modules' tests in parallel like any others.

mod common;

mod bitbucket;
mod budget;
mod chat;
mod chat_admin;
mod check;
mod cli;
mod config;
mod connect;
mod control;
mod crash;
mod delivery;
mod people;
mod preview;
mod scan;
mod scenario;
mod schedules;
mod soak;
mod store;
mod subscriptions;
mod systemd;
mod zoom;
