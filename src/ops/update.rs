//! `ravencert apply` and the one path every apply takes (the CLI and watch): lock, load, plan
//! again, carry it out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cluster::{self, StorePlanned};
use super::error::{Error, Result};
use super::review::{
    check_needed_passwords, compute_with_cluster, options, with_passwords, PlanFlags,
};
use super::{Context, Output};
use crate::apply;
use crate::config::Desired;
use crate::git;
use crate::plan::{self, ClusterView, Plan, PlanOptions};
use crate::registry::Actual;
use crate::render;
use crate::saved_plan::SavedPlan;
use crate::store::Store;

/// What `apply` was asked for.
pub struct ApplyRequest {
    /// `--require-clean`: refuse uncommitted changes to certs.toml and its files.
    pub require_clean: bool,
    /// `PLANFILE`: a plan saved with `plan --out`.
    pub planfile: Option<PathBuf>,
    /// `--yes`: no confirmation.
    pub yes: bool,
    /// `--lock-timeout`.
    pub lock_timeout: Duration,
    /// `--replace`, `--allow-delete-all`, `--offline`, `--json`.
    pub flags: PlanFlags,
}

/// Asks whether to carry out this plan (the store's, then the cluster's): `Ok(true)` goes ahead.
/// main prompts on the terminal; it fails with [`Error::NoTerminal`] when there is none to ask
/// on.
pub type Confirm<'a> = &'a mut dyn FnMut(&Plan, &ClusterView) -> Result<bool>;

/// What one converge did: the store's plan and outcome, then the cluster's.
pub(crate) struct Converged {
    /// The store plan carried out.
    pub(crate) plan: Plan,
    /// What the store apply issued.
    pub(crate) outcome: apply::Outcome,
    /// The cluster plan carried out (or why the cluster was left out).
    pub(crate) cluster: ClusterView,
    /// The cluster requests sent.
    pub(crate) cluster_done: Vec<String>,
}

/// The applied revision of the working tree's certs.toml: `sha1:<commit>[+dirty]`, or None
/// outside git. With `require_clean`, uncommitted changes (or no git) refuse the apply.
/// certs.toml's provenance covers the certificate files it names: an uncommitted upload
/// makes the applied revision dirty too.
fn local_revision(ctx: &Context, desired: &Desired, require_clean: bool) -> Result<Option<String>> {
    let files = reviewed_files(desired);
    if !require_clean {
        return Ok(git::provenance(&ctx.config, &files).map(|p| p.revision()));
    }
    let p = git::require_provenance(&ctx.config, &files).map_err(Error::NoProvenance)?;
    if !p.dirty_files.is_empty() {
        return Err(Error::Uncommitted(p.dirty_files));
    }
    Ok(Some(p.revision()))
}

/// The applied revision of a certs.toml on disk (and the certificate files it names), when it
/// is in git.
pub(crate) fn revision_of(config: &Path, desired: &Desired) -> Option<String> {
    git::provenance(config, &reviewed_files(desired)).map(|p| p.revision())
}

/// The files whose provenance the applied revision records with certs.toml: the certificate
/// files it names, and its policy.toml when there is one.
fn reviewed_files(desired: &Desired) -> Vec<PathBuf> {
    let mut files = desired.declared.certificate_files();
    files.extend(desired.declared.policy.as_ref().map(|p| p.path.clone()));
    files
}

/// The plan for `desired` against its store, and the cluster's, changing nothing.
pub(crate) fn plan_for(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    offline: bool,
) -> Result<(Plan, ClusterView)> {
    let (_, plan, cluster) = compute_with_cluster(ctx, desired, opts, offline)?;
    Ok((plan, cluster))
}

/// How a converge runs: the lock's patience, the revision to record, the cluster or not.
pub(crate) struct Run {
    /// How long to wait for the store's lock.
    pub(crate) lock_timeout: Duration,
    /// The applied revision to record.
    pub(crate) revision: Option<String>,
    /// `--offline`: the store only.
    pub(crate) offline: bool,
    /// The cluster plan the person confirmed: refused when the cluster's plan under the lock
    /// is another (None: nobody confirmed one).
    pub(crate) confirmed_cluster: Option<ClusterView>,
}

/// Lock, load, plan and apply the store, then the cluster: the one path every apply takes (CLI
/// and watch). `check` sees the store and the plan under the lock and may refuse them. The
/// cluster is read and planned before the store changes, so that a value the server cannot
/// hold or a deletion guard refuses the whole apply; its changes are made after the store's.
pub(crate) fn converge(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    run: Run,
    check: &dyn Fn(&Actual, &Plan) -> Result<()>,
) -> Result<Converged> {
    let store = Store::new(&desired.declared.store.path);
    let _lock = store.lock(run.lock_timeout)?;
    let actual = super::settings::load_actual(&store, &desired.declared, true)?;
    let opts = with_passwords(opts, desired, &store)?;
    let store_plan =
        plan::plan(desired, &actual, ctx.now, &opts).map_err(|e| Error::from_plan(desired, e))?;
    // A plan that breaks the policy is refused before anything is read or written.
    refuse_by_policy(&store_plan)?;
    check_needed_passwords(desired, &actual, &store_plan, &opts)?;
    // The cluster is read only once the store's plan is not refused: a refused plan sends
    // nothing. Then the plan is measured against what the cluster grants.
    let reading = cluster::read(
        desired,
        &store,
        &actual.registry,
        run.offline,
        cluster::wants_usage(desired, ctx.cluster_usage),
    )?;
    let mut planned = StorePlanned {
        desired,
        store: &store,
        actual: &actual,
        plan: &store_plan,
        now: ctx.now,
        opts: &opts,
    };
    let remeasured = cluster::measured(&planned, &reading)?;
    let plan = remeasured.as_ref().unwrap_or(&store_plan);
    refuse_by_policy(plan)?;
    planned.plan = plan;
    check(&actual, plan)?;
    let preview = cluster::preview(&planned, reading)?;
    if let Some(confirmed) = &run.confirmed_cluster {
        if !cluster::same_changes(confirmed, &preview.view) {
            return Err(Error::ClusterChangedWhileConfirming);
        }
    }
    let outcome = apply::apply(desired, &store, &actual, plan, ctx.now, run.revision)
        .map_err(Error::Apply)?;
    // The registry as committed, for the cluster step: read back only when there is one (a
    // load of 10,000 certificates is not free).
    let loaded;
    let registry = if plan.is_empty() || desired.declared.cluster.is_none() {
        &actual.registry
    } else {
        loaded = store
            .load(super::exports::export_path(&desired.declared))?
            .registry;
        &loaded
    };
    let (cluster, done) = cluster::apply_after_store(&planned, preview, registry)
        .map_err(|e| Error::after_store(e, !plan.is_empty()))?;
    Ok(Converged {
        plan: remeasured.unwrap_or(store_plan),
        outcome,
        cluster,
        cluster_done: done.done,
    })
}

/// The refusal of a plan that breaks the policy in force (policy.toml).
pub(crate) fn refuse_by_policy(plan: &Plan) -> Result<()> {
    match plan.policy_refusal() {
        Some(e) => Err(Error::Plan(e)),
        None => Ok(()),
    }
}

/// `ravencert apply [PLANFILE]`: shows the plan and asks through `confirm` (unless `--yes` or
/// nothing to do), then applies it under the lock, refusing when it changed meanwhile.
pub fn apply(ctx: &Context, req: &ApplyRequest, confirm: Confirm<'_>) -> Result<Output> {
    let desired = ctx.desired_checked()?;
    let revision = local_revision(ctx, &desired, req.require_clean)?;
    let saved = req.planfile.as_deref().map(SavedPlan::read).transpose()?;
    let opts = match &saved {
        Some(s) => options(&s.options.replace, s.options.allow_delete_all),
        None => req.flags.options(),
    };
    // A first look without the lock, to show the plan and ask.
    // With --yes nobody reads the cluster's preview: converge reads it under the lock.
    let (preview_actual, preview, cluster_preview) =
        compute_with_cluster(ctx, &desired, &opts, req.flags.offline || req.yes)?;
    if let Some(s) = &saved {
        s.check(&desired, &preview_actual, &preview)?;
    }
    // Refused before anyone is asked: a plan breaking the policy is never applied.
    refuse_by_policy(&preview)?;
    let unchanged = preview.is_empty() && cluster_preview.is_empty();
    if !unchanged {
        // A bundle that cannot be written is refused before anyone is asked or anything locked.
        let store = Store::new(&desired.declared.store.path);
        let opts = with_passwords(&opts, &desired, &store)?;
        check_needed_passwords(&desired, &preview_actual, &preview, &opts)?;
    }
    if !unchanged && !req.yes && !confirm(&preview, &cluster_preview)? {
        return Err(Error::Cancelled);
    }
    // Under the lock, plan again: the store may have changed while we asked.
    let run = Run {
        lock_timeout: req.lock_timeout,
        revision,
        offline: req.flags.offline,
        confirmed_cluster: (!req.yes && !req.flags.offline).then_some(cluster_preview),
    };
    let converged = converge(ctx, &desired, &opts, run, &|actual, plan| {
        if let Some(s) = &saved {
            s.check(&desired, actual, plan)?;
        }
        // (With --yes nobody saw the preview: no comparison of 10,000 changes.)
        if !req.yes && *plan != preview {
            return Err(Error::ChangedWhileConfirming);
        }
        Ok(())
    })?;
    report(ctx, req, &converged)
}

/// The apply report: JSON, or text (with the plan when it was not shown for confirmation).
fn report(ctx: &Context, req: &ApplyRequest, c: &Converged) -> Result<Output> {
    let (plan, outcome) = (&c.plan, &c.outcome);
    let stdout = if req.flags.json {
        render::apply_json(plan, &outcome.issued, &c.cluster, &c.cluster_done)
            .map_err(Error::Encode)?
    } else {
        let mut text = render::apply_text(plan, &outcome.issued, ctx.style, req.yes);
        if req.yes {
            text.push_str(&render::cluster_text(&c.cluster, ctx.style));
        }
        // A cluster left out was said with the plan just printed: once is enough.
        if !(req.yes && matches!(c.cluster, ClusterView::Skipped(_))) {
            text.push_str(&render::cluster_applied_text(&c.cluster, &c.cluster_done));
        }
        text
    };
    let mut stderr = String::new();
    if !plan.warnings.is_empty() && req.flags.json {
        stderr.push_str(&format!(
            "{} warning(s), see \"warnings\"\n",
            plan.warnings.len()
        ));
    }
    Ok(Output {
        stdout,
        stderr,
        code: 0,
    })
}
