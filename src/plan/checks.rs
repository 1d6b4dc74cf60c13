//! Refusals: uploads that cannot be registered, and the deletions guards against a wrong config
//! or store wiping access.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::{
    entry_fields, Action, Change, PlanError, Planner, ProtectedChange, Target, UploadProblem,
};
use crate::config::{ClientSpec, Desired, ServerSpec};
use crate::model::{Thumbprint, Uploaded};
use crate::registry::{Actual, CertEntry, Registry};

/// The checks of what certs.toml declares that need no store, shared by `validate` and `plan`
/// so that both refuse the same configs: a generated client or an install without a server
/// key, an uploaded certificate that has expired, one certificate declared by two clients, a
/// node's own certificate uploaded as a client.
pub(crate) fn check_declared(desired: &Desired, now: OffsetDateTime) -> Result<(), PlanError> {
    check_server_keys(desired)?;
    let nodes: BTreeSet<&str> = desired
        .files
        .nodes
        .iter()
        .map(|n| n.info.thumbprint.as_str())
        .collect();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, certs) in &desired.files.uploads {
        let file = upload_path(desired, key);
        let refused = |problem| PlanError::Upload {
            key: key.clone(),
            problem,
        };
        refuse_expired(&file, certs, now).map_err(refused)?;
        for c in certs {
            let t = c.info.thumbprint.as_str();
            if nodes.contains(t) {
                return Err(refused(UploadProblem::OwnServer {
                    file,
                    thumbprint: c.info.thumbprint.clone(),
                }));
            }
            if let Some(other) = seen.insert(t, key) {
                return Err(refused(UploadProblem::DeclaredTwice {
                    file,
                    thumbprint: c.info.thumbprint.clone(),
                    other: other.to_string(),
                }));
            }
        }
    }
    Ok(())
}

/// With imported node certificates, generating clients needs one of them with its private key,
/// and `install` needs the first one's.
fn check_server_keys(desired: &Desired) -> Result<(), PlanError> {
    let Some(ServerSpec::Imported(refs)) = desired.declared.server.as_ref().map(|s| &s.source)
    else {
        return Ok(());
    };
    let keyed = &desired.files.nodes_keyed;
    // Files that were not read have their own errors already.
    if keyed.len() != refs.len() {
        return Ok(());
    }
    if let (Some(_), Some(first), Some(false)) =
        (desired.declared.install(), refs.first(), keyed.first())
    {
        return Err(PlanError::InstallWithoutKey {
            file: first.path.display().to_string(),
        });
    }
    if keyed.contains(&true) {
        return Ok(());
    }
    let generated = desired
        .declared
        .clients
        .values()
        .find(|c| matches!(c.source, ClientSpec::Generate(_)));
    match generated {
        Some(c) => Err(PlanError::NoSigningKey {
            key: c.key.clone(),
            files: refs
                .iter()
                .map(|r| r.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        None => Ok(()),
    }
}

fn upload_path(desired: &Desired, key: &str) -> String {
    match desired.declared.clients.get(key).map(|c| &c.source) {
        Some(ClientSpec::Upload(r)) => r.path.display().to_string(),
        _ => String::new(),
    }
}

fn refuse_expired(
    file: &str,
    certs: &[Uploaded],
    now: OffsetDateTime,
) -> Result<(), UploadProblem> {
    match certs.iter().find(|c| c.info.not_after <= now) {
        Some(c) => Err(UploadProblem::Expired {
            file: file.to_string(),
            thumbprint: c.info.thumbprint.clone(),
            subject: c.info.subject.clone(),
            expired_on: c.info.not_after.date(),
        }),
        None => Ok(()),
    }
}

/// Refusals of uploads that depend on the store: the registered (generated) server certificate
/// uploaded as a client, or a certificate registered under a key that keeps it.
pub(super) fn check_uploads(desired: &Desired, actual: &Actual) -> Result<(), PlanError> {
    if desired.files.uploads.is_empty() {
        return Ok(());
    }
    let server: BTreeSet<&str> = actual
        .registry
        .server
        .iter()
        .map(|s| s.thumbprint.as_str())
        .collect();
    let by_thumbprint: BTreeMap<&str, &CertEntry> = actual
        .registry
        .certificates
        .iter()
        .map(|e| (e.thumbprint.as_str(), e))
        .collect();
    for (key, certs) in &desired.files.uploads {
        let file = upload_path(desired, key);
        for c in certs {
            let thumbprint = c.info.thumbprint.clone();
            let problem = if desired.files.nodes.is_empty() && server.contains(thumbprint.as_str())
            {
                Some(UploadProblem::OwnServer {
                    file: file.clone(),
                    thumbprint,
                })
            } else {
                by_thumbprint
                    .get(thumbprint.as_str())
                    .filter(|e| e.key != *key)
                    .and_then(|holder| held_elsewhere(desired, key, &file, thumbprint, holder))
            };
            if let Some(problem) = problem {
                return Err(PlanError::Upload {
                    key: key.clone(),
                    problem,
                });
            }
        }
    }
    Ok(())
}

/// An uploaded certificate registered under another key: refused while that key keeps it.
fn held_elsewhere(
    desired: &Desired,
    key: &str,
    file: &str,
    thumbprint: Thumbprint,
    holder: &CertEntry,
) -> Option<UploadProblem> {
    let file = file.to_string();
    let holder = holder.key.clone();
    match desired.declared.clients.get(&holder) {
        // No longer declared: only a prune in the same apply frees the thumbprint.
        None => (!desired.declared.store.prune).then_some(UploadProblem::HeldByUndeclared {
            file,
            thumbprint,
            holder,
        }),
        // Still declared: a generated client keeps its certificate; an upload that moves away
        // from it would keep it registered during an overlap.
        Some(other) => match &other.source {
            ClientSpec::Generate(_) => true,
            ClientSpec::Upload(_) => other.overlap.is_some(),
        }
        .then(|| UploadProblem::HeldByDeclared {
            file,
            thumbprint,
            key: key.to_string(),
            holder,
        }),
    }
}

impl Planner<'_> {
    /// Old certificates whose rotation overlap has ended, then those no longer declared (or a
    /// warning for each when prune is off); refused when the guards say it deletes too much.
    pub(super) fn deletions(&mut self) -> Result<Vec<Change>, PlanError> {
        let reg = &self.actual.registry;
        let mut changes = Vec::new();
        // Access that ended (until): every entry of the key goes, whatever prune says. Its
        // secondaries go with their primary (delete_change).
        let mut ended = Vec::new();
        for c in reg
            .certificates
            .iter()
            .filter(|c| c.collection_primary.is_none())
        {
            // The declared end, else the recorded one: a client whose table is removed keeps
            // the end it was applied with.
            let until = match self.desired.declared.clients.get(&c.key) {
                Some(d) => d.until,
                None => c.until,
            };
            if let Some(u) = until.filter(|u| super::until::ended(Some(*u), self.now)) {
                // Protected when last applied: it leaves in two reviewed steps, as with prune.
                if c.protect {
                    return Err(PlanError::Protected {
                        key: c.key.clone(),
                        change: ProtectedChange::Ended(crate::model::rfc3339(u)),
                    });
                }
                let why = super::until::ended_reason(u);
                ended.push(format!("{} ({why})", c.key));
                changes.push(delete_change(c, why, reg));
            }
        }
        let gone: BTreeSet<String> = changes.iter().map(|c| c.key.clone()).collect();
        // Ravencert's own rotation: they go whatever prune says.
        let mut retired = Vec::new();
        for c in &reg.certificates {
            if c.retire_after.is_some_and(|r| r <= self.now)
                && c.collection_primary.is_none()
                && !gone.contains(&c.key)
            {
                retired.push(format!("{} (rotation overlap ended)", c.key));
                changes.push(delete_change(c, "rotation overlap ended".into(), reg));
            }
        }
        let mut pruned = Vec::new();
        for c in reg.active_certificates() {
            if self.desired.declared.clients.contains_key(&c.key) || gone.contains(&c.key) {
                continue;
            }
            if self.desired.declared.store.prune {
                if c.protect {
                    return Err(PlanError::Protected {
                        key: c.key.clone(),
                        change: ProtectedChange::Delete,
                    });
                }
                pruned.push(c.key.clone());
                changes.push(delete_change(
                    c,
                    "no longer declared in certs.toml (prune = true)".into(),
                    reg,
                ));
            } else {
                self.kept.push(super::Kept {
                    key: c.key.clone(),
                    name: c.name.clone(),
                    thumbprint: c.thumbprint.clone(),
                    clearance: c.clearance,
                    permissions: c.permissions.clone(),
                });
            }
        }
        self.guard(ended, retired, pruned)?;
        Ok(changes)
    }

    /// Guards against a wrong config or store wiping access. Every delete counts, the end of a
    /// rotation overlap and of access (until) too; only `pruned` can be a wrong config deleting
    /// everything: an end date is a reviewed decision.
    fn guard(
        &self,
        ended: Vec<String>,
        retired: Vec<String>,
        pruned: Vec<String>,
    ) -> Result<(), PlanError> {
        let max = self.desired.declared.store.max_deletions;
        let deletes = ended.len() + retired.len() + pruned.len();
        if max > 0 && deletes > max as usize {
            return Err(PlanError::TooManyDeletions {
                count: deletes,
                max,
                keys: ended
                    .into_iter()
                    .chain(retired)
                    .chain(pruned)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let registered: BTreeSet<&str> = self
            .actual
            .registry
            .active_certificates()
            .map(|c| c.key.as_str())
            .collect();
        if !registered.is_empty() && pruned.len() == registered.len() && !self.opts.allow_delete_all
        {
            return Err(PlanError::DeletesAll {
                keys: pruned.join(", "),
            });
        }
        Ok(())
    }
}

fn delete_change(c: &CertEntry, reason: String, reg: &Registry) -> Change {
    let mut thumbprints = vec![c.thumbprint.clone()];
    thumbprints.extend(
        reg.certificates
            .iter()
            .filter(|s| s.collection_primary.as_deref() == Some(c.thumbprint.as_str()))
            .map(|s| s.thumbprint.clone()),
    );
    Change::new(Action::Delete, Target::Client, &c.key, reason)
        .with_fields(Some(entry_fields(c)), None)
        .with_thumbprints(thumbprints)
}
