//! `watch --listen`: after every attempt, the [`crate::listen::Snapshot`] the listener serves: the store's
//! certificates as `status` shows them (renewal marks included), and the attempt's outcome.

use tracing::warn;

use super::show;
use super::Context;
use crate::config::Declared;
use crate::listen::{CertificateMetric, ClusterMetric, Shared};
use crate::registry::Registry;
use crate::render::{self, StatusView};
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

/// One attempt's report: its outcome, and the cluster after it when it was reached.
pub(super) struct Report {
    pub(super) outcome: Outcome,
    pub(super) cluster: Option<ClusterMetric>,
}

/// Replaces the snapshot after an attempt, `desired` the certs.toml it read (None when it is
/// invalid). The store is read before the lock is taken: the listener waits at most for the
/// assignment.
pub(super) fn record(ctx: &Context, shared: &Shared, report: Report, desired: Option<&Declared>) {
    let store = store_view(ctx, desired);
    let at = ctx.now.unix_timestamp();
    let mut s = match shared.write() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    match store {
        Ok((certificates, status_text)) => {
            s.certificates = certificates;
            s.status_text = status_text;
        }
        // The last view read stays: the attempt's outcome says what went wrong.
        Err(e) => warn!("listen: the store cannot be read for /metrics: {e}"),
    }
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
    if report.cluster.is_some() {
        s.cluster = report.cluster;
    }
}

/// The store's certificates and `status`'s text, as `ravencert status --offline` shows them:
/// with the renewal marks of the certs.toml the attempt read (also a commit's, with `--git`),
/// or, when it is invalid, the store as last applied without them.
fn store_view(
    ctx: &Context,
    attempted: Option<&Declared>,
) -> super::Result<(Vec<CertificateMetric>, String)> {
    let loaded;
    let (desired, root, actual) = match attempted {
        // The store path already has --store applied, as the apply used it.
        Some(d) => (
            Some(d),
            d.store.path.clone(),
            Store::new(&d.store.path).load(None)?,
        ),
        None => {
            let (d, root, actual, _) = show::load(ctx)?;
            loaded = d;
            (loaded.as_ref(), root, actual)
        }
    };
    if !actual.exists {
        return Ok((Vec::new(), render::status_empty(&root)));
    }
    let client_renew = desired.map(show::client_renewals).unwrap_or_default();
    let view = StatusView {
        registry: &actual.registry,
        now: ctx.now,
        server_renew: desired.and_then(show::server_renewal),
        client_renew: &client_renew,
        cluster: None,
    };
    Ok((certificates(&view), render::status_text(&view)))
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
