//! Carries out a plan: generates what must be generated (through `pki`), writes it through the
//! store (new files first, the registry last), then finishes (bundles into place, old files
//! removed, the export written).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::config::{ClientDesired, ClientSpec, Desired, ServerSpec};

use crate::model::Origin;
use crate::model::Uploaded;
use crate::pki::{self, Issued, PrivateKey};
use crate::plan::{Action, Change, Plan, Target};
use crate::registry::{Actual, CertEntry, Registry, ServerEntry};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("{0}")]
    Input(String),
    /// The registry was committed, then writing the export failed: the store holds the new
    /// state and the next apply plans the export again.
    #[error("{}", export_failed(*.committed, .path, .reason))]
    Export {
        committed: usize,
        path: std::path::PathBuf,
        reason: String,
    },
}

fn export_failed(committed: usize, path: &std::path::Path, reason: &str) -> String {
    let store = match committed {
        0 => "the store was already up to date".to_string(),
        1 => "the store was updated (1 change committed)".to_string(),
        n => format!("the store was updated ({n} changes committed)"),
    };
    format!(
        "{store}, but writing the export to {} failed: {reason}. Fix that, then run `ravencert apply` again: the next apply retries the export.",
        path.display()
    )
}

/// Clients get a not-before a week back, as RavenDB does, for clock skew.
const SKEW_MARGIN: time::Duration = time::Duration::days(crate::model::BACKDATING.seconds / 86_400);

/// What a change turns into in the registry: the entry the apply made (or a placeholder).
enum NewCert {
    Server(Vec<ServerEntry>),
    Client(Vec<CertEntry>),
}

/// Registry entries for an uploaded certificate or collection: the primary lists its
/// secondaries, each secondary points at the primary; all share name, clearance, permissions.
pub(crate) fn upload_entries(
    client: &ClientDesired,
    certs: &[Uploaded],
    revision: Option<String>,
) -> Vec<CertEntry> {
    let primary = certs.first().map(|c| c.info.thumbprint.clone());
    certs
        .iter()
        .enumerate()
        .map(|(i, c)| CertEntry {
            key: client.key.clone(),
            name: client.name.clone(),
            thumbprint: c.info.thumbprint.clone(),
            public_key_pinning_hash: c.info.public_key_pinning_hash.clone(),
            clearance: client.clearance,
            not_before: c.info.not_before,
            not_after: c.info.not_after,
            source: Origin::Uploaded,
            key_type: c.info.key_spec,
            collection_primary: if i == 0 { None } else { primary.clone() },
            collection_secondaries: if i == 0 {
                certs[1..]
                    .iter()
                    .map(|s| s.info.thumbprint.clone())
                    .collect()
            } else {
                Vec::new()
            },
            retire_after: None,
            revision: revision.clone(),
            permissions: client.permissions.clone(),
            pfx: Default::default(),
            bundle_password: None,
            subject: Some(c.info.subject.clone()),
        })
        .collect()
}

/// Registry entries for the nodes' own certificates.
pub(crate) fn node_entries(nodes: &[Uploaded], revision: Option<String>) -> Vec<ServerEntry> {
    nodes
        .iter()
        .map(|n| ServerEntry {
            name: n
                .info
                .common_name
                .clone()
                .unwrap_or_else(|| n.info.subject.clone()),
            thumbprint: n.info.thumbprint.clone(),
            public_key_pinning_hash: n.info.public_key_pinning_hash.clone(),
            dns: Vec::new(),
            not_before: n.info.not_before,
            not_after: n.info.not_after,
            source: Origin::Uploaded,
            key_type: n.info.key_spec,
            revision: revision.clone(),
        })
        .collect()
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
    // Only this key's entries: a certificate moving between keys is deleted from the old one.
    let mine = |e: &CertEntry| change.thumbprints.contains(&e.thumbprint) && e.key == change.key;
    match (change.target, change.action) {
        (Target::Server, _) => {
            if change.action == Action::Replace || change.action == Action::Delete {
                reg.server
                    .retain(|s| !change.thumbprints.contains(&s.thumbprint));
            }
            if let Some(NewCert::Server(s)) = new {
                reg.server.extend(s);
            }
        }
        (Target::Client, Action::Update) => {
            if let Some(c) = desired.clients.get(&change.key) {
                for e in reg.certificates.iter_mut().filter(|e| mine(e)) {
                    e.name = c.name.clone();
                    e.clearance = c.clearance;
                    e.permissions = c.permissions.clone();
                    if let ClientSpec::Generate(g) = &c.source {
                        e.pfx = g.pfx;
                    }
                }
            }
        }
        (Target::Client, Action::Delete) => {
            reg.certificates.retain(|e| !mine(e));
        }
        (Target::Client, Action::Replace) => {
            let overlap = desired.clients.get(&change.key).and_then(|c| c.overlap);
            match overlap {
                Some(o) => {
                    for e in reg.certificates.iter_mut().filter(|e| mine(e)) {
                        e.retire_after = Some(now + o.as_duration());
                    }
                }
                None => reg.certificates.retain(|e| !mine(e)),
            }
            if let Some(NewCert::Client(e)) = new {
                reg.certificates.extend(e);
            }
        }
        (Target::Client, Action::Create) => {
            if let Some(NewCert::Client(e)) = new {
                reg.certificates.extend(e);
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
                desired.server.as_ref().map(|s| match &s.source {
                    ServerSpec::Generate {
                        name,
                        dns,
                        key,
                        validity,
                        ..
                    } => NewCert::Server(vec![ServerEntry {
                        name: name.clone(),
                        thumbprint: placeholder.clone(),
                        public_key_pinning_hash: placeholder.clone(),
                        dns: dns.clone(),
                        not_before: now - SKEW_MARGIN,
                        not_after: now + validity.as_duration(),
                        source: Origin::Generated,
                        key_type: Some(*key),
                        revision: None,
                    }]),
                    ServerSpec::Imported(_) => {
                        NewCert::Server(node_entries(&desired.files.nodes, None))
                    }
                })
            }
            (Target::Client, Action::Create | Action::Replace) => {
                desired.clients.get(&change.key).map(|c| match &c.source {
                    ClientSpec::Generate(g) => NewCert::Client(vec![CertEntry {
                        key: c.key.clone(),
                        name: c.name.clone(),
                        thumbprint: placeholder.clone(),
                        public_key_pinning_hash: placeholder.clone(),
                        clearance: c.clearance,
                        not_before: now - SKEW_MARGIN,
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
                    }]),
                    ClientSpec::Upload(_) => NewCert::Client(upload_entries(
                        c,
                        desired.files.uploads.get(&c.key).map_or(&[][..], |v| v),
                        None,
                    )),
                })
            }
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
    /// (client or server key, new thumbprint, not-after) of every certificate registered.
    pub issued: Vec<(String, String, OffsetDateTime)>,
}

/// Carries out `plan` on `store`. The caller holds the store's lock and has checked the plan
/// against the current store.
pub fn apply(
    desired: &Desired,
    store: &Store,
    actual: &Actual,
    plan: &Plan,
    now: OffsetDateTime,
    revision: Option<String>,
) -> Result<Outcome, ApplyError> {
    store.ensure_root()?;
    let current = &actual.registry;
    let mut reg = current.clone();
    let mut outcome = Outcome::default();
    let mut signer: Option<(Vec<u8>, PrivateKey)> = None;

    for change in plan.changes.iter().filter(|c| c.target == Target::Server) {
        let Some(server) = desired.server.as_ref() else {
            continue;
        };
        let entries = match &server.source {
            ServerSpec::Generate {
                name,
                dns,
                key,
                validity,
                ..
            } => {
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
                    source: Origin::Generated,
                    key_type: Some(*key),
                    revision: revision.clone(),
                };
                signer = Some((issued.cert_der, issued.key));
                vec![entry]
            }
            ServerSpec::Imported(_) => {
                let nodes = desired.node_keys().map_err(ApplyError::Input)?;
                for (der, key) in &nodes {
                    let thumb = store.write_cert(der)?;
                    store.write_server_key(&thumb, key)?;
                }
                let entries = node_entries(&desired.files.nodes, revision.clone());
                // The files must still hold what was planned.
                let read: Vec<String> = nodes.iter().map(|(d, _)| pki::thumbprint(d)).collect();
                let planned: Vec<String> = entries.iter().map(|e| e.thumbprint.clone()).collect();
                if read != planned {
                    return Err(ApplyError::Input(
                        "the node certificate files changed during the apply; nothing was registered — run again".into(),
                    ));
                }
                for e in &entries {
                    outcome
                        .issued
                        .push((e.name.clone(), e.thumbprint.clone(), e.not_after));
                }
                signer = nodes.into_iter().next();
                entries
            }
        };
        mutate(
            &mut reg,
            change,
            Some(NewCert::Server(entries)),
            desired,
            now,
        );
    }

    // All key generation first, in parallel; nothing is written until every key exists.
    let work: Vec<(&ClientDesired, &crate::config::GenerateSpec)> = plan
        .changes
        .iter()
        .filter(|c| {
            c.target == Target::Client && matches!(c.action, Action::Create | Action::Replace)
        })
        .filter_map(|c| desired.clients.get(&c.key))
        .filter_map(|client| match &client.source {
            ClientSpec::Generate(spec) => Some((client, spec)),
            ClientSpec::Upload(_) => None,
        })
        .collect();
    // The key of password fingerprints, made when a bundle with a password is first written.
    let password_key = if desired
        .clients
        .values()
        .any(|c| matches!(&c.source, ClientSpec::Generate(g) if g.password.is_some()))
    {
        store.password_key_or_create()?
    } else {
        Vec::new()
    };
    let mut prepared: BTreeMap<String, Prepared> = BTreeMap::new();
    if !work.is_empty() {
        if signer.is_none() {
            signer = Some(load_signer(store, &reg)?);
        }
        if let Some((server_der, server_key)) = signer.as_ref() {
            for ((client, _), result) in work.iter().zip(prepare_all(
                &work,
                server_der,
                server_key,
                now,
                &password_key,
            )) {
                prepared.insert(client.key.clone(), result?);
            }
        }
    }

    // Everything the clients' changes will write, recorded in one write before any is made.
    let uploads = plan
        .changes
        .iter()
        .filter(|c| c.target == Target::Client)
        .filter_map(|c| desired.files.uploads.get(&c.key))
        .flatten()
        .map(|u| format!("certs/{}.pem", u.info.thumbprint));
    store.intend(
        prepared
            .iter()
            .flat_map(|(key, p)| Store::client_paths(key, &p.info.thumbprint))
            .chain(uploads),
    )?;

    for change in plan.changes.iter().filter(|c| c.target == Target::Client) {
        let new = match change.action {
            Action::Create | Action::Replace => match desired.clients.get(&change.key) {
                Some(client) => match &client.source {
                    ClientSpec::Generate(spec) => {
                        let Some(p) = prepared.remove(&client.key) else {
                            continue;
                        };
                        let entry = write_issued(store, client, spec, p, revision.clone())?;
                        outcome.issued.push((
                            client.key.clone(),
                            entry.thumbprint.clone(),
                            entry.not_after,
                        ));
                        Some(NewCert::Client(vec![entry]))
                    }
                    ClientSpec::Upload(_) => {
                        let certs = desired
                            .files
                            .uploads
                            .get(&client.key)
                            .map_or(&[][..], |v| v);
                        for c in certs {
                            store.write_cert(&c.der)?;
                        }
                        let entries = upload_entries(client, certs, revision.clone());
                        for e in &entries {
                            outcome.issued.push((
                                client.key.clone(),
                                e.thumbprint.clone(),
                                e.not_after,
                            ));
                        }
                        Some(NewCert::Client(entries))
                    }
                },
                None => None,
            },
            _ => None,
        };
        mutate(&mut reg, change, new, desired, now);
        if change.action == Action::Update {
            for e in reg
                .certificates
                .iter_mut()
                .filter(|e| change.thumbprints.contains(&e.thumbprint) && e.key == change.key)
            {
                e.revision = revision.clone();
            }
            rebundle_if_due(desired, store, current, &mut reg, change, &password_key)?;
        }
    }

    // Every apply with a known revision records it, also one that changes nothing: a fleet
    // shows it has caught up with a commit.
    if !plan.changes.is_empty() || revision.is_some() {
        reg.applied_revision = revision;
    }
    reg.normalize();
    // Never commit a registry the next load would refuse.
    let text = reg.to_text();
    Registry::parse(&store.registry_path(), &text).map_err(|e| {
        ApplyError::Input(format!(
            "the new registry would be inconsistent ({e}); nothing was registered"
        ))
    })?;
    restore_lost_files(desired, store, &mut reg)?;
    if reg != *current || !actual.sealed || !store.registry_path().exists() {
        store.write_registry(&reg)?;
    }
    store.finish(&reg)?;

    let exported = if plan.changes.iter().any(|c| c.action == Action::Export) {
        export(desired, store, &reg).map_err(|e| ApplyError::Export {
            committed: plan
                .changes
                .iter()
                .filter(|c| c.action != Action::Export)
                .count(),
            path: desired
                .server
                .as_ref()
                .and_then(|s| s.export.clone())
                .unwrap_or_default(),
            reason: e.to_string(),
        })
    } else {
        Ok(None)
    };
    store.write_cache(&reg)?;
    exported?;
    outcome.registry = reg;
    Ok(outcome)
}

/// An update of a generated client whose bundle's password or profile is not the declared one
/// packages the bundle again (the planner gave the reason; this is the same test).
fn rebundle_if_due(
    desired: &Desired,
    store: &Store,
    current: &Registry,
    reg: &mut Registry,
    change: &Change,
    password_key: &[u8],
) -> Result<(), ApplyError> {
    let Some(client) = desired.clients.get(&change.key) else {
        return Ok(());
    };
    let ClientSpec::Generate(spec) = &client.source else {
        return Ok(());
    };
    let Some(before) = current
        .active(&change.key)
        .filter(|e| e.source == Origin::Generated)
    else {
        return Ok(());
    };
    let password = read_password(client, spec)?;
    let fingerprint = if password.is_some() && password_key.is_empty() {
        None
    } else {
        Some(pki::password_fingerprint(
            password_key,
            &client.key,
            password.as_ref().map(|p| p.expose()),
        )?)
    };
    if crate::plan::bundle_reasons(before, spec, fingerprint.as_deref()).is_empty() {
        return Ok(());
    }
    let server_der = match reg.server.first() {
        Some(s) => store.read_cert_der(&s.thumbprint)?,
        None => return Ok(()),
    };
    let thumbprint = before.thumbprint.clone();
    if let Some(entry) = reg
        .certificates
        .iter_mut()
        .find(|e| e.thumbprint == thumbprint && e.key == change.key)
    {
        let exposed = password.as_ref().map(|p| p.expose());
        rebundle(
            store,
            client,
            spec,
            entry,
            &server_der,
            exposed,
            fingerprint,
        )?;
    }
    Ok(())
}

/// Every certificate the new registry names must have its public file: one removed outside
/// ravencert is written again from the issued bundle or from the file it was uploaded from.
/// A retiring certificate whose file is gone (the plan replaced it because of that) is not
/// kept for the overlap.
fn restore_lost_files(
    desired: &Desired,
    store: &Store,
    reg: &mut Registry,
) -> Result<(), ApplyError> {
    let mut gone = Vec::new();
    for e in &reg.certificates {
        if store.cert_file_ok(&e.thumbprint) {
            continue;
        }
        let from_files = desired
            .files
            .uploads
            .values()
            .flatten()
            .chain(desired.files.nodes.iter())
            .find(|u| u.info.thumbprint == e.thumbprint)
            .map(|u| u.der.clone());
        let found = store.bundle_cert(&e.key, &e.thumbprint).or(from_files);
        if found.is_none() && e.retire_after.is_some() {
            gone.push(e.thumbprint.clone());
            continue;
        }
        let der = found
            .ok_or_else(|| {
                ApplyError::Input(format!(
                    "the certificate file of client '{}' ({}) is missing and nothing holds a copy; restore the store from a backup",
                    e.key, e.thumbprint
                ))
            })?;
        store.write_cert(&der)?;
    }
    reg.certificates.retain(|e| !gone.contains(&e.thumbprint));
    Ok(())
}

/// Issues one generated client: key, certificate, bundle (staged until the registry commits).
/// A generated client's key, certificate and bundle, made before anything is written.
struct Prepared {
    cert_der: Vec<u8>,
    key: PrivateKey,
    bundle: pki::Bundle,
    info: crate::model::CertInfo,
    bundle_password: String,
}

/// The crypto of one generated client: key, certificate signed by the server, bundle.
fn prepare(
    client: &ClientDesired,
    spec: &crate::config::GenerateSpec,
    server_der: &[u8],
    server_key: &PrivateKey,
    now: OffsetDateTime,
    password_key: &[u8],
) -> Result<Prepared, ApplyError> {
    let password = read_password(client, spec)?;
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
    let info = match &issued.info {
        Some(i) => i.clone(),
        None => pki::inspect(&issued.cert_der)?,
    };
    Ok(Prepared {
        bundle_password: pki::password_fingerprint(
            password_key,
            &client.key,
            password.as_ref().map(|p| p.expose()),
        )?,
        cert_der: issued.cert_der,
        key: issued.key,
        bundle,
        info,
    })
}

fn read_password(
    client: &ClientDesired,
    spec: &crate::config::GenerateSpec,
) -> Result<Option<crate::config::Secret>, ApplyError> {
    spec.password
        .as_ref()
        .map(|r| {
            r.read()
                .map_err(|e| ApplyError::Input(format!("clients.{}: {e}", client.key)))
        })
        .transpose()
}

/// Packages a generated client's bundle again around the certificate it already has (same
/// thumbprint), with the declared password and .pfx profile. Its private key comes from the
/// store's kept copy, or, in a store from before keys were kept, from the bundle's `.key`
/// opened with the declared password (`exposed`, whose `fingerprint` the registry records).
fn rebundle(
    store: &Store,
    client: &ClientDesired,
    spec: &crate::config::GenerateSpec,
    entry: &mut CertEntry,
    server_der: &[u8],
    exposed: Option<&str>,
    fingerprint: Option<String>,
) -> Result<(), ApplyError> {
    let key = match store.read_client_key(&entry.thumbprint) {
        Some(k) => k,
        None => {
            let pem = store.read_bundle_key_pem(&client.key).unwrap_or_default();
            let opened = match exposed {
                Some(p) => PrivateKey::from_pem_with(&pem, p),
                None => PrivateKey::from_pem(&pem),
            };
            let key = opened.map_err(|_| {
                ApplyError::Input(format!(
                    "clients.{k}: the issued key cannot be opened to package its bundle again (it was protected by the previous password, and this store was written before ravencert kept client keys); run `ravencert apply --replace {k}` to issue a new certificate (nothing was changed)",
                    k = client.key
                ))
            })?;
            store.write_client_key(&entry.thumbprint, &key)?;
            key
        }
    };
    let issued = Issued {
        cert_der: store.read_cert_der(&entry.thumbprint)?,
        key,
        info: None,
    };
    let bundle = pki::client_bundle(&issued, server_der, &client.name, exposed, spec.pfx)?;
    store.stage_bundle(&client.key, &bundle)?;
    entry.pfx = spec.pfx;
    entry.bundle_password = fingerprint;
    Ok(())
}

/// How many certificates are made at once: every core this process may use
/// (`taskset`/cgroup limits included), or RAVENCERT_JOBS.
pub fn jobs() -> usize {
    std::env::var("RAVENCERT_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Key generation, signing and PKCS#12 encryption for independent clients on a bounded pool
/// of threads (RSA-4096 costs about a second per key per core). Results keep plan order; the
/// store's writes happen afterwards, in order, on one thread.
fn prepare_all(
    work: &[(&ClientDesired, &crate::config::GenerateSpec)],
    server_der: &[u8],
    server_key: &PrivateKey,
    now: OffsetDateTime,
    password_key: &[u8],
) -> Vec<Result<Prepared, ApplyError>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let progress = crate::progress::bar(work.len() as u64, "issuing certificates");
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Prepared, ApplyError>>>> =
        work.iter().map(|_| Mutex::new(None)).collect();
    let workers = jobs().min(work.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((client, spec)) = work.get(i) else {
                    break;
                };
                let r = prepare(client, spec, server_der, server_key, now, password_key);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
                progress.inc(1);
            });
        }
    });
    progress.finish_and_clear();
    results
        .into_iter()
        .map(|m| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(ApplyError::Input(
                    "a certificate could not be issued".into(),
                ))
            })
        })
        .collect()
}

/// Writes a prepared client (certificate, staged bundle) and returns its registry entry.
fn write_issued(
    store: &Store,
    client: &ClientDesired,
    spec: &crate::config::GenerateSpec,
    p: Prepared,
    revision: Option<String>,
) -> Result<CertEntry, ApplyError> {
    let thumb = store.write_cert(&p.cert_der)?;
    store.write_client_key(&thumb, &p.key)?;
    store.stage_bundle(&client.key, &p.bundle)?;
    Ok(CertEntry {
        key: client.key.clone(),
        name: client.name.clone(),
        thumbprint: thumb,
        public_key_pinning_hash: p.info.public_key_pinning_hash,
        clearance: client.clearance,
        not_before: p.info.not_before,
        not_after: p.info.not_after,
        source: Origin::Generated,
        key_type: Some(spec.key),
        collection_primary: None,
        collection_secondaries: vec![],
        retire_after: None,
        revision,
        permissions: client.permissions.clone(),
        pfx: spec.pfx,
        bundle_password: Some(p.bundle_password),
        subject: None,
    })
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
