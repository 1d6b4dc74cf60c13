//! `watch --listen`: after every attempt, the [`crate::listen::Snapshot`] the listener serves: the store's
//! certificates as `status` shows them (renewal marks included), and the attempt's outcome.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use tracing::warn;

use super::error::Unusable;
use super::show;
use super::Context;
use crate::config::Declared;
use crate::listen::{CertificateMetric, ClusterMetric, ExtraMetric, Shared, Snapshot, STARTING};
use crate::model::{EntryThumbprint, RenewBefore, Thumbprint};
use crate::plan::{ClusterAction, ClusterView, ExtraRegistration, RegistrationState};
use crate::registry::Registry;
use crate::render::{
    self, ApplyOutcome, ClusterCertificateState, ClusterStatus, LastApply, StatusView,
};
use crate::store::Store;

/// What one attempt did, as the listener reports it.
pub(super) enum Outcome {
    /// Applied (`Ok`), or failed with this reason.
    Applied(Result<(), String>),
    /// Planned only (`--plan-only`): `Ok`, or the plan failed with this reason.
    Planned(Result<(), String>),
    /// certs.toml, or a secret or file it names, cannot be used (nothing applied): why.
    Invalid(String),
}

impl Outcome {
    /// Why the daemon is unhealthy after this outcome, on one line; None when it is healthy.
    fn unhealthy(&self) -> Option<String> {
        match self {
            Outcome::Applied(Ok(())) | Outcome::Planned(Ok(())) => None,
            Outcome::Applied(Err(r)) => Some(format!("the last apply failed: {r}")),
            Outcome::Planned(Err(r)) => Some(format!("the last plan failed: {r}")),
            Outcome::Invalid(r) => Some(r.clone()),
        }
    }
}

/// One attempt's report: its outcome, the revision it applied, and the cluster after it when
/// it was reached.
pub(super) struct Report {
    pub(super) outcome: Outcome,
    pub(super) revision: Option<String>,
    pub(super) cluster: Option<ClusterSeen>,
    /// Why certs.toml (or a secret or file it names) cannot be used; None when it can.
    pub(super) unusable: Option<Unusable>,
}

impl Report {
    /// A report without news of the cluster, certs.toml usable.
    pub(super) fn of(outcome: Outcome, revision: Option<String>) -> Report {
        Report {
            outcome,
            revision,
            cluster: None,
            unusable: None,
        }
    }

    /// certs.toml, or what it names, cannot be used: nothing was planned.
    pub(super) fn unusable(unusable: Unusable, revision: Option<String>) -> Report {
        Report {
            unusable: Some(unusable.clone()),
            ..Report::of(Outcome::Invalid(unusable.reason()), revision)
        }
    }
}

/// The cluster as an attempt that reached it left it: the node that answered, the store's
/// registrations still to register or edit (none after an apply), and the client
/// registrations it holds beyond the store's (kept without `prune` or by `[cluster] keep`, or
/// not yet unregistered).
pub(super) struct ClusterSeen {
    url: String,
    pending: Vec<(ClusterAction, Option<Thumbprint>)>,
    extra: Vec<ExtraRegistration>,
    /// When each registration was last used, where the server said.
    last_used: BTreeMap<Thumbprint, OffsetDateTime>,
}

impl ClusterSeen {
    /// From an attempt's cluster view: the store's registrations in sync once `applied`,
    /// otherwise as far as its plan has changes left. None when the cluster was not reached
    /// (no `[cluster]`, `--offline`).
    pub(super) fn of(view: &ClusterView, applied: bool) -> Option<ClusterSeen> {
        let plan = view.plan()?;
        let unregistered: Vec<&Thumbprint> = plan
            .changes
            .iter()
            .filter(|c| c.action == ClusterAction::Unregister)
            .filter_map(|c| c.thumbprint.as_ref())
            .collect();
        // Gone after the apply: unregistered, or a secondary RavenDB removed with its primary
        // (listed upper-case, as the decoder normalizes it).
        let gone = |e: &ExtraRegistration| {
            let removed = |t: &str| unregistered.iter().any(|u| u.as_str() == t);
            removed(e.thumbprint.as_str()) || e.collection_primary.as_deref().is_some_and(removed)
        };
        let pending = if applied {
            Vec::new()
        } else {
            plan.changes
                .iter()
                .filter(|c| c.action != ClusterAction::Unregister)
                .map(|c| (c.action, c.thumbprint.clone()))
                .collect()
        };
        let extra = plan
            .extra
            .iter()
            .filter(|e| !(applied && gone(e)))
            .cloned()
            .collect();
        Some(ClusterSeen {
            url: plan.url.clone(),
            pending,
            extra,
            last_used: plan.last_used.clone(),
        })
    }

    /// The per-certificate states, as `status` shows them: the store's certificates, then the
    /// registrations the store does not hold (a certificate a pending re-issue replaces is
    /// still the store's, not extra).
    fn status(&self, registry: &Registry, checked_at: OffsetDateTime) -> ClusterStatus {
        let pending_for = |t: &EntryThumbprint| {
            self.pending
                .iter()
                .find(|(_, p)| p.as_ref().is_some_and(|p| *t == *p))
                .map(|(a, _)| *a)
        };
        let of_store = registry
            .certificates
            .iter()
            .map(|e| {
                let state = match pending_for(&e.thumbprint) {
                    Some(ClusterAction::Register) => RegistrationState::Missing,
                    Some(_) => RegistrationState::Differs,
                    // Disabled as declared: its registration disabled, or absent.
                    None if e.disabled => RegistrationState::Disabled,
                    None => RegistrationState::InSync,
                };
                ClusterCertificateState::of_store(e.thumbprint.clone(), state)
            })
            .collect();
        let held = |t: &Thumbprint| registry.certificates.iter().any(|e| e.thumbprint == *t);
        let extra = self
            .extra
            .iter()
            .filter(|e| !held(&e.thumbprint))
            .map(ClusterCertificateState::from)
            .collect();
        ClusterStatus::new(
            self.url.clone(),
            render::rfc3339(checked_at),
            of_store,
            extra,
        )
        .with_last_used(&self.last_used)
    }
}

/// In sync when no certificate drifts (missing, differs, or extra and not named by `[cluster]
/// keep`): the count `status` and the page show.
fn cluster_metric(status: &ClusterStatus) -> ClusterMetric {
    ClusterMetric {
        in_sync: status.in_sync,
        drift: status.drift as u64,
        extra: status
            .extra()
            .map(|c| ExtraMetric {
                thumbprint: c.thumbprint.clone(),
                name: c.name.clone(),
                clearance: c.clearance.map(|c| c.to_string()).unwrap_or_default(),
                kept: c.state == RegistrationState::Kept,
            })
            .collect(),
    }
}

/// Keeps the listener's snapshot: what the page remembers across attempts and the shared
/// snapshot it replaces.
pub(super) struct Observer {
    shared: Shared,
    memory: Mutex<Memory>,
}

/// What the page and `/healthz` remember between attempts.
#[derive(Default)]
struct Memory {
    /// The last apply, for the page.
    last_apply: Option<LastApply>,
    /// The cluster as the last attempt that reached it left it, and when; None when unknown
    /// (no `[cluster]`, `--offline`, or the last attempt failed).
    cluster: Option<(ClusterSeen, OffsetDateTime)>,
    /// The last valid certs.toml's store and renewal windows: an invalid edit keeps the
    /// renewal marks (and alerts) as they were.
    inputs: Option<ViewInputs>,
    /// Why the last attempt left the daemon unhealthy.
    attempt_unhealthy: Option<String>,
    /// Why certs.toml's source cannot be read (`--git`: the fetch fails).
    source_failure: Option<String>,
    /// Why certs.toml, or a secret or file it names, could not be used by the last attempt
    /// (the page's banner).
    unusable: Option<Unusable>,
}

/// What the store's view needs of a valid certs.toml.
struct ViewInputs {
    store: PathBuf,
    server_renew: Option<RenewBefore>,
    client_renew: BTreeMap<String, RenewBefore>,
}

impl ViewInputs {
    fn of(d: &Declared) -> ViewInputs {
        ViewInputs {
            store: d.store.path.clone(),
            server_renew: show::server_renewal(d),
            client_renew: show::client_renewals(d),
        }
    }
}

impl Observer {
    /// Observes into `shared`.
    pub(super) fn new(shared: Shared) -> Observer {
        Observer {
            shared,
            memory: Mutex::new(Memory {
                attempt_unhealthy: Some(STARTING.into()),
                ..Memory::default()
            }),
        }
    }

    /// Replaces the snapshot after an attempt, `desired` the certs.toml it read (None when it
    /// is invalid). The store is read, the page rendered and the metrics encoded before the
    /// snapshot's lock is taken: the listener waits at most for the assignment.
    pub(super) fn record(&self, ctx: &Context, report: Report, desired: Option<&Declared>) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        match &report.outcome {
            Outcome::Invalid(_) => {}
            Outcome::Applied(Ok(())) | Outcome::Planned(Ok(())) => {
                memory.cluster = report.cluster.map(|seen| (seen, ctx.now));
            }
            // What the cluster holds now is not known.
            Outcome::Applied(Err(_)) | Outcome::Planned(Err(_)) => memory.cluster = None,
        }
        if let Some(d) = desired {
            memory.inputs = Some(ViewInputs::of(d));
        }
        let mut next = self.current();
        let at = ctx.now.unix_timestamp();
        next.last_check = Some(at);
        next.config_valid = Some(report.unusable.is_none());
        memory.unusable = report.unusable;
        if let Outcome::Applied(result) = &report.outcome {
            memory.last_apply = Some(LastApply {
                at: ctx.now,
                outcome: match result {
                    Ok(()) => ApplyOutcome::Succeeded,
                    Err(reason) => ApplyOutcome::Failed {
                        reason: reason.clone(),
                    },
                },
                revision: report.revision.clone(),
            });
            next.last_apply = Some(at);
            next.last_apply_success = Some(result.is_ok());
            match result {
                Ok(()) => next.applies_succeeded += 1,
                Err(_) => next.applies_failed += 1,
            }
        }
        memory.attempt_unhealthy = report.outcome.unhealthy();
        match store_view(ctx, &memory) {
            Ok((certificates, page, cluster)) => {
                next.certificates = certificates.into();
                next.page = page.into();
                next.cluster = cluster;
            }
            // The last view read stays (the attempt's outcome says what went wrong); the
            // cluster's state against a store not read is not known.
            Err(e) => {
                warn!("listen: the store cannot be read for /metrics: {e}");
                next.cluster = None;
            }
        }
        self.publish(next, &memory);
    }

    /// `--git`: whether the last fetch failed (and why); `/healthz` is 503 while it does.
    /// Publishes only when that changes.
    pub(super) fn source(&self, failure: Option<String>) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        if memory.source_failure == failure {
            return;
        }
        memory.source_failure = failure;
        self.publish(self.current(), &memory);
    }

    /// A copy of the snapshot (cheap: its large parts are shared).
    fn current(&self) -> Snapshot {
        self.shared
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the health from `memory`, encodes the metrics, and replaces the snapshot.
    fn publish(&self, mut next: Snapshot, memory: &Memory) {
        next.unhealthy = match &memory.source_failure {
            Some(why) => Some(format!("certs.toml's source cannot be read: {why}")),
            None => memory.attempt_unhealthy.clone(),
        };
        let next = next.sealed();
        let mut guard = self.shared.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *guard, next);
        drop(guard);
        // Freed after the lock: the listener never waits for the old snapshot's memory.
        drop(old);
    }
}

/// The store's certificates, the status page and the cluster's metric, as `ravencert status`
/// shows them, with the renewal windows of the last valid certs.toml (the commit's, with `--git`); the page
/// adds the last apply and the cluster as last reached. Without any valid certs.toml yet, the
/// store `status` would show, without renewal marks.
fn store_view(
    ctx: &Context,
    memory: &Memory,
) -> super::Result<(Vec<CertificateMetric>, String, Option<ClusterMetric>)> {
    let actual = match &memory.inputs {
        // The store path already has --store applied, as the apply used it.
        Some(inputs) => Store::new(&inputs.store).load(None)?,
        None => show::load(ctx)?.actual,
    };
    let no_renewals = BTreeMap::new();
    let cluster = memory
        .cluster
        .as_ref()
        .map(|(seen, at)| seen.status(&actual.registry, *at));
    let view = StatusView {
        registry: &actual.registry,
        now: ctx.now,
        server_renew: memory.inputs.as_ref().and_then(|i| i.server_renew),
        client_renew: memory
            .inputs
            .as_ref()
            .map_or(&no_renewals, |i| &i.client_renew),
        cluster: cluster.as_ref(),
    };
    let unusable = memory.unusable.as_ref().map(|u| u.problems.as_slice());
    let page = render::status_html(&view, memory.last_apply.as_ref(), unusable.unwrap_or(&[]));
    Ok((
        certificates(&view),
        page,
        cluster.as_ref().map(cluster_metric),
    ))
}

/// Every registered certificate, the server's first (key `server`).
fn certificates(view: &StatusView<'_>) -> Vec<CertificateMetric> {
    let reg: &Registry = view.registry;
    let servers = reg.server.iter().map(|s| CertificateMetric {
        key: "server".into(),
        name: s.name.clone(),
        thumbprint: s.thumbprint.clone(),
        clearance: "ClusterNode".into(),
        source: s.source.as_str().into(),
        not_before: s.not_before.unix_timestamp(),
        not_after: s.not_after.unix_timestamp(),
        renewal_due: render::renewal_due(
            view.now,
            s.not_before,
            s.not_after,
            view.server_renew,
            None,
        ),
        until: None,
        disabled: false,
        last_used: last_used(view, &s.thumbprint),
    });
    let clients = reg.certificates.iter().map(|c| CertificateMetric {
        key: c.key.clone(),
        name: c.name.clone(),
        thumbprint: c.thumbprint.clone(),
        clearance: c.clearance.to_string(),
        source: c.source.as_str().into(),
        not_before: c.not_before.unix_timestamp(),
        not_after: c.not_after.unix_timestamp(),
        renewal_due: render::renewal_due(
            view.now,
            c.not_before,
            c.not_after,
            view.renew_of(c),
            c.retire_after,
        ),
        until: c.until.map(|u| u.unix_timestamp()),
        disabled: c.disabled,
        last_used: last_used(view, &c.thumbprint),
    });
    servers.chain(clients).collect()
}

/// A certificate's last use, Unix seconds, where the cluster said.
fn last_used(view: &StatusView<'_>, thumbprint: &EntryThumbprint) -> Option<i64> {
    view.cluster
        .and_then(|c| c.last_used_of(thumbprint))
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::model::Clearance;
    use crate::plan::{ClusterChange, ClusterPlan, ExtraRegistration, ServerVersion};
    use crate::registry::CertEntry;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    /// A test's short code (`P1`) as a thumbprint: its bytes in hex, padded to 40 digits.
    fn tp(code: &str) -> Thumbprint {
        Thumbprint::parse(&format!("{:0>40}", hex::encode_upper(code))).unwrap()
    }

    fn entry(key: &str, thumbprint: &str) -> CertEntry {
        CertEntry {
            clearance: Clearance::Operator,
            not_before: NOW,
            not_after: NOW + time::Duration::days(30),
            ..CertEntry::fixture(key, tp(thumbprint))
        }
    }

    fn change(action: ClusterAction, thumbprint: Option<&str>) -> ClusterChange {
        ClusterChange {
            action,
            key: None,
            name: "n".into(),
            thumbprint: thumbprint.map(tp),
            reason: String::new(),
            escalation: false,
            before: None,
            after: None,
            fields: Vec::new(),
            collection_primary: None,
            disabled: None,
        }
    }

    fn extra(thumbprint: &str, primary: Option<&str>) -> ExtraRegistration {
        ExtraRegistration {
            thumbprint: tp(thumbprint),
            name: format!("{thumbprint} name"),
            collection_primary: primary.map(|p| tp(p).to_string()),
            clearance: crate::plan::ClusterClearance::ValidUser,
            known: false,
            note: None,
        }
    }

    fn view(changes: Vec<ClusterChange>, extra: Vec<ExtraRegistration>) -> ClusterView {
        ClusterView::Planned(ClusterPlan {
            url: "https://127.0.0.1:1".into(),
            server_version: ServerVersion {
                major: 4,
                minor: 1,
                full: "4.1.0".into(),
            },
            changes,
            warnings: Vec::new(),
            extra,
            last_used: BTreeMap::new(),
        })
    }

    fn drift(seen: &ClusterSeen, registry: &Registry) -> u64 {
        cluster_metric(&seen.status(registry, NOW)).drift
    }

    #[test]
    fn an_applied_prune_takes_a_collection_s_secondaries_with_its_primary() {
        let mut registry = Registry::new();
        registry.certificates = vec![entry("app", "AA")];
        let v = view(
            vec![change(ClusterAction::Unregister, Some("P1"))],
            vec![
                extra("P1", None),
                extra("S1", Some("P1")),
                extra("KEPT", None),
            ],
        );
        let applied = ClusterSeen::of(&v, true).expect("reached");
        // Only the registration nothing removed stays extra.
        assert_eq!(drift(&applied, &registry), 1);
        let planned = ClusterSeen::of(&v, false).expect("reached");
        assert_eq!(drift(&planned, &registry), 3);
    }

    #[test]
    fn a_pending_reissue_counts_as_status_counts_it() {
        // Plan only: the store still holds OLD; the plan registers a certificate not issued
        // yet and unregisters OLD, which the projected registry no longer holds.
        let mut registry = Registry::new();
        registry.certificates = vec![entry("app", "OLD"), entry("ops", "OPS")];
        let v = view(
            vec![
                change(ClusterAction::Register, None),
                change(ClusterAction::Edit, Some("OPS")),
                change(ClusterAction::Unregister, Some("OLD")),
            ],
            vec![extra("OLD", None)],
        );
        let seen = ClusterSeen::of(&v, false).expect("reached");
        let status = seen.status(&registry, NOW);
        // OLD is the store's (in sync), not also extra; OPS differs.
        assert_eq!(status.certificates.len(), 2, "{:?}", status.certificates);
        assert_eq!(cluster_metric(&status).drift, 1);
        assert!(!cluster_metric(&status).in_sync);
    }

    #[test]
    fn a_known_stranger_is_not_drift_and_is_labelled_kept() {
        let mut registry = Registry::new();
        registry.certificates = vec![entry("app", "AA")];
        let known = ExtraRegistration {
            known: true,
            note: Some("the backup team's".into()),
            ..extra("BACKUP", None)
        };
        let seen = ClusterSeen::of(&view(Vec::new(), vec![known]), true).expect("reached");
        let metric = cluster_metric(&seen.status(&registry, NOW));
        assert!(metric.in_sync);
        assert_eq!(metric.drift, 0);
        assert_eq!(metric.extra.len(), 1);
        assert!(metric.extra[0].kept && metric.extra[0].clearance == "ValidUser");
        // Beside a stranger nobody declared: that one drifts.
        let both = view(
            Vec::new(),
            vec![extra("OTHER", None), seen.extra[0].clone()],
        );
        let seen = ClusterSeen::of(&both, true).expect("reached");
        let metric = cluster_metric(&seen.status(&registry, NOW));
        assert!(!metric.in_sync);
        assert_eq!(metric.drift, 1);
    }

    /// issue 25: what the attempt's listing said of last use reaches the page's state and
    /// `/metrics`; a disabled client the cluster holds as declared is `disabled`, not drift.
    #[test]
    fn last_use_and_disabled_reach_the_state_and_the_metrics() {
        let mut registry = Registry::new();
        registry.certificates = vec![
            entry("app", "AA"),
            CertEntry {
                disabled: true,
                ..entry("off", "OFF")
            },
        ];
        let used = datetime!(2026-05-30 08:00 UTC);
        let mut v = view(Vec::new(), Vec::new());
        if let ClusterView::Planned(p) = &mut v {
            p.last_used = [(tp("AA"), used)].into();
        }
        let seen = ClusterSeen::of(&v, true).expect("reached");
        let status = seen.status(&registry, NOW);
        let states: Vec<(Option<OffsetDateTime>, RegistrationState)> = status
            .certificates
            .iter()
            .map(|c| (c.last_used, c.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (Some(used), RegistrationState::InSync),
                (None, RegistrationState::Disabled)
            ]
        );
        assert!(cluster_metric(&status).in_sync);
        let renew = BTreeMap::new();
        let metrics = certificates(&StatusView {
            registry: &registry,
            now: NOW,
            server_renew: None,
            client_renew: &renew,
            cluster: Some(&status),
        });
        let got: Vec<(&str, bool, Option<i64>)> = metrics
            .iter()
            .map(|m| (m.key.as_str(), m.disabled, m.last_used))
            .collect();
        assert_eq!(
            got,
            vec![
                ("app", false, Some(used.unix_timestamp())),
                ("off", true, None)
            ]
        );
    }

    #[test]
    fn no_cluster_no_state() {
        assert!(ClusterSeen::of(&ClusterView::Absent, true).is_none());
        assert!(ClusterSeen::of(&ClusterView::Skipped("--offline".into()), true).is_none());
    }
}
