//! The store: sled on disk, holding what bbzoom knows between polls and across restarts.
//!
//! Trees: `repos` (polling cursor per repository and source), `builds` (last state per
//! build), `health` (last result per lane, for "fixed"), `outbox` (notifications not yet
//! delivered, per channel in sequence order), `messages` (the card each channel shows for a
//! build, for edits), `dead_letters`, `chat_handled` (chat commands handled, by message id),
//! `chat_cursors` (per command channel, how far its messages were read), `chat_answers`
//! (answers to commands Zoom has not taken yet), `mutes` (per channel, the mutes in force and
//! those ended whose summary is still to send), and `meta` (schema
//! version, when watching each repository through each source began, where each credential's
//! scans of each workspace got to, each repository's Pipelines schedules as last read).
//!
//! Invariant 3: a poll's transitions and the notifications they cause are written in ONE
//! transaction, flushed to disk before it returns, so before anything is sent. An outbox row is
//! removed only after Zoom accepted it, so a crash repeats at most the row in flight.

mod records;

use crate::domain::{
    AuthorIds, BuildKey, BuildRef, BuildState, BuildStatus, EventKind, Health, Lane, Mention,
    RefTip, RepoId, SourceKind, WarRoom,
};
use crate::mute::{Mute, MuteScope};
use records::*;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) use records::{ChatAnswer, LearnedRecord, SCHEMA_VERSION, SchedulesRecord};

/// Most characters of an unreadable row kept with its dead letter, for the admin to look at.
const RAW_KEPT_CHARS: usize = 2000;

/// The file beside sled's own in the state directory that records a clean close.
const SEAL_FILE: &str = "clean-close";

/// The file beside sled's own that marks a store being created: written durably before sled
/// writes its first byte, removed once the schema version is flushed.
const CREATING_FILE: &str = "creating";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("{}: another process holds the store; is another bbzoom running on it?", .dir.display())]
    Locked { dir: PathBuf },
    /// The store cannot be trusted to hold what was written to it. Nothing is opened: running on
    /// would baseline every repository again and drop the cards still queued, without a word.
    #[error(
        "the store in {dir} is damaged ({reason}), so bbzoom will not run on it. To start afresh, \
         stop bbzoom, move the directory aside (`mv {dir} {dir}.damaged`) and start it again: \
         the cards still queued in the old store are not sent, and every repository is baselined \
         again, so builds that ended while bbzoom was down are not announced",
        dir = .dir.display()
    )]
    Damaged { dir: PathBuf, reason: String },
    #[error("{}: cannot make the state directory private: {cause}", .dir.display())]
    Private {
        dir: PathBuf,
        // Not named `source`: the message carries it, and a chain would print it twice.
        cause: std::io::Error,
    },
    #[error(
        "store record is unreadable ({0}); the state directory may come from another bbzoom version"
    )]
    Corrupt(String),
    #[error(
        "the state directory holds schema version {found}, this bbzoom understands {SCHEMA_VERSION}"
    )]
    Schema { found: u32 },
    #[error(
        "dead letter {0} holds a row that could not be read, so it cannot be delivered; drop it with `bbzoom dead-letters drop {0}`"
    )]
    Unreadable(u64),
}

/// Where polling of one repository through one source stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoCursor {
    /// Highest build number recorded (pipelines).
    pub(crate) high_water: u64,
    /// Ids of builds last seen unfinished.
    pub(crate) active: Vec<String>,
    /// The commit at the tip of each watched branch (statuses).
    pub(crate) branch_tips: BTreeMap<String, String>,
    /// The commit each watched tag points at (statuses, when tags are followed).
    pub tag_tips: BTreeMap<String, String>,
    /// Whether the last poll listed tags (statuses): the first listing is a baseline of tags.
    pub tags_listed: bool,
    /// Commits whose statuses are still read each poll (statuses).
    pub(crate) followed: Vec<Followed>,
    /// Outside CI's status keys seen on followed commits (statuses), each with the longest it
    /// took lately, from the commit's being followed to the key's first status on it
    /// (milliseconds): what a new commit's late looks wait for.
    pub(crate) late_keys: BTreeMap<String, i64>,
}

/// A commit a statuses source keeps reading: the branch or tag it was found at, and until
/// when at least.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Followed {
    pub(crate) tip: RefTip,
    /// Wall-clock Unix milliseconds until which the commit is read every poll even when
    /// quiet, because external CI posts late.
    pub(crate) settle_until_ms: i64,
    /// How many more times, after that, it is read now and then (once a settle time at most,
    /// when its repository is polled) for a status posted later still.
    pub(crate) late_looks: u32,
    /// When its statuses were last read.
    pub(crate) read_ms: i64,
    /// When it was first followed (0: before this was recorded, unknown).
    pub(crate) since_ms: i64,
    /// The keys of the outside CI statuses read on it so far, and of those waited for on it
    /// in vain: neither is waited for on it again.
    pub(crate) keys: BTreeSet<String>,
}

/// What the store remembers of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredBuild {
    pub(crate) state: BuildState,
    /// The source's last update time (see [`BuildStatus::revision`]).
    pub(crate) revision: i64,
}

/// A notification to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub(crate) channel: String,
    pub(crate) event: EventKind,
    pub(crate) build: BuildStatus,
    /// Whom the card mentions.
    pub(crate) mention: Option<Mention>,
    /// The war room whose link the card shows.
    pub(crate) war_room: Option<WarRoom>,
}

/// Everything one poll of one repository through one source learnt, committed at once.
#[derive(Debug, Clone)]
pub(crate) struct PollUpdate {
    pub(crate) repo: RepoId,
    pub(crate) source: SourceKind,
    pub(crate) cursor: RepoCursor,
    /// New states of builds that changed.
    pub(crate) builds: Vec<(BuildKey, StoredBuild)>,
    /// New health of lanes a finished build settled.
    pub(crate) health: Vec<(Lane, Health)>,
    pub(crate) notifications: Vec<Notification>,
    /// War rooms: a lane's new failing streak that wants one (`Some`), or a lane fixed,
    /// whose war room is forgotten (`None`), in order.
    pub(crate) meetings: Vec<(Lane, Option<String>)>,
}

/// What the store knows of a failing lane's war room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMeeting {
    /// The failing streak it is for.
    pub(crate) streak: String,
    /// Once created: the meeting's id and join link.
    pub(crate) meeting: Option<(String, String)>,
}

/// An outbox row as the delivery worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Sequence number: rows of a channel are delivered in this order.
    pub(crate) seq: u64,
    pub(crate) channel: String,
    pub event: EventKind,
    pub build: BuildStatus,
    pub(crate) attempts: u32,
    pub(crate) next_attempt_ms: i64,
    /// When the row was queued (wall-clock Unix milliseconds), for giving up after a maximum age.
    pub(crate) enqueued_ms: i64,
    /// When its first delivery attempt failed, if one did.
    pub(crate) first_failed_ms: Option<i64>,
    /// Whom the card mentions (`[people]`).
    pub(crate) mention: Option<Mention>,
    /// The war room whose link the card shows.
    pub(crate) war_room: Option<WarRoom>,
}

/// A channel's outbox as read: the rows in delivery order, and any that could not be read.
#[derive(Debug, Default)]
pub struct Outbox {
    pub rows: Vec<OutboxRow>,
    /// Rows the store holds but cannot decode: the worker moves them to the dead letters so
    /// they never block the channel.
    pub(crate) unreadable: Vec<UnreadableRow>,
}

/// An outbox row that could not be read.
#[derive(Debug, Clone)]
pub(crate) struct UnreadableRow {
    /// Its key in the outbox tree.
    key: sled::IVec,
    pub(crate) channel: String,
    /// Why it could not be read.
    pub(crate) error: String,
}

/// What the store holds of one repository, for `bbzoom status`.
#[derive(Debug, Clone, Default)]
pub struct RepoSummary {
    /// Each lane with the health of its last finished build.
    pub(crate) lanes: Vec<(Lane, Health)>,
    /// Builds recorded, and how many of them have not finished.
    pub builds: usize,
    pub(crate) unfinished: usize,
    /// The state observed last, and when (Unix milliseconds).
    pub(crate) last: Option<(BuildState, i64)>,
}

/// A dead letter as `bbzoom` lists it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its number, the one `bbzoom dead-letters retry|drop` take.
    pub seq: u64,
    pub channel: String,
    /// The row; `None` when it could not be read (it can only be dropped).
    pub row: Option<OutboxRow>,
    /// What the store held instead of a readable row (lossy text, cut), for the admin.
    pub(crate) raw: Option<String>,
    pub reason: String,
    /// When it became a dead letter (Unix milliseconds); `None` if the letter is unreadable.
    pub died_ms: Option<i64>,
}

/// Handle to the store; cheap to clone (sled trees are reference counted).
#[derive(Clone)]
pub struct Store {
    /// Records the clean close when the last handle drops.
    _seal: Arc<Seal>,
    /// The current streak of failed operations the daemon's tasks noted ([`Store::note`]).
    failures: Arc<Failures>,
    db: sled::Db,
    repos: sled::Tree,
    builds: sled::Tree,
    health: sled::Tree,
    outbox: sled::Tree,
    dead: sled::Tree,
    meta: sled::Tree,
    messages: sled::Tree,
    /// Chat commands handled, by message id: a command runs at most once.
    chat_handled: sled::Tree,
    /// Per command channel, how far its messages were read.
    chat_cursors: sled::Tree,
    /// Per channel and scope, its mute.
    mutes: sled::Tree,
    /// Answers to chat commands not yet sent, by the command's message id.
    chat_answers: sled::Tree,
    /// War rooms of failing lanes.
    meetings: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`, checking the schema version and migrating a
    /// store of an older one. The directory is made its owner's only. A store that is damaged
    /// is refused ([`StoreError::Damaged`]), never opened as an empty or a shorter one.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_checked(dir).map_err(|err| match err {
            StoreError::Sled(sled::Error::Corruption { .. }) => StoreError::Damaged {
                dir: dir.to_owned(),
                reason: "sled read corrupted data".into(),
            },
            // sled 0.34 reports a held lock only in its message (config.rs).
            StoreError::Sled(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked {
                    dir: dir.to_owned(),
                }
            }
            other => other,
        })
    }

    fn open_checked(dir: &Path) -> Result<Store, StoreError> {
        let private = |cause| StoreError::Private {
            dir: dir.to_owned(),
            cause,
        };
        let damaged = |reason: String| StoreError::Damaged {
            dir: dir.to_owned(),
            reason,
        };
        create_private_dir(dir).map_err(private)?;
        // sled's log; a store that had one and comes back without its schema version lost its
        // beginning, which sled would otherwise open as a new, empty store. Unless its creation
        // was cut short: sled writes to `db` before the schema version is flushed, so a start
        // killed in between leaves the same, and a new store is marked as being created first.
        let existed = std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() > 0);
        let creating = dir.join(CREATING_FILE);
        if !existed {
            mark_creating(&creating, dir).map_err(private)?;
        }
        let db = sled::Config::new().path(dir).open()?;
        make_private(dir).map_err(private)?;
        // Before anything is written, opening a tree that is not there yet included: the seal
        // describes the store as it was closed, with the trees it had then (a version that
        // adds a tree opens a store sealed by one without it).
        Seal::check(dir, &db)?.map_err(damaged)?;
        let meta = db.open_tree(META)?;
        let store = Store {
            _seal: Arc::new(Seal {
                db: db.clone(),
                dir: dir.to_owned(),
            }),
            failures: Arc::default(),
            repos: db.open_tree(REPOS)?,
            builds: db.open_tree(BUILDS)?,
            health: db.open_tree(HEALTH)?,
            outbox: db.open_tree(OUTBOX)?,
            dead: db.open_tree(DEAD)?,
            messages: db.open_tree(MESSAGES)?,
            chat_handled: db.open_tree(CHAT_HANDLED)?,
            chat_cursors: db.open_tree(CHAT_CURSORS)?,
            mutes: db.open_tree(MUTES)?,
            chat_answers: db.open_tree(CHAT_ANSWERS)?,
            meetings: db.open_tree(MEETINGS)?,
            meta,
            db,
        };
        match store.meta.get(SCHEMA_KEY)? {
            None if existed && !creating.exists() => {
                return Err(damaged("its file holds no schema version".into()));
            }
            None => {
                store
                    .meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                store.meta.flush()?;
            }
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema version".into()))?;
                match found {
                    SCHEMA_VERSION => {}
                    1 => store.migrate_from_1()?,
                    found => return Err(StoreError::Schema { found }),
                }
            }
        }
        // The schema version is on disk: from now on a store without one is damaged.
        unmark_creating(&creating, dir).map_err(private)?;
        Ok(store)
    }

    /// Schema 1 kept one cursor and one watching time per repository, with the source that
    /// made them inside; schema 2 keys both by repository and source. Everything moves in one
    /// transaction with the version, so a crash leaves schema 1 whole or schema 2 whole.
    fn migrate_from_1(&self) -> Result<(), StoreError> {
        // Each key's new place: `repo` gets `\0 source` appended; one whose source cannot be
        // told is dropped.
        let under_source = |key: &[u8], source: &str| {
            let mut new_key = key.to_vec();
            new_key.push(0);
            new_key.extend_from_slice(source.as_bytes());
            new_key
        };
        let mut cursors: Vec<Moved> = Vec::new();
        let mut sources: BTreeMap<Vec<u8>, String> = BTreeMap::new();
        for entry in self.repos.iter() {
            let (key, value) = entry?;
            if key.contains(&0) {
                continue;
            }
            let record: RepoRecord = decode(&value)?;
            let to = v1_source(&record).map(|source| {
                sources.insert(key.to_vec(), source.name().to_owned());
                (under_source(&key, source.name()), value.to_vec())
            });
            cursors.push(Moved { from: key, to });
        }
        let mut times: Vec<Moved> = Vec::new();
        for entry in self.meta.scan_prefix(SINCE_PREFIX) {
            let (key, value) = entry?;
            let repo = &key[SINCE_PREFIX.len()..];
            if repo.contains(&0) {
                continue;
            }
            let (since, source) = decode_v1_since(&value)
                .ok_or_else(|| StoreError::Corrupt("watching-since time".into()))?;
            let source = source
                .map(str::to_owned)
                .or_else(|| sources.get(repo).cloned());
            // A time without a source belonged to a repository never polled: watching simply
            // begins again at the next start.
            let to =
                source.map(|source| (under_source(&key, &source), since.to_be_bytes().to_vec()));
            times.push(Moved { from: key, to });
        }
        let result: Result<(), TransactionError<StoreError>> = (&self.repos, &self.meta)
            .transaction(|(repos, meta)| {
                for (tree, moves) in [(repos, &cursors), (meta, &times)] {
                    for moved in moves {
                        tree.remove(&moved.from)?;
                        if let Some((key, value)) = &moved.to {
                            tree.insert(key.as_slice(), value.as_slice())?;
                        }
                    }
                }
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                Ok(())
            });
        result.map_err(transaction_error)?;
        self.db.flush()?;
        tracing::info!(
            cursors = cursors.len(),
            "store migrated from schema 1 to {SCHEMA_VERSION}"
        );
        Ok(())
    }

    /// As [`Store::open`], but waits up to `patience` while another process holds the store's
    /// lock: `bbzoom status` or `dead-letters` read it briefly when no daemon answers them.
    pub fn open_waiting(dir: &Path, patience: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::open(dir) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                result => return result,
            }
        }
    }

    /// When bbzoom started watching `repo` through `source` (Unix milliseconds): `now_ms` the
    /// first time it is asked, the same answer ever after (until [`Store::forget_unwatched`]
    /// forgets it). Builds created before the answer are history.
    pub(crate) fn watching_since(
        &self,
        repo: &RepoId,
        source: SourceKind,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let key = since_key(repo, source);
        let fresh = now_ms.to_be_bytes();
        match self
            .meta
            .compare_and_swap(&key, None as Option<&[u8]>, Some(&fresh[..]))?
        {
            Ok(()) => {
                self.meta.flush()?;
                Ok(now_ms)
            }
            Err(existing) => existing
                .current
                .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt("watching-since time".into())),
        }
    }

    /// Forgets the cursor and watching time of every (repository, source) not in `watched`:
    /// a source that stops being polled and comes back later is baselined again, rather
    /// than replaying what happened while nobody watched as news. Forgets too the schedules of
    /// a repository whose pipelines are not watched, and where the scans of a workspace none
    /// of them is in got to. Returns how many cursors.
    pub fn forget_unwatched(
        &self,
        watched: &BTreeSet<(RepoId, SourceKind)>,
    ) -> Result<usize, StoreError> {
        let cursors: BTreeSet<Vec<u8>> = watched
            .iter()
            .map(|(repo, source)| cursor_key(repo, *source))
            .collect();
        let mut forgotten = 0;
        for key in self.repos.iter().keys() {
            let key = key?;
            if !cursors.contains(key.as_ref()) {
                self.repos.remove(&key)?;
                forgotten += 1;
            }
        }
        for prefix in [SINCE_PREFIX, LEARNED_PREFIX] {
            for key in self.meta.scan_prefix(prefix).keys() {
                let key = key?;
                if !cursors.contains(&key[prefix.len()..]) {
                    self.meta.remove(&key)?;
                }
            }
        }
        let scheduled: BTreeSet<Vec<u8>> = watched
            .iter()
            .filter(|(_, source)| *source == SourceKind::Pipelines)
            .map(|(repo, _)| schedules_key(repo))
            .collect();
        for key in self.meta.scan_prefix(SCHEDULES_PREFIX).keys() {
            let key = key?;
            if !scheduled.contains(key.as_ref()) {
                self.meta.remove(&key)?;
            }
        }
        let workspaces: BTreeSet<Vec<u8>> = watched
            .iter()
            .map(|(repo, _)| repo.owner.to_lowercase().into_bytes())
            .collect();
        for key in self.meta.scan_prefix(SCANNED_PREFIX).keys() {
            let key = key?;
            let rest = &key[SCANNED_PREFIX.len()..];
            let workspace = rest.split(|&b| b == 0).next().unwrap_or(rest);
            if !workspaces.contains(workspace) {
                self.meta.remove(&key)?;
            }
        }
        self.db.flush()?;
        Ok(forgotten)
    }

    /// `repo`'s Pipelines schedules as last read, if some were found.
    pub(crate) fn schedules(&self, repo: &RepoId) -> Result<Option<SchedulesRecord>, StoreError> {
        self.meta
            .get(schedules_key(repo))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Records `repo`'s Pipelines schedules as just read; none found forgets them. Not
    /// flushed: a crash keeps older ones, read again a day after they were read.
    pub(crate) fn set_schedules(
        &self,
        repo: &RepoId,
        read: &SchedulesRecord,
    ) -> Result<(), StoreError> {
        let key = schedules_key(repo);
        if read.patterns.is_empty() {
            self.meta.remove(key)?;
        } else {
            self.meta.insert(key, encode(read)?)?;
        }
        Ok(())
    }

    /// What the scheduler learnt of `repo` through `source` before a restart, if anything.
    pub(crate) fn learned(
        &self,
        repo: &RepoId,
        source: SourceKind,
    ) -> Result<Option<LearnedRecord>, StoreError> {
        self.meta
            .get(learned_key(repo, source))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Records what the scheduler learnt of `repo` through `source`. Not flushed: a crash
    /// keeps an older record, or none, and the scheduler learns again.
    pub(crate) fn set_learned(
        &self,
        repo: &RepoId,
        source: SourceKind,
        learned: &LearnedRecord,
    ) -> Result<(), StoreError> {
        self.meta
            .insert(learned_key(repo, source), encode(learned)?)?;
        Ok(())
    }

    /// Where the scans of `workspace` with `credential` got to (Unix milliseconds): the
    /// first scan after a restart reaches back to it, so a push made while bbzoom was down
    /// is still a hint. `None` before the first complete scan.
    pub(crate) fn scanned_to(
        &self,
        credential: &str,
        workspace: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.meta
            .get(scanned_key(credential, workspace))?
            .map(|bytes| {
                <[u8; 8]>::try_from(bytes.as_ref())
                    .map(i64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("workspace scan position".into()))
            })
            .transpose()
    }

    /// Records where the scans of `workspace` with `credential` got to. Not flushed: a
    /// crash keeps an older position, from which the next scan only reaches further back.
    pub(crate) fn set_scanned_to(
        &self,
        credential: &str,
        workspace: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.meta
            .insert(scanned_key(credential, workspace), &at_ms.to_be_bytes())?;
        Ok(())
    }

    /// Forgets the cursor and watching time (and a pipelines watch's schedules) of each of
    /// `watches`, as [`Store::forget_unwatched`] does for the others. Returns how many cursors
    /// there were.
    pub(crate) fn forget(
        &self,
        watches: &BTreeSet<(RepoId, SourceKind)>,
    ) -> Result<usize, StoreError> {
        let mut forgotten = 0;
        for (repo, source) in watches {
            forgotten += usize::from(self.repos.remove(cursor_key(repo, *source))?.is_some());
            self.meta.remove(since_key(repo, *source))?;
            self.meta.remove(learned_key(repo, *source))?;
            if *source == SourceKind::Pipelines {
                self.meta.remove(schedules_key(repo))?;
            }
        }
        self.db.flush()?;
        Ok(forgotten)
    }

    /// Where polling of `repo` through `source` stands; `None` if never polled (to be
    /// baselined).
    pub fn cursor(
        &self,
        repo: &RepoId,
        source: SourceKind,
    ) -> Result<Option<RepoCursor>, StoreError> {
        let record: Option<RepoRecord> = get(&self.repos, &cursor_key(repo, source))?;
        Ok(record.map(|r| RepoCursor {
            high_water: r.high_water,
            active: r.active,
            branch_tips: r.branch_tips,
            tag_tips: r.tag_tips,
            tags_listed: r.tags_listed,
            late_keys: r.late_keys,
            followed: r
                .followed
                .into_iter()
                .map(|f| Followed {
                    tip: RefTip {
                        git_ref: if f.tag {
                            BuildRef::Tag(f.branch)
                        } else {
                            BuildRef::Branch(f.branch)
                        },
                        commit: f.commit,
                        message: f.message,
                        author: f.author,
                        author_ids: AuthorIds(f.author_ids),
                        committed_ms: f.committed_ms,
                    },
                    settle_until_ms: f.settle_until_ms,
                    late_looks: f.late_looks,
                    read_ms: f.read_ms,
                    since_ms: f.since_ms,
                    keys: f.keys,
                })
                .collect(),
        }))
    }

    /// The last recorded state of a build.
    pub(crate) fn build(&self, key: &BuildKey) -> Result<Option<StoredBuild>, StoreError> {
        let record: Option<BuildRecord> = get(&self.builds, &build_key(key))?;
        Ok(record.map(|r| StoredBuild {
            state: r.state.into(),
            revision: r.revision,
        }))
    }

    /// The health of a lane, if a finished build ever settled it.
    pub(crate) fn health(&self, repo: &RepoId, lane: &Lane) -> Result<Option<Health>, StoreError> {
        Ok(self
            .health
            .get(health_key(repo, lane))?
            .and_then(|b| decode_health(&b)))
    }

    /// The failing streak of `lane` whose war room is wanted, if one is.
    pub(crate) fn meeting_streak(
        &self,
        repo: &RepoId,
        lane: &Lane,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.meeting(repo, lane)?.map(|m| m.streak))
    }

    /// What is known of `lane`'s war room.
    pub(crate) fn meeting(
        &self,
        repo: &RepoId,
        lane: &Lane,
    ) -> Result<Option<StoredMeeting>, StoreError> {
        let record: Option<MeetingRecord> = get(&self.meetings, &health_key(repo, lane))?;
        Ok(record.map(|r| StoredMeeting {
            streak: r.streak,
            meeting: r.meeting_id.zip(r.join_url),
        }))
    }

    /// Records the meeting created for `lane`'s `streak`, durably, if the lane still wants
    /// one for that streak and has none yet: whether it was recorded (a fix, or a new
    /// streak, since the creation began leaves it out).
    pub(crate) fn record_meeting(
        &self,
        repo: &RepoId,
        lane: &Lane,
        streak: &str,
        meeting_id: &str,
        join_url: &str,
    ) -> Result<bool, StoreError> {
        let key = health_key(repo, lane);
        let wanted = encode(&MeetingRecord {
            streak: streak.to_owned(),
            meeting_id: None,
            join_url: None,
        })?;
        let created = encode(&MeetingRecord {
            streak: streak.to_owned(),
            meeting_id: Some(meeting_id.to_owned()),
            join_url: Some(join_url.to_owned()),
        })?;
        let recorded = self
            .meetings
            .compare_and_swap(&key, Some(wanted.as_slice()), Some(created.as_slice()))?
            .is_ok();
        self.meetings.flush()?;
        Ok(recorded)
    }

    /// Writes one poll's findings in one transaction and flushes it to disk (invariant 3).
    pub(crate) fn commit_poll(&self, update: &PollUpdate, now_ms: i64) -> Result<(), StoreError> {
        let cursor = &update.cursor;
        let repo = encode(&RepoRecord {
            high_water: cursor.high_water,
            active: cursor.active.clone(),
            branch_tips: cursor.branch_tips.clone(),
            tag_tips: cursor.tag_tips.clone(),
            tags_listed: cursor.tags_listed,
            followed: cursor
                .followed
                .iter()
                .map(|f| FollowedRecord {
                    branch: f.tip.git_ref.name().unwrap_or_default().to_owned(),
                    tag: matches!(f.tip.git_ref, BuildRef::Tag(_)),
                    commit: f.tip.commit.clone(),
                    message: f.tip.message.clone(),
                    author: f.tip.author.clone(),
                    author_ids: f.tip.author_ids.0.clone(),
                    committed_ms: f.tip.committed_ms,
                    settle_until_ms: f.settle_until_ms,
                    late_looks: f.late_looks,
                    read_ms: f.read_ms,
                    since_ms: f.since_ms,
                    keys: f.keys.clone(),
                })
                .collect(),
            late_keys: cursor.late_keys.clone(),
            source: None,
        })?;
        let builds = update
            .builds
            .iter()
            .map(|(key, build)| {
                let record = BuildRecord {
                    state: StateRecord::from(&build.state),
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
                    event: n.event.into(),
                    build: BuildSnapshot::from(&n.build),
                    enqueued_ms: now_ms,
                    attempts: 0,
                    next_attempt_ms: now_ms,
                    first_failed_ms: None,
                    mention: n.mention.as_ref().map(MentionRecord::from),
                    war_room: n.war_room.as_ref().map(WarRoomRecord::from),
                };
                Ok((n.channel.as_str(), encode(&record)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let meetings = update
            .meetings
            .iter()
            .map(|(lane, streak)| {
                let value = streak
                    .as_ref()
                    .map(|streak| {
                        encode(&MeetingRecord {
                            streak: streak.clone(),
                            meeting_id: None,
                            join_url: None,
                        })
                    })
                    .transpose()?;
                Ok((health_key(&update.repo, lane), value))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let cursor_key = cursor_key(&update.repo, update.source);
        let result: Result<(), TransactionError<StoreError>> = (
            &self.repos,
            &self.builds,
            &self.health,
            &self.outbox,
            &self.meetings,
        )
            .transaction(|(repos, builds_tx, health, outbox, meetings_tx)| {
                repos.insert(cursor_key.as_slice(), repo.as_slice())?;
                for (key, value) in &meetings {
                    match value {
                        Some(value) => meetings_tx.insert(key.as_slice(), value.as_slice())?,
                        None => meetings_tx.remove(key.as_slice())?,
                    };
                }
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
            });
        result.map_err(transaction_error)
    }

    /// Every row waiting for `channel`, in delivery order, due or not, and apart from them
    /// any the store cannot read.
    pub fn outbox(&self, channel: &str) -> Result<Outbox, StoreError> {
        let mut outbox = Outbox::default();
        for entry in self.outbox.scan_prefix(outbox_prefix(channel)) {
            let (key, value) = entry?;
            let row = decode::<OutboxRecord>(&value).and_then(|record| to_row(&key, record));
            match row {
                Ok(row) => outbox.rows.push(row),
                Err(err) => outbox.unreadable.push(UnreadableRow {
                    key,
                    channel: channel.to_owned(),
                    error: err.to_string(),
                }),
            }
        }
        Ok(outbox)
    }

    /// Zoom accepted `rows` (several when folded or superseded): remove them and, when a card
    /// was posted, remember its message id for later edits, in one flushed transaction, so
    /// none is ever sent again.
    pub(crate) fn complete(
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
    pub(crate) fn card_message(
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
    pub(crate) fn forget_card_message(
        &self,
        channel: &str,
        build: &BuildKey,
    ) -> Result<(), StoreError> {
        self.messages.remove(message_key(channel, build))?;
        self.messages.flush()?;
        Ok(())
    }

    /// A delivery attempt of `row` failed transiently at `now_ms`: record it and when to try
    /// next.
    pub(crate) fn reschedule(
        &self,
        row: &OutboxRow,
        next_attempt_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = outbox_key(&row.channel, row.seq);
        if let Some(value) = self.outbox.get(&key)? {
            let mut record: OutboxRecord = decode(&value)?;
            record.attempts = record.attempts.saturating_add(1);
            record.next_attempt_ms = next_attempt_ms;
            record.first_failed_ms.get_or_insert(now_ms);
            self.outbox.insert(key, encode(&record)?)?;
            self.outbox.flush()?;
        }
        Ok(())
    }

    /// Zoom refused `row` for good: move it to the dead letters, in one transaction.
    pub(crate) fn dead_letter(
        &self,
        row: &OutboxRow,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = outbox_key(&row.channel, row.seq);
        self.bury(&key, key.clone(), reason, now_ms)
    }

    /// `row` could not be read: move it to the dead letters as it is, so it no longer blocks
    /// its channel and the admin can look at it.
    pub(crate) fn dead_letter_unreadable(
        &self,
        row: &UnreadableRow,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        // A key without its sequence number gets one, so the letter can be named.
        let dead_key = match seq_of(&row.key) {
            Some(_) if row.key.starts_with(&outbox_prefix(&row.channel)) => row.key.to_vec(),
            _ => outbox_key(&row.channel, self.db.generate_id()?),
        };
        let reason = format!("the row could not be read: {}", row.error);
        self.bury(&row.key, dead_key, &reason, now_ms)
    }

    /// Moves the outbox entry at `key` to the dead letters under `dead_key`, readable or not.
    fn bury(
        &self,
        key: &[u8],
        dead_key: Vec<u8>,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let result: Result<(), TransactionError<StoreError>> = (&self.outbox, &self.dead)
            .transaction(|(outbox, dead)| {
                if let Some(value) = outbox.remove(key)? {
                    let row = decode::<OutboxRecord>(&value).ok();
                    let raw = row.is_none().then(|| {
                        String::from_utf8_lossy(&value)
                            .chars()
                            .take(RAW_KEPT_CHARS)
                            .collect()
                    });
                    let record = encode(&DeadRecord {
                        row,
                        raw,
                        reason: reason.to_owned(),
                        dead_ms: now_ms,
                    })
                    .map_err(ConflictableTransactionError::Abort)?;
                    dead.insert(dead_key.as_slice(), record)?;
                }
                outbox.flush();
                Ok(())
            });
        result.map_err(transaction_error)
    }

    /// Puts dead letter `seq` back in its channel's outbox, due now with no attempts counted.
    /// Returns whether there was one; one whose row could not be read cannot go back.
    pub(crate) fn retry_dead_letter(&self, seq: u64, now_ms: i64) -> Result<bool, StoreError> {
        let Some(key) = self.dead_key(seq)? else {
            return Ok(false);
        };
        let result: Result<(), TransactionError<StoreError>> = (&self.dead, &self.outbox)
            .transaction(|(dead, outbox)| {
                if let Some(value) = dead.get(&key)? {
                    let mut row = decode::<DeadRecord>(&value)
                        .ok()
                        .and_then(|record| record.row)
                        .ok_or(ConflictableTransactionError::Abort(StoreError::Unreadable(
                            seq,
                        )))?;
                    dead.remove(&key)?;
                    row.attempts = 0;
                    row.next_attempt_ms = now_ms;
                    row.enqueued_ms = now_ms;
                    row.first_failed_ms = None;
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
    pub(crate) fn drop_dead_letter(&self, seq: u64) -> Result<bool, StoreError> {
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
                let lane = decode_lane(&key[prefix.len()..]);
                let health = decode_health(&value);
                match (lane, health) {
                    (Some(lane), Some(health)) => Ok((lane, health)),
                    _ => Err(StoreError::Corrupt(format!("a lane's health of {repo}"))),
                }
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
                summary.last = Some((record.state.into(), record.observed_ms));
            }
        }
        Ok(summary)
    }

    /// Rows waiting in the outbox, by channel: including channels no longer configured, whose
    /// rows wait for a channel of that name to come back.
    pub(crate) fn outbox_depths(&self) -> Result<BTreeMap<String, usize>, StoreError> {
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

    /// Every dead letter, oldest first per channel; one whose record cannot be read is
    /// listed as such, never hidden.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let channel = key.split(|&b| b == 0).next().unwrap_or_default();
                let channel = String::from_utf8_lossy(channel).into_owned();
                let seq = seq_of(&key).unwrap_or_default();
                let letter = match decode::<DeadRecord>(&value) {
                    Ok(record) => DeadLetter {
                        seq,
                        channel,
                        row: record.row.map(|row| to_row(&key, row)).transpose()?,
                        raw: record.raw,
                        reason: record.reason,
                        died_ms: Some(record.dead_ms),
                    },
                    Err(err) => DeadLetter {
                        seq,
                        channel,
                        row: None,
                        raw: Some(
                            String::from_utf8_lossy(&value)
                                .chars()
                                .take(RAW_KEPT_CHARS)
                                .collect(),
                        ),
                        reason: format!("the dead letter itself could not be read: {err}"),
                        died_ms: None,
                    },
                };
                Ok(letter)
            })
            .collect()
    }

    /// Forgets finished builds observed before `cutoff_ms`; returns how many.
    pub(crate) fn prune_finished_builds(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
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

    /// Records chat message `message_id` as handled at `now_ms`, durably, unless it already
    /// was: whether this call recorded it. A command runs only after this said yes, so it runs
    /// at most once, whether it came live, in a backfill, or both, across restarts too.
    pub(crate) fn claim_command(&self, message_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        // One task claims (the subscription's connection), so a read then a write is enough.
        let claimed = self.chat_handled.get(message_id.as_bytes())?.is_none();
        if claimed {
            self.chat_handled
                .insert(message_id.as_bytes(), &now_ms.to_be_bytes()[..])?;
            self.chat_handled.flush()?;
        }
        Ok(claimed)
    }

    /// How far command channel `channel_id`'s messages were read (Unix ms); `None` before its
    /// first connection.
    pub(crate) fn chat_cursor(&self, channel_id: &str) -> Result<Option<i64>, StoreError> {
        self.chat_cursors
            .get(channel_id.as_bytes())?
            .map(|value| decode_ms(&value))
            .transpose()
    }

    /// Starts `channel_id`'s cursor at `at_ms` if it has none yet, durably.
    pub(crate) fn start_chat_cursor(&self, channel_id: &str, at_ms: i64) -> Result<(), StoreError> {
        let _ = self.chat_cursors.compare_and_swap(
            channel_id.as_bytes(),
            None as Option<&[u8]>,
            Some(&at_ms.to_be_bytes()[..]),
        )?;
        self.chat_cursors.flush()?;
        Ok(())
    }

    /// Moves `channel_id`'s cursor forward to `at_ms` (never back), durably.
    pub(crate) fn advance_chat_cursor(
        &self,
        channel_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let newer = self.chat_cursor(channel_id)?.is_none_or(|old| at_ms > old);
        if newer {
            self.chat_cursors
                .insert(channel_id.as_bytes(), &at_ms.to_be_bytes()[..])?;
        }
        self.chat_cursors.flush()?;
        Ok(())
    }

    /// Queues the answer to command `message_id`, durably: it is sent (again after a restart)
    /// until Zoom takes it or it is given up on.
    pub(crate) fn queue_answer(
        &self,
        message_id: &str,
        answer: &ChatAnswer,
    ) -> Result<(), StoreError> {
        self.chat_answers
            .insert(message_id.as_bytes(), encode(answer)?)?;
        self.chat_answers.flush()?;
        Ok(())
    }

    /// The answers waiting to be sent, oldest first, by command message id. One that cannot
    /// be read is dropped with an error in the log: it could never be sent.
    pub(crate) fn pending_answers(&self) -> Result<Vec<(String, ChatAnswer)>, StoreError> {
        let mut pending = Vec::new();
        for entry in self.chat_answers.iter() {
            let (key, value) = entry?;
            let id = String::from_utf8_lossy(&key).into_owned();
            match decode::<ChatAnswer>(&value) {
                Ok(answer) => pending.push((id, answer)),
                Err(err) => {
                    tracing::error!(command = %id, %err, "an unreadable chat answer is dropped");
                    self.chat_answers.remove(key)?;
                }
            }
        }
        pending.sort_by_key(|(_, answer)| answer.queued_ms);
        Ok(pending)
    }

    /// The answer to command `message_id` was sent or given up on: forget it, durably.
    pub(crate) fn answer_done(&self, message_id: &str) -> Result<(), StoreError> {
        self.chat_answers.remove(message_id.as_bytes())?;
        self.chat_answers.flush()?;
        Ok(())
    }

    /// Forgets commands handled before `cutoff_ms`; returns how many. Backfills never reach
    /// back that far (they start at the channel's cursor), so none can run again.
    pub(crate) fn prune_handled_commands(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self.chat_handled.iter() {
            let (key, value) = entry?;
            if decode_ms(&value).is_ok_and(|at| at < cutoff_ms) {
                self.chat_handled.remove(key)?;
                pruned += 1;
            }
        }
        self.chat_handled.flush()?;
        Ok(pruned)
    }

    /// Records `mute`, durably, replacing the channel's mute of the same scope (one in force
    /// is extended or shortened; an ended one whose summary is still to send is taken over:
    /// the rows it held are held again, and summarised when this one ends). Returns the mute
    /// replaced, if it was in force at `mute.since_ms`.
    pub(crate) fn set_mute(&self, mute: &Mute) -> Result<Option<Mute>, StoreError> {
        let key = mute_key(&mute.channel, &mute.scope);
        let old = self.mutes.insert(key, encode(&MuteRecord::from(mute))?)?;
        self.mutes.flush()?;
        let old = old
            .map(|value| decode::<MuteRecord>(&value))
            .transpose()?
            .map(|record| record.into_mute(&mute.channel));
        Ok(old.filter(|old| old.active(mute.since_ms)))
    }

    /// The mutes of `channel` (of every channel with `None`), in force or ended with their
    /// summary still to send.
    pub fn mutes(&self, channel: Option<&str>) -> Result<Vec<Mute>, StoreError> {
        let prefix = channel.map(outbox_prefix).unwrap_or_default();
        let mut mutes = Vec::new();
        for entry in self.mutes.scan_prefix(prefix) {
            let (key, value) = entry?;
            let name = key.split(|&b| b == 0).next().unwrap_or_default();
            let channel = String::from_utf8_lossy(name);
            mutes.push(decode::<MuteRecord>(&value)?.into_mute(&channel));
        }
        Ok(mutes)
    }

    /// Ends `channel`'s mutes in force at `now_ms` that `scope` names (every one with `None`),
    /// durably: each now ends at `now_ms`, its summary to be sent. Returns those ended.
    pub(crate) fn end_mutes(
        &self,
        channel: &str,
        scope: Option<&MuteScope>,
        now_ms: i64,
    ) -> Result<Vec<Mute>, StoreError> {
        let mut ended = Vec::new();
        for mut mute in self.mutes(Some(channel))? {
            if !mute.active(now_ms) || scope.is_some_and(|s| *s != mute.scope) {
                continue;
            }
            let key = mute_key(channel, &mute.scope);
            let before = encode(&MuteRecord::from(&mute))?;
            mute.until_ms = now_ms;
            let after = encode(&MuteRecord::from(&mute))?;
            // Only if unchanged since read: a mute set meanwhile stays as set.
            if self
                .mutes
                .compare_and_swap(&key, Some(before), Some(after))?
                .is_ok()
            {
                ended.push(mute);
            }
        }
        self.mutes.flush()?;
        Ok(ended)
    }

    /// The summary of `ended` mutes was accepted: remove the `rows` it stood for and the
    /// mutes, in one flushed transaction. A mute set again since it was read (same channel
    /// and scope, another record) stays.
    pub(crate) fn finish_mutes(
        &self,
        rows: &[OutboxRow],
        ended: &[Mute],
    ) -> Result<(), StoreError> {
        let expected = ended
            .iter()
            .map(|m| {
                Ok((
                    mute_key(&m.channel, &m.scope),
                    encode(&MuteRecord::from(m))?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let result: Result<(), TransactionError<StoreError>> = (&self.outbox, &self.mutes)
            .transaction(|(outbox, mutes)| {
                for row in rows {
                    outbox.remove(outbox_key(&row.channel, row.seq))?;
                }
                for (key, value) in &expected {
                    if mutes.get(key)?.is_some_and(|now| now == value.as_slice()) {
                        mutes.remove(key.as_slice())?;
                    }
                }
                outbox.flush();
                Ok(())
            });
        result.map_err(transaction_error)
    }

    /// Notes how one of the daemon's uses of the store went (a poll's commit, a delivery
    /// step): a failure lengthens the current streak, a success ends it. A store that keeps
    /// failing (a full disk, a file-size limit, I/O errors) leaves the daemon unable to record
    /// or deliver anything; the supervisor stops it once the streak is long enough
    /// ([`Store::failing`]).
    pub(crate) fn note<T, E: std::fmt::Display>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.failures.in_a_row.store(0, Ordering::Relaxed),
            Err(err) => {
                *self.failures.last.lock().expect("store failures lock") = err.to_string();
                self.failures.in_a_row.fetch_add(1, Ordering::Relaxed);
                self.failures.noted.notify_waiters();
            }
        }
    }

    /// The last error, once at least `limit` uses in a row failed.
    pub(crate) fn failing(&self, limit: u32) -> Option<String> {
        (self.failures.in_a_row.load(Ordering::Relaxed) >= limit).then(|| {
            self.failures
                .last
                .lock()
                .expect("store failures lock")
                .clone()
        })
    }

    /// Waits until a failure is noted.
    pub(crate) async fn failure_noted(&self) {
        self.failures.noted.notified().await;
    }

    /// Flushes everything written so far; called once more on shutdown.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Runs `work` on this store on tokio's blocking pool: how async tasks use it, since a
    /// write waits for its fsync and a read may wait for the disk, and neither may stall an
    /// async worker. Once started, `work` completes even if the caller is dropped.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> T {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .expect("store work does not panic")
    }
}

/// A Unix-ms time stored big-endian.
fn decode_ms(value: &[u8]) -> Result<i64, StoreError> {
    <[u8; 8]>::try_from(value)
        .map(i64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a chat time".into()))
}

/// The record of a clean close, kept beside sled's files (`clean-close`) while no process has
/// the store open.
///
/// A streak of failed uses of the store (see [`Store::note`]).
#[derive(Debug, Default)]
struct Failures {
    /// Uses that failed since the last one that did not.
    in_a_row: AtomicU32,
    /// The last failure's message.
    last: std::sync::Mutex<String>,
    /// Wakes the supervisor at each failure, so it stops without waiting for its next tick.
    noted: tokio::sync::Notify,
}

/// Why: sled recovers its log by reading it up to the first message whose checksum fails, as
/// it must after a crash tore the tail, and keeps what came before. Damage in the middle of the
/// file is read the same way, so a damaged store opens silently with only its older part, or
/// empty. The seal holds a checksum of every tree and the counts of queued cards and cursors,
/// written when the last handle drops; at open it must match what sled recovered, and it is
/// removed (durably) before anything is written. After a crash there is no seal, and only the
/// schema version written at creation is checked: sled cannot tell a torn tail from damage.
struct Seal {
    db: sled::Db,
    dir: PathBuf,
}

/// What a seal records of a store's contents.
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    /// CRC-32 of every non-empty tree's name, keys and values, in order.
    checksum: u32,
    /// Rows in the outbox.
    queued: usize,
    /// Polling cursors.
    cursors: usize,
}

impl Contents {
    fn of(db: &sled::Db) -> Result<Contents, sled::Error> {
        let mut crc = crc32fast::Hasher::new();
        let mut hash = |bytes: &[u8]| {
            crc.update(&(bytes.len() as u64).to_be_bytes());
            crc.update(bytes);
        };
        // sled lists trees in its hash map's order, which differs between a store written and
        // the same store recovered once there are more than eight: sort them.
        let mut names = db.tree_names();
        names.sort();
        for name in names {
            // An empty tree says nothing, and one a newer version opens in an older store is
            // empty: it must not make a sound store look damaged after an upgrade.
            let tree = db.open_tree(&name)?;
            if tree.is_empty() {
                continue;
            }
            hash(&name);
            for entry in tree.iter() {
                let (key, value) = entry?;
                hash(&key);
                hash(&value);
            }
        }
        Ok(Contents {
            checksum: crc.finalize(),
            queued: db.open_tree(OUTBOX)?.len(),
            cursors: db.open_tree(REPOS)?.len(),
        })
    }

    fn to_text(&self) -> String {
        format!(
            "checksum {:08x}\nqueued {}\ncursors {}\n",
            self.checksum, self.queued, self.cursors
        )
    }

    fn parse(text: &str) -> Option<Contents> {
        let mut lines = text.lines().map(|line| line.split_once(' '));
        let mut field = |name: &str| match lines.next()? {
            Some((key, value)) if key == name => Some(value.to_owned()),
            _ => None,
        };
        let contents = Contents {
            checksum: u32::from_str_radix(&field("checksum")?, 16).ok()?,
            queued: field("queued")?.parse().ok()?,
            cursors: field("cursors")?.parse().ok()?,
        };
        lines.next().is_none().then_some(contents)
    }
}

impl Seal {
    /// Compares the seal in `dir`, if any, with `db` and removes it. The outer error is the
    /// store's; the inner one says why the store is damaged.
    fn check(dir: &Path, db: &sled::Db) -> Result<Result<(), String>, StoreError> {
        let path = dir.join(SEAL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(())),
            Err(e) => return Ok(Err(format!("its {SEAL_FILE} record is unreadable: {e}"))),
        };
        let found = Contents::of(db)?;
        let verdict = match Contents::parse(&text) {
            None => Err(format!("its {SEAL_FILE} record is unreadable")),
            Some(sealed) if sealed == found => Ok(()),
            Some(sealed) if (sealed.queued, sealed.cursors) == (found.queued, found.cursors) => {
                Err(
                    "what sled recovered differs from what it held when bbzoom last closed it"
                        .into(),
                )
            }
            Some(sealed) => Err(format!(
                "sled recovered {} queued cards and {} cursors of the {} and {} it held when \
                 bbzoom last closed it",
                found.queued, found.cursors, sealed.queued, sealed.cursors
            )),
        };
        if verdict.is_ok() {
            // Durably gone before the first write: a seal that came back after a crash would
            // describe an older store and refuse a sound one.
            std::fs::remove_file(&path)
                .and_then(|()| std::fs::File::open(dir)?.sync_all())
                .map_err(|cause| StoreError::Private {
                    dir: dir.to_owned(),
                    cause,
                })?;
        }
        Ok(verdict)
    }

    fn write(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        let text = Contents::of(&self.db)?.to_text();
        crate::atomic_file::write(&self.dir.join(SEAL_FILE), text.as_bytes(), PRIVATE_FILE).map_err(
            |cause| StoreError::Private {
                dir: self.dir.clone(),
                cause,
            },
        )
    }
}

impl Drop for Seal {
    fn drop(&mut self) {
        if let Err(err) = self.write() {
            tracing::warn!(%err, "the store's clean close could not be recorded");
        }
    }
}

/// Mode of the state directory and of the directories sled makes in it: its owner's only.
const PRIVATE_DIR: u32 = 0o700;
/// Mode of the files in the state directory.
const PRIVATE_FILE: u32 = 0o600;

/// Marks the store in `dir` as being created ([`CREATING_FILE`]), durably: before sled writes
/// anything.
fn mark_creating(path: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)?
        .sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the mark of [`mark_creating`], if any, durably: a mark that came back after a crash
/// would let a store that lost its beginning pass as one whose creation was cut short.
fn unmark_creating(path: &Path, dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => std::fs::File::open(dir)?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and any missing parent) with mode 0700 whatever the umask.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)?;
    // The umask may have narrowed the mode below what sled needs.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR))
}

/// Takes group and others' access from `dir` and from every directory and regular file in it:
/// the store holds what was built where, and outside systemd (whose `StateDirectoryMode=`
/// does this) the umask would leave it readable by every local user.
fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    let mode = if meta.is_dir() {
        PRIVATE_DIR
    } else if meta.is_file() {
        PRIVATE_FILE
    } else {
        // The control socket is made owner-only by its own code.
        return Ok(());
    };
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            make_private(&entry?.path())?;
        }
    }
    Ok(())
}

fn transaction_error(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

fn to_row(key: &[u8], record: OutboxRecord) -> Result<OutboxRow, StoreError> {
    let seq = seq_of(key).ok_or_else(|| StoreError::Corrupt("outbox key".into()))?;
    Ok(OutboxRow {
        seq,
        channel: record.channel,
        event: record.event.into(),
        build: record.build.into(),
        attempts: record.attempts,
        next_attempt_ms: record.next_attempt_ms,
        enqueued_ms: record.enqueued_ms,
        first_failed_ms: record.first_failed_ms,
        mention: record.mention.map(Mention::from),
        war_room: record.war_room.map(WarRoom::from),
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

/// A key the migration moves: to a new key with a new value, or dropped.
struct Moved {
    from: sled::IVec,
    to: Option<(Vec<u8>, Vec<u8>)>,
}

/// The source a schema 1 cursor belongs to: as written, or for a record written before it was
/// kept, as its shape shows (branch tips are statuses', build numbers pipelines').
fn v1_source(record: &RepoRecord) -> Option<SourceKind> {
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

    /// The store in `dir` opened again after its last handle dropped: sled's background
    /// threads may hold the lock a moment longer.
    pub(super) fn reopen(dir: &Path) -> Store {
        Store::open_waiting(dir, std::time::Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn chat_answers_wait_oldest_first_across_a_reopen_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let answer = |thread: &str, queued_ms| ChatAnswer {
            to_jid: "ci@conference.xmpp.zoom.us".into(),
            thread: thread.into(),
            content: serde_json::json!({"head": {"text": thread}}),
            queued_ms,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .queue_answer("zz-later", &answer("later", 20))
                .unwrap();
            store
                .queue_answer("aa-sooner", &answer("sooner", 10))
                .unwrap();
        }
        let store = reopen(dir.path());
        let pending = store.pending_answers().unwrap();
        let threads: Vec<&str> = pending.iter().map(|(_, a)| a.thread.as_str()).collect();
        assert_eq!(threads, ["sooner", "later"]);
        assert_eq!(pending[0], ("aa-sooner".to_owned(), answer("sooner", 10)));
        store.answer_done("aa-sooner").unwrap();
        drop(store);
        let store = reopen(dir.path());
        let pending = store.pending_answers().unwrap();
        assert_eq!(pending, [("zz-later".to_owned(), answer("later", 20))]);
    }

    fn stored(build: &BuildStatus) -> StoredBuild {
        StoredBuild {
            state: build.state.clone(),
            revision: build.revision,
        }
    }

    pub(super) fn status(repo: &RepoId, id: &str, state: BuildState) -> BuildStatus {
        BuildStatus {
            key: BuildKey {
                repo: repo.clone(),
                id: id.into(),
            },
            job: "pipeline".into(),
            name: "Pipeline".into(),
            number: Some(1),
            revision: 0,
            git_ref: BuildRef::Branch("main".into()),
            commit: None,
            commit_message: None,
            author: None,
            authors: Vec::new(),
            state,
            duration_secs: None,
            created_ms: 0,
            url: "https://bitbucket.org/a/b/pipelines/results/1".into(),
            commit_url: None,
            ref_url: None,
            scheduled: false,
        }
    }

    fn main_lane() -> Lane {
        Lane {
            git_ref: BuildRef::Branch("main".into()),
            job: "pipeline".into(),
        }
    }

    /// An update of `repo` through `source` with only `builds`.
    pub(super) fn update_of(
        repo: &RepoId,
        source: SourceKind,
        builds: &[&BuildStatus],
    ) -> PollUpdate {
        PollUpdate {
            repo: repo.clone(),
            source,
            cursor: RepoCursor::default(),
            builds: builds.iter().map(|b| (b.key.clone(), stored(b))).collect(),
            health: vec![],
            notifications: vec![],
            meetings: vec![],
        }
    }

    #[test]
    fn a_poll_commits_atomically_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoId::new("acme", "api");
        let done = status(&repo, "{1}", BuildState::Completed(Outcome::Failed));
        let update = PollUpdate {
            repo: repo.clone(),
            source: SourceKind::Statuses,
            cursor: RepoCursor {
                high_water: 7,
                active: vec!["{2}".into()],
                branch_tips: [("main".to_owned(), "c0ffee".to_owned())].into(),
                tag_tips: [("v1.0".to_owned(), "beef".to_owned())].into(),
                tags_listed: true,
                followed: vec![
                    Followed {
                        tip: RefTip {
                            git_ref: BuildRef::Branch("main".into()),
                            commit: "c0ffee".into(),
                            message: Some("Fix it".into()),
                            author: None,
                            author_ids: Default::default(),
                            committed_ms: Some(500),
                        },
                        settle_until_ms: 600_000,
                        late_looks: 12,
                        read_ms: 500_000,
                        since_ms: 400_000,
                        keys: ["security-scan".to_owned()].into(),
                    },
                    Followed {
                        tip: RefTip {
                            git_ref: BuildRef::Tag("v1.0".into()),
                            commit: "beef".into(),
                            message: None,
                            author: Some("Jane".into()),
                            author_ids: Default::default(),
                            committed_ms: None,
                        },
                        settle_until_ms: 700_000,
                        late_looks: 0,
                        read_ms: 0,
                        since_ms: 0,
                        keys: BTreeSet::new(),
                    },
                ],
                late_keys: [("security-scan".to_owned(), 1_200_000)].into(),
            },
            builds: vec![(done.key.clone(), stored(&done))],
            health: vec![(main_lane(), Health::Failing)],
            notifications: vec![
                Notification {
                    channel: "ci".into(),
                    event: EventKind::Failed,
                    build: done.clone(),
                    mention: None,
                    war_room: None,
                },
                Notification {
                    channel: "ops".into(),
                    event: EventKind::Failed,
                    build: done.clone(),
                    mention: Some(Mention {
                        user: crate::domain::ZoomUser::Email("jane@example.com".into()),
                        name: Some("Jane".into()),
                    }),
                    war_room: Some(WarRoom {
                        lane: main_lane(),
                        streak: "s1".into(),
                    }),
                },
            ],
            meetings: vec![(main_lane(), Some("s1".into()))],
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store.commit_poll(&update, 1_000).unwrap();
        }
        let store = reopen(dir.path());
        assert_eq!(
            store.cursor(&repo, SourceKind::Statuses).unwrap(),
            Some(update.cursor.clone())
        );
        assert_eq!(store.cursor(&repo, SourceKind::Pipelines).unwrap(), None);
        let depths = store.outbox_depths().unwrap();
        assert_eq!(depths, [("ci".to_owned(), 1), ("ops".to_owned(), 1)].into());
        let summary = store.repo_summary(&repo).unwrap();
        assert_eq!(summary.lanes, vec![(main_lane(), Health::Failing)]);
        assert_eq!((summary.builds, summary.unfinished), (1, 0));
        assert_eq!(
            summary.last,
            Some((BuildState::Completed(Outcome::Failed), 1_000))
        );
        let other = store.repo_summary(&RepoId::new("acme", "web")).unwrap();
        assert_eq!((other.builds, other.lanes.len()), (0, 0));
        assert_eq!(store.build(&done.key).unwrap(), Some(stored(&done)));
        assert_eq!(
            store.health(&repo, &main_lane()).unwrap(),
            Some(Health::Failing)
        );
        // The war room its streak wants, in the same transaction; recorded once, for the
        // streak it is for only, and forgotten by a fix.
        let wanted = store.meeting(&repo, &main_lane()).unwrap();
        assert_eq!(
            wanted,
            Some(StoredMeeting {
                streak: "s1".into(),
                meeting: None
            })
        );
        let ops = store.outbox("ops").unwrap().rows.remove(0);
        assert_eq!(ops.war_room, update.notifications[1].war_room);
        assert_eq!(ops.mention, update.notifications[1].mention);
        let record = |streak: &str, id: &str| {
            store
                .record_meeting(&repo, &main_lane(), streak, id, "https://zoom.us/j/1")
                .unwrap()
        };
        assert!(!record("s0", "8"), "another streak's");
        assert!(record("s1", "1"));
        assert!(!record("s1", "2"), "one meeting per streak");
        assert_eq!(
            store.meeting(&repo, &main_lane()).unwrap().unwrap().meeting,
            Some(("1".into(), "https://zoom.us/j/1".into()))
        );
        let fixed = PollUpdate {
            meetings: vec![(main_lane(), None)],
            ..update_of(&repo, SourceKind::Statuses, &[])
        };
        store.commit_poll(&fixed, 2_000).unwrap();
        assert_eq!(store.meeting(&repo, &main_lane()).unwrap(), None);
        let row = store.outbox("ci").unwrap().rows.remove(0);
        assert_eq!(
            (row.event, &row.build, row.attempts),
            (EventKind::Failed, &done, 0)
        );
        store.reschedule(&row, 5_000, 2_000).unwrap();
        store.reschedule(&row, 9_000, 6_000).unwrap();
        let again = store.outbox("ci").unwrap().rows.remove(0);
        assert_eq!(
            (again.seq, again.attempts, again.next_attempt_ms),
            (row.seq, 2, 9_000)
        );
        // The first failure is kept: the fold rule counts what came after it.
        assert_eq!(again.first_failed_ms, Some(2_000));
        store
            .complete(&[again], Some((&done.key, "MSG-1")))
            .unwrap();
        assert!(store.outbox("ci").unwrap().rows.is_empty());
        assert_eq!(
            store.card_message("ci", &done.key).unwrap().as_deref(),
            Some("MSG-1")
        );
        assert_eq!(store.card_message("ops", &done.key).unwrap(), None);
        let ops = store.outbox("ops").unwrap().rows.remove(0);
        store
            .dead_letter(&ops, "HTTP 403, code 7004", 9_000)
            .unwrap();
        assert_eq!(store.outbox_len(), 0);
        let dead = store.dead_letters().unwrap();
        assert_eq!(
            (
                dead.len(),
                dead[0].reason.as_str(),
                dead[0].channel.as_str()
            ),
            (1, "HTTP 403, code 7004", "ops")
        );
        // Back to the outbox from the CLI, then dropped for good after a second death.
        assert!(store.retry_dead_letter(ops.seq, 10_000).unwrap());
        let retried = store.outbox("ops").unwrap().rows.remove(0);
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
    fn watching_begins_once_per_source_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (api, web) = (RepoId::new("acme", "api"), RepoId::new("acme", "web"));
        let (pipelines, statuses) = (SourceKind::Pipelines, SourceKind::Statuses);
        assert_eq!(store.watching_since(&api, pipelines, 100).unwrap(), 100);
        assert_eq!(store.watching_since(&api, pipelines, 200).unwrap(), 100);
        // Each source of a repository is watched from its own start.
        assert_eq!(store.watching_since(&api, statuses, 300).unwrap(), 300);
        assert_eq!(store.watching_since(&api, statuses, 400).unwrap(), 300);
        assert_eq!(store.watching_since(&web, statuses, 450).unwrap(), 450);
        for source in [pipelines, statuses] {
            store
                .commit_poll(&update_of(&api, source, &[]), 500)
                .unwrap();
        }
        store
            .commit_poll(&update_of(&web, statuses, &[]), 500)
            .unwrap();

        // api's statuses are no longer polled: forgotten, so they are baselined when they
        // come back rather than replayed.
        let watched = BTreeSet::from([(api.clone(), pipelines), (web.clone(), statuses)]);
        assert_eq!(store.forget_unwatched(&watched).unwrap(), 1);
        assert_eq!(store.cursor(&api, statuses).unwrap(), None);
        assert!(store.cursor(&api, pipelines).unwrap().is_some());
        assert!(store.cursor(&web, statuses).unwrap().is_some());
        assert_eq!(store.watching_since(&api, statuses, 600).unwrap(), 600);
        assert_eq!(store.watching_since(&api, pipelines, 700).unwrap(), 100);
        assert_eq!(store.watching_since(&web, statuses, 800).unwrap(), 450);
        // A reload forgets only the watches new to it.
        let fresh = BTreeSet::from([(web.clone(), statuses)]);
        assert_eq!(store.forget(&fresh).unwrap(), 1);
        assert_eq!(store.cursor(&web, statuses).unwrap(), None);
        assert!(store.cursor(&api, pipelines).unwrap().is_some());
        assert_eq!(store.watching_since(&web, statuses, 900).unwrap(), 900);
    }

    #[test]
    fn schedules_are_kept_while_the_repository_s_pipelines_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (api, web) = (RepoId::new("acme", "api"), RepoId::new("acme", "web"));
        let hourly = SchedulesRecord {
            read_ms: 100,
            patterns: vec!["0 0 * * * ? *".to_owned()],
        };
        store.set_schedules(&api, &hourly).unwrap();
        store.set_schedules(&web, &hourly).unwrap();
        assert_eq!(store.schedules(&api).unwrap(), Some(hourly.clone()));
        // Read again and none found: forgotten.
        let none = SchedulesRecord {
            read_ms: 200,
            patterns: Vec::new(),
        };
        store.set_schedules(&web, &none).unwrap();
        assert_eq!(store.schedules(&web).unwrap(), None);
        // api's statuses are still watched, its pipelines not: its schedules go.
        store.set_schedules(&web, &hourly).unwrap();
        let watched = BTreeSet::from([
            (api.clone(), SourceKind::Statuses),
            (web.clone(), SourceKind::Pipelines),
        ]);
        store.forget_unwatched(&watched).unwrap();
        assert_eq!(store.schedules(&api).unwrap(), None);
        assert_eq!(store.schedules(&web).unwrap(), Some(hourly));
        // A watch a reload adds starts afresh.
        store
            .forget(&BTreeSet::from([(web.clone(), SourceKind::Pipelines)]))
            .unwrap();
        assert_eq!(store.schedules(&web).unwrap(), None);
    }

    #[test]
    fn what_the_scheduler_learnt_is_kept_per_watch_until_it_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (api, web) = (RepoId::new("acme", "api"), RepoId::new("acme", "web"));
        let (pipelines, statuses) = (SourceKind::Pipelines, SourceKind::Statuses);
        let lanes = [
            Lane {
                git_ref: BuildRef::Branch("main".into()),
                job: String::new(),
            },
            Lane {
                git_ref: BuildRef::Tag("v1".into()),
                job: String::new(),
            },
            Lane {
                git_ref: BuildRef::Commit,
                job: "deploy-staging".into(),
            },
        ];
        let times = [90_000.0, 300_000.0, 1_200_000.0];
        let learned = LearnedRecord::new(1_000, 8.0, lanes.iter().zip(times));
        store.set_learned(&api, pipelines, &learned).unwrap();
        store.set_learned(&web, statuses, &learned).unwrap();
        drop(store);
        let store = Store::open_waiting(dir.path(), std::time::Duration::from_secs(5)).unwrap();
        let kept = store.learned(&api, pipelines).unwrap().unwrap();
        // Every kind of lane comes back as it was.
        let mut durations: Vec<(Lane, f64)> = kept.durations().collect();
        durations.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(durations, lanes.into_iter().zip(times).collect::<Vec<_>>());
        // The activity halves every half-life from when it was written; never negative.
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(kept.activity_at(1_000, hour), 8.0);
        assert_eq!(kept.activity_at(1_000 + 3_600_000, hour), 4.0);
        assert_eq!(kept.activity_at(0, hour), 8.0);
        assert_eq!(store.learned(&api, statuses).unwrap(), None);
        // web's statuses are not watched any more; a reload adding api's pipelines afresh
        // forgets theirs.
        let watched = BTreeSet::from([(api.clone(), pipelines)]);
        store.forget_unwatched(&watched).unwrap();
        assert_eq!(store.learned(&web, statuses).unwrap(), None);
        assert!(store.learned(&api, pipelines).unwrap().is_some());
        store.forget(&watched).unwrap();
        assert_eq!(store.learned(&api, pipelines).unwrap(), None);
    }

    #[test]
    fn a_learned_record_holding_no_sane_number_gives_none() {
        let lane = Lane {
            git_ref: BuildRef::Branch("main".into()),
            job: String::new(),
        };
        let hour = std::time::Duration::from_secs(3600);
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            let record = LearnedRecord::new(0, bad, [(&lane, bad)]);
            assert_eq!(record.activity_at(0, hour), 0.0, "{bad}");
            assert_eq!(record.durations().count(), 0, "{bad}");
        }
    }

    #[test]
    fn scan_positions_are_kept_per_credential_until_their_workspace_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.scanned_to("ci", "acme").unwrap(), None);
        store.set_scanned_to("ci", "Acme", 100).unwrap();
        store.set_scanned_to("ci-2", "acme", 200).unwrap();
        store.set_scanned_to("ci", "other", 300).unwrap();
        store.set_scanned_to("ci", "acme", 150).unwrap();
        // Workspace ids are compared as Bitbucket does, whatever case a URL wrote.
        assert_eq!(store.scanned_to("ci", "ACME").unwrap(), Some(150));
        assert_eq!(store.scanned_to("ci-2", "acme").unwrap(), Some(200));
        // Only acme is still watched: other's position goes with its repositories.
        let watched = BTreeSet::from([(RepoId::new("Acme", "api"), SourceKind::Pipelines)]);
        store.forget_unwatched(&watched).unwrap();
        assert_eq!(store.scanned_to("ci", "other").unwrap(), None);
        assert_eq!(store.scanned_to("ci", "acme").unwrap(), Some(150));
        drop(store);
        let store = Store::open_waiting(dir.path(), std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(store.scanned_to("ci-2", "acme").unwrap(), Some(200));
    }

    #[test]
    fn a_schema_1_store_is_migrated_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (api, web, new) = (
            RepoId::new("acme", "api"),
            RepoId::new("acme", "web"),
            RepoId::new("acme", "new"),
        );
        let v1_cursor = |json: &str| json.as_bytes().to_vec();
        let v1_since = |at: i64, source: &str| {
            let mut value = at.to_be_bytes().to_vec();
            value.extend_from_slice(source.as_bytes());
            value
        };
        let v1_since_key = |repo: &RepoId| {
            let mut key = SINCE_PREFIX.to_vec();
            key.extend_from_slice(&repo_key(repo));
            key
        };
        // A row as schema 1 wrote it: the domain's build, branch and branch_url included.
        let v1_row = r#"{"channel":"ci","event":"failed","build":{"key":{"repo":{"instance":"cloud","owner":"acme","slug":"api"},"id":"{1}"},"job":"pipeline","name":"Pipeline","number":1,"revision":5,"branch":"main","commit":null,"commit_message":null,"author":null,"state":{"Completed":"Failed"},"duration_secs":null,"created_ms":0,"url":"https://bitbucket.org/acme/api/pipelines/results/1","commit_url":null,"branch_url":"https://bitbucket.org/acme/api/branch/main"},"enqueued_ms":1,"attempts":0,"next_attempt_ms":1}"#;
        {
            let db = sled::open(dir.path()).unwrap();
            let meta = db.open_tree(META).unwrap();
            meta.insert(SCHEMA_KEY, &1u32.to_be_bytes()).unwrap();
            let repos = db.open_tree(REPOS).unwrap();
            // api: a pipelines cursor saying so; web: a statuses cursor from before the source
            // was kept, which its shape tells.
            repos
                .insert(
                    repo_key(&api),
                    v1_cursor(r#"{"high_water":7,"active":[],"source":"pipelines"}"#),
                )
                .unwrap();
            repos
                .insert(
                    repo_key(&web),
                    v1_cursor(r#"{"high_water":0,"active":[],"branch_tips":{"main":"c0ffee"}}"#),
                )
                .unwrap();
            meta.insert(v1_since_key(&api), v1_since(100, "pipelines"))
                .unwrap();
            meta.insert(v1_since_key(&web), v1_since(200, "")).unwrap();
            // Never polled, source unknown: watching begins again.
            meta.insert(v1_since_key(&new), v1_since(300, "")).unwrap();
            db.open_tree(OUTBOX)
                .unwrap()
                .insert(outbox_key("ci", 1), v1_row.as_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let store = reopen(dir.path());
        let api_cursor = store.cursor(&api, SourceKind::Pipelines).unwrap().unwrap();
        assert_eq!(api_cursor.high_water, 7);
        let web_cursor = store.cursor(&web, SourceKind::Statuses).unwrap().unwrap();
        assert_eq!(web_cursor.branch_tips["main"], "c0ffee");
        assert_eq!(store.cursor(&api, SourceKind::Statuses).unwrap(), None);
        assert_eq!(
            store
                .watching_since(&api, SourceKind::Pipelines, 999)
                .unwrap(),
            100
        );
        assert_eq!(
            store
                .watching_since(&web, SourceKind::Statuses, 999)
                .unwrap(),
            200
        );
        assert_eq!(
            store
                .watching_since(&new, SourceKind::Pipelines, 999)
                .unwrap(),
            999
        );
        let row = store.outbox("ci").unwrap().rows.remove(0);
        assert_eq!(row.build.git_ref, BuildRef::Branch("main".into()));
        assert_eq!(
            row.build.ref_url.as_deref(),
            Some("https://bitbucket.org/acme/api/branch/main")
        );
        drop(store);
        // Opened again, it is schema 2 and stays as it is.
        let store = reopen(dir.path());
        assert_eq!(
            store.cursor(&api, SourceKind::Pipelines).unwrap(),
            Some(api_cursor)
        );
    }

    #[test]
    fn an_unreadable_row_becomes_a_dead_letter_and_the_channel_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoId::new("acme", "api");
        let done = status(&repo, "{1}", BuildState::Completed(Outcome::Failed));
        let tag_build = BuildStatus {
            git_ref: BuildRef::Tag("v1.0".into()),
            ..status(&repo, "{2}", BuildState::Completed(Outcome::Successful))
        };
        // A number well above those the store hands out, which start at 0.
        let bad = 1 << 40;
        store
            .outbox
            .insert(outbox_key("ci", bad), &b"{not json"[..])
            .unwrap();
        let mut update = update_of(&repo, SourceKind::Pipelines, &[]);
        update.notifications = [
            (EventKind::Failed, &done),
            (EventKind::Succeeded, &tag_build),
        ]
        .into_iter()
        .map(|(event, build)| Notification {
            channel: "ci".into(),
            event,
            build: build.clone(),
            mention: None,
            war_room: None,
        })
        .collect();
        store.commit_poll(&update, 1_000).unwrap();

        let outbox = store.outbox("ci").unwrap();
        assert_eq!(outbox.rows.len(), 2);
        assert_eq!(outbox.rows[1].build.git_ref, BuildRef::Tag("v1.0".into()));
        let [unreadable] = outbox.unreadable.as_slice() else {
            panic!("one unreadable row: {:?}", outbox.unreadable);
        };
        store.dead_letter_unreadable(unreadable, 2_000).unwrap();
        let outbox = store.outbox("ci").unwrap();
        assert_eq!((outbox.rows.len(), outbox.unreadable.len()), (2, 0));
        let dead = store.dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].seq, dead[0].channel.as_str()), (bad, "ci"));
        assert!(dead[0].row.is_none());
        assert!(
            dead[0].reason.contains("could not be read"),
            "{}",
            dead[0].reason
        );
        // It cannot be retried, only dropped.
        assert!(matches!(
            store.retry_dead_letter(bad, 3_000),
            Err(StoreError::Unreadable(seq)) if seq == bad
        ));
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        assert!(store.drop_dead_letter(bad).unwrap());
        assert!(store.dead_letters().unwrap().is_empty());
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
            Store::open_waiting(dir.path(), std::time::Duration::from_secs(5)),
            Err(StoreError::Schema { found: 99 })
        ));
    }

    #[test]
    fn mutes_survive_reopening_end_once_and_leave_with_the_rows_they_summarise() {
        let dir = tempfile::tempdir().unwrap();
        let api = RepoId::new("acme", "api");
        let mute = |scope: MuteScope, since_ms, until_ms| Mute {
            channel: "ci".into(),
            scope,
            since_ms,
            until_ms,
            by: "jane@example.com".into(),
        };
        let failed = status(&api, "{1}", BuildState::Completed(Outcome::Failed));
        {
            let store = Store::open(dir.path()).unwrap();
            let set = mute(MuteScope::Repo(api.clone()), 1_000, 9_000);
            assert_eq!(store.set_mute(&set).unwrap(), None);
            // Longer: the one in force is replaced, and said so.
            let longer = mute(MuteScope::Repo(api.clone()), 2_000, 19_000);
            assert_eq!(store.set_mute(&longer).unwrap(), Some(set));
            store.set_mute(&mute(MuteScope::All, 2_000, 5_000)).unwrap();
            let mut update = update_of(&api, SourceKind::Pipelines, &[&failed]);
            update.notifications = vec![Notification {
                channel: "ci".into(),
                event: EventKind::Failed,
                build: failed.clone(),
                mention: None,
                war_room: None,
            }];
            store.commit_poll(&update, 3_000).unwrap();
        }
        let store = reopen(dir.path());
        let mutes = store.mutes(Some("ci")).unwrap();
        assert_eq!(
            mutes,
            [
                mute(MuteScope::All, 2_000, 5_000),
                mute(MuteScope::Repo(api.clone()), 2_000, 19_000)
            ]
        );
        assert!(store.mutes(Some("releases")).unwrap().is_empty());
        assert_eq!(store.mutes(None).unwrap(), mutes);
        // `all` has ended by itself at 5 s: unmuting at 6 s ends only the other one.
        let ended = store.end_mutes("ci", None, 6_000).unwrap();
        assert_eq!(ended, [mute(MuteScope::Repo(api.clone()), 2_000, 6_000)]);
        assert!(store.end_mutes("ci", None, 6_000).unwrap().is_empty());
        // Muted again before the summary went out: that mute is kept when the summary of the
        // ended one removes what it stood for.
        let again = mute(MuteScope::Repo(api.clone()), 7_000, 20_000);
        store.set_mute(&again).unwrap();
        let rows = store.outbox("ci").unwrap().rows;
        assert_eq!(rows.len(), 1);
        let all = mute(MuteScope::All, 2_000, 5_000);
        store.finish_mutes(&rows, &[all, ended[0].clone()]).unwrap();
        assert!(store.outbox("ci").unwrap().rows.is_empty());
        assert_eq!(store.mutes(Some("ci")).unwrap(), [again]);
    }

    #[test]
    fn pruning_forgets_only_old_finished_builds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repo = RepoId::new("acme", "api");
        let old_done = status(&repo, "{old}", BuildState::Completed(Outcome::Successful));
        let old_running = status(&repo, "{run}", BuildState::Running);
        let update = update_of(&repo, SourceKind::Pipelines, &[&old_done, &old_running]);
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
        let update = update_of(&repo, SourceKind::Pipelines, &[&done]);
        store.commit_poll(&update, 1_000).unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let job = tokio::spawn(crate::housekeeping::run(
            store.clone(),
            "* * * * * *",
            std::time::Duration::from_secs(1),
            std::sync::Arc::new(crate::clock::SystemClock),
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

/// A store damaged on disk is refused, never opened as a new or a shorter one: sled's own
/// recovery reads its log up to the first damaged message and silently keeps only what came
/// before (see `Seal`), so these tests damage real sled files after a clean close.
#[cfg(test)]
mod damage_tests {
    use super::*;
    use crate::domain::Outcome;

    /// A store in `dir` with `polls` repositories polled, each leaving a cursor and a card
    /// queued for #ci, closed cleanly.
    fn filled(dir: &Path, polls: u32) {
        let store = Store::open(dir).unwrap();
        for i in 0..polls {
            let repo = RepoId::new("acme", format!("repo-{i}"));
            let build = tests::status(&repo, "{1}", BuildState::Completed(Outcome::Failed));
            let update = PollUpdate {
                cursor: RepoCursor {
                    high_water: u64::from(i) + 1,
                    ..RepoCursor::default()
                },
                notifications: vec![Notification {
                    channel: "ci".into(),
                    event: EventKind::Failed,
                    build: build.clone(),
                    mention: None,
                    war_room: None,
                }],
                ..tests::update_of(&repo, SourceKind::Pipelines, &[&build])
            };
            store
                .watching_since(&repo, SourceKind::Pipelines, 5)
                .unwrap();
            store.commit_poll(&update, 1).unwrap();
        }
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    /// A way of damaging bytes: its name and what it makes of a byte.
    type Damage = (&'static str, fn(u8) -> u8);

    /// Each way of damaging bytes: zeros (a lost block), 0xff, every bit flipped.
    const PATTERNS: [Damage; 3] = [("zeros", |_| 0), ("ones", |_| 0xff), ("flipped", |b| !b)];

    #[test]
    fn a_tree_a_newer_version_adds_does_not_make_a_sealed_store_look_damaged() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 3);
        {
            // What a newer bbzoom's first open does before the seal is checked.
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("added_by_a_newer_version").unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.outbox_len(), 3);
    }

    #[test]
    fn a_store_damaged_anywhere_in_its_file_is_refused_never_opened_short_or_empty() {
        let base = tempfile::tempdir().unwrap();
        let mut short = Vec::new();
        let mut tried = 0;
        // Two sizes: sled answers a small log's damage and a full segment's differently.
        for polls in [40, 150] {
            let clean = base.path().join(format!("clean-{polls}"));
            filled(&clean, polls);
            let db_len = std::fs::metadata(clean.join("db")).unwrap().len() as usize;
            // Where sled's log ends: the rest of its segment is zeros, whose damage loses nothing.
            let used = std::fs::read(clean.join("db"))
                .unwrap()
                .iter()
                .rposition(|&byte| byte != 0)
                .unwrap();
            for twentieth in 1..20 {
                for len in [1, 64, 4096] {
                    for (name, damage) in PATTERNS {
                        tried += 1;
                        let dir = base.path().join(format!("damaged-{tried}"));
                        copy_dir(&clean, &dir);
                        let offset = used * twentieth / 20;
                        let mut bytes = std::fs::read(dir.join("db")).unwrap();
                        for byte in &mut bytes[offset..(offset + len).min(db_len)] {
                            *byte = damage(*byte);
                        }
                        std::fs::write(dir.join("db"), &bytes).unwrap();
                        let outcome = match Store::open(&dir) {
                            Err(StoreError::Damaged { .. }) => continue,
                            // Damage to what sled no longer reads loses nothing.
                            Ok(store)
                                if store.outbox_len() == polls as usize
                                    && store.repos.len() == polls as usize =>
                            {
                                continue;
                            }
                            Ok(store) => format!(
                                "opened with {} rows queued and {} cursors",
                                store.outbox_len(),
                                store.repos.len()
                            ),
                            Err(err) => format!("refused, but not as damaged: {err}"),
                        };
                        short.push(format!(
                            "{polls} polls, {len} bytes {name} at {offset} of {db_len}: {outcome}"
                        ));
                    }
                }
            }
        }
        assert!(
            short.is_empty(),
            "{} of {tried} damaged stores were not refused as damaged:\n{}",
            short.len(),
            short.join("\n")
        );
    }

    /// A store sealed by a version without one of this version's trees opens: the seal is
    /// checked against the trees the store had, before this version adds its own.
    #[test]
    fn a_store_sealed_before_a_tree_was_added_opens() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 5);
        {
            // The same store as an older version closed it: without the newest tree.
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let newest = CHAT_CURSORS.as_bytes();
            assert!(db.drop_tree(newest).unwrap());
            db.flush().unwrap();
            let text = Contents::of(&db).unwrap().to_text();
            std::fs::write(dir.path().join(SEAL_FILE), text).unwrap();
        }
        let store = Store::open(dir.path()).expect("opens");
        assert_eq!(store.outbox_len(), 5);
    }

    #[test]
    fn a_store_killed_while_it_was_created_opens_as_a_new_one() {
        // What a first start killed between sled's first write and the schema version's flush
        // leaves: a `db` file that holds sled's own records and no schema version.
        let leftovers = |dir: &Path| {
            let db = sled::Config::new().path(dir).open().unwrap();
            db.open_tree(META).unwrap();
            db.flush().unwrap();
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::File::create(dir.path().join(CREATING_FILE)).unwrap();
        leftovers(dir.path());
        assert!(std::fs::metadata(dir.path().join("db")).unwrap().len() > 0);
        let store = Store::open(dir.path()).expect("a store cut short while created opens");
        assert_eq!((store.outbox_len(), store.repos.len()), (0, 0));
        assert!(
            !dir.path().join(CREATING_FILE).exists(),
            "created: the mark is gone"
        );
        drop(store);
        Store::open(dir.path()).expect("and opens again");

        // Without the mark the same file is a store that lost its beginning.
        let unmarked = tempfile::tempdir().unwrap();
        leftovers(unmarked.path());
        let err = Store::open(unmarked.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    }

    #[test]
    fn a_store_that_lost_its_beginning_is_refused_even_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 20);
        // As after a crash: no clean close recorded.
        let _ = std::fs::remove_file(dir.path().join(SEAL_FILE));
        let mut bytes = std::fs::read(dir.path().join("db")).unwrap();
        bytes[..4096].fill(0);
        std::fs::write(dir.path().join("db"), &bytes).unwrap();
        // sled may hold its lock a moment after the last handle dropped.
        let err = Store::open_waiting(dir.path(), std::time::Duration::from_secs(5))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
