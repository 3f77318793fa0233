//! Branch patterns for subscriptions: `main`, `release/*`, `feature/**`.
//!
//! The syntax is the small subset people know from `.gitignore` and CI filters, so a pattern
//! means what it looks like: `*` stays within one path segment, `**` crosses `/`, `?` is one
//! character, everything else is literal. Matching is done by hand (no regex engine) in
//! O(pattern × branch) time, so no pattern can make it slow.

use std::fmt;

/// A validated branch pattern, matched against branch names as Bitbucket reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchGlob {
    /// The pattern as written, for messages and `Display`.
    pattern: String,
    /// The pattern compiled once, so matching does not re-parse it.
    tokens: Vec<Token>,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: any one character except `/`.
    One,
    /// `*`: any run of characters except `/`.
    Star,
    /// `**`: any run of characters, `/` included.
    DoubleStar,
}

impl BranchGlob {
    /// Compiles `pattern`; the error says what is wrong in words meant for the admin.
    ///
    /// Characters that Git forbids in branch names (space, `~`, `^`, `:`, `[`, `\`, control
    /// characters) are rejected: a pattern containing one could never match anything.
    pub fn new(pattern: &str) -> Result<BranchGlob, String> {
        if pattern.is_empty() {
            return Err("empty branch pattern; use \"**\" for all branches".into());
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    if chars.peek() == Some(&'*') {
                        while chars.peek() == Some(&'*') {
                            chars.next();
                        }
                        Token::DoubleStar
                    } else {
                        Token::Star
                    }
                }
                '?' => Token::One,
                '[' => {
                    return Err(format!(
                        "branch pattern {pattern:?}: character classes like [abc] are not \
                         supported; use *, ** or ? instead"
                    ));
                }
                c if c.is_control() || c.is_whitespace() || "~^:\\".contains(c) => {
                    return Err(format!(
                        "branch pattern {pattern:?} contains {c:?}, which Git does not allow in \
                         branch names, so it could never match"
                    ));
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(BranchGlob {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// Whether `branch` matches the whole pattern.
    pub fn matches(&self, branch: &str) -> bool {
        let text: Vec<char> = branch.chars().collect();
        // `next[j]`: whether tokens[i + 1..] match text[j..]; computed from the last token
        // backwards, one row per token.
        let mut next = vec![false; text.len() + 1];
        next[text.len()] = true;
        for token in self.tokens.iter().rev() {
            let mut row = vec![false; text.len() + 1];
            for j in (0..=text.len()).rev() {
                let here = text.get(j).copied();
                row[j] = match token {
                    Token::Literal(c) => here == Some(*c) && next[j + 1],
                    Token::One => here.is_some_and(|h| h != '/') && next[j + 1],
                    // Match nothing here, or swallow one more character and stay on the token.
                    Token::Star => next[j] || (here.is_some_and(|h| h != '/') && row[j + 1]),
                    Token::DoubleStar => next[j] || (here.is_some() && row[j + 1]),
                };
            }
            next = row;
        }
        next[0]
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for BranchGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::BranchGlob;

    #[test]
    fn matching() {
        // (pattern, branch, expected)
        let table = [
            ("main", "main", true),
            ("main", "main2", false),
            ("main", "mai", false),
            ("main", "feature/main", false),
            ("release/*", "release/1.2", true),
            ("release/*", "release/", true),
            ("release/*", "release/1/2", false),
            ("release/*", "release", false),
            ("release/*", "hotfix/1.2", false),
            ("**", "main", true),
            ("**", "feature/a/b", true),
            ("**", "", true),
            ("feature/**", "feature/a/b", true),
            ("feature/**", "feature/a", true),
            ("feature/**", "feature", false),
            ("feature/**", "bugfix/a", false),
            ("**/hotfix", "a/b/hotfix", true),
            ("**/hotfix", "hotfix", false),
            ("*", "main", true),
            ("*", "a/b", false),
            ("*-rc", "1.2-rc", true),
            ("*-rc", "1.2-rc/x", false),
            ("v?.?", "v1.2", true),
            ("v?.?", "v1.23", false),
            ("v?", "v/", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*b*c", "a/b/c", false),
            ("a**c", "a/b/c", true),
            ("***", "x/y", true),
            ("é*", "été", true),
            ("release/1.2", "release/1x2", false),
        ];
        for (pattern, branch, expected) in table {
            let glob = BranchGlob::new(pattern).unwrap();
            assert_eq!(
                glob.matches(branch),
                expected,
                "{pattern:?} against {branch:?}"
            );
        }
    }

    #[test]
    fn invalid_patterns() {
        // (pattern, fragment of the error)
        let table = [
            ("", "empty branch pattern"),
            ("release/[0-9]*", "character classes"),
            ("my branch", "' '"),
            ("a~1", "'~'"),
            ("a^", "'^'"),
            ("a:b", "':'"),
            ("a\\b", "'\\\\'"),
            ("a\tb", "'\\t'"),
        ];
        for (pattern, fragment) in table {
            let err = BranchGlob::new(pattern).unwrap_err();
            assert!(
                err.contains(fragment),
                "{pattern:?}: {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn display_and_as_str_keep_the_pattern() {
        let glob = BranchGlob::new("release/**").unwrap();
        assert_eq!(glob.as_str(), "release/**");
        assert_eq!(glob.to_string(), "release/**");
    }
}
