//! The policy's part of a plan (docs/contract.md §10): each rule of policy.toml, whether it
//! holds and for which clients, as text, Markdown and JSON. Shown only when a policy is in
//! force; every value escaped like the rest of the plan.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{md_cell, Escaped, Style};
use crate::plan::{PolicyReport, RuleResult, RuleState};

/// The policy in a JSON plan (`"policy"`, present only with a policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PolicyDocument {
    /// The policy file (`policy.toml`, or `policy.toml@main` for BASE's).
    file: String,
    /// Every rule, in the file's order.
    rules: Vec<RuleDocument>,
}

/// One rule in a JSON plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RuleDocument {
    name: String,
    line: usize,
    /// true: holds; false: violated; null: not evaluated.
    holds: Option<bool>,
    /// The client keys the rule selects.
    clients: Vec<String>,
    /// What breaks it, client by client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    violations: Vec<ViolationDocument>,
    /// Why it could not be evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_evaluated: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ViolationDocument {
    client: String,
    message: String,
}

impl PolicyDocument {
    pub(crate) fn of(report: &PolicyReport) -> PolicyDocument {
        PolicyDocument {
            file: report.shown.clone(),
            rules: report.rules.iter().map(rule_document).collect(),
        }
    }
}

fn rule_document(r: &RuleResult) -> RuleDocument {
    let (holds, violations, not_evaluated) = match &r.state {
        RuleState::Holds => (Some(true), Vec::new(), None),
        RuleState::Violated(v) => (
            Some(false),
            v.iter()
                .map(|v| ViolationDocument {
                    client: v.client.clone(),
                    message: v.message.clone(),
                })
                .collect(),
            None,
        ),
        RuleState::NotEvaluated(why) => (None, Vec::new(), Some(why.clone())),
    };
    RuleDocument {
        name: r.name.clone(),
        line: r.line,
        holds,
        clients: r.selected.clone(),
        violations,
        not_evaluated,
    }
}

/// `3 rules: 1 holds, 1 violated, 1 not evaluated`.
fn tally(report: &PolicyReport) -> String {
    let count = |f: fn(&RuleState) -> bool| report.rules.iter().filter(|r| f(&r.state)).count();
    let holds = count(|s| *s == RuleState::Holds);
    let violated = count(|s| matches!(s, RuleState::Violated(_)));
    let unknown = count(|s| matches!(s, RuleState::NotEvaluated(_)));
    let n = report.rules.len();
    let mut text = format!(
        "{n} rule{}: {holds} hold{}",
        if n == 1 { "" } else { "s" },
        if holds == 1 { "s" } else { "" }
    );
    if violated > 0 {
        let _ = write!(text, ", {violated} violated");
    }
    if unknown > 0 {
        let _ = write!(text, ", {unknown} not evaluated");
    }
    text
}

/// The most clients a rule's line names in text and Markdown (JSON lists them all): a rule
/// over every client of a large store would otherwise fill the page.
const SHOWN_CLIENTS: usize = 10;

/// The clients a rule selects, as a line shows them: `a, b and 3 more`.
fn clients(r: &RuleResult) -> String {
    let n = r.selected.len();
    match n {
        0 => "no client".into(),
        n if n <= SHOWN_CLIENTS => r.selected.join(", "),
        n => format!(
            "{} and {} more",
            r.selected[..SHOWN_CLIENTS].join(", "),
            n - SHOWN_CLIENTS
        ),
    }
}

/// The text plan's policy block: a heading with the tally, a line per rule, each violation
/// under its rule.
pub(super) fn policy_text(out: &mut String, report: &PolicyReport, style: Style) {
    let heading = format!("Policy ({}): {}", report.shown, tally(report));
    let heading = Escaped(&heading).to_string();
    let violated = report
        .rules
        .iter()
        .any(|r| matches!(r.state, RuleState::Violated(_)));
    let _ = writeln!(
        out,
        "{}",
        if violated {
            style.alert(&heading)
        } else {
            style.bold(&heading)
        }
    );
    for r in &report.rules {
        let (mark, state) = match &r.state {
            RuleState::Holds => ("ok", "holds".to_string()),
            RuleState::Violated(_) => ("!!", "VIOLATED".to_string()),
            RuleState::NotEvaluated(why) => ("??", format!("not evaluated: {why}")),
        };
        let line = format!(
            "{mark} {} (line {}): {state}; clients: {}",
            r.name,
            r.line,
            clients(r)
        );
        let _ = writeln!(out, "  {}", Escaped(&line));
        if let RuleState::Violated(v) = &r.state {
            for v in v {
                let _ = writeln!(out, "       {}", Escaped(&v.message));
            }
        }
    }
    out.push('\n');
}

/// The Markdown plan's policy section: `### Policy (FILE)` and a table of the rules.
pub(super) fn policy_markdown(out: &mut String, report: &PolicyReport) {
    let _ = writeln!(
        out,
        "### Policy ({})\n\n**{}**\n",
        md_cell(&report.shown),
        md_cell(&tally(report))
    );
    out.push_str("| Rule | Holds | Clients |\n|---|---|---|\n");
    for r in &report.rules {
        let holds = match &r.state {
            RuleState::Holds => "✅ holds".to_string(),
            RuleState::Violated(v) => format!(
                "❌ **violated**: {}",
                v.iter()
                    .map(|v| md_cell(&v.message))
                    .collect::<Vec<_>>()
                    .join("<br>")
            ),
            RuleState::NotEvaluated(why) => format!("➖ not evaluated: {}", md_cell(why)),
        };
        let _ = writeln!(
            out,
            "| {} (line {}) | {holds} | {} |",
            md_cell(&r.name),
            r.line,
            md_cell(&clients(r))
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Violation;

    /// The file name and the messages are escaped in text and Markdown: a policy path holding
    /// ESC or a newline cannot drive the terminal or forge a line of the PR comment.
    #[test]
    fn policy_values_are_escaped() {
        let report = PolicyReport {
            shown: "p\u{1b}[31m\nolicy.toml".into(),
            rules: vec![RuleResult {
                name: "r".into(),
                line: 3,
                selected: vec!["a".into()],
                state: RuleState::Violated(vec![Violation {
                    rule: "r".into(),
                    line: 3,
                    client: "a".into(),
                    message: "clients.a has Admin on Pay\u{202e}ments\n| forged | row |".into(),
                }]),
            }],
        };
        let mut text = String::new();
        policy_text(&mut text, &report, Style { color: false });
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(
            !text.contains("\nolicy") && !text.contains("\n| forged"),
            "{text:?}"
        );
        let mut md = String::new();
        policy_markdown(&mut md, &report);
        assert!(!md.contains('\u{1b}') && !md.contains('\u{202e}'), "{md:?}");
        assert!(!md.contains("\n| forged"), "{md:?}");
        assert_eq!(md.matches("\n|").count(), 3, "{md}");
    }

    /// A rule over thousands of clients names the first ten and counts the rest.
    #[test]
    fn long_client_lists_are_cut() {
        let selected: Vec<String> = (0..10_000).map(|i| format!("client-{i:05}")).collect();
        let r = RuleResult {
            name: "r".into(),
            line: 1,
            selected,
            state: RuleState::Holds,
        };
        assert_eq!(
            clients(&r),
            "client-00000, client-00001, client-00002, client-00003, client-00004, client-00005, client-00006, client-00007, client-00008, client-00009 and 9990 more"
        );
        assert_eq!(rule_document(&r).clients.len(), 10_000);
    }
}
