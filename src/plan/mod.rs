//! The planner: a pure function from what certs.toml declares and what the store holds to the
//! list of changes, each with a reason a person understands. No I/O, no clock, no randomness.
//!
//! [`plan`] is the entry point; a `Planner` carries its inputs to the parts: the server
//! certificate and its export (`server`), the declared clients (`clients`), the refusals that
//! guard against a wrong config (`checks`), and the registry as it will be after the plan
//! ([`project`], `assumed_store`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{ClientDesired, Desired};
use crate::model::{Access, Clearance, EntryThumbprint, SinceBase, Thumbprint, UnreadFile};
use crate::registry::{Actual, CertEntry, ServerEntry};

mod checks;
mod clients;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod lifetime;
use lifetime::{declared_lifetime_reasons, lifetime_reasons, renewal_reason, Issued, Lifetime};
mod policy;
mod project;
mod server;
mod settings;
#[cfg(test)]
mod tests;
pub(crate) mod until;

pub(crate) use checks::check_declared;
pub(crate) use clients::{bundle_reasons, DeclaredPassword};
pub use cluster::{
    can_disable, extra_registrations, held_access, plan_cluster, registration_states,
    ClusterAction, ClusterChange, ClusterClearance, ClusterListing, ClusterOptions, ClusterPlan,
    ClusterView, ExtraRegistration, Keep, Registration, RegistrationFields, RegistrationState,
    ServerVersion,
};
pub(crate) use policy::check_declared_policy;
pub use policy::{evaluate, PolicyReport, RuleResult, RuleState, Usage, Violation};
pub use project::project;
pub(crate) use project::{
    assumed_store, generated_client_entry, generated_server_entry, mutate, node_entries,
    upload_entries, NewCert,
};
pub(crate) use settings::{policy_record, settings_of};

/// What a change does to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Declared but not registered.
    Create,
    /// Edited in place: same thumbprint.
    Update,
    /// Re-issued or replaced: a new thumbprint.
    Replace,
    /// Registered but no longer declared (prune), or at the end of a rotation overlap.
    Delete,
    /// The export file written again.
    Export,
}

impl Action {
    /// The plan's legend: `+`, `~`, `-/+`, `-`, `>`.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Export => ">",
        }
    }
    /// The action's name in the JSON plan.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Export => "export",
        }
    }
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The server (ClusterNode) certificate(s).
    Server,
    /// A client certificate, by its certs.toml key.
    Client,
    /// The export file of the server certificate(s).
    Export,
    /// The `[server] install` file: the server certificate with its key, for a node.
    Install,
    /// `[store]` or `[cluster]` settings, by section.
    Settings,
}

impl Target {
    /// The target's name in the JSON plan.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Target::Server => "server",
            Target::Client => "client",
            Target::Export => "export",
            Target::Install => "install",
            Target::Settings => "settings",
        }
    }
}

/// The fields of a certificate that matter to a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    /// The certificate's thumbprint; None while only the apply knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thumbprint: Option<Thumbprint>,
    /// The display name (CN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// The security clearance (clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clearance: Option<Clearance>,
    /// Database access (clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<String, Access>>,
    /// `protect = true` (clients): shown only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) protect: bool,
    /// When access ends (clients): shown only when set.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option",
        default
    )]
    pub until: Option<OffsetDateTime>,
    /// `disabled = true` (clients): shown only when set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// The expiry; None while only the apply knows it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option",
        default
    )]
    pub(crate) not_after: Option<OffsetDateTime>,
    /// A settings change: the section's values (`urls`, `prune`, ...).
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) settings: BTreeMap<String, serde_json::Value>,
}

impl Fields {
    /// The values of a settings section.
    pub(crate) fn settings(values: BTreeMap<String, serde_json::Value>) -> Fields {
        Fields {
            settings: values,
            ..Fields::default()
        }
    }
}

/// Which field of a client a [`FieldChange`] is about. A database is its own case, so that a
/// database called `name` or `clearance` is never taken for the field of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Field {
    /// The display name (CN).
    Name,
    /// The security clearance.
    Clearance,
    /// The access to one database, by its name.
    Database(String),
    /// Who holds an uploaded certificate (subject and thumbprint of each).
    Certificate,
    /// `protect`: whether the client may leave, or be re-issued, in one step.
    Protect,
    /// `until`: when the client's access ends.
    Until,
    /// `disabled`: whether the client's access is suspended.
    Disabled,
    /// A setting of `[store]` or `[cluster]`, by name.
    Setting(String),
}

impl Field {
    /// A database's access, the part of a client's permissions.
    fn is_database(&self) -> bool {
        matches!(self, Field::Database(_))
    }

    /// As the plan shows it: `name`, `clearance`, `certificate`, or the database's name.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Field::Name => "name",
            Field::Clearance => "clearance",
            Field::Certificate => "certificate",
            Field::Protect => "protect",
            Field::Until => "until",
            Field::Disabled => "disabled",
            Field::Database(db) | Field::Setting(db) => db,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field's old and new value, for `clearance: ValidUser -> Operator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field that changes.
    pub field: Field,
    /// Its value before (None for a field that is added).
    pub old: Option<String>,
    /// Its value after (None for a field that is removed).
    pub new: Option<String>,
}

impl FieldChange {
    fn new(field: Field, old: Option<String>, new: Option<String>) -> FieldChange {
        FieldChange { field, old, new }
    }
}

/// One change of the plan, with the reason a person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What the change does.
    pub action: Action,
    /// What it is about.
    pub target: Target,
    /// The client key, the server's name, or the export path.
    pub key: String,
    /// Why, in words.
    pub reason: String,
    /// Whether it widens access (flagged in every format).
    pub escalation: bool,
    /// The fields that matter to the action, before and after.
    pub before: Option<Fields>,
    /// See `before`.
    pub after: Option<Fields>,
    /// The field-by-field changes a reviewer reads (not in the JSON plan).
    #[serde(skip)]
    pub fields: Vec<FieldChange>,
    /// Registry thumbprints this change removes (delete, replace) or edits (update).
    #[serde(skip)]
    pub thumbprints: Vec<EntryThumbprint>,
}

impl Change {
    /// A change with nothing but its action, target, key and reason; the `with_*` methods add
    /// the rest.
    fn new(action: Action, target: Target, key: impl Into<String>, reason: String) -> Change {
        Change {
            action,
            target,
            key: key.into(),
            reason,
            escalation: false,
            before: None,
            after: None,
            fields: vec![],
            thumbprints: vec![],
        }
    }

    /// Writing the export file at `path` again.
    fn export(path: &std::path::Path, reason: String) -> Change {
        Change::new(
            Action::Export,
            Target::Export,
            path.display().to_string(),
            reason,
        )
    }

    /// Writing the `[server] install` file at `path` again (an export, with the key).
    fn install(path: &std::path::Path, reason: String) -> Change {
        Change::new(
            Action::Export,
            Target::Install,
            path.display().to_string(),
            reason,
        )
    }

    /// Flags the change as widening access.
    fn with_escalation(self, escalation: bool) -> Change {
        Change { escalation, ..self }
    }

    /// The certificate's fields before and after the change.
    fn with_fields(self, before: Option<Fields>, after: Option<Fields>) -> Change {
        Change {
            before,
            after,
            ..self
        }
    }

    /// The field-by-field changes a reviewer reads.
    fn with_changes(self, fields: Vec<FieldChange>) -> Change {
        Change { fields, ..self }
    }

    /// The registry thumbprints the change removes or edits.
    fn with_thumbprints(self, thumbprints: Vec<EntryThumbprint>) -> Change {
        Change {
            thumbprints,
            ..self
        }
    }
}

/// The changes that bring the store to what certs.toml declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, server first, then clients in key order, deletions, the export.
    pub changes: Vec<Change>,
    /// What a reviewer should know but nothing changes for.
    pub warnings: Vec<String>,
    /// Changes made to the store outside ravencert (shown before the changes).
    pub drift: Vec<String>,
    /// Registered certificates certs.toml no longer declares that stay (`prune = false`): they
    /// still have access, so a plan with them is not "No changes".
    pub kept: Vec<Kept>,
    /// The inputs this plan did not read (a password, a file outside the repository), each
    /// with what the plan could therefore not compare: never a silent "no changes".
    pub not_read: Vec<NotRead>,
    /// A review plan (`plan --base`, `plan --rev`): it read no password and no private key.
    pub review: bool,
    /// The earliest moment after this plan at which access ends by itself: a client's `until`
    /// (declared or recorded) or the end of a rotation overlap. `watch` plans again then.
    pub next_access_end: Option<OffsetDateTime>,
    /// The rules of the policy in force and whether each holds; None without a policy.
    pub policy: Option<PolicyReport>,
}

/// An undeclared certificate the store keeps (prune is off): who still has access, and how
/// much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Its client key in the store.
    pub key: String,
    /// Its name.
    pub name: String,
    /// Its thumbprint (a placeholder in a review plan's assumed store).
    pub thumbprint: EntryThumbprint,
    /// Its clearance.
    pub clearance: Clearance,
    /// Its database access (ValidUser).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, Access>,
}

/// An input certs.toml names that the plan did not read, and what that leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotRead {
    /// The certs.toml key naming it: `server.certificates[0].path`, `clients.app.upload`,
    /// `clients.app.password_env`, ...
    pub key: String,
    /// The file, when the input is one (never a password's value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why it was not read.
    pub why: String,
    /// What the plan could not compare because of it.
    pub effect: String,
}

impl Plan {
    /// Whether the plan changes nothing (there may still be kept certificates: see
    /// [`Plan::is_settled`]).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// "No changes" in the contract's sense: nothing to do, and nothing undeclared keeps
    /// access.
    pub fn is_settled(&self) -> bool {
        self.changes.is_empty() && self.kept.is_empty()
    }
    /// How many changes have this action.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// What the command line adds to certs.toml for one plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--replace KEY`: re-issue these even when nothing else asks for it.
    pub replace: BTreeSet<String>,
    /// `--allow-delete-all`: lifts the guard against deleting every client certificate.
    pub allow_delete_all: bool,
    /// Per generated client with a password, its fingerprint under the store's key, or why it
    /// was not read (a client that is not listed has none, recorded as "none"); None when the
    /// passwords are not looked at all, so the bundles' passwords are not compared.
    pub bundle_passwords: Option<BTreeMap<String, BundlePassword>>,
    /// A review plan (`plan --base`, `plan --rev`): no password and no private key was read, and
    /// the plan lists what it could not compare ([`Plan::not_read`]).
    pub review: bool,
    /// What the cluster's registrations grant, by upper-case thumbprint ([`held_access`]), when
    /// this plan read the cluster: an escalation is measured against what the cluster holds, so
    /// taking into the store a certificate the cluster already grants the same access (or
    /// more) widens nothing. None (`--offline`, `plan --base`, no `[cluster]`): measured
    /// against the store alone.
    pub cluster_access: Option<BTreeMap<Thumbprint, HeldAccess>>,
    /// When each registration was last used, where the cluster reports it: policy.toml's
    /// `max_unused` is not evaluated without it.
    pub cluster_usage: Option<Usage>,
}

/// The access one registration on the cluster grants: a client's clearance and databases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAccess {
    /// Its clearance.
    pub clearance: Clearance,
    /// Its database access (ValidUser).
    pub permissions: BTreeMap<String, Access>,
}

/// A generated client's declared bundle password, as far as the plan knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundlePassword {
    /// Its fingerprint under the store's key (or a stand-in that matches no recorded one).
    Fingerprint(String),
    /// Declared but not read, and why: a review reads no password; a variable that is not set
    /// is needed only when the bundle is written.
    NotRead(String),
}

use crate::model::{NO_PASSWORD, SERVER_KEY};

/// A plan that is refused: nothing may be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// More deletions than `store.max_deletions`.
    #[error("refused: this plan deletes {count} certificates ({keys}), more than store.max_deletions = {max}; raise max_deletions in certs.toml if this is intended")]
    TooManyDeletions {
        /// How many the plan deletes.
        count: usize,
        /// `store.max_deletions`.
        max: u32,
        /// The keys deleted, comma-separated.
        keys: String,
    },
    /// Every registered client certificate deleted, without `--allow-delete-all`.
    #[error("refused: this plan deletes every registered client certificate ({keys}); if that is really intended, run again with --allow-delete-all")]
    DeletesAll {
        /// The keys deleted, comma-separated.
        keys: String,
    },
    /// `--replace KEY` naming nothing declared.
    #[error("--replace {0}: no client or server in certs.toml has that key")]
    UnknownReplace(String),
    /// `--replace KEY` names an uploaded client, which only a new file replaces.
    #[error("refused: --replace {key}: an uploaded certificate cannot be re-issued by ravencert; put the new certificate in {}", path.display())]
    ReplaceUpload {
        /// The client's key.
        key: String,
        /// Its upload file.
        path: PathBuf,
    },
    /// `--replace server` while the server certificates are imported from files.
    #[error("refused: --replace server: the server certificates come from [server].certificates; put the new certificates in those files")]
    ReplaceImportedServer,
    /// An uploaded certificate that cannot be registered; `key` is the client's.
    #[error("refused: clients.{key}.upload: {problem}")]
    Upload {
        /// The client's key.
        key: String,
        /// What is wrong with its certificate.
        problem: UploadProblem,
    },
    /// A declared value the cluster's RavenDB version cannot hold (`Read` before 5.2).
    #[error("refused: clients.{key}: database access {access} (database '{database}') needs RavenDB {}.{} or later; the cluster at {url} runs {version} — declare another access, or upgrade the cluster", cluster::first_version(*access).0, cluster::first_version(*access).1)]
    ServerTooOld {
        /// The client's key.
        key: String,
        /// The database the access is declared for.
        database: String,
        /// The access the server cannot hold.
        access: Access,
        /// The node that answered.
        url: String,
        /// The version it runs.
        version: String,
    },
    /// An edit on a server newer than the last version whose edit handler ravencert checked:
    /// what the edit would do to a disabled registration or a two-factor requirement is not
    /// known, so it is not guessed.
    #[error("refused: cluster edit of '{name}' ({thumbprint}): the cluster at {url} runs RavenDB {version}, newer than {}.{}, the last version whose edit ravencert has checked to leave a registration's disabled state and two-factor requirement as they are; nothing was changed — make this edit in the Studio, or use a ravencert that knows this version", cluster::LAST_CHECKED_EDIT.0, cluster::LAST_CHECKED_EDIT.1)]
    EditOnUncheckedServer {
        /// The registration's name.
        name: String,
        /// Its thumbprint.
        thumbprint: String,
        /// The node that answered.
        url: String,
        /// The version it runs.
        version: String,
    },
    /// A generated client declared while no `[server] certificates` entry holds its private key.
    #[error("clients.{key}: {}", no_signing_key(files))]
    NoSigningKey {
        /// The generated client's key.
        key: String,
        /// The key-less node files, as declared, comma-separated.
        files: String,
    },
    /// `[server] install` while the first `[server] certificates` entry holds no private key.
    #[error("server.install: {}", install_without_key(file))]
    InstallWithoutKey {
        /// The first node file, as declared.
        file: String,
    },
    /// A protected client (`protect = true` recorded in the store, or declared in certs.toml)
    /// deleted or re-issued in one step.
    #[error("refused: client '{key}' is protected (protect = true), and this plan {}", change.explained(key))]
    Protected {
        /// The client's key.
        key: String,
        /// What the plan would have done to it.
        change: ProtectedChange,
    },
    /// The plan breaks a rule of the policy in force (policy.toml): shown, never applied.
    #[error("{}", policy::refusal_text(shown, violations))]
    Policy {
        /// The policy file as outputs name it.
        shown: String,
        /// Every client breaking a rule.
        violations: Vec<Violation>,
    },
    /// Every client certificate on the cluster unregistered, without `--allow-delete-all`.
    #[error("refused: this plan unregisters every client certificate on the cluster at {url} ({names}) and the store holds none; if that is really intended, run again with --allow-delete-all")]
    UnregistersAll {
        /// The node that answered.
        url: String,
        /// The registrations' names, comma-separated.
        names: String,
    },
}

impl PlanError {
    /// The certs.toml key the refusal concerns, with the message to show at its line; None when
    /// it concerns no single key.
    pub(crate) fn at_key(&self) -> Option<(String, String)> {
        match self {
            PlanError::Upload { key, problem } => Some((
                format!("clients.{key}.upload"),
                format!("refused: {problem}"),
            )),
            PlanError::NoSigningKey { key, files } => {
                Some((format!("clients.{key}"), no_signing_key(files)))
            }
            PlanError::InstallWithoutKey { file } => {
                Some(("server.install".to_string(), install_without_key(file)))
            }
            PlanError::TooManyDeletions { .. } => {
                Some(("store.max_deletions".to_string(), self.to_string()))
            }
            // Still declared: at its table. A deleted client has no line left to point at.
            PlanError::Protected { key, change } if *change != ProtectedChange::Delete => {
                Some((format!("clients.{key}"), self.to_string()))
            }
            _ => None,
        }
    }
}

/// What a refused plan would have done to a protected client in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectedChange {
    /// Deleted: no longer declared (its table removed or renamed) while prune is on.
    Delete,
    /// Re-issued because certs.toml changed it (key type, validity, uploaded to generated):
    /// the reasons.
    Reissue(String),
    /// An uploaded client whose file now holds other certificates: the reason.
    ReplaceUpload(String),
    /// Deleted because its `until` has passed (declared after protect was dropped in the same
    /// change): when, as shown.
    Ended(String),
}

impl ProtectedChange {
    /// What the plan does, and the way out.
    fn explained(&self, key: &str) -> String {
        match self {
            ProtectedChange::Delete => "deletes it (no longer declared in certs.toml: its table removed or renamed, with prune = true); a protected client leaves in two reviewed steps: drop `protect` first, apply, then remove it".to_string(),
            ProtectedChange::Reissue(why) => format!("re-issues it ({why}); run with --replace {key} to re-issue it in one step, or drop `protect` first, apply, then make this change"),
            ProtectedChange::ReplaceUpload(why) => format!("replaces its certificate ({why}); drop `protect` first, apply, then put the new certificate in place"),
            ProtectedChange::Ended(until) => format!("deletes it (access ended {until}, its until in certs.toml); a protected client leaves in two reviewed steps: drop `protect` first, apply, then set until"),
        }
    }
}

fn no_signing_key(files: &str) -> String {
    format!("a generated client certificate is signed with a server certificate's private key, and no [server] certificates entry holds one (key-less: {files}): import the node .pfx with its private key in [server] certificates, or declare this client as an upload")
}

fn install_without_key(file: &str) -> String {
    format!("install writes the first server certificate with its private key, and server.certificates[0] ({file}) holds no private key: import the node .pfx with its private key there, or remove `install`")
}

/// Why an uploaded certificate cannot be registered. `file` is the upload's path as declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadProblem {
    /// Two clients declare the same certificate.
    #[error("certificate {thumbprint} in {file} is also declared by clients.{other}; RavenDB keys its registry by thumbprint, so a certificate can be registered once — keep one")]
    DeclaredTwice {
        /// The upload's path as declared.
        file: String,
        /// The certificate's thumbprint.
        thumbprint: Thumbprint,
        /// The other client declaring it.
        other: String,
    },
    /// A node's (or the registered server's) own certificate uploaded as a client.
    #[error("{file} holds the server's own certificate {thumbprint}; the server is trusted as a ClusterNode already — remove the client, or upload a client certificate")]
    OwnServer {
        /// The upload's path as declared.
        file: String,
        /// The certificate's thumbprint.
        thumbprint: Thumbprint,
    },
    /// The certificate is registered under another key that certs.toml still declares.
    #[error("{file} holds certificate {thumbprint}, which is registered as client '{holder}'; a certificate can be registered once — remove it from clients.{key}, or remove clients.{holder} first")]
    HeldByDeclared {
        /// The upload's path as declared.
        file: String,
        /// The certificate's thumbprint.
        thumbprint: Thumbprint,
        /// The client uploading it.
        key: String,
        /// The client it is registered as.
        holder: String,
    },
    /// The certificate is registered under a key no longer declared, and prune is off.
    #[error("{file} holds certificate {thumbprint}, which is registered as client '{holder}'; a certificate can be registered once — set prune = true to delete '{holder}' in the same apply, or keep the key '{holder}'")]
    HeldByUndeclared {
        /// The upload's path as declared.
        file: String,
        /// The certificate's thumbprint.
        thumbprint: Thumbprint,
        /// The client it is registered as.
        holder: String,
    },
    /// The certificate has expired.
    #[error("{file} holds certificate {thumbprint} ({subject}) that expired on {expired_on}; RavenDB would refuse it at once — put a current certificate in the file, or remove the client")]
    Expired {
        /// The upload's path as declared.
        file: String,
        /// The certificate's thumbprint.
        thumbprint: Thumbprint,
        /// Its subject.
        subject: String,
        /// The day it expired.
        expired_on: time::Date,
    },
}

/// The plan that brings `actual` to `desired` at `now`.
pub fn plan(
    desired: &Desired,
    actual: &Actual,
    now: OffsetDateTime,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    Planner::new(desired, actual, now, opts).run()
}

/// One planning: its inputs, the lookups its parts share, and the warnings they collect.
struct Planner<'a> {
    desired: &'a Desired,
    actual: &'a Actual,
    now: OffsetDateTime,
    opts: &'a PlanOptions,
    /// The certificate in use per client key, looked up once (a registry can hold thousands).
    active: BTreeMap<&'a str, &'a CertEntry>,
    /// The certificates still in their rotation overlap, per client key (few, looked up once).
    retiring: BTreeMap<&'a str, Vec<&'a EntryThumbprint>>,
    warnings: Vec<String>,
    /// Undeclared certificates kept because prune is off.
    kept: Vec<Kept>,
    /// What the plan did not read, and what that leaves out.
    not_read: Vec<NotRead>,
}

impl<'a> Planner<'a> {
    fn new(
        desired: &'a Desired,
        actual: &'a Actual,
        now: OffsetDateTime,
        opts: &'a PlanOptions,
    ) -> Planner<'a> {
        Planner {
            desired,
            actual,
            now,
            opts,
            active: actual
                .registry
                .active_certificates()
                .map(|c| (c.key.as_str(), c))
                .collect(),
            retiring: actual
                .registry
                .certificates
                .iter()
                .filter(|c| c.retire_after.is_some())
                .fold(BTreeMap::new(), |mut m, c| {
                    m.entry(c.key.as_str())
                        .or_insert_with(Vec::new)
                        .push(&c.thumbprint);
                    m
                }),
            warnings: desired.declared.warnings.clone(),
            kept: Vec::new(),
            not_read: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Plan, PlanError> {
        for key in &self.opts.replace {
            if key != SERVER_KEY && !self.desired.declared.clients.contains_key(key) {
                return Err(PlanError::UnknownReplace(key.clone()));
            }
        }
        // Settings first: they decide where the rest takes effect. Compared with what the
        // store recorded at its last apply (nothing before the first, or in a store written
        // before ravencert recorded them: the next apply records them).
        let mut changes = match &self.actual.registry.settings {
            Some(before) => {
                settings::settings_changes(before, &settings_of(&self.desired.declared))
            }
            None => Vec::new(),
        };
        // Server first: clients are signed by it.
        let server = self.server()?;
        let server_changes = server.is_some();
        changes.extend(server);
        changes.extend(self.clients()?);
        changes.extend(self.deletions()?);
        // The export follows the server certificate(s).
        changes.extend(self.export(server_changes));
        changes.extend(self.install(server_changes));
        let mut not_read: Vec<NotRead> =
            self.desired.files.unread.iter().map(unread_note).collect();
        not_read.extend(self.not_read);
        let mut plan = Plan {
            changes,
            warnings: self.warnings,
            drift: self.actual.drift.clone(),
            kept: self.kept,
            not_read,
            review: self.opts.review,
            next_access_end: until::next_end(self.desired, &self.actual.registry, self.now),
            policy: None,
        };
        // The rules hold for the store as the plan leaves it (a projection, paid only here).
        if let Some(policy) = &self.desired.policy_in_force {
            let projected = project(&self.actual.registry, &plan, self.desired, self.now);
            let usage = self.opts.cluster_usage.as_ref();
            let report = evaluate(policy, self.desired, Some(&projected), usage, self.now);
            plan.policy = Some(report);
        }
        Ok(plan)
    }
}

/// A registered certificate's thumbprint and expiry, when they are known: a review plan's
/// assumed store (`plan --base`) has placeholders there, shown as null, never as values.
fn known(
    thumbprint: &EntryThumbprint,
    not_after: OffsetDateTime,
) -> (Option<Thumbprint>, Option<OffsetDateTime>) {
    match thumbprint.known() {
        Some(t) => (Some(t.clone()), Some(not_after)),
        None => (None, None),
    }
}

/// A thumbprint for a message: the placeholder of a review plan is not shown as one.
fn shown(thumbprint: &EntryThumbprint) -> &str {
    match thumbprint.known() {
        Some(t) => t.as_str(),
        None => "thumbprint known after apply",
    }
}

fn entry_fields(e: &CertEntry) -> Fields {
    let (thumbprint, not_after) = known(&e.thumbprint, e.not_after);
    Fields {
        thumbprint,
        name: Some(e.name.clone()),
        clearance: Some(e.clearance),
        permissions: Some(e.permissions.clone()),
        protect: e.protect,
        until: e.until,
        disabled: e.disabled,
        not_after,
        settings: Default::default(),
    }
}

fn server_fields(e: &ServerEntry) -> Fields {
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
        protect: c.protect,
        until: c.until,
        disabled: c.disabled,
        ..Fields::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The plan's note on a file a review did not read: what it leaves out, by what the file is
/// and how it compares with BASE.
fn unread_note(u: &UnreadFile) -> NotRead {
    let effect = if u.key == "cluster.ca" {
        "the cluster's CA file was not checked"
    } else if u.key.starts_with("server.") {
        match u.since_base {
            SinceBase::Same if u.digest.is_some() => {
                "the same file as at BASE: the server certificate is unchanged, its thumbprint not shown"
            }
            SinceBase::Same => {
                "the same path as at BASE: the server certificate was not compared (apply reads the file)"
            }
            SinceBase::Unknown => {
                "the server certificate was not compared with the registered one (apply reads the file)"
            }
            SinceBase::Changed | SinceBase::New => {
                "the server certificate is not known: the plan cannot show its thumbprint"
            }
        }
    } else {
        match u.since_base {
            SinceBase::Same => {
                "the same file as at BASE: its certificates are unchanged; their expiry was not checked"
            }
            SinceBase::Unknown => {
                "its certificates were not compared with the registered ones: a new holder would not show in this plan"
            }
            SinceBase::Changed => {
                "the file changed since BASE: the plan shows a replace without the new holder"
            }
            SinceBase::New => {
                "its certificates are not shown, nor checked for expiry or duplicates"
            }
        }
    };
    NotRead {
        key: u.key.clone(),
        path: Some(u.path.display().to_string()),
        why: u.why.clone(),
        effect: effect.into(),
    }
}

/// The file a review did not read under this certs.toml key, if any.
fn unread<'d>(desired: &'d Desired, key: &str) -> Option<&'d UnreadFile> {
    desired.files.unread.iter().find(|u| u.key == key)
}

fn list<T: AsRef<str>>(ts: &[T]) -> String {
    ts.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
}
