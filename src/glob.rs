//! Branch and tag patterns for subscriptions: `main`, `release/*`, `feature/**`, `v*`.
//!
//! The syntax is the small subset people know from `.gitignore` and CI filters, so a pattern
//! means what it looks like: `*` stays within one path segment, `**` crosses `/`, `?` is one
//! character, everything else is literal. Matching is done by hand (no regex engine) in
//! O(pattern × branch) time, so no pattern can make it slow.

use std::fmt;

/// A validated branch or tag pattern, matched against names as Bitbucket reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefGlob {
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

impl RefGlob {
    /// Compiles `pattern`; the error says what is wrong in words meant for the admin.
    ///
    /// Characters that Git forbids in branch and tag names (space, `~`, `^`, `:`, `[`, `\`,
    /// control characters) are rejected: a pattern containing one could never match anything.
    pub(crate) fn new(pattern: &str) -> Result<RefGlob, String> {
        if pattern.is_empty() {
            return Err("empty pattern; use \"**\" to match every name".into());
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
                        "pattern {pattern:?}: character classes like [abc] are not \
                         supported; use *, ** or ? instead"
                    ));
                }
                c if c.is_control() || c.is_whitespace() || "~^:\\".contains(c) => {
                    return Err(format!(
                        "pattern {pattern:?} contains {c:?}, which Git does not allow in branch \
                         or tag names, so it could never match"
                    ));
                }
                c => Token::Literal(c),
            };
            tokens.push(token);
        }
        Ok(RefGlob {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// `**`: every name.
    pub fn any() -> RefGlob {
        RefGlob {
            pattern: "**".to_owned(),
            tokens: vec![Token::DoubleStar],
        }
    }

    /// Whether `name` matches the whole pattern.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
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

    /// A non-empty name both patterns match, if there is one: the shortest, so a message can
    /// show it as an example. A breadth-first walk over the states of the two patterns read
    /// side by side (each state: the positions each pattern may be at). Patterns people write
    /// have a handful of states; a contrived one could have exponentially many, so the walk
    /// gives up after [`OVERLAP_STATES`] of them and answers `None` (it only feeds a warning).
    pub(crate) fn overlap(&self, other: &RefGlob) -> Option<String> {
        // The characters worth trying: every literal of either pattern, '/', and one character
        // neither names, standing for all the others.
        let mut alphabet: Vec<char> = self
            .tokens
            .iter()
            .chain(&other.tokens)
            .filter_map(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .chain(['/'])
            .collect();
        let other_char = ('a'..='z')
            .chain('0'..='9')
            .find(|c| !alphabet.contains(c))
            .unwrap_or('x');
        alphabet.push(other_char);
        // Letters and digits first, so the example reads like a name.
        alphabet.sort_unstable_by_key(|c| (!c.is_alphanumeric(), *c));
        alphabet.dedup();

        // A state: the set of positions each pattern may be at, and whether a character was
        // read yet (names are never empty).
        type State = (Vec<usize>, Vec<usize>, bool);
        let start: State = (
            closure(&self.tokens, vec![0]),
            closure(&other.tokens, vec![0]),
            false,
        );
        let mut seen: std::collections::HashMap<State, Option<(State, char)>> =
            std::collections::HashMap::new();
        seen.insert(start.clone(), None);
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(state) = queue.pop_front() {
            if seen.len() > OVERLAP_STATES {
                return None;
            }
            let (left, right, nonempty) = &state;
            if *nonempty && left.contains(&self.tokens.len()) && right.contains(&other.tokens.len())
            {
                let mut name = Vec::new();
                let mut at = &state;
                while let Some(Some((before, c))) = seen.get(at) {
                    name.push(*c);
                    at = before;
                }
                return Some(name.into_iter().rev().collect());
            }
            for &c in &alphabet {
                let left = step(&self.tokens, left, c);
                let right = step(&other.tokens, right, c);
                if left.is_empty() || right.is_empty() {
                    continue;
                }
                let next: State = (left, right, true);
                if !seen.contains_key(&next) {
                    seen.insert(next.clone(), Some((state.clone(), c)));
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// Most states [`RefGlob::overlap`] visits before it gives up.
const OVERLAP_STATES: usize = 10_000;

/// `positions` and every position reachable from them without reading a character (a star
/// may match nothing), sorted.
fn closure(tokens: &[Token], mut positions: Vec<usize>) -> Vec<usize> {
    let mut i = 0;
    while i < positions.len() {
        let at = positions[i];
        if matches!(tokens.get(at), Some(Token::Star | Token::DoubleStar))
            && !positions.contains(&(at + 1))
        {
            positions.push(at + 1);
        }
        i += 1;
    }
    positions.sort_unstable();
    positions
}

/// The positions reached from `positions` by reading `c`.
fn step(tokens: &[Token], positions: &[usize], c: char) -> Vec<usize> {
    let next = positions
        .iter()
        .filter_map(|&at| match tokens.get(at)? {
            Token::Literal(l) => (*l == c).then_some(at + 1),
            Token::One => (c != '/').then_some(at + 1),
            // A star reads its character and stays, to read more or give way.
            Token::Star => (c != '/').then_some(at),
            Token::DoubleStar => Some(at),
        })
        .collect();
    closure(tokens, next)
}

impl fmt::Display for RefGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::RefGlob;

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
            let glob = RefGlob::new(pattern).unwrap();
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
            ("", "empty pattern"),
            ("release/[0-9]*", "character classes"),
            ("my branch", "' '"),
            ("a~1", "'~'"),
            ("a^", "'^'"),
            ("a:b", "':'"),
            ("a\\b", "'\\\\'"),
            ("a\tb", "'\\t'"),
        ];
        for (pattern, fragment) in table {
            let err = RefGlob::new(pattern).unwrap_err();
            assert!(
                err.contains(fragment),
                "{pattern:?}: {err:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn overlaps_are_found_with_an_example() {
        // (pattern, pattern, a shortest name both match, or none)
        let table = [
            ("main", "main", Some("main")),
            ("main", "**", Some("main")),
            ("main", "release/*", None),
            ("release/*", "release/1.?", Some("release/1.1")),
            ("release/*", "**/1.2", Some("release/1.2")),
            ("release/*", "release/**", Some("release/")),
            ("release/*", "*", None),
            ("*", "**", Some("a")),
            ("v*", "*-rc", Some("v-rc")),
            ("feature/**", "**/hotfix", Some("feature/hotfix")),
            ("a*", "b*", None),
            ("a?", "ab", Some("ab")),
            ("a?", "a/", None),
        ];
        for (left, right, expected) in table {
            let (l, r) = (RefGlob::new(left).unwrap(), RefGlob::new(right).unwrap());
            let found = l.overlap(&r);
            assert_eq!(found.as_deref(), expected, "{left:?} and {right:?}");
            assert_eq!(
                r.overlap(&l).is_some(),
                expected.is_some(),
                "{right:?} and {left:?}"
            );
            if let Some(name) = &found {
                assert!(l.matches(name) && r.matches(name), "{name:?}");
            }
        }
    }

    #[test]
    fn a_contrived_pair_of_patterns_gives_up_instead_of_blowing_up() {
        // Read side by side, the walk's states grow exponentially with the number of `?`:
        // it stops at its cap (a hang here is the failure), or finds a true example.
        let many = RefGlob::new(&format!("**-{}", "?".repeat(40))).unwrap();
        if let Some(name) = many.overlap(&RefGlob::any()) {
            assert!(many.matches(&name), "{name}");
        }
    }

    #[test]
    fn display_and_as_str_keep_the_pattern() {
        let glob = RefGlob::new("release/**").unwrap();
        assert_eq!(glob.as_str(), "release/**");
        assert_eq!(glob.to_string(), "release/**");
    }
}
