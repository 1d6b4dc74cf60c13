//! The unregisters of a cluster plan (registrations the store does not hold) and the deletion
//! guards they are counted against.

use std::collections::BTreeSet;

use super::{
    certificate, registration_fields, ClusterAction, ClusterChange, ClusterPlanner, Registration,
};
use crate::model::Thumbprint;
use crate::plan::PlanError;
use crate::registry::CertEntry;

/// An unregister, and whether it counts against `max_deletions` (every one but those that
/// mirror this run's store plan, see [`ClusterOptions`]).
pub(super) struct Unregister {
    pub(super) change: ClusterChange,
    counted: bool,
    /// How many registrations go with it: 1, plus a collection primary's secondaries (RavenDB
    /// removes them with it).
    removes: usize,
}

impl ClusterPlanner<'_> {
    /// An unregister per registration the store does not hold that ravencert may remove, in
    /// name order; a warning for each one it keeps. A collection's secondaries go with their
    /// primary (the server removes them with it, and refuses to remove one alone).
    pub(super) fn unregisters(&mut self) -> Vec<Unregister> {
        let mut strays: Vec<&Registration> = self
            .listing
            .registrations
            .iter()
            .filter(|r| !self.desired_thumbprints.contains(&r.thumbprint))
            .collect();
        strays.sort_by_key(|r| (r.name.clone(), r.thumbprint.clone()));
        let mut out = Vec::new();
        for r in strays.iter().filter(|r| r.collection_primary.is_none()) {
            out.extend(self.unregister(r));
        }
        let gone: BTreeSet<Thumbprint> = out
            .iter()
            .filter_map(|u| u.change.thumbprint.clone())
            .collect();
        for r in strays {
            let Some(primary) = &r.collection_primary else {
                continue;
            };
            // A listed collection member is upper-case hex, as the decoder normalizes it.
            if gone.contains(primary.as_str()) || self.protected(r) || self.known(r) {
                continue;
            }
            self.warnings.push(format!(
                "cluster: certificate {} ('{}') is registered as a secondary of {}, which stays; the store does not hold it, but RavenDB removes a secondary only with its primary — remove the collection in the Studio if it is wrong",
                r.thumbprint,
                r.name,
                primary
            ));
        }
        out
    }

    /// The unregister of one registration the store does not hold, or None (and a warning)
    /// when it stays.
    fn unregister(&mut self, r: &Registration) -> Option<Unregister> {
        let t = &r.thumbprint;
        if self.known(r) {
            return None; // [cluster] keep: declared, left alone
        }
        let ours = self.opts.last_set.contains_key(t);
        // A primary goes with its secondaries: never while the store declares one of them.
        let secondaries: Vec<&Registration> = self
            .listing
            .registrations
            .iter()
            .filter(|s| s.collection_primary.as_deref() == Some(t.as_str()))
            .collect();
        if let Some(kept) = secondaries
            .iter()
            .find(|s| self.desired_thumbprints.contains(&s.thumbprint) || self.known(s))
        {
            let holder = if self.known(kept) {
                "[cluster] keep names"
            } else {
                "the store holds"
            };
            self.warnings.push(format!(
                "cluster: certificate {t} ('{}') is not in the store, but RavenDB would remove its secondary {} with it, which {holder}: it stays — register the secondary on its own in the Studio, then it can go",
                r.name,
                kept.thumbprint
            ));
            return None;
        }
        if self.protected(r) {
            if ours && self.opts.admin_thumbprint.as_ref() == Some(t) {
                self.warnings.push(format!(
                    "cluster: certificate {t} ('{}') is no longer in the store, but ravencert authenticates with it: it stays registered until ravencert uses another",
                    r.name
                ));
            }
            return None;
        }
        let owner = self.owner(&r.name);
        let reason = self.unregister_reason(r, ours, owner)?;
        let counted = !self.opts.store_removed.contains(t);
        let change = ClusterChange {
            action: ClusterAction::Unregister,
            key: owner.map(|o| o.key.clone()),
            name: r.name.clone(),
            thumbprint: Some(t.clone()),
            reason,
            escalation: false,
            before: Some(registration_fields(r)),
            after: None,
            fields: Vec::new(),
            collection_primary: None,
            disabled: None,
        };
        Some(Unregister {
            change,
            counted,
            removes: 1 + secondaries.len(),
        })
    }

    /// Why a registration the store does not hold goes; None (and, for a foreign certificate
    /// under a declared client's name, a warning) when it stays because prune is off.
    fn unregister_reason(
        &mut self,
        r: &Registration,
        ours: bool,
        owner: Option<&CertEntry>,
    ) -> Option<String> {
        if let Some(ended) = self.opts.ended.get(&r.thumbprint).filter(|_| ours) {
            return Some(format!("{ended} (removed from the store)"));
        }
        let reason = match (ours, owner) {
            (true, Some(o)) => format!(
                "no longer in the store: clients.{} now uses {}",
                o.key,
                certificate(&o.thumbprint)
            ),
            (true, None) => "no longer in the store (registered by ravencert)".to_string(),
            (false, _) if !self.opts.prune => {
                // Listed as kept (with its access) by every format; a foreign certificate under
                // a declared client's name is also a warning naming both.
                if owner.is_some() {
                    self.warnings.push(self.kept_warning(r, owner));
                }
                return None;
            }
            (false, Some(o)) => format!(
                "registered under the name of clients.{}, but the store does not hold it ([cluster] prune = true)",
                o.key
            ),
            (false, None) => "not in the store ([cluster] prune = true)".to_string(),
        };
        Some(reason)
    }

    /// Why a registration the store does not hold stays (prune is off): under a declared
    /// client's name, both thumbprints, so that a foreign certificate is never silently kept
    /// in place of the client's own.
    fn kept_warning(&self, r: &Registration, owner: Option<&CertEntry>) -> String {
        let t = &r.thumbprint;
        match owner {
            Some(o) => format!(
                "cluster: certificate {t} is registered under the name '{}' of clients.{}, whose certificate in the store is {}; the store does not hold {t}, so it is neither replaced nor removed — remove it in the Studio, or set [cluster] prune = true to unregister it",
                r.name,
                o.key,
                certificate(&o.thumbprint)
            ),
            None => format!(
                "cluster: certificate {t} ('{}', {}) is registered on the cluster but not in the store; it is kept because [cluster] prune = false",
                r.name, r.clearance
            ),
        }
    }

    /// The deletion guards, counting every unregister but those mirroring this run's store
    /// plan.
    pub(super) fn guard(&self, unregisters: &[Unregister]) -> Result<(), PlanError> {
        let counted: Vec<String> = unregisters
            .iter()
            .filter(|u| u.counted)
            .map(|u| {
                let with = match u.removes {
                    1 => String::new(),
                    n => format!(" (with {} secondaries)", n - 1),
                };
                format!(
                    "cluster: '{}' {}{with}",
                    u.change.name,
                    u.change.thumbprint.as_ref().map_or("", Thumbprint::as_str)
                )
            })
            .collect();
        let removed: usize = unregisters
            .iter()
            .filter(|u| u.counted)
            .map(|u| u.removes)
            .sum();
        let max = self.opts.max_deletions;
        let count = self.opts.store_deletions + removed;
        if max > 0 && !counted.is_empty() && count > max as usize {
            let mut keys = Vec::new();
            if self.opts.store_deletions > 0 {
                keys.push(format!("{} in the store", self.opts.store_deletions));
            }
            keys.extend(counted);
            return Err(PlanError::TooManyDeletions {
                count,
                max,
                keys: keys.join(", "),
            });
        }
        if !unregisters.is_empty() && self.desired.is_empty() && !self.opts.allow_delete_all {
            return Err(PlanError::UnregistersAll {
                url: self.opts.url.clone(),
                names: unregisters
                    .iter()
                    .map(|u| format!("'{}'", u.change.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(())
    }
}
