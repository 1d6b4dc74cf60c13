//! The status page (docs/contract.md §9): the Studio's Certificates view as one static HTML
//! document, with a timeline of expirations drawn as inline SVG. No script and no external asset
//! (the CSS is inline), so that it can be served by the daemon, kept as a CI artifact or pasted
//! into a wiki; every value goes through [`html_escape`], the page's one escape function.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{
    databases_cell, escape, expiry_mark, rfc3339, sorted_clients, state_cell, ClusterStatus,
    ExpiryMark, StatusView,
};
use crate::model::{Clearance, EntryThumbprint, RenewBefore};
use crate::plan::RegistrationState;

/// What the daemon knows of its last apply, shown at the top of the status page (none for
/// `status --html`, which runs no apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastApply {
    /// When the attempt that applied it ran (the daemon's clock at its start).
    pub at: OffsetDateTime,
    /// Whether it succeeded.
    pub outcome: ApplyOutcome,
    /// The certs.toml revision it applied, when known.
    pub revision: Option<String>,
}

/// How an apply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Store and cluster were converged.
    Succeeded,
    /// It stopped, for this reason (the error's message).
    Failed {
        /// The error, as the log shows it.
        reason: String,
    },
}

/// A value made safe inside HTML text and quoted attributes: `& < > " '` become entities, and
/// control, bidi and other invisible characters become visible `\u{..}` text, as in every other
/// output (see [`super::is_unsafe_char`]).
pub(crate) fn html_escape(s: &str) -> String {
    let visible = escape(s);
    let mut out = String::with_capacity(visible.len() + 16);
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One certificate, server or client, as the page shows it (values not yet escaped).
struct Row {
    name: String,
    thumbprint: EntryThumbprint,
    clearance: &'static str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: Option<RenewBefore>,
    mark: ExpiryMark,
    databases: Vec<(String, String)>,
    cluster: Option<(String, &'static str)>,
    /// When access ends by itself (clients' `until`).
    until: Option<OffsetDateTime>,
    /// `disabled = true` in certs.toml.
    disabled: bool,
    /// When it was last used, where the cluster says.
    last_used: Option<OffsetDateTime>,
}

/// The Studio's names for the clearances.
fn studio_clearance(c: Clearance) -> &'static str {
    match c {
        Clearance::ClusterAdmin => "Cluster Admin",
        Clearance::Operator => "Operator",
        Clearance::ValidUser => "User",
    }
}

/// The Cluster cell's text (as `status` writes it) and its CSS class, when the cluster was read.
fn cluster_cell(
    view: &StatusView<'_>,
    thumbprint: &EntryThumbprint,
) -> Option<(String, &'static str)> {
    view.cluster.map(|c| {
        let state = c.state_of(thumbprint);
        let class = match state {
            Some(RegistrationState::InSync) => "ok",
            Some(RegistrationState::Disabled) => "off",
            Some(_) => "bad",
            None => "unknown",
        };
        (state_cell(state), class)
    })
}

/// The server certificate's rows (one per node certificate in the registry).
fn server_rows(view: &StatusView<'_>) -> Vec<Row> {
    view.registry
        .server
        .iter()
        .map(|s| Row {
            name: s.name.clone(),
            thumbprint: s.thumbprint.clone(),
            clearance: if s.has_key {
                "Cluster Node"
            } else {
                "Cluster Node (no key)"
            },
            not_before: s.not_before,
            not_after: s.not_after,
            renew: view.server_renew,
            mark: expiry_mark(view.now, s.not_before, s.not_after, view.server_renew, None),
            databases: Vec::new(),
            cluster: cluster_cell(view, &s.thumbprint),
            until: None,
            disabled: false,
            last_used: view.cluster.and_then(|c| c.last_used_of(&s.thumbprint)),
        })
        .collect()
}

/// The client certificates' rows, by name as `status` lists them.
fn client_rows(view: &StatusView<'_>) -> Vec<Row> {
    sorted_clients(view.registry)
        .into_iter()
        .map(|c| {
            let renew = view.renew_of(c);
            let databases = if c.clearance == Clearance::ValidUser {
                c.permissions
                    .iter()
                    .map(|(db, a)| (db.clone(), a.to_string()))
                    .collect()
            } else {
                vec![(databases_cell(c), String::new())]
            };
            let mut name = c.name.clone();
            if c.retire_after.is_some() {
                name.push_str(" (old)");
            }
            Row {
                name,
                thumbprint: c.thumbprint.clone(),
                clearance: studio_clearance(c.clearance),
                not_before: c.not_before,
                not_after: c.not_after,
                renew,
                mark: expiry_mark(view.now, c.not_before, c.not_after, renew, c.retire_after),
                databases,
                cluster: cluster_cell(view, &c.thumbprint),
                until: c.until,
                disabled: c.disabled,
                last_used: view.cluster.and_then(|v| v.last_used_of(&c.thumbprint)),
            }
        })
        .collect()
}

/// The page: header, the banner while certs.toml cannot be used (`unusable`: each problem on
/// one line, none when it can), last apply, server and client tables, cluster state, timeline.
pub(crate) fn status_html(
    view: &StatusView<'_>,
    last: Option<&LastApply>,
    unusable: &[String],
) -> String {
    let servers = server_rows(view);
    let clients = client_rows(view);
    let mut out = String::with_capacity(8192);
    out.push_str(HEAD);
    let _ = writeln!(
        out,
        "<header><h1>RavenDB certificates</h1><p>As of <time datetime=\"{0}\">{0}</time></p></header>\n<main>",
        html_escape(&rfc3339(view.now))
    );
    banner_section(&mut out, unusable);
    last_apply_section(&mut out, view, last);
    let _ = writeln!(out, "<section><h2>Server certificate</h2>");
    table(&mut out, "server", &servers, view, false);
    let _ = writeln!(out, "</section>\n<section><h2>Client certificates</h2>");
    table(&mut out, "clients", &clients, view, true);
    out.push_str("</section>\n");
    if let Some(cluster) = view.cluster {
        cluster_section(&mut out, cluster);
    }
    let all: Vec<&Row> = servers.iter().chain(&clients).collect();
    timeline_section(&mut out, view.now, &all);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The banner at the top while certs.toml, or a secret or file it names, cannot be used: what
/// is wrong, each problem escaped (nothing when there is none).
fn banner_section(out: &mut String, unusable: &[String]) {
    if unusable.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"banner\" role=\"alert\"><h2>certs.toml cannot be used</h2>\n<ul>",
    );
    for problem in unusable {
        let _ = write!(out, "<li>{}</li>", html_escape(problem));
    }
    out.push_str("</ul>\n<p>Nothing is applied until this is fixed; the certificates below are the store as last applied.</p></section>\n");
}

/// The summary box: the daemon's last apply (when, result, revision) and the store's applied
/// revision.
fn last_apply_section(out: &mut String, view: &StatusView<'_>, last: Option<&LastApply>) {
    out.push_str("<section class=\"summary\"><h2>Last apply</h2>\n<dl>");
    match last {
        Some(l) => {
            let at = html_escape(&rfc3339(l.at));
            let _ = write!(out, "<dt>When</dt><dd><time datetime=\"{at}\">{at}</time></dd>");
            match &l.outcome {
                ApplyOutcome::Succeeded => {
                    out.push_str("<dt>Result</dt><dd><span class=\"badge ok\">succeeded</span></dd>")
                }
                ApplyOutcome::Failed { reason } => {
                    let _ = write!(
                        out,
                        "<dt>Result</dt><dd><span class=\"badge bad\">failed</span> <span class=\"reason\">{}</span></dd>",
                        html_escape(reason)
                    );
                }
            }
            let revision = l.revision.as_deref().unwrap_or("(not recorded)");
            let _ = write!(
                out,
                "<dt>Revision</dt><dd><code>{}</code></dd>",
                html_escape(revision)
            );
        }
        None => out.push_str(
            "<dt>When</dt><dd>None recorded: <code>ravencert status --html</code> runs no apply, and a watch daemon shows its last one here once it has applied.</dd>",
        ),
    }
    let applied = view
        .registry
        .applied_revision
        .as_deref()
        .unwrap_or("(not recorded)");
    let _ = writeln!(
        out,
        "<dt>Store's applied revision</dt><dd><code>{}</code></dd></dl></section>",
        html_escape(applied)
    );
}

/// A table of certificates; `clients` adds the Allowed Databases column, the cluster state adds
/// its own when the cluster was read.
fn table(out: &mut String, id: &str, rows: &[Row], view: &StatusView<'_>, clients: bool) {
    if rows.is_empty() {
        out.push_str("<p class=\"none\">None registered.</p>\n");
        return;
    }
    let mut headers = vec!["Name", "Thumbprint", "Security Clearance", "Expiration"];
    if clients {
        headers.push("Allowed Databases");
    }
    if view.cluster.is_some() {
        headers.push("Cluster");
    }
    let last_used = rows.iter().any(|r| r.last_used.is_some());
    if last_used {
        headers.push("Last used");
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"certs\" id=\"{id}\">\n<thead><tr>"
    );
    for h in &headers {
        let _ = write!(out, "<th scope=\"col\">{h}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        let _ = write!(
            out,
            "<tr class=\"cert {}\"><td data-label=\"Name\" class=\"name\">{}</td><td data-label=\"Thumbprint\" class=\"thumb\"><code>{}</code></td><td data-label=\"Security Clearance\">{}</td><td data-label=\"Expiration\">",
            mark_class(r.mark),
            html_escape(&r.name),
            html_escape(r.thumbprint.as_str()),
            html_escape(r.clearance)
        );
        if r.disabled {
            // First in the Expiration cell: the certificate is kept, and grants nothing.
            out.push_str("<span class=\"badge off\">disabled</span> ");
        }
        expiration_cell(out, view.now, r);
        out.push_str("</td>");
        if clients {
            out.push_str("<td data-label=\"Allowed Databases\">");
            databases_list(out, &r.databases);
            out.push_str("</td>");
        }
        if let Some((state, class)) = &r.cluster {
            let _ = write!(
                out,
                "<td data-label=\"Cluster\"><span class=\"sync {class}\">{}</span></td>",
                html_escape(state)
            );
        }
        if last_used {
            last_used_cell(out, r.last_used);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

/// The Last used cell: the time, or `-` where the cluster does not say.
fn last_used_cell(out: &mut String, at: Option<OffsetDateTime>) {
    out.push_str("<td data-label=\"Last used\">");
    match at {
        Some(at) => {
            let at = html_escape(&rfc3339(at));
            let _ = write!(out, "<time datetime=\"{at}\">{at}</time>");
        }
        None => out.push_str("<span class=\"none\">-</span>"),
    }
    out.push_str("</td>");
}

/// The CSS class of an expiry mark (its colour on the page and in the timeline).
fn mark_class(mark: ExpiryMark) -> &'static str {
    match mark {
        ExpiryMark::Valid => "valid",
        ExpiryMark::RenewDue => "due",
        ExpiryMark::Retiring(_) => "retiring",
        ExpiryMark::Expired => "expired",
    }
}

/// Date, days left and the mark, as `status` writes them (see [`super::expires_cell`]).
fn expiration_cell(out: &mut String, now: OffsetDateTime, r: &Row) {
    let date = html_escape(&r.not_after.date().to_string());
    let _ = write!(
        out,
        "<time datetime=\"{}\">{date}</time> ",
        html_escape(&rfc3339(r.not_after))
    );
    let days = (r.not_after - now).whole_days();
    match r.mark {
        ExpiryMark::Expired => out.push_str("<span class=\"badge bad\">expired</span>"),
        mark => {
            let _ = write!(out, "<span class=\"days\">({days} days left)</span>");
            match mark {
                ExpiryMark::RenewDue => {
                    out.push_str(" <span class=\"badge warn\">renew due</span>")
                }
                ExpiryMark::Retiring(at) => {
                    let _ = write!(
                        out,
                        " <span class=\"badge info\">retiring {}</span>",
                        html_escape(&at.date().to_string())
                    );
                }
                _ => {}
            }
        }
    }
    if r.until.is_some() {
        let _ = write!(
            out,
            " <span class=\"badge info access\">access {}</span>",
            html_escape(&super::status::access_cell(now, r.until))
        );
    }
}

/// Allowed Databases as a list of `database: access`.
fn databases_list(out: &mut String, databases: &[(String, String)]) {
    match databases {
        [] => out.push_str("<span class=\"none\">(none)</span>"),
        [(all, access)] if access.is_empty() => out.push_str(&html_escape(all)),
        many => {
            out.push_str("<ul class=\"dbs\">");
            for (db, access) in many {
                let _ = write!(
                    out,
                    "<li>{}: <span class=\"access\">{}</span></li>",
                    html_escape(db),
                    html_escape(access)
                );
            }
            out.push_str("</ul>");
        }
    }
}

/// The cluster's summary (node, when, the counts `status` and `/metrics` give) and the
/// registrations the store does not hold, with their clearance and, for a known stranger,
/// its note.
fn cluster_section(out: &mut String, cluster: &ClusterStatus) {
    let badge = if cluster.in_sync {
        "<span class=\"badge ok\">cluster in sync</span>"
    } else {
        "<span class=\"badge bad\">cluster drifts</span>"
    };
    let _ = write!(
        out,
        "<section><h2>Cluster</h2>\n<p>{badge} <code>{}</code>, checked {}: {}.</p>\n",
        html_escape(&cluster.url),
        html_escape(&cluster.checked_at),
        html_escape(&cluster.summary())
    );
    let extra: Vec<_> = cluster.extra().collect();
    if extra.is_empty() {
        out.push_str("<p>No registration beyond the store's.</p>\n");
        out.push_str("</section>\n");
        return;
    }
    out.push_str("<p>Registered on the cluster, not in the store:</p>\n<div class=\"scroll\"><table class=\"certs\" id=\"extra\">\n<thead><tr>");
    for h in [
        "Name",
        "Thumbprint",
        "Security Clearance",
        "Cluster",
        "Note",
    ] {
        let _ = write!(out, "<th scope=\"col\">{h}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for c in extra {
        let class = if c.state.is_drift() { "bad" } else { "ok" };
        let _ = writeln!(
            out,
            "<tr class=\"cert\"><td data-label=\"Name\" class=\"name\">{}</td><td data-label=\"Thumbprint\" class=\"thumb\"><code>{}</code></td><td data-label=\"Security Clearance\">{}</td><td data-label=\"Cluster\"><span class=\"sync {class}\">{}</span></td><td data-label=\"Note\">{}</td></tr>",
            html_escape(&c.name),
            html_escape(c.thumbprint.as_str()),
            html_escape(c.clearance.map_or("", studio_clearance)),
            html_escape(c.state.as_str()),
            html_escape(c.note.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}

/// The SVG's geometry (user units; the drawing scales to the page's width).
const SVG_WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 220.0;
const RIGHT_MARGIN: f64 = 24.0;
const LANE: f64 = 24.0;
const AXIS: f64 = 36.0;

/// The horizontal axis from `now` to the latest expiry (at least a day).
struct Axis {
    now: OffsetDateTime,
    end: OffsetDateTime,
}

impl Axis {
    fn x(&self, t: OffsetDateTime) -> f64 {
        let span = (self.end - self.now).as_seconds_f64();
        let f = ((t - self.now).as_seconds_f64() / span).clamp(0.0, 1.0);
        LABEL_WIDTH + f * (SVG_WIDTH - LABEL_WIDTH - RIGHT_MARGIN)
    }
}

/// The expirations as inline SVG: a lane per certificate from now to its expiry, its renewal
/// window shaded, a mark at its expiry.
fn timeline_section(out: &mut String, now: OffsetDateTime, rows: &[&Row]) {
    out.push_str("<section><h2>Expirations</h2>\n");
    if rows.is_empty() {
        out.push_str("<p class=\"none\">No certificate.</p></section>\n");
        return;
    }
    let latest = rows.iter().map(|r| r.not_after).max().unwrap_or(now);
    let axis = Axis {
        now,
        end: latest.max(now + time::Duration::DAY),
    };
    let height = AXIS + LANE * rows.len() as f64;
    let _ = writeln!(
        out,
        "<div class=\"scroll\"><svg class=\"timeline\" viewBox=\"0 0 {SVG_WIDTH} {height}\" role=\"img\" aria-label=\"Expirations from now to the latest\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, r) in rows.iter().enumerate() {
        lane(out, &axis, i, r);
    }
    axis_line(out, &axis, height);
    out.push_str("</svg></div>\n<p class=\"legend\"><span class=\"key window\"></span> renewal window <span class=\"key markkey\"></span> expiry</p>\n</section>\n");
}

/// One certificate's lane: its name, its remaining validity, its renewal window, its mark.
fn lane(out: &mut String, axis: &Axis, i: usize, r: &Row) {
    let y = LANE * i as f64 + LANE / 2.0;
    let label: String = r.name.chars().take(28).collect();
    let label = if label.len() < r.name.len() {
        format!("{label}…")
    } else {
        label
    };
    let _ = write!(
        out,
        "<text x=\"8\" y=\"{:.1}\" class=\"label\">{}</text>",
        y + 4.0,
        html_escape(&label)
    );
    let (x0, x1) = (axis.x(r.not_before.max(axis.now)), axis.x(r.not_after));
    let _ = write!(
        out,
        "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{x1:.1}\" y2=\"{y:.1}\" class=\"validity\"/>"
    );
    if let Some(renew) = r.renew {
        let start = r.not_after - renew.window(r.not_after - r.not_before);
        let ws = axis.x(start.max(axis.now));
        if x1 > ws {
            let _ = write!(
                out,
                "<rect x=\"{ws:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" class=\"window\"/>",
                y - 6.0,
                x1 - ws
            );
        }
    }
    let _ = writeln!(
        out,
        "<circle cx=\"{x1:.1}\" cy=\"{y:.1}\" r=\"5\" class=\"mark {}\"><title>{}: {}</title></circle>",
        mark_class(r.mark),
        html_escape(&r.name),
        html_escape(&r.not_after.date().to_string())
    );
}

/// The timeline's time axis with its ticks.
fn axis_line(out: &mut String, axis: &Axis, height: f64) {
    let y = height - AXIS + 8.0;
    let (left, right) = (axis.x(axis.now), axis.x(axis.end));
    let _ = write!(
        out,
        "<line x1=\"{left:.1}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\" class=\"axis\"/>"
    );
    let mid = axis.now + (axis.end - axis.now) / 2;
    for (t, anchor, what) in [
        (axis.now, "start", "now"),
        (mid, "middle", ""),
        (axis.end, "end", ""),
    ] {
        let x = axis.x(t);
        let text = if what.is_empty() {
            t.date().to_string()
        } else {
            format!("{what} {}", t.date())
        };
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" class=\"axis\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" class=\"tick\">{}</text>",
            y + 5.0,
            y + 20.0,
            html_escape(&text)
        );
    }
    out.push('\n');
}

/// The document's head: inline CSS only. Below 720 px the tables stack (one card per
/// certificate, each cell labelled); the timeline scrolls sideways.
const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ravencert: certificates</title>
<style>
:root { color-scheme: light; --fg: #1d2330; --muted: #5b6474; --line: #d8dde6; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f4f6f9; }
header { background: #1f2a3c; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 2px 0 0; color: #c5cedb; font-size: 13px; }
main { max-width: 1240px; margin: 0 auto; padding: 16px 24px 32px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 0 0 16px; }
section.banner { background: #fbe0e0; border-color: #c62828; color: #7a1010; }
section.banner ul { margin: 0 0 8px; padding-left: 18px; overflow-wrap: anywhere; }
section.banner p { margin: 0; }
h2 { font-size: 16px; margin: 0 0 10px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table.certs { border-collapse: collapse; width: 100%; }
table.certs th { text-align: left; font-weight: 600; color: var(--muted); border-bottom: 2px solid var(--line); padding: 6px 8px; white-space: nowrap; }
table.certs td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
td.name { font-weight: 600; overflow-wrap: anywhere; }
td.thumb code { font-size: 12px; white-space: nowrap; }
tr.expired td { background: #fdecec; }
tr.due td { background: #fff8e1; }
ul.dbs { margin: 0; padding-left: 18px; }
.access { color: var(--muted); }
.days { color: var(--muted); }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; font-weight: 600; }
.badge.ok, .sync.ok { background: #e3f5e8; color: #1c6b35; }
.badge.bad, .sync.bad { background: #fbe0e0; color: #9b1c1c; }
.badge.warn { background: #fff1c2; color: #7a5200; }
.badge.info { background: #e6eefb; color: #234e8c; }
.badge.off, .sync.off { background: #ececec; color: #4a4f57; }
.sync { padding: 0 6px; border-radius: 8px; font-size: 12px; }
.reason { overflow-wrap: anywhere; }
.none { color: var(--muted); }
svg.timeline { width: 100%; min-width: 600px; height: auto; display: block; }
svg .label { font-size: 12px; fill: var(--fg); }
svg .tick { font-size: 11px; fill: var(--muted); }
svg .axis { stroke: #8a93a3; stroke-width: 1; }
svg .validity { stroke: #b7c3d6; stroke-width: 3; }
svg .window { fill: #ffd77a; fill-opacity: 0.6; }
svg .mark { fill: var(--accent); }
svg .mark.due { fill: #d18b00; }
svg .mark.expired { fill: #c62828; }
svg .mark.retiring { fill: #8a93a3; }
.legend { font-size: 12px; color: var(--muted); margin: 6px 0 0; }
.key { display: inline-block; width: 14px; height: 10px; vertical-align: middle; margin-left: 8px; }
.key.window { background: #ffd77a; }
.key.markkey { background: var(--accent); border-radius: 50%; width: 10px; }
@media (max-width: 720px) {
  main { padding: 10px; }
  header { padding: 12px; }
  table.certs thead { display: none; }
  table.certs, table.certs tbody, table.certs tr, table.certs td { display: block; width: 100%; }
  table.certs tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 10px; }
  table.certs td { border-bottom: 1px solid #eef0f4; }
  table.certs td::before { content: attr(data-label); display: block; font-size: 12px; color: var(--muted); }
  td.thumb code { white-space: normal; word-break: break-all; }
  dl { grid-template-columns: 1fr; }
}
</style>
</head>
<body>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Access, Origin, Period};
    use crate::registry::{CertEntry, Registry, ServerEntry};
    use std::collections::BTreeMap;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);

    fn client(key: &str, name: &str, clearance: Clearance, days: i64) -> CertEntry {
        let thumbprint = format!("{:A<40}", key.to_ascii_uppercase());
        CertEntry {
            name: name.into(),
            public_key_pinning_hash: "secret-free-hash".into(),
            clearance,
            not_before: NOW - time::Duration::days(300),
            not_after: NOW + time::Duration::days(days),
            revision: Some("abc123".into()),
            bundle_password: Some("bundle-password-digest".into()),
            ..CertEntry::fixture(key, thumbprint)
        }
    }

    fn registry() -> Registry {
        let mut app = client("app", "<script>alert(1)</script>", Clearance::ValidUser, 20);
        app.permissions
            .insert("Orders\"<b>".into(), Access::ReadWrite);
        let mut reg = Registry::default();
        reg.server.push(ServerEntry {
            name: "cluster.example.com".into(),
            thumbprint: "F".repeat(40).into(),
            public_key_pinning_hash: "h".into(),
            dns: Vec::new(),
            not_before: NOW - time::Duration::days(10),
            not_after: NOW + time::Duration::days(355),
            source: Origin::Generated,
            key_type: None,
            revision: None,
            has_key: true,
        });
        reg.certificates = vec![
            app,
            client(
                "admin",
                "admin & co '\u{202e}x",
                Clearance::ClusterAdmin,
                400,
            ),
            client("old", "ops", Clearance::Operator, -3),
        ];
        reg.applied_revision = Some("rev<1>".into());
        reg
    }

    fn page(last: Option<&LastApply>) -> String {
        page_with(last, None)
    }

    fn page_with(last: Option<&LastApply>, cluster: Option<&ClusterStatus>) -> String {
        let reg = registry();
        let renew: BTreeMap<String, RenewBefore> = ["app", "admin", "old"]
            .into_iter()
            .map(|k| (k.to_string(), RenewBefore::Period(Period::days(30))))
            .collect();
        status_html(
            &StatusView {
                registry: &reg,
                now: NOW,
                server_renew: Some(RenewBefore::Percent(20)),
                client_renew: &renew,
                cluster,
            },
            last,
            &[],
        )
    }

    #[test]
    fn a_banner_says_what_cannot_be_used_escaped_and_only_then() {
        assert!(!page(None).contains("class=\"banner\""));
        let reg = registry();
        let renew = BTreeMap::new();
        let view = StatusView {
            registry: &reg,
            now: NOW,
            server_renew: None,
            client_renew: &renew,
            cluster: None,
        };
        let problems = [
            "environment variable X is not set (clients.a.password_env, certs.toml:9)".to_string(),
            "trust/<b>.pfx does not exist\u{1b}[2J".to_string(),
        ];
        let html = status_html(&view, None, &problems);
        let banner = &html[html.find("<section class=\"banner\"").expect("a banner")..];
        assert!(
            banner.starts_with(
                "<section class=\"banner\" role=\"alert\"><h2>certs.toml cannot be used</h2>"
            ),
            "{banner}"
        );
        assert!(banner.contains(
            "<li>environment variable X is not set (clients.a.password_env, certs.toml:9)</li>"
        ));
        assert!(
            banner.contains("<li>trust/&lt;b&gt;.pfx does not exist\\u{1b}[2J</li>"),
            "{banner}"
        );
        assert!(!html.contains("<b>") && !html.contains('\u{1b}'));
        // Above the last apply.
        assert!(html.find("class=\"banner\"") < html.find("<h2>Last apply</h2>"));
    }

    #[test]
    fn a_hostile_name_is_text_not_markup() {
        let html = page(None);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.to_ascii_lowercase().contains("<script"));
    }

    #[test]
    fn every_value_is_escaped() {
        let last = LastApply {
            at: NOW,
            outcome: ApplyOutcome::Failed {
                reason: "cluster <down> & \"out\"\u{1b}[2J".into(),
            },
            revision: Some("r'1".into()),
        };
        let html = page(Some(&last));
        for raw in [
            "<b>", "<down>", "rev<1>", "\u{202e}", "\u{1b}", "& co", "r'1",
        ] {
            assert!(!html.contains(raw), "raw {raw:?} in the page");
        }
        for escaped in [
            "Orders&quot;&lt;b&gt;",
            "cluster &lt;down&gt; &amp; &quot;out&quot;\\u{1b}[2J",
            "rev&lt;1&gt;",
            "admin &amp; co &#39;\\u{202e}x",
            "r&#39;1",
        ] {
            assert!(html.contains(escaped), "{escaped} missing from\n{html}");
        }
    }

    #[test]
    fn the_page_marks_expiry_as_status_does() {
        let html = page(None);
        assert_eq!(html.matches("<tr class=\"cert ").count(), 4);
        assert!(html.contains("<tr class=\"cert due\">"));
        assert!(html.contains("<tr class=\"cert expired\">"));
        assert!(html.contains("renew due"));
        assert!(html.contains("(20 days left)"));
        assert!(html.contains("Cluster Admin") && html.contains(">User<"));
        assert!(html.contains("ravencert status --html"));
        assert!(
            !html.contains("secret-free-hash"),
            "no pinning hash on the page"
        );
        assert!(
            !html.contains("bundle-password-digest"),
            "no password digest on the page"
        );
    }

    #[test]
    fn the_timeline_has_one_mark_per_certificate() {
        let html = page(None);
        let svg = &html[html.find("<svg").expect("an svg")..html.find("</svg>").expect("end")];
        assert_eq!(svg.matches("class=\"mark ").count(), 4);
        assert!(svg.matches("class=\"window\"").count() >= 3, "{svg}");
        assert!(no_fetch(&html), "an external reference in the page");
    }

    #[test]
    fn the_cluster_state_shows_per_certificate_and_its_extras_escaped() {
        use super::super::ClusterCertificateState as State;
        let state = |t: &str, state| State::of_store(t.into(), state);
        let extra = |t: &str, state, name: &str, note: Option<&str>| State {
            name: name.into(),
            clearance: Some(Clearance::ValidUser),
            note: note.map(str::to_string),
            ..State::of_store(t.into(), state)
        };
        let cluster = ClusterStatus::new(
            "https://a.example.com:443".into(),
            "2026-06-01T00:00:00Z".into(),
            vec![
                state(&format!("{:A<40}", "APP"), RegistrationState::InSync),
                state(&format!("{:A<40}", "ADMIN"), RegistrationState::Differs),
                state(&"F".repeat(40), RegistrationState::InSync),
            ],
            vec![
                extra(
                    &"E".repeat(40),
                    RegistrationState::Extra,
                    "stranger <img src=x>",
                    None,
                ),
                extra(
                    &"D".repeat(40),
                    RegistrationState::Kept,
                    "Backup",
                    Some("the backup team's <b>"),
                ),
            ],
        );
        let html = page_with(None, Some(&cluster));
        assert!(html.contains("<th scope=\"col\">Cluster</th>"));
        assert!(
            html.contains("<span class=\"sync ok\">in sync</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"sync bad\">differs</span>"));
        assert!(html.contains("<span class=\"sync unknown\">-</span>"));
        // The counts status and /metrics give: the kept stranger is not drift.
        assert!(
            html.contains("2 of 3 certificates in sync; drift: 2; beyond the store: 1 extra, 1 kept ([cluster] keep)"),
            "{html}"
        );
        assert!(html.contains("&lt;img src=x&gt;") && !html.contains("<img"));
        // Extras by name, with the Studio's clearance word, a kept one with its note.
        let backup = html.find(">Backup<").expect("the kept stranger");
        assert!(
            backup < html.find("&lt;img src=x&gt;").unwrap_or(0),
            "{html}"
        );
        assert!(html.contains("<span class=\"sync ok\">extra (kept)</span>"));
        assert!(html.contains("<span class=\"sync bad\">extra</span>"));
        assert!(html.contains("the backup team&#39;s &lt;b&gt;") && !html.contains("<b>"));
        assert_eq!(
            html.matches("<td data-label=\"Security Clearance\">User</td>")
                .count(),
            3
        );
    }

    /// issue 25: a disabled client carries a badge, its cluster state `disabled` is not drift,
    /// and last use (where the cluster says) gets a column; a page without either keeps the
    /// Studio's columns.
    #[test]
    fn the_page_shows_disabled_and_last_use() {
        use super::super::ClusterCertificateState as State;
        assert!(!page(None).contains("disabled"));
        assert!(!page(None).contains("Last used"));
        let mut reg = registry();
        reg.certificates[1].disabled = true; // admin
        let admin = reg.certificates[1].thumbprint.clone();
        let hex = crate::model::Thumbprint::parse(&"AB".repeat(20)).unwrap();
        reg.certificates[0].thumbprint = hex.clone().into();
        let app = reg.certificates[0].thumbprint.clone();
        let renew = BTreeMap::new();
        let used = datetime!(2026-05-30 08:00 UTC);
        let cluster = ClusterStatus::new(
            "https://a.example.com".into(),
            "2026-06-01T00:00:00Z".into(),
            vec![
                State::of_store(app.clone(), RegistrationState::InSync),
                State::of_store(admin.clone(), RegistrationState::Disabled),
            ],
            Vec::new(),
        )
        .with_last_used(&[(hex, used)].into());
        let html = status_html(
            &StatusView {
                registry: &reg,
                now: NOW,
                server_renew: None,
                client_renew: &renew,
                cluster: Some(&cluster),
            },
            None,
            &[],
        );
        assert_eq!(
            html.matches("<span class=\"badge off\">disabled</span>")
                .count(),
            1,
            "{html}"
        );
        assert!(
            html.contains("<span class=\"sync off\">disabled</span>"),
            "{html}"
        );
        assert!(html.contains("drift: 0"), "disabled is not drift: {html}");
        assert!(html.contains("<th scope=\"col\">Last used</th>"), "{html}");
        assert!(
            html.contains("<td data-label=\"Last used\"><time datetime=\"2026-05-30T08:00:00Z\">"),
            "{html}"
        );
        assert!(html.contains("<td data-label=\"Last used\"><span class=\"none\">-</span>"));
    }

    /// The only URL on the page is the SVG namespace, which is never fetched.
    fn no_fetch(html: &str) -> bool {
        html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .matches("http")
            .count()
            == 0
    }
}
