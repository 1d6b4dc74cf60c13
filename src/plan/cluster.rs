//! The cluster target (docs/contract.md §7): which registrations a live RavenDB cluster needs so
//! that it trusts exactly the certificates the store holds. Pure, like the store's planner: the
//! cluster's listing comes in as data ([`ClusterListing`]), the changes go out as data
//! ([`ClusterPlan`]); the REST client and the apply live elsewhere.
//!
//! The desired state is the store's registry after the store plan ([`super::project`]): every
//! certificate in it (active clients, collection secondaries, old certificates inside a
//! rotation overlap) registered with its name, clearance and permissions. Registrations are
//! matched by thumbprint; a certificate only the apply knows yet (a placeholder thumbprint) is
//! always registered.
//!
//! Its parts: the cluster's vocabulary, shared with the RavenDB client (`cluster/listing.rs`),
//! and the unregisters with the deletion guards (`cluster/unregister.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::clients::widens;
use super::{entry_fields, shown, Field, FieldChange, Fields, PlanError};
use crate::model::{Access, Clearance, EntryThumbprint, Thumbprint};
use crate::registry::{CertEntry, Registry};

mod disable;
mod listing;
mod unregister;

pub use disable::can_disable;
pub use listing::{ClusterClearance, ClusterListing, Registration, ServerVersion};

/// A registration's name, clearance and permissions, as ravencert last set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationFields {
    /// The name the Studio shows.
    pub name: String,
    /// The security clearance.
    pub clearance: Clearance,
    /// Database access (ValidUser).
    pub permissions: BTreeMap<String, Access>,
    /// Disabled by ravencert (`disabled = true`): edited to `Disabled: true`, or unregistered
    /// where the server cannot disable; so enabling it again is ravencert's to do. Absent in
    /// states written before, and when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl From<&CertEntry> for RegistrationFields {
    fn from(e: &CertEntry) -> RegistrationFields {
        RegistrationFields {
            name: e.name.clone(),
            clearance: e.clearance,
            permissions: e.permissions.clone(),
            disabled: e.disabled,
        }
    }
}

/// What the caller adds to the store's registry and the listing for one cluster plan.
///
/// The deletion guards are checked here, so the caller passes what the store plan of this run
/// removes: `store_deletions` plus every unregister must stay within `max_deletions`, except
/// the unregisters of certificates in `store_removed` — they mirror a deletion the store plan
/// counted, or a re-issue whose new certificate takes over. An unregister of a certificate
/// that the cluster state alone says ravencert registered counts: the state is only as
/// trustworthy as the store's folder, and an earlier run's store change is not counted again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The node URL that answered, for messages.
    pub url: String,
    /// `[cluster] prune`: unregister certificates the store does not hold.
    pub prune: bool,
    /// The certificate ravencert authenticates with; never unregistered, never narrowed.
    pub admin_thumbprint: Option<Thumbprint>,
    /// The client key of `[cluster] admin`: its new certificate (a re-issue) is registered
    /// before anything else, so the next run can authenticate with it.
    pub admin_key: Option<String>,
    /// What ravencert last set on the cluster, by thumbprint: a registration that differs from
    /// it while certs.toml did not change was changed outside ravencert. Its thumbprints are
    /// also ravencert's own registrations, unregistered once the store no longer holds them
    /// (whatever `prune` says, as the store deletes its own rotation), counted against
    /// `max_deletions` unless `store_removed` holds them. May be empty.
    pub last_set: BTreeMap<Thumbprint, RegistrationFields>,
    /// `store.max_deletions` (0: no limit).
    pub max_deletions: u32,
    /// How many deletions the store plan counted against `max_deletions`.
    pub store_deletions: usize,
    /// The thumbprints the store plan of this run deletes or re-issues: their unregisters are
    /// not counted again.
    pub store_removed: BTreeSet<Thumbprint>,
    /// The thumbprints the store plan of this run deletes because the client's access ended
    /// (`until`), with that reason (`access ended 2026-05-01T16:00:00Z`): their unregisters
    /// say so.
    pub ended: BTreeMap<Thumbprint, String>,
    /// `--allow-delete-all`: lifts the guard against unregistering every client certificate.
    pub allow_delete_all: bool,
    /// `[cluster] keep`: the known strangers (see [`Keep`]).
    pub keep: Keep,
}

/// `[cluster] keep`: registrations someone else made that ravencert leaves alone, by
/// thumbprint, with their notes. Never unregistered (prune or not, ravencert's own
/// or not) and not drift; a collection's secondaries go with their primary, so those of a kept
/// primary are kept too.
pub type Keep = BTreeMap<Thumbprint, Option<String>>;

/// The `[cluster] keep` entry that covers registration `r`: its own, else its collection
/// primary's.
fn keep_of<'k>(keep: &'k Keep, r: &Registration) -> Option<&'k Option<String>> {
    // A listed collection member is upper-case hex, as the listing decoder normalizes it.
    keep.get(&r.thumbprint)
        .or_else(|| r.collection_primary.as_deref().and_then(|p| keep.get(p)))
}

/// Whether ravencert never manages registration `r`: a server's own certificate, a well-known
/// admin, the certificate ravencert authenticates with (`admin`).
fn unmanaged(listing: &ClusterListing, admin: Option<&Thumbprint>, r: &Registration) -> bool {
    let t = &r.thumbprint;
    r.clearance.client().is_none()
        || listing.server_thumbprints.contains(t)
        || listing.well_known_admins.contains(t)
        || admin == Some(t)
}

/// The client registrations on the cluster that `held` (the store's thumbprints) does not hold and that ravencert manages (see [`unmanaged`]), in the listing's order, each
/// marked known when `keep` covers it. What the plan, `status`, the page and `/metrics` count
/// as extra.
pub fn extra_registrations(
    held: &BTreeSet<Thumbprint>,
    listing: &ClusterListing,
    admin: Option<&Thumbprint>,
    keep: &Keep,
) -> Vec<ExtraRegistration> {
    listing
        .registrations
        .iter()
        .filter(|r| !held.contains(&r.thumbprint) && !unmanaged(listing, admin, r))
        .map(|r| {
            let known = keep_of(keep, r);
            ExtraRegistration {
                thumbprint: r.thumbprint.clone(),
                name: r.name.clone(),
                clearance: r.clearance,
                collection_primary: r.collection_primary.clone(),
                known: known.is_some(),
                note: known.cloned().flatten(),
            }
        })
        .collect()
}

/// What a change does on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterAction {
    /// Missing on the cluster: PUT.
    Register,
    /// Name, clearance or permissions differ: POST .../edit, same thumbprint.
    Edit,
    /// On the cluster, not in the store: DELETE.
    Unregister,
}

impl ClusterAction {
    /// The plan's legend: `+`, `~`, `-`.
    pub fn symbol(self) -> &'static str {
        match self {
            ClusterAction::Register => "+",
            ClusterAction::Edit => "~",
            ClusterAction::Unregister => "-",
        }
    }
    /// The action's name in the JSON plan.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterAction::Register => "register",
            ClusterAction::Edit => "edit",
            ClusterAction::Unregister => "unregister",
        }
    }
}

/// One change on the cluster, with the reason a person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterChange {
    /// What the change does.
    pub action: ClusterAction,
    /// The certs.toml client key, when the certificate belongs to one.
    pub key: Option<String>,
    /// The registration's name (the declared one; the cluster's for an unregister).
    pub name: String,
    /// The certificate's thumbprint; None while only the apply knows it.
    pub thumbprint: Option<Thumbprint>,
    /// Why, in words.
    pub reason: String,
    /// Whether it widens access (flagged in every format).
    pub escalation: bool,
    /// The registration before (None for a register).
    pub before: Option<Fields>,
    /// The registration after (None for an unregister).
    pub after: Option<Fields>,
    /// The field-by-field changes a reviewer reads (not in the JSON plan).
    #[serde(skip)]
    pub fields: Vec<FieldChange>,
    /// For a collection's secondary: the primary's thumbprint (the register needs it).
    #[serde(skip)]
    pub collection_primary: Option<String>,
    /// The `Disabled` an edit sends (None: as listed, so a registration disabled in the Studio
    /// stays disabled); `Some(true)` on the unregister of a client disabled where the server
    /// cannot disable (recorded, so that enabling registers it again).
    #[serde(skip)]
    pub disabled: Option<bool>,
}

/// The cluster part of a plan, as every format shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterView {
    /// certs.toml has no `[cluster]`.
    Absent,
    /// The cluster was left out; why, for the reader (`--offline`, `plan --base`, an admin
    /// certificate this very apply issues).
    Skipped(String),
    /// Planned against the cluster's listing.
    Planned(ClusterPlan),
}

impl ClusterView {
    /// The cluster plan, when there is one.
    pub fn plan(&self) -> Option<&ClusterPlan> {
        match self {
            ClusterView::Planned(p) => Some(p),
            _ => None,
        }
    }
    /// Whether it changes nothing on the cluster.
    pub fn is_empty(&self) -> bool {
        self.plan().is_none_or(ClusterPlan::is_empty)
    }
    /// Whether it changes nothing and nothing the store does not hold keeps access there.
    pub fn is_settled(&self) -> bool {
        self.plan().is_none_or(ClusterPlan::is_settled)
    }
}

/// How the cluster holds one certificate (docs/contract.md §7, `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RegistrationState {
    /// Registered with the store's name, clearance and permissions.
    #[serde(rename = "in sync")]
    InSync,
    /// In the store, not registered.
    #[serde(rename = "missing")]
    Missing,
    /// Registered with another name, clearance or permissions.
    #[serde(rename = "differs")]
    Differs,
    /// Registered as a client, not in the store.
    #[serde(rename = "extra")]
    Extra,
    /// Registered as a client, not in the store, and named by `[cluster] keep`: a known
    /// stranger, left alone and not drift.
    #[serde(rename = "extra (kept)")]
    Kept,
    /// Disabled in certs.toml, and the cluster grants it nothing: its registration is disabled,
    /// or absent where the server cannot disable one. Not drift.
    #[serde(rename = "disabled")]
    Disabled,
}

impl RegistrationState {
    /// As status shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::InSync => "in sync",
            RegistrationState::Missing => "missing",
            RegistrationState::Differs => "differs",
            RegistrationState::Extra => "extra",
            RegistrationState::Kept => "extra (kept)",
            RegistrationState::Disabled => "disabled",
        }
    }
    /// Whether the cluster holds it otherwise than certs.toml says (missing, differs, or an
    /// extra that `[cluster] keep` does not name): what `ravencert_cluster_drift_certificates`
    /// counts.
    pub fn is_drift(self) -> bool {
        !matches!(
            self,
            RegistrationState::InSync | RegistrationState::Kept | RegistrationState::Disabled
        )
    }
    /// Whether it is a registration the store does not hold (kept or not).
    pub fn is_extra(self) -> bool {
        matches!(self, RegistrationState::Extra | RegistrationState::Kept)
    }
}

/// How the cluster holds each of the store's certificates, in the store's order. The
/// registrations the store does not hold are [`extra_registrations`].
pub fn registration_states(
    registry: &Registry,
    listing: &ClusterListing,
) -> Vec<(EntryThumbprint, RegistrationState)> {
    let on_cluster: BTreeMap<&Thumbprint, &Registration> = listing
        .registrations
        .iter()
        .map(|r| (&r.thumbprint, r))
        .collect();
    registry
        .certificates
        .iter()
        .map(|e| {
            let t = e.thumbprint.clone();
            let listed = t.known().and_then(|k| on_cluster.get(k)).copied();
            if e.disabled {
                return (t, disable::state(e, listed));
            }
            let state = match listed.and_then(Grant::of_registration) {
                None if listed.is_some() => RegistrationState::Differs,
                None => RegistrationState::Missing,
                Some(g) if g.differing(Grant::of_entry(e)).is_empty() => RegistrationState::InSync,
                Some(_) => RegistrationState::Differs,
            };
            (t, state)
        })
        .collect()
}

/// What each client registration of `listing` grants, by thumbprint: the measure of
/// the store plan's escalations ([`super::PlanOptions::cluster_access`]). A registration
/// disabled in the Studio grants nothing, and the servers' own certificates are not clients.
pub fn held_access(listing: &ClusterListing) -> BTreeMap<Thumbprint, super::HeldAccess> {
    listing
        .registrations
        .iter()
        .filter(|r| r.disabled != Some(true))
        .filter_map(|r| {
            let clearance = r.clearance.client()?;
            let held = super::HeldAccess {
                clearance,
                permissions: r.permissions.clone(),
            };
            Some((r.thumbprint.clone(), held))
        })
        .collect()
}

/// The changes that bring a cluster's registrations to the store's certificates: registers,
/// then edits, then unregisters, so that a re-issued client is never locked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    /// The node URL that answered.
    pub url: String,
    /// The version it runs.
    pub server_version: ServerVersion,
    /// The changes, in the order they are applied.
    pub changes: Vec<ClusterChange>,
    /// What a reviewer should know but nothing changes for (prefixed `cluster:`).
    pub warnings: Vec<String>,
    /// The client registrations the store does not hold, whether this plan unregisters them
    /// or they stay; never the cluster's own, the well-known admins or ravencert's admin
    /// certificate (which ravencert never manages).
    pub extra: Vec<ExtraRegistration>,
    /// The listing's last uses, as read ([`ClusterListing::last_used`]), for what shows them.
    pub last_used: BTreeMap<Thumbprint, time::OffsetDateTime>,
}

/// A client registration on the cluster that the store does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraRegistration {
    /// Its thumbprint.
    pub thumbprint: Thumbprint,
    /// Its name on the cluster.
    pub name: String,
    /// For a collection's secondary: its primary's thumbprint (upper case); RavenDB removes
    /// the secondary with it.
    pub collection_primary: Option<String>,
    /// Its clearance on the cluster.
    pub clearance: ClusterClearance,
    /// Named by `[cluster] keep` (itself or its collection's primary): a known stranger,
    /// never unregistered and not drift.
    pub known: bool,
    /// The note `[cluster] keep` gives it, if any.
    pub note: Option<String>,
}

impl ExtraRegistration {
    /// As `status` marks it: `extra`, or `extra (kept)` for a known stranger.
    pub fn state(&self) -> RegistrationState {
        if self.known {
            RegistrationState::Kept
        } else {
            RegistrationState::Extra
        }
    }
}

impl ClusterPlan {
    /// The registrations `[cluster] keep` names (known strangers): they stay, declared, and
    /// need no attention.
    pub fn known(&self) -> Vec<&ExtraRegistration> {
        self.extra.iter().filter(|e| e.known).collect()
    }

    /// The registrations the store does not hold that stay after this plan though nothing
    /// declares them (prune is off, or RavenDB cannot remove them alone): they still have
    /// access. Known strangers (`[cluster] keep`) are not among them.
    pub fn kept(&self) -> Vec<&ExtraRegistration> {
        let gone: BTreeSet<&str> = self
            .changes
            .iter()
            .filter(|c| c.action == ClusterAction::Unregister)
            .filter_map(|c| c.thumbprint.as_ref().map(Thumbprint::as_str))
            .collect();
        self.extra
            .iter()
            .filter(|e| !e.known)
            .filter(|e| {
                !gone.contains(e.thumbprint.as_str())
                    && !e
                        .collection_primary
                        .as_deref()
                        .is_some_and(|p| gone.contains(p))
            })
            .collect()
    }

    /// "No changes" in the contract's sense: nothing to send, and no registration the store
    /// does not hold keeps access.
    pub fn is_settled(&self) -> bool {
        self.changes.is_empty() && self.kept().is_empty()
    }

    /// Whether the plan changes nothing on the cluster.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    /// How many changes have this action.
    pub fn count(&self, action: ClusterAction) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// The cluster changes that make the cluster at `opts.url` trust exactly the certificates of
/// `projected` (the store's registry after the store plan, [`super::project`]'s output; or the
/// store's registry itself once the store is applied, where every thumbprint is known).
///
/// Refused before any change when a declared value is too new for the server (`Read` access
/// before RavenDB 5.2), or when the unregisters break the deletion guards.
pub fn plan_cluster(
    projected: &Registry,
    listing: &ClusterListing,
    opts: &ClusterOptions,
) -> Result<ClusterPlan, PlanError> {
    check_version(projected, &listing.version, &opts.url)?;
    let mut planner = ClusterPlanner::new(projected, listing, opts);
    let extra = extra_registrations(
        &planner.desired_thumbprints,
        listing,
        opts.admin_thumbprint.as_ref(),
        &opts.keep,
    );
    planner.studio_disabled_warnings();
    planner.keep_warnings();
    let mut changes = planner.desired_changes();
    check_edits(&changes, &listing.version, &opts.url)?;
    let unregisters = planner.unregisters();
    planner.guard(&unregisters)?;
    changes.extend(unregisters.into_iter().map(|u| u.change));
    // Registers first (the admin's own first of all), then edits, then unregisters (stable:
    // key order within each).
    let admin_key = opts.admin_key.as_deref();
    changes.sort_by_key(|c| {
        (
            c.action,
            c.key.as_deref() != admin_key || admin_key.is_none(),
        )
    });
    Ok(ClusterPlan {
        url: opts.url.clone(),
        server_version: listing.version.clone(),
        changes,
        warnings: planner.warnings,
        extra,
        last_used: listing.last_used.clone(),
    })
}

/// The newest RavenDB version (major, minor) whose edit handler ravencert has checked: an edit
/// without `TwoFactorAuthenticationKey` keeps the stored key, and one carrying the listed
/// `Disabled` keeps it (read from the servers' code, 4.1 to 7.2).
pub const LAST_CHECKED_EDIT: (u32, u32) = (7, 2);

/// Refuses an edit on a server newer than [`LAST_CHECKED_EDIT`], naming the first one.
fn check_edits(
    changes: &[ClusterChange],
    version: &ServerVersion,
    url: &str,
) -> Result<(), PlanError> {
    let (major, minor) = LAST_CHECKED_EDIT;
    let newer = (version.major, version.minor) > (major, minor);
    match changes.iter().find(|c| c.action == ClusterAction::Edit) {
        Some(c) if newer => Err(PlanError::EditOnUncheckedServer {
            name: c.name.clone(),
            thumbprint: c
                .thumbprint
                .as_ref()
                .map(Thumbprint::to_string)
                .unwrap_or_default(),
            url: url.to_string(),
            version: version.full.clone(),
        }),
        _ => Ok(()),
    }
}

/// The first RavenDB version (major, minor) that holds `access`: `Read` came with 5.2.
pub(super) fn first_version(access: Access) -> (u32, u32) {
    match access {
        Access::Read => (5, 2),
        Access::ReadWrite | Access::Admin => (4, 0),
    }
}

/// Refuses a declared value the server's version cannot hold (`Read` before RavenDB 5.2),
/// naming the first client (in key order) that declares it.
fn check_version(
    projected: &Registry,
    version: &ServerVersion,
    url: &str,
) -> Result<(), PlanError> {
    let mut entries: Vec<&CertEntry> = projected.certificates.iter().collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    for e in entries {
        let too_new = e.permissions.iter().find(|(_, a)| {
            let (major, minor) = first_version(**a);
            !version.at_least(major, minor)
        });
        if let Some((db, access)) = too_new {
            return Err(PlanError::ServerTooOld {
                key: e.key.clone(),
                database: db.clone(),
                access: *access,
                url: url.to_string(),
                version: version.full.clone(),
            });
        }
    }
    Ok(())
}

/// A name, clearance and permissions: what an edit sets and a comparison looks at.
#[derive(Clone, Copy)]
struct Grant<'a> {
    name: &'a str,
    clearance: Clearance,
    permissions: &'a BTreeMap<String, Access>,
}

impl<'a> Grant<'a> {
    fn of_entry(e: &'a CertEntry) -> Grant<'a> {
        Grant {
            name: &e.name,
            clearance: e.clearance,
            permissions: &e.permissions,
        }
    }
    fn of_set(s: &'a RegistrationFields) -> Grant<'a> {
        Grant {
            name: &s.name,
            clearance: s.clearance,
            permissions: &s.permissions,
        }
    }
    /// A client registration's grant; None for a server's own or an unauthenticated one.
    fn of_registration(r: &'a Registration) -> Option<Grant<'a>> {
        Some(Grant {
            name: &r.name,
            clearance: r.clearance.client()?,
            permissions: &r.permissions,
        })
    }
    fn access(self) -> (Clearance, &'a BTreeMap<String, Access>) {
        (self.clearance, self.permissions)
    }
    /// Which of name, clearance and permissions differ.
    fn differing(self, other: Grant<'_>) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.name != other.name {
            out.push("name");
        }
        if self.clearance != other.clearance {
            out.push("clearance");
        }
        if self.permissions != other.permissions {
            out.push("permissions");
        }
        out
    }
}

/// The field-by-field changes from `old` (None: nothing registered) to `new`.
fn field_changes(old: Option<Grant<'_>>, new: Grant<'_>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let old_name = old.map(|o| o.name.to_string());
    if old_name.as_deref() != Some(new.name) {
        out.push(FieldChange::new(
            Field::Name,
            old_name,
            Some(new.name.to_string()),
        ));
    }
    let old_clearance = old.map(|o| o.clearance);
    if old_clearance != Some(new.clearance) {
        out.push(FieldChange::new(
            Field::Clearance,
            old_clearance.map(|c| c.to_string()),
            Some(new.clearance.to_string()),
        ));
    }
    let none = BTreeMap::new();
    let old_perms = old.map_or(&none, |o| o.permissions);
    out.extend(super::clients::permission_changes(
        old_perms,
        new.permissions,
    ));
    out
}

fn registration_fields(r: &Registration) -> Fields {
    Fields {
        thumbprint: Some(r.thumbprint.clone()),
        name: Some(r.name.clone()),
        clearance: r.clearance.client(),
        permissions: Some(r.permissions.clone()),
        protect: false,
        until: None,
        disabled: r.disabled == Some(true),
        not_after: None,
        settings: Default::default(),
    }
}

/// The fields a registration takes from the store's entry: `protect` and `until` are the
/// store's alone (RavenDB has no such fields; `until` reaches the cluster as the certificate's
/// end), so they are left out.
fn registered_fields(e: &CertEntry) -> Fields {
    Fields {
        protect: false,
        until: None,
        ..entry_fields(e)
    }
}

/// One cluster planning: its inputs, the lookups its parts share, the warnings they collect.
struct ClusterPlanner<'a> {
    listing: &'a ClusterListing,
    opts: &'a ClusterOptions,
    /// The store's certificates: primaries before their secondaries, in key order.
    desired: Vec<&'a CertEntry>,
    /// The store's known thumbprints.
    desired_thumbprints: BTreeSet<Thumbprint>,
    /// The cluster's registrations by thumbprint.
    on_cluster: BTreeMap<&'a Thumbprint, &'a Registration>,
    /// Per client key, the cluster's registrations of its store certificates.
    registered_by_key: BTreeMap<&'a str, Vec<&'a Registration>>,
    /// Per name, the cluster's registrations ravencert set that the store no longer holds.
    retired_by_name: BTreeMap<&'a str, Vec<&'a Registration>>,
    /// Per name, the store's certificate in use under it (else its first).
    owners: BTreeMap<&'a str, &'a CertEntry>,
    warnings: Vec<String>,
}

impl<'a> ClusterPlanner<'a> {
    fn new(
        projected: &'a Registry,
        listing: &'a ClusterListing,
        opts: &'a ClusterOptions,
    ) -> ClusterPlanner<'a> {
        let mut desired: Vec<&CertEntry> = projected.certificates.iter().collect();
        desired.sort_by(|a, b| {
            (&a.key, a.collection_primary.is_some(), &a.thumbprint).cmp(&(
                &b.key,
                b.collection_primary.is_some(),
                &b.thumbprint,
            ))
        });
        let mut planner = ClusterPlanner {
            listing,
            opts,
            desired_thumbprints: desired
                .iter()
                .filter_map(|e| e.thumbprint.known().cloned())
                .collect(),
            desired,
            on_cluster: listing
                .registrations
                .iter()
                .map(|r| (&r.thumbprint, r))
                .collect(),
            registered_by_key: BTreeMap::new(),
            retired_by_name: BTreeMap::new(),
            owners: BTreeMap::new(),
            warnings: Vec::new(),
        };
        planner.index();
        planner
    }

    /// The lookups by key and name, built once (a cluster can hold thousands).
    fn index(&mut self) {
        for &e in &self.desired {
            let active = e.retire_after.is_none() && e.collection_primary.is_none();
            let owner = self.owners.entry(&e.name).or_insert(e);
            if active && !(owner.retire_after.is_none() && owner.collection_primary.is_none()) {
                *owner = e;
            }
            if let Some(r) = self.registered(e) {
                self.registered_by_key.entry(&e.key).or_default().push(r);
            }
        }
        for (&t, r) in &self.on_cluster {
            if self.opts.last_set.contains_key(t) && !self.desired_thumbprints.contains(t) {
                self.retired_by_name.entry(&r.name).or_default().push(r);
            }
        }
    }

    /// A register or an edit per store certificate the cluster does not hold as declared.
    fn desired_changes(&mut self) -> Vec<ClusterChange> {
        let mut changes = Vec::new();
        for e in self.desired.clone() {
            let change = match (self.registered(e), e.disabled) {
                // Disabled and not registered: it stays so until enabled.
                (None, true) => None,
                (None, false) => Some(self.register(e)),
                (Some(r), true) if !self.listing.can_disable => self.unregister_disabled(e, r),
                (Some(r), _) => self.edit(e, r),
            };
            changes.extend(change);
        }
        changes
    }

    /// The cluster's registration of store certificate `e`, if it is registered.
    fn registered(&self, e: &CertEntry) -> Option<&'a Registration> {
        self.on_cluster.get(e.thumbprint.known()?).copied()
    }

    fn register(&self, e: &CertEntry) -> ClusterChange {
        let removed = e
            .thumbprint
            .known()
            .is_some_and(|t| self.opts.last_set.contains_key(t));
        let enabled = self.enabled_again(e);
        let mut reason = if enabled {
            "enabled in certs.toml: registered again".to_string()
        } else if removed {
            "removed from the cluster outside ravencert".to_string()
        } else {
            "not registered on the cluster".to_string()
        };
        if let Some(primary) = &e.collection_primary {
            let primary = EntryThumbprint::pending(primary.as_str());
            reason.push_str(&format!(" (collection secondary of {})", shown(&primary)));
        } else if let Some(until) = e.retire_after {
            reason.push_str(&format!(
                " (old certificate kept through the rotation overlap until {})",
                until.date()
            ));
        }
        let new = Grant::of_entry(e);
        let priors = self.priors(e);
        let escalation = if priors.is_empty() {
            widens(None, new.access())
        } else {
            priors
                .iter()
                .all(|p| widens(Some(p.access()), new.access()))
        };
        ClusterChange {
            action: ClusterAction::Register,
            key: Some(e.key.clone()),
            name: e.name.clone(),
            thumbprint: e.thumbprint.known().cloned(),
            reason,
            // Enabling gives access back: flagged, whatever it grants.
            escalation: escalation || enabled,
            before: None,
            after: Some(registered_fields(e)),
            fields: field_changes(None, new),
            collection_primary: e.collection_primary.clone(),
            disabled: None,
        }
    }

    /// The grants the cluster already gives this client through other certificates (its other
    /// store certificates, or those ravencert registered under its name): a re-issue with the
    /// same access is no escalation.
    fn priors(&self, e: &CertEntry) -> Vec<Grant<'a>> {
        let mine = self.registered_by_key.get(e.key.as_str());
        let retired = self.retired_by_name.get(e.name.as_str());
        mine.into_iter()
            .chain(retired)
            .flatten()
            .filter_map(|r| Grant::of_registration(r))
            .collect()
    }

    fn edit(&mut self, e: &CertEntry, r: &Registration) -> Option<ClusterChange> {
        let Some(have) = Grant::of_registration(r) else {
            self.warnings.push(format!(
                "cluster: certificate {} of client '{}' is registered on the cluster as {}; ravencert never changes such a registration — remove it in the Studio if it is wrong",
                e.thumbprint,
                e.key,
                r.clearance
            ));
            return None;
        };
        let want = Grant::of_entry(e);
        let differing = have.differing(want);
        let toggle = self.toggle(e, r);
        if differing.is_empty() && toggle.reason.is_none() {
            return None;
        }
        let is_admin = self
            .opts
            .admin_thumbprint
            .as_ref()
            .is_some_and(|a| e.thumbprint == *a);
        // Narrowing: what the cluster grants is more than what is declared.
        if is_admin && widens(Some(want.access()), have.access()) {
            self.warnings.push(format!(
                "cluster: certificate {} is the one ravencert authenticates with; ravencert never narrows its own access ({} on the cluster, {} declared for clients.{}) — change it in the Studio if that is meant",
                e.thumbprint,
                have.clearance,
                want.clearance,
                e.key
            ));
            return None;
        }
        let mut reasons = Vec::new();
        if !differing.is_empty() {
            reasons.push(self.edit_reason(e, want, &differing));
        }
        reasons.extend(toggle.reason);
        let mut fields = field_changes(Some(have), want);
        fields.extend(toggle.field);
        let mut after = registered_fields(e);
        after.disabled = toggle.send.or(r.disabled) == Some(true);
        Some(ClusterChange {
            action: ClusterAction::Edit,
            key: Some(e.key.clone()),
            name: e.name.clone(),
            thumbprint: e.thumbprint.known().cloned(),
            reason: reasons.join("; "),
            // A grant widened while disabled gives nothing yet: enabling it is flagged then.
            escalation: (widens(Some(have.access()), want.access()) && !e.disabled)
                || toggle.escalation,
            before: Some(registration_fields(r)),
            after: Some(after),
            fields,
            collection_primary: e.collection_primary.clone(),
            disabled: toggle.send,
        })
    }

    /// Why an edit sets name, clearance or permissions (`differing`, not empty): certs.toml
    /// changed them, or the cluster did.
    fn edit_reason(&self, e: &CertEntry, want: Grant<'_>, differing: &[&str]) -> String {
        let set = e.thumbprint.known().and_then(|t| self.opts.last_set.get(t));
        match set {
            Some(set) if Grant::of_set(set).differing(want).is_empty() => {
                "changed on the cluster outside ravencert".to_string()
            }
            Some(set) => format!(
                "{} changed in certs.toml",
                Grant::of_set(set).differing(want).join(", ")
            ),
            None => format!(
                "{} {} from the store",
                differing.join(", "),
                if differing.len() == 1 {
                    "differs"
                } else {
                    "differ"
                }
            ),
        }
    }

    /// Whether ravencert must never unregister `r`: a server's own certificate, a well-known
    /// admin, the certificate ravencert authenticates with.
    fn protected(&self, r: &Registration) -> bool {
        unmanaged(self.listing, self.opts.admin_thumbprint.as_ref(), r)
    }

    /// Whether `[cluster] keep` covers `r`: a known stranger, never unregistered.
    fn known(&self, r: &Registration) -> bool {
        keep_of(&self.opts.keep, r).is_some()
    }

    /// A warning per `[cluster] keep` entry that keeps nothing: a certificate the store holds
    /// (ravencert manages it), or one the cluster does not list.
    fn keep_warnings(&mut self) {
        for t in self.opts.keep.keys() {
            let why = if self.desired_thumbprints.contains(t) {
                "the store holds it, so ravencert manages it and keep does not apply"
            } else if !self.on_cluster.contains_key(t) {
                "it is not registered on the cluster: there is nothing to keep (remove it from keep once it is gone for good)"
            } else {
                continue;
            };
            self.warnings
                .push(format!("cluster: [cluster] keep names {t}, but {why}"));
        }
    }

    /// The store's certificate in use for the client declared under `name`, if any.
    fn owner(&self, name: &str) -> Option<&'a CertEntry> {
        self.owners.get(name).copied()
    }
}

/// A store certificate for a message: its thumbprint, or what stands for one only the apply
/// knows.
fn certificate(thumbprint: &EntryThumbprint) -> String {
    match thumbprint.known() {
        Some(t) => t.to_string(),
        None => format!("a new certificate ({})", shown(thumbprint)),
    }
}
