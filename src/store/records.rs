//! How things are laid out in sled: tree names, key encodings and the stored records. Nothing
//! outside `store` sees these (invariant 2); the store converts to and from domain types.

use crate::detect::Health;
use crate::domain::{BuildKey, BuildState, BuildStatus, EventKind, RepoId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a record or key layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const META: &str = "meta";
pub const REPOS: &str = "repos";
pub const BUILDS: &str = "builds";
pub const HEALTH: &str = "health";
pub const OUTBOX: &str = "outbox";
pub const DEAD: &str = "dead_letters";
pub const MESSAGES: &str = "messages";
pub const SCHEMA_KEY: &[u8] = b"schema_version";

/// Per repository: how far polling got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRecord {
    /// Highest build number recorded: anything above it is new.
    pub high_water: u64,
    /// Builds seen unfinished, followed by id until they end.
    pub active: Vec<String>,
    /// Statuses sources: the commit at the tip of each watched branch.
    #[serde(default)]
    pub branch_tips: BTreeMap<String, String>,
    /// Statuses sources: commits whose statuses are still read each poll.
    #[serde(default)]
    pub followed: Vec<FollowedRecord>,
    /// The source the cursor belongs to ("pipelines" or "statuses"); absent in records written
    /// before it was kept.
    #[serde(default)]
    pub source: Option<String>,
}

/// A commit whose statuses are still read, and until when at least.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowedRecord {
    pub branch: String,
    pub commit: String,
    pub message: Option<String>,
    pub author: Option<String>,
    pub settle_until_ms: i64,
}

/// Per build: the last state recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub state: BuildState,
    /// The source's last update time, to tell an overwrite with the same state.
    #[serde(default)]
    pub revision: i64,
    /// Wall-clock Unix milliseconds of the observation, for housekeeping.
    pub observed_ms: i64,
}

/// A notification waiting to be delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub channel: String,
    pub event: EventKind,
    /// The build as observed when the event happened; the card is rendered from it.
    pub build: BuildStatus,
    pub enqueued_ms: i64,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Not before this wall-clock Unix millisecond (persisted so a restart resumes the backoff).
    pub next_attempt_ms: i64,
}

/// A notification Zoom refused for good, kept for the admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadRecord {
    pub row: OutboxRecord,
    pub reason: String,
    pub dead_ms: i64,
}

/// `instance:owner/slug`: the same path on two instances is two repositories.
pub fn repo_key(repo: &RepoId) -> Vec<u8> {
    format!("{}:{}/{}", repo.instance, repo.owner, repo.slug).into_bytes()
}

/// The card a channel shows for a build: `channel \0 build key`.
pub fn message_key(channel: &str, build: &BuildKey) -> Vec<u8> {
    let mut out = outbox_prefix(channel);
    out.extend_from_slice(&build_key(build));
    out
}

/// Meta key of the time bbzoom started watching a repository.
pub fn since_key(repo: &RepoId) -> Vec<u8> {
    let mut out = b"watching_since\0".to_vec();
    out.extend_from_slice(&repo_key(repo));
    out
}

/// Its value: the time (8 bytes, big-endian Unix milliseconds), then the name of the source
/// watched (absent in values written before it was kept).
pub fn encode_since(since_ms: i64, source: &str) -> Vec<u8> {
    let mut out = since_ms.to_be_bytes().to_vec();
    out.extend_from_slice(source.as_bytes());
    out
}

pub fn decode_since(bytes: &[u8]) -> Option<(i64, Option<&str>)> {
    let (time, source) = bytes.split_first_chunk::<8>()?;
    let source = (!source.is_empty())
        .then(|| std::str::from_utf8(source).ok())
        .map_or(Some(None), |name| name.map(Some))?;
    Some((i64::from_be_bytes(*time), source))
}

pub fn build_key(key: &BuildKey) -> Vec<u8> {
    let mut out = repo_key(&key.repo);
    out.push(0);
    out.extend_from_slice(key.id.as_bytes());
    out
}

pub fn health_key(repo: &RepoId, lane: &str) -> Vec<u8> {
    let mut out = repo_key(repo);
    out.push(0);
    out.extend_from_slice(lane.as_bytes());
    out
}

/// The prefix of every outbox key of `channel`; rows sort by sequence number within it.
pub fn outbox_prefix(channel: &str) -> Vec<u8> {
    let mut out = channel.as_bytes().to_vec();
    out.push(0);
    out
}

pub fn outbox_key(channel: &str, seq: u64) -> Vec<u8> {
    let mut out = outbox_prefix(channel);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Health is stored as one byte.
pub fn encode_health(health: Health) -> [u8; 1] {
    [match health {
        Health::Passing => b'P',
        Health::Failing => b'F',
    }]
}

pub fn decode_health(bytes: &[u8]) -> Option<Health> {
    match bytes {
        b"P" => Some(Health::Passing),
        b"F" => Some(Health::Failing),
        _ => None,
    }
}
