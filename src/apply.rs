//! Carries out a plan: generates what must be generated (through `pki`), writes it through the
//! store (new files first, the registry last), then finishes (bundles into place, old files
//! removed, the export written).

use time::OffsetDateTime;

use crate::config::{ClientSource, Desired, ServerSource};
use crate::model::{KeySpec, Source};
use crate::pki::{self, Issued, PrivateKey};
use crate::plan::{Action, Change, Plan, Target};
use crate::store::{self, CertEntry, Registry, ServerEntry, Store};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("{0}")]
    Input(String),
}

/// Clients get a not-before a week back, as RavenDB does, for clock skew.
const SKEW_MARGIN: time::Duration = time::Duration::days(7);

/// What a change turns into in the registry: the entry the apply made (or a placeholder).
enum NewCert {
    Server(ServerEntry),
    Client(CertEntry),
}

/// Applies the registry side of one change. Shared by the apply and the `--diff` projection,
/// so that what the diff shows is what the apply writes.
fn mutate(
    reg: &mut Registry,
    change: &Change,
    new: Option<NewCert>,
    desired: &Desired,
    now: OffsetDateTime,
) {
    match (change.target, change.action) {
        (Target::Server, _) => {
            if change.action == Action::Replace || change.action == Action::Delete {
                reg.server
                    .retain(|s| !change.thumbprints.contains(&s.thumbprint));
            }
            if let Some(NewCert::Server(s)) = new {
                reg.server.push(s);
            }
        }
        (Target::Client, Action::Update) => {
            if let Some(c) = desired.clients.get(&change.key) {
                for e in reg
                    .certificates
                    .iter_mut()
                    .filter(|e| change.thumbprints.contains(&e.thumbprint))
                {
                    e.name = c.name.clone();
                    e.clearance = c.clearance;
                    e.permissions = c.permissions.clone();
                }
            }
        }
        (Target::Client, Action::Delete) => {
            reg.certificates
                .retain(|e| !change.thumbprints.contains(&e.thumbprint));
        }
        (Target::Client, Action::Replace) => {
            let overlap = desired
                .clients
                .get(&change.key)
                .and_then(|c| match &c.source {
                    ClientSource::Generate(g) if g.overlap.seconds > 0 => Some(g.overlap),
                    _ => None,
                });
            match overlap {
                Some(o) => {
                    for e in reg
                        .certificates
                        .iter_mut()
                        .filter(|e| change.thumbprints.contains(&e.thumbprint))
                    {
                        e.retire_after = Some(now + o.as_duration());
                    }
                }
                None => reg
                    .certificates
                    .retain(|e| !change.thumbprints.contains(&e.thumbprint)),
            }
            if let Some(NewCert::Client(e)) = new {
                reg.certificates.push(e);
            }
        }
        (Target::Client, Action::Create) => {
            if let Some(NewCert::Client(e)) = new {
                reg.certificates.push(e);
            }
        }
        _ => {}
    }
}

/// The registry as it will be after the plan, with placeholders for what only the apply knows.
pub fn project(reg: &Registry, plan: &Plan, desired: &Desired, now: OffsetDateTime) -> Registry {
    let mut out = reg.clone();
    let placeholder = "(known after apply)".to_string();
    for change in &plan.changes {
        let new = match (change.target, change.action) {
            (Target::Server, Action::Create | Action::Replace) => {
                desired.server.as_ref().and_then(|s| match &s.source {
                    ServerSource::Generate {
                        name,
                        dns,
                        key,
                        validity,
                        ..
                    } => Some(NewCert::Server(ServerEntry {
                        name: name.clone(),
                        thumbprint: placeholder.clone(),
                        public_key_pinning_hash: placeholder.clone(),
                        dns: dns.clone(),
                        not_before: now - SKEW_MARGIN,
                        not_after: now + validity.as_duration(),
                        source: Source::Generated,
                        key_type: Some(*key),
                        revision: reg.applied_revision.clone(),
                    })),
                    ServerSource::Imported(_) => None,
                })
            }
            (Target::Client, Action::Create | Action::Replace) => desired
                .clients
                .get(&change.key)
                .and_then(|c| match &c.source {
                    ClientSource::Generate(g) => Some(NewCert::Client(CertEntry {
                        key: c.key.clone(),
                        name: c.name.clone(),
                        thumbprint: placeholder.clone(),
                        public_key_pinning_hash: placeholder.clone(),
                        clearance: c.clearance,
                        not_before: now - SKEW_MARGIN,
                        not_after: now + g.validity.as_duration(),
                        source: Source::Generated,
                        key_type: Some(g.key),
                        collection_primary: None,
                        collection_secondaries: vec![],
                        retire_after: None,
                        revision: None,
                        permissions: c.permissions.clone(),
                    })),
                    ClientSource::Upload(_) => None,
                }),
            _ => None,
        };
        mutate(&mut out, change, new, desired, now);
    }
    out
}

/// What an apply did, for the report.
#[derive(Debug, Default)]
pub struct Outcome {
    pub registry: Registry,
    /// (client or server key, new thumbprint) of every certificate the apply issued.
    pub issued: Vec<(String, String, OffsetDateTime)>,
}

/// Carries out `plan` on `store`. The caller holds the store's lock and has checked the plan
/// against the current store.
pub fn apply(
    desired: &Desired,
    store: &Store,
    current: &Registry,
    plan: &Plan,
    now: OffsetDateTime,
    revision: Option<String>,
) -> Result<Outcome, ApplyError> {
    store.ensure_root()?;
    let mut reg = current.clone();
    let mut outcome = Outcome::default();
    let mut signer: Option<(Vec<u8>, PrivateKey)> = None;

    for change in plan.changes.iter().filter(|c| c.target == Target::Server) {
        let Some(ServerSource::Generate {
            name,
            dns,
            key,
            validity,
            ..
        }) = desired.server.as_ref().map(|s| &s.source)
        else {
            continue;
        };
        let issued = pki::generate_server(
            name,
            dns,
            *key,
            now - SKEW_MARGIN,
            now + validity.as_duration(),
        )?;
        let info = pki::inspect(&issued.cert_der)?;
        let thumb = store.write_cert(&issued.cert_der)?;
        store.write_server_key(&thumb, &issued.key)?;
        outcome
            .issued
            .push((name.clone(), thumb.clone(), info.not_after));
        let entry = ServerEntry {
            name: name.clone(),
            thumbprint: thumb,
            public_key_pinning_hash: info.public_key_pinning_hash,
            dns: dns.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
            source: Source::Generated,
            key_type: Some(*key),
            revision: revision.clone(),
        };
        mutate(&mut reg, change, Some(NewCert::Server(entry)), desired, now);
        signer = Some((issued.cert_der, issued.key));
    }

    for change in plan.changes.iter().filter(|c| c.target == Target::Client) {
        let new = match change.action {
            Action::Create | Action::Replace => {
                let Some(client) = desired.clients.get(&change.key) else {
                    continue;
                };
                let ClientSource::Generate(spec) = &client.source else {
                    continue;
                };
                if signer.is_none() {
                    signer = Some(load_signer(store, &reg)?);
                }
                let Some((server_der, server_key)) = signer.as_ref() else {
                    continue;
                };
                let password =
                    match &spec.password {
                        Some(r) => Some(r.read().map_err(|e| {
                            ApplyError::Input(format!("clients.{}: {e}", client.key))
                        })?),
                        None => None,
                    };
                let issued: Issued = pki::issue_client(
                    server_der,
                    server_key,
                    &client.name,
                    spec.key,
                    now - SKEW_MARGIN,
                    now + spec.validity.as_duration(),
                )?;
                let bundle = pki::client_bundle(
                    &issued,
                    server_der,
                    &client.name,
                    password.as_ref().map(|p| p.expose()),
                    spec.pfx,
                )?;
                let info = pki::inspect(&issued.cert_der)?;
                let thumb = store.write_cert(&issued.cert_der)?;
                store.stage_bundle(&client.key, &bundle)?;
                outcome
                    .issued
                    .push((client.key.clone(), thumb.clone(), info.not_after));
                Some(NewCert::Client(CertEntry {
                    key: client.key.clone(),
                    name: client.name.clone(),
                    thumbprint: thumb,
                    public_key_pinning_hash: info.public_key_pinning_hash,
                    clearance: client.clearance,
                    not_before: info.not_before,
                    not_after: info.not_after,
                    source: Source::Generated,
                    key_type: Some(spec.key),
                    collection_primary: None,
                    collection_secondaries: vec![],
                    retire_after: None,
                    revision: revision.clone(),
                    permissions: client.permissions.clone(),
                }))
            }
            _ => None,
        };
        mutate(&mut reg, change, new, desired, now);
        if change.action == Action::Update {
            for e in reg
                .certificates
                .iter_mut()
                .filter(|e| change.thumbprints.contains(&e.thumbprint))
            {
                e.revision = revision.clone();
            }
        }
    }

    if !plan.changes.is_empty() {
        reg.applied_revision = revision;
    }
    reg.normalize();
    if reg != *current || !store.registry_path().exists() {
        store.write_registry(&reg)?;
    }
    store.finish(&reg)?;

    if plan.changes.iter().any(|c| c.action == Action::Export) {
        export(desired, store, &reg)?;
    }
    outcome.registry = reg;
    Ok(outcome)
}

fn load_signer(store: &Store, reg: &Registry) -> Result<(Vec<u8>, PrivateKey), ApplyError> {
    let server = reg.server.first().ok_or_else(|| {
        ApplyError::Input(
            "no server certificate is registered, so no client certificate can be generated; declare [server] in certs.toml".into(),
        )
    })?;
    Ok((
        store.read_cert_der(&server.thumbprint)?,
        store.read_server_key(&server.thumbprint)?,
    ))
}

/// Writes the export file: every server certificate, public parts only, no password.
pub fn export(
    desired: &Desired,
    store: &Store,
    reg: &Registry,
) -> Result<Option<std::path::PathBuf>, ApplyError> {
    let Some(path) = desired.server.as_ref().and_then(|s| s.export.clone()) else {
        return Ok(None);
    };
    write_export_to(store, reg, &path)?;
    Ok(Some(path))
}

pub fn write_export_to(
    store: &Store,
    reg: &Registry,
    path: &std::path::Path,
) -> Result<(), ApplyError> {
    if reg.server.is_empty() {
        return Err(ApplyError::Input(
            "no server certificate is registered yet; run `ravencert apply` first".into(),
        ));
    }
    let ders = reg
        .server
        .iter()
        .map(|s| store.read_cert_der(&s.thumbprint))
        .collect::<Result<Vec<_>, _>>()?;
    let pfx = pki::export_pfx(&ders)?;
    store::write_export(path, &pfx)?;
    Ok(())
}

/// Unused key types are still valid values for rendering.
pub fn key_label(k: Option<KeySpec>) -> String {
    k.map(|k| k.to_string()).unwrap_or_else(|| "unknown".into())
}
