//! Bitbucket Cloud: pipelines of a repository (newest first, and one by uuid), its Pipelines
//! schedules, branch and tag tips, and the build statuses external CI posted on a commit.

use super::{Account, BitbucketError, CommitStatuses, RefTips, join, wire};
use crate::domain::{BuildRef, BuildStatus, RefTip, RepoId};
use crate::schedule::Schedule;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use url::Url;

/// Pipelines per page when listing; new pipelines beyond one page are found by paging.
pub(crate) const PAGE_LEN: u32 = 10;

/// Most pages of refs read per poll (100 branches or tags each, most recent commit first).
const REF_PAGES: usize = 3;

/// Most commits read of a branch that moved by more than one between two looks (one page).
const BETWEEN_COMMITS: usize = 30;

/// Most pages one workspace scan reads (100 repositories each, most recently pushed first):
/// more than 300 repositories pushed to between two scans means a mass change (an import),
/// which the polls of each repository find anyway.
const SCAN_PAGES: usize = 3;

/// Most pages of schedules read per repository (100 each). Bitbucket limits how many schedules
/// a repository may have (its create answers 401 at the limit); a repository with more than
/// 200 has machine-made ones, and a truncated list only loses hints: the sweep still polls it.
const SCHEDULE_PAGES: usize = 2;

/// What a pipelines list adds to each pipeline: its commit's message and author (the author's
/// account, for `[people]`), which Bitbucket leaves out of the commit it embeds unless asked.
const PIPELINE_FIELDS: &str = "+values.target.commit.message,+values.target.commit.author";

/// A Bitbucket Cloud client speaking through one credential's account.
pub struct CloudClient {
    pub account: Arc<Account>,
    /// REST base, e.g. `https://api.bitbucket.org/2.0`.
    api_url: Url,
    /// Web base for links people open, e.g. `https://bitbucket.org`.
    web_url: Url,
    /// Whether `refs` (branches and tags in one list, one request) is served; cleared for good
    /// when it answered 404 while `refs/branches` of the same repository answered, and the two
    /// kinds are then listed apart.
    refs_listing: AtomicBool,
}

/// What one workspace scan found.
#[derive(Debug, Default)]
pub struct WorkspaceChanges {
    /// Each repository pushed to at or after the scan's time, with its `updated_on` (Unix
    /// milliseconds), most recent first.
    pub changed: Vec<(RepoId, i64)>,
    /// Requests the scan spent (one per page).
    pub requests: u64,
    /// More pages were left unread (see [`SCAN_PAGES`]).
    pub truncated: bool,
}

/// What reading a repository's schedules found.
#[derive(Debug, Default)]
pub struct RepoSchedules {
    /// Its enabled schedules whose patterns could be read, in Bitbucket's order.
    pub enabled: Vec<Schedule>,
    /// Requests the reading spent (one per page).
    pub requests: u64,
    /// More pages were left unread (see [`SCHEDULE_PAGES`]).
    pub truncated: bool,
}

/// One page of pipelines, already in domain form.
#[derive(Debug)]
pub struct PipelinePage {
    /// Newest first.
    pub builds: Vec<BuildStatus>,
    /// Where the next (older) page is, if any.
    pub(crate) next: Option<String>,
}

impl CloudClient {
    pub fn new(account: Arc<Account>, api_url: Url, web_url: Url) -> CloudClient {
        CloudClient {
            account,
            api_url,
            web_url,
            refs_listing: AtomicBool::new(true),
        }
    }

    /// The first page of `repo`'s pipelines, newest first, or the page at `next`.
    pub async fn pipelines(
        &self,
        repo: &RepoId,
        next: Option<&str>,
    ) -> Result<PipelinePage, BitbucketError> {
        let url = match next {
            Some(next) => self.same_origin(next)?,
            None => {
                let mut url = self.repo_url(repo, &["pipelines"])?;
                url.query_pairs_mut()
                    .append_pair("sort", "-created_on")
                    .append_pair("pagelen", &PAGE_LEN.to_string())
                    .append_pair("fields", PIPELINE_FIELDS);
                url
            }
        };
        let page: wire::Page<wire::Pipeline> = self.account.get(url).await?;
        Ok(PipelinePage {
            builds: page
                .values
                .iter()
                .map(|p| p.to_domain(repo, &self.web_url))
                .collect(),
            next: page.next,
        })
    }

    /// The repositories of `workspace` whose `updated_on` is at or after `since_ms` (Unix
    /// milliseconds), most recent first: one request for up to 100 of them. Bitbucket moves
    /// `updated_on` on commit activity (pushes, branches created or deleted), not on pipeline
    /// progress, statuses, or scheduled and manual runs, so this is a hint about pushes only.
    pub async fn changed_repositories(
        &self,
        workspace: &str,
        since_ms: i64,
    ) -> Result<WorkspaceChanges, BitbucketError> {
        let mut url = join(&self.api_url, &["repositories", workspace])?;
        url.query_pairs_mut()
            .append_pair("q", &format!("updated_on>=\"{}\"", rfc3339(since_ms)))
            .append_pair("sort", "-updated_on")
            .append_pair("pagelen", "100")
            .append_pair("fields", "next,values.slug,values.updated_on");
        let mut changes = WorkspaceChanges::default();
        for _ in 0..SCAN_PAGES {
            changes.requests += 1;
            let page: wire::Page<wire::RepositorySummary> = self.account.get(url).await?;
            changes.changed.extend(
                page.values
                    .iter()
                    .filter_map(|repo| repo.to_domain(workspace)),
            );
            match page.next {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(changes),
            }
        }
        changes.truncated = true;
        Ok(changes)
    }

    /// `repo`'s enabled Pipelines schedules. A schedule whose pattern cannot be read is logged
    /// and left out: one odd schedule must not hide the others.
    pub async fn schedules(&self, repo: &RepoId) -> Result<RepoSchedules, BitbucketError> {
        let mut url = self.repo_url(repo, &["pipelines_config", "schedules"])?;
        url.query_pairs_mut()
            .append_pair("pagelen", "100")
            .append_pair(
                "fields",
                "next,values.uuid,values.enabled,values.cron_pattern,values.target.ref_name",
            );
        let mut read = RepoSchedules::default();
        for _ in 0..SCHEDULE_PAGES {
            read.requests += 1;
            let page: wire::Page<wire::Schedule> = self.account.get(url).await?;
            for schedule in &page.values {
                match schedule.to_domain() {
                    Some(Ok(enabled)) => read.enabled.push(enabled),
                    Some(Err(problem)) => tracing::warn!(
                        %repo,
                        schedule = %schedule.uuid,
                        "a Pipelines schedule's cron pattern cannot be read, so polls are not timed by it: {problem}"
                    ),
                    None => {}
                }
            }
            match page.next {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(read),
            }
        }
        read.truncated = true;
        Ok(read)
    }

    /// One pipeline by its uuid (with braces).
    pub async fn pipeline(&self, repo: &RepoId, uuid: &str) -> Result<BuildStatus, BitbucketError> {
        let mut url = self.repo_url(repo, &["pipelines", uuid])?;
        url.query_pairs_mut()
            .append_pair("fields", &PIPELINE_FIELDS.replace("values.", ""));
        let pipeline: wire::Pipeline = self.account.get(url).await?;
        Ok(pipeline.to_domain(repo, &self.web_url))
    }

    /// Branch tips, and tag tips too with `tags` (one list, `refs`, when the server has it;
    /// else `refs/branches` and `refs/tags` apart, tags left out if neither is served).
    pub(crate) async fn ref_tips(
        &self,
        repo: &RepoId,
        tags: bool,
        known: impl Fn(&RefTip) -> bool,
    ) -> Result<RefTips, BitbucketError> {
        if tags && self.refs_listing.load(Ordering::Relaxed) {
            match self.list_refs(repo, &["refs"], &known).await {
                Err(BitbucketError::NotFound) => {}
                listed => return listed,
            }
            let mut listed = self.list_refs(repo, &["refs", "branches"], &known).await?;
            tracing::info!(%repo, "Bitbucket serves no refs list; branches and tags are listed apart from now on");
            self.refs_listing.store(false, Ordering::Relaxed);
            listed.requests += 1;
            self.add_tags(repo, &mut listed, &known).await?;
            return Ok(listed);
        }
        let mut listed = self.list_refs(repo, &["refs", "branches"], &known).await?;
        if tags {
            self.add_tags(repo, &mut listed, &known).await?;
        }
        Ok(listed)
    }

    /// The commits pushed to `branch` after `since` (newest first, the tip among them), as
    /// tips of the branch: a branch that moved by more than one commit between two looks. At
    /// most [`BETWEEN_COMMITS`] of them: a longer run of commits is read from its newest.
    pub(crate) async fn commits_since(
        &self,
        repo: &RepoId,
        branch: &str,
        since: &str,
    ) -> Result<Vec<RefTip>, BitbucketError> {
        let mut url = self.repo_url(repo, &["commits", branch])?;
        url.query_pairs_mut()
            .append_pair("exclude", since)
            .append_pair("pagelen", &BETWEEN_COMMITS.to_string())
            .append_pair(
                "fields",
                "values.hash,values.date,values.message,values.author.raw,values.author.user.display_name,values.author.user.uuid,values.author.user.account_id,values.author.user.nickname",
            );
        let page: wire::Page<wire::BranchTarget> = self.account.get(url).await?;
        Ok(page
            .values
            .into_iter()
            .filter_map(|commit| commit.into_tip(BuildRef::Branch(branch.to_owned())))
            .collect())
    }

    /// `refs/tags` added to `listed`; left out (with a note in the log) if it is not served.
    async fn add_tags(
        &self,
        repo: &RepoId,
        listed: &mut RefTips,
        known: impl Fn(&RefTip) -> bool,
    ) -> Result<(), BitbucketError> {
        match self.list_refs(repo, &["refs", "tags"], known).await {
            Ok(tags) => {
                listed.tips.extend(tags.tips);
                listed.requests += tags.requests;
            }
            Err(BitbucketError::NotFound) => {
                listed.requests += 1;
                tracing::debug!(%repo, "Bitbucket serves no tags list; statuses of tags are found at branch tips only");
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// One ref listing (`tail` under the repository), newest commit first. Reading stops at the
    /// first page that holds a ref for which `known` says its tip is unchanged: every ref after
    /// it points at an older commit. (A tag made today on an old commit sorts with that commit;
    /// up to three pages are read before giving up.)
    async fn list_refs(
        &self,
        repo: &RepoId,
        tail: &[&str],
        known: impl Fn(&RefTip) -> bool,
    ) -> Result<RefTips, BitbucketError> {
        let mut url = self.repo_url(repo, tail)?;
        url.query_pairs_mut()
            .append_pair("sort", "-target.date")
            .append_pair("pagelen", "100")
            .append_pair(
                "fields",
                "next,values.type,values.name,values.target.hash,values.target.date,values.target.message,values.target.author.raw,values.target.author.user.display_name,values.target.author.user.uuid,values.target.author.user.account_id,values.target.author.user.nickname",
            );
        let mut listed = RefTips::default();
        for _ in 0..REF_PAGES {
            listed.requests += 1;
            let page: wire::Page<wire::Ref> = self.account.get(url).await?;
            let before = listed.tips.len();
            let kind = tail.last().copied();
            listed
                .tips
                .extend(page.values.into_iter().filter_map(|r| r.into_tip(kind)));
            match page.next {
                Some(next) if !listed.tips[before..].iter().any(&known) => {
                    url = self.same_origin(&next)?
                }
                _ => break,
            }
        }
        Ok(listed)
    }

    /// Every build status posted on `tip`'s commit. A status's bare `refname` is the ref
    /// `known` says it names (a tag or a branch listed), else the ref it was found at.
    pub(crate) async fn statuses(
        &self,
        repo: &RepoId,
        tip: &RefTip,
        known: impl Fn(&str) -> Option<BuildRef>,
    ) -> Result<CommitStatuses, BitbucketError> {
        let mut url = self.repo_url(repo, &["commit", &tip.commit, "statuses"])?;
        url.query_pairs_mut().append_pair("pagelen", "100");
        let mut statuses = CommitStatuses::default();
        loop {
            let page: wire::Page<wire::CommitStatus> = self.account.get(url).await?;
            for status in &page.values {
                let build = status.to_domain(repo, tip, &known, &self.web_url);
                if wire::posted_by_pipelines(status.url.as_deref()) {
                    statuses.by_pipelines.insert(build.key.clone());
                }
                statuses.builds.push(build);
            }
            match page.next {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(statuses),
            }
        }
    }

    /// `{api}/repositories/{owner}/{slug}/{tail...}`, each segment percent-encoded.
    fn repo_url(&self, repo: &RepoId, tail: &[&str]) -> Result<Url, BitbucketError> {
        let head = ["repositories", repo.owner.as_str(), repo.slug.as_str()];
        join(&self.api_url, &[&head, tail].concat())
    }

    /// A `next` link, accepted only on the API's own origin so the credential never leaves it.
    fn same_origin(&self, next: &str) -> Result<Url, BitbucketError> {
        let url = Url::parse(next)
            .map_err(|e| BitbucketError::Malformed(format!("bad next link: {e}")))?;
        if url.origin() != self.api_url.origin() {
            return Err(BitbucketError::Malformed(format!(
                "next link leaves {}",
                self.api_url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }
}

/// Unix milliseconds as BBQL writes a time: RFC 3339 in UTC.
fn rfc3339(ms: i64) -> String {
    crate::clock::utc_text(ms, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitbucket::{Auth, RetryPolicy};
    use crate::domain::BuildRef;
    use crate::domain::RateLimit;
    use axum::Router;
    use axum::routing::get;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A Bitbucket that lists branches and tags apart but serves no `refs` (as a smaller
    /// implementation of the API may): counted, on loopback.
    async fn without_refs_listing(hits: Arc<AtomicUsize>) -> Url {
        let page = |kind: &'static str, name: &'static str| {
            let hits = hits.clone();
            move || {
                hits.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({
                    "values": [{"type": kind, "name": name, "target": {"hash": "c0ffee"}}]
                });
                async move { axum::Json(body) }
            }
        };
        let app = Router::new()
            .route(
                "/2.0/repositories/acme/api/refs/branches",
                get(page("branch", "main")),
            )
            .route(
                "/2.0/repositories/acme/api/refs/tags",
                get(page("tag", "v1.0")),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/2.0", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn without_a_refs_list_branches_and_tags_are_listed_apart_from_then_on() {
        let hits = Arc::new(AtomicUsize::new(0));
        let api = without_refs_listing(hits.clone()).await;
        let budget = RateLimit {
            requests: 1000,
            per: Duration::from_secs(1),
        };
        let http = crate::http::client(Duration::from_secs(5));
        let auth = Auth::Bearer("token".to_owned().into());
        let account = Arc::new(Account::new(
            "test".into(),
            http,
            auth,
            budget,
            RetryPolicy::default(),
        ));
        let client = CloudClient::new(account, api, Url::parse("https://bitbucket.org").unwrap());
        let repo = RepoId::new("acme", "api");
        let refs = |listed: &RefTips| -> Vec<BuildRef> {
            listed.tips.iter().map(|t| t.git_ref.clone()).collect()
        };
        let both = [
            BuildRef::Branch("main".into()),
            BuildRef::Tag("v1.0".into()),
        ];
        // The first time: `refs` 404s, then branches and tags are read apart.
        let first = client.ref_tips(&repo, true, |_| false).await.unwrap();
        assert_eq!((refs(&first), first.requests), (both.to_vec(), 3));
        // From then on, no more tries of `refs`.
        let again = client.ref_tips(&repo, true, |_| false).await.unwrap();
        assert_eq!((refs(&again), again.requests), (both.to_vec(), 2));
        let branches = client.ref_tips(&repo, false, |_| false).await.unwrap();
        assert_eq!(refs(&branches), both[..1]);
        assert_eq!(
            hits.load(Ordering::Relaxed),
            5,
            "the 404s are not counted here"
        );
    }
}
