//! Text for the admin's terminal: untrusted text (build data, a server's answer, a
//! configuration value, a chat message's sender) with every character that could act on a
//! terminal written as its escape, so it shows rather than acts.

/// Longest a [`shown`] value is: what a server or the store holds may be anything.
const SHOWN_MAX_CHARS: usize = 200;

/// Untrusted text (build data, a server's answer, a configuration value: whoever can post a
/// commit status chooses a lane's job name) made safe for the admin's terminal, on one line:
/// every control character (an ANSI escape begins with one; a newline could fake a table row)
/// and every character that renders as nothing or reorders text is written as its escape
/// (`\u{1b}`), so it shows rather than acts. Cut to 200 characters.
pub fn shown(untrusted: &str) -> String {
    let mut out = escaped(untrusted, |_| false);
    if let Some((cut, _)) = out.char_indices().nth(SHOWN_MAX_CHARS) {
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// [`shown`] for a message of several lines (an error with a list): newlines stay, and it is
/// not cut.
pub fn shown_lines(untrusted: &str) -> String {
    escaped(untrusted, |c| c == '\n')
}

/// `text` with each control or invisible character but those `kept` written as its escape.
fn escaped(text: &str, kept: impl Fn(char) -> bool) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() || crate::render::is_invisible(c)) && !kept(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
