//! The part of BBQL, Bitbucket Cloud's `q=` filter language, that a poller uses on branches,
//! statuses and repositories: a field compared with a quoted string or a bare date (`=`, `!=`,
//! `~` contains, `!~` does not contain, `>`, `>=`, `<`, `<=`), joined by `AND` and `OR`, grouped
//! with parentheses. Where both sides read as instants (RFC 3339, or a bare date for its
//! midnight UTC: `updated_on >= "2026-01-05T09:00:00Z"`, `updated_on > 2026-01-05`) they compare
//! as instants, otherwise as text. Anything else is refused, as Bitbucket answers 400 to a
//! query it cannot parse.

use std::cmp::Ordering;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// A parsed filter.
#[derive(Debug, PartialEq)]
pub(super) enum Filter {
    /// `field op "value"`.
    Compare {
        field: String,
        op: Op,
        value: String,
    },
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Contains,
    NotContains,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Op(Op),
    Str(String),
    Word(String),
}

impl Filter {
    /// Parses `text`, allowing only the named `fields`; the error is the 400's detail.
    pub(super) fn parse(text: &str, fields: &[&str]) -> Result<Filter, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            fields,
        };
        let filter = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(filter),
            Some(token) => Err(format!("Unexpected {token:?} in query")),
        }
    }

    /// Refuses a comparison of one of the `dated` fields with anything but an instant, as a
    /// date field cannot be compared with text; the error is the 400's detail.
    pub(super) fn check_dates(&self, dated: &[&str]) -> Result<(), String> {
        match self {
            Filter::Compare { field, value, .. } => {
                if dated.contains(&field.as_str()) && instant(value).is_none() {
                    return Err(format!(
                        "Invalid date \"{value}\" for field \"{field}\": use ISO 8601"
                    ));
                }
                Ok(())
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.check_dates(dated)?;
                b.check_dates(dated)
            }
        }
    }

    /// Whether an item passes, `value_of` giving the item's value of a field.
    pub(super) fn matches(&self, value_of: &impl Fn(&str) -> String) -> bool {
        match self {
            Filter::Compare { field, op, value } => {
                let actual = value_of(field);
                let order = || match (instant(&actual), instant(value)) {
                    (Some(a), Some(b)) => a.cmp(&b),
                    _ => actual.as_str().cmp(value.as_str()),
                };
                match op {
                    Op::Eq => order() == Ordering::Equal,
                    Op::Ne => order() != Ordering::Equal,
                    Op::Contains => actual.contains(value.as_str()),
                    Op::NotContains => !actual.contains(value.as_str()),
                    Op::Lt => order() == Ordering::Less,
                    Op::Le => order() != Ordering::Greater,
                    Op::Gt => order() == Ordering::Greater,
                    Op::Ge => order() != Ordering::Less,
                }
            }
            Filter::And(a, b) => a.matches(value_of) && b.matches(value_of),
            Filter::Or(a, b) => a.matches(value_of) || b.matches(value_of),
        }
    }
}

/// The instant `text` names: RFC 3339, an ISO 8601 date and time without an offset (read as
/// UTC), or a bare date (its midnight UTC).
fn instant(text: &str) -> Option<OffsetDateTime> {
    let without_offset = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(text, without_offset)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            Date::parse(text, format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|date| date.midnight().assume_utc())
        })
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            '=' => tokens.push(Token::Op(Op::Eq)),
            '~' => tokens.push(Token::Op(Op::Contains)),
            '>' | '<' => {
                let or_equal = chars.next_if_eq(&'=').is_some();
                tokens.push(Token::Op(match (c, or_equal) {
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    ('<', false) => Op::Lt,
                    _ => Op::Le,
                }));
            }
            '!' => match chars.next() {
                Some('=') => tokens.push(Token::Op(Op::Ne)),
                Some('~') => tokens.push(Token::Op(Op::NotContains)),
                _ => return Err("Expected '=' or '~' after '!'".to_owned()),
            },
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("Unterminated string in query".to_owned()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("Unterminated string in query".to_owned()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Str(value));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                // A word starting with a digit is a bare number or date: `2026-01-05T09:00Z`.
                let literal = c.is_ascii_digit();
                let mut word = c.to_string();
                while let Some(next) = chars.next_if(|&next| {
                    next.is_ascii_alphanumeric()
                        || next == '_'
                        || next == '.'
                        || (literal && matches!(next, '-' | ':' | '+'))
                }) {
                    word.push(next);
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("Unexpected character '{other}' in query")),
        }
    }
    Ok(tokens)
}

/// Recursive descent over the tokens: `or := and (OR and)*`, `and := atom (AND atom)*`,
/// `atom := ( or ) | field op ("string" | bare number or date)`.
struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    fields: &'a [&'a str],
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    /// Consumes the keyword `word` (any case) if it comes next.
    fn keyword(&mut self, word: &str) -> bool {
        let found = matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut filter = self.and()?;
        while self.keyword("OR") {
            filter = Filter::Or(Box::new(filter), Box::new(self.and()?));
        }
        Ok(filter)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut filter = self.atom()?;
        while self.keyword("AND") {
            filter = Filter::And(Box::new(filter), Box::new(self.atom()?));
        }
        Ok(filter)
    }

    fn atom(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Token::Open) => {
                let filter = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(filter),
                    _ => Err("Expected ')' in query".to_owned()),
                }
            }
            Some(Token::Word(field)) => {
                if !self.fields.contains(&field.as_str()) {
                    return Err(format!("Field \"{field}\" does not support filtering"));
                }
                let Some(Token::Op(op)) = self.next() else {
                    return Err(format!("Expected an operator after \"{field}\""));
                };
                let value = match self.next() {
                    Some(Token::Str(value)) => value,
                    Some(Token::Word(value)) if value.starts_with(|c: char| c.is_ascii_digit()) => {
                        value
                    }
                    _ => return Err(format!("Expected a quoted string after \"{field}\"")),
                };
                Ok(Filter::Compare { field, op, value })
            }
            _ => Err("Expected a field or '(' in query".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(q: &str) -> Result<Vec<&'static str>, String> {
        let filter = Filter::parse(q, &["name"])?;
        Ok(["main", "release/1.0", "feature/x"]
            .into_iter()
            .filter(|n| filter.matches(&|_: &str| (*n).to_owned()))
            .collect())
    }

    #[test]
    fn filters_like_bitbucket() {
        assert_eq!(names(r#"name="main""#), Ok(vec!["main"]));
        assert_eq!(
            names(r#"name = "main" OR name = "feature/x""#),
            Ok(vec!["main", "feature/x"])
        );
        assert_eq!(
            names(r#"(name ~ "e" and name != "main") or name = "x""#),
            Ok(vec!["release/1.0", "feature/x"])
        );
        assert_eq!(names(r#"name !~ "/""#), Ok(vec!["main"]));
        assert_eq!(names(r#"name = "say \"hi\"""#), Ok(vec![]));
    }

    #[test]
    fn compares_instants_as_instants() {
        let updated = |q: &str| -> Result<Vec<&'static str>, String> {
            let filter = Filter::parse(q, &["updated_on"])?;
            filter.check_dates(&["updated_on"])?;
            Ok([
                "2026-01-05T09:00:00.000Z",
                "2026-01-05T10:30:00.250Z",
                "2026-01-06T00:00:00.000Z",
            ]
            .into_iter()
            .filter(|t| filter.matches(&|_: &str| (*t).to_owned()))
            .collect())
        };
        assert_eq!(
            updated(r#"updated_on > "2026-01-05T09:00:00Z""#),
            Ok(vec!["2026-01-05T10:30:00.250Z", "2026-01-06T00:00:00.000Z"])
        );
        assert_eq!(
            updated(r#"updated_on>="2026-01-05T10:30:00.25+00:00""#),
            Ok(vec!["2026-01-05T10:30:00.250Z", "2026-01-06T00:00:00.000Z"])
        );
        assert_eq!(
            updated("updated_on < 2026-01-06"),
            Ok(vec!["2026-01-05T09:00:00.000Z", "2026-01-05T10:30:00.250Z"])
        );
        assert_eq!(
            updated(
                r#"updated_on <= "2026-01-05T11:31:00+01:00" AND updated_on >= 2026-01-05T09:00:00"#
            ),
            Ok(vec!["2026-01-05T09:00:00.000Z", "2026-01-05T10:30:00.250Z"])
        );
        assert_eq!(
            updated(r#"updated_on = "2026-01-06T00:00:00Z""#),
            Ok(vec!["2026-01-06T00:00:00.000Z"])
        );
        assert!(updated(r#"updated_on > "yesterday""#).is_err());
        assert!(updated(r#"updated_on > 2026-13-01"#).is_err());
        // Text orders as text.
        assert_eq!(names(r#"name > "m""#), Ok(vec!["main", "release/1.0"]));
        assert_eq!(names(r#"name <= "main""#), Ok(vec!["main", "feature/x"]));
    }

    #[test]
    fn refuses_what_it_cannot_parse() {
        for bad in [
            "",
            "name",
            "name = main",
            r#"name = "main"#,
            r#"target.date > "2020""#,
            "name > ",
            "name >> \"a\"",
            "name = main2",
            r#"commit.date = "x""#,
            r#"name = "a" OR"#,
            r#"(name = "a""#,
            r#"name = "a" name = "b""#,
        ] {
            assert!(names(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            names(r#"commit.date = "x""#),
            Err("Field \"commit.date\" does not support filtering".to_owned())
        );
    }
}
