//! `disabled = true` on the cluster (docs/contract.md §7, issue 25): access suspended, the
//! certificate kept.
//!
//! | cluster | registered | change |
//! |---|---|---|
//! | can disable (7.2.2 and later) | yes, enabled | edit `Disabled: true` |
//! | any | no | none: it stays unregistered while disabled |
//! | cannot (4.1 to 7.2.1) | yes | unregister, not counted against `max_deletions` |
//!
//! Enabling again: an edit `Disabled: false` of a registration ravencert disabled (its cluster
//! state says so), or a register where it was unregistered; both flagged. A registration
//! disabled in the Studio stays disabled. The disabled certificate stays among the store's
//! thumbprints, so it is never also taken for a stray.

use super::{
    registration_fields, ClusterAction, ClusterChange, ClusterPlanner, Grant, Registration,
    RegistrationState, ServerVersion,
};
use crate::plan::{Field, FieldChange};
use crate::registry::CertEntry;

/// The first RavenDB version whose edit takes `Disabled` (the field came with 7.2.2).
const FIRST_DISABLE: (u32, u32, u32) = (7, 2, 2);

/// Whether a cluster can disable a registration: a listed entry carries `Disabled` (the
/// servers' own included), or its version is 7.2.2 or later.
pub fn can_disable(registrations: &[Registration], version: &ServerVersion) -> bool {
    registrations.iter().any(|r| r.disabled.is_some())
        || (version.major, version.minor, version.patch()) >= FIRST_DISABLE
}

/// How the cluster holds a store certificate that is disabled: `disabled` when it grants
/// nothing (not registered, or registered disabled as declared), else `differs`.
pub(super) fn state(e: &CertEntry, listed: Option<&Registration>) -> RegistrationState {
    match listed {
        None => RegistrationState::Disabled,
        Some(r)
            if r.disabled == Some(true)
                && Grant::of_registration(r)
                    .is_some_and(|g| g.differing(Grant::of_entry(e)).is_empty()) =>
        {
            RegistrationState::Disabled
        }
        Some(_) => RegistrationState::Differs,
    }
}

/// What an edit does with `Disabled`, beside name, clearance and permissions.
pub(super) struct Toggle {
    /// What it sends (None: the listed value, so the Studio's choice stays).
    pub(super) send: Option<bool>,
    /// Why, when that is a change.
    pub(super) reason: Option<String>,
    /// The field change a reviewer reads.
    pub(super) field: Option<FieldChange>,
    /// Enabling: access comes back.
    pub(super) escalation: bool,
}

fn disabled_change(from: bool, to: bool) -> FieldChange {
    FieldChange::new(
        Field::Disabled,
        Some(from.to_string()),
        Some(to.to_string()),
    )
}

impl ClusterPlanner<'_> {
    /// Whether ravencert disabled `e`'s registration (its cluster state records it).
    fn disabled_by_ravencert(&self, e: &CertEntry) -> bool {
        e.thumbprint
            .known()
            .and_then(|t| self.opts.last_set.get(t))
            .is_some_and(|s| s.disabled)
    }

    /// Whether `e`, enabled in the store, is one ravencert disabled on this cluster: enabling
    /// it is flagged.
    pub(super) fn enabled_again(&self, e: &CertEntry) -> bool {
        !e.disabled && self.disabled_by_ravencert(e)
    }

    /// What the edit of `e`'s registration `r` sends as `Disabled`, on a cluster that can
    /// disable (elsewhere: nothing, the field is not the server's).
    pub(super) fn toggle(&self, e: &CertEntry, r: &Registration) -> Toggle {
        let keep = Toggle {
            send: None,
            reason: None,
            field: None,
            escalation: false,
        };
        if !self.listing.can_disable {
            return keep;
        }
        let ours = self.disabled_by_ravencert(e);
        match (e.disabled, r.disabled == Some(true)) {
            (true, true) => Toggle {
                send: Some(true),
                ..keep
            },
            (true, false) => Toggle {
                send: Some(true),
                reason: Some(if ours {
                    "enabled on the cluster outside ravencert: disabled again (disabled in certs.toml)".to_string()
                } else {
                    format!(
                        "disabled in certs.toml: the registration is disabled (RavenDB {} keeps it)",
                        self.listing.version
                    )
                }),
                field: Some(disabled_change(false, true)),
                escalation: false,
            },
            (false, true) if ours => Toggle {
                send: Some(false),
                reason: Some("enabled in certs.toml".to_string()),
                field: Some(disabled_change(true, false)),
                escalation: true,
            },
            _ => keep,
        }
    }

    /// On a server that cannot disable: the unregister of disabled `e`'s registration `r`,
    /// not counted against `max_deletions` (nothing is lost: it is registered again when
    /// enabled). A secondary goes with its primary; a certificate ravencert never
    /// unregisters stays, with a warning.
    pub(super) fn unregister_disabled(
        &mut self,
        e: &CertEntry,
        r: &Registration,
    ) -> Option<ClusterChange> {
        if e.collection_primary.is_some() {
            return None;
        }
        if self.protected(r) {
            self.warnings.push(format!(
                "cluster: clients.{} is disabled in certs.toml, but its certificate {} is one ravencert never unregisters (a server's own, a well-known admin, or the one ravencert authenticates with): it stays registered",
                e.key, r.thumbprint
            ));
            return None;
        }
        Some(ClusterChange {
            action: ClusterAction::Unregister,
            key: Some(e.key.clone()),
            name: r.name.clone(),
            thumbprint: Some(r.thumbprint.clone()),
            reason: format!(
                "disabled in certs.toml: RavenDB {} cannot disable a registration, so it is unregistered while disabled and registered again when enabled",
                self.listing.version
            ),
            escalation: false,
            before: Some(registration_fields(r)),
            after: None,
            fields: vec![disabled_change(false, true)],
            collection_primary: None,
            disabled: Some(true),
        })
    }

    /// A warning per registration disabled on the cluster that ravencert leaves so: disabled in
    /// the Studio (ravencert never enables those), not the store's disabled clients nor those
    /// this plan enables again.
    pub(super) fn studio_disabled_warnings(&mut self) {
        let listing = self.listing;
        for r in &listing.registrations {
            if r.disabled != Some(true) {
                continue;
            }
            let entry = self
                .desired
                .iter()
                .find(|e| e.thumbprint.known() == Some(&r.thumbprint));
            if entry.is_some_and(|e| e.disabled || self.enabled_again(e)) {
                continue;
            }
            self.warnings.push(format!(
                "cluster: registration {} ('{}') is disabled on the cluster; ravencert never enables it (an edit keeps it disabled): enable it in the Studio to restore its access",
                r.thumbprint,
                r.name.escape_debug()
            ));
        }
    }
}
