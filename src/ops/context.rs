//! What every command shares: the global settings, and reading certs.toml (from the disk or a
//! git revision) into a validated [`Desired`] with the files it references.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

use super::error::{Error, Result};
use super::exports::check_export_path;
use crate::config::{self, Declared, Desired, Reading};
use crate::fsutil::ReadError;
use crate::git;
use crate::registry::Actual;
use crate::render::Style;
use crate::store::{Store, StoreError};

/// Global settings shared by every command.
pub struct Context {
    /// certs.toml (`-c`).
    pub config: PathBuf,
    /// `--store DIR`, which overrides `[store].path`.
    pub store_override: Option<PathBuf>,
    /// Colors or none.
    pub style: Style,
    /// The time this command runs at (whole seconds).
    pub now: OffsetDateTime,
    /// With `watch --git` the config lives in a cache checkout: a relative `[server].export`
    /// is resolved against this folder (the store's) instead.
    pub export_base: Option<PathBuf>,
    /// With `watch --git`: the paths (files or folders) an absolute or `..` export may name,
    /// as the machine's own `--allow-export-path` says; the commit cannot widen it.
    pub allowed_exports: Vec<PathBuf>,
    /// Read when each registration was last used (`GET /admin/stats`) with the listing:
    /// `watch --listen`, whose page and `/metrics` show it. A plan otherwise sends the one list
    /// request only.
    pub cluster_usage: bool,
    /// `--policy FILE`: the policy.toml to keep (default: policy.toml beside certs.toml, when
    /// it exists).
    pub policy: Option<PathBuf>,
    /// `plan` and `apply`: the store is read while certs.toml is validated (see
    /// [`StorePrefetch`]); off by default.
    pub prefetch: StorePrefetch,
}

/// A load of the store begun on another thread while certs.toml is read and validated: at
/// 10,000 clients the TOML's parse, its validation and the store's load (the verification
/// cache's parse, a stat of every file) take about as long each, and one core was idle during
/// each. It begins with the store where it most often is, and again once the TOML names
/// another. Only the first load of the working tree's store without the lock uses it (the
/// preview of a plan or an apply); a load under the lock always reads the store afresh.
#[derive(Default)]
pub struct StorePrefetch {
    on: bool,
    begun: Mutex<Option<Begun>>,
}

/// A store being read: its folder, and the thread reading it.
type Begun = (
    PathBuf,
    std::thread::JoinHandle<std::result::Result<Actual, StoreError>>,
);

impl StorePrefetch {
    /// A prefetch that reads the store.
    pub fn on() -> StorePrefetch {
        StorePrefetch {
            on: true,
            ..StorePrefetch::default()
        }
    }

    /// Begins reading the store at `folder`, unless that one is being read already.
    fn begin(&self, folder: PathBuf) {
        if !self.on {
            return;
        }
        let mut begun = self.begun.lock().unwrap_or_else(PoisonError::into_inner);
        if begun.as_ref().is_some_and(|(f, _)| *f == folder) {
            return;
        }
        let store = Store::new(&folder);
        // Without a thread (the system refused one), nothing is read ahead.
        if let Some(reading) = crate::threads::spawn(move || store.load(None)) {
            *begun = Some((folder, reading));
        }
    }

    /// The store at `folder` as the prefetch read it (without its export's thumbprints), if it
    /// read that one; taken once.
    pub(crate) fn take(&self, folder: &Path) -> Option<std::result::Result<Actual, StoreError>> {
        let (read, reading) = self
            .begun
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        (read == folder).then(|| {
            reading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// certs.toml is text a person reviews: anything larger is a mistake, not a config.
const MAX_CONFIG_BYTES: usize = 4 << 20;

/// Where certs.toml is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revision {
    /// The file on disk (and the files it references).
    WorkTree,
    /// The file (and the certificate files it references) at a git revision.
    Rev(String),
}

impl Context {
    /// Reads and validates certs.toml from the disk.
    pub(crate) fn desired(&self) -> Result<Declared> {
        self.parse(&Revision::WorkTree, false)
    }

    /// Desired from the working tree, with every secret and file it references checked (the
    /// bundle passwords of generated clients aside: they are read when needed).
    pub(crate) fn desired_checked(&self) -> Result<Desired> {
        self.load(&Revision::WorkTree, false)
    }

    /// The folder relative paths in certs.toml start from.
    fn base(&self) -> PathBuf {
        crate::fsutil::folder_of(&self.config).to_path_buf()
    }

    /// certs.toml's bytes, from the disk (refusing a link out of its repository) or from git.
    fn read_config(&self, source: &Revision) -> Result<Vec<u8>> {
        match source {
            Revision::WorkTree => {
                if let Some(workdir) = git::workdir_of(&self.config) {
                    git::check_links_stay_inside(&self.config, &workdir)
                        .map_err(Error::LinkLeavesRepository)?;
                }
                crate::fsutil::read_regular(&self.config, MAX_CONFIG_BYTES as u64, true).map_err(
                    |e| match e {
                        ReadError::TooLarge { .. } => Error::ConfigTooLarge {
                            path: self.config.clone(),
                            max: MAX_CONFIG_BYTES,
                        },
                        e => Error::ConfigUnreadable {
                            path: self.config.clone(),
                            source: e,
                        },
                    },
                )
            }
            Revision::Rev(rev) => Ok(git::read_at(&self.config, rev)?.0),
        }
    }

    /// certs.toml at `source`, validated; with `prefetch`, the store it names is read meanwhile.
    fn parse(&self, source: &Revision, prefetch: bool) -> Result<Declared> {
        // Where the store most often is (`--store`, or the default beside certs.toml): its
        // read begins even before certs.toml's, and begins again if certs.toml names another.
        let store_in = |declared: Option<&str>| match &self.store_override {
            Some(s) => s.clone(),
            // Where validate_store puts it.
            None => self.base().join(declared.unwrap_or("store")),
        };
        // Never a folder validation refuses as a store (certs.toml's own, or one above it).
        let prefetch_at = |folder: PathBuf| {
            if prefetch && store_location_ok(&folder, &self.base()) {
                self.prefetch.begin(folder);
            }
        };
        prefetch_at(store_in(None));
        let text = self.read_config(source)?;
        if text.len() > MAX_CONFIG_BYTES {
            return Err(Error::ConfigOversized {
                path: self.config.clone(),
                len: text.len(),
                max: MAX_CONFIG_BYTES,
            });
        }
        let text =
            String::from_utf8(text).map_err(|_| Error::ConfigNotUtf8(self.config.clone()))?;
        let base = self.base();
        let shown = match source {
            Revision::WorkTree => self.config.clone(),
            Revision::Rev(rev) => PathBuf::from(format!("{}@{rev}", self.config.display())),
        };
        let mut desired = config::parse_noting_store(&shown, &text, &base, |declared| {
            prefetch_at(store_in(declared));
        })?;
        desired.config_path = self.config.clone();
        if let Some(s) = &self.store_override {
            desired.store.path = s.clone();
        }
        check_store_location(&desired, &base, self.store_override.is_some())?;
        if let Some(export_base) = &self.export_base {
            self.rebase_export(&mut desired, &base, export_base)?;
        }
        Ok(desired)
    }

    /// Where policy.toml is read from: `--policy FILE`, else beside certs.toml.
    fn policy_path(&self) -> PathBuf {
        match &self.policy {
            Some(p) => p.clone(),
            None => self.config.with_file_name("policy.toml"),
        }
    }

    /// policy.toml at `source`, read and validated like certs.toml; None when there is none (a
    /// missing `--policy FILE` in the work tree is an error). At a revision it comes from git's
    /// objects, so a review reads the policy of that very commit.
    pub(crate) fn read_policy(&self, source: &Revision) -> Result<Option<config::Policy>> {
        let path = self.policy_path();
        let refused = |problem: String| Error::Policy {
            path: path.clone(),
            problem,
        };
        let bytes = match source {
            Revision::WorkTree => {
                if std::fs::symlink_metadata(&path).is_err() && self.policy.is_none() {
                    return Ok(None);
                }
                if let Some(workdir) = git::workdir_of(&path) {
                    git::check_links_stay_inside(&path, &workdir).map_err(&refused)?;
                }
                crate::fsutil::read_regular(&path, MAX_CONFIG_BYTES as u64, true)
                    .map_err(|e| refused(format!("cannot be read: {e}")))?
            }
            Revision::Rev(rev) => {
                let at_rev = |e: crate::git::GitError| {
                    refused(format!("cannot be read at revision '{rev}': {e}"))
                };
                if !git::exists_at(&path, rev).map_err(at_rev)? {
                    return Ok(None);
                }
                git::read_file_at(&path, rev).map_err(at_rev)?
            }
        };
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(refused(format!(
                "is {} bytes; a policy larger than {} MiB is refused (is this the right file?)",
                bytes.len(),
                MAX_CONFIG_BYTES >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| refused("is not UTF-8 text".into()))?;
        let (file, shown) = self.policy_shown(&path, source);
        let policy = config::parse_policy(&file, &shown, &path, &text)?;
        Ok(Some(policy))
    }

    /// How errors name the policy file (its path, `@REV` at a revision), and how outputs do
    /// (relative to certs.toml's folder when inside it: `policy.toml`, `policy.toml@main`).
    fn policy_shown(&self, path: &Path, source: &Revision) -> (PathBuf, String) {
        let base = self.base();
        let rel = path.strip_prefix(&base).unwrap_or(path);
        let rel = rel.strip_prefix(".").unwrap_or(rel).display().to_string();
        match source {
            Revision::WorkTree => (path.to_path_buf(), rel),
            Revision::Rev(rev) => (
                PathBuf::from(format!("{}@{rev}", path.display())),
                format!("{rel}@{rev}"),
            ),
        }
    }

    /// Git mode: a relative export (or install file) is written next to the store (the
    /// checkout is a cache). An absolute or `..` one would let a commit make the daemon (root)
    /// write anywhere: refused unless the machine allows that path with `--allow-export-path`.
    fn rebase_export(&self, desired: &mut Declared, base: &Path, export_base: &Path) -> Result<()> {
        let export = desired.server.as_ref().and_then(|s| s.export.clone());
        if let Some(export) = export {
            let target = self.rebased(desired, base, export_base, "server.export", &export)?;
            if let Some(server) = desired.server.as_mut() {
                server.export = Some(target);
            }
        }
        let install = desired.install().map(|i| i.path.clone());
        if let Some(install) = install {
            let target = self.rebased(desired, base, export_base, "server.install", &install)?;
            if let Some(i) = desired.server.as_mut().and_then(|s| s.install.as_mut()) {
                // Links are refused below the daemon's folder, where a relative path now goes.
                if i.root != Path::new("/") {
                    i.root = export_base.to_path_buf();
                }
                i.path = target;
            }
        }
        Ok(())
    }

    /// Where the file at `path` (named by `key`) is written in git mode.
    fn rebased(
        &self,
        desired: &Declared,
        base: &Path,
        export_base: &Path,
        key: &str,
        path: &Path,
    ) -> Result<PathBuf> {
        let rel = path
            .strip_prefix(base)
            .ok()
            .filter(|r| !r.is_absolute())
            .map(Path::to_path_buf);
        let leaves = rel.as_ref().is_none_or(|r| {
            r.components().any(|c| {
                use std::path::Component::{ParentDir, Prefix, RootDir};
                matches!(c, ParentDir | RootDir | Prefix(_))
            })
        });
        let target = match &rel {
            Some(r) => export_base.join(r),
            None => path.to_path_buf(),
        };
        if leaves {
            let real = crate::fsutil::resolve(&target);
            let allowed = self
                .allowed_exports
                .iter()
                .any(|a| real.starts_with(crate::fsutil::resolve(a)));
            if !allowed {
                let shown = rel.as_deref().unwrap_or(path);
                let what = if key == "server.export" {
                    "the export"
                } else {
                    "the install file"
                };
                return Err(desired.error_at(
                    key.into(),
                    format!(
                        "with watch --git, {what} must be a relative path without `..` (written next to the store); {} would be written at {} — if this machine means it, start the daemon with --allow-export-path {}",
                        shown.display(),
                        real.display(),
                        real.display()
                    ),
                ).into());
            }
        }
        Ok(target)
    }

    /// Desired plus the check that every referenced secret and file is there, and what the
    /// referenced certificate files hold. `review` (`plan --base`, `plan --rev`): no password
    /// and no private key is read — a file the repository does not hold (outside it, not
    /// committed) or one that opens only with a password is listed as not read instead.
    pub(crate) fn load(&self, source: &Revision, review: bool) -> Result<Desired> {
        // The store is read meanwhile only for a plan or apply of the working tree: a review
        // reads no store, or not this way.
        let mut declared = self.parse(source, *source == Revision::WorkTree && !review)?;
        // The policy is read where a plan is made: validate, plan, apply and watch.
        declared.policy = self.read_policy(source)?;
        declared.policy_file = Some(self.policy_path());
        let on_disk = *source == Revision::WorkTree;
        let rev = match source {
            Revision::WorkTree => None,
            Revision::Rev(rev) => Some(rev.as_str()),
        };
        let withheld = |p: &Path| git::withheld(p, rev);
        let reading = if review {
            Reading::Review(&withheld)
        } else {
            Reading::Full
        };
        let desired = match rev {
            None => {
                // In a repository, a certificate file is under review like certs.toml: no link
                // inside the repository may lead out of it. Outside git, the user's own paths.
                let workdir = git::workdir_of(&self.config);
                declared.resolve(
                    &|p: &Path| {
                        if let Some(w) = &workdir {
                            git::check_links_stay_inside(p, w)?;
                        }
                        crate::inputs::from_disk(p)
                    },
                    on_disk,
                    reading,
                )
            }
            Some(rev) => declared.resolve(
                &|p: &Path| git::read_file_at(p, rev).map_err(|e| e.to_string()),
                on_disk,
                reading,
            ),
        }?;
        check_export_path(&desired.declared)
            .map_err(|(key, e)| desired.declared.error_at(key.into(), e.to_string()))?;
        Ok(desired)
    }

    /// The store when certs.toml cannot be read as a whole: `[store].path` if the file still
    /// says it, else `store` next to certs.toml (the default).
    pub(super) fn fallback_store(&self) -> PathBuf {
        let named = crate::fsutil::read_regular(&self.config, MAX_CONFIG_BYTES as u64, true)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
            .and_then(|t| {
                t.get("store")?
                    .get("path")?
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
            });
        self.base()
            .join(named.unwrap_or_else(|| PathBuf::from("store")))
    }
}

/// `[store].path` or `--store` names certs.toml's folder or one above it.
#[derive(Debug, thiserror::Error)]
#[error("{} is {}; the store must be a folder of its own (it holds private keys, and its .gitignore of `*` would hide certs.toml from git) — name another folder, e.g. {}", .store.display(), where_it_is(.above), .suggestion.display())]
pub struct StoreLocationError {
    /// The store as given.
    store: PathBuf,
    /// Where it resolves when it is above certs.toml's folder (None: it is that folder).
    above: Option<PathBuf>,
    /// A folder that would do.
    suggestion: PathBuf,
}

fn where_it_is(above: &Option<PathBuf>) -> String {
    match above {
        None => "the folder of certs.toml".to_string(),
        Some(dir) => format!("a folder above certs.toml ({})", dir.display()),
    }
}

/// Whether `store` may be a store for a certs.toml in `base`: not that folder, nor one above it.
fn store_location_ok(store: &Path, base: &Path) -> bool {
    !crate::fsutil::resolve(base).starts_with(crate::fsutil::resolve(store))
}

/// The store is a folder of its own: never certs.toml's folder or one above it (its `.gitignore`
/// of `*` would hide certs.toml from git, and `/` would make every file a store file).
fn check_store_location(desired: &Declared, base: &Path, overridden: bool) -> Result<()> {
    if store_location_ok(&desired.store.path, base) {
        return Ok(());
    }
    let store = crate::fsutil::resolve(&desired.store.path);
    let config_dir = crate::fsutil::resolve(base);
    let e = StoreLocationError {
        store: desired.store.path.clone(),
        above: (store != config_dir).then_some(store),
        suggestion: base.join("store"),
    };
    Err(if overridden {
        Error::StoreLocation(e)
    } else {
        desired.error_at("store.path".into(), e.to_string()).into()
    })
}
