//! The one error type of configuration loading.
//!
//! A configuration error is read by an admin in a terminal or a journal, so it is a single line
//! in the compiler style: `FILE:LINE:COLUMN: KEY: what is wrong; what to do`. The line and key
//! are also exposed as data so tests (and a future `--check` mode) need not parse the text.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why the configuration could not be loaded, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", Place(self), self.message)]
pub struct ConfigError {
    /// The file, always named so an admin with several instances knows which one to fix.
    file: PathBuf,
    /// 1-based line and column (in characters) of the offending text, when there is one.
    position: Option<(usize, usize)>,
    /// Dotted key path such as `subscription[1].channels[0]`, when the error is about a key.
    key: Option<String>,
    /// What is wrong and what to do about it.
    message: String,
}

impl ConfigError {
    /// The file at `path` could not be read.
    pub fn io(path: &Path, error: &io::Error) -> ConfigError {
        let hint = match error.kind() {
            io::ErrorKind::NotFound => "check the path, or start from config.example.toml",
            io::ErrorKind::PermissionDenied => "make it readable by the user bbzoom runs as",
            io::ErrorKind::InvalidData => "save it as UTF-8",
            _ => "check that it is a readable file",
        };
        ConfigError {
            file: path.to_owned(),
            position: None,
            key: None,
            message: format!("cannot read the configuration file: {error}; {hint}"),
        }
    }

    /// An error about the text at byte offsets `span` of `text` (the contents of `file`).
    pub(super) fn at(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            position: span.map(|span| line_column(text, span.start)),
            key,
            message,
        }
    }

    /// The error as found in a text made of the configuration, a newline and the chat's
    /// subscriptions file at `path` (see `validate::parse`), placed in the file it is about:
    /// past `lines_before` lines, or about a `[[subscription]]` from the `first_table`-th on,
    /// that file, its line and its table counted in it.
    pub(super) fn relocated(
        mut self,
        path: &Path,
        lines_before: usize,
        first_table: usize,
    ) -> ConfigError {
        let table = self.key.as_deref().and_then(|key| {
            let rest = key.strip_prefix("subscription[")?;
            let (index, after) = rest.split_once(']')?;
            Some((index.parse::<usize>().ok()?, after.to_owned()))
        });
        let in_chat = match self.position {
            Some((line, _)) => line > lines_before,
            None => table
                .as_ref()
                .is_some_and(|(index, _)| *index >= first_table),
        };
        if !in_chat {
            return self;
        }
        self.file = path.to_owned();
        if let Some((line, column)) = self.position {
            self.position = Some((line - lines_before, column));
        }
        if let Some((index, after)) = table.filter(|(index, _)| *index >= first_table) {
            self.key = Some(format!("subscription[{}]{after}", index - first_table));
        }
        self
    }

    /// The 1-based line the error is about, if it is about a place in the file.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    /// The 1-based column (in characters) the error is about, if it is about a place in the file.
    pub fn column(&self) -> Option<usize> {
        self.position.map(|(_, column)| column)
    }

    /// The key path the error is about, such as `zoom.channels.ci.to_jid`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong and what to do, without the file, line and key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The `FILE:LINE:COLUMN: KEY: ` prefix, with absent parts left out.
struct Place<'a>(&'a ConfigError);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file.display())?;
        if let Some((line, column)) = e.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &e.key {
            write!(f, "{key}: ")?;
        }
        Ok(())
    }
}

/// 1-based line and character column of byte `offset` in `text` (clamped to the text).
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // After the two-byte 'é', the column counts characters, not bytes.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn display_has_file_line_column_key_and_message() {
        let text = "[polling]\nhot = \"x\"\n";
        let e = ConfigError::at(
            Path::new("/etc/bbzoom/config.toml"),
            text,
            Some(16..19),
            Some("polling.hot".into()),
            "bad".into(),
        );
        assert_eq!(
            e.to_string(),
            "/etc/bbzoom/config.toml:2:7: polling.hot: bad"
        );
        assert_eq!(
            (e.line(), e.column(), e.key()),
            (Some(2), Some(7), Some("polling.hot"))
        );
    }

    #[test]
    fn io_error_names_the_file_only() {
        let e = ConfigError::io(
            Path::new("/nope.toml"),
            &io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(
            e.to_string()
                .starts_with("/nope.toml: cannot read the configuration file: "),
            "{e}"
        );
        assert_eq!((e.line(), e.key()), (None, None));
    }
}
