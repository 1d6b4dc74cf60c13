//! Carries out a plan: generates what must be generated (through `pki`), writes it through the
//! store (new files first, the registry last), then finishes (bundles into place, old files
//! removed, the export written). What each change does to the registry is the planner's
//! ([`plan::mutate`]); this module only makes the certificates and writes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::config::{ClientDesired, ClientSpec, Desired, GenerateSpec, ServerSpec};
use crate::model::{per_certificate, EntryThumbprint, Origin, Thumbprint, BACKDATING};
use crate::pki::{self, Issued, PrivateKey};
use crate::plan::{self, Action, Change, DeclaredPassword, NewCert, Plan, Target};
use crate::registry::{Actual, CertEntry, Registry, RegistryError, ServerEntry};
use crate::store::{self, Store};

mod issue;

/// Why an apply stopped. Until the registry is written nothing is registered; see
/// [`ApplyError::Export`] for the one failure after it.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The plan breaks the policy in force: never carried out (a last guard; the commands
    /// refuse it before).
    #[error(transparent)]
    Refused(Box<crate::plan::PlanError>),
    /// Making a key, certificate or bundle failed.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The nodes' certificate files (`[server].certificates`) cannot be read with their keys.
    #[error("{0}")]
    NodeFiles(String),
    /// The nodes' certificate files hold other certificates than those planned.
    #[error(
        "the node certificate files changed during the apply; nothing was registered — run again"
    )]
    NodeFilesChanged,
    /// A generated client's declared password cannot be read.
    #[error("clients.{key}: {source}")]
    Password {
        /// The client's key in certs.toml.
        key: String,
        /// Why the password cannot be read.
        source: crate::inputs::SecretError,
    },
    /// The registry the apply built would not load again.
    #[error("the new registry would be inconsistent ({0}); nothing was registered")]
    Inconsistent(#[source] RegistryError),
    /// A registered certificate's public file is gone, with no copy to restore it from.
    #[error("the certificate file of client '{key}' ({thumbprint}) is missing and nothing holds a copy; restore the store from a backup")]
    CertificateLost {
        /// The client's key.
        key: String,
        /// The registered certificate whose file is gone.
        thumbprint: String,
    },
    /// A bundle to package again whose key only the previous password opens.
    #[error("clients.{key}: the issued key cannot be opened to package its bundle again (it was protected by the previous password, and this store was written before ravencert kept client keys); run `ravencert apply --replace {key}` to issue a new certificate (nothing was changed)")]
    BundleKeyLocked {
        /// The client's key.
        key: String,
    },
    /// Clients to generate, but no server certificate to sign them.
    #[error("no server certificate with its private key is registered, so no client certificate can be generated; declare [server] in certs.toml (generate = true, or the node .pfx with its private key)")]
    NoSigner,
    /// An export asked for before any server certificate is registered.
    #[error("no server certificate is registered yet; run `ravencert apply` first")]
    NothingToExport,
    /// The registry was committed, then writing the export failed: the store holds the new
    /// state and the next apply plans the export again.
    #[error("{}", export_failed(*.committed, .path, .reason))]
    Export {
        /// How many changes the committed registry holds.
        committed: usize,
        /// The export file that could not be written.
        path: PathBuf,
        /// Why it could not be written.
        #[source]
        reason: Box<ApplyError>,
    },
    /// The registry was committed, then writing the `[server] install` file failed: the next
    /// apply plans it again.
    #[error("{}", install_failed(*.committed, .path, .reason))]
    Install {
        /// How many changes the committed registry holds.
        committed: usize,
        /// The install file that could not be written.
        path: PathBuf,
        /// Why it could not be written.
        #[source]
        reason: Box<InstallError>,
    },
}

/// Why the `[server] install` file could not be made (the store part is committed by then).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Its declared password cannot be read.
    #[error("server.install: {0}")]
    Password(#[source] crate::inputs::SecretError),
    /// The first server certificate was imported without its private key.
    #[error("server.install: the server certificate {0} was imported without its private key; import the node .pfx with its private key in [server] certificates, or remove `install`")]
    NoKey(String),
    /// Reading the server certificate and key, or writing the file, failed.
    #[error(transparent)]
    Write(#[from] ApplyError),
}

/// What the store part of an apply did, as the message of a later step that failed says first.
fn store_committed(committed: usize) -> String {
    match committed {
        0 => "the store was already up to date".to_string(),
        1 => "the store was updated (1 change committed)".to_string(),
        n => format!("the store was updated ({n} changes committed)"),
    }
}

fn install_failed(committed: usize, path: &Path, reason: &InstallError) -> String {
    let store = store_committed(committed);
    format!(
        "{store}, but writing the server certificate for the node to {} ([server] install) failed: {reason}. Fix that, then run `ravencert apply` again: the next apply retries it.",
        path.display()
    )
}

fn export_failed(committed: usize, path: &Path, reason: &ApplyError) -> String {
    let store = store_committed(committed);
    format!(
        "{store}, but writing the export to {} failed: {reason}. Fix that, then run `ravencert apply` again: the next apply retries the export.",
        path.display()
    )
}

/// What an apply did, for the report.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// (client or server key, new thumbprint, not-after) of every certificate registered.
    pub(crate) issued: Vec<(String, EntryThumbprint, OffsetDateTime)>,
}

/// The server certificate and key that sign generated clients.
pub(super) type Signer = (Vec<u8>, PrivateKey);

/// One apply: its inputs and the registry it builds, change by change.
struct Applier<'a> {
    desired: &'a Desired,
    store: &'a Store,
    now: OffsetDateTime,
    revision: Option<String>,
    /// The registry as it was loaded, then with each change carried out.
    reg: Registry,
    issued: Vec<(String, EntryThumbprint, OffsetDateTime)>,
}

/// Carries out `plan` on `store`. The caller holds the store's lock and has checked the plan
/// against the current store.
pub(crate) fn apply(
    desired: &Desired,
    store: &Store,
    actual: &Actual,
    plan: &Plan,
    now: OffsetDateTime,
    revision: Option<String>,
) -> Result<Outcome, ApplyError> {
    if let Some(refused) = plan.policy_refusal() {
        return Err(ApplyError::Refused(Box::new(refused)));
    }
    let mut run = Applier {
        desired,
        store,
        now,
        revision,
        reg: actual.registry.clone(),
        issued: Vec::new(),
    };
    // Every input that can fail for a bad config is read before anything is written.
    let work = generated_work(desired, plan)?;
    store.ensure_root()?;
    let signer = run.servers(plan)?;
    // The key of password fingerprints, made when a bundle with a password is first written.
    let password_key = run.password_key()?;
    run.intend_uploads(plan)?;
    let mut made = run.issue_clients(&work, signer, &password_key)?;
    for change in plan.changes.iter().filter(|c| c.target == Target::Client) {
        run.client(change, &mut made, &actual.registry, &password_key)?;
    }
    run.commit(plan, actual)
}

impl Applier<'_> {
    /// The server's changes; returns the new signer when one was made.
    fn servers(&mut self, plan: &Plan) -> Result<Option<Signer>, ApplyError> {
        let mut signer = None;
        for change in plan.changes.iter().filter(|c| c.target == Target::Server) {
            let Some(server) = self.desired.declared.server.as_ref() else {
                continue;
            };
            let (entries, made) = match &server.source {
                ServerSpec::Generate { .. } => self.generate_server(&server.source)?,
                ServerSpec::Imported(_) => self.import_nodes()?,
            };
            signer = made;
            let new = Some(NewCert::Server(entries));
            plan::mutate(&mut self.reg, change, new, self.desired, self.now);
        }
        Ok(signer)
    }

    fn generate_server(
        &mut self,
        spec: &ServerSpec,
    ) -> Result<(Vec<ServerEntry>, Option<Signer>), ApplyError> {
        let ServerSpec::Generate {
            name,
            dns,
            key,
            validity,
            ..
        } = spec
        else {
            return Ok((Vec::new(), None));
        };
        let issued = pki::generate_server(
            name,
            dns,
            *key,
            self.now - BACKDATING.as_duration(),
            self.now + validity.as_duration(),
        )?;
        let info = pki::inspect(&issued.cert_der)?;
        let thumb = EntryThumbprint::from(self.store.write_cert(&issued.cert_der)?);
        self.store.write_server_key(thumb.as_str(), &issued.key)?;
        self.issued
            .push((name.clone(), thumb.clone(), info.not_after));
        let entries =
            plan::generated_server_entry(spec, self.now, thumb, info.public_key_pinning_hash)
                .map(|planned| ServerEntry {
                    not_before: info.not_before,
                    not_after: info.not_after,
                    revision: self.revision.clone(),
                    ..planned
                })
                .into_iter()
                .collect();
        Ok((entries, Some((issued.cert_der, issued.key))))
    }

    fn import_nodes(&mut self) -> Result<(Vec<ServerEntry>, Option<Signer>), ApplyError> {
        let nodes = self.desired.node_keys().map_err(ApplyError::NodeFiles)?;
        for (der, key) in &nodes {
            let thumb = self.store.write_cert(der)?;
            if let Some(key) = key {
                self.store.write_server_key(thumb.as_str(), key)?;
            }
        }
        let files = &self.desired.files;
        let entries = plan::node_entries(&files.nodes, &files.nodes_keyed, self.revision.clone());
        // The files must still hold what was planned.
        let read: Vec<Thumbprint> = nodes.iter().map(|(d, _)| pki::thumbprint(d)).collect();
        let planned: Vec<EntryThumbprint> = entries.iter().map(|e| e.thumbprint.clone()).collect();
        if read != planned {
            return Err(ApplyError::NodeFilesChanged);
        }
        for e in &entries {
            self.issued
                .push((e.name.clone(), e.thumbprint.clone(), e.not_after));
        }
        // Clients are signed with the first node certificate that came with its key.
        let signer = nodes
            .into_iter()
            .find_map(|(der, key)| key.map(|k| (der, k)));
        Ok((entries, signer))
    }

    /// The store's key for password fingerprints, when a declared bundle has a password.
    fn password_key(&self) -> Result<Vec<u8>, ApplyError> {
        let any_password = self
            .desired
            .declared
            .clients
            .values()
            .any(|c| matches!(&c.source, ClientSpec::Generate(g) if g.password.is_some()));
        if any_password {
            Ok(self.store.password_key_or_create()?)
        } else {
            Ok(Vec::new())
        }
    }

    /// Issues the generated clients and writes their files, streamed (see [`issue::issue_all`]).
    fn issue_clients(
        &self,
        work: &[issue::Work<'_>],
        signer: Option<Signer>,
        password_key: &[u8],
    ) -> Result<BTreeMap<String, issue::Made>, ApplyError> {
        if work.is_empty() {
            return Ok(BTreeMap::new());
        }
        let signer = match signer {
            Some(s) => s,
            None => load_signer(self.store, &self.reg)?,
        };
        issue::issue_all(self.store, work, &signer, self.now, password_key)
    }

    /// The certificate files the uploaded clients' changes will write, recorded in one write
    /// before any is made (the generated clients' are recorded a batch at a time as they are
    /// issued).
    fn intend_uploads(&self, plan: &Plan) -> Result<(), ApplyError> {
        let uploads: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.target == Target::Client)
            .filter_map(|c| self.desired.files.uploads.get(&c.key))
            .flatten()
            .map(|u| format!("certs/{}.pem", u.info.thumbprint))
            .collect();
        if !uploads.is_empty() {
            self.store.intend(uploads)?;
        }
        Ok(())
    }

    /// One client change: its certificates written (a create or replace), the registry changed,
    /// and an update's bundle packaged again when due.
    fn client(
        &mut self,
        change: &Change,
        made: &mut BTreeMap<String, issue::Made>,
        current: &Registry,
        password_key: &[u8],
    ) -> Result<(), ApplyError> {
        let desired = self.desired;
        let client = desired.declared.clients.get(&change.key);
        let new = match (change.action, client) {
            (Action::Create | Action::Replace, Some(client)) => match &client.source {
                ClientSpec::Generate(spec) => {
                    let Some(m) = made.remove(&client.key) else {
                        return Ok(());
                    };
                    Some(self.issued_entry(client, spec, m))
                }
                ClientSpec::Upload(_) => Some(self.write_uploaded(client)?),
            },
            _ => None,
        };
        plan::mutate(&mut self.reg, change, new, desired, self.now);
        if change.action == Action::Update {
            for e in self
                .reg
                .certificates
                .iter_mut()
                .filter(|e| change.thumbprints.contains(&e.thumbprint) && e.key == change.key)
            {
                e.revision = self.revision.clone();
            }
            rebundle_if_due(
                desired,
                self.store,
                current,
                &mut self.reg,
                change,
                password_key,
            )?;
        }
        Ok(())
    }

    /// An issued client's registry entry (its files are written).
    fn issued_entry(
        &mut self,
        client: &ClientDesired,
        spec: &GenerateSpec,
        m: issue::Made,
    ) -> NewCert {
        let planned = plan::generated_client_entry(
            client,
            spec,
            self.now,
            m.thumbprint,
            m.info.public_key_pinning_hash,
        );
        let entry = CertEntry {
            not_before: m.info.not_before,
            not_after: m.info.not_after,
            revision: self.revision.clone(),
            bundle_password: Some(m.bundle_password),
            ..planned
        };
        self.issued.push((
            client.key.clone(),
            entry.thumbprint.clone(),
            entry.not_after,
        ));
        NewCert::Client(vec![entry])
    }

    /// Writes an uploaded client's certificates; their registry entries.
    fn write_uploaded(&mut self, client: &ClientDesired) -> Result<NewCert, ApplyError> {
        let certs = self
            .desired
            .files
            .uploads
            .get(&client.key)
            .map_or(&[][..], |v| v);
        for c in certs {
            self.store.write_cert(&c.der)?;
        }
        let entries = plan::upload_entries(client, certs, self.revision.clone());
        for e in &entries {
            self.issued
                .push((client.key.clone(), e.thumbprint.clone(), e.not_after));
        }
        Ok(NewCert::Client(entries))
    }

    /// The commit: the registry checked and written (the commit point), the store finished,
    /// then the export written.
    fn commit(mut self, plan: &Plan, actual: &Actual) -> Result<Outcome, ApplyError> {
        let store = self.store;
        // Every apply with a known revision records it, also one that changes nothing: a fleet
        // shows it has caught up with a commit.
        if !plan.changes.is_empty() || self.revision.is_some() {
            self.reg.applied_revision = self.revision.clone();
        }
        // The settings this apply ran with: the next plan shows a change of them.
        self.reg.settings = Some(plan::settings_of(&self.desired.declared));
        self.reg.normalize();
        // An apply that changes anything commits a registry: the flush of the files it names
        // begins now, while the look for lost files (a stat per certificate) runs.
        let flush = (!plan.changes.is_empty()).then(|| store.begin_flush());
        let restored = restore_lost_files(self.desired, store, &mut self.reg)?;
        // A file restored since the flush began needs a flush of its own; the first one's
        // outcome still counts (it may be the one told of a write-back error).
        let flush = match flush {
            Some(f) if restored => {
                f.wait()?;
                None
            }
            other => other,
        };
        let text =
            if self.reg != actual.registry || !actual.sealed || !store.registry_path().exists() {
                // Never commit a registry the next load would refuse.
                let path = store.registry_path();
                store.commit_registry(flush, || {
                    self.reg
                        .render_checked(&path)
                        .map_err(ApplyError::Inconsistent)
                })?
            } else {
                // Nothing to commit: the flush begun for it is waited for all the same, so that
                // a write-back error it was told of is reported, not dropped.
                if let Some(f) = flush {
                    f.wait()?;
                }
                self.reg.render()
            };
        // The cache is made while the bundles move into place, and written (when it changed)
        // once they have.
        let cache = store.finish(&self.reg, || store.cache_bytes(&self.reg, &text))?;
        let exported = self.export_if_planned(plan);
        let installed = self.install_if_planned(plan);
        if let Some(json) = cache {
            store.write_cache_bytes(&json)?;
        }
        exported?;
        installed?;
        Ok(Outcome {
            issued: self.issued,
        })
    }

    /// The export, when the plan has it; a failure says the store part was committed.
    fn export_if_planned(&self, plan: &Plan) -> Result<(), ApplyError> {
        if !plan.changes.iter().any(|c| c.target == Target::Export) {
            return Ok(());
        }
        let Some(path) = self
            .desired
            .declared
            .server
            .as_ref()
            .and_then(|s| s.export.as_ref())
        else {
            return Ok(());
        };
        write_export_to(self.store, &self.reg, path).map_err(|e| ApplyError::Export {
            committed: store_changes(plan),
            path: path.clone(),
            reason: Box::new(e),
        })
    }

    /// The `[server] install` file, when the plan has it; a failure says the store part was
    /// committed.
    fn install_if_planned(&self, plan: &Plan) -> Result<(), ApplyError> {
        if !plan.changes.iter().any(|c| c.target == Target::Install) {
            return Ok(());
        }
        let Some(spec) = self.desired.declared.install() else {
            return Ok(());
        };
        write_install_to(self.store, &self.reg, spec).map_err(|e| ApplyError::Install {
            committed: store_changes(plan),
            path: spec.path.clone(),
            reason: Box::new(e),
        })
    }
}

/// The generated clients the plan creates or replaces, their passwords read.
fn generated_work<'d>(
    desired: &'d Desired,
    plan: &Plan,
) -> Result<Vec<issue::Work<'d>>, ApplyError> {
    plan.changes
        .iter()
        .filter(|c| {
            c.target == Target::Client && matches!(c.action, Action::Create | Action::Replace)
        })
        .filter_map(|c| desired.declared.clients.get(&c.key))
        .filter_map(|client| match &client.source {
            ClientSpec::Generate(spec) => Some(issue::Work::read(client, spec)),
            ClientSpec::Upload(_) => None,
        })
        .collect()
}

/// How many of the plan's changes the store part of an apply commits, before the export and
/// the install it may fail at: all but the export.
fn store_changes(plan: &Plan) -> usize {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::Export)
        .count()
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
    let Some(client) = desired.declared.clients.get(&change.key) else {
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
    // A password whose source is not set is not compared (the plan said so): it is needed
    // only when the bundle is packaged again for another reason, and then its absence stops.
    let read = match spec.password.as_ref().map(|r| r.read()).transpose() {
        Err(e) if e.absence().is_none() => return Err(password_error(client, e)),
        read => read,
    };
    let fingerprint = match &read {
        Ok(Some(_)) if password_key.is_empty() => None,
        Ok(password) => Some(pki::password_fingerprint(
            password_key,
            &client.key,
            password.as_ref().map(|p| p.expose()),
        )?),
        Err(_) => None,
    };
    let declared = match (&read, &fingerprint) {
        (Err(_), _) => Some(DeclaredPassword::NotRead("its source is not set")),
        (Ok(_), Some(f)) => Some(DeclaredPassword::Fingerprint(f)),
        (Ok(_), None) => None,
    };
    if plan::bundle_reasons(before, spec, declared).is_empty() {
        return Ok(());
    }
    let password = read.map_err(|e| password_error(client, e))?;
    let server_der = match reg.server.first() {
        Some(s) => store.read_cert_der(s.thumbprint.as_str())?,
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
/// kept for the overlap. Whether a file was written.
fn restore_lost_files(
    desired: &Desired,
    store: &Store,
    reg: &mut Registry,
) -> Result<bool, ApplyError> {
    let mut gone = Vec::new();
    // A stat per certificate, on every core from PARALLEL_FROM.
    let present = per_certificate(&reg.certificates, |e| {
        store.cert_file_ok(e.thumbprint.as_str())
    });
    let lost = reg.certificates.iter().zip(present).filter(|(_, ok)| !ok);
    let mut restored = false;
    for (e, _) in lost {
        let from_files = desired
            .files
            .uploads
            .values()
            .flatten()
            .chain(desired.files.nodes.iter())
            .find(|u| u.info.thumbprint == e.thumbprint)
            .map(|u| u.der.clone());
        let found = store
            .bundle_cert(&e.key, e.thumbprint.as_str())
            .or(from_files);
        if found.is_none() && e.retire_after.is_some() {
            gone.push(e.thumbprint.clone());
            continue;
        }
        let der = found.ok_or_else(|| ApplyError::CertificateLost {
            key: e.key.clone(),
            thumbprint: e.thumbprint.to_string(),
        })?;
        store.write_cert(&der)?;
        restored = true;
    }
    reg.certificates.retain(|e| !gone.contains(&e.thumbprint));
    Ok(restored)
}

fn password_error(client: &ClientDesired, source: crate::inputs::SecretError) -> ApplyError {
    ApplyError::Password {
        key: client.key.clone(),
        source,
    }
}

/// Packages a generated client's bundle again around the certificate it already has (same
/// thumbprint), with the declared password and .pfx profile. Its private key comes from the
/// store's kept copy, or, in a store from before keys were kept, from the bundle's `.key`
/// opened with the declared password (`exposed`, whose `fingerprint` the registry records).
fn rebundle(
    store: &Store,
    client: &ClientDesired,
    spec: &GenerateSpec,
    entry: &mut CertEntry,
    server_der: &[u8],
    exposed: Option<&str>,
    fingerprint: Option<String>,
) -> Result<(), ApplyError> {
    let key = match store.read_client_key(entry.thumbprint.as_str()) {
        Some(k) => k,
        None => {
            // A missing .key file and one the declared password does not open end alike.
            let locked = || ApplyError::BundleKeyLocked {
                key: client.key.clone(),
            };
            let pem = store.read_bundle_key_pem(&client.key).ok_or_else(locked)?;
            let opened = match exposed {
                Some(p) => PrivateKey::from_pem_with(&pem, p),
                None => PrivateKey::from_pem(&pem),
            };
            let key = opened.map_err(|_| locked())?;
            store.write_client_key(entry.thumbprint.as_str(), &key)?;
            key
        }
    };
    let issued = Issued {
        cert_der: store.read_cert_der(entry.thumbprint.as_str())?,
        key,
        info: None,
    };
    let bundle = pki::client_bundle(&issued, server_der, &client.name, exposed, spec.pfx)?;
    store.stage_bundle(&client.key, &bundle)?;
    entry.pfx = spec.pfx;
    entry.bundle_password = fingerprint;
    Ok(())
}

fn load_signer(store: &Store, reg: &Registry) -> Result<Signer, ApplyError> {
    let server = reg
        .server
        .iter()
        .find(|s| s.has_key)
        .ok_or(ApplyError::NoSigner)?;
    Ok((
        store.read_cert_der(server.thumbprint.as_str())?,
        store.read_server_key(server.thumbprint.as_str())?,
    ))
}

/// Writes the `[server] install` file: the current (first) server certificate with its key, in
/// the declared profile and password. The store keeps no chain: a generated server certificate
/// is self-signed, an imported one is kept without the CAs of its file.
pub(crate) fn write_install_to(
    store: &Store,
    reg: &Registry,
    spec: &crate::config::InstallSpec,
) -> Result<(), InstallError> {
    let server = reg.server.first().ok_or(ApplyError::NothingToExport)?;
    if !server.has_key {
        return Err(InstallError::NoKey(server.thumbprint.to_string()));
    }
    let password = spec
        .password
        .as_ref()
        .map(|r| r.read())
        .transpose()
        .map_err(InstallError::Password)?;
    let der = store
        .read_cert_der(server.thumbprint.as_str())
        .map_err(ApplyError::from)?;
    let key = store
        .read_server_key(server.thumbprint.as_str())
        .map_err(ApplyError::from)?;
    let pfx = pki::server_install_pfx(
        &der,
        &key,
        &[],
        password.as_ref().map(|p| p.expose()),
        spec.pfx,
    )
    .map_err(ApplyError::from)?;
    store::write_install(&spec.path, &spec.root, &pfx).map_err(ApplyError::from)?;
    Ok(())
}

/// Writes the export file at `path`: every server certificate, public parts only, no password.
pub(crate) fn write_export_to(
    store: &Store,
    reg: &Registry,
    path: &Path,
) -> Result<(), ApplyError> {
    if reg.server.is_empty() {
        return Err(ApplyError::NothingToExport);
    }
    let ders = reg
        .server
        .iter()
        .map(|s| store.read_cert_der(s.thumbprint.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let pfx = pki::export_pfx(&ders)?;
    store::write_export(path, &pfx)?;
    Ok(())
}
