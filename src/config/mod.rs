//! certs.toml: the serde schema types (with spans, for errors that name the line) and their
//! validation into [`Desired`], the value the planner works from.
//!
//! `raw` holds what the file may contain, `schema` the JSON schema of it, `validate` the checks
//! per section, `diagnostics` the errors as a person reads them, `references` the secrets and
//! files the config names; this module the validated values and [`parse`].

mod diagnostics;
mod keypath;
pub mod policy;
mod raw;
mod references;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::inputs::{self, Files, Reader, Withheld};
pub(crate) use crate::inputs::{FileRef, Secret, SecretRef};
use crate::model::{Clearance, KeySpec, Period, Permissions, PfxProfile, RenewBefore};
use crate::model::{SinceBase, Thumbprint, UnreadFile};
use diagnostics::{syntax_errors, Checker, ConfigErrorKind};
use raw::RawConfig;
use references::check_ca_file;
pub(crate) use references::missing_references;

pub use diagnostics::ConfigError;
pub use policy::{parse_policy, policy_json_schema, Policy};
pub use references::check_references;
pub use schema::json_schema;

// ---------------------------------------------------------------------------------------------
// Validated values.

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The store folder (joined to certs.toml's folder, or `--store`).
    pub path: PathBuf,
    /// `[store] path` as certs.toml writes it (`store` when absent): what the registry records
    /// and a plan compares, the same on every machine whatever `--store` says.
    pub declared_path: String,
    /// Delete registered certificates that are no longer declared.
    pub prune: bool,
    /// 0 = no limit.
    pub max_deletions: u32,
}

/// How a generated client certificate is made (its own settings, else `[defaults]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSpec {
    /// Key type.
    pub key: KeySpec,
    /// Lifetime.
    pub validity: Period,
    /// When it is re-issued.
    pub renew_before: RenewBefore,
    /// Encryption of the issued .pfx.
    pub pfx: PfxProfile,
    /// The password of the issued .pfx and key, if any.
    pub password: Option<SecretRef>,
}

/// Where the server certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec {
    /// `generate = true`: self-signed, made and renewed by ravencert.
    Generate {
        /// Its CN.
        name: String,
        /// Its DNS names (the name, unless `dns` is set).
        dns: Vec<String>,
        /// Key type.
        key: KeySpec,
        /// Lifetime.
        validity: Period,
        /// When it is re-issued (`[defaults].renew_before`).
        renew_before: RenewBefore,
    },
    /// `certificates = [...]`: the nodes' own certificate files (with or without their keys),
    /// in order.
    Imported(Vec<FileRef>),
}

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDesired {
    /// Generated or imported.
    pub source: ServerSpec,
    /// Where apply writes the exported server certificate(s), if anywhere.
    pub export: Option<PathBuf>,
    /// Where apply keeps the server certificate with its key for a node, if anywhere.
    pub install: Option<InstallSpec>,
}

/// `[server] install`, validated: the server certificate with its private key, as a node
/// loads it (`Security.Certificate.Path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    /// The file (joined to certs.toml's folder).
    pub path: PathBuf,
    /// The folder below which no symbolic link may lie on the way to `path`: certs.toml's
    /// folder (with `watch --git`, the daemon's, where a relative path is written), or `/` for
    /// an absolute (or `..`) path, whose every part is checked.
    pub root: PathBuf,
    /// Its PKCS#12 profile (`modern` unless declared; RavenDB before 5.0 needs `legacy`).
    pub pfx: PfxProfile,
    /// Its password, if any (none: the empty password).
    pub password: Option<SecretRef>,
}

/// Where a client certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSpec {
    /// Issued by ravencert, signed by the server certificate.
    Generate(GenerateSpec),
    /// An existing certificate file (`upload`).
    Upload(FileRef),
}

/// One `[clients.KEY]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDesired {
    /// The table key: the client's stable id and file name.
    pub key: String,
    /// Display name and CN (the key unless `name` is set), unique among clients.
    pub name: String,
    /// Its clearance.
    pub clearance: Clearance,
    /// Database -> access (ValidUser only).
    pub permissions: Permissions,
    /// Not deleted nor re-issued by a change of certs.toml in one step: see [`plan`](crate::plan)
    /// (`PlanError::Protected`); `--replace KEY` re-issues it.
    pub protect: bool,
    /// After a re-issue or a changed upload, keep the old certificate registered this long.
    pub overlap: Option<Period>,
    /// Generated or uploaded.
    pub source: ClientSpec,
    /// `until`: when its access ends (UTC, whole seconds); `None` when it does not.
    pub until: Option<time::OffsetDateTime>,
    /// `disabled`: access suspended, the certificate kept (with `[cluster]`, the registration is
    /// disabled or removed while it is); not renewed while disabled.
    pub disabled: bool,
}

/// `[cluster]`, validated: the live RavenDB cluster whose registrations ravencert reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The nodes' URLs, in the order they are tried: `https://HOST[:PORT][/PATH]`, without a
    /// trailing slash.
    pub urls: Vec<String>,
    /// The certificate ravencert authenticates with.
    pub admin: ClusterAdmin,
    /// How the server's TLS certificate is verified.
    pub ca: CaPin,
    /// Unregister cluster certificates that the store does not hold.
    pub prune: bool,
    /// The time limit of each request (1s to 10min).
    pub timeout: Period,
    /// `keep`: registrations someone else made, left alone even with `prune` and not counted
    /// as drift (known strangers), in the order declared.
    pub keep: Vec<KeptRegistration>,
}

/// One entry of `[cluster] keep`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRegistration {
    /// The registration's thumbprint.
    pub thumbprint: Thumbprint,
    /// Whose it is or why it stays (at most [`MAX_KEEP_NOTE_CHARS`] characters), if given.
    pub note: Option<String>,
}

/// The longest note of a `[cluster] keep` entry, in characters.
pub const MAX_KEEP_NOTE_CHARS: usize = 200;

/// The certificate ravencert authenticates to the cluster with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAdmin {
    /// `admin = "KEY"`: the issued bundle of this declared generated client (a ClusterAdmin,
    /// or an Operator when no declared client is a ClusterAdmin).
    Client(String),
    /// `admin_certificate = { path, password_env | password_file }`: an existing .pfx with its
    /// key, read from the disk when the cluster is contacted (it is a secret, never hashed or
    /// read from git); its password, if any, is the [`FileRef`]'s.
    Certificate(FileRef),
}

/// How the cluster's TLS server certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaPin {
    /// `ca = "store"` (the default): pinned to the store's server certificate(s).
    Store,
    /// `ca = "system"`: the system's certificate authorities.
    System,
    /// `ca = "PATH"`: the certificates of this PEM file (joined to certs.toml's folder).
    Pem(PathBuf),
}

/// `[cluster].timeout` when not set.
pub const CLUSTER_TIMEOUT_DEFAULT: Period = Period::seconds(30);
/// The shortest `[cluster].timeout`.
pub const CLUSTER_TIMEOUT_MIN: Period = Period::seconds(1);
/// The longest `[cluster].timeout`.
pub const CLUSTER_TIMEOUT_MAX: Period = Period::seconds(600);

/// certs.toml after validation, before the files it names are read. [`Declared::resolve`]
/// reads them and makes the [`Desired`] the planner works from; nothing else does, so a plan
/// never sees a declaration without its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The certs.toml the declaration was read from (errors name it).
    pub config_path: PathBuf,
    /// `[store]`, with the path joined to certs.toml's folder.
    pub store: StoreSettings,
    /// `[server]`, when declared.
    pub server: Option<ServerDesired>,
    /// The clients, by key.
    pub clients: BTreeMap<String, ClientDesired>,
    /// `[cluster]`, when declared: the live cluster whose registrations are reconciled.
    pub cluster: Option<ClusterSettings>,
    /// What validation warns about (shown, never fatal).
    pub warnings: Vec<String>,
    /// Line and column of the keys that name secrets and files, for later error messages
    /// (looked up by key, never walked in order: a hash map, 50,000 keys at 10,000 clients).
    pub positions: HashMap<String, (usize, usize)>,
    /// `[defaults].renew_before`: when an uploaded certificate's coming expiry is warned about.
    pub renew_before: RenewBefore,
    /// The policy.toml read with it (at the same revision), when there is one: what this
    /// revision declares, which the store records at an apply.
    pub policy: Option<Policy>,
    /// Where its policy.toml is read from, whether or not the file exists (watch follows it).
    pub policy_file: Option<PathBuf>,
}

/// certs.toml with what its certificate files hold: what the store should hold: its
/// [`Declared`] part (`desired.declared`), plus `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// What certs.toml declares.
    pub declared: Declared,
    /// What the referenced certificate files hold.
    pub files: Files,
    /// The policy every plan of it must keep: the one beside it at its revision, or (a review
    /// with `plan --base`) BASE's, so that a change cannot loosen the policy for itself.
    pub policy_in_force: Option<Policy>,
}

impl Desired {
    /// The nodes' certificates with their private keys (where the files hold them), for the
    /// apply, from the very bytes [`Declared::resolve`] read.
    pub(crate) fn node_keys(&self) -> Result<Vec<inputs::NodeCert>, String> {
        inputs::node_keys(self.declared.node_refs(), &self.files.node_files)
    }
}

/// How much of what certs.toml names a load may read.
#[derive(Clone, Copy)]
pub enum Reading<'a> {
    /// Everything it names, with the passwords (plan, apply, watch, validate).
    Full,
    /// A review (`plan --base`, `plan --rev`): no password and no admin .pfx is read, nor a
    /// file `withheld` names (outside the repository, not committed); a certificate file with
    /// a password is not opened. What was not read is listed in the [`Desired`]'s files.
    Review(Withheld<'a>),
}

impl Declared {
    /// Checks that every secret and file it names is there ([`check_references`]), then reads
    /// the certificate files through `reader`: the one way to a [`Desired`]. Each problem
    /// names the key that refers to it, with its line.
    pub fn resolve(
        self,
        reader: Reader<'_>,
        on_disk: bool,
        reading: Reading<'_>,
    ) -> Result<Desired, Vec<ConfigError>> {
        let withheld = match reading {
            Reading::Full => None,
            Reading::Review(w) => Some(w),
        };
        // A review checks the files it reads as it reads them (a missing one is an error
        // there); those it withholds are not its to look at.
        let full = withheld.is_none();
        let problems = check_references(&self, on_disk && full, full);
        if !problems.is_empty() {
            return Err(problems);
        }
        let uploads: Vec<(&str, &FileRef)> = self
            .clients
            .values()
            .filter_map(|c| match &c.source {
                ClientSpec::Upload(r) => Some((c.key.as_str(), r)),
                ClientSpec::Generate(_) => None,
            })
            .collect();
        let file_error = |key: String, message: String| self.file_error_at(key, message);
        let mut problems: Vec<ConfigError> = Vec::new();
        let mut ca_unread = None;
        if let Some(path) = self.cluster_ca_file() {
            match withheld.and_then(|w| w(path)) {
                Some(why) => {
                    ca_unread = Some(UnreadFile {
                        key: "cluster.ca".into(),
                        path: path.to_path_buf(),
                        why,
                        digest: None,
                        since_base: SinceBase::Unknown,
                    })
                }
                None => {
                    if let Err(message) = check_ca_file(path, reader) {
                        problems.push(file_error("cluster.ca".into(), message));
                    }
                }
            }
        }
        let resolved = inputs::resolve(self.node_refs(), &uploads, reader, withheld);
        let mut files = resolved.map_err(|errors| {
            let read = errors
                .into_iter()
                .map(|e| file_error(e.site.key(), e.message));
            read.chain(problems.drain(..)).collect::<Vec<_>>()
        })?;
        if !problems.is_empty() {
            return Err(problems);
        }
        files.unread.extend(ca_unread);
        let policy_in_force = self.policy.clone();
        Ok(Desired {
            declared: self,
            files,
            policy_in_force,
        })
    }

    /// The node certificate files of `[server].certificates` (none for a generated server).
    fn node_refs(&self) -> &[FileRef] {
        match self.server.as_ref().map(|s| &s.source) {
            Some(ServerSpec::Imported(refs)) => refs,
            _ => &[],
        }
    }

    /// An error found after parsing (a missing secret, an unreadable file), placed at the line
    /// of the key that names it.
    pub(crate) fn error_at(&self, key: String, message: String) -> ConfigError {
        let (line, column) = self
            .positions
            .get(&key)
            .map_or((None, None), |(l, c)| (Some(*l), Some(*c)));
        ConfigError {
            kind: ConfigErrorKind::Reference,
            file: self.config_path.clone(),
            line,
            column,
            key,
            message,
            snippet: None,
            in_policy: false,
        }
    }

    /// [`Declared::error_at`] for a secret that is not there or cannot be used.
    pub(crate) fn secret_error_at(&self, key: String, message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::Secret,
            ..self.error_at(key, message)
        }
    }

    /// [`Declared::error_at`] for a file it names that is not there or cannot be used.
    fn file_error_at(&self, key: String, message: String) -> ConfigError {
        ConfigError {
            kind: ConfigErrorKind::CertificateFile,
            ..self.error_at(key, message)
        }
    }

    /// Every file the config refers to (for watch and saved-plan fingerprints).
    pub(crate) fn referenced_files(&self) -> Vec<PathBuf> {
        let mut files = self.certificate_files();
        if let Some(ClusterAdmin::Certificate(r)) = self.cluster.as_ref().map(|c| &c.admin) {
            files.push(r.path.clone());
        }
        files.extend(self.secret_refs().filter_map(|s| match s {
            SecretRef::File(p) => Some(p.clone()),
            SecretRef::Env(_) => None,
        }));
        // Followed even while it does not exist: writing one puts a policy in force.
        files.extend(self.policy_file.clone());
        files
    }

    /// The certificate files the config names (uploads, node certificates, the cluster's CA
    /// PEM): part of what is reviewed, unlike password files and the admin .pfx.
    pub(crate) fn certificate_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .clients
            .values()
            .filter_map(|c| match &c.source {
                ClientSpec::Upload(r) => Some(r.path.clone()),
                ClientSpec::Generate(_) => None,
            })
            .collect();
        if let Some(ServerDesired {
            source: ServerSpec::Imported(refs),
            ..
        }) = &self.server
        {
            files.extend(refs.iter().map(|r| r.path.clone()));
        }
        files.extend(self.cluster_ca_file().map(Path::to_path_buf));
        files
    }

    /// The PEM file `[cluster].ca` names, if it names one.
    fn cluster_ca_file(&self) -> Option<&Path> {
        match self.cluster.as_ref().map(|c| &c.ca) {
            Some(CaPin::Pem(p)) => Some(p),
            _ => None,
        }
    }

    /// The admin .pfx of `[cluster].admin_certificate`, if that is how ravencert authenticates.
    fn admin_certificate(&self) -> Option<&FileRef> {
        match self.cluster.as_ref().map(|c| &c.admin) {
            Some(ClusterAdmin::Certificate(r)) => Some(r),
            _ => None,
        }
    }

    fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.node_refs()
            .iter()
            .filter_map(|r| r.password.as_ref())
            .chain(self.clients.values().filter_map(|c| match &c.source {
                ClientSpec::Upload(r) => r.password.as_ref(),
                ClientSpec::Generate(g) => g.password.as_ref(),
            }))
            .chain(self.admin_certificate().and_then(|r| r.password.as_ref()))
            .chain(self.install().and_then(|i| i.password.as_ref()))
    }

    /// `[server] install`, when certs.toml declares one.
    pub fn install(&self) -> Option<&InstallSpec> {
        self.server.as_ref().and_then(|s| s.install.as_ref())
    }

    /// `validate`'s look at the generated clients' bundle passwords, which no other command
    /// reads before it writes the bundle: a password that is there but unusable (empty, a
    /// control character) is an error; one whose source is not there (a variable not set, a
    /// file missing) a warning, since only the apply that writes that bundle needs it.
    pub(crate) fn bundle_password_problems(&self) -> (Vec<ConfigError>, Vec<String>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for c in self.clients.values() {
            let ClientSpec::Generate(GenerateSpec {
                password: Some(r), ..
            }) = &c.source
            else {
                continue;
            };
            let key = match r {
                SecretRef::Env(_) => format!("clients.{}.password_env", c.key),
                SecretRef::File(_) => format!("clients.{}.password_file", c.key),
            };
            if let Err(e) = r.read() {
                match e.absence() {
                    Some(why) => warnings.push(format!(
                        "{key}: {why}; the apply that writes {}'s bundle needs it",
                        c.key
                    )),
                    None => errors.push(self.error_at(key, e.to_string())),
                }
            }
        }
        (errors, warnings)
    }
}

/// Parses and validates certs.toml text. `base` is the folder relative paths start from.
pub fn parse(file: &Path, source: &str, base: &Path) -> Result<Declared, Vec<ConfigError>> {
    parse_noting_store(file, source, base, |_| {})
}

/// [`parse`], telling `store` the `[store] path` as written (None when there is none) as soon
/// as the TOML is read, before it is validated: the caller may begin reading the store
/// meanwhile. A path the validation refuses is not told.
pub(crate) fn parse_noting_store(
    file: &Path,
    source: &str,
    base: &Path,
    store: impl FnOnce(Option<&str>),
) -> Result<Declared, Vec<ConfigError>> {
    let mut ck = Checker::new(file, source);
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => return Err(syntax_errors(ck, source, &e)),
    };
    match raw.store.as_ref().and_then(|s| s.path.as_ref()) {
        None => store(None),
        Some(p) if validate::check_store_path(p.get_ref()).is_ok() => store(Some(p.get_ref())),
        Some(_) => {}
    }
    let mut desired = validate::validate(&mut ck, raw, file, base);
    desired.positions = std::mem::take(&mut ck.positions);
    if ck.errors.is_empty() {
        Ok(desired)
    } else {
        Err(ck.errors)
    }
}
