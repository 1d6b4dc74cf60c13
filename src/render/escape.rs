//! The output-escaping boundary: every text that reaches a person (a terminal, a log, a
//! Markdown comment, the status page) goes through here, so that no value read from certs.toml,
//! a certificate, the registry or the cluster can drive a terminal, hide or reorder text, or split
//! a line where none is seen. Security-critical: keep it small and tested.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a character is escaped wherever text reaches a person: every character of the one
/// table of invisible characters ([`crate::chars::INVISIBLE`]): control characters (Unicode Cc:
/// C0, DEL, C1), format characters (Cf: bidi embeddings, overrides and isolates, zero-width
/// marks, the BOM, soft hyphen...) and the line and paragraph separators (Zl, Zp). Any of them
/// can rewrite a terminal (ESC, CR), hide or reorder text (bidi, zero width) or split a line
/// where none is seen.
pub fn is_unsafe_char(c: char) -> bool {
    crate::chars::is_invisible(c)
}

fn push_escaped(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
}

/// A value (a name, a subject, a path, a message) made safe to show: every character of
/// [`is_unsafe_char`], newline included, becomes visible text such as `\u{1b}`, so that a
/// reviewer sees that something odd is there. Idempotent: the escaped form is plain ASCII.
pub(super) fn escape(s: &str) -> Cow<'_, str> {
    escape_keeping(s, false, false)
}

/// A whole output (many lines) made safe to show: like `escape`, but newlines stay, and with
/// `keep_sgr` so do ANSI color sequences (`ESC [ digits ; ... m`). Colored output is only made
/// from values escaped before styling (see [`Style`]); tracing escapes ESC in log fields itself.
pub fn escape_output(s: &str, keep_sgr: bool) -> Cow<'_, str> {
    // A URL's password never reaches a screen or a log, whatever printed it.
    match crate::model::mask_url_userinfo(s) {
        Cow::Borrowed(s) => escape_keeping(s, true, keep_sgr),
        Cow::Owned(masked) => Cow::Owned(escape_keeping(&masked, true, keep_sgr).into_owned()),
    }
}

fn sgr_len(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix("\x1b[")?;
    let end = body.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
    (body[end..].starts_with('m')).then_some(2 + end + 1)
}

fn escape_keeping(s: &str, keep_newline: bool, keep_sgr: bool) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        if keep_sgr && c == '\x1b' {
            if let Some(n) = sgr_len(&s[i..]) {
                out.push_str(&s[i..i + n]);
                i += n;
                continue;
            }
        }
        if is_unsafe_char(c) && !(keep_newline && c == '\n') {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
        i += c.len_utf8();
    }
    Cow::Owned(out)
}

/// [`escape`] as a `Display` wrapper, for values interpolated into messages and logs.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&escape(self.0))
    }
}
