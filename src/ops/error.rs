//! The one error type of the commands: a named case per failure, the lower layers' errors
//! wrapped as they are. Every message is written for the person at the terminal; main prints it
//! after `error: ` and exits 1.

use std::path::PathBuf;

use super::bundle::BundleError;
use super::context::StoreLocationError;
use super::exports::ExportPathError;
use crate::apply::ApplyError;
use crate::config::{ConfigError, Desired};
use crate::git::GitError;
use crate::pki::PkiError;
use crate::plan::PlanError;
use crate::saved_plan::SavedPlanError;
use crate::store::StoreError;
use crate::watch::WatchError;

/// A command's failure; always exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// certs.toml (or a value it names) is invalid: every problem found, then that nothing was
    /// changed.
    #[error("{}", config_report(.0))]
    Config(Vec<ConfigError>),
    /// certs.toml on disk is larger than any config a person reviews.
    #[error("{}: a certs.toml larger than {} MiB is refused (is this the right file?)", .path.display(), .max >> 20)]
    ConfigTooLarge {
        /// certs.toml.
        path: PathBuf,
        /// The limit in bytes.
        max: usize,
    },
    /// certs.toml at a git revision is larger than any config a person reviews.
    #[error("{}: is {len} bytes; a certs.toml larger than {} MiB is refused (is this the right file?)", .path.display(), .max >> 20)]
    ConfigOversized {
        /// certs.toml as shown (with `@REV`).
        path: PathBuf,
        /// Its size.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// certs.toml cannot be read from the disk.
    #[error("cannot read {}: {source}{}", .path.display(), init_hint(.source))]
    ConfigUnreadable {
        /// certs.toml.
        path: PathBuf,
        /// Why.
        source: crate::fsutil::ReadError,
    },
    /// policy.toml (or `--policy FILE`) cannot be read.
    #[error("{}: {problem}", .path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// certs.toml holds bytes that are not UTF-8.
    #[error("{}: is not UTF-8 text", .0.display())]
    ConfigNotUtf8(PathBuf),
    /// A symbolic link inside the repository leads out of it (git's explanation).
    #[error("{0}")]
    LinkLeavesRepository(String),
    /// `--store` names certs.toml's folder or one above it.
    #[error("--store: {0}")]
    StoreLocation(StoreLocationError),
    /// `init` found a file where it would write the starter.
    #[error("{} already exists; init never overwrites (edit it, or pass -c NEW_PATH)", .0.display())]
    ConfigExists(PathBuf),
    /// `init` could not write the starter.
    #[error("cannot write {}: {source}", .path.display())]
    WriteConfig {
        /// certs.toml.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--require-clean` and certs.toml's provenance cannot be told (no git, no commit).
    #[error("--require-clean: {0}")]
    NoProvenance(GitError),
    /// `--require-clean` and these files have uncommitted changes.
    #[error("--require-clean: uncommitted changes in {}; commit them (so the applied revision names what was applied) or drop --require-clean. Nothing was changed.", .0.join(", "))]
    Uncommitted(Vec<String>),
    /// apply needs a confirmation and stdin is not a terminal.
    #[error("apply needs confirmation and there is no terminal to ask on: review `ravencert plan`, then run `ravencert apply --yes` (nothing was changed)")]
    NoTerminal,
    /// The person did not answer `yes`.
    #[error("apply cancelled; nothing was changed")]
    Cancelled,
    /// Under the lock the plan differs from the one confirmed.
    #[error("the store changed while you were confirming; nothing was changed — run apply again")]
    ChangedWhileConfirming,
    /// Under the lock the cluster plan differs from the one confirmed (the cluster changed).
    #[error("the cluster changed while you were confirming (its plan is not the one shown); nothing was changed — run apply again")]
    ClusterChangedWhileConfirming,
    /// `export` without `--out` and without `[server].export`.
    #[error("no export path: set [server].export in certs.toml or pass --out PATH")]
    NoExportPath,
    /// `export --out` names a path the export must not be written to.
    #[error(transparent)]
    ExportTarget(ExportPathError),
    /// `status` with an invalid certs.toml and a store that cannot be read either.
    #[error("{config}\n(the store {} cannot be shown either: {source})", .store.display())]
    StatusUnreadable {
        /// Why certs.toml was refused.
        config: Box<Error>,
        /// The store that was tried.
        store: PathBuf,
        /// Why it could not be read.
        source: StoreError,
    },
    /// `settings` without `[server] install`.
    #[error("no [server] install in certs.toml: declare where the node loads its certificate, e.g. `install = {{ path = \"/etc/ravendb/cluster.pfx\", pfx = \"legacy\" }}` under [server], run `ravencert apply`, then `ravencert settings`")]
    NoInstall,
    /// `settings` without `[cluster]` (and so no admin certificate to name).
    #[error("no [cluster] admin in certs.toml: declare [cluster] with `admin = \"KEY\"` (a generated ClusterAdmin client) or `admin_certificate`, so that settings can name the admin certificate the node trusts")]
    NoClusterAdmin,
    /// `settings` before the store holds what it names.
    #[error("the store is not applied yet ({0}); run `ravencert apply` first")]
    NotApplied(String),
    /// `settings`: the admin .pfx of `[cluster].admin_certificate` cannot be used.
    #[error("cluster.admin_certificate: {}: {reason}", .path.display())]
    AdminCertificate {
        /// The admin .pfx.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON output cannot be encoded.
    #[error("cannot encode the output as JSON: {0}")]
    Encode(serde_json::Error),
    /// The planner refused (a guard, an unknown `--replace`).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store cannot be read, locked or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// git could not read certs.toml at a revision.
    #[error(transparent)]
    Git(#[from] GitError),
    /// Cryptography failed (a password fingerprint).
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The apply failed; an export failure says itself what was committed.
    #[error("{}", apply_failed(.0))]
    Apply(ApplyError),
    /// `export` failed to write the export.
    #[error(transparent)]
    Export(ApplyError),
    /// A saved plan cannot be written, read, or is stale.
    #[error(transparent)]
    SavedPlan(#[from] SavedPlanError),
    /// The cluster cannot be contacted as `[cluster]` says.
    #[error(transparent)]
    ClusterSetup(#[from] super::cluster::ClusterSetupError),
    /// A request to the cluster failed (before any change: reading it).
    #[error("cluster: {0}")]
    Cluster(crate::ravendb::ClusterError),
    /// plan, apply or watch could not read the cluster, before any change: says so, and the
    /// way out while it is down.
    #[error("cluster: {0}\n  Nothing was changed: not the store, not the cluster. While the cluster is down, `ravencert apply --offline` applies the store alone (`plan --offline` shows that plan); the next apply without --offline reconciles the cluster.")]
    ClusterUnread(crate::ravendb::ClusterError),
    /// The cluster phase of an apply stopped at a failed request.
    #[error(transparent)]
    ClusterApply(Box<super::cluster::ClusterApplyError>),
    /// The store was applied, then reading or planning the cluster failed.
    #[error("the store is applied and stays committed, but the cluster phase failed: {0}\n  Run apply again once this is fixed: it does only what remains.")]
    AfterStore(Box<Error>),
    /// `adopt` wrote nothing.
    #[error(transparent)]
    Adopt(#[from] super::adopt::AdoptError),
    /// The watch daemon cannot start or its file watch stopped.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// `watch --listen` cannot start its listener.
    #[error(transparent)]
    Listen(#[from] crate::listen::ListenError),
    /// `bundle` cannot hand out this client's zip.
    #[error(transparent)]
    Bundle(Box<BundleError>),
}

/// The result of a command.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Vec<ConfigError>> for Error {
    fn from(errors: Vec<ConfigError>) -> Error {
        Error::Config(errors)
    }
}

impl From<BundleError> for Error {
    fn from(error: BundleError) -> Error {
        Error::Bundle(Box::new(error))
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Error {
        Error::Config(vec![error])
    }
}

impl Error {
    /// A cluster-phase failure after the store phase: says that the store is committed when
    /// it changed (a request failure says so itself).
    pub(crate) fn after_store(e: Error, store_changed: bool) -> Error {
        match e {
            e @ Error::ClusterApply(_) => e,
            e if store_changed => Error::AfterStore(Box::new(e)),
            e => e,
        }
    }

    /// A refused plan, placed at the certs.toml key it concerns when there is one.
    pub(crate) fn from_plan(desired: &Desired, e: PlanError) -> Error {
        match e.at_key() {
            Some((key, message)) => desired.declared.error_at(key, message).into(),
            None => Error::Plan(e),
        }
    }
}

/// Why certs.toml cannot be used, as the daemon's log, `/healthz` and the status page's banner
/// say it (unescaped: each output escapes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unusable {
    /// Every problem is with a secret or a file certs.toml names, not with its text.
    pub(crate) inputs: bool,
    /// Each problem on one line; a secret or a file is named first (`environment variable X
    /// is not set`), then where certs.toml names it.
    pub(crate) problems: Vec<String>,
}

impl Unusable {
    /// Why certs.toml could not be loaded (read, parsed, or what it names checked).
    pub(crate) fn of(e: &Error) -> Unusable {
        match e {
            Error::Config(errors) if !errors.is_empty() => Unusable {
                inputs: errors.iter().all(ConfigError::names_input),
                problems: errors
                    .iter()
                    .map(|e| {
                        if e.names_input() {
                            e.brief()
                        } else {
                            e.to_string().replace('\n', " | ")
                        }
                    })
                    .collect(),
            },
            e => Unusable {
                inputs: false,
                problems: vec![e.to_string().replace('\n', " | ")],
            },
        }
    }

    /// A plan or an apply that stopped only because a secret it reads (a bundle's password) is
    /// not there or cannot be used: certs.toml cannot be used as it stands either.
    pub(crate) fn of_secrets(e: &Error) -> Option<Unusable> {
        match e {
            Error::Config(errors)
                if !errors.is_empty() && errors.iter().all(ConfigError::is_secret) =>
            {
                Some(Unusable::of(e))
            }
            _ => None,
        }
    }

    /// On one line: a missing secret or file by its name, anything else as an invalid
    /// certs.toml; and that nothing was applied.
    pub(crate) fn reason(&self) -> String {
        let problems = self.problems.join(" | ");
        if self.inputs {
            format!("{problems}; nothing applied, the last good state stays")
        } else {
            format!("certs.toml is invalid, nothing applied, the last good state stays: {problems}")
        }
    }
}

fn config_report(errors: &[ConfigError]) -> String {
    let mut text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\nerror: ");
    if errors.len() > 1 {
        let document = if errors.iter().all(ConfigError::in_policy) {
            "policy.toml"
        } else {
            "certs.toml"
        };
        text.push_str(&format!(
            "\n({} problems in {document}; nothing was changed)",
            errors.len()
        ));
    } else {
        text.push_str("\n(nothing was changed)");
    }
    text
}

fn init_hint(e: &crate::fsutil::ReadError) -> &'static str {
    if e.kind() == std::io::ErrorKind::NotFound {
        " (run `ravencert init` to write a starter, or pass -c PATH)"
    } else {
        ""
    }
}

fn apply_failed(e: &ApplyError) -> String {
    match e {
        // Not "apply failed": the store part succeeded, and the message says so.
        ApplyError::Export { .. } | ApplyError::Install { .. } => e.to_string(),
        e => format!("apply failed: {e}"),
    }
}
