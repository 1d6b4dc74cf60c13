//! The cluster as read after the store plan and before any change (docs/contract.md §7): one
//! list request (and last use where it is wanted), and the store plan measured against it.

use std::collections::BTreeMap;

use super::ClusterSetupError;
use super::{StorePlanned, Target};
use crate::config::Desired;
use crate::model::Thumbprint;
use crate::ops::error::{Error, Result};
use crate::plan::{ClusterListing, HeldAccess, Plan, PlanOptions};
use crate::registry::Registry;
use crate::store::Store;

/// The cluster as read after the store plan and before any change: the listing to plan the
/// cluster against (and to measure the store plan's escalations by), or why there is none.
pub(crate) enum Reading {
    /// certs.toml has no `[cluster]`.
    Absent,
    /// `--offline`: left out.
    Offline,
    /// Connected, and its registrations listed.
    Listed(Box<Target>, ClusterListing),
    /// Not contacted: what ravencert needs for it (the admin certificate, the server
    /// certificate to pin) is not in the store yet.
    NotYet(ClusterSetupError),
}

impl Reading {
    /// What the listed registrations grant, for [`crate::plan::PlanOptions::cluster_access`].
    pub(crate) fn access(&self) -> Option<BTreeMap<Thumbprint, HeldAccess>> {
        match self {
            Reading::Listed(_, listing) => Some(crate::plan::held_access(listing)),
            _ => None,
        }
    }

    /// When each listed registration was last used (None: never), for policy.toml's
    /// `max_unused`; None where the server does not say (RavenDB 4.1, or not asked).
    pub(crate) fn usage(&self) -> Option<crate::plan::Usage> {
        match self {
            Reading::Listed(_, listing) => listing.usage(),
            _ => None,
        }
    }
}

/// Whether reading the cluster also reads when each certificate was last used: for what shows
/// it (`ctx_usage`: status, `watch --listen`), and for a policy in force with `max_unused`.
pub(crate) fn wants_usage(desired: &Desired, ctx_usage: bool) -> bool {
    ctx_usage
        || desired
            .policy_in_force
            .as_ref()
            .is_some_and(|p| p.rules.iter().any(|r| r.max_unused.is_some()))
}

/// Reads the cluster of `desired` (one list request), the store as `registry` holds it now.
/// Called after the store is planned, so that a refused plan sends nothing. A listing that
/// cannot be read is an error saying that nothing changed and that `--offline` applies the
/// store alone.
pub(crate) fn read(
    desired: &Desired,
    store: &Store,
    registry: &Registry,
    offline: bool,
    usage: bool,
) -> Result<Reading> {
    let Some(settings) = &desired.declared.cluster else {
        return Ok(Reading::Absent);
    };
    if offline {
        return Ok(Reading::Offline);
    }
    let target = match Target::connect(settings, store, registry) {
        Ok(t) => t,
        Err(Error::ClusterSetup(
            e @ (ClusterSetupError::AdminNotIssued { .. } | ClusterSetupError::NoServerToPin),
        )) => return Ok(Reading::NotYet(e)),
        Err(e) => return Err(e),
    };
    let mut listing = target.read().map_err(|e| match e {
        Error::Cluster(c) => Error::ClusterUnread(c),
        e => e,
    })?;
    if usage {
        target.fill_last_used(&mut listing);
    }
    Ok(Reading::Listed(Box::new(target), listing))
}

/// The store plan measured against what the cluster grants (`reading`): planned again with
/// the listing's access when it flagged an escalation, so that access the cluster already
/// grants is not one. The same changes; only their flags can differ. None when the store plan
/// stands as it is (no copy of a plan of 10,000 changes).
pub(crate) fn measured(s: &StorePlanned<'_>, reading: &Reading) -> Result<Option<Plan>> {
    let access = reading
        .access()
        .filter(|_| s.plan.changes.iter().any(|c| c.escalation));
    // policy.toml's max_unused is decided by the cluster's last use, where it says it.
    let usage = reading.usage().filter(|_| s.plan.policy.is_some());
    if access.is_none() && usage.is_none() {
        return Ok(None);
    }
    let opts = PlanOptions {
        cluster_access: access.or_else(|| s.opts.cluster_access.clone()),
        cluster_usage: usage.or_else(|| s.opts.cluster_usage.clone()),
        ..s.opts.clone()
    };
    crate::plan::plan(s.desired, s.actual, s.now, &opts)
        .map(Some)
        .map_err(|e| Error::from_plan(s.desired, e))
}
