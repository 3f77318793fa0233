//! The part of BBQL, Bitbucket Cloud's `q=` filter language, that a poller uses on branches
//! and statuses: a field compared with a quoted string (`=`, `!=`, `~` contains, `!~` does not
//! contain), joined by `AND` and `OR`, grouped with parentheses. Anything else is refused, as
//! Bitbucket answers 400 to a query it cannot parse.

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

    /// Whether an item passes, `value_of` giving the item's value of a field.
    pub(super) fn matches(&self, value_of: &impl Fn(&str) -> String) -> bool {
        match self {
            Filter::Compare { field, op, value } => {
                let actual = value_of(field);
                match op {
                    Op::Eq => actual == *value,
                    Op::Ne => actual != *value,
                    Op::Contains => actual.contains(value.as_str()),
                    Op::NotContains => !actual.contains(value.as_str()),
                }
            }
            Filter::And(a, b) => a.matches(value_of) && b.matches(value_of),
            Filter::Or(a, b) => a.matches(value_of) || b.matches(value_of),
        }
    }
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
                let mut word = c.to_string();
                while let Some(&next) = chars.peek() {
                    if !(next.is_ascii_alphanumeric() || next == '_' || next == '.') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("Unexpected character '{other}' in query")),
        }
    }
    Ok(tokens)
}

/// Recursive descent over the tokens: `or := and (OR and)*`, `and := atom (AND atom)*`,
/// `atom := ( or ) | field op "string"`.
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
                let Some(Token::Str(value)) = self.next() else {
                    return Err(format!("Expected a quoted string after \"{field}\""));
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
    fn refuses_what_it_cannot_parse() {
        for bad in [
            "",
            "name",
            "name = main",
            r#"name = "main"#,
            r#"target.date > "2020""#,
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
