//! What the Cloud and Data Center endpoints share about queries and pages: decoded query
//! parameters, numeric parameters checked the same way, and the window of an ordered list that
//! one page shows. Each API then spells its own page (`page`/`next` on Cloud,
//! `start`/`nextPageStart` on Data Center).

use axum::http::Uri;
use url::form_urlencoded;

/// A request's decoded query parameters, in order, repeats kept.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// The query of `uri`.
    pub(super) fn of(uri: &Uri) -> Query {
        Query(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The last value of a parameter, as both APIs take repeated scalars.
    pub(super) fn last(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter, in order.
    pub(super) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The query again with `key` set to `value` (and its other values dropped), encoded: for
    /// links to the next page.
    pub(super) fn with(&self, key: &str, value: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| k != key) {
            out.append_pair(k, v);
        }
        out.append_pair(key, value);
        out.finish()
    }

    /// A whole-number parameter of at least `min`, `default` when absent; the error names the
    /// parameter and the value, for a 400.
    pub(super) fn number(&self, key: &str, default: usize, min: usize) -> Result<usize, String> {
        match self.last(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!(
                    "'{key}' must be an integer of at least {min}, not '{v}'"
                )),
            },
        }
    }
}

/// Items `start..start + len` of an ordered list, and whether any follow.
pub(super) fn window<T>(items: Vec<T>, start: usize, len: usize) -> (Vec<T>, bool) {
    let more = start.saturating_add(len) < items.len();
    (items.into_iter().skip(start).take(len).collect(), more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_numbers() {
        assert_eq!(window(vec![1, 2, 3, 4, 5], 2, 2), (vec![3, 4], true));
        assert_eq!(window(vec![1, 2, 3, 4], 2, 2), (vec![3, 4], false));
        assert_eq!(window(vec![1, 2], 5, 2), (vec![], false));
        let query = Query::of(&Uri::from_static("/x?page=2&page=3&pagelen=x&q=a%20b"));
        assert_eq!(query.number("page", 1, 1), Ok(3));
        assert_eq!(query.number("start", 0, 0), Ok(0));
        assert!(query.number("pagelen", 10, 1).is_err());
        assert_eq!(query.with("page", "4"), "pagelen=x&q=a+b&page=4");
        assert_eq!(query.all("page").collect::<Vec<_>>(), ["2", "3"]);
    }
}
