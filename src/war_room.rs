//! War rooms (`meeting_on`): an instant Zoom meeting per failing streak of a lane (a branch or
//! tag and job), whose join link the lane's failure cards show.
//!
//! The poll decides, in its one transaction with the rows: a first failure begins a streak
//! and records that it wants a meeting (`meetings` tree), a lane still failing keeps its
//! streak, a fix forgets it; each row names the streak it shows. A delivery worker about to
//! show such a row creates the meeting if the streak has none yet (one worker at a time per
//! lane, across channels), records its id and join link against that streak (only if the lane
//! still wants it), and shows the link; later rows of the streak, after restarts too, find it.
//!
//! A card never waits for long and is never lost for a meeting: creation is retried a few
//! times with backoff, a `Retry-After` honoured up to a bound, all within a bound of its own;
//! past that, or refused, the card goes out without the link (logged) and the next card of
//! the streak tries again. Killed
//! between the creation and its record, bbzoom creates one more meeting at worst.
//!
//! The host's start link is never read from Zoom's answer (see `zoom::account`), so it is never
//! stored, logged or shown.

use crate::domain::{BuildStatus, Lane, RepoId, WarRoom};
use crate::retry::Backoff;
use crate::store::{Store, StoreError, StoredMeeting};
use crate::zoom::account::{AccountApi, Meeting};
use crate::zoom::{ErrorClass, ZoomError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How meeting creation is retried before a card goes out without its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingRetry {
    /// Between attempts.
    pub backoff: Backoff,
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The longest wait between two attempts: a `Retry-After` beyond it ends the attempts.
    pub longest_wait: Duration,
    /// The longest a card is held for its war room in all, requests included: past it the
    /// card goes out without the link (a meeting Zoom creates after that is one more at
    /// worst).
    pub hold: Duration,
}

/// Creates war-room meetings through the Server-to-Server app of `[zoom.events]`.
pub struct WarRooms {
    api: Arc<AccountApi>,
    /// Who hosts them (`[zoom.meetings] host`).
    host: String,
    retry: MeetingRetry,
}

/// One turn at a time per lane, across every delivery worker: two channels showing the same
/// failure must not both create its meeting. Lives as long as the daemon, across reloads.
#[derive(Debug, Default)]
pub(crate) struct MeetingTurns {
    by_lane: std::sync::Mutex<HashMap<(RepoId, Lane), Turn>>,
}

/// One lane's turn.
type Turn = Arc<tokio::sync::Mutex<()>>;

impl MeetingTurns {
    async fn turn(&self, repo: &RepoId, lane: &Lane) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .by_lane
            .lock()
            .expect("meeting turns lock")
            .entry((repo.clone(), lane.clone()))
            .or_default()
            .clone();
        lock.lock_owned().await
    }
}

impl WarRooms {
    pub fn new(api: Arc<AccountApi>, host: String, retry: MeetingRetry) -> WarRooms {
        WarRooms { api, host, retry }
    }

    /// The join link `build`'s card shows for `room`: its streak's meeting, created now if it
    /// has none yet. `None` when the lane no longer wants this streak's meeting (fixed, or
    /// failing anew since), or when Zoom would not create it in time (logged).
    pub(crate) async fn join_url(
        &self,
        store: &Store,
        turns: &MeetingTurns,
        build: &BuildStatus,
        room: &WarRoom,
    ) -> Result<Option<String>, StoreError> {
        let repo = build.key.repo.clone();
        let _turn = turns.turn(&repo, &room.lane).await;
        let stored = {
            let (repo, lane) = (repo.clone(), room.lane.clone());
            store
                .blocking(move |store| store.meeting(&repo, &lane))
                .await?
        };
        match stored {
            Some(StoredMeeting {
                streak,
                meeting: Some((_, join_url)),
            }) if streak == room.streak => Ok(Some(join_url)),
            Some(StoredMeeting {
                streak,
                meeting: None,
            }) if streak == room.streak => {
                let topic = crate::render::meeting_topic(build, &room.lane);
                let created = tokio::time::timeout(self.retry.hold, self.create(&topic))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ZoomError {
                            class: ErrorClass::Transient { retry_after: None },
                            detail: format!(
                                "Zoom did not create it within {}s",
                                self.retry.hold.as_secs()
                            ),
                        })
                    });
                let meeting = match created {
                    Ok(meeting) => meeting,
                    Err(err) => {
                        tracing::warn!(
                            repo = %repo, lane = %room.lane, %err,
                            "the war room could not be created; the card goes out without its \
                             link, and the next card of this failure tries again"
                        );
                        return Ok(None);
                    }
                };
                let Meeting { id, join_url } = meeting.clone();
                let (lane, streak, url) =
                    (room.lane.clone(), room.streak.clone(), join_url.clone());
                let recorded = store
                    .blocking(move |store| store.record_meeting(&repo, &lane, &streak, &id, &url))
                    .await?;
                tracing::info!(
                    repo = %build.key.repo, lane = %room.lane, meeting = %meeting.id, recorded,
                    "war room created"
                );
                Ok(Some(join_url))
            }
            // Fixed since the row was queued, or failing anew: this card is history.
            _ => Ok(None),
        }
    }

    /// Creates the meeting, retrying what may pass with backoff, never waiting past
    /// `longest_wait` at once.
    async fn create(&self, topic: &str) -> Result<Meeting, ZoomError> {
        let mut attempt = 0;
        loop {
            let err = match self.api.create_meeting(&self.host, topic).await {
                Ok(meeting) => return Ok(meeting),
                Err(err) => err,
            };
            let ErrorClass::Transient { retry_after } = err.class else {
                return Err(err);
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(err);
            }
            let wait = self
                .retry
                .backoff
                .delay(attempt - 1)
                .max(retry_after.unwrap_or_default());
            if wait > self.retry.longest_wait {
                return Err(ZoomError {
                    detail: format!(
                        "{} (Zoom asks to wait {}s, longer than a card is held)",
                        err.detail,
                        wait.as_secs()
                    ),
                    ..err
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}
