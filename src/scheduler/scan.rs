//! Workspace scans: one request asks a Bitbucket Cloud workspace which of its repositories
//! were pushed to since the last look (`updated_on`), and the scheduler polls those at once.
//!
//! A hint, never the only way to find a build: Bitbucket moves `updated_on` on pushes, not on
//! pipeline progress, statuses, scheduled or manual runs, which the plan's own polls find.
//! Each query reaches back [`OVERLAP`] scan intervals before the last scan began, so a
//! clock skew between us and Bitbucket or a push landing while a scan runs loses nothing;
//! what the overlap shows again is told apart by its `updated_on`.

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
    /// Where the next query starts (Unix milliseconds, our clock); `None` before the first.
    since_ms: Option<i64>,
    /// The `updated_on` each repository was last hinted at, so an overlap does not hint it
    /// again; forgotten once older than any query can reach.
    hinted: HashMap<RepoId, i64>,
}

/// The workspaces of a roster's Cloud watches, each with a client to scan it with.
pub(crate) fn workspaces<'a>(
    sources: impl IntoIterator<Item = (&'a RepoId, &'a Source)>,
    old: Vec<Workspace>,
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
                name,
                client,
                since_ms: None,
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

    /// Takes in what a scan begun at `began_ms` with [`Workspace::query_since`] found; returns
    /// the repositories pushed to since they were last hinted.
    pub(crate) fn take(
        &mut self,
        changes: WorkspaceChanges,
        began_ms: i64,
        every: Duration,
    ) -> Vec<(RepoId, i64)> {
        let mut fresh = Vec::new();
        for (repo, updated_ms) in changes.changed {
            if self.hinted.get(&repo) != Some(&updated_ms) {
                self.hinted.insert(repo.clone(), updated_ms);
                fresh.push((repo, updated_ms));
            }
        }
        // A truncated scan did not reach back to its start: the next one starts there again.
        if !changes.truncated {
            self.since_ms = Some(began_ms);
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

    #[test]
    fn each_push_is_hinted_once_and_the_query_overlaps() {
        let every = Duration::from_secs(30);
        let client = Arc::new(CloudClient::new(
            Arc::new(crate::bitbucket::Account::new(
                "t".into(),
                crate::http::client(Duration::from_secs(1)),
                crate::bitbucket::Auth::Bearer("x".to_owned().into()),
                crate::domain::RateLimit {
                    requests: 10,
                    per: Duration::from_secs(1),
                },
                Default::default(),
            )),
            "http://127.0.0.1:1/2.0".parse().unwrap(),
            "http://127.0.0.1:1".parse().unwrap(),
        ));
        let mut ws = Workspace {
            name: "acme".into(),
            client,
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
        // api pushed again: hinted again.
        assert_eq!(
            ws.take(changes(&[(&api, 1_040_000)], true), 1_060_000, every),
            vec![(api.clone(), 1_040_000)]
        );
        // That scan was truncated: the next one starts where the last complete one did.
        assert_eq!(ws.query_since(1_090_000, every), 910_000);
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
