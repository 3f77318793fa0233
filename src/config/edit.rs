//! Edits of the configuration file's `[[subscription]]` tables that keep the rest of the file as
//! the admin wrote it, for `bbzoom configure` and `bbzoom unsubscribe`.
//!
//! The file is the admin's: its comments document their choices and its layout is how they find
//! things, so these functions change the text of one table and nothing else (`toml_edit` keeps
//! every comment, blank line and key order it does not touch). They work on text, not files:
//! the caller validates the result with [`Config::parse`] before writing anything.
//!
//! Tables are addressed by index. [`Config::subscriptions`] keeps the subscriptions in file
//! order, one per `[[subscription]]` table, so the index of a repository's subscription in a
//! `Config` parsed from the same text is the index of its table here.

use super::{Config, ConfigError};
use crate::domain::RepoId;
use crate::repo_url::parse_repo_url;
use std::path::Path;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, RawString, Table, Value};

/// The key of the array of subscription tables.
const SUBSCRIPTION: &str = "subscription";

/// The keys of a subscription that a command sets: `None` leaves a key as the file has it
/// (absent keys keep their defaults).
#[derive(Debug, Default)]
pub struct SubscriptionKeys {
    /// One source is written as a string, several as an array.
    pub source: Option<Vec<String>>,
    pub credential: Option<String>,
    /// An empty list is written as `[]`: no branch builds.
    pub branches: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub commits: Option<bool>,
    pub events: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub meeting_on: Option<Vec<String>>,
}

impl SubscriptionKeys {
    /// The names of the keys set, in the order config.example.toml writes them.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries().map(|(key, _)| key).collect()
    }

    /// The keys set with their TOML values, in the order config.example.toml writes them, so a
    /// new table reads like the documented one.
    fn entries(&self) -> impl Iterator<Item = (&'static str, Value)> {
        let list = |items: &[String]| Value::Array(items.iter().collect::<Array>());
        let source = self.source.as_deref().map(|sources| match sources {
            [one] => Value::from(one.as_str()),
            several => list(several),
        });
        [
            ("source", source),
            ("credential", self.credential.as_deref().map(Value::from)),
            ("branches", self.branches.as_deref().map(list)),
            ("tags", self.tags.as_deref().map(list)),
            ("commits", self.commits.map(Value::from)),
            ("events", self.events.as_deref().map(list)),
            ("channels", self.channels.as_deref().map(list)),
            ("meeting_on", self.meeting_on.as_deref().map(list)),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
    }

    /// Sets the keys given in `table`. A replaced value keeps its decoration, so a comment at
    /// the end of its line stays; a key the table lacks is appended after its last key.
    fn write_into(&self, table: &mut Table) {
        for (key, mut value) in self.entries() {
            match table.get_mut(key).and_then(Item::as_value_mut) {
                Some(old) => {
                    *value.decor_mut() = old.decor().clone();
                    *old = value;
                }
                None => {
                    table.insert(key, Item::Value(value));
                }
            }
        }
    }
}

/// The repository `url` names, read against the instances `config` defines exactly as the
/// file's own `repository` keys are, so any form the file accepts names the same repository.
/// Every command that takes a repository URL reads it with this.
pub fn repository_of(config: &Config, url: &str) -> Result<RepoId, String> {
    let datacenter: Vec<(&str, &url::Url)> = config
        .bitbucket
        .datacenter
        .values()
        .map(|dc| (dc.name.as_str(), &dc.url))
        .collect();
    parse_repo_url(url, &config.bitbucket.web_url, &datacenter)
}

/// `text` with a `[[subscription]]` for `repository` appended after the last one (at the end of
/// the file if there is none), holding `repository` and then `keys`.
pub fn add_subscription(
    path: &Path,
    text: &str,
    repository: &str,
    keys: &SubscriptionKeys,
) -> Result<String, ConfigError> {
    add_commented(path, text, repository, keys, None)
}

/// As [`add_subscription`], with `comment` (lines beginning with `#`) directly above the new
/// table's header, after a blank line: the table's own comment, which
/// [`remove_subscription`] removes with it.
pub fn add_commented_subscription(
    path: &Path,
    text: &str,
    repository: &str,
    keys: &SubscriptionKeys,
    comment: &str,
) -> Result<String, ConfigError> {
    add_commented(path, text, repository, keys, Some(comment))
}

fn add_commented(
    path: &Path,
    text: &str,
    repository: &str,
    keys: &SubscriptionKeys,
    comment: Option<&str>,
) -> Result<String, ConfigError> {
    let mut doc = parse(path, text)?;
    if doc.as_table().is_empty() && !text.trim().is_empty() {
        // Only comments: toml_edit keeps them after the last table, where a new one would
        // end up above them. They head the file: the table goes after them.
        let table = add_commented(path, "", repository, keys, comment)?;
        return Ok(format!("{}\n\n{table}", text.trim_end()));
    }
    let end_of_file = last_position(&mut doc) + 1;
    let tables = subscription_tables(path, text, &mut doc)?;
    let mut table = Table::new();
    // toml_edit prints tables by position, and a table without one after whatever it visited
    // last, which for a new array is not necessarily the end of the file. A position equal to
    // the last subscription's puts the new table right after it (ties keep their order).
    let position = tables
        .iter()
        .last()
        .and_then(Table::position)
        .unwrap_or(end_of_file);
    table.set_position(Some(position));
    if let Some(comment) = comment {
        table
            .decor_mut()
            .set_prefix(format!("\n{}\n", comment.trim_end()));
    }
    table.insert("repository", toml_edit::value(repository));
    keys.write_into(&mut table);
    tables.push(table);
    let edited = doc.to_string();
    // The first table of an empty file starts it, without the blank line that sets a table
    // apart from the one before.
    Ok(if text.trim().is_empty() {
        edited.trim_start().to_owned()
    } else {
        edited
    })
}

/// `text` with `keys` set in the `index`-th `[[subscription]]` (counting from 0); its other
/// keys, and everything else, are left as they are.
pub fn update_subscription(
    path: &Path,
    text: &str,
    index: usize,
    keys: &SubscriptionKeys,
) -> Result<String, ConfigError> {
    let mut doc = parse(path, text)?;
    let tables = subscription_tables(path, text, &mut doc)?;
    let count = tables.len();
    let table = tables
        .get_mut(index)
        .ok_or_else(|| no_such_table(path, text, index, count))?;
    keys.write_into(table);
    Ok(doc.to_string())
}

/// `text` without the `index`-th `[[subscription]]` (counting from 0) and the comment directly
/// above its header, which describes it. Comments set apart from the header by a blank line are
/// about the file rather than this table (a commented-out table, notes for later): they stay
/// where they were, in front of whatever now follows.
pub fn remove_subscription(path: &Path, text: &str, index: usize) -> Result<String, ConfigError> {
    let mut doc = parse(path, text)?;
    let tables = subscription_tables(path, text, &mut doc)?;
    if index >= tables.len() {
        return Err(no_such_table(path, text, index, tables.len()));
    }
    let removed = tables.remove(index);
    let prefix = removed
        .decor()
        .prefix()
        .and_then(RawString::as_str)
        .unwrap_or_default();
    let kept = split_own_comment(prefix).0;
    if !kept.trim().is_empty() {
        // Parsed tables always have a position; without one, the end of the file is as good a
        // place as any.
        let after = removed.position().unwrap_or(isize::MAX);
        put_before_next_table(&mut doc, after, kept);
    }
    Ok(doc.to_string())
}

fn parse(path: &Path, text: &str) -> Result<DocumentMut, ConfigError> {
    text.parse::<DocumentMut>().map_err(|e| {
        ConfigError::at(
            path,
            text,
            e.span(),
            None,
            format!(
                "invalid TOML: {}; fix the syntax (see https://toml.io)",
                e.message()
            ),
        )
    })
}

/// The `[[subscription]]` tables of `doc`, an empty array if it has none.
fn subscription_tables<'d>(
    path: &Path,
    text: &str,
    doc: &'d mut DocumentMut,
) -> Result<&'d mut ArrayOfTables, ConfigError> {
    doc.as_table_mut()
        .entry(SUBSCRIPTION)
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            // `subscription = [{ ... }]` is valid TOML for the same thing, but editing it would
            // mean rewriting the admin's layout; they can convert it once.
            ConfigError::at(
                path,
                text,
                None,
                Some(SUBSCRIPTION.into()),
                "the subscriptions are not written as [[subscription]] tables, which is all \
                 bbzoom can edit without rewriting your layout; write each as a \
                 [[subscription]] table (config.example.toml shows how), or edit the file by \
                 hand"
                    .into(),
            )
        })
}

fn no_such_table(path: &Path, text: &str, index: usize, count: usize) -> ConfigError {
    ConfigError::at(
        path,
        text,
        None,
        Some(format!("{SUBSCRIPTION}[{index}]")),
        format!(
            "there is no such [[subscription]] (the file has {count}); the file changed while \
             it was being edited, try again"
        ),
    )
}

/// Splits a table's prefix decoration (everything between the previous table's last line and
/// its header) into what is above the comment directly over the header, and that comment.
fn split_own_comment(prefix: &str) -> (&str, &str) {
    // Indentation before the header is not a line of its own.
    let lines = prefix.trim_end_matches([' ', '\t']);
    let mut start = lines.len();
    for line in lines.split_inclusive('\n').rev() {
        if !line.trim_start().starts_with('#') {
            break;
        }
        start -= line.len();
    }
    prefix.split_at(start)
}

/// Puts `text` in front of the first table printed after document position `after`, or at the
/// end of the file if none is.
fn put_before_next_table(doc: &mut DocumentMut, after: isize, text: &str) {
    let mut next = None;
    for_each_table(doc, |table| {
        // toml_edit prints no header for dotted tables, nor for implicit ones without keys.
        let printed =
            !table.is_dotted() && (!table.is_implicit() || !table.get_values().is_empty());
        if let Some(position) = table.position().filter(|&p| printed && p > after) {
            next = Some(next.map_or(position, |n: isize| n.min(position)));
        }
    });
    // `text` ends with the blank line that set it apart from the removed table's own comment,
    // and keeps it: it is what keeps it from becoming the next table's own comment.
    let join = |own: &str| format!("{text}{}", own.trim_start());
    match next {
        Some(position) => for_each_table(doc, |table| {
            if table.position() == Some(position) {
                let own = table
                    .decor()
                    .prefix()
                    .and_then(RawString::as_str)
                    .unwrap_or_default();
                let joined = join(own);
                table.decor_mut().set_prefix(joined);
            }
        }),
        None => {
            let own = doc.trailing().as_str().unwrap_or_default();
            // At the end of the file, that blank line would be a new one.
            let joined = format!("{}\n", join(own).trim_end());
            doc.set_trailing(joined);
        }
    }
}

/// The greatest position of any table in `doc` (0 for a file without tables).
fn last_position(doc: &mut DocumentMut) -> isize {
    let mut last = 0;
    for_each_table(doc, |table| {
        last = last.max(table.position().unwrap_or_default());
    });
    last
}

/// Calls `visit` with every table of `doc`, nested ones and those of arrays included.
fn for_each_table(doc: &mut DocumentMut, visit: impl FnMut(&mut Table)) {
    struct Tables<F>(F);
    impl<F: FnMut(&mut Table)> toml_edit::visit_mut::VisitMut for Tables<F> {
        fn visit_table_mut(&mut self, table: &mut Table) {
            (self.0)(table);
            toml_edit::visit_mut::visit_table_mut(self, table);
        }
    }
    toml_edit::visit_mut::VisitMut::visit_document_mut(&mut Tables(visit), doc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CLOUD;

    const PATH: &str = "/etc/bbzoom/config.toml";

    /// A valid file with comments in every place a comment can be.
    const BASE: &str = r#"# bbzoom for the ACME build channels.
[daemon]
state_dir = "state"
credentials = "credentials.age"
identity = "identity.txt"

[bitbucket]
credential = "acme-ci"

[bitbucket.datacenter.corp]
url = "https://git.example.com"
credential = "corp-token"

[zoom.chatbot]
credential = "zoom-bot"
account_id = "AbCdEf"
robot_jid = "v1bot@xmpp.zoom.us"
user_jid = "user@xmpp.zoom.us"

[zoom.channels.ci]
to_jid = "ci@conference.xmpp.zoom.us"

[zoom.channels.releases]
to_jid = "rel@conference.xmpp.zoom.us"

# [zoom.channels.alerts]
# webhook_url = "https://integrations.zoom.us/chat/webhooks/incomingwebhook/XXXX"

# Subscriptions: which builds go where.
[[subscription]]
# The API team's repository.
repository = "https://bitbucket.org/acme/api"
branches = ["main"]   # only main: feature branches are noisy
channels = ["ci"]

# Web: everything, to both channels.
[[subscription]]
repository = "https://bitbucket.org/acme/web"
events = ["all"]
channels = ["ci", "releases"]

# Notes for later: add the mobile app.

# The platform, on the Data Center server.
[[subscription]]
repository = "https://git.example.com/projects/PLAT/repos/platform/browse"
channels = ["ci"]
# End of file.
"#;

    fn path() -> &'static Path {
        Path::new(PATH)
    }

    fn config(text: &str) -> Config {
        Config::parse(path(), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The repositories subscribed in `text`, in file order.
    fn repositories(text: &str) -> Vec<String> {
        config(text)
            .subscriptions
            .iter()
            .map(|s| s.repo.to_string())
            .collect()
    }

    fn keys() -> SubscriptionKeys {
        SubscriptionKeys::default()
    }

    #[test]
    fn config_indices_are_table_indices() {
        let config = config(BASE);
        // (a pasted form, the index of its table)
        let table = [
            ("git@bitbucket.org:ACME/api.git", 0),
            ("https://bitbucket.org/acme/web/src/main/", 1),
            ("ssh://git@git.example.com:7999/plat/platform.git", 2),
        ];
        for (url, index) in table {
            let repo = repository_of(&config, url).unwrap();
            let found = config.subscriptions.iter().position(|s| s.repo == repo);
            assert_eq!(found, Some(index), "{url}");
            // Removing that table removes that repository and no other.
            let mut expected = repositories(BASE);
            expected.remove(index);
            let edited = remove_subscription(path(), BASE, index).unwrap();
            assert_eq!(repositories(&edited), expected, "{url}");
        }
        assert_eq!(
            repository_of(&config, "https://bitbucket.org/acme/new"),
            Ok(RepoId::on(CLOUD, "acme", "new"))
        );
        assert!(repository_of(&config, "https://github.com/acme/api").is_err());
    }

    #[test]
    fn add_appends_after_the_last_subscription_and_changes_nothing_else() {
        let keys = SubscriptionKeys {
            branches: Some(vec!["main".into(), "release/*".into()]),
            events: Some(vec!["all".into()]),
            channels: Some(vec!["releases".into()]),
            ..keys()
        };
        let edited =
            add_subscription(path(), BASE, " https://bitbucket.org/acme/mobile", &keys).unwrap();
        let (before, after) = BASE.split_at(BASE.find("# End of file.").unwrap());
        assert_eq!(
            edited,
            format!(
                "{before}\n[[subscription]]\nrepository = \" https://bitbucket.org/acme/mobile\"\n\
                 branches = [\"main\", \"release/*\"]\nevents = [\"all\"]\n\
                 channels = [\"releases\"]\n{after}"
            )
        );
    }

    #[test]
    fn the_first_subscription_goes_at_the_end_of_the_file() {
        // [bitbucket] between two [zoom] tables: in the document's key order (daemon, zoom,
        // bitbucket) it comes last, in the file it does not.
        let text = "[daemon]\nstate_dir = \"s\"\ncredentials = \"c\"\nidentity = \"i\"\n\n\
                    [zoom.chatbot]\ncredential = \"zoom-bot\"\naccount_id = \"A\"\n\
                    robot_jid = \"v1bot@xmpp.zoom.us\"\nuser_jid = \"u@xmpp.zoom.us\"\n\n\
                    [bitbucket]\ncredential = \"acme-ci\"\n\n\
                    [zoom.channels.ci]\nto_jid = \"ci@conference.xmpp.zoom.us\"\n";
        let keys = SubscriptionKeys {
            channels: Some(vec!["ci".into()]),
            ..keys()
        };
        let edited = add_subscription(path(), text, "https://bitbucket.org/a/b", &keys).unwrap();
        assert_eq!(
            edited,
            format!(
                "{text}\n[[subscription]]\nrepository = \"https://bitbucket.org/a/b\"\n\
                 channels = [\"ci\"]\n"
            )
        );
        assert_eq!(repositories(&edited), ["a/b"]);
    }

    #[test]
    fn update_replaces_only_the_keys_given() {
        let keys = SubscriptionKeys {
            branches: Some(vec!["main".into(), "develop".into()]),
            events: Some(vec!["failed".into()]),
            ..keys()
        };
        let edited = update_subscription(path(), BASE, 0, &keys).unwrap();
        // The trailing comment of the replaced value stays; the key it lacked comes last.
        let expected = BASE.replacen(
            "branches = [\"main\"]   # only main: feature branches are noisy\n\
             channels = [\"ci\"]\n",
            "branches = [\"main\", \"develop\"]   # only main: feature branches are noisy\n\
             channels = [\"ci\"]\nevents = [\"failed\"]\n",
            1,
        );
        assert_ne!(expected, BASE);
        assert_eq!(edited, expected);
        assert_eq!(keys.names(), ["branches", "events"]);
    }

    #[test]
    fn remove_takes_the_table_and_its_own_comment_only() {
        // The web table: its comment goes, the notes above the platform's comment stay.
        let edited = remove_subscription(path(), BASE, 1).unwrap();
        let expected = BASE.replacen(
            "\n# Web: everything, to both channels.\n[[subscription]]\n\
             repository = \"https://bitbucket.org/acme/web\"\nevents = [\"all\"]\n\
             channels = [\"ci\", \"releases\"]\n",
            "",
            1,
        );
        assert_ne!(expected, BASE);
        assert_eq!(edited, expected);

        // The platform, last: the notes set apart by a blank line stay, and so does the end.
        let edited = remove_subscription(path(), BASE, 2).unwrap();
        let expected = BASE.replacen(
            "# The platform, on the Data Center server.\n[[subscription]]\n\
             repository = \"https://git.example.com/projects/PLAT/repos/platform/browse\"\n\
             channels = [\"ci\"]\n",
            "",
            1,
        );
        assert_eq!(edited, expected);
    }

    #[test]
    fn comments_set_apart_outlive_every_subscription() {
        let mut text = BASE.to_owned();
        for _ in 0..3 {
            text = remove_subscription(path(), &text, 0).unwrap();
        }
        assert!(repositories(&text).is_empty());
        let (head, _) = BASE.split_at(BASE.find("# Subscriptions").unwrap());
        assert_eq!(
            text,
            format!("{head}# Notes for later: add the mobile app.\n\n# End of file.\n")
        );
    }

    #[test]
    fn own_comment_is_the_comment_right_above_the_header() {
        let table = [
            ("\n", ("\n", "")),
            ("\n# a\n# b\n", ("\n", "# a\n# b\n")),
            ("\n# notes\n\n# mine\n  ", ("\n# notes\n\n", "# mine\n  ")),
            ("# x\n", ("", "# x\n")),
            ("", ("", "")),
        ];
        for (prefix, expected) in table {
            assert_eq!(split_own_comment(prefix), expected, "{prefix:?}");
        }
    }

    #[test]
    fn missing_tables_and_inline_arrays_are_reported() {
        let err = update_subscription(path(), BASE, 3, &keys()).unwrap_err();
        assert_eq!(err.key(), Some("subscription[3]"));
        assert!(err.to_string().contains("the file has 3"), "{err}");

        let inline = "subscription = [{ repository = \"https://bitbucket.org/a/b\" }]\n";
        let err = remove_subscription(path(), inline, 0).unwrap_err();
        assert_eq!(err.key(), Some("subscription"));
        assert!(err.to_string().contains("[[subscription]] table"), "{err}");

        let err = add_subscription(path(), "[daemon\n", "x", &keys()).unwrap_err();
        assert_eq!(err.line(), Some(1));
        assert!(err.to_string().contains("invalid TOML"), "{err}");
    }

    #[test]
    fn a_commented_table_takes_its_comment_along_when_removed() {
        let file = "# Made in the chat: keep only [[subscription]] tables here.\n";
        let comment = "# Made in the chat by jane@example.com at 2025-06-01T10:00:00Z in #ci";
        let first = add_commented_subscription(
            path(),
            file,
            "https://bitbucket.org/acme/web",
            &SubscriptionKeys {
                channels: Some(vec!["ci".into()]),
                ..keys()
            },
            comment,
        )
        .unwrap();
        let second = add_commented_subscription(
            path(),
            &first,
            "https://bitbucket.org/acme/api",
            &SubscriptionKeys {
                events: Some(vec!["failed".into()]),
                channels: Some(vec!["ci".into()]),
                ..keys()
            },
            &comment.replace("jane", "joe"),
        )
        .unwrap();
        assert_eq!(
            second,
            format!(
                "{file}\n{comment}\n[[subscription]]\nrepository = \"https://bitbucket.org/acme/web\"\n\
                 channels = [\"ci\"]\n\n{}\n[[subscription]]\n\
                 repository = \"https://bitbucket.org/acme/api\"\nevents = [\"failed\"]\n\
                 channels = [\"ci\"]\n",
                comment.replace("jane", "joe")
            )
        );
        // Read back: who made each.
        let made = |text: &str, line| crate::config::ChatMade::above(text, line);
        assert_eq!(made(&second, 4).by.as_deref(), Some("jane@example.com"));
        assert_eq!(made(&second, 9).by.as_deref(), Some("joe@example.com"));
        assert_eq!(made(&second, 9).channel.as_deref(), Some("ci"));
        assert_eq!(made(&second, 9).at.as_deref(), Some("2025-06-01T10:00:00Z"));
        assert_eq!(made(file, 2), crate::config::ChatMade::default());
        // Removing the first takes its comment and leaves the file's own.
        let removed = remove_subscription(path(), &second, 0).unwrap();
        assert!(!removed.contains("jane"), "{removed}");
        assert!(removed.starts_with(file), "{removed}");
        assert!(removed.contains("joe"), "{removed}");
    }
}
