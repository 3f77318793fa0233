//! Repository URLs as people paste them, routed to the configured instance they are on and
//! turned into a [`RepoId`].
//!
//! Admins copy a repository's address from wherever they happen to be looking: the browser bar
//! on a source, browse or pipelines page, or the clone dialog, of Bitbucket Cloud or of a Data
//! Center server. All of those name the same repository, so all are accepted. The host must be
//! a configured instance's, so a typo'd host fails at startup instead of polling nothing; and
//! names are normalised the way each product compares them, so one repository written two ways
//! is recognised as one.

use crate::domain::{CLOUD, RepoId};
use std::fmt;
use url::Url;

/// The Cloud forms accepted, for error messages.
const CLOUD_FORMS: &str = "on Bitbucket Cloud write https://HOST/WORKSPACE/REPO (a browser \
                           address, optionally ending in .git or followed by /src/..., \
                           /pipelines/... and the like) or git@HOST:WORKSPACE/REPO.git";

/// The Data Center forms accepted, for error messages.
const DATACENTER_FORMS: &str = "on Data Center write https://HOST/projects/KEY/repos/REPO \
                                (optionally followed by /browse/...), \
                                https://HOST/users/USER/repos/REPO, \
                                https://HOST/scm/KEY/REPO.git or ssh://git@HOST:PORT/KEY/REPO.git";

/// What to do with an address that names no repository.
const PASTE: &str = "paste the repository's address from the browser bar or from its clone dialog";

/// Where a secret in a repository URL belongs instead.
const STORE_IT: &str = "a credential belongs in the encrypted credentials file: store it with \
                        `bbzoom connect bitbucket --name NAME` and name it in the subscription \
                        (`credential = \"NAME\"`, or `bbzoom configure URL --credential NAME`)";

/// Where an instance is served: host, explicit port and path prefix. Two instances on the same
/// site are one server configured twice, and a pasted web address belongs to the instance
/// whose site it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    host: String,
    /// `None` for the scheme's default port, so `https://h` and `https://h:443` are one site.
    port: Option<u16>,
    /// Path segments before the repository part (`["bitbucket"]` for `https://h/bitbucket`).
    prefix: Vec<String>,
}

impl Site {
    pub(crate) fn of(url: &Url) -> Site {
        Site {
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: url.port(),
            prefix: segments(url.path()),
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        self.prefix.iter().try_for_each(|s| write!(f, "/{s}"))
    }
}

/// How a pasted address reaches its server, which decides what routing may compare.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// A browser or HTTP clone address: its port and path prefix identify the instance.
    Web { port: Option<u16> },
    /// An SSH clone address: its port is the SSH server's and its path has no prefix, so only
    /// the host says which instance it is.
    Ssh,
}

/// A pasted address, split into what routing and reading the repository need.
struct Pasted {
    host: String,
    via: Via,
    /// Path segments, empty ones dropped; query and fragment are ignored.
    path: Vec<String>,
}

/// Parses `input` into the repository it names, on Bitbucket Cloud (`cloud`, the `[bitbucket]
/// web_url`) or on one of the `datacenter` instances (name and url).
///
/// Cloud: `https://bitbucket.org/acme/api` with an optional trailing slash, `.git`, page tail
/// (`/src/main/README.md`, `/pipelines/results/7`, ...), query or fragment;
/// `https://user@bitbucket.org/acme/api.git`; `ssh://git@bitbucket.org/acme/api.git`; and the
/// scp-like `git@bitbucket.org:acme/api.git`. Workspace and slug are lower-cased, as Cloud
/// compares them.
///
/// Data Center: `https://HOST/projects/KEY/repos/SLUG` with an optional `/browse/...` tail,
/// `https://HOST/users/USER/repos/SLUG` (a personal repository, owner `~USER`),
/// `https://HOST/scm/KEY/SLUG.git` and `ssh://git@HOST:7999/KEY/SLUG.git`. The project key is
/// upper-cased and the slug lower-cased, as Data Center shows them.
///
/// A URL carrying a secret (a password, or a credential-looking query or fragment parameter)
/// is refused and shown with the secret replaced by `***`, since it would otherwise sit in the
/// configuration file and in logs. `.` and `..` are no names: a path segment made of them
/// (also percent-encoded) is refused rather than resolved into another path.
pub(crate) fn parse_repo_url(
    input: &str,
    cloud: &Url,
    datacenter: &[(&str, &Url)],
) -> Result<RepoId, String> {
    let input = input.trim();
    let raw = Raw::split(input)?;
    if let Some(redacted) = raw.redacted() {
        return Err(format!(
            "{redacted:?} carries a secret (shown as ***), which would end up in the \
             configuration file and in logs; {STORE_IT}, and give the URL without it"
        ));
    }
    if let Some(dots) = raw.dot_segment() {
        return Err(format!(
            "{input:?}: {dots:?} is not a name (\".\" and \"..\" would step to another path); \
             {PASTE}"
        ));
    }
    let pasted = Pasted::parse(input, &raw)?;
    let instances: Vec<(&str, Site)> = std::iter::once((CLOUD, cloud))
        .chain(datacenter.iter().copied())
        .map(|(name, url)| (name, Site::of(url)))
        .collect();
    let (instance, rest) = route(input, &pasted, &instances)?;
    let is_cloud = instance == CLOUD;
    let (names, owner_kind, forms) = if is_cloud {
        (cloud_names(rest), "workspace", CLOUD_FORMS)
    } else {
        (
            datacenter_names(rest, pasted.via),
            "project",
            DATACENTER_FORMS,
        )
    };
    let Some((owner, slug)) = names else {
        return Err(format!(
            "{input:?} does not name a {owner_kind} and a repository; {forms}"
        ));
    };
    // Only Data Center has personal projects, `~USER`.
    let bare_owner = match owner.strip_prefix('~') {
        Some(user) if !is_cloud => user,
        _ => &owner,
    };
    for part in [bare_owner, &slug] {
        if is_dots(part)
            || part.is_empty()
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "{input:?}: {part:?} is not a valid owner or repository name (letters, digits, \
                 '-', '_' and '.' only, and not \".\" or \"..\"); {forms}"
            ));
        }
    }
    Ok(RepoId::on(instance, owner, slug))
}

impl Pasted {
    fn parse(input: &str, raw: &Raw) -> Result<Pasted, String> {
        if raw.scheme.is_some() {
            let url = Url::parse(input).map_err(|e| {
                // What a URL parser could not read may hold a password it did not recognise
                // (`user:pa/ss@host`): an address with user information is not echoed.
                let shown = if input.contains('@') {
                    "the repository address".to_owned()
                } else {
                    format!("{input:?}")
                };
                format!("{shown} is not a valid URL ({e}); {PASTE}")
            })?;
            let via = match url.scheme() {
                "http" | "https" => Via::Web { port: url.port() },
                "ssh" => Via::Ssh,
                other => {
                    return Err(format!(
                        "{input:?} uses the unsupported scheme {other:?}; {PASTE}"
                    ));
                }
            };
            // ssh is not a "special" scheme to the URL standard: its host keeps its case.
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            Ok(Pasted {
                host,
                via,
                path: segments(url.path()),
            })
        } else {
            Ok(Pasted {
                host: raw.host.to_ascii_lowercase(),
                via: Via::Ssh,
                path: segments(raw.path),
            })
        }
    }
}

/// A pasted address cut into its parts as written, before a URL parser resolves dot segments
/// or drops what it ignores: the text secrets and dot segments are looked for in.
struct Raw<'a> {
    /// `https`, `ssh`, ...; `None` for the scp-like `[user@]host:path`.
    scheme: Option<&'a str>,
    /// What comes before the last `@` of the authority: a user name, perhaps with a password.
    userinfo: Option<&'a str>,
    /// Host and port as written.
    host: &'a str,
    path: &'a str,
    /// The query and fragment, from the first `?` or `#` on (empty without them).
    tail: &'a str,
}

impl<'a> Raw<'a> {
    fn split(input: &'a str) -> Result<Raw<'a>, String> {
        let (scheme, rest) = match input.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, input),
        };
        let (authority, path_and_tail) = match scheme {
            // As the URL standard reads an authority: it ends at the path, query or fragment,
            // and a backslash is a slash on http(s). The user information is before its last `@`.
            Some(scheme) => {
                let web = ["http", "https"].contains(&scheme.to_ascii_lowercase().as_str());
                let end = rest
                    .find(|c| matches!(c, '/' | '?' | '#') || (web && c == '\\'))
                    .unwrap_or(rest.len());
                rest.split_at(end)
            }
            // scp-like: `[user@]host:path`; the user part ends at the last `@` before the path's
            // first `/`, so a password holding a `:` is not taken for the host.
            None => {
                let path_start = rest.find('/').unwrap_or(rest.len());
                let host_start = rest[..path_start].rfind('@').map_or(0, |at| at + 1);
                let Some(colon) = rest[host_start..].find(':') else {
                    return Err(format!("{input:?} is not a repository URL; {PASTE}"));
                };
                let (authority, path) = rest.split_at(host_start + colon);
                (authority, &path[1..])
            }
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        let tail_start = path_and_tail
            .find(['?', '#'])
            .unwrap_or(path_and_tail.len());
        let (path, tail) = path_and_tail.split_at(tail_start);
        Ok(Raw {
            scheme,
            userinfo,
            host,
            path,
            tail,
        })
    }

    /// The address with every secret replaced by `***`, or `None` if it carries none: the
    /// password of its user information, and the value of each credential-looking query or
    /// fragment parameter.
    fn redacted(&self) -> Option<String> {
        let password = self.userinfo.and_then(|u| u.split_once(':'));
        let mut secret = password.is_some();
        let mut tail = String::with_capacity(self.tail.len());
        // `?query#fragment`: each part's parameters; an OAuth token may come in the fragment.
        for (i, part) in self.tail.split('#').enumerate() {
            let (mark, pairs) = match i {
                0 => part.split_at(part.find('?').map_or(0, |_| 1)),
                _ => ("#", part),
            };
            tail.push_str(mark);
            let shown: Vec<String> = pairs
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if is_secret_key(key) => {
                        secret = true;
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            tail.push_str(&shown.join("&"));
        }
        let scheme = self.scheme.map(|s| format!("{s}://")).unwrap_or_default();
        let userinfo = match (password, self.userinfo) {
            (Some((user, _)), _) => format!("{user}:***@"),
            (None, Some(user)) => format!("{user}@"),
            (None, None) => String::new(),
        };
        // The scp-like form's `:` before its path.
        let colon = if self.scheme.is_some() { "" } else { ":" };
        secret.then(|| format!("{scheme}{userinfo}{}{colon}{}{tail}", self.host, self.path))
    }

    /// The first segment of the path that is `.` or `..` as a URL parser reads it (`%2e` is a
    /// dot, tabs and newlines are dropped, a backslash is a slash), as written.
    fn dot_segment(&self) -> Option<&'a str> {
        self.path.split(['/', '\\']).find(|segment| {
            is_dots(
                &segment
                    .replace(['\t', '\n', '\r'], "")
                    .to_ascii_lowercase()
                    .replace("%2e", "."),
            )
        })
    }
}

/// `.` or `..`: a path step, never a name.
fn is_dots(name: &str) -> bool {
    matches!(name, "." | "..")
}

/// Whether a query parameter's name says it holds a credential (`access_token`, `apiKey`,
/// `password`, `client_secret`, ...): any of its words ends like one. Bitbucket's own page
/// addresses use none of these (`at`, `until`, `author`, ...).
fn is_secret_key(key: &str) -> bool {
    const ENDINGS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "key",
        "auth",
        "sig",
        "signature",
        "jwt",
    ];
    let key = url::form_urlencoded::parse(key.as_bytes())
        .next()
        .map_or_else(|| key.to_owned(), |(k, _)| k.into_owned())
        .to_ascii_lowercase();
    key.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| ENDINGS.iter().any(|ending| word.ends_with(ending)))
}

/// The instance `pasted` is on, and its path after the instance's prefix. A web address goes to
/// the instance with the longest matching prefix; an SSH address to the only one on its host.
fn route<'p, 'i>(
    input: &str,
    pasted: &'p Pasted,
    instances: &[(&'i str, Site)],
) -> Result<(&'i str, &'p [String]), String> {
    let on_host = instances
        .iter()
        .filter(|(_, site)| site.host == pasted.host);
    let found = match pasted.via {
        Via::Web { port } => on_host
            .filter(|(_, site)| site.port == port && pasted.path.starts_with(&site.prefix))
            .max_by_key(|(_, site)| site.prefix.len())
            .map(|(name, site)| (*name, &pasted.path[site.prefix.len()..])),
        Via::Ssh => {
            let names: Vec<&str> = on_host.map(|(name, _)| *name).collect();
            if names.len() > 1 {
                return Err(format!(
                    "{input:?} is an SSH address on {}, which serves several configured \
                     instances ({}); use the repository's https address instead",
                    pasted.host,
                    names.join(", ")
                ));
            }
            names.first().map(|name| (*name, pasted.path.as_slice()))
        }
    };
    found.ok_or_else(|| {
        let configured: Vec<String> = instances
            .iter()
            .map(|(name, site)| match *name {
                CLOUD => format!("{site} ([bitbucket] web_url)"),
                name => format!("{site} ([bitbucket.datacenter.{name}])"),
            })
            .collect();
        format!(
            "{input:?} is on none of the configured Bitbucket hosts: {}; use a repository URL \
             on one of them, or configure its instance",
            configured.join(", ")
        )
    })
}

/// Workspace and slug from a Cloud path: `WORKSPACE/REPO[.git][/anything]`.
fn cloud_names(path: &[String]) -> Option<(String, String)> {
    match path {
        [workspace, slug, ..] => Some((workspace.to_lowercase(), repo_slug(slug))),
        _ => None,
    }
}

/// Project key (or `~USER`) and slug from a Data Center path, which depends on how it was
/// reached: web pages and HTTP clones have `projects/`, `users/` or `scm/` in front, SSH clones
/// are bare `KEY/REPO.git`.
fn datacenter_names(path: &[String], via: Via) -> Option<(String, String)> {
    let (owner, slug) = match (via, path) {
        (Via::Web { .. }, [kind, key, repos, slug, ..])
            if kind == "projects" && repos == "repos" =>
        {
            (key.clone(), slug)
        }
        (Via::Web { .. }, [kind, user, repos, slug, ..]) if kind == "users" && repos == "repos" => {
            (format!("~{user}"), slug)
        }
        (Via::Web { .. }, [scm, key, slug]) if scm == "scm" => (key.clone(), slug),
        (Via::Ssh, [key, slug]) => (key.clone(), slug),
        _ => return None,
    };
    Some((owner.to_uppercase(), repo_slug(slug)))
}

/// A repository slug without its clone suffix, lower-cased as both products compare it.
fn repo_slug(segment: &str) -> String {
    segment
        .strip_suffix(".git")
        .unwrap_or(segment)
        .to_lowercase()
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Site, parse_repo_url};
    use crate::domain::{CLOUD, RepoId};
    use url::Url;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    /// Parses `input` with Cloud on bitbucket.org and two Data Center instances, one of them
    /// under a path prefix on a non-default port.
    fn parse(input: &str) -> Result<RepoId, String> {
        let corp = url("https://git.example.com");
        let legacy = url("https://tools.example.com:8443/bitbucket/");
        parse_repo_url(
            input,
            &url("https://bitbucket.org"),
            &[("corp", &corp), ("legacy", &legacy)],
        )
    }

    #[test]
    fn cloud_forms() {
        // (input, workspace, repository)
        let table = [
            ("https://bitbucket.org/acme/api", "acme", "api"),
            ("https://bitbucket.org/acme/api/", "acme", "api"),
            ("https://bitbucket.org/acme/api.git", "acme", "api"),
            ("  https://bitbucket.org/acme/api  ", "acme", "api"),
            (
                "https://bitbucket.org/acme/api/src/main/README.md",
                "acme",
                "api",
            ),
            (
                "https://bitbucket.org/acme/api/pipelines/results/42",
                "acme",
                "api",
            ),
            ("https://bitbucket.org/acme/api/branches/", "acme", "api"),
            (
                "https://bitbucket.org/acme/api/src/main/?at=release",
                "acme",
                "api",
            ),
            ("https://bitbucket.org/acme/api#readme", "acme", "api"),
            (
                "https://BitBucket.org/acme/web-app_2.0",
                "acme",
                "web-app_2.0",
            ),
            ("https://bitbucket.org/Acme/API", "acme", "api"),
            ("https://jdoe@bitbucket.org/acme/api.git", "acme", "api"),
            ("git@bitbucket.org:acme/api.git", "acme", "api"),
            ("git@bitbucket.org:acme/api", "acme", "api"),
            ("git@BITBUCKET.org:Acme/Api.git", "acme", "api"),
            ("ssh://git@bitbucket.org/acme/api.git", "acme", "api"),
        ];
        for (input, owner, slug) in table {
            assert_eq!(
                parse(input),
                Ok(RepoId::on(CLOUD, owner, slug)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn cloud_on_a_test_server() {
        let sim = url("http://127.0.0.1:8080");
        let prefixed = url("http://localhost:9000/bb/");
        // (input, web_url)
        let table = [
            ("http://127.0.0.1:8080/acme/api", &sim),
            ("git@127.0.0.1:acme/api.git", &sim),
            ("http://localhost:9000/bb/acme/api", &prefixed),
        ];
        for (input, web_url) in table {
            assert_eq!(
                parse_repo_url(input, web_url, &[]),
                Ok(RepoId::on(CLOUD, "acme", "api")),
                "{input:?} on {web_url}"
            );
        }
    }

    #[test]
    fn datacenter_forms() {
        // (input, instance, project key, repository)
        let table = [
            (
                "https://git.example.com/projects/PLAT/repos/platform/browse",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://git.example.com/projects/PLAT/repos/platform/browse/src/main.rs?at=refs/heads/main",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://git.example.com/projects/PLAT/repos/platform",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://git.example.com/projects/PLAT/repos/platform/",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://git.example.com/projects/plat/repos/Platform/commits",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://git.example.com/scm/plat/platform.git",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://jdoe@git.example.com/scm/plat/platform.git",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "ssh://git@git.example.com:7999/plat/platform.git",
                "corp",
                "PLAT",
                "platform",
            ),
            (
                "https://git.example.com/users/jdoe/repos/dotfiles/browse",
                "corp",
                "~JDOE",
                "dotfiles",
            ),
            (
                "https://git.example.com/scm/~jdoe/dotfiles.git",
                "corp",
                "~JDOE",
                "dotfiles",
            ),
            (
                "ssh://git@git.example.com:7999/~jdoe/dotfiles.git",
                "corp",
                "~JDOE",
                "dotfiles",
            ),
            (
                "https://tools.example.com:8443/bitbucket/projects/OPS/repos/infra/browse",
                "legacy",
                "OPS",
                "infra",
            ),
            (
                "https://tools.example.com:8443/bitbucket/scm/ops/infra.git",
                "legacy",
                "OPS",
                "infra",
            ),
            // SSH: only the host is compared, its port and path have nothing to do with the web's.
            (
                "ssh://git@tools.example.com:7999/ops/infra.git",
                "legacy",
                "OPS",
                "infra",
            ),
        ];
        for (input, instance, owner, slug) in table {
            assert_eq!(
                parse(input),
                Ok(RepoId::on(instance, owner, slug)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn longest_prefix_wins_on_a_shared_host() {
        let root = url("https://git.example.com");
        let nested = url("https://git.example.com/next");
        let cloud = url("https://bitbucket.org");
        let dc = [("root", &root), ("next", &nested)];
        let parsed = |input| parse_repo_url(input, &cloud, &dc);
        assert_eq!(
            parsed("https://git.example.com/next/projects/A/repos/b"),
            Ok(RepoId::on("next", "A", "b"))
        );
        assert_eq!(
            parsed("https://git.example.com/projects/A/repos/b"),
            Ok(RepoId::on("root", "A", "b"))
        );
        let err = parsed("ssh://git@git.example.com:7999/a/b.git").unwrap_err();
        assert!(
            err.contains("serves several configured instances (root, next)"),
            "{err}"
        );
    }

    #[test]
    fn rejected_forms() {
        let hosts = "hosts: bitbucket.org ([bitbucket] web_url), git.example.com \
                     ([bitbucket.datacenter.corp]), tools.example.com:8443/bitbucket \
                     ([bitbucket.datacenter.legacy]); use";
        // (input, fragment of the error)
        let table = [
            ("https://github.com/acme/api", hosts),
            (
                "git@github.com:acme/api.git",
                "is on none of the configured Bitbucket hosts",
            ),
            (
                "https://bitbucket.org:8443/acme/api",
                "is on none of the configured Bitbucket hosts",
            ),
            (
                "https://tools.example.com/bitbucket/projects/A/repos/b",
                "is on none of the configured",
            ),
            (
                "https://tools.example.com:8443/projects/A/repos/b",
                "is on none of the configured",
            ),
            (
                "https://bitbucket.org/acme",
                "does not name a workspace and a repository",
            ),
            ("https://bitbucket.org/", "git@HOST:WORKSPACE/REPO.git"),
            (
                "https://git.example.com/PLAT/platform",
                "does not name a project and a repository",
            ),
            (
                "https://git.example.com/projects/PLAT",
                "https://HOST/projects/KEY/repos/REPO",
            ),
            (
                "https://git.example.com/scm/plat/platform/extra.git",
                "does not name a project",
            ),
            (
                "ssh://git@git.example.com:7999/scm/plat/platform.git",
                "does not name a project",
            ),
            (
                "https://git.example.com/users//repos/x",
                "does not name a project",
            ),
            (
                "https://git.example.com/scm/~/dotfiles.git",
                "\"\" is not a valid owner",
            ),
            ("acme/api", "is not a repository URL"),
            ("ftp://bitbucket.org/acme/api", "unsupported scheme \"ftp\""),
            (
                "https://bitbucket.org/acme/a%20b",
                "\"a%20b\" is not a valid owner or repository",
            ),
            (
                "https://bitbucket.org/~jdoe/api",
                "\"~jdoe\" is not a valid owner",
            ),
            ("https://:", "is not a valid URL"),
        ];
        for (input, fragment) in table {
            let err = parse(input).unwrap_err();
            assert!(
                err.contains(fragment),
                "{input:?}: {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn secrets_are_refused_shown_redacted_and_sent_to_connect() {
        // (input, how the error shows it)
        let table = [
            (
                "https://jdoe:s3cr3t@bitbucket.org/acme/api",
                "https://jdoe:***@bitbucket.org/acme/api",
            ),
            (
                "https://jdoe:s3cr3t@git.example.com/scm/plat/platform.git",
                "https://jdoe:***@git.example.com/scm/plat/platform.git",
            ),
            (
                "ssh://git:s3cr3t@bitbucket.org/acme/api.git",
                "ssh://git:***@bitbucket.org/acme/api.git",
            ),
            (
                "jdoe:s3cr3t@bitbucket.org:acme/api.git",
                "jdoe:***@bitbucket.org:acme/api.git",
            ),
            (
                "https://bitbucket.org/acme/api?access_token=s3cr3t",
                "https://bitbucket.org/acme/api?access_token=***",
            ),
            (
                "https://bitbucket.org/acme/api/src/main/?at=main&private_token=s3cr3t#x",
                "https://bitbucket.org/acme/api/src/main/?at=main&private_token=***#x",
            ),
            (
                "https://git.example.com/projects/PLAT/repos/platform?apiKey=s3cr3t",
                "https://git.example.com/projects/PLAT/repos/platform?apiKey=***",
            ),
            (
                "https://bitbucket.org/acme/api#access_token=s3cr3t&token_type=bearer",
                "https://bitbucket.org/acme/api#access_token=***&token_type=***",
            ),
            (
                "https://bitbucket.org/acme/api?Password=s3cr3t",
                "https://bitbucket.org/acme/api?Password=***",
            ),
            (
                "git@bitbucket.org:acme/api.git?token=s3cr3t",
                "git@bitbucket.org:acme/api.git?token=***",
            ),
        ];
        for (input, redacted) in table {
            let err = parse(input).unwrap_err();
            assert!(!err.contains("s3cr3t"), "{input:?}: {err}");
            assert!(err.contains(&format!("{redacted:?}")), "{input:?}: {err}");
            assert!(
                err.contains("bbzoom connect bitbucket --name NAME"),
                "{input:?}: {err}"
            );
        }
        // A password the URL standard does not read as one is not echoed either.
        let err = parse("https://jdoe:s3/cr3t@bitbucket.org/acme/api").unwrap_err();
        assert!(!err.contains("s3"), "{err}");
        // Query keys that only look alike stay accepted.
        for input in [
            "https://bitbucket.org/acme/api/src/main/?at=refs/heads/keys",
            "https://git.example.com/projects/PLAT/repos/platform/commits?author=jdoe",
        ] {
            assert!(parse(input).is_ok(), "{input:?}: {:?}", parse(input));
        }
    }

    #[test]
    fn dot_segments_are_not_names_in_any_form() {
        let table = [
            "https://bitbucket.org/acme/..",
            "https://bitbucket.org/acme/.",
            "https://bitbucket.org/../api",
            "https://bitbucket.org/acme/../evil/api",
            "https://bitbucket.org/acme/api/src/../../../evil/x",
            "https://bitbucket.org/acme/%2e%2e",
            "https://bitbucket.org/acme/.%2E/evil/api",
            "https://bitbucket.org/acme/%2e",
            "https://bitbucket.org/acme\\..\\evil\\api",
            "https://bitbucket.org/acme/.\t./evil/api",
            "git@bitbucket.org:acme/..",
            "git@bitbucket.org:acme/...git",
            "git@bitbucket.org:../api.git",
            "git@bitbucket.org:acme/%2e%2e",
            "ssh://git@bitbucket.org/acme/..",
            "ssh://git@bitbucket.org/acme/../evil/api.git",
            "https://git.example.com/scm/plat/...git",
            "https://git.example.com/scm/../platform.git",
            "https://git.example.com/projects/PLAT/repos/..",
            "https://git.example.com/projects/../repos/platform",
            "https://git.example.com/projects/PLAT/repos/%2E%2E/browse",
            "https://git.example.com/users/../repos/dotfiles",
            "https://git.example.com/users/jdoe/repos/.",
            "https://git.example.com/scm/~../dotfiles.git",
            "https://git.example.com/scm/~./dotfiles.git",
            "ssh://git@git.example.com:7999/plat/...git",
            "ssh://git@git.example.com:7999/~../dotfiles.git",
            "ssh://git@git.example.com:7999/../platform.git",
        ];
        for input in table {
            let err = parse(input).expect_err(input);
            assert!(err.contains(&format!("{input:?}")), "{input:?}: {err}");
            assert!(
                err.contains("not a name") || err.contains("not a valid owner or repository"),
                "{input:?}: {err}"
            );
        }
        // Dots inside a name are fine.
        assert_eq!(
            parse("git@bitbucket.org:acme/web.app.git"),
            Ok(RepoId::on(CLOUD, "acme", "web.app"))
        );
    }

    #[test]
    fn sites_ignore_default_ports_and_trailing_slashes() {
        let site = |text| Site::of(&url(text));
        assert_eq!(
            site("https://h.example.com:443/"),
            site("https://H.example.com")
        );
        assert_eq!(
            site("https://h.example.com/bb/"),
            site("https://h.example.com/bb")
        );
        assert_ne!(
            site("https://h.example.com/bb"),
            site("https://h.example.com")
        );
        assert_ne!(
            site("https://h.example.com:8443"),
            site("https://h.example.com")
        );
        assert_eq!(
            site("https://h.example.com:8443/bb/").to_string(),
            "h.example.com:8443/bb"
        );
    }

    mod properties {
        use super::parse;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever is pasted, parsing answers a repository or a message, never a panic:
            /// any text, and text shaped like each URL form with arbitrary parts.
            #[test]
            fn any_pasted_text_parses_without_a_panic(
                text in prop_oneof![
                    any::<String>(),
                    (
                        proptest::sample::select(vec![
                            "https://bitbucket.org/",
                            "git@bitbucket.org:",
                            "ssh://git@bitbucket.org/",
                            "https://git.example.com/projects/",
                            "https://git.example.com/users/",
                            "https://git.example.com/scm/",
                            "ssh://git@git.example.com:7999/",
                            "https://tools.example.com:8443/bitbucket/projects/",
                        ]),
                        proptest::collection::vec(
                            prop_oneof![any::<String>(), Just("repos".to_owned()), Just("..".to_owned())],
                            0..5,
                        ),
                    )
                        .prop_map(|(form, parts)| format!("{form}{}", parts.join("/"))),
                ],
            ) {
                let _ = parse(&text);
            }
        }
    }
}
