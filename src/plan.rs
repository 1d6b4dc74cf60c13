//! The planner: a pure function from what certs.toml declares and what the store holds to the
//! list of changes, each with a reason a person understands. No I/O, no clock, no randomness.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{ClientDesired, ClientSpec, Desired, GenerateSpec, ServerSpec};
use crate::model::Origin;
use crate::model::Uploaded;
use crate::model::{Access, Clearance, Period, RenewBefore, BACKDATING};
use crate::registry::{Actual, CertEntry};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    Export,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Export => ">",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Export => "export",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Server,
    Client,
    Export,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Server => "server",
            Target::Client => "client",
            Target::Export => "export",
        }
    }
}

/// The fields of a certificate that matter to a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clearance: Option<Clearance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<String, Access>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option",
        default
    )]
    pub not_after: Option<OffsetDateTime>,
}

/// One field's old and new value, for `clearance: ValidUser -> Operator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub target: Target,
    pub key: String,
    pub reason: String,
    pub escalation: bool,
    pub before: Option<Fields>,
    pub after: Option<Fields>,
    #[serde(skip)]
    pub fields: Vec<FieldChange>,
    /// Registry thumbprints this change removes (delete, replace) or edits (update).
    #[serde(skip)]
    pub thumbprints: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    /// Changes made to the store outside ravencert (shown before the changes).
    pub drift: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--replace KEY`: re-issue these even when nothing else asks for it.
    pub replace: BTreeSet<String>,
    pub allow_delete_all: bool,
    /// Per generated client with a password, its fingerprint under the store's key (a client
    /// that is not listed has none: [`NO_PASSWORD`]); None when the secrets are not read (a
    /// review plan), so the bundles' passwords are not compared.
    pub bundle_passwords: Option<BTreeMap<String, String>>,
}

/// What the registry records for a bundle without a password.
pub const NO_PASSWORD: &str = "none";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("refused: this plan deletes {count} certificates ({keys}), more than store.max_deletions = {max}; raise max_deletions in certs.toml if this is intended")]
    TooManyDeletions {
        count: usize,
        max: u32,
        keys: String,
    },
    #[error("refused: this plan deletes every registered client certificate ({keys}); if that is really intended, run again with --allow-delete-all")]
    DeletesAll { keys: String },
    #[error("--replace {0}: no client or server in certs.toml has that key")]
    UnknownReplace(String),
    /// A declared value the plan cannot carry out; `key` is the certs.toml key it concerns.
    #[error("refused: {}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Refused { key: String, message: String },
}

/// The key the server certificate answers to in `--replace`.
pub const SERVER_KEY: &str = "server";

pub fn plan(
    desired: &Desired,
    actual: &Actual,
    now: OffsetDateTime,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    for key in &opts.replace {
        if key != SERVER_KEY && !desired.clients.contains_key(key) {
            return Err(PlanError::UnknownReplace(key.clone()));
        }
    }
    let mut plan = Plan {
        warnings: desired.warnings.clone(),
        drift: actual.drift.clone(),
        ..Plan::default()
    };
    let reg = &actual.registry;

    // Server first: clients are signed by it.
    let mut server_changes = false;
    if let Some(server) = &desired.server {
        if let ServerSpec::Generate {
            name,
            dns,
            key,
            validity,
            renew_before,
        } = &server.source
        {
            let after = Fields {
                name: Some(name.clone()),
                ..Fields::default()
            };
            match reg.server.first() {
                None => {
                    plan.changes.push(Change {
                        action: Action::Create,
                        target: Target::Server,
                        key: name.clone(),
                        reason: "no server certificate registered".into(),
                        escalation: false,
                        before: None,
                        after: Some(after),
                        fields: vec![],
                        thumbprints: vec![],
                    });
                    server_changes = true;
                }
                Some(current) => {
                    let mut reasons = Vec::new();
                    if opts.replace.contains(SERVER_KEY) {
                        reasons.push("--replace server".to_string());
                    }
                    if current.name != *name {
                        reasons.push(format!("name {} -> {}", current.name, name));
                    } else if current.dns != *dns {
                        reasons.push(format!(
                            "DNS names [{}] -> [{}]",
                            current.dns.join(", "),
                            dns.join(", ")
                        ));
                    }
                    if let Some(k) = current.key_type {
                        if k != *key {
                            reasons.push(format!("key {k} -> {key} forces replacement"));
                        }
                    }
                    if current.source == Origin::Generated {
                        reasons.extend(validity_change(
                            current.not_before,
                            current.not_after,
                            *validity,
                        ));
                    }
                    if let Some(r) =
                        renewal_reason(current.not_before, current.not_after, *renew_before, now)
                    {
                        reasons.push(r);
                    }
                    if !reasons.is_empty() {
                        plan.changes.push(Change {
                            action: Action::Replace,
                            target: Target::Server,
                            key: name.clone(),
                            reason: reasons.join("; "),
                            escalation: false,
                            before: Some(server_fields(current)),
                            after: Some(after),
                            fields: vec![],
                            thumbprints: reg.server.iter().map(|s| s.thumbprint.clone()).collect(),
                        });
                        server_changes = true;
                    }
                }
            }
        }
    }

    if let Some(ServerSpec::Imported(_)) = desired.server.as_ref().map(|s| &s.source) {
        if let Some(change) = plan_imported_server(desired, actual, opts)? {
            plan.changes.push(change);
            server_changes = true;
        }
    }

    // Clients declared in certs.toml.
    check_declared(desired, now)?;
    check_uploads(desired, actual)?;
    // The certificate in use per client key, looked up once (a registry can hold thousands).
    let active: BTreeMap<&str, &CertEntry> = reg
        .certificates
        .iter()
        .filter(|c| c.retire_after.is_none() && c.collection_primary.is_none())
        .map(|c| (c.key.as_str(), c))
        .collect();
    for client in desired.clients.values() {
        let current = active.get(client.key.as_str()).copied();
        let change = match &client.source {
            ClientSpec::Generate(spec) => {
                plan_generated(client, spec, current, actual, now, opts, &mut plan.warnings)
            }
            ClientSpec::Upload(file) => plan_upload(
                client,
                &file.path,
                current,
                desired,
                actual,
                now,
                opts,
                &mut plan.warnings,
            )?,
        };
        if let Some(change) = change {
            plan.changes.push(change);
        }
    }

    // Old certificates whose rotation overlap has ended: ravencert's own rotation, so they go
    // whatever prune says.
    let mut retired = Vec::new();
    for c in &reg.certificates {
        if let Some(retire) = c.retire_after {
            if retire <= now && c.collection_primary.is_none() {
                retired.push(format!("{} (rotation overlap ended)", c.key));
                plan.changes
                    .push(delete_change(c, "rotation overlap ended".into(), reg));
            }
        }
    }

    // Registered but no longer declared.
    let mut pruned = Vec::new();
    for c in &reg.certificates {
        if desired.clients.contains_key(&c.key)
            || c.collection_primary.is_some()
            || c.retire_after.is_some()
        {
            continue;
        }
        if desired.store.prune {
            pruned.push(c.key.clone());
            plan.changes.push(delete_change(
                c,
                "no longer declared in certs.toml (prune = true)".into(),
                reg,
            ));
        } else {
            plan.warnings.push(format!(
                "client '{}' ({}, {}) is registered but not declared in certs.toml; it is kept because prune = false",
                c.key, c.name, shown(&c.thumbprint)
            ));
        }
    }

    // Guards against a wrong config or store wiping access. Every delete counts, the end of a
    // rotation overlap too.
    let max = desired.store.max_deletions;
    let deletes: Vec<String> = retired.into_iter().chain(pruned.iter().cloned()).collect();
    if max > 0 && deletes.len() > max as usize {
        return Err(PlanError::TooManyDeletions {
            count: deletes.len(),
            max,
            keys: deletes.join(", "),
        });
    }
    let registered: BTreeSet<&str> = reg
        .certificates
        .iter()
        .filter(|c| c.collection_primary.is_none() && c.retire_after.is_none())
        .map(|c| c.key.as_str())
        .collect();
    if !registered.is_empty() && pruned.len() == registered.len() && !opts.allow_delete_all {
        return Err(PlanError::DeletesAll {
            keys: pruned.join(", "),
        });
    }

    // The export follows the server certificate(s).
    if let Some(server) = &desired.server {
        if let Some(path) = &server.export {
            let current: Vec<String> = {
                let mut t: Vec<String> = reg.server.iter().map(|s| s.thumbprint.clone()).collect();
                t.sort();
                t
            };
            let reason = if server_changes {
                Some("the server certificate changes".to_string())
            } else {
                match &actual.export_thumbprints {
                    None => Some(format!("{} is missing or unreadable", path.display())),
                    Some(t) if *t != current => Some(format!(
                        "{} does not hold the current server certificate",
                        path.display()
                    )),
                    Some(_) => None,
                }
            };
            if let Some(reason) = reason {
                plan.changes.push(Change {
                    action: Action::Export,
                    target: Target::Export,
                    key: path.display().to_string(),
                    reason,
                    escalation: false,
                    before: None,
                    after: None,
                    fields: vec![],
                    thumbprints: vec![],
                });
            }
        }
    }
    Ok(plan)
}

fn renewal_reason(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew: RenewBefore,
    now: OffsetDateTime,
) -> Option<String> {
    if not_after <= now {
        return Some(format!("expired on {}", not_after.date()));
    }
    let window = renew.window(not_after - not_before);
    if not_after - now < window {
        let days = (not_after - now).whole_days();
        return Some(format!(
            "expires in {days} day{} (renew_before {renew})",
            if days == 1 { "" } else { "s" }
        ));
    }
    None
}

/// A registered certificate's thumbprint and expiry, when they are known: a review plan's
/// assumed store (`plan --base`) has placeholders there, shown as null, never as values.
fn known(thumbprint: &str, not_after: OffsetDateTime) -> (Option<String>, Option<OffsetDateTime>) {
    if crate::registry::is_thumbprint(thumbprint) {
        (Some(thumbprint.to_string()), Some(not_after))
    } else {
        (None, None)
    }
}

/// A thumbprint for a message: the placeholder of a review plan is not shown as one.
fn shown(thumbprint: &str) -> &str {
    if crate::registry::is_thumbprint(thumbprint) {
        thumbprint
    } else {
        "thumbprint known after apply"
    }
}

fn entry_fields(e: &CertEntry) -> Fields {
    let (thumbprint, not_after) = known(&e.thumbprint, e.not_after);
    Fields {
        thumbprint,
        name: Some(e.name.clone()),
        clearance: Some(e.clearance),
        permissions: Some(e.permissions.clone()),
        not_after,
    }
}

fn server_fields(e: &crate::registry::ServerEntry) -> Fields {
    let (thumbprint, not_after) = known(&e.thumbprint, e.not_after);
    Fields {
        thumbprint,
        name: Some(e.name.clone()),
        not_after,
        ..Fields::default()
    }
}

fn desired_fields(c: &ClientDesired) -> Fields {
    Fields {
        name: Some(c.name.clone()),
        clearance: Some(c.clearance),
        permissions: Some(c.permissions.clone()),
        ..Fields::default()
    }
}

fn delete_change(c: &CertEntry, reason: String, reg: &crate::registry::Registry) -> Change {
    let mut thumbprints = vec![c.thumbprint.clone()];
    thumbprints.extend(
        reg.certificates
            .iter()
            .filter(|s| s.collection_primary.as_deref() == Some(c.thumbprint.as_str()))
            .map(|s| s.thumbprint.clone()),
    );
    Change {
        action: Action::Delete,
        target: Target::Client,
        key: c.key.clone(),
        reason,
        escalation: false,
        before: Some(entry_fields(c)),
        after: None,
        fields: vec![],
        thumbprints,
    }
}

/// Does going from `old` to `new` widen access? (a clearance raised, a database added or its
/// access raised). Database names compare case-insensitively, as the server does.
pub fn widens(
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
        out.push(FieldChange {
            field: "name".into(),
            old: Some(old.name.clone()),
            new: Some(new.name.clone()),
        });
    }
    if old.clearance != new.clearance {
        out.push(FieldChange {
            field: "clearance".into(),
            old: Some(old.clearance.to_string()),
            new: Some(new.clearance.to_string()),
        });
    }
    let dbs: BTreeSet<&String> = old
        .permissions
        .keys()
        .chain(new.permissions.keys())
        .collect();
    for db in dbs {
        let o = old.permissions.get(db);
        let n = new.permissions.get(db);
        if o != n {
            out.push(FieldChange {
                field: db.clone(),
                old: o.map(|a| a.to_string()),
                new: n.map(|a| a.to_string()),
            });
        }
    }
    out
}

fn plan_generated(
    client: &ClientDesired,
    spec: &GenerateSpec,
    current: Option<&CertEntry>,
    actual: &Actual,
    now: OffsetDateTime,
    opts: &PlanOptions,
    warnings: &mut Vec<String>,
) -> Option<Change> {
    let after = desired_fields(client);
    let new_access = (client.clearance, &client.permissions);
    let Some(current) = current else {
        return Some(Change {
            action: Action::Create,
            target: Target::Client,
            key: client.key.clone(),
            reason: "not registered".into(),
            escalation: widens(None, new_access),
            before: None,
            fields: field_changes_from_nothing(client),
            after: Some(after),
            thumbprints: vec![],
        });
    };

    let fields = field_changes(current, client);
    let escalation = widens(Some((current.clearance, &current.permissions)), new_access);

    let mut reasons = Vec::new();
    let explicit = opts.replace.contains(&client.key);
    if explicit {
        reasons.push(format!("--replace {}", client.key));
    }
    if current.source == Origin::Uploaded {
        reasons.push("now generated (was uploaded)".into());
    }
    if let Some(k) = current.key_type {
        if k != spec.key {
            reasons.push(format!("key {k} -> {} forces replacement", spec.key));
        }
    }
    if current.source == Origin::Generated {
        reasons.extend(validity_change(
            current.not_before,
            current.not_after,
            spec.validity,
        ));
    }
    if let Some(r) = renewal_reason(
        current.not_before,
        current.not_after,
        spec.renew_before,
        now,
    ) {
        reasons.push(r);
    }
    if current.source == Origin::Generated && !actual.bundles_ok.contains(&client.key) {
        reasons.push("issued bundle lost".into());
    }
    let lost = actual.lost.contains(&current.thumbprint);
    if lost && !actual.recoverable.contains(&current.thumbprint) {
        reasons
            .push("public certificate file lost (the old one is not kept for an overlap)".into());
    }
    let mut notes: Vec<String> = (lost && actual.recoverable.contains(&current.thumbprint))
        .then(|| {
            "certificate file removed outside ravencert: restored from the issued bundle"
                .to_string()
        })
        .into_iter()
        .collect();
    if current.source == Origin::Generated {
        let password = opts
            .bundle_passwords
            .as_ref()
            .map(|m| m.get(&client.key).map_or(NO_PASSWORD, String::as_str));
        notes.extend(bundle_reasons(current, spec, password));
    }
    if !reasons.is_empty() && client.protect && !explicit {
        warnings.push(format!(
            "client '{}' is protected: not re-issued although {}; run with --replace {} to re-issue it",
            client.key,
            reasons.join("; "),
            client.key
        ));
        reasons.clear();
    }

    let thumbprints = vec![current.thumbprint.clone()];
    if !reasons.is_empty() {
        return Some(Change {
            action: Action::Replace,
            target: Target::Client,
            key: client.key.clone(),
            reason: reasons.join("; "),
            escalation,
            before: Some(entry_fields(current)),
            after: Some(after),
            fields,
            thumbprints,
        });
    }
    update_change(
        client,
        current,
        fields,
        escalation,
        after,
        thumbprints,
        notes,
    )
}

/// A generated certificate's validity as issued: its lifetime less the back-dating.
/// The change, when certs.toml now declares another (a minute's slack for rounding).
fn validity_change(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    want: Period,
) -> Option<String> {
    let issued = (not_after - not_before).whole_seconds() - BACKDATING.seconds;
    ((issued - want.seconds).abs() > 60)
        .then(|| format!("validity {} -> {want}", Period { seconds: issued }))
}

/// Why an issued bundle must be packaged again around the same certificate: its .pfx profile
/// or its password is not the declared one. `password` is the declared password's fingerprint
/// under the store's key ([`NO_PASSWORD`] without one), None when it is not known.
pub fn bundle_reasons(
    entry: &CertEntry,
    spec: &GenerateSpec,
    password: Option<&str>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if entry.pfx != spec.pfx {
        reasons.push(format!("bundle: pfx {} -> {}", entry.pfx, spec.pfx));
    }
    if let Some(want) = password {
        let why = match entry.bundle_password.as_deref() {
            Some(have) if have == want => None,
            // Written before ravencert recorded it: only a declared password needs a new bundle.
            None if want == NO_PASSWORD => None,
            Some(NO_PASSWORD) => Some("bundle: password added"),
            _ if want == NO_PASSWORD => Some("bundle: password removed"),
            _ => Some("bundle: password changed"),
        };
        reasons.extend(why.map(String::from));
    }
    reasons
}

/// An edit in place (same thumbprint): fields changed in certs.toml, and `notes` on what else
/// the apply does to it (a file restored, its bundle packaged again). None when nothing is due.
fn update_change(
    client: &ClientDesired,
    current: &CertEntry,
    fields: Vec<FieldChange>,
    escalation: bool,
    after: Fields,
    thumbprints: Vec<String>,
    notes: Vec<String>,
) -> Option<Change> {
    if fields.is_empty() && notes.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if fields.iter().any(|f| f.field == "name") {
        what.push("name");
    }
    if fields.iter().any(|f| f.field == "clearance") {
        what.push("clearance");
    }
    if fields
        .iter()
        .any(|f| f.field != "name" && f.field != "clearance")
    {
        what.push("permissions");
    }
    let mut reasons = Vec::new();
    if !what.is_empty() {
        reasons.push(format!("{} changed in certs.toml", what.join(", ")));
    }
    reasons.extend(notes);
    Some(Change {
        action: Action::Update,
        target: Target::Client,
        key: client.key.clone(),
        reason: reasons.join("; "),
        escalation: escalation && !fields.is_empty(),
        before: Some(entry_fields(current)),
        after: Some(Fields {
            thumbprint: known(&current.thumbprint, current.not_after).0,
            ..after
        }),
        fields,
        thumbprints,
    })
}

fn field_changes_from_nothing(c: &ClientDesired) -> Vec<FieldChange> {
    let mut out = vec![
        FieldChange {
            field: "name".into(),
            old: None,
            new: Some(c.name.clone()),
        },
        FieldChange {
            field: "clearance".into(),
            old: None,
            new: Some(c.clearance.to_string()),
        },
    ];
    out.extend(c.permissions.iter().map(|(db, a)| FieldChange {
        field: db.clone(),
        old: None,
        new: Some(a.to_string()),
    }));
    out
}

/// Every thumbprint of a registered client's collection: primary first, then secondaries.
fn collection(current: &CertEntry) -> Vec<String> {
    let mut t = vec![current.thumbprint.clone()];
    t.extend(current.collection_secondaries.iter().cloned());
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
fn registered_holders(reg: &crate::registry::Registry, thumbprints: &[String]) -> String {
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

fn list(ts: &[String]) -> String {
    ts.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn refused(key: impl Into<String>, message: String) -> PlanError {
    PlanError::Refused {
        key: key.into(),
        message,
    }
}

fn upload_path(desired: &Desired, key: &str) -> String {
    match desired.clients.get(key).map(|c| &c.source) {
        Some(ClientSpec::Upload(r)) => r.path.display().to_string(),
        _ => String::new(),
    }
}

/// The checks of what certs.toml declares that need no store, shared by `validate` and `plan`
/// so that both refuse the same configs: an uploaded certificate that has expired, one
/// certificate declared by two clients, a node's own certificate uploaded as a client.
pub fn check_declared(desired: &Desired, now: OffsetDateTime) -> Result<(), PlanError> {
    let nodes: BTreeSet<&str> = desired
        .files
        .nodes
        .iter()
        .map(|n| n.info.thumbprint.as_str())
        .collect();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, certs) in &desired.files.uploads {
        let file = upload_path(desired, key);
        refuse_expired(key, &file, certs, now)?;
        for c in certs {
            let t = c.info.thumbprint.as_str();
            if nodes.contains(t) {
                return Err(own_server_upload(key, &file, t));
            }
            if let Some(other) = seen.insert(t, key) {
                return Err(refused(
                    format!("clients.{key}.upload"),
                    format!("certificate {t} in {file} is also declared by clients.{other}; RavenDB keys its registry by thumbprint, so a certificate can be registered once — keep one"),
                ));
            }
        }
    }
    Ok(())
}

fn own_server_upload(key: &str, file: &str, t: &str) -> PlanError {
    refused(
        format!("clients.{key}.upload"),
        format!("{file} holds the server's own certificate {t}; the server is trusted as a ClusterNode already — remove the client, or upload a client certificate"),
    )
}

/// Refusals of uploads that depend on the store: the registered (generated) server certificate
/// uploaded as a client, or a certificate registered under a key that keeps it.
fn check_uploads(desired: &Desired, actual: &Actual) -> Result<(), PlanError> {
    let server: BTreeSet<&str> = actual
        .registry
        .server
        .iter()
        .map(|s| s.thumbprint.as_str())
        .collect();
    if desired.files.uploads.is_empty() {
        return Ok(());
    }
    let by_thumbprint: BTreeMap<&str, &CertEntry> = actual
        .registry
        .certificates
        .iter()
        .map(|e| (e.thumbprint.as_str(), e))
        .collect();
    for (key, certs) in &desired.files.uploads {
        let file = upload_path(desired, key);
        for c in certs {
            let t = c.info.thumbprint.as_str();
            if desired.files.nodes.is_empty() && server.contains(t) {
                return Err(own_server_upload(key, &file, t));
            }
            let Some(e) = by_thumbprint.get(t).filter(|e| e.key != *key) else {
                continue;
            };
            let refuse = match desired.clients.get(&e.key) {
                // No longer declared: only a prune in the same apply frees the thumbprint.
                None => !desired.store.prune,
                // Still declared: a generated client keeps its certificate; an upload that
                // moves away from it would keep it registered during an overlap.
                Some(other) => match &other.source {
                    ClientSpec::Generate(_) => true,
                    ClientSpec::Upload(_) => other.overlap.is_some(),
                },
            };
            if refuse {
                return Err(refused(
                    format!("clients.{key}.upload"),
                    format!(
                        "{file} holds certificate {t}, which is registered as client '{}'; a certificate can be registered once — {}",
                        e.key,
                        if desired.clients.contains_key(&e.key) {
                            format!("remove it from clients.{key}, or remove clients.{} first", e.key)
                        } else {
                            format!("set prune = true to delete '{}' in the same apply, or keep the key '{}'", e.key, e.key)
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn refuse_expired(
    key: &str,
    file: &str,
    certs: &[Uploaded],
    now: OffsetDateTime,
) -> Result<(), PlanError> {
    for c in certs {
        if c.info.not_after <= now {
            return Err(refused(
                format!("clients.{key}.upload"),
                format!(
                    "{file} holds certificate {} ({}) that expired on {}; RavenDB would refuse it at once — put a current certificate in the file, or remove the client",
                    c.info.thumbprint,
                    c.info.subject,
                    c.info.not_after.date()
                ),
            ));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn plan_upload(
    client: &ClientDesired,
    path: &Path,
    current: Option<&CertEntry>,
    desired: &Desired,
    actual: &Actual,
    now: OffsetDateTime,
    opts: &PlanOptions,
    warnings: &mut Vec<String>,
) -> Result<Option<Change>, PlanError> {
    let Some(certs) = desired.files.uploads.get(&client.key) else {
        // The file was not read (e.g. a review plan without the files): nothing to compare.
        return Ok(None);
    };
    if opts.replace.contains(&client.key) {
        return Err(refused(
            String::new(),
            format!(
                "--replace {}: an uploaded certificate cannot be re-issued by ravencert; put the new certificate in {}",
                client.key,
                path.display()
            ),
        ));
    }
    let want: Vec<String> = certs.iter().map(|c| c.info.thumbprint.clone()).collect();
    let mut after = desired_fields(client);
    after.thumbprint = want.first().cloned();
    after.not_after = certs.first().map(|c| c.info.not_after);
    let new_access = (client.clearance, &client.permissions);
    let Some(current) = current else {
        let mut fields = field_changes_from_nothing(client);
        fields.push(FieldChange {
            field: "certificate".into(),
            old: None,
            new: Some(uploaded_holders(certs)),
        });
        return Ok(Some(Change {
            action: Action::Create,
            target: Target::Client,
            key: client.key.clone(),
            reason: if want.len() > 1 {
                format!("not registered (upload of a collection of {})", want.len())
            } else {
                "not registered (upload)".into()
            },
            escalation: widens(None, new_access),
            before: None,
            fields,
            after: Some(after),
            thumbprints: want,
        }));
    };
    let have = collection(current);
    let mut fields = field_changes(current, client);
    let escalation = widens(Some((current.clearance, &current.permissions)), new_access);
    let same = {
        let mut a = want.clone();
        let mut b = have.clone();
        a.sort();
        b.sort();
        a == b
    };
    if !same {
        let reason = format!(
            "{} now holds {} (registered: {})",
            path.display(),
            list(&want),
            list(&have)
        );
        if client.protect {
            warnings.push(format!(
                "client '{}' is protected: not replaced although {reason}; set protect = false to let this change through",
                client.key
            ));
            return Ok(None);
        }
        // Someone new holds the access: an escalation even when the access stays the same.
        let newcomer = want.iter().any(|t| !have.contains(t));
        let grants = client.clearance != Clearance::ValidUser || !client.permissions.is_empty();
        fields.push(FieldChange {
            field: "certificate".into(),
            old: Some(registered_holders(&actual.registry, &have)),
            new: Some(uploaded_holders(certs)),
        });
        return Ok(Some(Change {
            action: Action::Replace,
            target: Target::Client,
            key: client.key.clone(),
            reason,
            escalation: escalation || (newcomer && grants),
            before: Some(entry_fields(current)),
            after: Some(after),
            fields,
            thumbprints: have,
        }));
    }
    // Uploaded certificates are never re-issued by ravencert: their expiry is a warning.
    for c in certs {
        if let Some(why) = renewal_reason(
            c.info.not_before,
            c.info.not_after,
            desired.renew_before,
            now,
        ) {
            warnings.push(format!(
                "client '{}': uploaded certificate {} {why}; ravencert cannot re-issue it — put a new one in {}",
                client.key,
                short(&c.info.thumbprint),
                path.display()
            ));
        }
    }
    let restore = have.iter().any(|t| actual.lost.contains(t)).then(|| {
        format!(
            "certificate file removed outside ravencert: restored from {}",
            path.display()
        )
    });
    Ok(update_change(
        client,
        current,
        fields,
        escalation,
        after,
        have,
        restore.into_iter().collect(),
    ))
}

/// The nodes' own certificates: registered as they are; a changed file is a replace that names
/// the old and new thumbprints.
fn plan_imported_server(
    desired: &Desired,
    actual: &Actual,
    opts: &PlanOptions,
) -> Result<Option<Change>, PlanError> {
    let nodes = &desired.files.nodes;
    let Some(first) = nodes.first() else {
        return Ok(None);
    };
    if opts.replace.contains(SERVER_KEY) {
        return Err(refused(
            String::new(),
            "--replace server: the server certificates come from [server].certificates; put the new certificates in those files".into(),
        ));
    }
    let want: Vec<String> = nodes.iter().map(|n| n.info.thumbprint.clone()).collect();
    let have: Vec<String> = actual
        .registry
        .server
        .iter()
        .map(|s| s.thumbprint.clone())
        .collect();
    let key = first
        .info
        .common_name
        .clone()
        .unwrap_or_else(|| SERVER_KEY.to_string());
    let after = Fields {
        thumbprint: Some(first.info.thumbprint.clone()),
        name: Some(key.clone()),
        not_after: Some(first.info.not_after),
        ..Fields::default()
    };
    if have.is_empty() {
        return Ok(Some(Change {
            action: Action::Create,
            target: Target::Server,
            key,
            reason: format!(
                "no server certificate registered ({} node certificate{})",
                want.len(),
                if want.len() == 1 { "" } else { "s" }
            ),
            escalation: false,
            before: None,
            after: Some(after),
            fields: vec![],
            thumbprints: vec![],
        }));
    }
    if want == have {
        return Ok(None);
    }
    let current = &actual.registry.server[0];
    Ok(Some(Change {
        action: Action::Replace,
        target: Target::Server,
        key,
        reason: format!(
            "node certificates changed: {} -> {}",
            list(&have),
            list(&want)
        ),
        escalation: false,
        before: Some(server_fields(current)),
        after: Some(after),
        fields: vec![],
        thumbprints: have,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Declared, GenerateSpec, ServerDesired, StoreSettings};
    use crate::model::{KeySpec, Origin, Period, PfxProfile};
    use crate::registry::{Registry, ServerEntry};
    use std::path::PathBuf;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn server() -> ServerDesired {
        ServerDesired {
            source: ServerSpec::Generate {
                name: "cluster.example.com".into(),
                dns: vec!["cluster.example.com".into()],
                key: KeySpec::EcP256,
                validity: Period::days(365),
                renew_before: RenewBefore::Period(Period::days(30)),
            },
            export: Some(PathBuf::from("/cfg/export.pfx")),
        }
    }

    fn gen() -> GenerateSpec {
        GenerateSpec {
            key: KeySpec::EcP256,
            validity: Period::days(365),
            renew_before: RenewBefore::Period(Period::days(30)),
            pfx: PfxProfile::Modern,
            password: None,
        }
    }

    fn client(key: &str, clearance: Clearance, dbs: &[(&str, Access)]) -> ClientDesired {
        ClientDesired {
            key: key.into(),
            name: key.into(),
            clearance,
            permissions: dbs.iter().map(|(d, a)| (d.to_string(), *a)).collect(),
            protect: false,
            overlap: None,
            source: ClientSpec::Generate(gen()),
        }
    }

    fn desired(clients: Vec<ClientDesired>, prune: bool) -> Desired {
        Desired {
            declared: Declared {
                config_path: "/cfg/certs.toml".into(),
                store: StoreSettings {
                    path: "/cfg/store".into(),
                    prune,
                    max_deletions: 5,
                },
                server: Some(server()),
                clients: clients.into_iter().map(|c| (c.key.clone(), c)).collect(),
                warnings: vec![],
                positions: BTreeMap::new(),
                renew_before: RenewBefore::Period(Period::days(30)),
            },
            files: Default::default(),
        }
    }

    fn thumb(n: u8) -> String {
        format!("{:040X}", n)
    }

    /// The store as it would be after applying `d` at `NOW - 10 days`.
    fn applied(d: &Desired) -> Actual {
        let mut reg = Registry::new();
        reg.server.push(ServerEntry {
            name: "cluster.example.com".into(),
            thumbprint: thumb(200),
            public_key_pinning_hash: "p".into(),
            dns: vec!["cluster.example.com".into()],
            not_before: NOW - time::Duration::days(17),
            not_after: NOW + time::Duration::days(355),
            source: Origin::Generated,
            key_type: Some(KeySpec::EcP256),
            revision: None,
        });
        for (i, c) in d.clients.values().enumerate() {
            reg.certificates.push(CertEntry {
                key: c.key.clone(),
                name: c.name.clone(),
                thumbprint: thumb(i as u8 + 1),
                public_key_pinning_hash: "p".into(),
                clearance: c.clearance,
                not_before: NOW - time::Duration::days(17),
                not_after: NOW + time::Duration::days(355),
                source: Origin::Generated,
                key_type: Some(KeySpec::EcP256),
                collection_primary: None,
                collection_secondaries: vec![],
                retire_after: None,
                revision: None,
                permissions: c.permissions.clone(),
                pfx: Default::default(),
                bundle_password: None,
                subject: None,
            });
        }
        Actual {
            bundles_ok: d.clients.keys().cloned().collect(),
            export_thumbprints: Some(vec![thumb(200)]),
            registry: reg,
            exists: true,
            sealed: true,
            ..Actual::default()
        }
    }

    fn run(d: &Desired, a: &Actual) -> Plan {
        plan(d, a, NOW, &PlanOptions::default()).unwrap()
    }

    #[test]
    fn empty_store_creates_server_clients_and_export() {
        let d = desired(
            vec![
                client("admin", Clearance::ClusterAdmin, &[]),
                client("app", Clearance::ValidUser, &[("Orders", Access::Read)]),
                client("nobody", Clearance::ValidUser, &[]),
            ],
            false,
        );
        let p = run(&d, &Actual::default());
        let actions: Vec<(Action, &str, bool)> = p
            .changes
            .iter()
            .map(|c| (c.action, c.key.as_str(), c.escalation))
            .collect();
        assert_eq!(
            actions,
            vec![
                (Action::Create, "cluster.example.com", false),
                (Action::Create, "admin", true),
                (Action::Create, "app", true),
                (Action::Create, "nobody", false),
                (Action::Export, "/cfg/export.pfx", false),
            ]
        );
    }

    #[test]
    fn applied_state_plans_nothing() {
        let d = desired(
            vec![client(
                "app",
                Clearance::ValidUser,
                &[("Orders", Access::Read)],
            )],
            true,
        );
        assert!(run(&d, &applied(&d)).is_empty());
    }

    #[test]
    fn clearance_raise_is_an_escalating_update() {
        let d = desired(
            vec![client(
                "app",
                Clearance::ValidUser,
                &[("Orders", Access::Read)],
            )],
            false,
        );
        let a = applied(&d);
        let d2 = desired(vec![client("app", Clearance::Operator, &[])], false);
        let p = run(&d2, &a);
        assert_eq!(p.changes.len(), 1);
        let c = &p.changes[0];
        assert_eq!((c.action, c.escalation), (Action::Update, true));
        assert!(c.fields.iter().any(|f| f.field == "clearance"
            && f.old.as_deref() == Some("ValidUser")
            && f.new.as_deref() == Some("Operator")));
        assert_eq!(c.after.as_ref().unwrap().thumbprint, Some(thumb(1)));
    }

    #[test]
    fn lowering_access_is_not_an_escalation() {
        let d = desired(
            vec![client(
                "app",
                Clearance::ValidUser,
                &[("Orders", Access::Admin)],
            )],
            false,
        );
        let a = applied(&d);
        let d2 = desired(
            vec![client(
                "app",
                Clearance::ValidUser,
                &[("Orders", Access::Read)],
            )],
            false,
        );
        let p = run(&d2, &a);
        assert_eq!(
            (p.changes[0].action, p.changes[0].escalation),
            (Action::Update, false)
        );
    }

    #[test]
    fn widening_rules() {
        let read: BTreeMap<String, Access> = [("Orders".into(), Access::Read)].into();
        let rw: BTreeMap<String, Access> = [("orders".into(), Access::ReadWrite)].into();
        let other: BTreeMap<String, Access> = [("Other".into(), Access::Read)].into();
        let none = BTreeMap::new();
        use Clearance::*;
        assert!(widens(Some((ValidUser, &read)), (ValidUser, &rw)));
        assert!(!widens(Some((ValidUser, &rw)), (ValidUser, &read)));
        assert!(widens(Some((ValidUser, &read)), (ValidUser, &other)));
        assert!(!widens(Some((ValidUser, &read)), (ValidUser, &none)));
        assert!(widens(Some((Operator, &none)), (ClusterAdmin, &none)));
        assert!(!widens(Some((Operator, &none)), (ValidUser, &read)));
        assert!(widens(None, (Operator, &none)));
        assert!(!widens(None, (ValidUser, &none)));
    }

    #[test]
    fn undeclared_is_a_warning_without_prune_and_a_delete_with_it() {
        let d = desired(
            vec![
                client("a", Clearance::Operator, &[]),
                client("b", Clearance::Operator, &[]),
            ],
            false,
        );
        let a = applied(&d);
        let only_a = desired(vec![client("a", Clearance::Operator, &[])], false);
        let p = run(&only_a, &a);
        assert!(p.is_empty());
        assert!(p.warnings.iter().any(|w| w.contains("'b'")));

        let only_a = desired(vec![client("a", Clearance::Operator, &[])], true);
        let p = run(&only_a, &a);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(
            (p.changes[0].action, p.changes[0].key.as_str()),
            (Action::Delete, "b")
        );
        assert_eq!(p.changes[0].thumbprints, vec![thumb(2)]);
    }

    #[test]
    fn guards_refuse_mass_deletion() {
        let many: Vec<ClientDesired> = (0..7)
            .map(|i| client(&format!("c{i}"), Clearance::Operator, &[]))
            .collect();
        let a = applied(&desired(many, true));
        let mut keep_one = desired(vec![client("c0", Clearance::Operator, &[])], true);
        assert!(matches!(
            plan(&keep_one, &a, NOW, &PlanOptions::default()),
            Err(PlanError::TooManyDeletions {
                count: 6,
                max: 5,
                ..
            })
        ));
        keep_one.store.max_deletions = 0;
        assert!(plan(&keep_one, &a, NOW, &PlanOptions::default()).is_ok());

        let mut none = desired(vec![], true);
        none.store.max_deletions = 0;
        assert!(matches!(
            plan(&none, &a, NOW, &PlanOptions::default()),
            Err(PlanError::DeletesAll { .. })
        ));
        let opts = PlanOptions {
            allow_delete_all: true,
            ..PlanOptions::default()
        };
        assert_eq!(
            plan(&none, &a, NOW, &opts).unwrap().count(Action::Delete),
            7
        );
    }

    #[test]
    fn replace_flag_key_change_and_renewal() {
        let d = desired(vec![client("a", Clearance::Operator, &[])], false);
        let a = applied(&d);
        let opts = PlanOptions {
            replace: ["a".to_string()].into(),
            ..PlanOptions::default()
        };
        let p = plan(&d, &a, NOW, &opts).unwrap();
        assert_eq!(
            (p.changes[0].action, p.changes[0].reason.as_str()),
            (Action::Replace, "--replace a")
        );

        let mut d2 = d.clone();
        if let ClientSpec::Generate(g) = &mut d2.clients.get_mut("a").unwrap().source {
            g.key = KeySpec::EcP384;
        }
        let p = run(&d2, &a);
        assert_eq!(
            p.changes[0].reason,
            "key ec-p256 -> ec-p384 forces replacement"
        );

        let later = NOW + time::Duration::days(340);
        let p = plan(&d, &a, later, &PlanOptions::default()).unwrap();
        let reasons: Vec<&str> = p.changes.iter().map(|c| c.reason.as_str()).collect();
        assert!(
            reasons.contains(&"expires in 15 days (renew_before 30d)"),
            "{reasons:?}"
        );

        let expired = NOW + time::Duration::days(400);
        let p = plan(&d, &a, expired, &PlanOptions::default()).unwrap();
        assert!(p
            .changes
            .iter()
            .any(|c| c.reason.starts_with("expired on ")));
    }

    #[test]
    fn protect_blocks_replacement_unless_named() {
        let mut c = client("a", Clearance::Operator, &[]);
        c.protect = true;
        let d = desired(vec![c], false);
        let mut a = applied(&d);
        a.bundles_ok.clear();
        let p = run(&d, &a);
        assert!(p.is_empty());
        assert!(p.warnings.iter().any(|w| w.contains("protected")));
    }

    #[test]
    fn lost_bundle_is_a_replace() {
        let d = desired(vec![client("a", Clearance::Operator, &[])], false);
        let mut a = applied(&d);
        a.bundles_ok.clear();
        let p = run(&d, &a);
        assert_eq!(p.changes[0].reason, "issued bundle lost");
    }

    #[test]
    fn stale_export_is_rewritten() {
        let d = desired(vec![], false);
        let mut a = applied(&d);
        a.export_thumbprints = Some(vec![thumb(9)]);
        let p = run(&d, &a);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].action, Action::Export);
        a.export_thumbprints = None;
        assert_eq!(run(&d, &a).changes[0].action, Action::Export);
    }

    #[test]
    fn unknown_replace_key_is_an_error() {
        let d = desired(vec![], false);
        let opts = PlanOptions {
            replace: ["ghost".to_string()].into(),
            ..PlanOptions::default()
        };
        assert!(plan(&d, &Actual::default(), NOW, &opts).is_err());
    }

    #[test]
    fn plans_are_deterministic() {
        let d = desired(
            vec![
                client("z", Clearance::Operator, &[]),
                client("a", Clearance::ValidUser, &[("X", Access::Read)]),
            ],
            false,
        );
        assert_eq!(run(&d, &Actual::default()), run(&d, &Actual::default()));
    }

    #[test]
    fn bundle_password_and_profile_are_compared_without_the_password() {
        let d = desired(vec![client("a", Clearance::Operator, &[])], false);
        let mut a = applied(&d);
        a.registry.certificates[0].bundle_password = Some(NO_PASSWORD.into());
        let with = |map: &[(&str, &str)]| PlanOptions {
            bundle_passwords: Some(
                map.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..PlanOptions::default()
        };
        // Same: nothing to do. Unknown (a review plan): not compared.
        assert!(plan(&d, &a, NOW, &with(&[])).unwrap().is_empty());
        assert!(plan(&d, &a, NOW, &PlanOptions::default())
            .unwrap()
            .is_empty());
        let p = plan(&d, &a, NOW, &with(&[("a", "hmac-sha256:11")])).unwrap();
        assert_eq!(p.changes[0].action, Action::Update);
        assert_eq!(p.changes[0].reason, "bundle: password added");
        assert!(!p.changes[0].escalation);
        a.registry.certificates[0].bundle_password = Some("hmac-sha256:11".into());
        let p = plan(&d, &a, NOW, &with(&[("a", "hmac-sha256:22")])).unwrap();
        assert_eq!(p.changes[0].reason, "bundle: password changed");
        let p = plan(&d, &a, NOW, &with(&[])).unwrap();
        assert_eq!(p.changes[0].reason, "bundle: password removed");
        // The profile, together with an edit.
        let mut legacy = d.clone();
        if let Some(ClientSpec::Generate(g)) = legacy.clients.get_mut("a").map(|c| &mut c.source) {
            g.pfx = PfxProfile::Legacy;
        }
        legacy.clients.get_mut("a").unwrap().name = "A".into();
        let p = plan(&legacy, &a, NOW, &with(&[("a", "hmac-sha256:11")])).unwrap();
        assert_eq!(
            p.changes[0].reason,
            "name changed in certs.toml; bundle: pfx modern -> legacy"
        );
    }

    #[test]
    fn validity_change_is_a_replace_naming_both() {
        let mut d = desired(vec![client("a", Clearance::Operator, &[])], false);
        let a = applied(&d);
        if let Some(ClientSpec::Generate(g)) = d.clients.get_mut("a").map(|c| &mut c.source) {
            g.validity = Period::days(90);
        }
        let p = run(&d, &a);
        assert_eq!(p.changes[0].action, Action::Replace);
        assert_eq!(p.changes[0].reason, "validity 1y -> 90d");
        // A second off is rounding, not a change.
        assert_eq!(
            validity_change(
                NOW - time::Duration::days(7),
                NOW + time::Duration::seconds(365 * 86_400 + 1),
                Period::days(365)
            ),
            None
        );
    }

    #[test]
    fn every_delete_counts_against_max_deletions() {
        let mut d = desired(vec![client("a", Clearance::Operator, &[])], false);
        d.store.max_deletions = 1;
        let mut a = applied(&d);
        for n in [50u8, 51] {
            let mut old = a.registry.certificates[0].clone();
            old.thumbprint = thumb(n);
            old.retire_after = Some(NOW - time::Duration::days(1));
            a.registry.certificates.push(old);
        }
        match plan(&d, &a, NOW, &PlanOptions::default()) {
            Err(PlanError::TooManyDeletions {
                count: 2,
                max: 1,
                keys,
            }) => {
                assert!(keys.contains("rotation overlap ended"), "{keys}")
            }
            other => panic!("{other:?}"),
        }
    }
}
