//! `watch --listen`: after every attempt, the [`crate::listen::Snapshot`] the listener serves: the store's
//! certificates as `status` shows them (renewal marks included), and the attempt's outcome.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use tracing::warn;

use super::show;
use super::Context;
use crate::config::Declared;
use crate::listen::{CertificateMetric, ClusterMetric, Shared, Snapshot};
use crate::model::RenewBefore;
use crate::plan::{ClusterAction, ClusterView, RegistrationState};
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
    /// certs.toml is invalid (nothing applied): why.
    Invalid(String),
}

impl Outcome {
    /// Why the daemon is unhealthy after this outcome, on one line; None when it is healthy.
    fn unhealthy(&self) -> Option<String> {
        match self {
            Outcome::Applied(Ok(())) | Outcome::Planned(Ok(())) => None,
            Outcome::Applied(Err(r)) => Some(format!("the last apply failed: {r}")),
            Outcome::Planned(Err(r)) => Some(format!("the last plan failed: {r}")),
            Outcome::Invalid(r) => Some(format!("certs.toml is invalid, nothing applied: {r}")),
        }
    }
}

/// One attempt's report: its outcome, the revision it applied, and the cluster after it when
/// it was reached.
pub(super) struct Report {
    pub(super) outcome: Outcome,
    pub(super) revision: Option<String>,
    pub(super) cluster: Option<ClusterSeen>,
}

impl Report {
    /// A report without news of the cluster.
    pub(super) fn of(outcome: Outcome, revision: Option<String>) -> Report {
        Report {
            outcome,
            revision,
            cluster: None,
        }
    }
}

/// The cluster as an attempt that reached it left it: the node that answered, the store's
/// registrations still to register or edit (none after an apply), and the client
/// registrations it holds beyond the store's (kept without `prune`, or not yet unregistered).
pub(super) struct ClusterSeen {
    url: String,
    pending: Vec<(ClusterAction, Option<String>)>,
    extra: Vec<(String, String)>,
}

impl ClusterSeen {
    /// From an attempt's cluster view: the store's registrations in sync once `applied`,
    /// otherwise as far as its plan has changes left. None when the cluster was not reached
    /// (no `[cluster]`, `--offline`).
    pub(super) fn of(view: &ClusterView, applied: bool) -> Option<ClusterSeen> {
        let plan = view.plan()?;
        let unregistered = |t: &str| {
            plan.changes.iter().any(|c| {
                c.action == ClusterAction::Unregister
                    && c.thumbprint
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(t))
            })
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
            .filter(|(t, _)| !(applied && unregistered(t)))
            .cloned()
            .collect();
        Some(ClusterSeen {
            url: plan.url.clone(),
            pending,
            extra,
        })
    }

    /// In sync when nothing is missing, differs or is extra, as `status` counts them.
    fn metric(&self) -> ClusterMetric {
        let drift = (self.pending.len() + self.extra.len()) as u64;
        ClusterMetric {
            in_sync: drift == 0,
            drift,
        }
    }

    /// The page's per-certificate states: the store's certificates, then the extra
    /// registrations.
    fn status(&self, registry: &Registry, checked_at: OffsetDateTime) -> ClusterStatus {
        let pending_for = |t: &str| {
            self.pending
                .iter()
                .find(|(_, p)| p.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(t)))
                .map(|(a, _)| *a)
        };
        let mut certificates: Vec<ClusterCertificateState> = registry
            .certificates
            .iter()
            .map(|e| ClusterCertificateState {
                thumbprint: e.thumbprint.clone(),
                state: match pending_for(&e.thumbprint) {
                    Some(ClusterAction::Register) => RegistrationState::Missing,
                    Some(_) => RegistrationState::Differs,
                    None => RegistrationState::InSync,
                },
                name: String::new(),
            })
            .collect();
        certificates.extend(self.extra.iter().map(|(t, name)| ClusterCertificateState {
            thumbprint: t.clone(),
            state: RegistrationState::Extra,
            name: name.clone(),
        }));
        ClusterStatus {
            url: self.url.clone(),
            checked_at: render::rfc3339(checked_at),
            certificates,
        }
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
            memory: Mutex::new(Memory::default()),
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
        }
        memory.attempt_unhealthy = report.outcome.unhealthy();
        let mut next = self.current();
        match store_view(ctx, &memory) {
            Ok((certificates, page)) => {
                next.certificates = certificates.into();
                next.page = page.into();
            }
            // The last view read stays: the attempt's outcome says what went wrong.
            Err(e) => warn!("listen: the store cannot be read for /metrics: {e}"),
        }
        let at = ctx.now.unix_timestamp();
        next.last_check = Some(at);
        if let Outcome::Applied(result) = &report.outcome {
            next.last_apply = Some(at);
            next.last_apply_success = Some(result.is_ok());
            match result {
                Ok(()) => next.applies_succeeded += 1,
                Err(_) => next.applies_failed += 1,
            }
        }
        next.cluster = memory.cluster.as_ref().map(|(seen, _)| seen.metric());
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
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = next;
    }
}

/// The store's certificates and the status page, as `ravencert status --offline` shows them,
/// with the renewal windows of the last valid certs.toml (the commit's, with `--git`); the page
/// adds the last apply and the cluster as last reached. Without any valid certs.toml yet, the
/// store `status` would show, without renewal marks.
fn store_view(ctx: &Context, memory: &Memory) -> super::Result<(Vec<CertificateMetric>, String)> {
    let actual = match &memory.inputs {
        // The store path already has --store applied, as the apply used it.
        Some(inputs) => Store::new(&inputs.store).load(None)?,
        None => show::load(ctx)?.2,
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
    let page = render::status_html(&view, memory.last_apply.as_ref());
    Ok((certificates(&view), page))
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
            view.client_renew.get(&c.key).copied(),
            c.retire_after,
        ),
    });
    servers.chain(clients).collect()
}
