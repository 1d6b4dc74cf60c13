//! The on-disk certificate store: the registry text file, public certificates, server keys and
//! issued bundles. This is the only module that writes files. A file something names is replaced
//! atomically (temp file, fsync, rename); a new file nothing names yet is created in place; every
//! file is flushed before the registry, written last, names it, so a crash leaves the old or the
//! new state (and leftovers the manifest records, which the next apply sweeps).
//!
//! Layout:
//! ```text
//! store/
//!   .gitignore               "*": a store next to certs.toml is never committed by accident
//!   .lock                    held by the running apply; names its holder
//!   registry.toml            every registered certificate, sorted, one field per line
//!   certs/<THUMBPRINT>.pem   public certificate of each registered thumbprint
//!   server/<THUMBPRINT>.key  server private key(s)                       (0600)
//!                            (none for a `has_key = false` entry: a node certificate
//!                            imported without its key, registered and exported only)
//!   issued/<key>/            <key>.pfx, <key>.crt, <key>.key per client  (0600 in 0700)
//!   .cluster-state.json      what ravencert last set on each cluster, sealed (HMAC-SHA256)
//!   .cluster-state-key       32 random bytes: the key of that seal            (0600)
//! ```

mod bundles;
mod cache;
mod checks;
mod clients;
mod commit;
mod fault;
mod files;
mod keys;
mod load;
mod lock;
mod outside;
mod problem;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::pki;
use crate::registry::RegistryError;

pub(crate) use bundles::IssuedFiles;
pub(crate) use clients::NewClient;
pub(crate) use load::read_export;
pub(crate) use outside::{write_export, write_install, write_new_outside};
pub use problem::{KeyFile, Problem};

const REGISTRY_FILE: &str = "registry.toml";
/// The store's random key for bundle-password fingerprints (see [`pki::password_fingerprint`]).
const PASSWORD_KEY_FILE: &str = ".bundle-password-key";
/// The store's random key for the seal of `.cluster-state.json` (see [`CLUSTER_STATE_FILE`]).
/// A key of its own rather than `.bundle-password-key`: one key, one purpose. The bundle key's
/// own remedy is "remove it" (apply makes a new one and packages the bundles again), which must
/// not silently void the cluster state too; and a state refused as tampered is started afresh
/// by deleting the state alone, which must not touch the bundles' fingerprints.
const CLUSTER_STATE_KEY_FILE: &str = ".cluster-state-key";
/// Written first into a store ravencert creates: the folder is ravencert's to manage.
const MARKER_FILE: &str = ".ravencert-store";
/// Every certificate, key and bundle folder ravencert made in the store, one path a line: what
/// apply may sweep away. Written before the files it names, so it never misses one.
const MANIFEST_FILE: &str = ".manifest";

/// Why the store cannot be read, verified or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A store file holds what ravencert would never write (a registry that does not parse, a
    /// file of the wrong kind).
    #[error("{path}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (boxed: a rare error keeps every `Result` small).
        problem: Box<Problem>,
    },
    /// The registry file does not parse.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The file system refused a read or write.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another apply holds the store's lock.
    #[error(
        "the store {} is locked by another apply ({}); wait for it to finish, or pass --lock-timeout 60s to wait",
        .root.display(),
        .holder.as_deref().unwrap_or("holder unknown")
    )]
    Locked {
        /// The store folder.
        root: PathBuf,
        /// What the lock file says of its holder (pid, host, since when), if anything.
        holder: Option<String>,
    },
    /// Writing a certificate or key needed crypto that failed.
    #[error("{0}")]
    Pki(#[from] pki::PkiError),
}

type Result<T> = std::result::Result<T, StoreError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, problem: Problem) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        problem: Box::new(problem),
    }
}

/// What ravencert last set on each cluster (docs/contract.md §7: a registration changed since is
/// reported as changed outside ravencert). Its format is the cluster target's; the store keeps the
/// bytes.
const CLUSTER_STATE_FILE: &str = ".cluster-state.json";

/// The on-disk certificate store at a folder: everything ravencert reads from and writes to it.
pub struct Store {
    root: PathBuf,
    /// Files this process wrote from certificates it holds, by store-relative path: the
    /// verification cache needs not read them back, nor stat them. Read from two threads at
    /// the end of an apply (the bundles' moves, the cache): a read lock each.
    written: std::sync::RwLock<HashMap<String, Written>>,
    /// The manifest (store-relative paths of every file and bundle folder ravencert made), once
    /// read.
    manifest: std::sync::Mutex<Option<commit::Manifest>>,
    /// Whether loading checks the server private key against its certificate (not in a review
    /// plan, which reads no private key: [`Store::reading_no_keys`]).
    read_keys: bool,
    /// The store folder, opened once the apply lock is held, before this process writes
    /// anything: the commit's flush (`syncfs`) through it reports every write-back error since,
    /// also one that an early flush, or another process, was told of first (the kernel tells
    /// each open folder of an error once; a folder opened after someone was told of an error
    /// is never told of it).
    sync_root: std::sync::OnceLock<std::sync::Arc<File>>,
    /// The early flusher's thread ([`Store::early_flusher`]), and the first error one of its
    /// flushes met: the commit waits for the thread, then refuses with that error.
    early_flusher: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    early_flush_failed: std::sync::Arc<std::sync::Mutex<Option<StoreError>>>,
}

/// A file this process wrote: the certificate it holds, and its stamp as written (a folder has
/// none).
struct Written {
    thumbprint: String,
    stamp: Option<cache::Stamp>,
}

/// A store field's lock. A panic never leaves one half-written (each holder does one insert or
/// one assignment), so a poisoned lock's value is used as is.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The held apply lock; released on drop (and by the kernel if the process dies).
pub(crate) struct StoreLock {
    _file: File,
}

impl Store {
    /// The store at `root`; nothing is read or created until it is used.
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            written: Default::default(),
            manifest: Default::default(),
            read_keys: true,
            sync_root: Default::default(),
            early_flusher: Default::default(),
            early_flush_failed: Default::default(),
        }
    }

    /// The store for a review plan (`plan --rev`): loading it checks the server certificates
    /// but reads no private key (an unreadable key shows at the next plan or apply).
    pub(crate) fn reading_no_keys(self) -> Store {
        Store {
            read_keys: false,
            ..self
        }
    }

    pub(crate) fn registry_path(&self) -> PathBuf {
        self.root.join(REGISTRY_FILE)
    }
    fn cert_path(&self, thumbprint: &str) -> PathBuf {
        self.root.join("certs").join(format!("{thumbprint}.pem"))
    }
    fn server_key_path(&self, thumbprint: &str) -> PathBuf {
        self.root.join("server").join(format!("{thumbprint}.key"))
    }
    /// The private key of a generated client's certificate, kept (unencrypted, like the server
    /// key) so that its bundle can be packaged again with another password or profile.
    fn client_key_path(&self, thumbprint: &str) -> PathBuf {
        self.root.join("keys").join(format!("{thumbprint}.key"))
    }
    /// Whether this process wrote the store file `rel` from the certificate `thumbprint`.
    fn wrote(&self, rel: &str, thumbprint: &str) -> bool {
        self.written_as(rel, thumbprint, |_| ()).is_some()
    }
    /// The stamp the store file `rel` had when this process wrote it from `thumbprint`.
    fn written_stamp(&self, rel: &str, thumbprint: &str) -> Option<cache::Stamp> {
        self.written_as(rel, thumbprint, |w| w.stamp).flatten()
    }
    fn written_as<T>(&self, rel: &str, thumbprint: &str, f: impl Fn(&Written) -> T) -> Option<T> {
        let written = self
            .written
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        written
            .get(rel)
            .filter(|w| w.thumbprint == thumbprint)
            .map(f)
    }
    /// Records that this process wrote `rel` from `thumbprint` (`stamp`: the file's, as written).
    fn record_written(&self, rel: String, thumbprint: &str, stamp: Option<cache::Stamp>) {
        let mut written = self
            .written
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        written.insert(
            rel,
            Written {
                thumbprint: thumbprint.to_string(),
                stamp,
            },
        );
    }
    fn issued_dir(&self, key: &str) -> PathBuf {
        self.root.join("issued").join(key)
    }
    fn staging_dir(&self, key: &str) -> PathBuf {
        self.root.join("issued").join(format!(".{key}.new"))
    }
}
