//! One function per command: load what it needs, call the core, render. main and the tests
//! call these; they return what to print and the exit code, and never print or prompt
//! themselves (the apply confirmation is a callback main gives).

use crate::config;
use crate::plan;

mod adopt;
mod bundle;
mod cluster;
mod context;
mod daemon;
mod error;
mod exports;
mod observe;
mod review;
mod settings;
mod show;
mod update;

pub use adopt::{adopt, AdoptError, AdoptRequest};
pub use bundle::{bundle, BundleError, BundleRequest};
pub use cluster::{ClusterApplyError, ClusterSetupError};
pub(crate) use context::Revision;
pub use context::{Context, StoreLocationError, StorePrefetch};
pub use daemon::{watch, WatchRequest};
pub use error::{Error, Result};
pub use exports::{export, ExportPathError};
pub use review::{plan, PlanFlags, PlanRequest};
pub use settings::settings;
pub use show::{status, StatusFormat};
pub use update::{apply, ApplyRequest, Confirm};

/// The result of a command: what to print and how to exit.
pub struct Output {
    /// Printed on stdout.
    pub stdout: String,
    /// Printed on stderr.
    pub stderr: String,
    /// The exit code.
    pub code: u8,
}

impl Output {
    /// Success with this text on stdout.
    pub fn ok(stdout: String) -> Output {
        Output {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
}

/// `ravencert init`: writes the commented starter, never over an existing file.
pub fn init(ctx: &Context) -> Result<Output> {
    if ctx.config.exists() {
        return Err(Error::ConfigExists(ctx.config.clone()));
    }
    let starter = crate::STARTER;
    // Whole or not at all, and never over a file (or link) that appeared since the check.
    crate::fsutil::write_atomic(
        &ctx.config,
        starter.as_bytes(),
        &crate::fsutil::AtomicWrite::NEW,
    )
    .map_err(|e| Error::WriteConfig {
        path: ctx.config.clone(),
        source: e.source,
    })?;
    Ok(Output::ok(format!(
        "Wrote {}. Review it, then run `ravencert plan`.\n",
        ctx.config.display()
    )))
}

/// `ravencert validate`: every check `plan` makes that needs no store.
pub fn validate(ctx: &Context) -> Result<Output> {
    let desired = ctx.desired_checked()?;
    // Every check of the plan that needs no store, so that validate and plan agree.
    plan::check_declared(&desired, ctx.now).map_err(|e| Error::from_plan(&desired, e))?;
    // The policy's rules that the declaration alone decides, as plan checks them.
    let policy = plan::check_declared_policy(&desired, ctx.now);
    if let Some(refused) = policy.as_ref().and_then(plan::PolicyReport::refusal) {
        return Err(Error::Plan(refused));
    }
    // The bundle passwords too, which plan reads only to compare and apply only to write.
    let (errors, password_warnings) = desired.declared.bundle_password_problems();
    if !errors.is_empty() {
        return Err(Error::Config(errors));
    }
    let mut out = format!(
        "{} is valid: {} client certificate{}, store {}.\n",
        ctx.config.display(),
        desired.declared.clients.len(),
        if desired.declared.clients.len() == 1 {
            ""
        } else {
            "s"
        },
        desired.declared.store.path.display()
    );
    if let Some(report) = &policy {
        out.push_str(&policy_summary(report));
    }
    for w in desired.declared.warnings.iter().chain(&password_warnings) {
        out.push_str(&format!("warning: {w}\n"));
    }
    Ok(Output::ok(out))
}

/// `validate`'s line on the policy: `policy.toml: 3 rules hold; 1 not evaluated (R: why)`.
fn policy_summary(report: &plan::PolicyReport) -> String {
    let holds = report
        .rules
        .iter()
        .filter(|r| r.state == plan::RuleState::Holds)
        .count();
    let unknown: Vec<String> = report
        .rules
        .iter()
        .filter_map(|r| match &r.state {
            plan::RuleState::NotEvaluated(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect();
    let mut line = format!(
        "{}: {holds} rule{} hold{}",
        report.shown,
        if holds == 1 { "" } else { "s" },
        if holds == 1 { "s" } else { "" }
    );
    if !unknown.is_empty() {
        line.push_str(&format!(
            "; {} not evaluated ({})",
            unknown.len(),
            unknown.join("; ")
        ));
    }
    line + ".\n"
}

/// `ravencert schema`: the JSON schema of certs.toml, or with `--policy` of policy.toml.
pub fn schema(policy: bool) -> Output {
    Output::ok(if policy {
        config::policy_json_schema()
    } else {
        config::json_schema()
    })
}
