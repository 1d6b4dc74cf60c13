//! Errors in certs.toml as a person reads them: [`ConfigError`], the lines they quote (redacted,
//! capped, escaped) and the [`Checker`] that collects them with their positions.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::keypath::key_path_at;

/// A problem in certs.toml, written for the person at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What kind of problem it is, for a caller that treats them differently.
    pub(super) kind: ConfigErrorKind,
    /// The certs.toml (with `@REV` when read from git).
    pub(super) file: PathBuf,
    /// 1-based line of the key at fault, when known.
    pub(super) line: Option<usize>,
    /// 1-based column (in characters) of the key at fault, when known.
    pub(super) column: Option<usize>,
    /// The key path, e.g. `clients.orders-app.databases`.
    pub(super) key: String,
    /// What is wrong and what to do.
    pub(super) message: String,
    /// The source line, shown under the message.
    pub(super) snippet: Option<String>,
    /// In policy.toml rather than certs.toml.
    pub(super) in_policy: bool,
}

/// The kinds of [`ConfigError`]. The message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConfigErrorKind {
    /// Not TOML, or a key or value of the wrong shape (unknown key, wrong type, missing field).
    Syntax,
    /// A value that breaks a rule of certs.toml (validation).
    Invalid,
    /// A value that cannot be used where it points (a path into the store, an export path
    /// not allowed) or that the plan refuses (found after parsing, placed at the key).
    Reference,
    /// A file certs.toml names (an upload, a node certificate, the admin .pfx, the CA file)
    /// that is missing or cannot be used (unreadable, wrong password, no certificate or no key
    /// where one is needed).
    CertificateFile,
    /// A secret certs.toml names (`password_env`, `password_file`) that is not there or cannot
    /// be used.
    Secret,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)?;
        } else {
            write!(f, ": {}: {}", self.key, self.message)?;
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n    | {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A problem with a secret or a file certs.toml names, rather than with certs.toml's text.
    pub(crate) fn names_input(&self) -> bool {
        matches!(
            self.kind,
            ConfigErrorKind::CertificateFile | ConfigErrorKind::Secret
        )
    }

    /// A problem in policy.toml, not in certs.toml.
    pub(crate) fn in_policy(&self) -> bool {
        self.in_policy
    }

    /// A problem with a secret (a password's variable or file) certs.toml names.
    pub(crate) fn is_secret(&self) -> bool {
        self.kind == ConfigErrorKind::Secret
    }

    /// On one line, what is wrong first, then where certs.toml names it:
    /// `environment variable X is not set: ... (clients.app.password_env, certs.toml:12)`.
    pub(crate) fn brief(&self) -> String {
        let mut at = self.file.display().to_string();
        if let Some(line) = self.line {
            at.push_str(&format!(":{line}"));
        }
        if self.key.is_empty() {
            format!("{} ({at})", self.message)
        } else {
            format!("{} ({}, {at})", self.message, self.key)
        }
    }
}

/// Collects errors with positions computed from the source text.
pub(super) struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    pub(super) errors: Vec<ConfigError>,
    /// Line and column of keys that later checks (secrets, files) report on.
    pub(super) positions: HashMap<String, (usize, usize)>,
    /// The byte offset where each line starts, found once: a position is a binary search, not
    /// a scan from the top (a config of 1,000 clients marks thousands of keys).
    line_starts: Vec<usize>,
    /// Checking policy.toml rather than certs.toml.
    in_policy: bool,
}

/// A source line with the value of any `password = ...` masked: an error about a password
/// must not print it. Capped and escaped: it goes to terminals, logs and PR comments.
pub(super) fn redact(line: &str) -> String {
    // The first `password =` on the line, wherever `password_env`/`password_file` stand
    // before it (an inline table names them all on one line).
    let at = line.match_indices("password").map(|(i, _)| i).find(|i| {
        // A quoted key (`"password" = ...`) is the same key to TOML.
        let rest = &line[i + "password".len()..];
        let rest = rest.strip_prefix(['"', '\'']).unwrap_or(rest);
        rest.trim_start().starts_with('=')
    });
    let line = match at {
        Some(i) => format!("{}password = ***", &line[..i]),
        None => line.to_string(),
    };
    shown_line(&crate::model::mask_url_userinfo(&line))
}

/// The longest source line an error shows, in characters.
pub(super) const MAX_SNIPPET_CHARS: usize = 120;

/// A line of certs.toml as an error shows it: at most MAX_SNIPPET_CHARS characters (then `…`),
/// control and format characters (ESC, CR, bidi overrides) written as escapes (`\x1b`,
/// `\u{202e}`), so that a line can neither drive the terminal nor fill a log.
fn shown_line(line: &str) -> String {
    let mut out = String::new();
    for (i, c) in line.chars().enumerate() {
        if i == MAX_SNIPPET_CHARS {
            out.push('…');
            break;
        }
        // Controls as `\xNN`, tab kept; every other character of the one invisible-character
        // table (crate::chars, which the output boundary escapes too) as `\u{..}`.
        if (c as u32) < 0x20 && c != '\t' || ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if c != '\t' && crate::chars::is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

impl<'a> Checker<'a> {
    pub(super) fn new(file: &'a Path, source: &'a str) -> Checker<'a> {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Checker {
            file,
            source,
            errors: Vec::new(),
            positions: HashMap::new(),
            line_starts,
            in_policy: false,
        }
    }

    /// A checker of policy.toml: its errors say so.
    pub(super) fn for_policy(file: &'a Path, source: &'a str) -> Checker<'a> {
        Checker {
            in_policy: true,
            ..Checker::new(file, source)
        }
    }

    /// The document checked, as messages name it.
    fn document(&self) -> &'static str {
        if self.in_policy {
            "policy.toml"
        } else {
            "certs.toml"
        }
    }

    /// Line and column (both from 1) of a byte offset, and where that line starts.
    fn line_column(&self, offset: usize) -> (usize, usize, usize) {
        let mut start = offset.min(self.source.len());
        while !self.source.is_char_boundary(start) {
            start -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= start);
        let line_start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self.source[line_start..start].chars().count() + 1;
        (line.max(1), column, line_start)
    }

    fn position(&self, span: &Range<usize>) -> (usize, usize, String) {
        let (line, column, line_start) = self.line_column(span.start);
        let text = self.source[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end();
        (line, column, redact(text))
    }

    /// The line (from 1) of a byte offset.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.line_column(offset).0
    }

    /// Remembers where a key stands, for errors found after parsing.
    pub(super) fn mark(&mut self, key: String, span: &Range<usize>) {
        let (line, column, _) = self.line_column(span.start);
        self.positions.insert(key, (line, column));
    }

    pub(super) fn error_at(
        &mut self,
        span: Option<&Range<usize>>,
        key: impl Into<String>,
        message: String,
    ) {
        let (line, column, snippet) = match span {
            Some(s) => {
                let (l, c, t) = self.position(s);
                (Some(l), Some(c), Some(t))
            }
            None => (None, None, None),
        };
        self.errors.push(ConfigError {
            kind: ConfigErrorKind::Invalid,
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.into(),
            message,
            snippet,
            in_policy: self.in_policy,
        });
    }
}

/// The error of a certs.toml serde refused (not TOML, unknown key, wrong type), at its line.
pub(super) fn syntax_errors(
    mut ck: Checker<'_>,
    source: &str,
    e: &toml::de::Error,
) -> Vec<ConfigError> {
    let span = e.span();
    let message = e.message().trim().to_string();
    let key = span
        .as_ref()
        .map(|s| key_path_at(source, s.start))
        .unwrap_or_default();
    let message = if message.starts_with("unknown field") {
        format!("{message}; unknown keys are refused so that a typo is never ignored")
    } else if message == "missing field `version`" {
        // serde reports it at the end of the document: no line to point at.
        let message = format!(
            "missing field `version`: {} must start with `version = 1`",
            ck.document()
        );
        ck.error_at(Some(&(0..0)), "version", message);
        return mark_syntax(ck.errors);
    } else {
        message
    };
    ck.error_at(span.as_ref(), key, message);
    // Not TOML at all (a link to /etc/shadow, an environment dump): its lines are
    // nobody's config, so none is echoed, and the key only when it looks like one.
    if toml::from_str::<toml::Table>(source).is_err() {
        for e in &mut ck.errors {
            e.snippet = None;
            if e.key.len() > 64
                || !e
                    .key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                e.key = String::new();
            }
        }
    }
    mark_syntax(ck.errors)
}

fn mark_syntax(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors
        .into_iter()
        .map(|e| ConfigError {
            kind: ConfigErrorKind::Syntax,
            ..e
        })
        .collect()
}
