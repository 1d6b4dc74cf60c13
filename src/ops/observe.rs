//! `watch --listen`: after every attempt, the [`crate::listen::Snapshot`] the listener serves: the store's
//! certificates as `status` shows them (renewal marks included), and the attempt's outcome.

use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use tracing::warn;

use super::show;
use super::Context;
use crate::config::Declared;
use crate::listen::{CertificateMetric, ClusterMetric, Shared};
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

/// The cluster as an attempt that reached it left it: the node that answered and the
/// changes still pending (none after an apply).
pub(super) struct ClusterSeen {
    url: String,
    pending: Vec<(ClusterAction, Option<String>, String)>,
}

impl ClusterSeen {
    /// From an attempt's cluster view: in sync once `applied`, otherwise as far as its plan has
    /// changes left. None when the cluster was not reached (absent, `--offline`).
    pub(super) fn of(view: &ClusterView, applied: bool) -> Option<ClusterSeen> {
        let plan = view.plan()?;
        let pending = if applied {
            Vec::new()
        } else {
            plan.changes
                .iter()
                .map(|c| (c.action, c.thumbprint.clone(), c.name.clone()))
                .collect()
        };
        Some(ClusterSeen {
            url: plan.url.clone(),
            pending,
        })
    }

    fn metric(&self) -> ClusterMetric {
        ClusterMetric {
            in_sync: self.pending.is_empty(),
            drift: self.pending.len() as u64,
        }
    }

    /// The page's per-certificate states: the store's certificates, then the registrations a
    /// pending unregister names.
    fn status(&self, registry: &Registry, checked_at: OffsetDateTime) -> ClusterStatus {
        let pending_for = |t: &str| {
            self.pending
                .iter()
                .find(|(_, p, _)| p.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(t)))
                .map(|(a, _, _)| *a)
        };
        let mut certificates: Vec<ClusterCertificateState> = registry
            .certificates
            .iter()
            .map(|e| ClusterCertificateState {
                thumbprint: e.thumbprint.clone(),
                state: match pending_for(&e.thumbprint) {
                    Some(ClusterAction::Register) => RegistrationState::Missing,
                    Some(ClusterAction::Edit) => RegistrationState::Differs,
                    _ => RegistrationState::InSync,
                },
                name: String::new(),
            })
            .collect();
        for (action, thumbprint, name) in &self.pending {
            if let (ClusterAction::Unregister, Some(t)) = (action, thumbprint) {
                certificates.push(ClusterCertificateState {
                    thumbprint: t.clone(),
                    state: RegistrationState::Extra,
                    name: name.clone(),
                });
            }
        }
        ClusterStatus {
            url: self.url.clone(),
            checked_at: render::rfc3339(checked_at),
            certificates,
        }
    }
}

/// Keeps the listener's snapshot: what the page remembers across attempts (the last apply,
/// the cluster as last reached) and the shared snapshot it replaces.
pub(super) struct Observer {
    shared: Shared,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    last_apply: Option<LastApply>,
    cluster: Option<(ClusterSeen, OffsetDateTime)>,
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
    /// is invalid). The store is read and the page rendered before the snapshot's lock is
    /// taken: the listener waits at most for the assignment.
    pub(super) fn record(&self, ctx: &Context, report: Report, desired: Option<&Declared>) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(seen) = report.cluster {
            memory.cluster = Some((seen, ctx.now));
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
        let store = store_view(ctx, desired, &memory);
        let mut s = self.shared.write().unwrap_or_else(PoisonError::into_inner);
        match store {
            Ok((certificates, page)) => {
                s.certificates = certificates.into();
                s.page = page.into();
            }
            // The last view read stays: the attempt's outcome says what went wrong.
            Err(e) => warn!("listen: the store cannot be read for /metrics: {e}"),
        }
        let at = ctx.now.unix_timestamp();
        s.last_check = Some(at);
        s.unhealthy = match report.outcome {
            Outcome::Applied(result) => {
                s.last_apply = Some(at);
                s.last_apply_success = Some(result.is_ok());
                match result {
                    Ok(()) => {
                        s.applies_succeeded += 1;
                        None
                    }
                    Err(reason) => {
                        s.applies_failed += 1;
                        Some(format!("the last apply failed: {reason}"))
                    }
                }
            }
            Outcome::Planned(result) => result.err().map(|r| format!("the last plan failed: {r}")),
            Outcome::Invalid(reason) => {
                Some(format!("certs.toml is invalid, nothing applied: {reason}"))
            }
        };
        s.cluster = memory.cluster.as_ref().map(|(seen, _)| seen.metric());
    }
}

/// The store's certificates and the status page, as `ravencert status --offline` shows them:
/// with the renewal marks of the certs.toml the attempt read (also a commit's, with `--git`),
/// or, when it is invalid, the store as last applied without them; the page adds the last
/// apply and the cluster as last reached.
fn store_view(
    ctx: &Context,
    attempted: Option<&Declared>,
    memory: &Memory,
) -> super::Result<(Vec<CertificateMetric>, String)> {
    let loaded;
    let (desired, actual) = match attempted {
        // The store path already has --store applied, as the apply used it.
        Some(d) => (Some(d), Store::new(&d.store.path).load(None)?),
        None => {
            let (d, _, actual, _) = show::load(ctx)?;
            loaded = d;
            (loaded.as_ref(), actual)
        }
    };
    let client_renew = desired.map(show::client_renewals).unwrap_or_default();
    let cluster = memory
        .cluster
        .as_ref()
        .map(|(seen, at)| seen.status(&actual.registry, *at));
    let view = StatusView {
        registry: &actual.registry,
        now: ctx.now,
        server_renew: desired.and_then(show::server_renewal),
        client_renew: &client_renew,
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
