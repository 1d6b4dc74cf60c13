//! The apply report: its text and `apply --json`.

use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use super::{
    add_cluster_json, applied_counts, json_text, plan_document, plan_text, rfc3339, Escaped,
    PlanDocument, Style,
};
use crate::model::EntryThumbprint;
use crate::plan::Plan;

/// A certificate an apply registered: (client or server key, thumbprint, not-after).
type Issued = (String, EntryThumbprint, OffsetDateTime);

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
                thumbprint: thumbprint.as_str(),
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
        let _ = writeln!(s, "stored {}: {}", Escaped(key), Escaped(thumb.as_str()));
    }
    let _ = writeln!(s, "Apply complete: {}.", applied_counts(plan));
    s
}
