//! The dotted key path at a byte offset of certs.toml, from the spans toml gives every key and
//! value: `[clients.app]` + `clearance = 7`, `clients.app.clearance = 7` and
//! `app = { clearance = 7 }` under `[clients]` all name `clients.app.clearance`.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The key path at `offset`: the innermost key whose key or value holds it, else the `[table]`
/// whose body holds it; empty when none does. Text that is not TOML has no spans for the key
/// at fault: there the path is guessed from the lines ([`guessed_key_path_at`]).
pub(super) fn key_path_at(source: &str, offset: usize) -> String {
    let Ok(root) = DeTable::parse(source) else {
        return guessed_key_path_at(source, offset);
    };
    let root = root.get_ref();
    in_table(root, offset, &mut Path::default())
        .or_else(|| enclosing_table(source, root, offset))
        .unwrap_or_default()
}

/// A key path as messages write it: `clients.app.clearance`, `cluster.keep[1].note`.
#[derive(Clone, Default)]
struct Path {
    text: String,
    /// The byte length of `text` before each segment, to take it off again.
    marks: Vec<usize>,
}

impl Path {
    fn push_key(&mut self, key: &str) {
        self.marks.push(self.text.len());
        if !self.text.is_empty() {
            self.text.push('.');
        }
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.text.push_str(key);
        } else {
            // As TOML writes a key that is not bare (`[clients."orders app"]`).
            self.text.push_str(&format!("\"{}\"", key.escape_debug()));
        }
    }

    fn push_index(&mut self, i: usize) {
        self.marks.push(self.text.len());
        self.text.push_str(&format!("[{i}]"));
    }

    fn pop(&mut self) {
        if let Some(m) = self.marks.pop() {
            self.text.truncate(m);
        }
    }
}

fn holds(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset)
}

/// The path of the innermost key of `table` (or below) that matches `offset`.
fn in_table(table: &DeTable<'_>, offset: usize, path: &mut Path) -> Option<String> {
    for (key, value) in table.iter() {
        path.push_key(key.get_ref());
        if let Some(found) = in_value(value, offset, path) {
            return Some(found);
        }
        if holds(&key.span(), offset) || holds(&value.span(), offset) {
            return Some(path.text.clone());
        }
        path.pop();
    }
    None
}

/// The path of the innermost key inside `value` (a table or an array) that matches `offset`.
fn in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Path) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(t) => in_table(t, offset, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_index(i);
                if let Some(found) = in_value(item, offset, path) {
                    return Some(found);
                }
                if holds(&item.span(), offset) {
                    return Some(path.text.clone());
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}

/// The `[table]` (or `[[table]]` entry) whose body holds `offset`: the last header at or before
/// it, as TOML assigns a line to the header above it.
fn enclosing_table(source: &str, root: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let header = |span: Range<usize>| source.as_bytes().get(span.start) == Some(&b'[');
    headers(root, &header, &mut Path::default(), &mut |start, path| {
        if start <= offset && best.as_ref().is_none_or(|(b, _)| start > *b) {
            best = Some((start, path.to_string()));
        }
    });
    best.map(|(_, path)| path)
}

/// Calls `f` with where each `[table]` header starts and the table's path. toml spans such a
/// table by its header (`header` tells: it starts with `[`), an inline table by its braces, a
/// table that dotted keys or a longer header made by that key.
fn headers(
    table: &DeTable<'_>,
    header: &dyn Fn(Range<usize>) -> bool,
    path: &mut Path,
    f: &mut dyn FnMut(usize, &str),
) {
    for (key, value) in table.iter() {
        path.push_key(key.get_ref());
        match value.get_ref() {
            DeValue::Table(t) => {
                if header(value.span()) {
                    f(value.span().start, &path.text);
                }
                headers(t, header, path, f);
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        path.push_index(i);
                        if header(item.span()) {
                            f(item.span().start, &path.text);
                        }
                        headers(t, header, path, f);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// The key path at a byte offset of text that is not TOML, guessed from the lines: the nearest
/// `[table]` header above it plus the key on its line (`[clients.admin]` + `validity = ` ->
/// `clients.admin.validity`). toml has no span for a key it could not parse.
fn guessed_key_path_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = source[line_start..].lines().next().unwrap_or("");
    let mut key = match line.split_once('=') {
        Some((k, _)) if !line.trim_start().starts_with('[') => k.trim().to_string(),
        _ => String::new(),
    };
    // A key inside an inline table (`keep = [{ thumbprint = "...", owner = "x" }]`): the key
    // at the offset, after the line's own when that is one.
    if key.contains(['{', '[', ',']) {
        // The line continues an array or inline table: the key that opened it, above.
        key = source[..line_start]
            .lines()
            .rev()
            .take_while(|l| !l.trim_start().starts_with('['))
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .find(|k| !k.contains(['{', '[', ',', '}', ']']))
            .unwrap_or_default()
            .to_string();
    }
    let here = source.get(offset..).unwrap_or_default();
    let word: String = here
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
        .collect();
    if !word.is_empty() && here[word.len()..].trim_start().starts_with('=') && word != key {
        key = if key.is_empty() {
            word
        } else {
            format!("{key}.{word}")
        };
    }
    let header = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.trim_start().starts_with('[') {
        return line
            .trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    match (header, key.is_empty()) {
        (Some(h), false) => format!("{h}.{key}"),
        (Some(h), true) => h,
        (None, _) => key,
    }
}
