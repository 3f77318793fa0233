//! Workspace scans: one request asks a Bitbucket Cloud workspace which of its repositories
//! were pushed to since the last look (`updated_on`), and the scheduler polls those at once.
//!
//! A hint, never the only way to find a build: Bitbucket moves `updated_on` on pushes, not on
//! pipeline progress, statuses, scheduled or manual runs, which the plan's own polls find.
//! Each query reaches back [`OVERLAP`] scan intervals before the last scan began, so a
//! clock skew between us and Bitbucket or a push landing while a scan runs loses nothing;
//! what the overlap shows again is told apart by its `updated_on`. Where the scans got to is
//! kept in the store, so the first scan after a restart reaches back over the time bbzoom
//! was down, and the repositories pushed to meanwhile are polled first.

use crate::bitbucket::{CloudClient, WorkspaceChanges};
use crate::domain::RepoId;
use crate::poller::Source;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How many scan intervals each query reaches back (two minutes at the default 30 s).
const OVERLAP: u32 = 4;

/// One workspace's scans.
pub(crate) struct Workspace {
    pub(crate) name: String,
    /// A client of this credential for the workspace.
    pub(crate) client: Arc<CloudClient>,
    /// Where the next query starts (Unix milliseconds); `None` before the first scan ever
    /// (a restart takes it from the store).
    since_ms: Option<i64>,
    /// The `updated_on` each repository was last hinted at, so an overlap does not hint it
    /// again; forgotten once older than any query can reach.
    hinted: HashMap<RepoId, i64>,
}

/// The workspaces of a roster's Cloud watches, each with a client to scan it with. One not
/// in `old` resumes where `scanned_to` says its scans got to before.
pub(crate) fn workspaces<'a>(
    sources: impl IntoIterator<Item = (&'a RepoId, &'a Source)>,
    old: Vec<Workspace>,
    scanned_to: impl Fn(&str) -> Option<i64>,
) -> Vec<Workspace> {
    let mut by_name: BTreeMap<String, Arc<CloudClient>> = BTreeMap::new();
    for (repo, source) in sources {
        if let Source::Pipelines(client) | Source::CloudStatuses(client) = source {
            by_name
                .entry(repo.owner.clone())
                .or_insert_with(|| client.clone());
        }
    }
    let mut old: HashMap<String, Workspace> =
        old.into_iter().map(|w| (w.name.clone(), w)).collect();
    by_name
        .into_iter()
        .map(|(name, client)| match old.remove(&name) {
            // Kept: a reload must not lose what the last scan reached.
            Some(kept) => Workspace { client, ..kept },
            None => Workspace {
                since_ms: scanned_to(&name),
                name,
                client,
                hinted: HashMap::new(),
            },
        })
        .collect()
}

impl Workspace {
    /// Where a scan starting at `now_ms` queries from.
    pub(crate) fn query_since(&self, now_ms: i64, every: Duration) -> i64 {
        let reach = i64::try_from(every.saturating_mul(OVERLAP).as_millis()).unwrap_or(i64::MAX);
        self.since_ms.unwrap_or(now_ms).saturating_sub(reach)
    }

    /// Where the next scan's query starts, before its overlap; `None` before the first.
    pub(crate) fn scanned_to(&self) -> Option<i64> {
        self.since_ms
    }

    /// Takes in what a scan begun at `began_ms` with [`Workspace::query_since`] found; returns
    /// the repositories pushed to since they were last hinted.
    pub(crate) fn take(
        &mut self,
        changes: WorkspaceChanges,
        began_ms: i64,
        every: Duration,
    ) -> Vec<(RepoId, i64)> {
        // A truncated scan showed only the repositories pushed to most recently: the next one
        // starts from the oldest of them, so a mass push (or a long downtime) does not hold
        // every later scan to the same pages; what it left unread the sweep finds.
        let reached_ms = match changes.truncated {
            false => Some(began_ms),
            true => changes.changed.iter().map(|&(_, at)| at).min(),
        };
        let mut fresh = Vec::new();
        for (repo, updated_ms) in changes.changed {
            if self.hinted.get(&repo) != Some(&updated_ms) {
                self.hinted.insert(repo.clone(), updated_ms);
                fresh.push((repo, updated_ms));
            }
        }
        if let Some(reached_ms) = reached_ms {
            self.since_ms = Some(self.since_ms.map_or(reached_ms, |ms| ms.max(reached_ms)));
        }
        let oldest = self.query_since(began_ms, every);
        self.hinted.retain(|_, updated| *updated >= oldest);
        fresh
    }
}

/// The interval scans of `workspaces` workspaces come at: `every`, stretched so that they
/// never take more than `share` of the `rate` requests a second the plan spends.
pub(crate) fn interval(every: Duration, workspaces: usize, rate: f64, share: f64) -> Duration {
    let fastest = workspaces as f64 / (rate * share).max(f64::MIN_POSITIVE);
    every.max(crate::clock::secs_f64(fastest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_client;

    #[test]
    fn each_push_is_hinted_once_and_the_query_overlaps() {
        let every = Duration::from_secs(30);
        let mut ws = Workspace {
            name: "acme".into(),
            client: test_client(),
            since_ms: None,
            hinted: HashMap::new(),
        };
        let api = RepoId::new("acme", "api");
        let web = RepoId::new("acme", "web");
        // The first scan reaches back four intervals from now.
        assert_eq!(ws.query_since(1_000_000, every), 880_000);
        let changes = |list: &[(&RepoId, i64)], truncated| WorkspaceChanges {
            changed: list.iter().map(|(r, t)| ((*r).clone(), *t)).collect(),
            requests: 1,
            truncated,
        };
        assert_eq!(
            ws.take(changes(&[(&api, 990_000)], false), 1_000_000, every),
            vec![(api.clone(), 990_000)]
        );
        // The next query starts four intervals before the last scan began.
        assert_eq!(ws.query_since(1_030_000, every), 880_000);
        // The overlap shows api again, unchanged: not hinted twice. web is new.
        assert_eq!(
            ws.take(
                changes(&[(&web, 1_020_000), (&api, 990_000)], false),
                1_030_000,
                every
            ),
            vec![(web.clone(), 1_020_000)]
        );
        // api and web pushed again, and more than the pages hold: both hinted again.
        assert_eq!(
            ws.take(
                changes(&[(&api, 1_050_000), (&web, 1_040_000)], true),
                1_060_000,
                every
            ),
            vec![(api.clone(), 1_050_000), (web.clone(), 1_040_000)]
        );
        // That scan was truncated: the next one starts from the oldest push it showed.
        assert_eq!(ws.scanned_to(), Some(1_040_000));
        assert_eq!(ws.query_since(1_090_000, every), 920_000);
    }

    #[test]
    fn a_workspace_new_to_the_scheduler_resumes_where_its_scans_got_to() {
        let client = test_client();
        let acme = RepoId::new("acme", "api");
        let sources = [(&acme, &Source::Pipelines(client.clone()))];
        let resumed = workspaces(sources, Vec::new(), |name| {
            (name == "acme").then_some(700_000)
        });
        assert_eq!(resumed[0].scanned_to(), Some(700_000));
        // Kept across a reload: what the running scans reached, not the store's.
        let mut kept = resumed;
        kept[0].since_ms = Some(900_000);
        let kept = workspaces(sources, kept, |_| Some(700_000));
        assert_eq!(kept[0].scanned_to(), Some(900_000));
        let fresh = workspaces(sources, Vec::new(), |_| None);
        assert_eq!(fresh[0].scanned_to(), None);
    }

    #[test]
    fn scans_never_take_more_than_their_share() {
        let every = Duration::from_secs(30);
        // 900 an hour planned, a quarter of it is 0.0625 a second: one workspace every 16 s.
        assert_eq!(interval(every, 1, 0.25, 0.25), every);
        // Ten workspaces: one scan each every 160 s.
        assert_eq!(interval(every, 10, 0.25, 0.25), Duration::from_secs(160));
    }
}
