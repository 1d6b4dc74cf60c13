//! The cluster part of every output (docs/contract.md §7): the text block after the store's, the
//! Markdown section, the JSON entries (`"target": "cluster"`) and `cluster` object, the apply
//! report's requests, and the status column.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::{
    escalation_banner, escape, field_lines, md_access_removed, md_action_cells, md_cell,
    md_escalation_heading, md_field_changes, md_list, text_change_block, text_list, Escaped, Style,
};
use crate::model::Thumbprint;
use crate::plan::{
    ClusterAction, ClusterChange, ClusterPlan, ClusterView, ExtraRegistration, Field,
    RegistrationState,
};

fn summary(plan: &ClusterPlan) -> String {
    let kept = match plan.kept().len() {
        0 => String::new(),
        1 => " 1 registration the store does not hold kept: still has access.".to_string(),
        n => format!(" {n} registrations the store does not hold kept: still have access."),
    };
    let known = match plan.known().len() {
        0 => String::new(),
        1 => " 1 known stranger left alone ([cluster] keep).".to_string(),
        n => format!(" {n} known strangers left alone ([cluster] keep)."),
    };
    format!(
        "Cluster {}: {} to register, {} to edit, {} to unregister.{kept}{known}",
        escape(&plan.url),
        plan.count(ClusterAction::Register),
        plan.count(ClusterAction::Edit),
        plan.count(ClusterAction::Unregister)
    )
}

/// The heading of the known strangers, in every format.
const KNOWN_HEADING: &str =
    "Known strangers, named by [cluster] keep: left alone, never unregistered, not drift";

/// A known stranger as a line shows it: name, clearance, thumbprint, state and note.
fn known_line(e: &ExtraRegistration) -> String {
    let mut line = format!("{}: {}", kept_line(e), e.state().as_str());
    if let Some(note) = &e.note {
        line.push_str(&format!(" — {note}"));
    }
    line
}

/// The heading of the kept registrations, in every format.
const KEPT_HEADING: &str = "Registered on the cluster, not in the store, and kept: they still have access (unregister them in the Studio, or set [cluster] prune = true)";

/// A kept registration as a line shows it.
fn kept_line(e: &ExtraRegistration) -> String {
    format!(
        "'{}' ({}); thumbprint {}",
        e.name, e.clearance, e.thumbprint
    )
}

fn paint_action(style: Style, a: ClusterAction) -> String {
    let code = match a {
        ClusterAction::Register => "32",
        ClusterAction::Edit => "33",
        ClusterAction::Unregister => "31",
    };
    style.paint(code, a.symbol())
}

/// The cluster block of a text plan (empty without `[cluster]`), after the store's.
pub fn cluster_text(view: &ClusterView, style: Style) -> String {
    let mut out = String::new();
    let plan = match view {
        ClusterView::Absent => return out,
        ClusterView::Skipped(why) => {
            let _ = writeln!(out, "\nCluster: not contacted ({}).", Escaped(why));
            return out;
        }
        ClusterView::Planned(p) => p,
    };
    let _ = writeln!(
        out,
        "\nCluster {} (RavenDB {}):\n",
        Escaped(&plan.url),
        Escaped(&plan.server_version.full)
    );
    if plan.is_settled() {
        let others = if plan.known().is_empty() {
            ""
        } else {
            ", and [cluster] keep names the others"
        };
        let _ = writeln!(
            out,
            "  No changes. The cluster's registrations match the store{others}.\n"
        );
    }
    let names: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.escalation)
        .map(label)
        .collect();
    escalation_banner(&mut out, style, "cluster change", &names);
    for c in &plan.changes {
        text_change(&mut out, c, style);
    }
    let kept: Vec<String> = plan.kept().into_iter().map(kept_line).collect();
    text_list(
        &mut out,
        &style.warn(&format!("{KEPT_HEADING}:")),
        '=',
        &kept,
    );
    let known: Vec<String> = plan.known().into_iter().map(known_line).collect();
    text_list(&mut out, &format!("{KNOWN_HEADING}:"), '=', &known);
    text_list(
        &mut out,
        &style.warn("Cluster warnings:"),
        '!',
        &plan.warnings,
    );
    let _ = writeln!(out, "{}", style.bold(&summary(plan)));
    out
}

/// `clients.KEY` or the registration's name, escaped.
fn label(c: &ClusterChange) -> String {
    match &c.key {
        Some(k) => escape(k).into_owned(),
        None => format!("'{}'", escape(&c.name)),
    }
}

/// How every output names a registration, whatever the action: its client key, then its name
/// (`orders-app ('Orders App')`); its name alone when no client holds it. Escaped.
pub(crate) fn registration(c: &ClusterChange) -> String {
    match &c.key {
        Some(k) => format!("{} ('{}')", escape(k), escape(&c.name)),
        None => format!("'{}'", escape(&c.name)),
    }
}

fn text_change(out: &mut String, c: &ClusterChange, style: Style) {
    let heading = format!(
        "{} {} {}",
        paint_action(style, c.action),
        c.action.as_str(),
        style.bold(&registration(c))
    );
    let mut lines = vec![("reason".to_string(), c.reason.clone())];
    // The name a register sets is in the heading; a rename is a field change.
    let register = c.action == ClusterAction::Register;
    let fields: Vec<_> = c
        .fields
        .iter()
        .filter(|f| !(register && f.field == Field::Name))
        .cloned()
        .collect();
    lines.extend(field_lines(&fields, register));
    let thumbprint = c
        .thumbprint
        .as_ref()
        .map_or_else(|| "(known after apply)".to_string(), ToString::to_string);
    lines.push(("thumbprint".to_string(), thumbprint));
    text_change_block(out, style, &heading, c.escalation, lines);
}

/// The cluster section of a Markdown plan (empty without `[cluster]`).
pub fn cluster_markdown(view: &ClusterView) -> String {
    let mut out = String::new();
    let plan = match view {
        ClusterView::Absent => return out,
        ClusterView::Skipped(why) => {
            let _ = writeln!(out, "#### Cluster\n\nNot contacted ({}).\n", md_cell(why));
            return out;
        }
        ClusterView::Planned(p) => p,
    };
    let _ = writeln!(
        out,
        "#### Cluster {} (RavenDB {})\n\n**{}**\n",
        md_cell(&plan.url),
        md_cell(&plan.server_version.full),
        md_cell(&summary(plan))
    );
    let escalations: Vec<&ClusterChange> = plan.changes.iter().filter(|c| c.escalation).collect();
    if !escalations.is_empty() {
        md_escalation_heading(&mut out, escalations.len(), "cluster change", "");
        for c in &escalations {
            let _ = writeln!(out, "> - {}: {}", md_cell(&label(c)), md_cell(&c.reason));
        }
        out.push('\n');
    }
    if !plan.changes.is_empty() {
        out.push_str(
            "| | Action | Client | Name | Thumbprint | Reason | Changes |\n|---|---|---|---|---|---|---|\n",
        );
        for c in &plan.changes {
            let changes = match c.action {
                ClusterAction::Unregister => md_access_removed(c.before.as_ref()),
                _ => md_field_changes(&c.fields, c.action == ClusterAction::Register),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                md_action_cells(c.action.symbol(), c.action.as_str(), c.escalation),
                md_cell(c.key.as_deref().unwrap_or("")),
                md_cell(&c.name),
                md_cell(
                    c.thumbprint
                        .as_ref()
                        .map_or("(known after apply)", Thumbprint::as_str)
                ),
                md_cell(&c.reason),
                changes
            );
        }
        out.push('\n');
    }
    let kept: Vec<String> = plan.kept().into_iter().map(kept_line).collect();
    md_list(&mut out, KEPT_HEADING, &kept);
    let known: Vec<String> = plan.known().into_iter().map(known_line).collect();
    md_list(&mut out, KNOWN_HEADING, &known);
    md_list(&mut out, "Cluster warnings", &plan.warnings);
    out
}

/// The `cluster` object of the JSON plan.
#[derive(Serialize)]
struct ClusterDocument<'a> {
    url: Option<&'a str>,
    server_version: Option<&'a str>,
    register: usize,
    edit: usize,
    unregister: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'a str>,
    /// Registrations the store does not hold that stay, with their access. Absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kept: Vec<KeptDocument<'a>>,
    /// Registrations `[cluster] keep` names, left alone. Absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    known_strangers: Vec<KeptDocument<'a>>,
}

/// A registration the store does not hold that stays, in the JSON plan's `cluster` object.
#[derive(Serialize)]
struct KeptDocument<'a> {
    thumbprint: &'a str,
    name: &'a str,
    clearance: String,
    /// A known stranger's note (`[cluster] keep`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

impl<'a> From<&'a ExtraRegistration> for KeptDocument<'a> {
    fn from(e: &'a ExtraRegistration) -> Self {
        KeptDocument {
            thumbprint: e.thumbprint.as_str(),
            name: &e.name,
            clearance: e.clearance.to_string(),
            note: e.note.as_deref(),
        }
    }
}

/// A cluster change in the JSON plan's `changes`.
#[derive(Serialize)]
struct ClusterChangeDocument<'a> {
    action: ClusterAction,
    target: &'static str,
    key: Option<&'a str>,
    name: &'a str,
    thumbprint: Option<&'a str>,
    reason: &'a str,
    escalation: bool,
    before: &'a Option<crate::plan::Fields>,
    after: &'a Option<crate::plan::Fields>,
}

/// Adds the cluster to a JSON plan (or apply report) document: its changes after the store's
/// in `changes`, and the `cluster` object. Nothing without `[cluster]`.
pub(crate) fn add_cluster_json(document: &mut Value, view: &ClusterView) -> serde_json::Result<()> {
    let cluster = match view {
        ClusterView::Absent => return Ok(()),
        ClusterView::Skipped(why) => ClusterDocument {
            url: None,
            server_version: None,
            register: 0,
            edit: 0,
            unregister: 0,
            skipped: Some(why),
            kept: Vec::new(),
            known_strangers: Vec::new(),
        },
        ClusterView::Planned(p) => ClusterDocument {
            url: Some(&p.url),
            server_version: Some(&p.server_version.full),
            register: p.count(ClusterAction::Register),
            edit: p.count(ClusterAction::Edit),
            unregister: p.count(ClusterAction::Unregister),
            skipped: None,
            kept: p.kept().into_iter().map(KeptDocument::from).collect(),
            known_strangers: p.known().into_iter().map(KeptDocument::from).collect(),
        },
    };
    let Some(object) = document.as_object_mut() else {
        return Ok(());
    };
    if let Some(p) = view.plan() {
        let changes = object
            .entry("changes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = changes.as_array_mut() {
            for c in &p.changes {
                list.push(serde_json::to_value(ClusterChangeDocument {
                    action: c.action,
                    target: "cluster",
                    key: c.key.as_deref(),
                    name: &c.name,
                    thumbprint: c.thumbprint.as_ref().map(Thumbprint::as_str),
                    reason: &c.reason,
                    escalation: c.escalation,
                    before: &c.before,
                    after: &c.after,
                })?);
            }
        }
        if let Some(Value::Array(warnings)) = object.get_mut("warnings") {
            warnings.extend(p.warnings.iter().cloned().map(Value::String));
        }
    }
    object.insert("cluster".to_string(), serde_json::to_value(cluster)?);
    Ok(())
}

/// The lines of an apply report for the cluster phase: one per request sent, then the summary.
pub(crate) fn cluster_applied_text(view: &ClusterView, done: &[String]) -> String {
    let mut out = String::new();
    match view {
        ClusterView::Absent => {}
        ClusterView::Skipped(why) => {
            let _ = writeln!(out, "Cluster: not contacted ({}).", Escaped(why));
        }
        ClusterView::Planned(p) => {
            for d in done {
                let _ = writeln!(out, "cluster: {}", Escaped(d));
            }
            let _ = writeln!(
                out,
                "Cluster {}: {} registered, {} edited, {} unregistered.",
                Escaped(&p.url),
                p.count(ClusterAction::Register),
                p.count(ClusterAction::Edit),
                p.count(ClusterAction::Unregister)
            );
        }
    }
    out
}

/// A status row's cluster cell.
pub(crate) fn state_cell(state: Option<RegistrationState>) -> String {
    state.map_or("-", RegistrationState::as_str).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Field, FieldChange, ServerVersion};

    /// A name and a database read from the cluster (a Studio upload) are attacker text.
    fn hostile_plan() -> ClusterView {
        let name = "evil\u{1b}[2J|<b>x</b>\n[link](http://e.example)\u{202e}";
        ClusterView::Planned(ClusterPlan {
            url: "https://a.example.com".into(),
            server_version: ServerVersion {
                major: 4,
                minor: 1,
                full: "4.1.0\u{1b}[31m".into(),
            },
            changes: vec![ClusterChange {
                action: ClusterAction::Unregister,
                key: None,
                name: name.into(),
                thumbprint: Some(Thumbprint::parse(&"AB".repeat(20)).unwrap()),
                reason: format!("not in the store ({name})"),
                escalation: true,
                before: None,
                after: None,
                fields: vec![FieldChange {
                    field: Field::Database(name.into()),
                    old: Some("Admin".into()),
                    new: None,
                }],
                collection_primary: None,
                disabled: None,
            }],
            warnings: vec![format!("cluster: '{name}' is kept")],
            extra: Vec::new(),
            last_used: Default::default(),
        })
    }

    #[test]
    fn names_from_the_cluster_never_reach_a_screen_raw() {
        let view = hostile_plan();
        let text = cluster_text(&view, Style { color: false });
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        let md = cluster_markdown(&view);
        assert!(
            !md.contains('\u{1b}') && !md.contains("<b>") && !md.contains("[link]("),
            "{md}"
        );
        // One table row per change: the name's newline and pipe cannot split it.
        let rows = md.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, 1, "{md}");
    }

    /// Register, edit and unregister name a registration alike: its client key, then its
    /// name; without a key, the name. An unregister's Markdown row says what goes (issue 23).
    #[test]
    fn every_cluster_action_names_a_registration_by_key_then_name() {
        let change = |action, key: Option<&str>, name: &str| ClusterChange {
            action,
            key: key.map(String::from),
            name: name.into(),
            thumbprint: Some(Thumbprint::parse(&"CD".repeat(20)).unwrap()),
            reason: "why".into(),
            escalation: false,
            before: None,
            after: None,
            fields: Vec::new(),
            collection_primary: None,
            disabled: None,
        };
        let mut register = change(ClusterAction::Register, Some("orders-app"), "Orders App");
        register.fields = vec![
            FieldChange {
                field: Field::Name,
                old: None,
                new: Some("Orders App".into()),
            },
            FieldChange {
                field: Field::Clearance,
                old: None,
                new: Some("Operator".into()),
            },
        ];
        let mut gone = change(ClusterAction::Unregister, None, "Hand Upload");
        gone.before = Some(crate::plan::Fields {
            clearance: Some(crate::model::Clearance::Operator),
            permissions: Some(Default::default()),
            ..Default::default()
        });
        let old = change(ClusterAction::Unregister, Some("orders-app"), "Orders App");
        let view = ClusterView::Planned(ClusterPlan {
            url: "https://a.example.com".into(),
            server_version: ServerVersion {
                major: 4,
                minor: 1,
                full: "4.1.0".into(),
            },
            changes: vec![register, gone, old],
            warnings: Vec::new(),
            extra: Vec::new(),
            last_used: Default::default(),
        });
        let text = cluster_text(&view, Style { color: false });
        for header in [
            "  + register orders-app ('Orders App')\n",
            "  - unregister 'Hand Upload'\n",
            "  - unregister orders-app ('Orders App')\n",
        ] {
            assert!(text.contains(header), "{header:?} in\n{text}");
        }
        assert!(!text.contains("      name: "), "{text}");
        assert!(text.contains("      clearance: Operator\n"), "{text}");
        let md = cluster_markdown(&view);
        let row = md.lines().find(|l| l.contains("Hand Upload")).unwrap();
        assert!(
            row.ends_with("| clearance: Operator -> (none\\) |"),
            "{row}"
        );
    }

    #[test]
    fn json_lists_cluster_changes_after_the_store_with_the_cluster_object() {
        let mut doc = serde_json::json!({"format_version": 1, "changes": [], "warnings": []});
        add_cluster_json(&mut doc, &hostile_plan()).unwrap();
        assert_eq!(doc["changes"][0]["target"], "cluster");
        assert_eq!(doc["changes"][0]["action"], "unregister");
        assert_eq!(doc["cluster"]["unregister"], 1);
        assert_eq!(doc["cluster"]["register"], 0);
        assert_eq!(doc["warnings"].as_array().unwrap().len(), 1);
        let mut absent = serde_json::json!({"changes": []});
        add_cluster_json(&mut absent, &ClusterView::Absent).unwrap();
        assert!(absent.get("cluster").is_none());
        add_cluster_json(&mut absent, &ClusterView::Skipped("--offline".into())).unwrap();
        assert_eq!(absent["cluster"]["skipped"], "--offline");
        assert!(absent["cluster"]["url"].is_null());
    }
}
