//! The plan as a person or a script reads it: text (Terraform-like), the JSON document and the
//! Markdown comment, and the registry diff.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{escape, rfc3339, Escaped, Style};
use crate::model::EntryThumbprint;
use crate::plan::{Action, Change, Field, FieldChange, Fields, Kept, NotRead, Plan, Target};
use crate::registry::Registry;

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

pub(super) fn field_lines(fields: &[FieldChange], created: bool) -> Vec<(String, String)> {
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
    let kept: Vec<String> = plan.kept.iter().map(kept_line).collect();
    text_list(
        &mut out,
        &style.warn(&format!("{KEPT_HEADING}:")),
        '=',
        &kept,
    );
    text_list(&mut out, &style.warn("Warnings:"), '!', &plan.warnings);
    if !plan.not_read.is_empty() {
        if plan.is_settled() && plan.warnings.is_empty() {
            out.push('\n');
        }
        let heading = format!("{}:", not_read_heading(plan));
        text_list(&mut out, &style.warn(&heading), '?', &not_read_lines(plan));
    }
    if !plan.is_settled() {
        let _ = writeln!(out, "{}", style.bold(&summary_line(plan)));
    }
    if let Some(report) = &plan.policy {
        out.push('\n');
        super::policy::policy_text(&mut out, report, style);
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
pub(super) fn escalation_banner(out: &mut String, style: Style, noun: &str, who: &[String]) {
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

/// A titled list of a text plan, the store's or the cluster's: `heading` (styled and escaped
/// by the caller), a line `  MARK line` each (escaped here) and a blank line; nothing without
/// lines.
pub(super) fn text_list(out: &mut String, heading: &str, mark: char, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{heading}");
    for line in lines {
        let _ = writeln!(out, "  {mark} {}", Escaped(line));
    }
    out.push('\n');
}

/// A change's block in a text plan, the store's or the cluster's: `  HEADING` (styled and
/// escaped by the caller) flagged when the change widens access, its `field: value` lines
/// (escaped here) and a blank line.
pub(super) fn text_change_block(
    out: &mut String,
    style: Style,
    heading: &str,
    escalation: bool,
    lines: Vec<(String, String)>,
) {
    let flag = if escalation {
        format!("  {}", style.alert("[ESCALATION]"))
    } else {
        String::new()
    };
    let _ = writeln!(out, "  {heading}{flag}");
    // `field: old -> new`, as docs/contract.md §4 writes it, so scripts can grep a change.
    for (k, v) in lines {
        let _ = writeln!(out, "      {}: {}", Escaped(&k), Escaped(&v));
    }
    out.push('\n');
}

/// One change: symbol, target, key and flag, then `field: value` lines.
fn text_change(out: &mut String, c: &Change, style: Style) {
    let heading = format!(
        "{} {} {}",
        style.action(c.action),
        c.target.as_str(),
        style.bold(&escape(&c.key))
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
    if let Some(t) = c.before.as_ref().and_then(|b| b.thumbprint.as_ref()) {
        lines.push((format!("thumbprint{whose}"), t.to_string()));
    }
    if let Some(na) = c.before.as_ref().and_then(|b| b.not_after) {
        if c.action != Action::Update {
            lines.push((format!("expires{whose}"), rfc3339(na)));
        }
    }
    text_change_block(out, style, &heading, c.escalation, lines);
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
    /// The rules of the policy in force and whether each holds; absent without a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<super::policy::PolicyDocument>,
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
        policy: plan.policy.as_ref().map(super::policy::PolicyDocument::of),
        registry_diff: None,
    }
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

pub(super) fn md_cell(text: &str) -> String {
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
    let kept: Vec<String> = plan.kept.iter().map(kept_line).collect();
    md_list(&mut out, KEPT_HEADING, &kept);
    md_list(&mut out, "Warnings", &plan.warnings);
    md_list(&mut out, not_read_heading(plan), &not_read_lines(plan));
    if let Some(report) = &plan.policy {
        super::policy::policy_markdown(&mut out, report);
    }
    out
}

/// A titled list of a Markdown plan, the store's or the cluster's: the heading in bold, an
/// item a line, a blank line (all escaped here); nothing without lines.
pub(super) fn md_list(out: &mut String, heading: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "**{}**\n", md_cell(heading));
    for line in lines {
        let _ = writeln!(out, "- {}", md_cell(line));
    }
    out.push('\n');
}

/// The opening of the Markdown box over the changes that widen access, the store's (`noun`
/// "change") or the cluster's ("cluster change"): `> [!WARNING]`, the count in bold, `tail`.
pub(super) fn md_escalation_heading(out: &mut String, count: usize, noun: &str, tail: &str) {
    let _ = writeln!(
        out,
        "> [!WARNING]\n> **{count} {noun}{} widen{} access**{tail}",
        if count == 1 { "" } else { "s" },
        if count == 1 { "s" } else { "" }
    );
}

/// A change's first two cells in a Markdown table, the store's or the cluster's (no outer
/// bars): its symbol in a code span, then its action, flagged when it widens access.
pub(super) fn md_action_cells(symbol: &str, action: &str, escalation: bool) -> String {
    let flag = if escalation { " ⚠️ escalation" } else { "" };
    format!("`{symbol}` | {action}{flag}")
}

/// The GitHub warning box listing who gets what, when a change widens access.
fn md_escalations(out: &mut String, plan: &Plan) {
    let escalations: Vec<&Change> = plan.changes.iter().filter(|c| c.escalation).collect();
    if escalations.is_empty() {
        return;
    }
    md_escalation_heading(out, escalations.len(), "change", " — review who gets what:");
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
            "| {} | {} | {} | {} | {} |",
            md_action_cells(c.action.symbol(), c.action.as_str(), c.escalation),
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
pub(super) fn md_field_changes(fields: &[FieldChange], created: bool) -> String {
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
pub(super) fn md_access_removed(before: Option<&Fields>) -> String {
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
                .is_some_and(|t| EntryThumbprint::parse_registered(t).is_err())
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

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::model::{Access, Clearance};

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
            thumbprint: Some(crate::model::Thumbprint::parse(&"AB".repeat(20)).unwrap()),
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
