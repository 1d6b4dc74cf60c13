//! `ravencert plan`: the plan against the store, of another revision, or (review mode) between
//! two revisions with no store at all; shown as text, JSON or Markdown, optionally saved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::cluster::{preview, StorePlanned};
use super::error::{Error, Result};
use super::{Context, Output, Revision};
use crate::config::{ClientSpec, Desired};
use crate::git;
use crate::plan::{self, ClusterView, Plan, PlanOptions};
use crate::registry::Actual;
use crate::render::{self, Escaped};
use crate::saved_plan::{SavedOptions, SavedPlan, Source};
use crate::store::Store;

/// What `plan` was asked for.
pub struct PlanRequest {
    /// `--rev REV`: certs.toml at that git revision.
    pub rev: Option<String>,
    /// `--base REV`: review mode, the store assumed to match certs.toml at REV.
    pub base: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `--markdown`.
    pub markdown: bool,
    /// `--out PLANFILE`: save the plan for `apply PLANFILE`.
    pub out: Option<PathBuf>,
    /// `--diff`: add the registry diff.
    pub diff: bool,
    /// `--detailed-exitcode`: exit 2 when there are changes.
    pub detailed_exitcode: bool,
    /// `--replace KEY`s.
    pub replace: Vec<String>,
    /// `--allow-delete-all`.
    pub allow_delete_all: bool,
    /// `--offline`: leave the cluster out.
    pub offline: bool,
}

/// The planner's options from the command line (or a saved plan).
pub(super) fn options(replace: &[String], allow_delete_all: bool) -> PlanOptions {
    PlanOptions {
        replace: replace.iter().cloned().collect::<BTreeSet<_>>(),
        allow_delete_all,
        bundle_passwords: None,
    }
}

/// The options with the fingerprints of the declared bundle passwords under this store's key,
/// so that the planner sees a changed password without ever holding one.
pub(super) fn with_passwords(
    opts: &PlanOptions,
    desired: &Desired,
    store: &Store,
) -> Result<PlanOptions> {
    let key = store.password_key()?;
    let mut map = BTreeMap::new();
    for c in desired.clients.values() {
        let ClientSpec::Generate(g) = &c.source else {
            continue;
        };
        // A client without a password is left out: the planner reads that as NO_PASSWORD.
        let fingerprint = match (&g.password, &key) {
            (None, _) => continue,
            // No key yet: whatever was recorded cannot match, so the bundle is made again.
            (Some(_), None) => "hmac-sha256:(no store key)".to_string(),
            (Some(r), Some(k)) => {
                let secret = r
                    .read()
                    .map_err(|e| desired.error_at(format!("clients.{}", c.key), e.to_string()))?;
                crate::pki::password_fingerprint(k, &c.key, Some(secret.expose()))?
            }
        };
        map.insert(c.key.clone(), fingerprint);
    }
    Ok(PlanOptions {
        bundle_passwords: Some(map),
        ..opts.clone()
    })
}

/// Loads the store and plans. `secrets`: the declared passwords are at hand (not for a plan of
/// another revision), so a changed bundle password is planned too.
pub(super) fn compute(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    secrets: bool,
) -> Result<(Store, Actual, Plan)> {
    let store = Store::new(&desired.store.path);
    let actual = super::settings::load_actual(&store, desired, secrets)?;
    let opts = if secrets {
        with_passwords(opts, desired, &store)?
    } else {
        opts.clone()
    };
    let plan =
        plan::plan(desired, &actual, ctx.now, &opts).map_err(|e| Error::from_plan(desired, e))?;
    Ok((store, actual, plan))
}

/// [`compute`], then the cluster's plan after it (one list request; none when `offline`).
pub(super) fn compute_with_cluster(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    secrets: bool,
    offline: bool,
) -> Result<(Actual, Plan, ClusterView)> {
    let (store, actual, plan) = compute(ctx, desired, opts, secrets)?;
    let planned = StorePlanned {
        desired,
        store: &store,
        actual: &actual,
        plan: &plan,
        now: ctx.now,
        opts,
    };
    let cluster = preview(&planned, offline)?.view;
    Ok((actual, plan, cluster))
}

/// `ravencert plan`.
pub fn plan(ctx: &Context, req: &PlanRequest) -> Result<Output> {
    let opts = options(&req.replace, req.allow_delete_all);
    let (desired, actual, plan, cluster) = planned(ctx, req, &opts)?;
    let mut stdout = shown(ctx, req, &desired, &actual, &plan, &cluster)?;
    if let Some(out) = &req.out {
        let source = Source {
            now: ctx.now,
            config: &ctx.config,
            desired: &desired,
            actual: &actual,
            plan: &plan,
        };
        let saved_options = SavedOptions {
            replace: req.replace.clone(),
            allow_delete_all: req.allow_delete_all,
        };
        SavedPlan::new(&source, saved_options)?.write(out)?;
        if !req.json {
            let shown = out.display().to_string();
            stdout.push_str(&format!(
                "\nSaved this plan to {}. Apply exactly it with `ravencert apply {}`.\n",
                Escaped(&shown),
                Escaped(&shown)
            ));
        }
    }
    if req.diff && !req.json {
        append_diff(
            &mut stdout,
            req.markdown,
            &registry_diff(ctx, &desired, &actual, &plan),
        );
    }
    // Kept access is not "No changes": a reviewer must look at it too.
    let code = if req.detailed_exitcode && !(plan.is_settled() && cluster.is_settled()) {
        2
    } else {
        0
    };
    Ok(Output {
        stdout,
        stderr: String::new(),
        code,
    })
}

/// What certs.toml declares, the store it is planned against, the plan, and the cluster's.
fn planned(
    ctx: &Context,
    req: &PlanRequest,
    opts: &PlanOptions,
) -> Result<(Desired, Actual, Plan, ClusterView)> {
    match (&req.base, &req.rev) {
        (Some(base_rev), _) => {
            // Review mode: what changes between certs.toml at BASE and the working tree's,
            // with the store assumed to match BASE. No store is read, nothing is issued.
            let desired = ctx.load(&Revision::WorkTree, false)?;
            // No certs.toml at BASE (the pull request that adds it): nothing is registered.
            let actual = if git::exists_at(&ctx.config, base_rev)? {
                let base = ctx.load(&Revision::Rev(base_rev.clone()), false)?;
                plan::assumed_store(&base, ctx.now)
            } else {
                // Nothing declared at BASE: every setting is new (a [cluster] is flagged).
                let mut registry = crate::registry::Registry::new();
                registry.settings = Some(crate::registry::AppliedSettings::default());
                Actual {
                    registry,
                    ..Actual::default()
                }
            };
            let plan = plan::plan(&desired, &actual, ctx.now, opts)?;
            let cluster = if desired.cluster.is_some() {
                ClusterView::Skipped(
                    "plan --base reviews certs.toml against BASE without a store; apply reconciles the cluster".into(),
                )
            } else {
                ClusterView::Absent
            };
            Ok((desired, actual, plan, cluster))
        }
        (None, rev) => {
            let desired = match rev {
                Some(rev) => ctx.load(&Revision::Rev(rev.clone()), false)?,
                None => ctx.desired_checked()?,
            };
            let (actual, plan, cluster) =
                compute_with_cluster(ctx, &desired, opts, rev.is_none(), req.offline)?;
            Ok((desired, actual, plan, cluster))
        }
    }
}

fn registry_diff(ctx: &Context, desired: &Desired, actual: &Actual, plan: &Plan) -> String {
    let after = plan::project(&actual.registry, plan, desired, ctx.now);
    render::registry_diff(&actual.registry, &after)
}

/// The plan in the format asked for (JSON carries the registry diff inside).
fn shown(
    ctx: &Context,
    req: &PlanRequest,
    desired: &Desired,
    actual: &Actual,
    plan: &Plan,
    cluster: &ClusterView,
) -> Result<String> {
    Ok(if req.json {
        let mut document = render::plan_document(plan);
        if req.diff {
            document.registry_diff = Some(registry_diff(ctx, desired, actual, plan));
        }
        let mut value = serde_json::to_value(&document).map_err(Error::Encode)?;
        render::add_cluster_json(&mut value, cluster).map_err(Error::Encode)?;
        render::json_text(&value).map_err(Error::Encode)?
    } else if req.markdown {
        render::plan_markdown(plan) + &render::cluster_markdown(cluster)
    } else {
        render::plan_text(plan, ctx.style) + &render::cluster_text(cluster, ctx.style)
    })
}

/// The registry diff after a text or Markdown plan (nothing when the registry stays as is).
fn append_diff(stdout: &mut String, markdown: bool, diff: &str) {
    if diff.is_empty() {
        return;
    }
    if markdown {
        if !stdout.ends_with("\n\n") {
            stdout.push('\n');
        }
        stdout.push_str(&render::markdown_diff(diff));
    } else {
        stdout.push('\n');
        stdout.push_str(diff);
    }
}
