//! `ravencert status`: the store as RavenDB's Certificates view shows it, even when certs.toml
//! is invalid (a watch daemon refusing a bad commit is when the store matters most).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::cluster::Target;
use super::error::{Error, Result, Unusable};
use super::{Context, Output};
use crate::config::{ClientSpec, Declared, ServerSpec};
use crate::model::RenewBefore;
use crate::registry::Actual;
use crate::render::{self, ClusterCertificateState, ClusterStatus, StatusView};
use crate::store::Store;

/// What `status` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// The Studio-like tables.
    Text,
    /// `--json`: the document docs/contract.md §5 describes.
    Json,
    /// `--html`: the status page (docs/contract.md §9), written once.
    Html,
}

/// `ravencert status [--json | --html] [--offline]`.
pub fn status(ctx: &Context, format: StatusFormat, offline: bool) -> Result<Output> {
    let Loaded {
        desired,
        root,
        actual,
        mut warnings,
        unusable,
    } = load(ctx)?;
    // The store is shown whatever the cluster says: a cluster that cannot be read is a warning.
    let cluster = match (&desired, offline) {
        (Some(d), false) if actual.exists => cluster_status(ctx, d, &root, &actual, &mut warnings)
            .unwrap_or_else(|e| {
                warnings.push(format!(
                    "the cluster was not checked: {e} (status --offline reads the store alone)"
                ));
                None
            }),
        _ => None,
    };
    let stderr: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
    if format == StatusFormat::Json {
        return Ok(Output {
            stdout: render::status_json(&actual.registry, &warnings, cluster.as_ref())
                .map_err(Error::Encode)?,
            stderr,
            code: 0,
        });
    }
    if format == StatusFormat::Text && !actual.exists {
        return Ok(Output::ok(render::status_empty(&root)));
    }
    let client_renew = desired.as_ref().map(client_renewals).unwrap_or_default();
    let view = StatusView {
        registry: &actual.registry,
        now: ctx.now,
        server_renew: desired.as_ref().and_then(server_renewal),
        client_renew: &client_renew,
        cluster: cluster.as_ref(),
    };
    let stdout = match format {
        StatusFormat::Html => {
            // The banner: certs.toml invalid, or a secret or file it names not there.
            let problems = match (&unusable, &desired) {
                (Some(u), _) => u.problems.clone(),
                (None, Some(d)) => crate::config::missing_references(d)
                    .iter()
                    .map(crate::config::ConfigError::brief)
                    .collect(),
                (None, None) => Vec::new(),
            };
            render::status_html(&view, None, &problems)
        }
        _ => render::status_text(&view),
    };
    Ok(Output {
        stdout,
        stderr,
        code: 0,
    })
}

/// How the cluster holds the store's certificates (one list request) and when each was last
/// used (the node's statistics, where it says), when certs.toml has a `[cluster]`; what could
/// not be read goes to `warnings`.
fn cluster_status(
    ctx: &Context,
    desired: &Declared,
    root: &std::path::Path,
    actual: &Actual,
    warnings: &mut Vec<String>,
) -> Result<Option<ClusterStatus>> {
    let Some(settings) = &desired.cluster else {
        return Ok(None);
    };
    let store = Store::new(root);
    let target = Target::connect(settings, &store, &actual.registry)?;
    let mut listing = target.read()?;
    target.fill_last_used(&mut listing);
    warnings.extend(target.notes());
    let of_store = crate::plan::registration_states(&actual.registry, &listing)
        .into_iter()
        .map(|(thumbprint, state)| ClusterCertificateState::of_store(thumbprint, state))
        .collect();
    let held = actual
        .registry
        .certificates
        .iter()
        .filter_map(|e| e.thumbprint.known().cloned())
        .collect();
    let extra = crate::plan::extra_registrations(
        &held,
        &listing,
        target.admin_thumbprint(),
        &target.keep(),
    )
    .iter()
    .map(ClusterCertificateState::from)
    .collect();
    Ok(Some(
        ClusterStatus::new(target.url(), render::rfc3339(ctx.now), of_store, extra)
            .with_last_used(&listing.last_used),
    ))
}

/// What `status` reads: certs.toml when it is valid, the store.
pub(super) struct Loaded {
    /// certs.toml, when it is valid.
    pub(super) desired: Option<Declared>,
    /// The store's folder.
    pub(super) root: PathBuf,
    /// The store.
    pub(super) actual: Actual,
    /// The warning shown when certs.toml is invalid but the store can be shown anyway.
    pub(super) warnings: Vec<String>,
    /// Why certs.toml is invalid, when it is.
    pub(super) unusable: Option<Unusable>,
}

/// certs.toml if it is valid, and the store (from `--store`, certs.toml's `[store]`, or where
/// an invalid certs.toml still names it).
pub(super) fn load(ctx: &Context) -> Result<Loaded> {
    // The store path comes from certs.toml unless --store names it.
    let (desired, config_error) = match ctx.desired() {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    let root = match (&ctx.store_override, &desired) {
        (Some(s), _) => s.clone(),
        (None, Some(d)) => d.store.path.clone(),
        (None, None) => ctx.fallback_store(),
    };
    let store = Store::new(&root);
    let Some(e) = config_error else {
        let actual = store.load(None)?;
        return Ok(Loaded {
            desired,
            root,
            actual,
            warnings: Vec::new(),
            unusable: None,
        });
    };
    let actual = match store.load(None) {
        Ok(actual) => actual,
        Err(source) => {
            return Err(Error::StatusUnreadable {
                config: Box::new(e),
                store: root,
                source,
            })
        }
    };
    if !actual.exists {
        return Err(e);
    }
    let message = e.to_string();
    let first = message.lines().next().unwrap_or_default();
    let warning = format!(
        "{} is invalid ({first}); this is the store as last applied, without renewal marks",
        ctx.config.display()
    );
    Ok(Loaded {
        desired: None,
        root,
        actual,
        warnings: vec![warning],
        unusable: Some(Unusable::of(&e)),
    })
}

/// The renew_before of each declared client.
pub(super) fn client_renewals(desired: &Declared) -> BTreeMap<String, RenewBefore> {
    desired
        .clients
        .iter()
        .map(|(key, c)| {
            let renew = match &c.source {
                ClientSpec::Generate(g) => g.renew_before,
                ClientSpec::Upload(_) => desired.renew_before,
            };
            (key.clone(), renew)
        })
        .collect()
}

/// The generated server certificate's renew_before (an imported one is renewed elsewhere).
pub(super) fn server_renewal(desired: &Declared) -> Option<RenewBefore> {
    match desired.server.as_ref().map(|s| &s.source) {
        Some(ServerSpec::Generate { renew_before, .. }) => Some(*renew_before),
        _ => None,
    }
}
