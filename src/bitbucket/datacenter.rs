//! Bitbucket Data Center / Server: branch and tag tips ordered by modification, and the build
//! statuses Bamboo, Jenkins and friends posted on a commit. Its JSON stays in this file.

use super::{Account, BitbucketError, CommitStatuses, RefTips, join, wire::first_line};
use crate::domain::{AuthorIds, BuildRef, BuildStatus, RefTip, RepoId};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

/// Most pages of branches or tags read per poll (100 each, most recently modified first).
const REF_PAGES: usize = 3;

/// The metadata key under which `details=true` puts a branch's latest commit.
const LATEST_COMMIT_METADATA: &str =
    "com.atlassian.bitbucket.server.bitbucket-branch:latest-commit-metadata";

/// A Data Center client speaking through one credential's account.
pub struct DataCenterClient {
    pub(crate) account: Arc<Account>,
    /// Base URL people browse; the REST API is under `{url}/rest`.
    url: Url,
}

/// Data Center's paging envelope.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(default = "default_true")]
    is_last_page: bool,
    next_page_start: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// A branch or a tag (`RestBranch`, `RestTag`): both name their commit `latestCommit`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ref {
    display_id: String,
    latest_commit: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildStatusWire {
    state: String,
    key: String,
    name: Option<String>,
    url: Option<String>,
    build_number: Option<String>,
    created_date: Option<i64>,
    updated_date: Option<i64>,
    /// Older servers' name for the creation time.
    date_added: Option<i64>,
    /// Milliseconds.
    duration: Option<u64>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

impl DataCenterClient {
    pub(crate) fn new(account: Arc<Account>, url: Url) -> DataCenterClient {
        DataCenterClient { account, url }
    }

    /// Branch tips, most recently modified first; reading stops at the first page holding a
    /// branch `known` says is unchanged, since every branch after it is older.
    pub(crate) async fn branch_tips(
        &self,
        repo: &RepoId,
        known: impl Fn(&RefTip) -> bool,
    ) -> Result<RefTips, BitbucketError> {
        self.ref_tips(repo, "branches", known).await
    }

    /// Tag tips, most recently modified first, read like [`DataCenterClient::branch_tips`].
    pub(crate) async fn tag_tips(
        &self,
        repo: &RepoId,
        known: impl Fn(&RefTip) -> bool,
    ) -> Result<RefTips, BitbucketError> {
        self.ref_tips(repo, "tags", known).await
    }

    /// `branches` or `tags` of `repo`, newest first.
    async fn ref_tips(
        &self,
        repo: &RepoId,
        kind: &str,
        known: impl Fn(&RefTip) -> bool,
    ) -> Result<RefTips, BitbucketError> {
        let base = join(
            &self.url,
            &[
                "rest",
                "api",
                "latest",
                "projects",
                &repo.owner,
                "repos",
                &repo.slug,
                kind,
            ],
        )?;
        let tag = kind == "tags";
        let mut listed = RefTips::default();
        let mut start = 0;
        for _ in 0..REF_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("orderBy", "MODIFICATION")
                .append_pair("details", "true")
                .append_pair("limit", "100")
                .append_pair("start", &start.to_string());
            listed.requests += 1;
            let page: Page<Ref> = self.account.get(url).await?;
            let before = listed.tips.len();
            listed
                .tips
                .extend(page.values.into_iter().filter_map(|r| r.into_tip(tag)));
            match page.next_page_start {
                Some(next) if !page.is_last_page && !listed.tips[before..].iter().any(&known) => {
                    start = next
                }
                _ => break,
            }
        }
        Ok(listed)
    }

    /// Every build status posted on `tip`'s commit (the server keeps the newest 100); a bare
    /// `ref` is placed with `known`, as on Cloud.
    pub(crate) async fn statuses(
        &self,
        repo: &RepoId,
        tip: &RefTip,
        known: impl Fn(&str) -> Option<BuildRef>,
    ) -> Result<CommitStatuses, BitbucketError> {
        let base = join(
            &self.url,
            &["rest", "build-status", "latest", "commits", &tip.commit],
        )?;
        let mut statuses = CommitStatuses::default();
        let mut start = 0;
        loop {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("limit", "100")
                .append_pair("start", &start.to_string());
            let page: Page<BuildStatusWire> = self.account.get(url).await?;
            statuses.builds.extend(
                page.values
                    .iter()
                    .map(|s| s.to_domain(repo, tip, &known, &self.url)),
            );
            match page.next_page_start {
                Some(next) if !page.is_last_page => start = next,
                _ => return Ok(statuses),
            }
        }
    }
}

impl Ref {
    /// The commit the branch (or with `tag`, the tag) points at.
    fn into_tip(self, tag: bool) -> Option<RefTip> {
        let metadata = self.metadata.get(LATEST_COMMIT_METADATA);
        let text = |pointer: &str| {
            metadata
                .and_then(|m| m.pointer(pointer))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let time = |pointer: &str| {
            metadata
                .and_then(|m| m.pointer(pointer))
                .and_then(serde_json::Value::as_i64)
        };
        Some(RefTip {
            committed_ms: time("/committerTimestamp").or_else(|| time("/authorTimestamp")),
            commit: self.latest_commit?,
            message: text("/message").as_deref().map(first_line),
            author: text("/author/displayName").or_else(|| text("/author/name")),
            // A person Data Center knows has a slug and a name; one it does not, the name and
            // e-mail address git recorded.
            author_ids: AuthorIds::new([
                text("/author/slug").as_deref(),
                text("/author/name").as_deref(),
                text("/author/emailAddress").as_deref(),
            ]),
            git_ref: if tag {
                BuildRef::Tag(self.display_id)
            } else {
                BuildRef::Branch(self.display_id)
            },
        })
    }
}

impl BuildStatusWire {
    fn to_domain(
        &self,
        repo: &RepoId,
        tip: &RefTip,
        known: impl Fn(&str) -> Option<BuildRef>,
        base: &Url,
    ) -> BuildStatus {
        let page = |tail: &[&str]| {
            let segments = ["projects", &repo.owner, "repos", &repo.slug].into_iter();
            crate::http::with_segments(base, segments.chain(tail.iter().copied()))
        };
        let git_ref = super::named_ref(self.git_ref.as_deref(), tip, known);
        let ref_url = match &git_ref {
            BuildRef::Branch(name) => Some(format!("refs/heads/{name}")),
            BuildRef::Tag(name) => Some(format!("refs/tags/{name}")),
            BuildRef::Commit => None,
        }
        .map(|at| {
            let mut url = page(&["browse"]);
            url.query_pairs_mut().append_pair("at", &at);
            url.to_string()
        });
        let created_ms = self.created_date.or(self.date_added).unwrap_or(0);
        super::PostedStatus {
            key: &self.key,
            name: self.name.as_deref(),
            state: &self.state,
            number: self
                .build_number
                .as_deref()
                .and_then(|n| n.trim().parse().ok()),
            git_ref,
            ref_url,
            commit_url: page(&["commits", &tip.commit]).to_string(),
            url: self.url.clone(),
            created_ms,
            updated_ms: self.updated_date.unwrap_or(created_ms),
            duration_secs: self.duration.map(|ms| ms / 1000),
        }
        .into_build(repo, tip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildState, Outcome};

    #[test]
    fn the_published_datacenter_example_converts() {
        let page: Page<BuildStatusWire> = serde_json::from_str(include_str!(
            "../../tests/data/datacenter-build-status-page.json"
        ))
        .unwrap();
        let repo = RepoId::on("corp", "PLAT", "platform");
        let tip = crate::arbitrary::branch_tip("master");
        let base = Url::parse("https://git.example.com").unwrap();
        let build = page.values[0].to_domain(&repo, &tip, |_| None, &base);
        assert_eq!(build.key.id, "abc/TEST-REP3");
        assert_eq!(build.name, "Database Matrix Tests");
        assert_eq!(build.number, Some(3));
        assert_eq!(build.git_ref, BuildRef::Branch("master".into()));
        assert_eq!(build.state, BuildState::Completed(Outcome::Successful));
        assert_eq!(build.duration_secs, Some(600));
        assert_eq!(
            (build.created_ms, build.revision),
            (1_587_533_099_278, 1_587_533_699_278)
        );
        assert_eq!(build.url, "https://bamboo.example.com/browse/TEST-REP3");
        assert!(page.is_last_page);
    }

    mod properties {
        use super::super::*;
        use crate::arbitrary::{branch_tip, json};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any JSON a Data Center instance could send decodes to an error, tips or builds,
            /// never a panic.
            #[test]
            fn any_datacenter_json_decodes_without_a_panic(value in json()) {
                let repo = RepoId::on("corp", "PLAT", "platform");
                let base = Url::parse("https://git.example.com").unwrap();
                if let Ok(page) = serde_json::from_value::<Page<Ref>>(value.clone()) {
                    for git_ref in page.values {
                        let _ = git_ref.into_tip(false);
                    }
                }
                if let Ok(page) = serde_json::from_value::<Page<BuildStatusWire>>(value) {
                    let tip = branch_tip("master");
                    for status in &page.values {
                        let _ = status.to_domain(&repo, &tip, |_| None, &base);
                    }
                }
            }
        }
    }
}
