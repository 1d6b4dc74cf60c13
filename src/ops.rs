//! One function per command: load what it needs, call the core, render. main and the tests
//! call these; they return what to print and the exit code, and never print or prompt
//! themselves (the apply confirmation is a callback main gives).

use std::io::Write;

use time::OffsetDateTime;

use crate::apply;
use crate::config::{self, ClientSpec, Desired};
use crate::plan;
use crate::registry::Actual;

mod context;
mod daemon;
mod error;
mod exports;
mod review;
mod show;
mod update;

pub use context::{Context, Revision, StoreLocationError};
pub use daemon::{watch, WatchRequest};
pub use error::{Error, Result};
pub use exports::{export, ExportPathError};
pub use review::{plan, PlanRequest};
pub use show::status;
pub use update::{apply, converge, plan_for, revision_of, ApplyRequest, Confirm};

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
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&ctx.config)
        .and_then(|mut f| f.write_all(starter.as_bytes()))
        .map_err(|source| Error::WriteConfig {
            path: ctx.config.clone(),
            source,
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
    let mut out = format!(
        "{} is valid: {} client certificate{}, store {}.\n",
        ctx.config.display(),
        desired.clients.len(),
        if desired.clients.len() == 1 { "" } else { "s" },
        desired.store.path.display()
    );
    for w in &desired.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    Ok(Output::ok(out))
}

/// `ravencert schema`: the JSON schema of certs.toml.
pub fn schema() -> Output {
    Output::ok(config::json_schema())
}

/// The store as it would be had `base` been applied: for `plan --base`, which needs no store.
fn assumed_store(base: &Desired, now: OffsetDateTime) -> Actual {
    use crate::model::Origin;
    use crate::registry::{CertEntry, Registry, ServerEntry};
    // Thumbprints and dates of a store nobody reads here are not known: placeholders that are
    // never shown (the plan gives null, the diff "(known after apply)"). The dates follow the
    // declared validity so that no re-issue is planned from them.
    let issued = now - time::Duration::seconds(crate::model::BACKDATING.seconds);
    let assumed = "(as registered)".to_string();
    let mut reg = Registry::new();
    if let Some(server) = &base.server {
        match &server.source {
            config::ServerSpec::Generate {
                name,
                dns,
                key,
                validity,
                ..
            } => reg.server.push(ServerEntry {
                name: name.clone(),
                thumbprint: assumed.clone(),
                public_key_pinning_hash: assumed.clone(),
                dns: dns.clone(),
                not_before: issued,
                not_after: now + validity.as_duration(),
                source: Origin::Generated,
                key_type: Some(*key),
                revision: None,
            }),
            config::ServerSpec::Imported(_) => {
                reg.server = apply::node_entries(&base.files.nodes, None)
            }
        }
    }
    for c in base.clients.values() {
        match &c.source {
            ClientSpec::Generate(g) => reg.certificates.push(CertEntry {
                key: c.key.clone(),
                name: c.name.clone(),
                thumbprint: format!("{assumed} {}", c.key),
                public_key_pinning_hash: assumed.clone(),
                clearance: c.clearance,
                not_before: issued,
                not_after: now + g.validity.as_duration(),
                source: Origin::Generated,
                key_type: Some(g.key),
                collection_primary: None,
                collection_secondaries: vec![],
                retire_after: None,
                revision: None,
                permissions: c.permissions.clone(),
                pfx: g.pfx,
                bundle_password: None,
                subject: None,
            }),
            ClientSpec::Upload(_) => reg.certificates.extend(apply::upload_entries(
                c,
                base.files.uploads.get(&c.key).map_or(&[][..], |v| v),
                None,
            )),
        }
    }
    let mut export: Vec<String> = reg.server.iter().map(|s| s.thumbprint.clone()).collect();
    export.sort();
    Actual {
        bundles_ok: base
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.source, ClientSpec::Generate(_)))
            .map(|(k, _)| k.clone())
            .collect(),
        export_thumbprints: Some(export),
        registry: reg,
        exists: true,
        sealed: true,
        ..Actual::default()
    }
}
