//! The clients declared in certs.toml: generated ones (re-issued when due) and uploaded ones
//! (registered as the file holds them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{
    declared_lifetime_reasons, desired_fields, entry_fields, known, list, renewal_reason, shown,
    until, Action, BundlePassword, Change, Field, FieldChange, Fields, Issued, Lifetime, NotRead,
    PlanError, Planner, ProtectedChange, Target, NO_PASSWORD,
};
use crate::config::{ClientDesired, ClientSpec, GenerateSpec, SecretRef};
use crate::model::{Access, Clearance, EntryThumbprint, Origin, SinceBase, Thumbprint, Uploaded};
use crate::registry::{CertEntry, Registry};

impl<'a> Planner<'a> {
    /// One change per declared client that differs from the store, in key order.
    pub(super) fn clients(&mut self) -> Result<Vec<Change>, PlanError> {
        super::check_declared(self.desired, self.now)?;
        super::checks::check_uploads(self.desired, self.actual)?;
        let desired = self.desired;
        let mut changes = Vec::new();
        for client in desired.declared.clients.values() {
            let current = self.active.get(client.key.as_str()).copied();
            if let Some(u) = client.until.filter(|u| until::ended(Some(*u), self.now)) {
                // Registered, `deletions` removes it; otherwise there is nothing to issue.
                if current.is_none() {
                    self.warnings.push(format!(
                        "client '{}': until {} has passed; not issued (access ended before it began) — remove clients.{} from certs.toml",
                        client.key,
                        crate::model::rfc3339(u),
                        client.key
                    ));
                }
                continue;
            }
            if current.is_some_and(|c| c.protect) && !client.protect {
                self.warnings.push(format!(
                    "client '{}' is no longer protected once this plan is applied: a later plan may delete it (removed from certs.toml, with prune = true) or re-issue it (a key or validity change)",
                    client.key
                ));
            }
            let change = match &client.source {
                ClientSpec::Generate(spec) => self.generated(client, spec, current)?,
                ClientSpec::Upload(file) => self.upload(client, &file.path, current)?,
            };
            changes.extend(change);
        }
        Ok(changes)
    }

    fn generated(
        &mut self,
        client: &ClientDesired,
        spec: &GenerateSpec,
        current: Option<&CertEntry>,
    ) -> Result<Option<Change>, PlanError> {
        let Some(current) = current else {
            let suspended = self.suspended(client);
            return Ok(Some(client_create(
                client,
                "not registered".into(),
                suspended,
            )));
        };
        let after = desired_fields(client);
        let new_access = (client.clearance, &client.permissions);
        let fields = field_changes(current, client);
        let escalation = ((widens(Some((current.clearance, &current.permissions)), new_access)
            || enabling(current, client))
            && !self.held_on_cluster(std::slice::from_ref(&current.thumbprint), new_access))
            || until::extends(current.until, client.until);
        let explicit = self.opts.replace.contains(&client.key);
        let reasons = self.reissue_reasons(client, spec, current, explicit);
        let reasons = self.hold_disabled(client, explicit, reasons);
        let mut reasons = self.guard_protected(client, current, explicit, reasons)?;
        let edit = Edit {
            current,
            after,
            fields,
            escalation,
            thumbprints: self.with_retiring(&client.key, vec![current.thumbprint.clone()]),
        };
        if !reasons.is_empty() {
            reasons.splice(0..0, disabled_reason(current, client).map(String::from));
            return Ok(Some(edit.into_change(
                Action::Replace,
                client,
                reasons.join("; "),
            )));
        }
        let notes = self.generated_notes(client, spec, current);
        Ok(update_change(client, edit, notes))
    }

    /// A disabled client is not re-issued for what the clock or the store asks (renewal due,
    /// expired, a bundle or file lost): its access is suspended, and it is re-issued once
    /// enabled. A warning says so. What certs.toml or `--replace` asks for still goes through.
    fn hold_disabled(
        &mut self,
        client: &ClientDesired,
        explicit: bool,
        reasons: Reissue,
    ) -> Reissue {
        if !client.disabled || explicit || reasons.due.is_empty() {
            return reasons;
        }
        self.warnings.push(format!(
            "client '{}' is disabled: not renewed although {}; it is re-issued when enabled",
            client.key,
            reasons.due.join("; ")
        ));
        Reissue {
            due: Vec::new(),
            ..reasons
        }
    }

    /// A protected client (recorded in the store, or declared) is not re-issued in one step
    /// unless `--replace` names it: a re-issue certs.toml asks for is refused; one the clock or
    /// the store asks for (renewal due, expired, a bundle or file lost) becomes a warning, so
    /// that it never blocks every apply. The reasons that remain.
    fn guard_protected(
        &mut self,
        client: &ClientDesired,
        current: &CertEntry,
        explicit: bool,
        reasons: Reissue,
    ) -> Result<Vec<String>, PlanError> {
        if explicit || !(current.protect || client.protect) {
            return Ok(reasons.all());
        }
        if !reasons.declared.is_empty() {
            return Err(PlanError::Protected {
                key: client.key.clone(),
                change: ProtectedChange::Reissue(reasons.declared.join("; ")),
            });
        }
        if !reasons.due.is_empty() {
            self.warnings.push(format!(
                "client '{}' is protected: not re-issued although {}; run with --replace {} to re-issue it",
                client.key,
                reasons.due.join("; "),
                client.key
            ));
        }
        Ok(Vec::new())
    }

    /// Why a generated client's certificate must be issued again (none: it stays).
    fn reissue_reasons(
        &mut self,
        client: &ClientDesired,
        spec: &GenerateSpec,
        current: &CertEntry,
        explicit: bool,
    ) -> Reissue {
        let mut declared = Vec::new();
        if explicit {
            declared.push(format!("--replace {}", client.key));
        }
        if current.source == Origin::Uploaded {
            declared.push("now generated (was uploaded)".into());
        }
        let was = Issued::from(current);
        declared.extend(declared_lifetime_reasons(
            &was,
            &Lifetime {
                key: spec.key,
                validity: spec.validity,
                renew_before: spec.renew_before,
                until: current.until,
            },
        ));
        declared.extend(until::reissue_reasons(
            current.until,
            client.until,
            was.not_after,
        ));
        let mut due = Vec::new();
        let renewal = renewal_reason(was.not_before, was.not_after, spec.renew_before, self.now);
        // A certificate cut at `until` is not renewed: a renewal cannot go past `until`. Inside
        // its renewal window the plan says when access ends instead.
        if !until::capped(current.until, was.not_after) {
            due.extend(renewal);
        } else if renewal.is_some() && current.until == client.until {
            self.warnings.push(until::ending_warning(
                &client.key,
                was.not_after,
                was.not_after - self.now,
            ));
        }
        if current.source == Origin::Generated && !self.actual.bundles_ok.contains(&client.key) {
            due.push("issued bundle lost".into());
        }
        if self.actual.lost.contains(current.thumbprint.as_str())
            && !self
                .actual
                .recoverable
                .contains(current.thumbprint.as_str())
        {
            due.push(
                "public certificate file lost (the old one is not kept for an overlap)".into(),
            );
        }
        Reissue { declared, due }
    }

    /// What an apply does to a generated client's certificate besides its fields: a file
    /// restored, its bundle packaged again.
    fn generated_notes(
        &mut self,
        client: &ClientDesired,
        spec: &GenerateSpec,
        current: &CertEntry,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if self.actual.lost.contains(current.thumbprint.as_str())
            && self
                .actual
                .recoverable
                .contains(current.thumbprint.as_str())
        {
            notes.push(
                "certificate file removed outside ravencert: restored from the issued bundle"
                    .to_string(),
            );
        }
        if current.source == Origin::Generated {
            let declared = self
                .opts
                .bundle_passwords
                .as_ref()
                .map(|m| match m.get(&client.key) {
                    None => DeclaredPassword::Fingerprint(NO_PASSWORD),
                    Some(BundlePassword::Fingerprint(f)) => DeclaredPassword::Fingerprint(f),
                    Some(BundlePassword::NotRead(why)) => DeclaredPassword::NotRead(why),
                });
            notes.extend(bundle_reasons(current, spec, declared));
            if let Some(DeclaredPassword::NotRead(why)) = declared {
                if !password_compared(current, declared) {
                    self.not_read
                        .push(bundle_password_not_read(client, spec, why));
                }
            }
        }
        notes
    }

    fn upload(
        &mut self,
        client: &ClientDesired,
        path: &Path,
        current: Option<&CertEntry>,
    ) -> Result<Option<Change>, PlanError> {
        let Some(certs) = self.desired.files.uploads.get(&client.key) else {
            // A review did not read the file: its declared fields are still compared.
            return Ok(self.unread_upload(client, path, current));
        };
        if self.opts.replace.contains(&client.key) {
            return Err(PlanError::ReplaceUpload {
                key: client.key.clone(),
                path: path.to_path_buf(),
            });
        }
        self.warn_upload_until(client, certs);
        let want: Vec<Thumbprint> = certs.iter().map(|c| c.info.thumbprint.clone()).collect();
        let mut after = desired_fields(client);
        after.thumbprint = want.first().cloned();
        after.not_after = certs.first().map(|c| c.info.not_after);
        let access = (client.clearance, &client.permissions);
        let Some(current) = current else {
            let escalation = widens(None, access)
                && !self.suspended(client)
                && !self.held_on_cluster(&want, access);
            return Ok(Some(upload_create(client, certs, want, after, escalation)));
        };
        let have = collection(current);
        let fields = field_changes(current, client);
        let escalation = widens(Some((current.clearance, &current.permissions)), access)
            || enabling(current, client);
        // Access for longer is flagged whatever the cluster holds: the listing says what access
        // a certificate has, not until when.
        let longer = until::extends(current.until, client.until);
        if !same_set(&want, &have) {
            let replaced = UploadReplace {
                client,
                path,
                current,
                certs,
                want,
                have,
            };
            let change = self.upload_replace(replaced, fields, escalation, after)?;
            return Ok(change.map(|c| if longer { c.with_escalation(true) } else { c }));
        }
        self.warn_upload_expiry(client, path, certs);
        let restore = have
            .iter()
            .any(|t| self.actual.lost.contains(t.as_str()))
            .then(|| {
                format!(
                    "certificate file removed outside ravencert: restored from {}",
                    path.display()
                )
            });
        let edit = Edit {
            current,
            after,
            fields,
            escalation: (escalation && !self.held_on_cluster(&have, access)) || longer,
            thumbprints: self.with_retiring(&client.key, have),
        };
        Ok(update_change(client, edit, restore.into_iter().collect()))
    }

    /// An uploaded client whose file a review did not read (its password, or the repository
    /// does not hold it): its name, clearance and databases are compared as usual; its
    /// certificates only as far as the file's bytes tell — the same file as at BASE keeps
    /// them, another one is a replace whose new holder is not known, flagged when the client
    /// grants any access.
    fn unread_upload(
        &mut self,
        client: &ClientDesired,
        path: &Path,
        current: Option<&CertEntry>,
    ) -> Option<Change> {
        let since =
            super::unread(self.desired, &format!("clients.{}.upload", client.key))?.since_base;
        let Some(current) = current else {
            return Some(client_create(
                client,
                "not registered (upload; its certificates were not read in review)".into(),
                self.suspended(client),
            ));
        };
        let after = desired_fields(client);
        let access = (client.clearance, &client.permissions);
        let fields = field_changes(current, client);
        let escalation = widens(Some((current.clearance, &current.permissions)), access)
            || enabling(current, client)
            || until::extends(current.until, client.until);
        let edit = Edit {
            current,
            after,
            fields,
            escalation,
            thumbprints: collection(current),
        };
        if !matches!(since, SinceBase::Changed | SinceBase::New) {
            return update_change(client, edit, Vec::new());
        }
        let reason = format!(
            "{} changed since BASE; its certificates were not read in review, so who holds this access after the change is not shown",
            path.display()
        );
        if client.protect {
            self.warnings.push(format!(
                "client '{}' is protected: not replaced although {reason}; set protect = false to let this change through",
                client.key
            ));
            return None;
        }
        let grants = client.clearance != Clearance::ValidUser || !client.permissions.is_empty();
        let escalation = edit.escalation || grants;
        Some(
            edit.into_change(Action::Replace, client, reason)
                .with_escalation(escalation),
        )
    }

    /// The upload file now holds other certificates than those registered.
    fn upload_replace(
        &mut self,
        u: UploadReplace,
        mut fields: Vec<FieldChange>,
        escalation: bool,
        after: Fields,
    ) -> Result<Option<Change>, PlanError> {
        let client = u.client;
        let reason = format!(
            "{} now holds {} (registered: {})",
            u.path.display(),
            list(&u.want),
            list(&u.have)
        );
        // A new holder is what certs.toml asks for: refused, as a key change of a generated
        // client is (`--replace` cannot re-issue an upload).
        if client.protect || u.current.protect {
            return Err(PlanError::Protected {
                key: client.key.clone(),
                change: ProtectedChange::ReplaceUpload(reason),
            });
        }
        // Someone new holds the access: an escalation even when the access stays the same,
        // unless the cluster grants it to them already.
        let newcomer = u.want.iter().any(|t| !u.have.iter().any(|h| h == t));
        let grants = client.clearance != Clearance::ValidUser || !client.permissions.is_empty();
        let access = (client.clearance, &client.permissions);
        let escalation =
            (escalation || (newcomer && grants)) && !self.held_on_cluster(&u.want, access);
        fields.push(FieldChange::new(
            Field::Certificate,
            Some(registered_holders(&self.actual.registry, &u.have)),
            Some(uploaded_holders(u.certs)),
        ));
        Ok(Some(
            Change::new(Action::Replace, Target::Client, &client.key, reason)
                .with_escalation(escalation)
                .with_fields(Some(entry_fields(u.current)), Some(after))
                .with_changes(fields)
                .with_thumbprints(u.have),
        ))
    }

    /// Whether the cluster, as this plan read it, already grants `access` (or more) to every
    /// certificate in `thumbprints`: then holding them in the store with it widens nothing.
    /// False when the plan did not read the cluster, or for a certificate it does not list.
    fn held_on_cluster<T: AsRef<str>>(
        &self,
        thumbprints: &[T],
        access: (Clearance, &BTreeMap<String, Access>),
    ) -> bool {
        let Some(held) = &self.opts.cluster_access else {
            return false;
        };
        // A placeholder (a review's assumed store) is never a key: not held.
        !thumbprints.is_empty()
            && thumbprints.iter().all(|t| {
                held.get(t.as_ref())
                    .is_some_and(|h| !widens(Some((h.clearance, &h.permissions)), access))
            })
    }

    /// `thumbprints` and the client's older certificates still in their rotation overlap: a
    /// change of the client (disabled, until, its access) is theirs too, so that an old
    /// certificate never keeps what the client no longer has.
    fn with_retiring(
        &self,
        key: &str,
        mut thumbprints: Vec<EntryThumbprint>,
    ) -> Vec<EntryThumbprint> {
        for t in self.retiring.get(key).into_iter().flatten() {
            if !thumbprints.contains(t) {
                thumbprints.push((*t).clone());
            }
        }
        thumbprints
    }

    /// Whether a disabled client's access is really suspended: with `[cluster]` its
    /// registration is disabled or removed; without, only the store records it and its bundle
    /// grants what it says, so creating it is flagged like any other.
    fn suspended(&self, client: &ClientDesired) -> bool {
        client.disabled && self.desired.declared.cluster.is_some()
    }

    /// Uploaded certificates are never re-issued by ravencert: their expiry is a warning.
    fn warn_upload_expiry(&mut self, client: &ClientDesired, path: &Path, certs: &[Uploaded]) {
        for c in certs {
            if let Some(why) = renewal_reason(
                c.info.not_before,
                c.info.not_after,
                self.desired.declared.renew_before,
                self.now,
            ) {
                self.warnings.push(format!(
                    "client '{}': uploaded certificate {} {why}; ravencert cannot re-issue it — put a new one in {}",
                    client.key,
                    short(c.info.thumbprint.as_str()),
                    path.display()
                ));
            }
        }
    }

    /// An uploaded certificate outlives `until`: ravencert ends its access then, the TLS layer
    /// only at its own end.
    fn warn_upload_until(&mut self, client: &ClientDesired, certs: &[Uploaded]) {
        for c in certs {
            if let Some(u) = client.until.filter(|u| c.info.not_after > *u) {
                self.warnings.push(format!(
                    "client '{}': uploaded certificate {} ends {}, after until {}: only ravencert ends its access at until (apply or watch); the TLS layer ends it at {}",
                    client.key,
                    short(c.info.thumbprint.as_str()),
                    crate::model::rfc3339(c.info.not_after),
                    crate::model::rfc3339(u),
                    crate::model::rfc3339(c.info.not_after),
                ));
            }
        }
    }
}

/// Why a generated client is to be issued again, by cause.
struct Reissue {
    /// certs.toml asks for it (`--replace`, a key type or validity change, no longer an upload).
    declared: Vec<String>,
    /// The clock or the store asks for it (renewal due, expired, bundle or file lost).
    due: Vec<String>,
}

impl Reissue {
    /// Every reason, in the order the plan gives them.
    fn all(self) -> Vec<String> {
        let mut all = self.declared;
        all.extend(self.due);
        all
    }
}

/// An uploaded client whose file holds other certificates than those registered.
struct UploadReplace<'u> {
    client: &'u ClientDesired,
    path: &'u Path,
    current: &'u CertEntry,
    certs: &'u [Uploaded],
    /// The thumbprints in the file.
    want: Vec<Thumbprint>,
    /// The thumbprints registered (the collection, primary first).
    have: Vec<EntryThumbprint>,
}

/// A client not registered yet, created with its declared fields: an escalation when it is
/// declared any access.
fn client_create(client: &ClientDesired, reason: String, suspended: bool) -> Change {
    // Created disabled on a cluster, it grants nothing until enabled (flagged then).
    let escalation = widens(None, (client.clearance, &client.permissions)) && !suspended;
    Change::new(Action::Create, Target::Client, &client.key, reason)
        .with_escalation(escalation)
        .with_fields(None, Some(desired_fields(client)))
        .with_changes(field_changes_from_nothing(client))
}

/// An uploaded client not registered yet.
fn upload_create(
    client: &ClientDesired,
    certs: &[Uploaded],
    want: Vec<Thumbprint>,
    after: Fields,
    escalation: bool,
) -> Change {
    let mut fields = field_changes_from_nothing(client);
    fields.push(FieldChange::new(
        Field::Certificate,
        None,
        Some(uploaded_holders(certs)),
    ));
    let reason = if want.len() > 1 {
        format!("not registered (upload of a collection of {})", want.len())
    } else {
        "not registered (upload)".into()
    };
    Change::new(Action::Create, Target::Client, &client.key, reason)
        .with_escalation(escalation)
        .with_fields(None, Some(after))
        .with_changes(fields)
        .with_thumbprints(want.into_iter().map(EntryThumbprint::from).collect())
}

/// The same thumbprints, in any order.
fn same_set(a: &[Thumbprint], b: &[EntryThumbprint]) -> bool {
    let mut a: Vec<&str> = a.iter().map(Thumbprint::as_str).collect();
    let mut b: Vec<&str> = b.iter().map(EntryThumbprint::as_str).collect();
    a.sort();
    b.sort();
    a == b
}

/// Does going from `old` to `new` widen access? (a clearance raised, a database added or its
/// access raised). Database names compare case-insensitively, as the server does.
pub(crate) fn widens(
    old: Option<(Clearance, &BTreeMap<String, Access>)>,
    new: (Clearance, &BTreeMap<String, Access>),
) -> bool {
    let (new_clearance, new_perms) = new;
    let Some((old_clearance, old_perms)) = old else {
        return new_clearance != Clearance::ValidUser || !new_perms.is_empty();
    };
    if new_clearance > old_clearance {
        return true;
    }
    if new_clearance != Clearance::ValidUser || old_clearance != Clearance::ValidUser {
        return false;
    }
    let old_by_name: BTreeMap<String, Access> = old_perms
        .iter()
        .map(|(db, a)| (db.to_lowercase(), *a))
        .collect();
    new_perms.iter().any(|(db, a)| {
        old_by_name
            .get(&db.to_lowercase())
            .is_none_or(|old| a > old)
    })
}

fn field_changes(old: &CertEntry, new: &ClientDesired) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(FieldChange::new(
            Field::Name,
            Some(old.name.clone()),
            Some(new.name.clone()),
        ));
    }
    if old.clearance != new.clearance {
        out.push(FieldChange::new(
            Field::Clearance,
            Some(old.clearance.to_string()),
            Some(new.clearance.to_string()),
        ));
    }
    out.extend(permission_changes(&old.permissions, &new.permissions));
    if old.protect != new.protect {
        out.push(FieldChange::new(
            Field::Protect,
            Some(old.protect.to_string()),
            Some(new.protect.to_string()),
        ));
    }
    if old.until != new.until {
        out.push(FieldChange::new(
            Field::Until,
            old.until.map(crate::model::rfc3339),
            new.until.map(crate::model::rfc3339),
        ));
    }
    if old.disabled != new.disabled {
        out.push(FieldChange::new(
            Field::Disabled,
            Some(old.disabled.to_string()),
            Some(new.disabled.to_string()),
        ));
    }
    out
}

/// Whether certs.toml enables a client the store holds disabled: its access comes back, an
/// escalation like a raised clearance.
fn enabling(current: &CertEntry, client: &ClientDesired) -> bool {
    current.disabled && !client.disabled
}

/// Why a change touches `disabled`: `disabled in certs.toml` or `enabled in certs.toml`.
fn disabled_reason(current: &CertEntry, client: &ClientDesired) -> Option<&'static str> {
    match (current.disabled, client.disabled) {
        (false, true) => Some("disabled in certs.toml"),
        (true, false) => Some("enabled in certs.toml"),
        _ => None,
    }
}

/// One change per database whose access differs (added, removed or another level).
pub(super) fn permission_changes(
    old: &BTreeMap<String, Access>,
    new: &BTreeMap<String, Access>,
) -> Vec<FieldChange> {
    let dbs: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    dbs.into_iter()
        .filter(|db| old.get(*db) != new.get(*db))
        .map(|db| {
            FieldChange::new(
                Field::Database(db.clone()),
                old.get(db).map(|a| a.to_string()),
                new.get(db).map(|a| a.to_string()),
            )
        })
        .collect()
}

fn field_changes_from_nothing(c: &ClientDesired) -> Vec<FieldChange> {
    let mut out = vec![
        FieldChange::new(Field::Name, None, Some(c.name.clone())),
        FieldChange::new(Field::Clearance, None, Some(c.clearance.to_string())),
    ];
    out.extend(
        c.permissions.iter().map(|(db, a)| {
            FieldChange::new(Field::Database(db.clone()), None, Some(a.to_string()))
        }),
    );
    if let Some(u) = c.until {
        out.push(FieldChange::new(
            Field::Until,
            None,
            Some(crate::model::rfc3339(u)),
        ));
    }
    if c.protect {
        out.push(FieldChange::new(Field::Protect, None, Some("true".into())));
    }
    if c.disabled {
        out.push(FieldChange::new(Field::Disabled, None, Some("true".into())));
    }
    out
}

/// A generated client's declared bundle password as [`bundle_reasons`] compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeclaredPassword<'a> {
    /// Its fingerprint under the store's key ([`NO_PASSWORD`] when none is declared).
    Fingerprint(&'a str),
    /// A password is declared but was not read (why): only "added" can be told.
    NotRead(&'a str),
}

/// Why an issued bundle must be packaged again around the same certificate: its .pfx profile
/// or its password is not the declared one. `password` is the declared password (None when it
/// is not looked at, so not compared).
pub(crate) fn bundle_reasons(
    entry: &CertEntry,
    spec: &GenerateSpec,
    password: Option<DeclaredPassword<'_>>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if entry.pfx != spec.pfx {
        reasons.push(format!("bundle: pfx {} -> {}", entry.pfx, spec.pfx));
    }
    let have = entry.bundle_password.as_deref();
    let why = match password {
        None => None,
        // A password is declared, and the bundle was written without one.
        Some(DeclaredPassword::NotRead(_)) => {
            (have == Some(NO_PASSWORD)).then_some("bundle: password added")
        }
        Some(DeclaredPassword::Fingerprint(want)) => match have {
            Some(have) if have == want => None,
            // Written before ravencert recorded it: only a declared password needs a new bundle.
            None if want == NO_PASSWORD => None,
            Some(NO_PASSWORD) => Some("bundle: password added"),
            _ if want == NO_PASSWORD => Some("bundle: password removed"),
            _ => Some("bundle: password changed"),
        },
    };
    reasons.extend(why.map(String::from));
    reasons
}

/// Whether [`bundle_reasons`] could tell if the bundle's password changed: not when a declared
/// password was not read and the bundle already has one.
pub(crate) fn password_compared(entry: &CertEntry, password: Option<DeclaredPassword<'_>>) -> bool {
    match password {
        Some(DeclaredPassword::NotRead(_)) => entry.bundle_password.as_deref() == Some(NO_PASSWORD),
        _ => true,
    }
}

/// The plan's note on a bundle password it did not read.
fn bundle_password_not_read(client: &ClientDesired, spec: &GenerateSpec, why: &str) -> NotRead {
    let (key, path) = match &spec.password {
        Some(SecretRef::File(p)) => ("password_file", Some(p.display().to_string())),
        _ => ("password_env", None),
    };
    NotRead {
        key: format!("clients.{}.{key}", client.key),
        path,
        why: why.to_string(),
        effect:
            "the bundle's password was not compared: a changed password does not show in this plan"
                .into(),
    }
}

/// What a change to a registered client carries whatever its action: the entry it changes,
/// the fields after it, the field-by-field differences and the thumbprints it touches.
struct Edit<'a> {
    current: &'a CertEntry,
    after: Fields,
    fields: Vec<FieldChange>,
    escalation: bool,
    thumbprints: Vec<EntryThumbprint>,
}

impl Edit<'_> {
    fn into_change(self, action: Action, client: &ClientDesired, reason: String) -> Change {
        Change::new(action, Target::Client, &client.key, reason)
            .with_escalation(self.escalation)
            .with_fields(Some(entry_fields(self.current)), Some(self.after))
            .with_changes(self.fields)
            .with_thumbprints(self.thumbprints)
    }
}

/// An edit in place (same thumbprint): fields changed in certs.toml, and `notes` on what else
/// the apply does to it (a file restored, its bundle packaged again). None when nothing is due.
fn update_change(client: &ClientDesired, edit: Edit<'_>, notes: Vec<String>) -> Option<Change> {
    let fields = &edit.fields;
    if fields.is_empty() && notes.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if fields.iter().any(|f| f.field == Field::Name) {
        what.push("name");
    }
    if fields.iter().any(|f| f.field == Field::Clearance) {
        what.push("clearance");
    }
    if fields.iter().any(|f| f.field.is_database()) {
        what.push("permissions");
    }
    if fields.iter().any(|f| f.field == Field::Protect) {
        what.push("protect");
    }
    if fields.iter().any(|f| f.field == Field::Until) {
        what.push("until");
    }
    let mut reasons = Vec::new();
    if !what.is_empty() {
        reasons.push(format!("{} changed in certs.toml", what.join(", ")));
    }
    reasons.extend(disabled_reason(edit.current, client).map(String::from));
    reasons.extend(notes);
    let edit = Edit {
        after: Fields {
            thumbprint: known(&edit.current.thumbprint, edit.current.not_after).0,
            ..edit.after
        },
        escalation: edit.escalation && !edit.fields.is_empty(),
        ..edit
    };
    Some(edit.into_change(Action::Update, client, reasons.join("; ")))
}

/// Every thumbprint of a registered client's collection: primary first, then secondaries.
fn collection(current: &CertEntry) -> Vec<EntryThumbprint> {
    let mut t = vec![current.thumbprint.clone()];
    t.extend(
        current
            .collection_secondaries
            .iter()
            .map(|s| EntryThumbprint::pending(s.as_str())),
    );
    t
}

/// Who holds an uploaded certificate (or collection): subject and thumbprint of each.
fn uploaded_holders(certs: &[Uploaded]) -> String {
    certs
        .iter()
        .map(|c| format!("{} {}", c.info.subject, c.info.thumbprint))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The same for registered certificates (their subject as recorded when uploaded).
fn registered_holders(reg: &Registry, thumbprints: &[EntryThumbprint]) -> String {
    thumbprints
        .iter()
        .map(|t| {
            let subject = reg
                .certificates
                .iter()
                .find(|e| &e.thumbprint == t)
                .and_then(|e| e.subject.as_deref())
                .unwrap_or("(subject not recorded)");
            format!("{subject} {}", shown(t))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(t: &str) -> &str {
    &t[..t.len().min(12)]
}
