//! Everything a person or a script reads: plan text (Terraform-like), plan JSON and Markdown,
//! the registry diff, the Studio-like status tables and status JSON, and the apply report. JSON
//! documents are typed structs serialized in field order.

use std::borrow::Cow;
use std::fmt::Write as _;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod cluster;
mod html;

pub(crate) use cluster::{add_cluster_json, cluster_applied_text, registration, state_cell};
pub use cluster::{cluster_markdown, cluster_text};
pub(crate) use html::{html_escape, status_html};
pub use html::{ApplyOutcome, LastApply};

use crate::model::{Access, Clearance, RenewBefore};
use crate::plan::{Action, Change, Field, FieldChange, Fields, Kept, NotRead, Plan, Target};
use crate::registry::{CertEntry, Registry};

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
fn escape(s: &str) -> Cow<'_, str> {
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

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Whether to color (`--color`, NO_COLOR and the terminal decide; main works it out).
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

/// A time as RFC 3339 (`2026-01-01T00:00:00Z`), as every output and the registry show it.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn summary_line(plan: &Plan) -> String {
    let kept = match plan.kept.len() {
        0 => String::new(),
        1 => " 1 undeclared certificate kept: still has access.".to_string(),
        n => format!(" {n} undeclared certificates kept: still have access."),
    };
    format!(
        "Plan: {}.{kept}",
        tally(plan, |n, verb| format!("{n} to {verb}"))
    )
}

/// One kept certificate as a line shows it: key, name, clearance and databases, thumbprint.
fn kept_line(k: &Kept) -> String {
    let mut access = vec![k.clearance.to_string()];
    access.extend(k.permissions.iter().map(|(db, a)| format!("{db}: {a}")));
    format!(
        "client {} ('{}'): {}; thumbprint {}",
        k.key,
        k.name,
        access.join(", "),
        k.thumbprint
    )
}

/// The heading of the kept certificates, in every format.
const KEPT_HEADING: &str =
    "Kept, though certs.toml no longer declares them (prune = false): they still have access";

/// The count of each action, in the plan's order: "1 created, 0 updated, ..." after an apply.
pub(crate) fn applied_counts(plan: &Plan) -> String {
    tally(plan, |n, verb| match verb.strip_suffix('e') {
        Some(stem) => format!("{n} {stem}ed"),
        None => format!("{n} {verb}ed"),
    })
}

fn tally(plan: &Plan, each: impl Fn(usize, &str) -> String) -> String {
    [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
        Action::Export,
    ]
    .into_iter()
    .map(|a| each(plan.count(a), a.as_str()))
    .collect::<Vec<_>>()
    .join(", ")
}

/// The line of a plan with nothing to do (docs/contract.md §4).
const NO_CHANGES: &str = "No changes. The store matches certs.toml.";

/// The line of a plan with nothing to do that did not read everything: it cannot say that the
/// store matches certs.toml.
const NO_CHANGES_READ: &str =
    "No changes in what this plan read; what it did not read is listed below.";

/// The line of a plan without changes.
fn no_changes(plan: &Plan) -> &'static str {
    if plan.not_read.is_empty() {
        NO_CHANGES
    } else {
        NO_CHANGES_READ
    }
}

/// The heading of the inputs a plan did not read.
fn not_read_heading(plan: &Plan) -> &'static str {
    if plan.review {
        "Not read in review"
    } else {
        "Not read"
    }
}

/// The inputs a plan did not read, one line per reason: `key (path), key: why; effect`.
fn not_read_lines(plan: &Plan) -> Vec<String> {
    let mut groups: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for n in &plan.not_read {
        let named = match &n.path {
            Some(p) => format!("{} ({p})", n.key),
            None => n.key.clone(),
        };
        match groups
            .iter_mut()
            .find(|(why, effect, _)| *why == n.why && *effect == n.effect)
        {
            Some((_, _, keys)) => keys.push(named),
            None => groups.push((&n.why, &n.effect, vec![named])),
        }
    }
    groups
        .into_iter()
        .map(|(why, effect, keys)| format!("{}: {why}; {effect}", keys.join(", ")))
        .collect()
}

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

/// A change's fields on one line, as a log line says them: `clearance ValidUser -> Operator;
/// Orders: Read -> Admin`. A field of the client (name, clearance, certificate, protect) stands
/// by its name, a database or a setting by its name and a colon, so that a database called
/// `clearance` is never read as the field; a creation has only the new values. Not escaped:
/// the caller's output boundary (the log's writer) escapes the whole line.
pub(crate) fn field_changes_line(fields: &[FieldChange], created: bool) -> String {
    fields
        .iter()
        .map(|f| {
            let name = match &f.field {
                Field::Database(n) | Field::Setting(n) => format!("{n}:"),
                field => field.as_str().to_string(),
            };
            if created {
                format!("{name} {}", field_value(&f.new))
            } else {
                format!("{name} {} -> {}", field_value(&f.old), field_value(&f.new))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
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
    if plan.is_settled() {
        let _ = writeln!(out, "{}", no_changes(plan));
    } else if !plan.changes.is_empty() {
        text_changes(&mut out, plan, style);
    }
    if !plan.kept.is_empty() {
        let _ = writeln!(out, "{}", style.warn(&format!("{KEPT_HEADING}:")));
        for k in &plan.kept {
            let _ = writeln!(out, "  = {}", Escaped(&kept_line(k)));
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "{}", style.warn("Warnings:"));
        for w in &plan.warnings {
            let _ = writeln!(out, "  ! {}", Escaped(w));
        }
        out.push('\n');
    }
    if !plan.not_read.is_empty() {
        if plan.is_settled() && plan.warnings.is_empty() {
            out.push('\n');
        }
        let heading = format!("{}:", not_read_heading(plan));
        let _ = writeln!(out, "{}", style.warn(&heading));
        for line in not_read_lines(plan) {
            let _ = writeln!(out, "  ? {}", Escaped(&line));
        }
        out.push('\n');
    }
    if !plan.is_settled() {
        let _ = writeln!(out, "{}", style.bold(&summary_line(plan)));
    }
    out
}

/// The legend, the escalation banner and one block per change.
fn text_changes(out: &mut String, plan: &Plan, style: Style) {
    let _ = writeln!(
        out,
        "ravencert will perform these actions ({} create, {} update, {} replace, {} delete, {} export):\n",
        style.action(Action::Create),
        style.action(Action::Update),
        style.action(Action::Replace),
        style.action(Action::Delete),
        style.action(Action::Export),
    );
    let keys: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.escalation)
        .map(|c| escape(&c.key).into_owned())
        .collect();
    escalation_banner(out, style, "change", &keys);
    for c in &plan.changes {
        text_change(out, c, style);
    }
}

/// `!! ESCALATION: 2 changes widen access: a, b` and a blank line (nothing when `who` is
/// empty): the text plan's banner, for the store's changes and the cluster's. `who` is escaped.
fn escalation_banner(out: &mut String, style: Style, noun: &str, who: &[String]) {
    if who.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{} {} {noun}{} widen{} access: {}\n",
        style.alert("!! ESCALATION:"),
        who.len(),
        if who.len() == 1 { "" } else { "s" },
        if who.len() == 1 { "s" } else { "" },
        who.join(", ")
    );
}

/// One change: symbol, target, key and flag, then `field: value` lines.
fn text_change(out: &mut String, c: &Change, style: Style) {
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
    // The certificate before the change: kept by an update, the old one of a re-issue (whose
    // new thumbprint and dates only the apply knows), the one a delete removes. (A review
    // plan's assumed store has no real thumbprints to show.)
    let whose = match c.action {
        Action::Update => " (kept)",
        Action::Replace => " (old certificate)",
        _ => "",
    };
    if let Some(t) = c
        .before
        .as_ref()
        .and_then(|b| b.thumbprint.as_ref())
        .filter(|t| crate::registry::is_thumbprint(t))
    {
        lines.push((format!("thumbprint{whose}"), t.clone()));
    }
    if let Some(na) = c.before.as_ref().and_then(|b| b.not_after) {
        if c.action != Action::Update {
            lines.push((format!("expires{whose}"), rfc3339(na)));
        }
    }
    // `field: old -> new`, as docs/contract.md §4 writes it, so scripts can grep a change.
    for (k, v) in lines {
        let _ = writeln!(out, "      {}: {}", Escaped(&k), Escaped(&v));
    }
    out.push('\n');
}

/// One change as the plan JSON shows it (docs/contract.md §4): the fields that matter to the
/// action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChangeDocument {
    /// create, update, replace, delete or export.
    action: Action,
    /// server, client or export.
    target: Target,
    /// The client key (or the server's name, or the export path).
    key: String,
    /// Why, for a person.
    reason: String,
    /// Whether the change widens access.
    escalation: bool,
    /// The certificate before the change.
    before: Option<Fields>,
    /// The certificate after the change.
    after: Option<Fields>,
}

impl From<&Change> for ChangeDocument {
    fn from(c: &Change) -> ChangeDocument {
        ChangeDocument {
            action: c.action,
            target: c.target,
            key: c.key.clone(),
            reason: c.reason.clone(),
            escalation: c.escalation,
            before: c.before.clone(),
            after: c.after.clone(),
        }
    }
}

/// How many changes of each action a plan has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Summary {
    /// Changes that create.
    create: usize,
    /// Changes that edit in place.
    update: usize,
    /// Re-issues.
    replace: usize,
    /// Deletions.
    delete: usize,
    /// Exports.
    export: usize,
    /// Undeclared certificates kept (prune off): still with access. Absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    kept: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The plan as the JSON documented in docs/contract.md §4 (`plan --json`, and inside a saved plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanDocument {
    /// Always 1.
    format_version: u32,
    /// Every change, in the order it is applied.
    changes: Vec<ChangeDocument>,
    /// The counts per action.
    summary: Summary,
    /// Changes made outside ravencert, then the plan's warnings.
    warnings: Vec<String>,
    /// Undeclared certificates kept (prune off), with their access. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept: Vec<Kept>,
    /// The inputs the plan did not read (a password, a file outside the repository), each with
    /// what it could therefore not compare; left out when it read everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    not_read: Vec<NotRead>,
    /// `plan --json --diff`: the registry diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) registry_diff: Option<String>,
}

impl PlanDocument {
    /// The document with no change flagged as an escalation, to compare what two plans do.
    pub(crate) fn unflagged(mut self) -> PlanDocument {
        for c in &mut self.changes {
            c.escalation = false;
        }
        self
    }
}

/// The plan as [`PlanDocument`].
pub(crate) fn plan_document(plan: &Plan) -> PlanDocument {
    PlanDocument {
        format_version: 1,
        changes: plan.changes.iter().map(ChangeDocument::from).collect(),
        summary: Summary {
            create: plan.count(Action::Create),
            update: plan.count(Action::Update),
            replace: plan.count(Action::Replace),
            delete: plan.count(Action::Delete),
            export: plan.count(Action::Export),
            kept: plan.kept.len(),
        },
        warnings: plan
            .drift
            .iter()
            .map(|d| format!("changed outside ravencert: {d}"))
            .chain(plan.warnings.iter().cloned())
            .collect(),
        kept: plan.kept.clone(),
        not_read: plan.not_read.clone(),
        registry_diff: None,
    }
}

/// A JSON document as the commands print it: pretty, with a final newline.
pub(crate) fn json_text<T: Serialize>(document: &T) -> serde_json::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(document)?))
}

/// A value as literal GitHub-flavored Markdown text, for a table cell, a list item or a quote:
/// unsafe characters escaped as visible text (newline included, so a value stays on its line),
/// then every ASCII punctuation character backslash-escaped, which CommonMark allows for all of
/// them, except a few that are never Markdown syntax (`= , ; ' " / ? % $ { } (`), for
/// readability. No value can then open a code span, an HTML tag, an entity, a link, an image,
/// an autolink (`:`, `.` and `@` are escaped), an emphasis, a list or a heading, nor split a
/// table cell (`\|`; a backslash before it is itself escaped, `\\`). Values are never put in
/// code spans, where backslash escapes do not work.
fn md_escape(text: &str) -> String {
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
    if plan.is_settled() {
        let _ = writeln!(out, "{}\n", no_changes(plan));
    } else {
        let _ = writeln!(out, "**{}**\n", summary_line(plan));
        md_escalations(&mut out, plan);
        if !plan.changes.is_empty() {
            md_table(&mut out, plan);
        }
    }
    if !plan.kept.is_empty() {
        let _ = writeln!(out, "**{}**\n", md_cell(KEPT_HEADING));
        for k in &plan.kept {
            let _ = writeln!(out, "- {}", md_cell(&kept_line(k)));
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
    if !plan.not_read.is_empty() {
        let _ = writeln!(out, "**{}**\n", not_read_heading(plan));
        for line in not_read_lines(plan) {
            let _ = writeln!(out, "- {}", md_cell(&line));
        }
        out.push('\n');
    }
    out
}

/// The GitHub warning box listing who gets what, when a change widens access.
fn md_escalations(out: &mut String, plan: &Plan) {
    let escalations: Vec<&Change> = plan.changes.iter().filter(|c| c.escalation).collect();
    if escalations.is_empty() {
        return;
    }
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
            // Who gets what: the access, not the name nor `protect`.
            .filter(|f| f.field != Field::Name && f.field != Field::Protect)
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

/// The table of changes, one row each with its reason and changed fields.
fn md_table(out: &mut String, plan: &Plan) {
    out.push_str("| | Action | Target | Key | Reason | Changes |\n|---|---|---|---|---|---|\n");
    for c in &plan.changes {
        let changes = match c.action {
            Action::Delete => md_access_removed(c.before.as_ref()),
            _ => md_field_changes(&c.fields, c.action == Action::Create),
        };
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
            changes
        );
    }
    out.push('\n');
}

/// A Markdown table's Changes cell: `field: old -> new` (or `field: new` for a creation),
/// separated by `; `.
fn md_field_changes(fields: &[FieldChange], created: bool) -> String {
    fields
        .iter()
        .map(|f| {
            let new = md_cell(field_value(&f.new));
            if created {
                format!("{}: {new}", md_cell(f.field.as_str()))
            } else {
                let old = md_cell(field_value(&f.old));
                format!("{}: {old} -> {new}", md_cell(f.field.as_str()))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Markdown Changes cell for a certificate that goes (a delete, an unregister): the access
/// it held, each `-> (none)`.
fn md_access_removed(before: Option<&Fields>) -> String {
    let Some(b) = before else {
        return String::new();
    };
    let mut gone: Vec<FieldChange> = b
        .clearance
        .iter()
        .map(|c| FieldChange {
            field: Field::Clearance,
            old: Some(c.to_string()),
            new: None,
        })
        .collect();
    gone.extend(b.permissions.iter().flatten().map(|(db, a)| FieldChange {
        field: Field::Database(db.clone()),
        old: Some(a.to_string()),
        new: None,
    }));
    md_field_changes(&gone, false)
}

/// A unified diff of the registry text before and after.
pub(crate) fn registry_diff(before: &Registry, after: &Registry) -> String {
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
pub(crate) fn markdown_diff(diff: &str) -> String {
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
const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// A plain text table with a header row.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| vec![c.clone()]).collect())
        .collect();
    table_lines(headers, &rows)
}

/// A plain text table with a header row, whose cells may take several lines (one database per
/// line): a row is as tall as its tallest cell, the other cells blank below their first line.
fn table_lines(headers: &[&str], rows: &[Vec<Vec<String>>]) -> String {
    // Cells hold names and subjects from files and the registry: escaped line by line, so that
    // none can rewrite the terminal or break the row.
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|cell| cell.iter().map(|l| escape(l).into_owned()).collect())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            for l in cell {
                widths[i] = widths[i].max(l.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i] - c.chars().count();
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in &rows {
        let height = r.iter().map(Vec::len).max().unwrap_or(0).max(1);
        for n in 0..height {
            let cells = r
                .iter()
                .map(|cell| cell.get(n).map_or("", String::as_str))
                .collect();
            line(cells, &mut out);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Status: the Studio-like tables and `status --json` (docs/contract.md §5).

/// What the status table shows beside the registry: the time, and the renewal windows
/// certs.toml declares (none when it cannot be read: no renewal marks then).
pub(crate) struct StatusView<'a> {
    /// The store's registry.
    pub(crate) registry: &'a Registry,
    /// The time of the command, for days left.
    pub(crate) now: OffsetDateTime,
    /// The server certificate's renew_before, when it is generated.
    pub(crate) server_renew: Option<RenewBefore>,
    /// Each declared client's renew_before, by client key.
    pub(crate) client_renew: &'a BTreeMap<String, RenewBefore>,
    /// How the cluster holds each certificate, when it was asked.
    pub(crate) cluster: Option<&'a ClusterStatus>,
}

/// What `status` read from the cluster: per certificate, whether it holds it as declared, and
/// the one drift count that `status`, the page and `/metrics` all show.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterStatus {
    /// The node that answered.
    pub(crate) url: String,
    /// When (RFC 3339).
    pub(crate) checked_at: String,
    /// No certificate drifts: what `ravencert_cluster_in_sync` says.
    pub(crate) in_sync: bool,
    /// How many drift (missing, differs, extra but not kept): what
    /// `ravencert_cluster_drift_certificates` says.
    pub(crate) drift: usize,
    /// Per thumbprint: the store's certificates, then the extra registrations (by name).
    pub(crate) certificates: Vec<ClusterCertificateState>,
}

/// One certificate's cluster state.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterCertificateState {
    /// Its thumbprint.
    pub(crate) thumbprint: String,
    /// in sync, missing, differs, extra, extra (kept).
    pub(crate) state: crate::plan::RegistrationState,
    /// For an extra registration: its name on the cluster.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) name: String,
    /// For an extra registration: its clearance on the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) clearance: Option<Clearance>,
    /// For a known stranger: the note `[cluster] keep` gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

impl ClusterCertificateState {
    /// A store certificate's state (`name` and `clearance` are the store's, shown in its row).
    pub(crate) fn of_store(thumbprint: String, state: crate::plan::RegistrationState) -> Self {
        ClusterCertificateState {
            thumbprint,
            state,
            name: String::new(),
            clearance: None,
            note: None,
        }
    }
}

impl From<&crate::plan::ExtraRegistration> for ClusterCertificateState {
    fn from(e: &crate::plan::ExtraRegistration) -> Self {
        ClusterCertificateState {
            thumbprint: e.thumbprint.clone(),
            state: e.state(),
            name: e.name.clone(),
            clearance: e.clearance.client(),
            note: e.note.clone(),
        }
    }
}

impl ClusterStatus {
    /// The state of `of_store` (the store's certificates) and `extra` (the registrations the
    /// store does not hold, listed by name), with the drift they make.
    pub(crate) fn new(
        url: String,
        checked_at: String,
        of_store: Vec<ClusterCertificateState>,
        extra: Vec<ClusterCertificateState>,
    ) -> ClusterStatus {
        let mut extra = extra;
        extra.sort_by(|a, b| {
            (a.name.to_lowercase(), &a.name, &a.thumbprint).cmp(&(
                b.name.to_lowercase(),
                &b.name,
                &b.thumbprint,
            ))
        });
        let mut certificates = of_store;
        certificates.extend(extra);
        let drift = certificates.iter().filter(|c| c.state.is_drift()).count();
        ClusterStatus {
            url,
            checked_at,
            in_sync: drift == 0,
            drift,
            certificates,
        }
    }

    fn state_of(&self, thumbprint: &str) -> Option<crate::plan::RegistrationState> {
        self.certificates
            .iter()
            .find(|c| c.thumbprint.eq_ignore_ascii_case(thumbprint))
            .map(|c| c.state)
    }

    /// The registrations the store does not hold (kept or not), by name.
    pub(crate) fn extra(&self) -> impl Iterator<Item = &ClusterCertificateState> {
        self.certificates.iter().filter(|c| c.state.is_extra())
    }

    /// The counts on one line, the same in `status` and on the page: `3 of 3 certificates in
    /// sync; drift: 0`, then what the cluster holds beyond the store.
    pub(crate) fn summary(&self) -> String {
        let of_store: Vec<_> = self
            .certificates
            .iter()
            .filter(|c| !c.state.is_extra())
            .collect();
        let in_sync = of_store
            .iter()
            .filter(|c| c.state == crate::plan::RegistrationState::InSync)
            .count();
        let mut line = format!(
            "{in_sync} of {} certificates in sync; drift: {}",
            of_store.len(),
            self.drift
        );
        let (kept, extra): (Vec<_>, Vec<_>) = self
            .extra()
            .partition(|c| c.state == crate::plan::RegistrationState::Kept);
        if !kept.is_empty() || !extra.is_empty() {
            let _ = write!(
                line,
                "; beyond the store: {} extra, {} kept ([cluster] keep)",
                extra.len(),
                kept.len()
            );
        }
        line
    }
}

/// The text of `status` for a store that holds nothing yet.
pub(crate) fn status_empty(store: &Path) -> String {
    format!(
        "The store {} is empty: run `ravencert apply`.\n",
        Escaped(&store.display().to_string())
    )
}

/// The text of `status`: the server and client tables, then the applied revision.
pub(crate) fn status_text(view: &StatusView<'_>) -> String {
    let reg = view.registry;
    let mut out = String::from("Server certificate\n");
    let rows: Vec<Vec<String>> = reg
        .server
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.thumbprint.clone(),
                // A registry-only entry: the store holds no key to sign clients with.
                if s.has_key {
                    "ClusterNode"
                } else {
                    "ClusterNode (no key)"
                }
                .into(),
                expires_cell(view.now, s.not_before, s.not_after, view.server_renew, None),
            ]
        })
        .collect();
    out.push_str(&table_or_none(
        &["Name", "Thumbprint", "Clearance", "Expires"],
        &rows,
    ));
    out.push_str("\nClient certificates\n");
    let clients = sorted_clients(reg);
    let mut rows: Vec<Vec<Vec<String>>> = clients.iter().map(|c| client_row(view, c)).collect();
    let mut headers = vec!["Name", "Thumbprint", "Clearance", "Expires", "Databases"];
    if let Some(cluster) = view.cluster {
        headers.push("Cluster");
        for (row, c) in rows.iter_mut().zip(&clients) {
            row.push(vec![state_cell(cluster.state_of(&c.thumbprint))]);
        }
    }
    if rows.is_empty() {
        out.push_str("  (none registered)\n");
    } else {
        out.push_str(&table_lines(&headers, &rows));
    }
    if let Some(cluster) = view.cluster {
        status_cluster_text(&mut out, cluster);
    }
    if let Some(r) = &reg.applied_revision {
        let _ = writeln!(out, "\nApplied revision: {}", Escaped(r));
    }
    out
}

fn table_or_none(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        "  (none registered)\n".to_string()
    } else {
        table(headers, rows)
    }
}

/// The client certificates as `status` and the page list them: by name (ignoring case), then
/// key; a client's current certificate before its old one.
pub(crate) fn sorted_clients(reg: &Registry) -> Vec<&CertEntry> {
    let mut clients: Vec<&CertEntry> = reg.certificates.iter().collect();
    clients.sort_by(|a, b| {
        let order = |c: &'_ CertEntry| {
            (
                c.name.to_lowercase(),
                c.name.clone(),
                c.key.clone(),
                c.retire_after.is_some(),
                c.thumbprint.clone(),
            )
        };
        order(a).cmp(&order(b))
    });
    clients
}

/// A client row: the config's clearance words (ValidUser, Operator, ClusterAdmin), `All`
/// databases above ValidUser, one database per line.
fn client_row(view: &StatusView<'_>, c: &CertEntry) -> Vec<Vec<String>> {
    let mut name = c.name.clone();
    if c.retire_after.is_some() {
        name.push_str(" (old)");
    }
    vec![
        vec![name],
        vec![c.thumbprint.clone()],
        vec![c.clearance.to_string()],
        vec![expires_cell(
            view.now,
            c.not_before,
            c.not_after,
            view.client_renew.get(&c.key).copied(),
            c.retire_after,
        )],
        database_lines(c),
    ]
}

/// Where a certificate stands against its expiry, as `status` marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpiryMark {
    /// Valid and outside its renewal window (or none is known).
    Valid,
    /// Inside renew_before: the next apply re-issues it.
    RenewDue,
    /// An old certificate kept through its rotation overlap until this time (already
    /// replaced, so never renew due).
    Retiring(OffsetDateTime),
    /// Past its not-after.
    Expired,
}

/// The mark of a certificate valid from `not_before` to `not_after`, at `now`.
pub(crate) fn expiry_mark(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: Option<RenewBefore>,
    retiring_after: Option<OffsetDateTime>,
) -> ExpiryMark {
    if not_after <= now {
        ExpiryMark::Expired
    } else if let Some(r) = retiring_after {
        ExpiryMark::Retiring(r)
    } else if renew.is_some_and(|r| not_after - now < r.window(not_after - not_before)) {
        ExpiryMark::RenewDue
    } else {
        ExpiryMark::Valid
    }
}

/// The Expires cell: date and days left, then EXPIRED, `[retiring DATE]` for an old
/// certificate kept through its rotation overlap, or `[renew due]` inside renew_before.
fn expires_cell(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: Option<RenewBefore>,
    retiring_after: Option<OffsetDateTime>,
) -> String {
    let days = (not_after - now).whole_days();
    let date = not_after.date();
    match expiry_mark(now, not_before, not_after, renew, retiring_after) {
        ExpiryMark::Expired => format!("{date} (EXPIRED)"),
        ExpiryMark::Retiring(r) => format!("{date} ({days} days left) [retiring {}]", r.date()),
        ExpiryMark::RenewDue => format!("{date} ({days} days left) [renew due]"),
        ExpiryMark::Valid => format!("{date} ({days} days left)"),
    }
}

/// The databases a client reaches, as the Studio shows them: `All` above ValidUser.
fn databases_cell(c: &CertEntry) -> String {
    database_lines(c).join(", ")
}

/// The databases a client reaches, one `database: access` per line; `All` above ValidUser.
fn database_lines(c: &CertEntry) -> Vec<String> {
    if c.clearance != Clearance::ValidUser {
        vec!["All".to_string()]
    } else if c.permissions.is_empty() {
        vec!["(none)".to_string()]
    } else {
        c.permissions
            .iter()
            .map(|(db, a)| format!("{db}: {a}"))
            .collect()
    }
}

/// Whether a certificate is due for renewal as `status` marks it: expired, or inside its
/// renew_before window, unless it is an old certificate kept through its rotation overlap
/// (already replaced). Without a renewal window (certs.toml unreadable) only expiry counts.
pub(crate) fn renewal_due(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: Option<RenewBefore>,
    retiring_after: Option<OffsetDateTime>,
) -> bool {
    retiring_after.is_none()
        && matches!(
            expiry_mark(now, not_before, not_after, renew, None),
            ExpiryMark::Expired | ExpiryMark::RenewDue
        )
}

/// `status --json`: the registry as docs/contract.md §5 documents it, plus the warnings.
#[derive(Serialize)]
struct StatusDocument<'a> {
    server: Vec<ServerStatus<'a>>,
    certificates: Vec<CertificateStatus<'a>>,
    applied_revision: Option<&'a str>,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a ClusterStatus>,
}

#[derive(Serialize)]
struct ServerStatus<'a> {
    name: &'a str,
    subject: String,
    thumbprint: &'a str,
    not_before: String,
    not_after: String,
    source: &'static str,
    /// Shown only as `false`: a node certificate imported without its private key.
    #[serde(skip_serializing_if = "is_true")]
    has_key: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Serialize)]
struct CertificateStatus<'a> {
    key: &'a str,
    name: &'a str,
    thumbprint: &'a str,
    public_key_pinning_hash: &'a str,
    clearance: Clearance,
    permissions: &'a BTreeMap<String, Access>,
    not_before: String,
    not_after: String,
    source: &'static str,
    collection_primary: Option<&'a str>,
    retiring_after: Option<String>,
}

/// The cluster lines of `status`: which node answered when, the counts, and what it holds
/// beyond the store (with each registration's clearance, and the note of a kept one).
fn status_cluster_text(out: &mut String, cluster: &ClusterStatus) {
    let _ = writeln!(
        out,
        "\nCluster {} (checked {})",
        Escaped(&cluster.url),
        Escaped(&cluster.checked_at)
    );
    let _ = writeln!(out, "  {}", cluster.summary());
    let rows: Vec<Vec<String>> = cluster
        .extra()
        .map(|c| {
            vec![
                c.name.clone(),
                c.thumbprint.clone(),
                c.clearance.map(|c| c.to_string()).unwrap_or_default(),
                c.state.as_str().to_string(),
                c.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("  No registration beyond the store's.\n");
    } else {
        out.push_str("  Registered on the cluster, not in the store:\n");
        let headers = ["Name", "Thumbprint", "Clearance", "Cluster", "Note"];
        for line in table(&headers, &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// The text of `status --json`.
pub(crate) fn status_json(
    reg: &Registry,
    warnings: &[String],
    cluster: Option<&ClusterStatus>,
) -> serde_json::Result<String> {
    json_text(&StatusDocument {
        cluster,
        server: reg
            .server
            .iter()
            .map(|s| ServerStatus {
                name: &s.name,
                subject: format!("CN={}", s.name),
                thumbprint: &s.thumbprint,
                not_before: rfc3339(s.not_before),
                not_after: rfc3339(s.not_after),
                source: s.source.as_str(),
                has_key: s.has_key,
            })
            .collect(),
        certificates: reg
            .certificates
            .iter()
            .map(|c| CertificateStatus {
                key: &c.key,
                name: &c.name,
                thumbprint: &c.thumbprint,
                public_key_pinning_hash: &c.public_key_pinning_hash,
                clearance: c.clearance,
                permissions: &c.permissions,
                not_before: rfc3339(c.not_before),
                not_after: rfc3339(c.not_after),
                source: c.source.as_str(),
                collection_primary: c.collection_primary.as_deref(),
                retiring_after: c.retire_after.map(rfc3339),
            })
            .collect(),
        applied_revision: reg.applied_revision.as_deref(),
        warnings,
    })
}

// ---------------------------------------------------------------------------------------------
// The apply report.

/// A certificate an apply registered: (client or server key, thumbprint, not-after).
type Issued = (String, String, OffsetDateTime);

/// `apply --json`: the plan carried out, and what it registered.
#[derive(Serialize)]
struct ApplyDocument<'a> {
    #[serde(flatten)]
    plan: PlanDocument,
    applied: bool,
    issued: Vec<IssuedDocument<'a>>,
}

#[derive(Serialize)]
struct IssuedDocument<'a> {
    key: &'a str,
    thumbprint: &'a str,
    not_after: String,
}

/// The text of `apply --json`.
pub(crate) fn apply_json(
    plan: &Plan,
    issued: &[Issued],
    cluster: &crate::plan::ClusterView,
    cluster_done: &[String],
) -> serde_json::Result<String> {
    let mut document = serde_json::to_value(ApplyDocument {
        plan: plan_document(plan),
        applied: true,
        issued: issued
            .iter()
            .map(|(key, thumbprint, not_after)| IssuedDocument {
                key,
                thumbprint,
                not_after: rfc3339(*not_after),
            })
            .collect(),
    })?;
    add_cluster_json(&mut document, cluster)?;
    if let (Some(object), crate::plan::ClusterView::Planned(_)) =
        (document.as_object_mut(), cluster)
    {
        object.insert(
            "cluster_requests".to_string(),
            serde_json::to_value(cluster_done)?,
        );
    }
    json_text(&document)
}

/// The text of `apply`: the plan (when it was not shown for confirmation), each certificate
/// the store took (`stored KEY: THUMBPRINT`: the store's, not a request to the cluster, whose
/// lines follow as `cluster: ...`), and the one-line summary.
pub(crate) fn apply_text(plan: &Plan, issued: &[Issued], style: Style, show_plan: bool) -> String {
    if plan.is_empty() {
        return plan_text(plan, style);
    }
    let mut s = if show_plan {
        plan_text(plan, style)
    } else {
        String::new()
    };
    for (key, thumb, _) in issued {
        let _ = writeln!(s, "stored {}: {}", Escaped(key), Escaped(thumb));
    }
    let _ = writeln!(s, "Apply complete: {}.", applied_counts(plan));
    s
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
    fn a_log_line_says_each_field_before_and_after() {
        let change = |field, old: Option<&str>, new: Option<&str>| FieldChange {
            field,
            old: old.map(str::to_string),
            new: new.map(str::to_string),
        };
        let fields = [
            change(Field::Clearance, Some("ValidUser"), Some("Operator")),
            change(
                Field::Database("Orders".into()),
                Some("Read"),
                Some("Admin"),
            ),
            change(Field::Database("clearance".into()), None, Some("Read")),
            change(Field::Setting("prune".into()), Some("false"), Some("true")),
            change(Field::Name, Some("a"), Some("b")),
        ];
        assert_eq!(
            field_changes_line(&fields, false),
            "clearance ValidUser -> Operator; Orders: Read -> Admin; clearance: (none) -> Read; prune: false -> true; name a -> b"
        );
        assert_eq!(
            field_changes_line(&fields[..2], true),
            "clearance Operator; Orders: Admin"
        );
        assert_eq!(field_changes_line(&[], false), "");
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

    /// A re-issue's thumbprint and expiry are the old certificate's, and say so; a deleted
    /// certificate's are its own. A delete's Markdown row says what goes (issue 23).
    #[test]
    fn a_reissue_names_the_old_certificate_and_a_delete_says_what_goes() {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let before = Fields {
            thumbprint: Some("AB".repeat(20)),
            clearance: Some(Clearance::ValidUser),
            permissions: Some([("Orders".to_string(), Access::Read)].into()),
            not_after: Some(t),
            ..Fields::default()
        };
        let change = |action, key: &str| Change {
            action,
            target: Target::Client,
            key: key.into(),
            reason: "why".into(),
            escalation: false,
            before: Some(before.clone()),
            after: None,
            fields: vec![],
            thumbprints: vec![],
        };
        let plan = Plan {
            changes: vec![
                change(Action::Replace, "app"),
                change(Action::Delete, "gone"),
            ],
            ..Plan::default()
        };
        let text = plan_text(&plan, Style { color: false });
        let (date, old) = (rfc3339(t), "AB".repeat(20));
        let (replace, delete) = text.split_at(text.find("- client gone").unwrap());
        assert!(
            replace.contains(&format!("      thumbprint (old certificate): {old}\n"))
                && replace.contains(&format!("      expires (old certificate): {date}\n")),
            "{text}"
        );
        assert!(
            delete.contains(&format!("      thumbprint: {old}\n"))
                && delete.contains(&format!("      expires: {date}\n")),
            "{text}"
        );
        let md = plan_markdown(&plan);
        let row = md.lines().find(|l| l.contains("| delete |")).unwrap();
        assert!(
            row.ends_with("| clearance: ValidUser -> (none\\); Orders: Read -> (none\\) |"),
            "{row}"
        );
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
