//! Everything a person or a script reads: plan text (Terraform-like), plan JSON, the registry
//! diff, and the Studio-like status table.

use std::fmt::Write as _;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::plan::{Action, Change, FieldChange, Plan, Target};
use crate::store::Registry;

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
            (f.field.clone(), value)
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
            let _ = writeln!(out, "  ~ {d}");
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
            let keys: Vec<&str> = escalations.iter().map(|c| c.key.as_str()).collect();
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
                style.bold(&c.key),
                flag
            );
            let mut lines = vec![("reason".to_string(), c.reason.clone())];
            lines.extend(field_lines(&c.fields, c.action == Action::Create));
            // (A review plan's assumed store has no real thumbprints to show.)
            if let Some(t) = c
                .before
                .as_ref()
                .and_then(|b| b.thumbprint.as_ref())
                .filter(|t| crate::store::is_thumbprint(t))
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
                let _ = writeln!(out, "      {k}: {v}");
            }
            out.push('\n');
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "{}", style.warn("Warnings:"));
        for w in &plan.warnings {
            let _ = writeln!(out, "  ! {w}");
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

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
                    .filter(|f| f.field != "name")
                    .map(|f| match &f.old {
                        Some(o) => format!("{}: {} → {}", f.field, o, field_value(&f.new)),
                        None => format!("{}: {}", f.field, field_value(&f.new)),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "> - `{}` ({}): {}",
                    c.key,
                    c.action.as_str(),
                    md_cell(&what.join(", "))
                );
            }
            out.push('\n');
        }
        out.push_str("| | Action | Target | Key | Reason | Changes |\n|---|---|---|---|---|---|\n");
        for c in &plan.changes {
            let changes: Vec<String> = field_lines(&c.fields, c.action == Action::Create)
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                out,
                "| `{}` | {}{} | {} | `{}` | {} | {} |",
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
                md_cell(&changes.join("; "))
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
                .is_some_and(|t| !crate::store::is_thumbprint(t))
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
