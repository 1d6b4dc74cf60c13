//! `ravencert apply` and the one path every apply takes (the CLI and watch): lock, load, plan
//! again, carry it out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Error, Result};
use super::review::{compute, options, with_passwords};
use super::{Context, Output};
use crate::apply;
use crate::config::Desired;
use crate::git;
use crate::plan::{self, Plan, PlanOptions};
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
    /// `--json`.
    pub json: bool,
    /// `--replace KEY`s.
    pub replace: Vec<String>,
    /// `--lock-timeout`.
    pub lock_timeout: Duration,
    /// `--allow-delete-all`.
    pub allow_delete_all: bool,
}

/// Asks whether to carry out this plan: `Ok(true)` goes ahead. main prompts on the terminal;
/// it fails with [`Error::NoTerminal`] when there is none to ask on.
pub type Confirm<'a> = &'a mut dyn FnMut(&Plan) -> Result<bool>;

/// The applied revision of the working tree's certs.toml: `sha1:<commit>[+dirty]`, or None
/// outside git. With `require_clean`, uncommitted changes (or no git) refuse the apply.
/// certs.toml's provenance covers the certificate files it names: an uncommitted upload
/// makes the applied revision dirty too.
fn local_revision(ctx: &Context, desired: &Desired, require_clean: bool) -> Result<Option<String>> {
    let files = desired.certificate_files();
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
    git::provenance(config, &desired.certificate_files()).map(|p| p.revision())
}

/// The plan for `desired` against its store, changing nothing.
pub(crate) fn plan_for(ctx: &Context, desired: &Desired, opts: &PlanOptions) -> Result<Plan> {
    Ok(compute(ctx, desired, opts, true)?.2)
}

/// Lock, load, plan and apply: the one path every apply takes (CLI and watch). `check` sees
/// the store and the plan under the lock and may refuse them.
pub(crate) fn converge(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    lock_timeout: Duration,
    revision: Option<String>,
    check: &dyn Fn(&Actual, &Plan) -> Result<()>,
) -> Result<(Plan, apply::Outcome)> {
    let store = Store::new(&desired.store.path);
    let _lock = store.lock(lock_timeout)?;
    let actual = super::settings::load_actual(&store, desired, true)?;
    let opts = with_passwords(opts, desired, &store)?;
    let plan =
        plan::plan(desired, &actual, ctx.now, &opts).map_err(|e| Error::from_plan(desired, e))?;
    check(&actual, &plan)?;
    let outcome =
        apply::apply(desired, &store, &actual, &plan, ctx.now, revision).map_err(Error::Apply)?;
    Ok((plan, outcome))
}

/// `ravencert apply [PLANFILE]`: shows the plan and asks through `confirm` (unless `--yes` or
/// nothing to do), then applies it under the lock, refusing when it changed meanwhile.
pub fn apply(ctx: &Context, req: &ApplyRequest, confirm: Confirm<'_>) -> Result<Output> {
    let desired = ctx.desired_checked()?;
    let revision = local_revision(ctx, &desired, req.require_clean)?;
    let saved = req.planfile.as_deref().map(SavedPlan::read).transpose()?;
    let opts = match &saved {
        Some(s) => options(&s.options.replace, s.options.allow_delete_all),
        None => options(&req.replace, req.allow_delete_all),
    };
    // A first look without the lock, to show the plan and ask.
    let (_store, preview_actual, preview) = compute(ctx, &desired, &opts, true)?;
    if let Some(s) = &saved {
        s.check(&desired, &preview_actual, &preview)?;
    }
    if !preview.is_empty() && !req.yes && !confirm(&preview)? {
        return Err(Error::Cancelled);
    }
    // Under the lock, plan again: the store may have changed while we asked.
    let (plan, outcome) = converge(
        ctx,
        &desired,
        &opts,
        req.lock_timeout,
        revision,
        &|actual, plan| {
            if let Some(s) = &saved {
                s.check(&desired, actual, plan)?;
            }
            if *plan != preview && !req.yes {
                return Err(Error::ChangedWhileConfirming);
            }
            Ok(())
        },
    )?;
    report(ctx, req, &plan, &outcome)
}

/// The apply report: JSON, or text (with the plan when it was not shown for confirmation).
fn report(
    ctx: &Context,
    req: &ApplyRequest,
    plan: &Plan,
    outcome: &apply::Outcome,
) -> Result<Output> {
    let stdout = if req.json {
        render::apply_json(plan, &outcome.issued).map_err(Error::Encode)?
    } else {
        render::apply_text(plan, &outcome.issued, ctx.style, req.yes)
    };
    let mut stderr = String::new();
    if !plan.warnings.is_empty() && req.json {
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
