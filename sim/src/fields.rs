//! Partial responses: Bitbucket Cloud's `fields` parameter, comma-separated dotted paths into
//! the answer (repeated parameters add up). A bare path cuts the answer down to what it and the
//! other bare or added paths name (`fields=next,values.uuid`); `+path` adds a field the answer
//! leaves out by default (`+values.target.commit.message`) and, alone, cuts nothing; `-path`
//! removes what it names. `*` stands for any one key; paths go through arrays, so
//! `values.name` names every value's `name`.

use super::paging::Query;
use serde_json::Value;

/// A request's `fields`, parsed.
pub(super) struct Fields {
    /// Paths named bare or with `+`, as their keys.
    named: Vec<Vec<String>>,
    /// Whether any path was bare: the answer keeps only what `named` names.
    cuts: bool,
    /// Paths named with `-`.
    removed: Vec<Vec<String>>,
}

impl Fields {
    /// The `fields` of `query` (none: the answer as it is).
    pub(super) fn of(query: &Query) -> Fields {
        let mut fields = Fields {
            named: Vec::new(),
            cuts: false,
            removed: Vec::new(),
        };
        for spec in query.all("fields").flat_map(|v| v.split(',')) {
            let keys = |path: &str| path.trim().split('.').map(str::to_owned).collect();
            // An unencoded `+` arrives decoded as a space.
            if let Some(path) = spec.strip_prefix(['+', ' ']) {
                fields.named.push(keys(path));
            } else if let Some(path) = spec.strip_prefix('-') {
                fields.removed.push(keys(path));
            } else if !spec.trim().is_empty() {
                fields.cuts = true;
                fields.named.push(keys(spec));
            }
        }
        fields
    }

    /// Whether a bare or added path ends in the keys of `suffix` (`target.commit.message`):
    /// what shows a field left out by default.
    pub(super) fn names(&self, suffix: &str) -> bool {
        let suffix: Vec<String> = suffix.split('.').map(str::to_owned).collect();
        self.named.iter().any(|path| path.ends_with(&suffix))
    }

    /// `body` cut down and trimmed as asked.
    pub(super) fn apply(&self, body: Value) -> Value {
        let mut body = if self.cuts {
            let paths: Vec<&[String]> = self.named.iter().map(Vec::as_slice).collect();
            keep(body, &paths).unwrap_or(Value::Null)
        } else {
            body
        };
        for path in &self.removed {
            remove(&mut body, path);
        }
        body
    }
}

/// What of `value` the `paths` (relative to it) name; `None` when they name nothing in it.
fn keep(value: Value, paths: &[&[String]]) -> Option<Value> {
    if paths.iter().any(|path| path.is_empty()) {
        return Some(value);
    }
    match value {
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(|v| keep(v, paths)).collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter_map(|(key, v)| {
                    let rest: Vec<&[String]> = paths
                        .iter()
                        .filter(|path| path[0] == key || path[0] == "*")
                        .map(|path| &path[1..])
                        .collect();
                    let kept = (!rest.is_empty()).then(|| keep(v, &rest)).flatten()?;
                    Some((key, kept))
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Removes what `path` (relative to `value`) names.
fn remove(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| remove(v, path)),
        Value::Object(map) if rest.is_empty() => map.retain(|key, _| first != "*" && key != first),
        Value::Object(map) => map
            .iter_mut()
            .filter(|(key, _)| first == "*" || *key == first)
            .for_each(|(_, v)| remove(v, rest)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Uri;
    use serde_json::json;

    fn apply(query: &str, body: Value) -> Value {
        let uri: Uri = format!("/x?{query}").parse().expect("uri");
        Fields::of(&Query::of(&uri)).apply(body)
    }

    fn page() -> Value {
        json!({
            "pagelen": 10,
            "next": "http://next",
            "values": [
                { "uuid": "{1}", "name": "a", "links": { "self": { "href": "s" }, "html": { "href": "h" } } },
                { "uuid": "{2}", "name": "b", "links": { "self": { "href": "t" } } },
            ],
        })
    }

    #[test]
    fn bare_paths_keep_only_what_they_name() {
        assert_eq!(
            apply("fields=next,values.uuid", page()),
            json!({ "next": "http://next", "values": [{ "uuid": "{1}" }, { "uuid": "{2}" }] })
        );
        assert_eq!(
            apply("fields=values.links.*.href&fields=values.nope", page()),
            json!({ "values": [
                { "links": { "self": { "href": "s" }, "html": { "href": "h" } } },
                { "links": { "self": { "href": "t" } } },
            ] })
        );
        assert_eq!(
            apply("fields=values.name,%2Bpagelen", page()),
            json!({ "pagelen": 10, "values": [{ "name": "a" }, { "name": "b" }] })
        );
        // A path through a scalar names nothing.
        assert_eq!(
            apply("fields=values.name.x", page()),
            json!({ "values": [{}, {}] })
        );
    }

    #[test]
    fn added_and_removed_paths_leave_the_rest() {
        assert_eq!(apply("fields=%2Bvalues.secret", page()), page());
        assert_eq!(apply("fields=+values.secret", page()), page());
        let trimmed = apply("fields=-values.links,-pagelen", page());
        assert_eq!(
            trimmed,
            json!({ "next": "http://next", "values": [
                { "uuid": "{1}", "name": "a" },
                { "uuid": "{2}", "name": "b" },
            ] })
        );
        let no_html = apply("fields=-values.links.html", page());
        assert_eq!(
            no_html["values"][0]["links"],
            json!({ "self": { "href": "s" } })
        );
        let uri: Uri = "/x?fields=%2Bvalues.target.commit.message"
            .parse()
            .expect("uri");
        let fields = Fields::of(&Query::of(&uri));
        assert!(fields.names("target.commit.message"));
        assert!(!fields.names("commit.hash"));
        assert_eq!(apply("", page()), page());
    }
}
