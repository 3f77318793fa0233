//! Repository URLs as people paste them, turned into a [`RepoId`].
//!
//! Admins copy a repository's address from wherever they happen to be looking: the browser bar
//! on the source or pipelines page, or the clone dialog. All of those name the same repository,
//! so all are accepted; what matters is the workspace and slug, and that the host is the
//! configured Bitbucket (`[bitbucket] web_url`), so a typo'd host fails at startup instead of
//! polling nothing.

use crate::domain::RepoId;
use url::Url;

/// The forms accepted, for error messages.
const FORMS: &str = "write it as https://HOST/WORKSPACE/REPO (a browser address, optionally \
                     ending in .git or followed by /src/..., /pipelines/... and the like) or as \
                     git@HOST:WORKSPACE/REPO.git";

/// Parses `input` into the repository it names, checking it is on `web_url`'s host (and port).
///
/// Accepted: `https://bitbucket.org/acme/api` with an optional trailing slash, `.git`, page
/// tail (`/src/main/README.md`, `/pipelines/results/7`, `/branches/`, ...), query or fragment;
/// `https://user@bitbucket.org/acme/api.git`; `ssh://git@bitbucket.org/acme/api.git`; and the
/// scp-like `git@bitbucket.org:acme/api.git`. A URL with a password is refused without echoing
/// it, since the password would then sit in the configuration file and in logs.
pub fn parse_repo_url(input: &str, web_url: &Url) -> Result<RepoId, String> {
    let input = input.trim();
    let configured = web_url.host_str().unwrap_or_default();
    let (host, port, path) = if input.contains("://") {
        let url = Url::parse(input)
            .map_err(|e| format!("{input:?} is not a valid URL ({e}); {FORMS}"))?;
        if url.password().is_some() {
            return Err(format!(
                "the repository URL contains a password; remove it (credentials belong in the \
                 credentials file) and {FORMS}"
            ));
        }
        // An ssh URL's port is the SSH server's, unrelated to the web port.
        let port = match url.scheme() {
            "http" | "https" => url.port(),
            "ssh" => web_url.port(),
            other => {
                return Err(format!(
                    "{input:?} uses the unsupported scheme {other:?}; {FORMS}"
                ));
            }
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        (host, port, url.path().to_owned())
    } else if let Some((authority, path)) = input.split_once(':') {
        // scp-like syntax: [user@]host:path. The host is compared like a URL host.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (
            host.to_ascii_lowercase(),
            web_url.port(),
            format!("/{path}"),
        )
    } else {
        return Err(format!("{input:?} is not a repository URL; {FORMS}"));
    };

    if host != configured || port != web_url.port() {
        let shown = match web_url.port() {
            Some(p) => format!("{configured}:{p}"),
            None => configured.to_owned(),
        };
        return Err(format!(
            "{input:?} is not on the configured Bitbucket host {shown} ([bitbucket] web_url); \
             use a repository URL on {shown}, or change web_url"
        ));
    }

    // Skip the web URL's own path (normally none), then read WORKSPACE/REPO.
    let base = web_url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty());
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    for expected in base {
        if segments.next() != Some(expected) {
            return Err(format!(
                "{input:?} is not under the configured web_url {web_url}; {FORMS}"
            ));
        }
    }
    let owner = segments.next().unwrap_or_default();
    let slug = segments.next().unwrap_or_default();
    let slug = slug.strip_suffix(".git").unwrap_or(slug);
    if owner.is_empty() || slug.is_empty() {
        return Err(format!(
            "{input:?} does not name a workspace and a repository; {FORMS}"
        ));
    }
    for part in [owner, slug] {
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "{input:?}: {part:?} is not a valid workspace or repository name (letters, digits, \
                 '-', '_' and '.' only); {FORMS}"
            ));
        }
    }
    Ok(RepoId::new(owner, slug))
}

#[cfg(test)]
mod tests {
    use super::parse_repo_url;
    use crate::domain::RepoId;
    use url::Url;

    #[test]
    fn accepted_forms() {
        let cloud = Url::parse("https://bitbucket.org").unwrap();
        let sim = Url::parse("http://127.0.0.1:8080").unwrap();
        let prefixed = Url::parse("http://localhost:9000/bb/").unwrap();
        // (input, web_url, workspace, repository)
        let table = [
            ("https://bitbucket.org/acme/api", &cloud, "acme", "api"),
            ("https://bitbucket.org/acme/api/", &cloud, "acme", "api"),
            ("https://bitbucket.org/acme/api.git", &cloud, "acme", "api"),
            ("  https://bitbucket.org/acme/api  ", &cloud, "acme", "api"),
            (
                "https://bitbucket.org/acme/api/src/main/README.md",
                &cloud,
                "acme",
                "api",
            ),
            (
                "https://bitbucket.org/acme/api/pipelines/results/42",
                &cloud,
                "acme",
                "api",
            ),
            (
                "https://bitbucket.org/acme/api/branches/",
                &cloud,
                "acme",
                "api",
            ),
            (
                "https://bitbucket.org/acme/api/src/main/?at=release",
                &cloud,
                "acme",
                "api",
            ),
            (
                "https://BitBucket.org/acme/web-app_2.0",
                &cloud,
                "acme",
                "web-app_2.0",
            ),
            (
                "https://jdoe@bitbucket.org/acme/api.git",
                &cloud,
                "acme",
                "api",
            ),
            ("git@bitbucket.org:acme/api.git", &cloud, "acme", "api"),
            ("git@bitbucket.org:acme/api", &cloud, "acme", "api"),
            (
                "ssh://git@bitbucket.org/acme/api.git",
                &cloud,
                "acme",
                "api",
            ),
            ("http://127.0.0.1:8080/acme/api", &sim, "acme", "api"),
            ("git@127.0.0.1:acme/api.git", &sim, "acme", "api"),
            (
                "http://localhost:9000/bb/acme/api",
                &prefixed,
                "acme",
                "api",
            ),
        ];
        for (input, web_url, owner, slug) in table {
            assert_eq!(
                parse_repo_url(input, web_url),
                Ok(RepoId::new(owner, slug)),
                "{input:?} on {web_url}"
            );
        }
    }

    #[test]
    fn rejected_forms() {
        let cloud = Url::parse("https://bitbucket.org").unwrap();
        let sim = Url::parse("http://127.0.0.1:8080").unwrap();
        // (input, web_url, fragment of the error)
        let table = [
            (
                "https://github.com/acme/api",
                &cloud,
                "configured Bitbucket host bitbucket.org",
            ),
            (
                "http://127.0.0.1:9090/acme/api",
                &sim,
                "host 127.0.0.1:8080",
            ),
            (
                "https://bitbucket.org/acme/api",
                &sim,
                "host 127.0.0.1:8080",
            ),
            ("git@github.com:acme/api.git", &cloud, "host bitbucket.org"),
            (
                "https://bitbucket.org/acme",
                &cloud,
                "does not name a workspace and a repository",
            ),
            (
                "https://bitbucket.org/",
                &cloud,
                "git@HOST:WORKSPACE/REPO.git",
            ),
            ("acme/api", &cloud, "is not a repository URL"),
            (
                "ftp://bitbucket.org/acme/api",
                &cloud,
                "unsupported scheme \"ftp\"",
            ),
            (
                "https://bitbucket.org/acme/a%20b",
                &cloud,
                "not a valid workspace or repository",
            ),
            ("https://:", &cloud, "is not a valid URL"),
            (
                "http://localhost:9000/other/acme/api",
                &cloud,
                "host bitbucket.org",
            ),
        ];
        for (input, web_url, fragment) in table {
            let err = parse_repo_url(input, web_url).unwrap_err();
            assert!(
                err.contains(fragment),
                "{input:?}: {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn password_is_refused_and_not_echoed() {
        let cloud = Url::parse("https://bitbucket.org").unwrap();
        let err = parse_repo_url("https://jdoe:s3cr3t@bitbucket.org/acme/api", &cloud).unwrap_err();
        assert!(err.contains("contains a password"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn path_prefix_of_web_url_is_required() {
        let prefixed = Url::parse("http://localhost:9000/bb").unwrap();
        let err = parse_repo_url("http://localhost:9000/other/acme/api", &prefixed).unwrap_err();
        assert!(err.contains("not under the configured web_url"), "{err}");
    }
}
