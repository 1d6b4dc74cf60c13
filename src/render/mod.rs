//! Everything a person or a script reads: plan text (Terraform-like), plan JSON and Markdown,
//! the registry diff, the Studio-like status tables and status JSON, and the apply report. JSON
//! documents are typed structs serialized in field order. Every value passes the escaping
//! boundary (escape.rs) on its way out.

use serde::Serialize;

use crate::plan::Action;

mod apply;
mod cluster;
mod escape;
mod html;
mod plan;
mod policy;
mod status;
mod table;

pub(crate) use apply::{apply_json, apply_text};
pub(crate) use cluster::{add_cluster_json, cluster_applied_text, registration, state_cell};
pub use cluster::{cluster_markdown, cluster_text};
use escape::escape;
pub(crate) use escape::Escaped;
pub use escape::{escape_output, is_unsafe_char};
pub(crate) use html::{html_escape, status_html};
pub use html::{ApplyOutcome, LastApply};
pub(crate) use plan::{
    applied_counts, field_changes_line, markdown_diff, plan_document, registry_diff, PlanDocument,
};
use plan::{
    escalation_banner, field_lines, md_access_removed, md_action_cells, md_cell,
    md_escalation_heading, md_field_changes, md_list, text_change_block, text_list,
};
pub use plan::{plan_markdown, plan_text};
use status::databases_cell;
pub(crate) use status::{
    expiry_mark, renewal_due, sorted_clients, status_empty, status_json, status_text,
    ClusterCertificateState, ClusterStatus, ExpiryMark, StatusView,
};
use table::{table, table_lines};

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

pub(crate) use crate::model::rfc3339;

/// A JSON document as the commands print it: pretty, with a final newline.
pub(crate) fn json_text<T: Serialize>(document: &T) -> serde_json::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(document)?))
}
