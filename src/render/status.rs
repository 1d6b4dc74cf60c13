//! Status: the Studio-like tables and `status --json` (docs/contract.md §5), the cluster's view
//! of the store (ClusterStatus) and the expiry marks the page shares.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::{json_text, rfc3339, state_cell, table, table_lines, Escaped};
use crate::model::{Access, Clearance, EntryThumbprint, RenewBefore};
use crate::registry::{CertEntry, Registry};

impl StatusView<'_> {
    /// A client certificate's renewal window: none for one cut at its `until`, which is never
    /// renewed (its access ends then), so it is never marked renew due.
    pub(crate) fn renew_of(&self, c: &CertEntry) -> Option<RenewBefore> {
        if c.until == Some(c.not_after) {
            return None;
        }
        self.client_renew.get(&c.key).copied()
    }
}

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
    pub(crate) thumbprint: EntryThumbprint,
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
    /// When it was last used, where the server says (RFC 3339); null when unknown.
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) last_used: Option<OffsetDateTime>,
}

impl ClusterCertificateState {
    /// A store certificate's state (`name` and `clearance` are the store's, shown in its row).
    pub(crate) fn of_store(
        thumbprint: EntryThumbprint,
        state: crate::plan::RegistrationState,
    ) -> Self {
        ClusterCertificateState {
            thumbprint,
            state,
            name: String::new(),
            clearance: None,
            note: None,
            last_used: None,
        }
    }
}

impl From<&crate::plan::ExtraRegistration> for ClusterCertificateState {
    fn from(e: &crate::plan::ExtraRegistration) -> Self {
        ClusterCertificateState {
            thumbprint: e.thumbprint.clone().into(),
            state: e.state(),
            name: e.name.clone(),
            clearance: e.clearance.client(),
            note: e.note.clone(),
            last_used: None,
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

    /// With each certificate's last use from `last_used` (by thumbprint), where it is known.
    pub(crate) fn with_last_used(
        mut self,
        last_used: &BTreeMap<crate::model::Thumbprint, OffsetDateTime>,
    ) -> ClusterStatus {
        for c in &mut self.certificates {
            c.last_used = c.thumbprint.known().and_then(|t| last_used.get(t)).copied();
        }
        self
    }

    /// A store certificate's last use, where known.
    pub(crate) fn last_used_of(&self, thumbprint: &EntryThumbprint) -> Option<OffsetDateTime> {
        self.certificates
            .iter()
            .find(|c| c.thumbprint == *thumbprint)
            .and_then(|c| c.last_used)
    }

    pub(super) fn state_of(
        &self,
        thumbprint: &EntryThumbprint,
    ) -> Option<crate::plan::RegistrationState> {
        self.certificates
            .iter()
            .find(|c| c.thumbprint == *thumbprint)
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
                s.thumbprint.to_string(),
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
    // When access ends by itself (until), or is suspended (disabled): a column only when it
    // says something, so a store with neither keeps the Studio's columns.
    if clients.iter().any(|c| c.until.is_some() || c.disabled) {
        headers.push("Access");
        for (row, c) in rows.iter_mut().zip(&clients) {
            let mut cell = access_cell(view.now, c.until);
            if c.disabled {
                cell = if cell.is_empty() {
                    "disabled".into()
                } else {
                    format!("disabled; {cell}")
                };
            }
            row.push(vec![cell]);
        }
    }
    if let Some(cluster) = view.cluster {
        headers.push("Cluster");
        for (row, c) in rows.iter_mut().zip(&clients) {
            row.push(vec![state_cell(cluster.state_of(&c.thumbprint))]);
        }
        if clients
            .iter()
            .any(|c| cluster.last_used_of(&c.thumbprint).is_some())
        {
            headers.push("Last used");
            for (row, c) in rows.iter_mut().zip(&clients) {
                let at = cluster.last_used_of(&c.thumbprint);
                row.push(vec![at.map_or_else(|| "-".to_string(), rfc3339)]);
            }
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
        vec![c.thumbprint.to_string()],
        vec![c.clearance.to_string()],
        vec![expires_cell(
            view.now,
            c.not_before,
            c.not_after,
            view.renew_of(c),
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

/// The Access cell: `until 2026-05-01 18:00Z (3 hours left)`, `ended 2026-05-01 18:00Z`, or
/// nothing for access that does not end by itself.
pub(crate) fn access_cell(now: OffsetDateTime, until: Option<OffsetDateTime>) -> String {
    let Some(u) = until else {
        return String::new();
    };
    let at = format!(
        "{} {:02}:{:02}Z",
        u.date(),
        u.time().hour(),
        u.time().minute()
    );
    let left = u - now;
    if left <= time::Duration::ZERO {
        return format!("ended {at}");
    }
    format!("until {at} ({} left)", crate::plan::until::time_left(left))
}

/// The databases a client reaches, as the Studio shows them: `All` above ValidUser.
pub(super) fn databases_cell(c: &CertEntry) -> String {
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
    /// When access ends by itself (`until`); absent when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    disabled: bool,
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
                c.thumbprint.to_string(),
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
                thumbprint: s.thumbprint.as_str(),
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
                thumbprint: c.thumbprint.as_str(),
                public_key_pinning_hash: &c.public_key_pinning_hash,
                clearance: c.clearance,
                permissions: &c.permissions,
                not_before: rfc3339(c.not_before),
                not_after: rfc3339(c.not_after),
                source: c.source.as_str(),
                collection_primary: c.collection_primary.as_deref(),
                retiring_after: c.retire_after.map(rfc3339),
                until: c.until.map(rfc3339),
                disabled: c.disabled,
            })
            .collect(),
        applied_revision: reg.applied_revision.as_deref(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RegistrationState;

    /// issue 25: `status --json` gives each certificate `disabled`, and each cluster state its
    /// `last_used` (null where the cluster does not say); the text table gains an Access and a
    /// Last used column only when they say something.
    #[test]
    fn status_shows_disabled_and_last_use_in_text_and_json() {
        let t = |c: &str| crate::model::Thumbprint::parse(&c.repeat(40)).unwrap();
        let mut reg = Registry::new();
        reg.certificates = vec![
            CertEntry {
                disabled: true,
                ..CertEntry::fixture("off", t("A"))
            },
            CertEntry::fixture("on", t("B")),
        ];
        let used = time::macros::datetime!(2026-05-30 08:00 UTC);
        let cluster = ClusterStatus::new(
            "https://a".into(),
            "2026-06-01T00:00:00Z".into(),
            vec![
                ClusterCertificateState::of_store(t("A").into(), RegistrationState::Disabled),
                ClusterCertificateState::of_store(t("B").into(), RegistrationState::InSync),
            ],
            Vec::new(),
        )
        .with_last_used(&[(t("B"), used)].into());
        assert!(cluster.in_sync, "disabled is not drift");
        let json: serde_json::Value =
            serde_json::from_str(&status_json(&reg, &[], Some(&cluster)).unwrap()).unwrap();
        let disabled: Vec<&serde_json::Value> = json["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["disabled"])
            .collect();
        assert_eq!(disabled, [true, false]);
        let states = &json["cluster"]["certificates"];
        assert_eq!(states[0]["state"], "disabled");
        assert_eq!(states[0]["last_used"], serde_json::Value::Null);
        assert_eq!(states[1]["last_used"], "2026-05-30T08:00:00Z");
        let renew = BTreeMap::new();
        fn view<'a>(
            registry: &'a Registry,
            renew: &'a BTreeMap<String, RenewBefore>,
            cluster: Option<&'a ClusterStatus>,
        ) -> StatusView<'a> {
            StatusView {
                registry,
                now: OffsetDateTime::UNIX_EPOCH,
                server_renew: None,
                client_renew: renew,
                cluster,
            }
        }
        let text = status_text(&view(&reg, &renew, Some(&cluster)));
        let header = text.lines().find(|l| l.contains("Databases")).unwrap();
        assert!(
            header.contains("Access") && header.contains("Last used"),
            "{text}"
        );
        let off = text.lines().find(|l| l.starts_with("off")).unwrap();
        assert!(
            off.contains("disabled") && off.trim_end().ends_with('-'),
            "{text}"
        );
        let on = text.lines().find(|l| l.starts_with("on")).unwrap();
        assert!(on.trim_end().ends_with("2026-05-30T08:00:00Z"), "{text}");
        // Nothing disabled, no cluster: the Studio's columns only.
        reg.certificates[0].disabled = false;
        let text = status_text(&view(&reg, &renew, None));
        assert!(
            !text.contains("Access") && !text.contains("Last used"),
            "{text}"
        );
    }
}
