//! Errors an admin can act on: serde's and the TOML parser's messages rephrased in TOML's
//! words, with the key path (`zoom.channels.ci.to_jid`), the line, an example of what to write
//! and a guess at a typo. `validate` uses the same examples and guesses for its own errors.

use super::ConfigError;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Keys bbzoom used to read, and where their setting went: an old file gets directions rather
/// than a list of valid keys.
const MOVED: [(&str, &str); 1] = [(
    "daemon.poll_interval",
    "moved to [polling]; see hot, warm and cold",
)];

/// A TOML syntax error: the position is all there is, no key.
pub(super) fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span();
    let message = match (e.message(), span.clone().and_then(|s| text.get(s))) {
        ("duplicate key", Some(key)) => format!("{key} is defined twice; keep only one"),
        (message, _) => format!("invalid TOML: {message}; fix the syntax (see https://toml.io)"),
    };
    ConfigError::at(path, text, span, None, message)
}

/// A serde error (unknown key, wrong type, missing key), rephrased with its key path.
pub(super) fn shape_error(
    path: &Path,
    text: &str,
    doc: &DeTable<'_>,
    e: &toml::de::Error,
) -> ConfigError {
    let message = e.message();
    // serde quotes the names involved in backticks: the key, then the expected ones.
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let span = e.span();
    if let (Some(field), true) = (quoted.first(), message.starts_with("missing field")) {
        // The span is the table's (its header, or its braces for an inline table).
        let table = span
            .as_ref()
            .and_then(|s| path_where(doc, &|v| v == s))
            .unwrap_or_default();
        let key = join(&table, field);
        let message = if ["daemon", "zoom"].contains(&key.as_str()) {
            format!("missing table [{key}]; add it (config.example.toml shows all its keys)")
        } else {
            let fix = example(&key).map_or_else(
                || "add it (config.example.toml shows every key)".to_owned(),
                |ex| format!("add it, e.g. {ex}"),
            );
            format!("missing key {field:?} {}; {fix}", where_label(&table))
        };
        // A missing top-level table has no line to point at.
        let span = span.filter(|_| !table.is_empty());
        return ConfigError::at(path, text, span, Some(key), message);
    }

    let key = span
        .as_ref()
        .and_then(|s| path_where(doc, &|v| contains(v, s.start)));
    let message = if let (Some((field, expected)), true) =
        (quoted.split_first(), message.starts_with("unknown field"))
    {
        let table = key.as_deref().map_or("", parent);
        let moved = MOVED
            .iter()
            .find(|&&(old, _)| key.as_deref() == Some(old))
            .map(|&(_, hint)| hint);
        let fix = moved.map_or_else(
            || {
                let guess = closest(field, expected.iter().copied())
                    .map(|g| format!("did you mean {g:?}? "))
                    .unwrap_or_default();
                format!("{guess}expected one of: {}", expected.join(", "))
            },
            str::to_owned,
        );
        format!("unknown key {field:?} {}; {fix}", where_label(table))
    } else if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        let fix = key
            .as_deref()
            .and_then(example)
            .map(|ex| format!("; write it like {ex}"));
        format!(
            "expected {}, found {}{}",
            plain(expected),
            plain(found),
            fix.unwrap_or_default()
        )
    } else {
        format!("{message} (config.example.toml shows what each key takes)")
    };
    ConfigError::at(path, text, span, key, message)
}

/// serde's type words in TOML's terms. A misplaced string is not echoed: it might be a secret
/// pasted into the wrong file.
fn plain(serde_words: &str) -> String {
    match serde_words {
        "u32" => "a whole number from 0 to 4294967295".into(),
        s if s.starts_with("string ") => "a string".into(),
        "sequence" | "a sequence" => "an array".into(),
        "map" | "a map" => "a table".into(),
        s if s.starts_with("struct ") => "a table".into(),
        s => match s.strip_prefix("floating point ") {
            Some(value) => format!("a float {value}"),
            None => s.into(),
        },
    }
}

/// The key path of the innermost key or value in `table` whose span satisfies `hit`:
/// `zoom.channels.ci.to_jid`, `subscription[1].channels[0]`.
fn path_where(table: &DeTable<'_>, hit: &dyn Fn(&Range<usize>) -> bool) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let name = segment(key.get_ref());
        if hit(&key.span()) {
            return Some(name);
        }
        suffix_where(value, hit).map(|suffix| format!("{name}{suffix}"))
    })
}

/// Like [`path_where`] inside `value`: the path below it (`""` for the value itself).
fn suffix_where(
    value: &Spanned<DeValue<'_>>,
    hit: &dyn Fn(&Range<usize>) -> bool,
) -> Option<String> {
    // Children first: a header table's span is only its `[header]`, not its keys.
    let inner = match value.get_ref() {
        DeValue::Table(table) => path_where(table, hit).map(|p| format!(".{p}")),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| suffix_where(item, hit).map(|suffix| format!("[{i}]{suffix}"))),
        _ => None,
    };
    inner.or_else(|| hit(&value.span()).then(String::new))
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// A key as it appears in a key path: bare when TOML allows it, quoted otherwise.
pub(super) fn segment(name: &str) -> String {
    if is_bare(name) {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// TOML's bare-key characters, also the rule for channel names.
pub(super) fn is_bare(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

/// The table part of a key path: `daemon` for `daemon.state_dir`.
fn parent(key: &str) -> &str {
    key.rfind('.').map_or("", |i| &key[..i])
}

/// `in [daemon]`, `in subscription[2]` or `at the top level`.
fn where_label(table: &str) -> String {
    match table {
        "" => "at the top level".into(),
        t if t.contains('[') => format!("in {t}"),
        t => format!("in [{t}]"),
    }
}

/// A line showing what `key` takes, for "add it" and "write it like" advice.
fn example(key: &str) -> Option<&'static str> {
    let leaf = key.rsplit('.').next()?;
    let leaf = leaf.split('[').next()?;
    let zoom = key.starts_with("zoom");
    if leaf == "credential" && key.starts_with("zoom.channels.") {
        return Some(r#"credential = "alerts-webhook""#);
    }
    Some(match (leaf, zoom) {
        ("state_dir", _) => r#"state_dir = "/var/lib/bbzoom""#,
        ("hot", _) => r#"hot = "15s""#,
        ("warm", _) => r#"warm = "1m""#,
        ("cold", _) => r#"cold = "10m""#,
        ("warm_for", _) => r#"warm_for = "30m""#,
        ("settle", _) => r#"settle = "10m""#,
        ("scan", _) => r#"scan = "30s""#,
        ("request_timeout", _) => r#"request_timeout = "20s""#,
        ("credentials", _) => r#"credentials = "credentials.age""#,
        ("identity", _) => r#"identity = "identity.txt""#,
        ("control_socket", _) => r#"control_socket = "/run/bbzoom/control.sock""#,
        ("metrics", _) => r#"metrics = "127.0.0.1:9464""#,
        ("api_url", false) => r#"api_url = "https://api.bitbucket.org/2.0""#,
        ("api_url", true) => r#"api_url = "https://api.zoom.us/v2""#,
        ("web_url", _) => r#"web_url = "https://bitbucket.org""#,
        ("oauth_url", false) => r#"oauth_url = "https://bitbucket.org/site/oauth2/access_token""#,
        ("oauth_url", true) => r#"oauth_url = "https://zoom.us/oauth/token""#,
        ("url", _) => r#"url = "https://git.example.com""#,
        ("datacenter", false) => r#"[bitbucket.datacenter.corp] with url and credential"#,
        ("budgets", false) => {
            r#"[bitbucket.budgets] with lines like acme-ci = { requests = 900, per = "1h" }"#
        }
        ("source", _) => r#"source = ["pipelines", "statuses"]"#,
        ("credential", false) => r#"credential = "acme-ci""#,
        ("credential", true) => r#"credential = "zoom-bot""#,
        ("rate_limit", false) => r#"rate_limit = { requests = 900, per = "1h" }"#,
        ("rate_limit", true) => r#"rate_limit = { requests = 20, per = "1s" }"#,
        ("requests", false) => "requests = 900",
        ("requests", true) => "requests = 20",
        ("per", false) => r#"per = "1h""#,
        ("per", true) => r#"per = "1s""#,
        ("account_id", _) => r#"account_id = "AbCdEfGhIjKlMnOpQrStUv""#,
        ("robot_jid", _) => r#"robot_jid = "v1abcdefghijklmnopqrstu@xmpp.zoom.us""#,
        ("user_jid", _) => r#"user_jid = "abcdefghijklmnopqrstuv@xmpp.zoom.us""#,
        ("plan", _) => r#"plan = "pro""#,
        ("to_jid", _) => r#"to_jid = "0123456789abcdef@conference.xmpp.zoom.us""#,
        ("webhook_url", _) => {
            r#"webhook_url = "https://integrations.zoom.us/chat/webhooks/incomingwebhook/XXXX""#
        }
        ("style", _) => r#"style = "update+reply""#,
        ("format", _) => r#"format = "full""#,
        ("daily_limit", _) => "daily_limit = 2000",
        ("chatbot", true) => "[zoom.chatbot] with credential, account_id, robot_jid and user_jid",
        ("delivery", true) => r#"[zoom.delivery] with max_age = "24h" and fold_after = 10"#,
        ("max_age", _) => r#"max_age = "24h""#,
        ("fold_after", _) => "fold_after = 10",
        ("subscription", false) => "[[subscription]] (double brackets: there may be several)",
        ("repository", _) => r#"repository = "https://bitbucket.org/acme/api""#,
        ("branches", _) => r#"branches = ["main", "release/*"]"#,
        ("tags", _) => r#"tags = ["v*"]"#,
        ("commits", _) => "commits = false",
        ("events", _) => r#"events = ["failed", "fixed"]"#,
        ("channels", false) => r#"channels = ["ci"]"#,
        _ => return None,
    })
}

/// The candidate closest to `word`, if close enough to be a likely typo.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let budget = word.chars().count().div_ceil(3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= budget)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

pub(super) fn empty_message(key: &str) -> String {
    match example(key) {
        Some(ex) => format!("the value is empty; write e.g. {ex}"),
        None => "the value is empty; fill it in".into(),
    }
}

/// " (did you mean "x"?)", or nothing.
pub(super) fn guess(candidate: Option<&str>) -> String {
    candidate
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::de::DeTable;

    #[test]
    fn typo_guesses() {
        let keys = ["state_dir", "request_timeout", "credentials"];
        assert_eq!(closest("reqest_timeout", keys), Some("request_timeout"));
        assert_eq!(closest("statedir", keys), Some("state_dir"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("fail", ["failed", "fixed"]), Some("failed"));
        assert_eq!(closest("ops", ["ci", "releases"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn key_paths_from_spans() {
        let text = "[zoom.channels.ci]\nto_jid = 1\n[[subscription]]\nchannels = [\"a\", 2]\n";
        let doc = DeTable::parse(text).unwrap();
        let at = |needle: &str| {
            let offset = text.find(needle).unwrap();
            path_where(doc.get_ref(), &|s| contains(s, offset))
        };
        assert_eq!(at("1\n").as_deref(), Some("zoom.channels.ci.to_jid"));
        assert_eq!(at("2]").as_deref(), Some("subscription[0].channels[1]"));
        assert_eq!(at("ci]").as_deref(), Some("zoom.channels.ci"));
        assert_eq!(segment("my channel"), "\"my channel\"");
    }
}
