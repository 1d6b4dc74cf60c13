//! `ravencert plan`: the plan against the store, of another revision, or (review mode) between
//! two revisions with no store at all; shown as text, JSON or Markdown, optionally saved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::cluster::{self, StorePlanned};
use super::error::{Error, Result};
use super::{Context, Output, Revision};
use crate::config::{ClientDesired, ClientSpec, Desired, GenerateSpec, SecretRef};
use crate::git;
use crate::model::{Origin, SinceBase};
use crate::plan::{
    self, Action, BundlePassword, ClusterView, DeclaredPassword, NotRead, Plan, PlanOptions, Target,
};
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
    /// `--markdown`.
    pub markdown: bool,
    /// `--out PLANFILE`: save the plan for `apply PLANFILE`.
    pub out: Option<PathBuf>,
    /// `--diff`: add the registry diff.
    pub diff: bool,
    /// `--detailed-exitcode`: exit 2 when there are changes.
    pub detailed_exitcode: bool,
    /// `--replace`, `--allow-delete-all`, `--offline`, `--json`.
    pub flags: PlanFlags,
}

/// The flags `plan` and `apply` share: what the plan re-issues and allows, whether it reads the
/// cluster, and whether the output is JSON.
#[derive(Debug, Clone, Default)]
pub struct PlanFlags {
    /// `--replace KEY`s: re-issue these even if nothing else asks for it.
    pub replace: Vec<String>,
    /// `--allow-delete-all`: a plan may delete every registered client certificate.
    pub allow_delete_all: bool,
    /// `--offline`: the store only; the cluster is not contacted.
    pub offline: bool,
    /// `--json`: machine-readable output.
    pub json: bool,
}

impl PlanFlags {
    /// The planner's options these flags ask for.
    pub(super) fn options(&self) -> PlanOptions {
        options(&self.replace, self.allow_delete_all)
    }
}

/// The planner's options from the command line (or a saved plan).
pub(super) fn options(replace: &[String], allow_delete_all: bool) -> PlanOptions {
    PlanOptions {
        replace: replace.iter().cloned().collect::<BTreeSet<_>>(),
        allow_delete_all,
        bundle_passwords: None,
        review: false,
        cluster_access: None,
        cluster_usage: None,
    }
}

/// The options with the fingerprints of the declared bundle passwords under this store's key,
/// so that the planner sees a changed password without ever holding one. A password whose
/// source is not there (a variable not set, a password file missing) is not compared, and the
/// plan says so: it is needed only when its bundle is written ([`check_needed_passwords`]).
pub(super) fn with_passwords(
    opts: &PlanOptions,
    desired: &Desired,
    store: &Store,
) -> Result<PlanOptions> {
    let key = store.password_key()?;
    let mut map = BTreeMap::new();
    for (c, r) in declared_passwords(desired) {
        let entry = match &key {
            // No key yet: whatever was recorded cannot match, so the bundle is made again.
            None => BundlePassword::Fingerprint("hmac-sha256:(no store key)".to_string()),
            Some(k) => match r.read() {
                Ok(secret) => BundlePassword::Fingerprint(crate::pki::password_fingerprint(
                    k,
                    &c.key,
                    Some(secret.expose()),
                )?),
                Err(e) => match e.absence() {
                    Some(why) => BundlePassword::NotRead(why),
                    None => {
                        return Err(desired
                            .declared
                            .secret_error_at(password_key(&c.key, r), e.to_string())
                            .into())
                    }
                },
            },
        };
        map.insert(c.key.clone(), entry);
    }
    Ok(PlanOptions {
        bundle_passwords: Some(map),
        ..opts.clone()
    })
}

/// The options of a review plan (`plan --base`, `plan --rev`): no password is read, so every
/// declared bundle password is "not read" (only one added to a bundle without any is seen).
pub(super) fn without_passwords(opts: &PlanOptions, desired: &Desired) -> PlanOptions {
    let map = declared_passwords(desired)
        .map(|(c, _)| {
            let why = "a review plan reads no password".to_string();
            (c.key.clone(), BundlePassword::NotRead(why))
        })
        .collect();
    PlanOptions {
        bundle_passwords: Some(map),
        review: true,
        ..opts.clone()
    }
}

/// The generated clients that declare a bundle password, with its source.
fn declared_passwords(desired: &Desired) -> impl Iterator<Item = (&ClientDesired, &SecretRef)> {
    desired
        .declared
        .clients
        .values()
        .filter_map(|c| match &c.source {
            ClientSpec::Generate(GenerateSpec {
                password: Some(r), ..
            }) => Some((c, r)),
            _ => None,
        })
}

/// The certs.toml key of a generated client's password source.
fn password_key(client: &str, r: &SecretRef) -> String {
    match r {
        SecretRef::Env(_) => format!("clients.{client}.password_env"),
        SecretRef::File(_) => format!("clients.{client}.password_file"),
    }
}

/// The passwords this plan's apply must read are there: every bundle it writes (a client
/// issued or re-issued, a bundle packaged again) whose password was not read (`opts`) is
/// named, with its client's key and line, before anything is written.
pub(super) fn check_needed_passwords(
    desired: &Desired,
    actual: &Actual,
    plan: &Plan,
    opts: &PlanOptions,
) -> Result<()> {
    let Some(map) = &opts.bundle_passwords else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for change in plan.changes.iter().filter(|c| c.target == Target::Client) {
        let Some(BundlePassword::NotRead(_)) = map.get(&change.key) else {
            continue;
        };
        let Some((c, spec, r)) =
            desired
                .declared
                .clients
                .get(&change.key)
                .and_then(|c| match &c.source {
                    ClientSpec::Generate(g) => g.password.as_ref().map(|r| (c, g, r)),
                    ClientSpec::Upload(_) => None,
                })
        else {
            continue;
        };
        let writes = match change.action {
            Action::Create | Action::Replace => true,
            Action::Update => actual
                .registry
                .active(&c.key)
                .filter(|e| e.source == Origin::Generated)
                .is_some_and(|e| {
                    let unread = Some(DeclaredPassword::NotRead(""));
                    !plan::bundle_reasons(e, spec, unread).is_empty()
                }),
            Action::Delete | Action::Export => false,
        };
        if let (true, Err(e)) = (writes, r.read()) {
            problems.push(
                desired
                    .declared
                    .secret_error_at(password_key(&c.key, r), e.to_string()),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(problems))
    }
}

/// Loads the store and plans. `secrets`: the declared passwords are at hand (not for a plan of
/// another revision), so a changed bundle password is planned too. Returns the options the
/// plan was made with.
pub(super) fn compute(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    secrets: bool,
) -> Result<(Store, Actual, Plan, PlanOptions)> {
    let store = Store::new(&desired.declared.store.path);
    // A review plan (`plan --rev`) reads no private key, the store's neither.
    let store = if secrets {
        store
    } else {
        store.reading_no_keys()
    };
    let actual = if secrets {
        super::settings::preview_actual(ctx, &store, &desired.declared)?
    } else {
        super::settings::load_actual(&store, &desired.declared, false)?
    };
    let opts = if secrets {
        with_passwords(opts, desired, &store)?
    } else {
        without_passwords(opts, desired)
    };
    let plan =
        plan::plan(desired, &actual, ctx.now, &opts).map_err(|e| Error::from_plan(desired, e))?;
    Ok((store, actual, plan, opts))
}

/// [`compute`], then the cluster (one list request; none when `offline`): the store plan
/// measured against what it grants, and the cluster's plan.
pub(super) fn compute_with_cluster(
    ctx: &Context,
    desired: &Desired,
    opts: &PlanOptions,
    offline: bool,
) -> Result<(Actual, Plan, ClusterView)> {
    let (store, actual, plan, opts) = compute(ctx, desired, opts, true)?;
    let reading = cluster::read(
        desired,
        &store,
        &actual.registry,
        offline,
        cluster::wants_usage(desired, ctx.cluster_usage),
    )?;
    let mut planned = StorePlanned {
        desired,
        store: &store,
        actual: &actual,
        plan: &plan,
        now: ctx.now,
        opts: &opts,
    };
    let remeasured = cluster::measured(&planned, &reading)?;
    if let Some(p) = &remeasured {
        planned.plan = p;
    }
    let cluster = cluster::preview(&planned, reading)?.view;
    Ok((actual, remeasured.unwrap_or(plan), cluster))
}

/// `ravencert plan`.
pub fn plan(ctx: &Context, req: &PlanRequest) -> Result<Output> {
    let opts = req.flags.options();
    let (desired, actual, plan, cluster) = planned(ctx, req, &opts)?;
    let mut stdout = shown(ctx, req, &desired, &actual, &plan, &cluster)?;
    // A plan that breaks the policy is shown (its Policy section says which rule fails), then
    // refused: exit 1, and never saved.
    let refusal = plan.policy_refusal();
    if let (Some(out), None) = (&req.out, &refusal) {
        let source = Source {
            now: ctx.now,
            config: &ctx.config,
            desired: &desired,
            actual: &actual,
            plan: &plan,
        };
        let saved_options = SavedOptions {
            replace: req.flags.replace.clone(),
            allow_delete_all: req.flags.allow_delete_all,
        };
        SavedPlan::new(&source, saved_options)?.write(out)?;
        if !req.flags.json {
            let shown = out.display().to_string();
            stdout.push_str(&format!(
                "\nSaved this plan to {}. Apply exactly it with `ravencert apply {}`.\n",
                Escaped(&shown),
                Escaped(&shown)
            ));
        }
    }
    if req.diff && !req.flags.json {
        append_diff(
            &mut stdout,
            req.markdown,
            &registry_diff(ctx, &desired, &actual, &plan),
        );
    }
    if let Some(refusal) = refusal {
        return Ok(Output {
            stdout,
            stderr: format!("error: {refusal}\n"),
            code: 1,
        });
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
        (Some(base_rev), _) => review_base(ctx, base_rev, opts),
        (None, Some(rev)) => {
            // certs.toml at REV against the store, read as a review: no password, no private
            // key, so no cluster either (it would take the admin's key).
            let desired = ctx.load(&Revision::Rev(rev.clone()), true)?;
            let (_, actual, plan, _) = compute(ctx, &desired, opts, false)?;
            let cluster = review_cluster(
                &desired,
                "plan --rev reads no private key, so it does not contact the cluster; plan or apply reconciles it",
            );
            Ok((desired, actual, plan, cluster))
        }
        (None, None) => {
            let desired = ctx.desired_checked()?;
            let (actual, plan, cluster) =
                compute_with_cluster(ctx, &desired, opts, req.flags.offline)?;
            Ok((desired, actual, plan, cluster))
        }
    }
}

/// Review mode (`plan --base BASE`): what changes between certs.toml at BASE and the working
/// tree's, with the store assumed to match BASE. No store is read, nothing is issued, and
/// neither side reads a password or a private key.
fn review_base(
    ctx: &Context,
    base_rev: &str,
    opts: &PlanOptions,
) -> Result<(Desired, Actual, Plan, ClusterView)> {
    let mut desired = ctx.load(&Revision::WorkTree, true)?;
    // No certs.toml at BASE (the pull request that adds it): nothing is registered.
    let base = if git::exists_at(&ctx.config, base_rev)? {
        Some(ctx.load(&Revision::Rev(base_rev.to_string()), true)?)
    } else {
        None
    };
    compare_unread(&mut desired, base.as_ref());
    // BASE's policy is in force: a change cannot loosen the policy and use the looser rule at
    // once. Its own policy.toml must still parse, and a change to it shows as a settings
    // change. BASE's policy.toml counts even where BASE has no certs.toml yet (the pull request
    // that adds certs.toml beside a policy already merged); no policy at BASE: none in force.
    desired.policy_in_force = match &base {
        Some(b) => b.declared.policy.clone(),
        None => ctx.read_policy(&Revision::Rev(base_rev.to_string()))?,
    };
    let actual = match &base {
        Some(base) => plan::assumed_store(base, ctx.now),
        None => {
            // Nothing declared at BASE: every setting is new (a [cluster] is flagged).
            let mut registry = crate::registry::Registry::new();
            // BASE's policy, if it has one, is what the work tree's is compared with.
            registry.settings = Some(crate::registry::AppliedSettings {
                policy: desired
                    .policy_in_force
                    .as_ref()
                    .map(|p| plan::policy_record(&ctx.config, p)),
                ..crate::registry::AppliedSettings::default()
            });
            Actual {
                registry,
                ..Actual::default()
            }
        }
    };
    let opts = without_passwords(opts, &desired);
    let mut plan = plan::plan(&desired, &actual, ctx.now, &opts)?;
    plan.not_read
        .extend(unread_at_base(&desired, base.as_ref()));
    let cluster = review_cluster(
        &desired,
        "plan --base reviews certs.toml against BASE without a store; apply reconciles the cluster",
    );
    Ok((desired, actual, plan, cluster))
}

/// The cluster of a review plan: left out, saying why.
fn review_cluster(desired: &Desired, why: &str) -> ClusterView {
    if desired.declared.cluster.is_some() {
        ClusterView::Skipped(why.into())
    } else {
        ClusterView::Absent
    }
}

/// How each file the review did not read in the work tree compares with BASE's: the same
/// bytes (or the same path outside what review reads), other ones, or new.
fn compare_unread(desired: &mut Desired, base: Option<&Desired>) {
    for u in &mut desired.files.unread {
        let Some(base) = base else {
            u.since_base = SinceBase::New;
            continue;
        };
        let was_digest = base.files.digests.get(&u.key);
        let was_unread = base.files.unread.iter().find(|b| b.key == u.key);
        u.since_base = match (&u.digest, was_digest, was_unread) {
            (Some(now), Some(was), _) if now == was => SinceBase::Same,
            (None, _, Some(was)) if was.digest.is_none() && was.path == u.path => SinceBase::Same,
            (_, None, None) => SinceBase::New,
            _ => SinceBase::Changed,
        };
    }
}

/// The files BASE names that the review did not read there, where the work tree's were read:
/// what BASE registered for them is not known (the plan compares with a stand-in).
fn unread_at_base(desired: &Desired, base: Option<&Desired>) -> Vec<NotRead> {
    let Some(base) = base else {
        return Vec::new();
    };
    base.files
        .unread
        .iter()
        .filter(|b| !desired.files.unread.iter().any(|u| u.key == b.key))
        .map(|b| NotRead {
            key: b.key.clone(),
            path: Some(b.path.display().to_string()),
            why: format!("at BASE: {}", b.why),
            effect: "what BASE registered for it is not known; the plan does not show it".into(),
        })
        .collect()
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
    Ok(if req.flags.json {
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
