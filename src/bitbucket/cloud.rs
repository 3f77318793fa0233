//! Bitbucket Cloud: pipelines of a repository (newest first, and one by uuid), branch tips, and
//! the build statuses external CI posted on a commit.

use super::{Account, BitbucketError, join, wire};
use crate::domain::{BranchTip, BuildStatus, RepoId};
use std::sync::Arc;
use url::Url;

/// Pipelines per page when listing; new pipelines beyond one page are found by paging.
pub const PAGE_LEN: u32 = 10;

/// Most branch pages read per poll (100 branches each, most recently pushed first).
const BRANCH_PAGES: usize = 3;

/// A Bitbucket Cloud client speaking through one credential's account.
pub struct CloudClient {
    pub account: Arc<Account>,
    /// REST base, e.g. `https://api.bitbucket.org/2.0`.
    api_url: Url,
    /// Web base for links people open, e.g. `https://bitbucket.org`.
    web_url: Url,
}

/// One page of pipelines, already in domain form.
#[derive(Debug)]
pub struct PipelinePage {
    /// Newest first.
    pub builds: Vec<BuildStatus>,
    /// Where the next (older) page is, if any.
    pub next: Option<String>,
}

impl CloudClient {
    pub fn new(account: Arc<Account>, api_url: Url, web_url: Url) -> CloudClient {
        CloudClient {
            account,
            api_url,
            web_url,
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
                let mut url = self.repo_url(repo, &["pipelines"]);
                url.query_pairs_mut()
                    .append_pair("sort", "-created_on")
                    .append_pair("pagelen", &PAGE_LEN.to_string())
                    .append_pair("fields", "+values.target.commit.message");
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

    /// One pipeline by its uuid (with braces).
    pub async fn pipeline(&self, repo: &RepoId, uuid: &str) -> Result<BuildStatus, BitbucketError> {
        let mut url = self.repo_url(repo, &["pipelines", uuid]);
        url.query_pairs_mut()
            .append_pair("fields", "+target.commit.message");
        let pipeline: wire::Pipeline = self.account.get(url).await?;
        Ok(pipeline.to_domain(repo, &self.web_url))
    }

    /// Branch tips, most recently pushed first. Reading stops at the first page that holds a
    /// branch for which `known` says its tip is unchanged: every branch after it is older.
    pub async fn branch_tips(
        &self,
        repo: &RepoId,
        known: impl Fn(&BranchTip) -> bool,
    ) -> Result<Vec<BranchTip>, BitbucketError> {
        let mut url = self.repo_url(repo, &["refs", "branches"]);
        url.query_pairs_mut()
            .append_pair("sort", "-target.date")
            .append_pair("pagelen", "100")
            .append_pair(
                "fields",
                "next,values.name,values.target.hash,values.target.message,values.target.author.raw,values.target.author.user.display_name",
            );
        let mut tips = Vec::new();
        for _ in 0..BRANCH_PAGES {
            let page: wire::Page<wire::Branch> = self.account.get(url).await?;
            let before = tips.len();
            tips.extend(page.values.into_iter().filter_map(wire::Branch::into_tip));
            match page.next {
                Some(next) if !tips[before..].iter().any(&known) => {
                    url = self.same_origin(&next)?
                }
                _ => break,
            }
        }
        Ok(tips)
    }

    /// Every build status posted on `tip`'s commit.
    pub async fn statuses(
        &self,
        repo: &RepoId,
        tip: &BranchTip,
    ) -> Result<Vec<BuildStatus>, BitbucketError> {
        let mut url = self.repo_url(repo, &["commit", &tip.commit, "statuses"]);
        url.query_pairs_mut().append_pair("pagelen", "100");
        let mut statuses = Vec::new();
        loop {
            let page: wire::Page<wire::CommitStatus> = self.account.get(url).await?;
            statuses.extend(
                page.values
                    .iter()
                    .map(|s| s.to_domain(repo, tip, &self.web_url)),
            );
            match page.next {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(statuses),
            }
        }
    }

    /// `{api}/repositories/{owner}/{slug}/{tail...}`, each segment percent-encoded.
    fn repo_url(&self, repo: &RepoId, tail: &[&str]) -> Url {
        let mut url = join(&self.api_url, &["repositories", &repo.owner, &repo.slug]);
        url.path_segments_mut()
            .expect("an http(s) base URL")
            .extend(tail);
        url
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
