//! Everything a person or a script reads: plan text (Terraform-like), plan JSON, the registry
//! diff, and the Studio-like status table.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::plan::{Action, Change, Field, FieldChange, Plan, Target};
use crate::registry::Registry;

/// Whether a character is escaped wherever text reaches a person: control characters
/// (Unicode Cc: C0, DEL, C1), format characters (Cf: bidi embeddings, overrides and isolates,
/// zero-width marks, the BOM, soft hyphen...) and the line and paragraph separators (Zl, Zp).
/// Any of them can rewrite a terminal (ESC, CR), hide or reorder text (bidi, zero width) or
/// split a line where none is seen.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0x00AD
                | 0x0600..=0x0605
                | 0x061C
                | 0x06DD
                | 0x070F
                | 0x0890..=0x0891
                | 0x08E2
                | 0x180E
                | 0x200B..=0x200F
                | 0x2028..=0x202E
                | 0x2060..=0x2064
                | 0x2066..=0x206F
                | 0xFEFF
                | 0xFFF9..=0xFFFB
                | 0x110BD
                | 0x110CD
                | 0x13430..=0x1343F
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0001
                | 0xE0020..=0xE007F
        )
}

fn push_escaped(out: &mut String, c: char) {
    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
}

/// A value (a name, a subject, a path, a message) made safe to show: every character of
/// [`is_unsafe_char`], newline included, becomes visible text such as `\u{1b}`, so that a
/// reviewer sees that something odd is there. Idempotent: the escaped form is plain ASCII.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_keeping(s, false, false)
}

/// A whole output (many lines) made safe to show: like [`escape`], but newlines stay, and with
/// `keep_sgr` so do ANSI color sequences (`ESC [ digits ; ... m`). Colored output is only made
/// from values escaped before styling (see [`Style`]); tracing escapes ESC in log fields itself.
pub fn escape_output(s: &str, keep_sgr: bool) -> Cow<'_, str> {
    escape_keeping(s, true, keep_sgr)
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
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn action(&self, a: Action) -> String {
        let code = match a {
            Action::Create => "32",
            Action::Update => "33",
            Action::Replace => "35",
            Action::Delete => "31",
            Action::Export => "36",
        };
        self.paint(code, a.symbol())
    }
    fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    fn warn(&self, t: &str) -> String {
        self.paint("1;33", t)
    }
    fn alert(&self, t: &str) -> String {
        self.paint("1;31", t)
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn summary_line(plan: &Plan) -> String {
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {} to export.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Replace),
        plan.count(Action::Delete),
        plan.count(Action::Export)
    )
}

pub const NO_CHANGES: &str = "No changes. The store matches certs.toml.";

fn field_value(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

fn field_lines(fields: &[FieldChange], created: bool) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| {
            let value = if created {
                field_value(&f.new).to_string()
            } else {
                format!("{} -> {}", field_value(&f.old), field_value(&f.new))
            };
            (f.field.to_string(), value)
        })
        .collect()
}

/// The plan as text, for a terminal or a log.
pub fn plan_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.drift.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            style.warn("Changed outside ravencert (apply repairs what it safely can):")
        );
        for d in &plan.drift {
            let _ = writeln!(out, "  ~ {}", Escaped(d));
        }
        out.push('\n');
    }
    if plan.changes.is_empty() {
        let _ = writeln!(out, "{}", NO_CHANGES);
    } else {
        let _ = writeln!(
            out,
            "ravencert will perform these actions ({} create, {} update, {} replace, {} delete, {} export):\n",
            style.action(Action::Create),
            style.action(Action::Update),
            style.action(Action::Replace),
            style.action(Action::Delete),
            style.action(Action::Export),
        );
        let escalations: Vec<&Change> = plan.changes.iter().filter(|c| c.escalation).collect();
        if !escalations.is_empty() {
            let keys: Vec<Cow<str>> = escalations.iter().map(|c| escape(&c.key)).collect();
            let _ = writeln!(
                out,
                "{} {} change{} widen{} access: {}\n",
                style.alert("!! ESCALATION:"),
                escalations.len(),
                if escalations.len() == 1 { "" } else { "s" },
                if escalations.len() == 1 { "s" } else { "" },
                keys.join(", ")
            );
        }
        for c in &plan.changes {
            let flag = if c.escalation {
                format!("  {}", style.alert("[ESCALATION]"))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} {} {}{}",
                style.action(c.action),
                c.target.as_str(),
                style.bold(&escape(&c.key)),
                flag
            );
            let mut lines = vec![("reason".to_string(), c.reason.clone())];
            lines.extend(field_lines(&c.fields, c.action == Action::Create));
            // (A review plan's assumed store has no real thumbprints to show.)
            if let Some(t) = c
                .before
                .as_ref()
                .and_then(|b| b.thumbprint.as_ref())
                .filter(|t| crate::registry::is_thumbprint(t))
            {
                let label = match c.action {
                    Action::Update => "thumbprint (kept)",
                    _ => "thumbprint",
                };
                lines.push((label.to_string(), t.clone()));
            }
            if let Some(na) = c.before.as_ref().and_then(|b| b.not_after) {
                if c.action != Action::Update {
                    lines.push(("expires".to_string(), rfc3339(na)));
                }
            }
            // `field: old -> new`, as SPEC §4 writes it, so scripts can grep a change.
            for (k, v) in lines {
                let _ = writeln!(out, "      {}: {}", Escaped(&k), Escaped(&v));
            }
            out.push('\n');
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "{}", style.warn("Warnings:"));
        for w in &plan.warnings {
            let _ = writeln!(out, "  ! {}", Escaped(w));
        }
        out.push('\n');
    }
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "{}", style.bold(&summary_line(plan)));
    }
    out
}

/// The plan as the JSON documented in SPEC §4.
pub fn plan_json(plan: &Plan) -> Value {
    json!({
        "format_version": 1,
        "changes": plan.changes,
        "summary": {
            "create": plan.count(Action::Create),
            "update": plan.count(Action::Update),
            "replace": plan.count(Action::Replace),
            "delete": plan.count(Action::Delete),
            "export": plan.count(Action::Export),
        },
        "warnings": plan
            .drift
            .iter()
            .map(|d| format!("changed outside ravencert: {d}"))
            .chain(plan.warnings.iter().cloned())
            .collect::<Vec<_>>(),
    })
}

/// A value as literal GitHub-flavored Markdown text, for a table cell, a list item or a quote:
/// unsafe characters escaped as visible text (newline included, so a value stays on its line),
/// then every ASCII punctuation character backslash-escaped, which CommonMark allows for all of
/// them, except a few that are never Markdown syntax (`= , ; ' " / ? % $ { } (`), for
/// readability. No value can then open a code span, an HTML tag, an entity, a link, an image,
/// an autolink (`:`, `.` and `@` are escaped), an emphasis, a list or a heading, nor split a
/// table cell (`\|`; a backslash before it is itself escaped, `\\`). Values are never put in
/// code spans, where backslash escapes do not work.
pub fn md_escape(text: &str) -> String {
    const PLAIN: &str = "=,;'\"/?%${}(";
    let text = escape(text);
    let mut out = String::with_capacity(text.len() + 8);
    // Leading spaces as entities: four of them would start an indented code block in a list.
    let body = text.trim_start_matches(' ');
    for _ in 0..text.len() - body.len() {
        out.push_str("&#32;");
    }
    for c in body.chars() {
        if c.is_ascii_punctuation() && !PLAIN.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn md_cell(text: &str) -> String {
    md_escape(text)
}

/// The plan as Markdown for a pull-request comment: summary, escalations first, a table of
/// changes with reasons, warnings.
pub fn plan_markdown(plan: &Plan) -> String {
    let mut out = String::from("### ravencert plan\n\n");
    if !plan.drift.is_empty() {
        out.push_str("**Changed outside ravencert** (apply repairs what it safely can):\n\n");
        for d in &plan.drift {
            let _ = writeln!(out, "- {}", md_cell(d));
        }
        out.push('\n');
    }
    if plan.changes.is_empty() {
        let _ = writeln!(out, "{NO_CHANGES}\n");
    } else {
        let _ = writeln!(out, "**{}**\n", summary_line(plan));
        let escalations: Vec<&Change> = plan.changes.iter().filter(|c| c.escalation).collect();
        if !escalations.is_empty() {
            let _ = writeln!(
                out,
                "> [!WARNING]\n> **{} change{} widen{} access** — review who gets what:",
                escalations.len(),
                if escalations.len() == 1 { "" } else { "s" },
                if escalations.len() == 1 { "s" } else { "" }
            );
            for c in &escalations {
                let what: Vec<String> = c
                    .fields
                    .iter()
                    .filter(|f| f.field != Field::Name)
                    .map(|f| match &f.old {
                        Some(o) => format!(
                            "{}: {} → {}",
                            md_cell(f.field.as_str()),
                            md_cell(o),
                            md_cell(field_value(&f.new))
                        ),
                        None => format!(
                            "{}: {}",
                            md_cell(f.field.as_str()),
                            md_cell(field_value(&f.new))
                        ),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "> - {} ({}): {}",
                    md_cell(&c.key),
                    c.action.as_str(),
                    what.join(", ")
                );
            }
            out.push('\n');
        }
        out.push_str("| | Action | Target | Key | Reason | Changes |\n|---|---|---|---|---|---|\n");
        for c in &plan.changes {
            let changes: Vec<String> = c
                .fields
                .iter()
                .map(|f| {
                    let new = md_cell(field_value(&f.new));
                    if c.action == Action::Create {
                        format!("{}: {new}", md_cell(f.field.as_str()))
                    } else {
                        let old = md_cell(field_value(&f.old));
                        format!("{}: {old} -> {new}", md_cell(f.field.as_str()))
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "| `{}` | {}{} | {} | {} | {} | {} |",
                c.action.symbol(),
                c.action.as_str(),
                if c.escalation {
                    " ⚠️ escalation"
                } else {
                    ""
                },
                c.target.as_str(),
                md_cell(&c.key),
                md_cell(&c.reason),
                changes.join("; ")
            );
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        out.push_str("**Warnings**\n\n");
        for w in &plan.warnings {
            let _ = writeln!(out, "- {}", md_cell(w));
        }
        out.push('\n');
    }
    out
}

/// A unified diff of the registry text before and after.
pub fn registry_diff(before: &Registry, after: &Registry) -> String {
    let old = unknowns_masked(&before.to_text());
    let new = unknowns_masked(&after.to_text());
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("registry.toml (store)", "registry.toml (after apply)")
        .to_string()
}

/// The registry text with the values nobody knows yet shown as such: in an entry whose
/// thumbprint is a placeholder (a certificate the apply will make, or the assumed store of a
/// review plan), its thumbprint, pinning hash and dates.
fn unknowns_masked(text: &str) -> String {
    const UNKNOWN: [&str; 4] = [
        "thumbprint",
        "public_key_pinning_hash",
        "not_before",
        "not_after",
    ];
    let mut out = String::with_capacity(text.len());
    let mut block: Vec<&str> = Vec::new();
    let flush = |block: &mut Vec<&str>, out: &mut String| {
        let placeholder = block.iter().any(|l| {
            l.strip_prefix("thumbprint = \"")
                .and_then(|v| v.strip_suffix('"'))
                .is_some_and(|t| !crate::registry::is_thumbprint(t))
        });
        for line in block.drain(..) {
            let key = line.split(" = ").next().unwrap_or("");
            if placeholder && UNKNOWN.contains(&key) {
                let _ = writeln!(out, "{key} = \"{KNOWN_AFTER_APPLY}\"");
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
    };
    for line in text.lines() {
        if line.starts_with("[[") {
            flush(&mut block, &mut out);
        }
        block.push(line);
    }
    flush(&mut block, &mut out);
    out
}

/// The registry diff for a Markdown comment: a ```diff block whose fence is longer than any run
/// of backticks in the diff, so that no line of it (a client name is free text) can close the
/// block early.
pub fn markdown_diff(diff: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in diff.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    let mut out = format!("**Registry diff**\n\n{fence}diff\n{diff}");
    if !diff.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// Placeholder for values that only the apply can know (a new certificate's thumbprint).
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// Whether a change targets a client certificate (used for the registry projection).
pub fn is_client(c: &Change) -> bool {
    c.target == Target::Client
}

/// One row of the status table.
pub struct StatusRow {
    pub name: String,
    pub thumbprint: String,
    pub clearance: String,
    pub expires: String,
    pub databases: String,
}

/// A plain text table with a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    // Cells hold names and subjects from files and the registry: escaped, so that none can
    // rewrite the terminal or break the row.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["Name", "Clearance"],
            &[vec!["admin".into(), "ClusterAdmin".into()]],
        );
        assert_eq!(t, "Name   Clearance\nadmin  ClusterAdmin\n");
    }

    #[test]
    fn no_color_means_no_escape_codes() {
        let mut plan = Plan::default();
        plan.changes.push(Change {
            action: Action::Create,
            target: Target::Client,
            key: "a".into(),
            reason: "not registered".into(),
            escalation: true,
            before: None,
            after: None,
            fields: vec![],
            thumbprints: vec![],
        });
        assert!(!plan_text(&plan, Style { color: false }).contains('\x1b'));
        assert!(plan_text(&plan, Style { color: true }).contains('\x1b'));
    }

    #[test]
    fn markdown_diff_is_fenced_beyond_any_backtick_run() {
        let plain = markdown_diff("-a\n+b\n");
        assert_eq!(plain, "**Registry diff**\n\n```diff\n-a\n+b\n```\n");
        // A name holding a fence cannot close the block: the fence is one backtick longer.
        let hostile = markdown_diff("+name = \"x\n```\n`````\"\n");
        assert!(hostile.contains("\n``````diff\n"), "{hostile}");
        assert!(hostile.ends_with("\n``````\n"), "{hostile}");
        let closing = hostile.lines().filter(|l| l.starts_with("``````")).count();
        assert_eq!(closing, 2, "{hostile}");
    }
}
