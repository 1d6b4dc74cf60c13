//! `ravencert watch`: the loop of [`crate::watch`] driving one attempt at a time through
//! [`converge`], each with a fresh clock, logging every event.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::cluster::describe;
use super::error::{Error, Result, Unusable};
use super::observe::{ClusterSeen, Observer, Outcome, Report};
use super::update::{converge, plan_for, revision_of, Converged, Run};
use super::{Context, Output, Revision};
use crate::config::Desired;
use crate::listen;
use crate::plan::{Action, ClusterAction, ClusterView, FieldChange, Plan, PlanError, PlanOptions};
use crate::render::{self, Style};
use crate::watch::{self, Attempt, Reconciler, Source, WatchOptions};

/// What `watch` was asked for.
pub struct WatchRequest {
    /// The loop's settings.
    pub options: WatchOptions,
    /// `--allow-export-path`: with `--git`, where an absolute or `..` export may be written.
    pub allow_export_path: Vec<PathBuf>,
    /// The clock, read once per attempt.
    pub clock: fn() -> OffsetDateTime,
    /// `--offline`: the store only; the cluster is not contacted.
    pub offline: bool,
    /// `--listen ADDR`: serve /metrics, /healthz and / there.
    pub listen: Option<String>,
}

/// `ravencert watch`: runs until SIGINT/SIGTERM; its output is the log.
pub fn watch(ctx: &Context, req: &WatchRequest) -> Result<Output> {
    // With --git the checkout is a cache: a relative export is written next to the store.
    let export_base = match (&req.options.git, &ctx.store_override) {
        (Some(_), Some(store)) => Some(store.parent().map(Path::to_path_buf).unwrap_or_default()),
        _ => None,
    };
    let daemon = Daemon {
        config: ctx.config.clone(),
        store_override: ctx.store_override.clone(),
        style: ctx.style,
        export_base,
        policy: ctx.policy.clone(),
        req,
        listener: match &req.listen {
            Some(addr) => Some(Observer::new(listen::start(addr)?.0)),
            None => None,
        },
        wake: Cell::new(None),
        ending_failures: Cell::new(0),
    };
    if let Some(p) = ctx.policy.as_ref().filter(|_| req.options.git.is_some()) {
        let outside = p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if outside {
            return Err(watch::WatchError::PolicyOutsideRepository(p.clone()).into());
        }
    }
    watch::run(
        &ctx.config,
        ctx.store_override.as_deref(),
        &req.options,
        &daemon,
    )?;
    Ok(Output::ok(String::new()))
}

/// The settings each attempt's [`Context`] is made from.
struct Daemon<'a> {
    config: PathBuf,
    store_override: Option<PathBuf>,
    style: Style,
    export_base: Option<PathBuf>,
    /// `--policy FILE`.
    policy: Option<PathBuf>,
    req: &'a WatchRequest,
    /// What `--listen` serves, replaced after every attempt.
    listener: Option<Observer>,
    /// When access next ends, as the last attempt saw it.
    wake: Cell<Option<OffsetDateTime>>,
    /// Failed attempts in a row since an end of access came: each waits twice as long before
    /// the next (1 s up to 5 min), so that a passed `until` is retried, not left to the next
    /// interval, and a lasting failure does not spin.
    ending_failures: Cell<u32>,
}

impl Daemon<'_> {
    fn context(&self, config: PathBuf, policy: Option<PathBuf>) -> Context {
        Context {
            config,
            store_override: self.store_override.clone(),
            style: self.style,
            now: (self.req.clock)(),
            export_base: self.export_base.clone(),
            allowed_exports: self.req.allow_export_path.clone(),
            // The page and /metrics show when each certificate was last used.
            cluster_usage: self.listener.is_some(),
            policy,
            // Each attempt loads the store under the lock.
            prefetch: Default::default(),
        }
    }
}

impl Reconciler for Daemon<'_> {
    fn attempt(&self, source: &Source<'_>, why: &str) -> (Attempt, Option<Vec<PathBuf>>) {
        let (ctx, revision_source, revision) = match source {
            Source::Local => (
                self.context(self.config.clone(), self.policy.clone()),
                Revision::WorkTree,
                None,
            ),
            Source::Commit {
                config,
                commit,
                revision,
            } => (
                // With --git, `-c` and `--policy` are paths inside the repository: both are
                // read from the commit's checkout.
                self.context(
                    config.clone(),
                    self.policy.as_ref().map(|p| {
                        let depth = self.config.components().count();
                        config.ancestors().nth(depth).unwrap_or(config).join(p)
                    }),
                ),
                Revision::Rev(commit.to_string()),
                Some(revision.clone()),
            ),
        };
        let (result, desired, report, planned_end) =
            attempt(&ctx, self.req, &revision_source, revision, why);
        // The plan's next end (recorded ends and overlaps included), else the declared ones: a
        // failed attempt still wakes for them, and a past one never makes the loop spin.
        let declared_end = desired.as_ref().and_then(|d| {
            crate::plan::until::next_end(d, &crate::registry::Registry::new(), ctx.now)
        });
        let failed = matches!(result, Attempt::Failed);
        let (wake, failures) = next_wake(
            self.wake.get(),
            planned_end.or(declared_end),
            failed,
            self.ending_failures.get(),
            ctx.now,
        );
        self.wake.set(wake);
        self.ending_failures.set(failures);
        if let Some(observer) = &self.listener {
            let declared = desired.as_ref().map(|d| &d.declared);
            observer.record(&ctx, report, declared);
        }
        (result, desired.map(|d| d.declared.referenced_files()))
    }

    fn source_fetched(&self, failure: Option<String>) {
        if let Some(observer) = &self.listener {
            observer.source(failure);
        }
    }

    fn wake_at(&self) -> Option<OffsetDateTime> {
        self.wake.get()
    }

    fn now(&self) -> OffsetDateTime {
        (self.req.clock)()
    }
}

/// When to attempt again for the end of access, after an attempt: at `next` (the earliest end
/// still to come), or, when an end that had come (`was` passed) could not be carried out, after
/// a backoff of 1 s doubling to 5 min (`failures` in a row so far). Returns the wake time and
/// the failures now.
fn next_wake(
    was: Option<OffsetDateTime>,
    next: Option<OffsetDateTime>,
    failed: bool,
    failures: u32,
    now: OffsetDateTime,
) -> (Option<OffsetDateTime>, u32) {
    let due = was.is_some_and(|w| w <= now);
    if !(failed && (due || failures > 0)) {
        return (next, 0);
    }
    let wait = time::Duration::seconds(1i64 << failures.min(9)).min(time::Duration::minutes(5));
    let retry = now + wait;
    (
        Some(next.map_or(retry, |w| w.min(retry))),
        failures.saturating_add(1),
    )
}

/// ` (clearance ValidUser -> Operator; Orders: Read -> Admin)`: what a change's log line adds to
/// its reason, so that the log alone says before -> after; nothing when no field changes.
fn what_changed(fields: &[FieldChange], created: bool) -> String {
    if fields.is_empty() {
        return String::new();
    }
    format!(" ({})", render::field_changes_line(fields, created))
}

/// The store's part of an attempt: drift, a line per change (with before -> after), warnings.
fn log_changes(plan: &Plan) {
    for d in &plan.drift {
        warn!("changed outside ravencert: {d}");
    }
    for c in &plan.changes {
        info!(
            "  {} {} {}{}: {}{}",
            c.action.symbol(),
            c.target.as_str(),
            c.key,
            if c.escalation { " [ESCALATION]" } else { "" },
            c.reason,
            what_changed(&c.fields, c.action == Action::Create)
        );
    }
    for w in &plan.warnings {
        warn!("{w}");
    }
}

/// An error on one log line.
fn one_line(e: &super::Error) -> String {
    e.to_string().replace('\n', " | ")
}

/// Loads certs.toml (from the disk, or from a commit's git objects), plans and (unless
/// plan-only) applies. Logs one line per event.
fn attempt(
    ctx: &Context,
    req: &WatchRequest,
    source: &Revision,
    revision: Option<String>,
    why: &str,
) -> (Attempt, Option<Desired>, Report, Option<OffsetDateTime>) {
    let opts = &req.options;
    let desired = match ctx.load(source, false) {
        Ok(d) => d,
        Err(e) => {
            let unusable = Unusable::of(&e);
            warn!("{why}: {}", unusable.reason());
            return (
                Attempt::Invalid,
                None,
                Report::unusable(unusable, revision),
                None,
            );
        }
    };
    if opts.plan_only {
        let (result, report, end) = plan_only(ctx, &desired, why, req.offline);
        return (result, Some(desired), report, end);
    }
    // Following a local file: its git provenance, if it has one.
    let revision = revision.or_else(|| revision_of(&ctx.config, &desired));
    let run = Run {
        lock_timeout: opts.lock_timeout,
        revision: revision.clone(),
        offline: req.offline,
        confirmed_cluster: None,
    };
    let failed = |e: &Error| {
        let unusable = Unusable::of_secrets(e);
        // A missing secret by its name first, as /healthz and the page say it.
        let reason = unusable
            .as_ref()
            .map_or_else(|| one_line(e), |u| u.problems.join(" | "));
        Report {
            unusable,
            ..Report::of(Outcome::Applied(Err(reason)), revision.clone())
        }
    };
    match converge(ctx, &desired, &PlanOptions::default(), run, &|_, _| Ok(())) {
        Ok(c) => {
            // Applied: the cluster now holds what the store holds.
            let report = Report {
                cluster: ClusterSeen::of(&c.cluster, true),
                ..Report::of(Outcome::Applied(Ok(())), revision.clone())
            };
            log_converged(&c, why, revision);
            (Attempt::Done, Some(desired), report, c.plan.next_access_end)
        }
        Err(Error::Plan(refused @ PlanError::Policy { .. })) => {
            let (attempt, report) = policy_refused(&refused, why, revision);
            (attempt, Some(desired), report, None)
        }
        Err(e @ (Error::AfterStore(_) | Error::ClusterApply(_))) => {
            error!("{why}: {}", one_line(&e));
            (Attempt::Failed, Some(desired), failed(&e), None)
        }
        Err(e) => {
            error!(
                "{why}: apply failed, the store is unchanged: {}",
                one_line(&e)
            );
            (Attempt::Failed, Some(desired), failed(&e), None)
        }
    }
}

/// A plan that breaks the policy in force: like an invalid certs.toml, logged and not retried
/// (nothing changes until a commit or an edit does), and `/healthz` says which rule fails.
fn policy_refused(refused: &PlanError, why: &str, revision: Option<String>) -> (Attempt, Report) {
    let problem = format!("policy: {}", refused.to_string().replace('\n', " |"));
    warn!("{why}: {problem}; nothing applied, the last good state stays");
    let unusable = Unusable {
        inputs: false,
        problems: vec![problem.clone()],
    };
    let report = Report {
        unusable: Some(unusable),
        ..Report::of(
            Outcome::Invalid(format!(
                "{problem}; nothing applied, the last good state stays"
            )),
            revision,
        )
    };
    (Attempt::Invalid, report)
}

/// One attempt's changes, store then cluster, a line each.
fn log_converged(c: &Converged, why: &str, revision: Option<String>) {
    if c.plan.is_empty() {
        info!("{why}: no changes, the store matches certs.toml");
    } else {
        info!(
            "{why}: applied {}{}",
            render::applied_counts(&c.plan),
            revision
                .map(|r| format!(" (revision {r})"))
                .unwrap_or_default()
        );
        log_changes(&c.plan);
        for (key, thumb, _) in &c.outcome.issued {
            info!("  stored {key}: {thumb}");
        }
    }
    log_cluster(&c.cluster, why, Some(&c.cluster_done));
}

/// The cluster's part of an attempt: its warnings, and each request (done) or change (planned).
fn log_cluster(view: &ClusterView, why: &str, done: Option<&[String]>) {
    let plan = match view {
        ClusterView::Absent => return,
        ClusterView::Skipped(reason) => {
            info!("{why}: cluster not contacted ({reason})");
            return;
        }
        ClusterView::Planned(p) => p,
    };
    for w in &plan.warnings {
        warn!("{w}");
    }
    if plan.is_empty() {
        info!(
            "{why}: cluster {}: no changes, its registrations match the store",
            plan.url
        );
        return;
    }
    let verb = if done.is_some() {
        "applied"
    } else {
        "plan only, would apply"
    };
    info!(
        "{why}: cluster {}: {verb} {} register, {} edit, {} unregister",
        plan.url,
        plan.count(ClusterAction::Register),
        plan.count(ClusterAction::Edit),
        plan.count(ClusterAction::Unregister)
    );
    // An edit's fields go from what the cluster holds (a Studio edit, say) to what it is set
    // back to.
    for c in &plan.changes {
        info!(
            "  {} cluster {}{}: {}{}",
            c.action.symbol(),
            describe(c),
            if c.escalation { " [ESCALATION]" } else { "" },
            c.reason,
            what_changed(&c.fields, c.action == ClusterAction::Register)
        );
    }
}

/// `--plan-only`: logs what would change.
fn plan_only(
    ctx: &Context,
    desired: &Desired,
    why: &str,
    offline: bool,
) -> (Attempt, Report, Option<OffsetDateTime>) {
    let (plan, cluster) = match plan_for(ctx, desired, &PlanOptions::default(), offline) {
        Ok(planned) => planned,
        Err(e) => {
            error!("{why}: plan failed: {}", one_line(&e));
            let outcome = Outcome::Planned(Err(one_line(&e)));
            let report = Report {
                unusable: Unusable::of_secrets(&e),
                ..Report::of(outcome, None)
            };
            return (Attempt::Failed, report, None);
        }
    };
    if let Some(refused) = plan.policy_refusal() {
        log_changes(&plan);
        let (attempt, report) = policy_refused(&refused, why, None);
        return (attempt, report, plan.next_access_end);
    }
    if plan.is_empty() && plan.drift.is_empty() {
        log_cluster(&cluster, why, None);
        info!("{why}: no changes, the store matches certs.toml");
    } else {
        info!(
            "{why}: plan only, would apply: {}",
            render::applied_counts(&plan)
        );
        log_changes(&plan);
        log_cluster(&cluster, why, None);
    }
    let report = Report {
        cluster: ClusterSeen::of(&cluster, false),
        ..Report::of(Outcome::Planned(Ok(())), None)
    };
    (Attempt::Done, report, plan.next_access_end)
}

#[cfg(test)]
mod tests {
    use super::next_wake;
    use time::macros::datetime;
    use time::Duration;

    #[test]
    fn a_failed_end_of_access_is_retried_with_backoff_not_left_to_the_interval() {
        let now = datetime!(2026-05-01 16:00:01 UTC);
        let ended = Some(datetime!(2026-05-01 16:00 UTC));
        let later = Some(datetime!(2026-05-02 0:00 UTC));
        // Carried out: the next end.
        assert_eq!(next_wake(ended, later, false, 0, now), (later, 0));
        // Failed (a lock, a cluster request): again in 1 s, then 2 s, 4 s ... at most 5 min.
        assert_eq!(
            next_wake(ended, later, true, 0, now),
            (Some(now + Duration::seconds(1)), 1)
        );
        let (w, n) = next_wake(Some(now + Duration::seconds(1)), later, true, 1, now);
        assert_eq!((w, n), (Some(now + Duration::seconds(2)), 2));
        let (w, _) = next_wake(Some(now), None, true, 30, now);
        assert_eq!(w, Some(now + Duration::minutes(5)));
        // A failure with no end due (a periodic check) changes nothing: the interval retries.
        assert_eq!(next_wake(later, later, true, 0, now), (later, 0));
        // Once carried out, the streak ends.
        assert_eq!(next_wake(Some(now), later, false, 3, now), (later, 0));
    }
}
