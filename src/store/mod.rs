//! The store: sled on disk, holding what bbzoom knows between polls and across restarts.
//!
//! Trees: `repos` (polling cursor per repository), `builds` (last state per build), `health`
//! (last result per lane, for "fixed"), `outbox` (notifications not yet delivered, per channel
//! in sequence order), `messages` (the card each channel shows for a build, for edits),
//! `dead_letters`, and `meta` (schema version, when watching each repository began).
//!
//! Invariant 3: a poll's transitions and the notifications they cause are written in ONE
//! transaction, flushed to disk before it returns, so before anything is sent. An outbox row is
//! removed only after Zoom accepted it, so a crash repeats at most the row in flight.

mod records;

use crate::config::SourceKind;
use crate::detect::Health;
use crate::domain::{BranchTip, BuildKey, BuildState, BuildStatus, EventKind, RepoId};
use records::*;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::BTreeMap;
use std::path::Path;

pub use records::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "store record is unreadable ({0}); the state directory may come from another bbzoom version"
    )]
    Corrupt(String),
    #[error(
        "the state directory holds schema version {found}, this bbzoom understands {SCHEMA_VERSION}"
    )]
    Schema { found: u32 },
}

/// Where polling of one repository stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoCursor {
    /// Highest build number recorded (pipelines).
    pub high_water: u64,
    /// Ids of builds last seen unfinished.
    pub active: Vec<String>,
    /// The commit at the tip of each watched branch (statuses).
    pub branch_tips: BTreeMap<String, String>,
    /// Commits whose statuses are still read each poll (statuses).
    pub followed: Vec<Followed>,
    /// The source this cursor was made by: a cursor of the other one means nothing.
    pub source: Option<SourceKind>,
}

/// A commit a statuses source keeps reading: its branch tip and until when at least.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub tip: BranchTip,
    /// Wall-clock Unix milliseconds until which the commit is read even when quiet, because
    /// external CI posts late.
    pub settle_until_ms: i64,
}

/// What the store remembers of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuild {
    pub state: BuildState,
    /// The source's last update time (see [`BuildStatus::revision`]).
    pub revision: i64,
}

/// A notification to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub event: EventKind,
    pub build: BuildStatus,
}

/// Everything one poll of one repository learnt, committed at once.
#[derive(Debug, Clone)]
pub struct PollUpdate {
    pub repo: RepoId,
    pub cursor: RepoCursor,
    /// New states of builds that changed.
    pub builds: Vec<(BuildKey, StoredBuild)>,
    /// New health of lanes (branch and job, see [`BuildStatus::lane`]) a finished build settled.
    pub health: Vec<(String, Health)>,
    pub notifications: Vec<Notification>,
}

/// An outbox row as the delivery worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Sequence number: rows of a channel are delivered in this order.
    pub seq: u64,
    pub channel: String,
    pub event: EventKind,
    pub build: BuildStatus,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    /// When the row was queued (wall-clock Unix milliseconds), for giving up after a maximum age.
    pub enqueued_ms: i64,
}

/// What the store holds of one repository, for `bbzoom status`.
#[derive(Debug, Clone, Default)]
pub struct RepoSummary {
    /// Each lane (branch and job) with the health of its last finished build.
    pub lanes: Vec<(String, Health)>,
    /// Builds recorded, and how many of them have not finished.
    pub builds: usize,
    pub unfinished: usize,
    /// The state observed last, and when (Unix milliseconds).
    pub last: Option<(BuildState, i64)>,
}

/// A dead letter as `bbzoom` lists it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub row: OutboxRow,
    pub reason: String,
    pub dead_ms: i64,
}

/// Handle to the store; cheap to clone (sled trees are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    repos: sled::Tree,
    builds: sled::Tree,
    health: sled::Tree,
    outbox: sled::Tree,
    dead: sled::Tree,
    meta: sled::Tree,
    messages: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking the schema version.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let meta = db.open_tree(META)?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                meta.flush()?;
            }
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema version".into()))?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
            }
        }
        Ok(Store {
            repos: db.open_tree(REPOS)?,
            builds: db.open_tree(BUILDS)?,
            health: db.open_tree(HEALTH)?,
            outbox: db.open_tree(OUTBOX)?,
            dead: db.open_tree(DEAD)?,
            messages: db.open_tree(MESSAGES)?,
            meta,
            db,
        })
    }

    /// As [`Store::open`], but waits up to `patience` while another process holds the store's
    /// lock: `bbzoom status` or `dead-letters` read it briefly when no daemon answers them.
    pub fn open_waiting(dir: &Path, patience: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::open(dir) {
                // sled 0.34 reports a held lock only in its message (config.rs).
                Err(StoreError::Sled(sled::Error::Io(e)))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                result => return result,
            }
        }
    }

    /// When bbzoom started watching `repo` through `source` (Unix milliseconds): `now_ms` the
    /// first time it is asked, the same answer ever after, until it is asked with another
    /// source (the subscription's `source` changed): then watching begins again at `now_ms`,
    /// since what the new source already holds is history, not news. Builds created before
    /// the answer are history.
    pub fn watching_since(
        &self,
        repo: &RepoId,
        source: SourceKind,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let key = since_key(repo);
        let fresh = encode_since(now_ms, source.name());
        loop {
            let current = self.meta.get(&key)?;
            if let Some(bytes) = &current {
                let (since, watched) = decode_since(bytes)
                    .ok_or_else(|| StoreError::Corrupt("watching-since time".into()))?;
                let same = match watched {
                    Some(name) => name == source.name(),
                    // Recorded before the source was kept with it: the cursor's tells, if any.
                    None => self
                        .cursor(repo)?
                        .and_then(|cursor| cursor.source)
                        .is_none_or(|watched| watched == source),
                };
                if same {
                    if watched.is_none() {
                        // Kept with its source from now on, so the cursor is read only once.
                        let tagged = encode_since(since, source.name());
                        let _ = self.meta.compare_and_swap(&key, current, Some(tagged))?;
                    }
                    return Ok(since);
                }
            }
            if self
                .meta
                .compare_and_swap(&key, current, Some(fresh.clone()))?
                .is_ok()
            {
                self.meta.flush()?;
                return Ok(now_ms);
            }
        }
    }

    /// Where polling of `repo` stands; `None` for a repository never polled (to be baselined).
    pub fn cursor(&self, repo: &RepoId) -> Result<Option<RepoCursor>, StoreError> {
        let record: Option<RepoRecord> = get(&self.repos, &repo_key(repo))?;
        Ok(record.map(|r| {
            let source = recorded_source(&r);
            RepoCursor {
                high_water: r.high_water,
                active: r.active,
                branch_tips: r.branch_tips,
                followed: r
                    .followed
                    .into_iter()
                    .map(|f| Followed {
                        tip: BranchTip {
                            branch: f.branch,
                            commit: f.commit,
                            message: f.message,
                            author: f.author,
                        },
                        settle_until_ms: f.settle_until_ms,
                    })
                    .collect(),
                source,
            }
        }))
    }

    /// The last recorded state of a build.
    pub fn build(&self, key: &BuildKey) -> Result<Option<StoredBuild>, StoreError> {
        let record: Option<BuildRecord> = get(&self.builds, &build_key(key))?;
        Ok(record.map(|r| StoredBuild {
            state: r.state,
            revision: r.revision,
        }))
    }

    /// The health of a lane (branch and job), if a finished build ever settled it.
    pub fn health(&self, repo: &RepoId, lane: &str) -> Result<Option<Health>, StoreError> {
        Ok(self
            .health
            .get(health_key(repo, lane))?
            .and_then(|b| decode_health(&b)))
    }

    /// Writes one poll's findings in one transaction and flushes it to disk (invariant 3).
    pub fn commit_poll(&self, update: &PollUpdate, now_ms: i64) -> Result<(), StoreError> {
        let cursor = &update.cursor;
        let repo = encode(&RepoRecord {
            high_water: cursor.high_water,
            active: cursor.active.clone(),
            branch_tips: cursor.branch_tips.clone(),
            followed: cursor
                .followed
                .iter()
                .map(|f| FollowedRecord {
                    branch: f.tip.branch.clone(),
                    commit: f.tip.commit.clone(),
                    message: f.tip.message.clone(),
                    author: f.tip.author.clone(),
                    settle_until_ms: f.settle_until_ms,
                })
                .collect(),
            source: cursor.source.map(|source| source.name().to_owned()),
        })?;
        let builds = update
            .builds
            .iter()
            .map(|(key, build)| {
                let record = BuildRecord {
                    state: build.state.clone(),
                    revision: build.revision,
                    observed_ms: now_ms,
                };
                Ok((build_key(key), encode(&record)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = update
            .notifications
            .iter()
            .map(|n| {
                let record = OutboxRecord {
                    channel: n.channel.clone(),
                    event: n.event,
                    build: n.build.clone(),
                    enqueued_ms: now_ms,
                    attempts: 0,
                    next_attempt_ms: now_ms,
                };
                Ok((n.channel.as_str(), encode(&record)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let result: Result<(), TransactionError<StoreError>> =
            (&self.repos, &self.builds, &self.health, &self.outbox).transaction(
                |(repos, builds_tx, health, outbox)| {
                    repos.insert(repo_key(&update.repo), repo.as_slice())?;
                    for (key, value) in &builds {
                        builds_tx.insert(key.as_slice(), value.as_slice())?;
                    }
                    for (lane, h) in &update.health {
                        health.insert(health_key(&update.repo, lane), &encode_health(*h))?;
                    }
                    for (channel, value) in &rows {
                        let seq = outbox.generate_id()?;
                        outbox.insert(outbox_key(channel, seq), value.as_slice())?;
                    }
                    repos.flush();
                    Ok::<(), ConflictableTransactionError<StoreError>>(())
                },
            );
        result.map_err(transaction_error)
    }

    /// Every row waiting for `channel`, in delivery order, due or not.
    pub fn outbox(&self, channel: &str) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox
            .scan_prefix(outbox_prefix(channel))
            .map(|entry| {
                let (key, value) = entry?;
                to_row(&key, &decode::<OutboxRecord>(&value)?)
            })
            .collect()
    }

    /// Zoom accepted `rows` (several when folded or superseded): remove them and, when a card
    /// was posted, remember its message id for later edits, in one flushed transaction, so
    /// none is ever sent again.
    pub fn complete(
        &self,
        rows: &[OutboxRow],
        card: Option<(&BuildKey, &str)>,
    ) -> Result<(), StoreError> {
        let result: Result<(), TransactionError<StoreError>> = (&self.outbox, &self.messages)
            .transaction(|(outbox, messages)| {
                for row in rows {
                    outbox.remove(outbox_key(&row.channel, row.seq))?;
                }
                if let (Some((build, message_id)), Some(row)) = (card, rows.first()) {
                    messages.insert(message_key(&row.channel, build), message_id.as_bytes())?;
                }
                outbox.flush();
                Ok(())
            });
        result.map_err(transaction_error)
    }

    /// The message id of the card `channel` shows for `build`, if one was posted.
    pub fn card_message(
        &self,
        channel: &str,
        build: &BuildKey,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .messages
            .get(message_key(channel, build))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The card was deleted in Zoom: forget it, so the next event posts a new one.
    pub fn forget_card_message(&self, channel: &str, build: &BuildKey) -> Result<(), StoreError> {
        self.messages.remove(message_key(channel, build))?;
        self.messages.flush()?;
        Ok(())
    }

    /// A delivery attempt of `row` failed transiently: record it and when to try next.
    pub fn reschedule(&self, row: &OutboxRow, next_attempt_ms: i64) -> Result<(), StoreError> {
        let key = outbox_key(&row.channel, row.seq);
        if let Some(value) = self.outbox.get(&key)? {
            let mut record: OutboxRecord = decode(&value)?;
            record.attempts += 1;
            record.next_attempt_ms = next_attempt_ms;
            self.outbox.insert(key, encode(&record)?)?;
            self.outbox.flush()?;
        }
        Ok(())
    }

    /// Zoom refused `row` for good: move it to the dead letters, in one transaction.
    pub fn dead_letter(
        &self,
        row: &OutboxRow,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = outbox_key(&row.channel, row.seq);
        let result: Result<(), TransactionError<StoreError>> = (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                if let Some(value) = outbox.remove(key.as_slice())? {
                    let row: OutboxRecord =
                        decode(&value).map_err(ConflictableTransactionError::Abort)?;
                    let record = encode(&DeadRecord {
                        row,
                        reason: reason.to_owned(),
                        dead_ms: now_ms,
                    })
                    .map_err(ConflictableTransactionError::Abort)?;
                    dead.insert(key.as_slice(), record)?;
                }
                outbox.flush();
                Ok(())
            });
        result.map_err(transaction_error)
    }

    /// Puts dead letter `seq` back in its channel's outbox, due now with no attempts counted.
    /// Returns whether there was one.
    pub fn retry_dead_letter(&self, seq: u64, now_ms: i64) -> Result<bool, StoreError> {
        let Some(key) = self.dead_key(seq)? else {
            return Ok(false);
        };
        let result: Result<(), TransactionError<StoreError>> = (&self.dead, &self.outbox)
            .transaction(|(dead, outbox)| {
                if let Some(value) = dead.remove(&key)? {
                    let mut row = decode::<DeadRecord>(&value)
                        .map_err(ConflictableTransactionError::Abort)?
                        .row;
                    row.attempts = 0;
                    row.next_attempt_ms = now_ms;
                    row.enqueued_ms = now_ms;
                    outbox.insert(
                        &key,
                        encode(&row).map_err(ConflictableTransactionError::Abort)?,
                    )?;
                }
                outbox.flush();
                Ok(())
            });
        result.map_err(transaction_error)?;
        Ok(true)
    }

    /// Drops dead letter `seq` for good. Returns whether there was one.
    pub fn drop_dead_letter(&self, seq: u64) -> Result<bool, StoreError> {
        let Some(key) = self.dead_key(seq)? else {
            return Ok(false);
        };
        self.dead.remove(key)?;
        self.dead.flush()?;
        Ok(true)
    }

    fn dead_key(&self, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        for entry in self.dead.iter() {
            let (key, _) = entry?;
            if key.ends_with(&seq.to_be_bytes()) {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// What is recorded of `repo`, for `status`: each lane's health, and its builds' states.
    pub fn repo_summary(&self, repo: &RepoId) -> Result<RepoSummary, StoreError> {
        let mut prefix = repo_key(repo);
        prefix.push(0);
        let lanes = self
            .health
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry?;
                let lane = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let health = decode_health(&value)
                    .ok_or_else(|| StoreError::Corrupt(format!("health of {repo} {lane}")))?;
                Ok((lane, health))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut summary = RepoSummary {
            lanes,
            ..RepoSummary::default()
        };
        for entry in self.builds.scan_prefix(&prefix) {
            let (_, value) = entry?;
            let record: BuildRecord = decode(&value)?;
            summary.builds += 1;
            if !record.state.is_finished() {
                summary.unfinished += 1;
            }
            if summary
                .last
                .as_ref()
                .is_none_or(|(_, at)| record.observed_ms > *at)
            {
                summary.last = Some((record.state, record.observed_ms));
            }
        }
        Ok(summary)
    }

    /// Rows waiting in the outbox, by channel: including channels no longer configured, whose
    /// rows wait for a channel of that name to come back.
    pub fn outbox_depths(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut depths = BTreeMap::new();
        for key in self.outbox.iter().keys() {
            let key = key?;
            let channel = key.split(|&b| b == 0).next().unwrap_or_default();
            *depths
                .entry(String::from_utf8_lossy(channel).into_owned())
                .or_default() += 1;
        }
        Ok(depths)
    }

    /// Rows waiting in the outbox, all channels.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Every dead letter, oldest first per channel.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let record: DeadRecord = decode(&value)?;
                Ok(DeadLetter {
                    row: to_row(&key, &record.row)?,
                    reason: record.reason,
                    dead_ms: record.dead_ms,
                })
            })
            .collect()
    }

    /// Forgets finished builds observed before `cutoff_ms`; returns how many.
    pub fn prune_finished_builds(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self.builds.iter() {
            let (key, value) = entry?;
            let record: BuildRecord = decode(&value)?;
            if record.state.is_finished() && record.observed_ms < cutoff_ms {
                // Only if unchanged since read: a poll may have just recorded a rerun.
                if self
                    .builds
                    .compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?
                    .is_ok()
                {
                    pruned += 1;
                }
            }
        }
        self.builds.flush()?;
        Ok(pruned)
    }

    /// Flushes everything written so far; called once more on shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn transaction_error(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

fn to_row(key: &[u8], record: &OutboxRecord) -> Result<OutboxRow, StoreError> {
    let seq = key
        .len()
        .checked_sub(8)
        .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("outbox key".into()))?;
    Ok(OutboxRow {
        seq,
        channel: record.channel.clone(),
        event: record.event,
        build: record.build.clone(),
        attempts: record.attempts,
        next_attempt_ms: record.next_attempt_ms,
        enqueued_ms: record.enqueued_ms,
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(&v)).transpose()
}

/// The source a cursor record belongs to: as written, or for a record written before it was
/// kept, as its shape shows (branch tips are statuses', build numbers pipelines').
fn recorded_source(record: &RepoRecord) -> Option<SourceKind> {
    let shape = if !record.branch_tips.is_empty() || !record.followed.is_empty() {
        Some(SourceKind::Statuses)
    } else if record.high_water > 0 || !record.active.is_empty() {
        Some(SourceKind::Pipelines)
    } else {
        None
    };
    match &record.source {
        Some(name) => SourceKind::from_name(name),
        None => shape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;

    fn stored(build: &BuildStatus) -> StoredBuild {
        StoredBuild {
            state: build.state.clone(),
            revision: build.revision,
        }
    }

    fn status(repo: &RepoId, id: &str, state: BuildState) -> BuildStatus {
        BuildStatus {
            key: BuildKey {
                repo: repo.clone(),
                id: id.into(),
            },
            job: "pipeline".into(),
            name: "Pipeline".into(),
            number: Some(1),
            revision: 0,
            branch: Some("main".into()),
            commit: None,
            commit_message: None,
            author: None,
            state,
            duration_secs: None,
            created_ms: 0,
            url: "https://bitbucket.org/a/b/pipelines/results/1".into(),
            commit_url: None,
            branch_url: None,
        }
    }

    #[test]
    fn a_poll_commits_atomically_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoId::new("acme", "api");
        let done = status(&repo, "{1}", BuildState::Completed(Outcome::Failed));
        let update = PollUpdate {
            repo: repo.clone(),
            cursor: RepoCursor {
                high_water: 7,
                active: vec!["{2}".into()],
                branch_tips: [("main".to_owned(), "c0ffee".to_owned())].into(),
                followed: vec![Followed {
                    tip: BranchTip {
                        branch: "main".into(),
                        commit: "c0ffee".into(),
                        message: Some("Fix it".into()),
                        author: None,
                    },
                    settle_until_ms: 600_000,
                }],
                source: Some(SourceKind::Statuses),
            },
            builds: vec![(done.key.clone(), stored(&done))],
            health: vec![("main\0pipeline".into(), Health::Failing)],
            notifications: vec![
                Notification {
                    channel: "ci".into(),
                    event: EventKind::Failed,
                    build: done.clone(),
                },
                Notification {
                    channel: "ops".into(),
                    event: EventKind::Failed,
                    build: done.clone(),
                },
            ],
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store.commit_poll(&update, 1_000).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.cursor(&repo).unwrap(), Some(update.cursor.clone()));
        let depths = store.outbox_depths().unwrap();
        assert_eq!(depths, [("ci".to_owned(), 1), ("ops".to_owned(), 1)].into());
        let summary = store.repo_summary(&repo).unwrap();
        assert_eq!(
            summary.lanes,
            vec![("main\0pipeline".to_owned(), Health::Failing)]
        );
        assert_eq!((summary.builds, summary.unfinished), (1, 0));
        assert_eq!(
            summary.last,
            Some((BuildState::Completed(Outcome::Failed), 1_000))
        );
        let other = store.repo_summary(&RepoId::new("acme", "web")).unwrap();
        assert_eq!((other.builds, other.lanes.len()), (0, 0));
        assert_eq!(store.build(&done.key).unwrap(), Some(stored(&done)));
        assert_eq!(
            store.health(&repo, "main\0pipeline").unwrap(),
            Some(Health::Failing)
        );
        let row = store.outbox("ci").unwrap().remove(0);
        assert_eq!(
            (row.event, &row.build, row.attempts),
            (EventKind::Failed, &done, 0)
        );
        store.reschedule(&row, 5_000).unwrap();
        let again = store.outbox("ci").unwrap().remove(0);
        assert_eq!(
            (again.seq, again.attempts, again.next_attempt_ms),
            (row.seq, 1, 5_000)
        );
        store
            .complete(&[again], Some((&done.key, "MSG-1")))
            .unwrap();
        assert_eq!(store.outbox("ci").unwrap(), vec![]);
        assert_eq!(
            store.card_message("ci", &done.key).unwrap().as_deref(),
            Some("MSG-1")
        );
        assert_eq!(store.card_message("ops", &done.key).unwrap(), None);
        let ops = store.outbox("ops").unwrap().remove(0);
        store
            .dead_letter(&ops, "HTTP 403, code 7004", 9_000)
            .unwrap();
        assert_eq!(store.outbox_len(), 0);
        let dead = store.dead_letters().unwrap();
        assert_eq!(
            (
                dead.len(),
                dead[0].reason.as_str(),
                dead[0].row.channel.as_str()
            ),
            (1, "HTTP 403, code 7004", "ops")
        );
        // Back to the outbox from the CLI, then dropped for good after a second death.
        assert!(store.retry_dead_letter(ops.seq, 10_000).unwrap());
        let retried = store.outbox("ops").unwrap().remove(0);
        assert_eq!(
            (retried.seq, retried.attempts, retried.next_attempt_ms),
            (ops.seq, 0, 10_000)
        );
        store.dead_letter(&retried, "again", 11_000).unwrap();
        assert!(store.drop_dead_letter(ops.seq).unwrap());
        assert!(!store.drop_dead_letter(ops.seq).unwrap());
        assert!(store.dead_letters().unwrap().is_empty());
    }

    #[test]
    fn watching_begins_once_per_source_and_again_when_the_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoId::new("acme", "api");
        let (pipelines, statuses) = (SourceKind::Pipelines, SourceKind::Statuses);
        assert_eq!(store.watching_since(&repo, pipelines, 100).unwrap(), 100);
        assert_eq!(store.watching_since(&repo, pipelines, 200).unwrap(), 100);
        // The subscription now reads statuses: watching begins again, once.
        assert_eq!(store.watching_since(&repo, statuses, 300).unwrap(), 300);
        assert_eq!(store.watching_since(&repo, statuses, 400).unwrap(), 300);
        // A value written before the source was kept with it goes to the first source asking
        // while the repository has no cursor to tell which it was, and is kept with it...
        let legacy = |store: &Store| {
            store
                .meta
                .insert(since_key(&repo), &50_i64.to_be_bytes())
                .unwrap()
        };
        legacy(&store);
        assert_eq!(store.watching_since(&repo, statuses, 500).unwrap(), 50);
        assert_eq!(store.watching_since(&repo, pipelines, 600).unwrap(), 600);
        // ... and to the source its cursor's shape shows (branch tips: statuses) otherwise.
        legacy(&store);
        let update = PollUpdate {
            repo: repo.clone(),
            cursor: RepoCursor {
                branch_tips: [("main".to_owned(), "c0ffee".to_owned())].into(),
                ..RepoCursor::default()
            },
            builds: vec![],
            health: vec![],
            notifications: vec![],
        };
        store.commit_poll(&update, 700).unwrap();
        assert_eq!(store.cursor(&repo).unwrap().unwrap().source, Some(statuses));
        assert_eq!(store.watching_since(&repo, statuses, 800).unwrap(), 50);
        assert_eq!(store.watching_since(&repo, pipelines, 900).unwrap(), 900);
    }

    #[test]
    fn a_store_of_another_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree(META)
                .unwrap()
                .insert(SCHEMA_KEY, &99u32.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Schema { found: 99 })
        ));
    }

    #[test]
    fn pruning_forgets_only_old_finished_builds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoId::new("acme", "api");
        let old_done = status(&repo, "{old}", BuildState::Completed(Outcome::Successful));
        let old_running = status(&repo, "{run}", BuildState::Running);
        let update = PollUpdate {
            repo: repo.clone(),
            cursor: RepoCursor::default(),
            builds: vec![
                (old_done.key.clone(), stored(&old_done)),
                (old_running.key.clone(), stored(&old_running)),
            ],
            health: vec![],
            notifications: vec![],
        };
        store.commit_poll(&update, 1_000).unwrap();
        let recent = status(&repo, "{new}", BuildState::Completed(Outcome::Failed));
        store
            .commit_poll(
                &PollUpdate {
                    builds: vec![(recent.key.clone(), stored(&recent))],
                    ..update
                },
                50_000,
            )
            .unwrap();

        assert_eq!(store.prune_finished_builds(10_000).unwrap(), 1);
        assert_eq!(store.build(&old_done.key).unwrap(), None);
        assert!(store.build(&old_running.key).unwrap().is_some());
        assert!(store.build(&recent.key).unwrap().is_some());
    }

    #[tokio::test]
    async fn the_housekeeping_job_runs_on_its_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoId::new("acme", "api");
        let done = status(&repo, "{old}", BuildState::Completed(Outcome::Successful));
        let update = PollUpdate {
            repo,
            cursor: RepoCursor::default(),
            builds: vec![(done.key.clone(), stored(&done))],
            health: vec![],
            notifications: vec![],
        };
        store.commit_poll(&update, 1_000).unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let job = tokio::spawn(crate::housekeeping::run(
            store.clone(),
            "* * * * * *",
            std::time::Duration::from_secs(1),
            shutdown,
        ));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.build(&done.key).unwrap().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the every-second job never pruned"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        trigger.trigger();
        job.await.unwrap().unwrap();
    }
}
