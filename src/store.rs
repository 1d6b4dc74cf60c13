//! The on-disk certificate store: the registry text file, public certificates, server keys and
//! issued bundles. This is the only module that writes files; every write is atomic (temp file,
//! fsync, rename) and the registry is written last, so a crash leaves the old or the new state.
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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::Origin;
use crate::pki;
use crate::registry::{
    describe_drift, is_thumbprint, sealed_text, split_seal, Actual, CertEntry, Registry,
    RegistryError,
};

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
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file system refused a read or write.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another apply holds the store's lock (the message names it and what to do).
    #[error("{0}")]
    Locked(String),
    /// Writing a certificate or key needed crypto that failed.
    #[error("{0}")]
    Pki(#[from] pki::PkiError),
}

impl From<RegistryError> for StoreError {
    fn from(e: RegistryError) -> StoreError {
        StoreError::Corrupt {
            path: e.path,
            message: e.message,
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// What a file looked like when ravencert last verified it: size, mtime and ctime (ns), inode.
/// Any write, rename or replacement changes it (ctime cannot be set from user space).
type Stamp = (u64, i64, i64, u64);

fn stamp(m: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    (
        m.len(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        m.ino(),
    )
}

/// A no-op plan at 10,000 certificates must not re-read and re-hash what it can trust: apply
/// leaves the parsed registry and the stamps of the files it verified here, tied to the
/// registry's seal. A plan uses it only when the seal still matches, and re-reads any file
/// whose stamp changed. Written by apply only (under the lock), never by plan.
#[derive(Debug, Default, Serialize, Deserialize)]
struct VerifyCache {
    seal: String,
    /// The registry file as written, verified against its seal: unchanged stamp, same text.
    #[serde(default)]
    registry_stamp: Option<Stamp>,
    registry: Option<Registry>,
    files: BTreeMap<String, Stamp>,
}

const CACHE_FILE: &str = ".verified.json";

/// What ravencert last set on each cluster (docs/contract.md §7: a registration changed since is
/// reported as changed outside ravencert). Its format is the cluster target's; the store keeps the
/// bytes.
const CLUSTER_STATE_FILE: &str = ".cluster-state.json";

/// The state of a registered certificate's public file.
enum CertFileState {
    Ok,
    Missing,
    /// Holds another certificate (its thumbprint), or none that can be read.
    Altered(Option<String>),
}

/// The on-disk certificate store at a folder: everything ravencert reads from and writes to it.
pub struct Store {
    root: PathBuf,
    /// Files this process wrote from certificates it holds (store-relative path ->
    /// thumbprint): the verification cache needs not read them back.
    written: std::cell::RefCell<BTreeMap<String, String>>,
    /// The manifest (store-relative paths of every file and bundle folder ravencert made), once
    /// read.
    manifest: std::cell::RefCell<Option<BTreeSet<String>>>,
    /// Whether loading checks the server private key against its certificate (not in a review
    /// plan, which reads no private key: [`Store::reading_no_keys`]).
    read_keys: bool,
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
    fn issued_dir(&self, key: &str) -> PathBuf {
        self.root.join("issued").join(key)
    }
    fn staging_dir(&self, key: &str) -> PathBuf {
        self.root.join("issued").join(format!(".{key}.new"))
    }

    /// Reads and verifies the store. A missing store is an empty one.
    pub fn load(&self, export: Option<&Path>) -> Result<Actual> {
        self.check_not_foreign()?;
        self.check_private()?;
        let export_thumbprints = export.and_then(read_export);
        let reg_path = self.registry_path();
        // Fast path: the registry file is exactly the one the last apply wrote and verified
        // (same size, mtime, ctime, inode), so its parsed form in the cache is it.
        if let Some(cache) = self.unchanged_registry_cache(&reg_path) {
            if let Some(registry) = cache.registry.clone() {
                return self.verify_loaded(registry, true, Vec::new(), &cache, export_thumbprints);
            }
        }
        let text = match read_file(&reg_path) {
            Ok(bytes) => bytes,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                if self.root.exists() && !self.root.is_dir() {
                    return Err(corrupt(&self.root, "the store path is not a folder"));
                }
                return Ok(Actual {
                    registry: Registry::new(),
                    export_thumbprints,
                    exists: self.root.join(".gitignore").exists(),
                    ..Actual::default()
                });
            }
            Err(e) => return Err(e),
        };
        let text = String::from_utf8(text)
            .map_err(|_| corrupt(&reg_path, "the registry is not UTF-8 text"))?;
        let (body, seal) = split_seal(&text);
        let sum = pki::sha256_hex(body.as_bytes());
        let sealed = seal == Some(sum.as_str());
        let cache = if sealed {
            self.read_cache(&sum)
        } else {
            VerifyCache::default()
        };
        let registry = match &cache.registry {
            Some(r) => r.clone(),
            None => Registry::parse(&reg_path, body)?,
        };
        let mut drift = Vec::new();
        if !sealed {
            drift.push(format!(
                "{} was edited outside ravencert (its seal does not match); apply rewrites it from certs.toml",
                reg_path.display()
            ));
            if let Some(written) = seal.and_then(|claimed| self.applied_copy(claimed)) {
                drift.extend(describe_drift(&written, &registry));
            }
        }
        self.verify_loaded(registry, sealed, drift, &cache, export_thumbprints)
    }

    fn unchanged_registry_cache(&self, reg_path: &Path) -> Option<VerifyCache> {
        let m = fs::symlink_metadata(reg_path)
            .ok()
            .filter(|m| m.is_file())?;
        let cache = read_file(&self.root.join(CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<VerifyCache>(&b).ok())?;
        (cache.registry_stamp == Some(stamp(&m))).then_some(cache)
    }

    /// Verifies what the registry names: server certificates and keys, client certificate
    /// files (drift), issued bundles.
    fn verify_loaded(
        &self,
        registry: Registry,
        sealed: bool,
        drift: Vec<String>,
        cache: &VerifyCache,
        export_thumbprints: Option<Vec<String>>,
    ) -> Result<Actual> {
        for s in &registry.server {
            if s.has_key && self.read_keys {
                self.verify_server_key(&s.thumbprint)?;
            } else {
                // Registry-only (no key file to check), or a review: the public certificate.
                self.verify_cert(&s.thumbprint)?;
            }
        }
        let mut found = Found {
            drift,
            ..Found::default()
        };
        for c in &registry.certificates {
            self.verify_client_cert(c, sealed, cache, &mut found)?;
        }
        Ok(Actual {
            registry,
            bundles_ok: found.bundles_ok,
            export_thumbprints,
            install: None,
            exists: true,
            drift: found.drift,
            sealed,
            lost: found.lost,
            recoverable: found.recoverable,
        })
    }

    /// A server certificate's file and its private key, which must belong to it.
    fn verify_server_key(&self, thumbprint: &str) -> Result<()> {
        self.verify_cert(thumbprint)?;
        let key_path = self.server_key_path(thumbprint);
        let key = pki::PrivateKey::from_pem(&read_file(&key_path)?).map_err(|_| {
            corrupt(
                &key_path,
                "the server private key is unreadable; restore the store from a backup",
            )
        })?;
        let der = self.read_cert_der(thumbprint)?;
        if !key.matches(&der)? {
            return Err(corrupt(
                &key_path,
                format!("this key does not belong to server certificate {thumbprint}"),
            ));
        }
        Ok(())
    }

    /// A client certificate's file (drift when removed, an error when altered) and its bundle.
    fn verify_client_cert(
        &self,
        c: &CertEntry,
        sealed: bool,
        cache: &VerifyCache,
        found: &mut Found,
    ) -> Result<()> {
        // A removed file is drift that the bundle (or a re-issue) repairs; a file holding
        // another certificate means the store cannot be trusted (docs/contract.md §2): an error.
        let missing = match self.cert_file_state(&c.thumbprint, cache)? {
            CertFileState::Ok => false,
            CertFileState::Missing => true,
            CertFileState::Altered(other) => {
                let holds = match other {
                    Some(t) => format!("holds certificate {t}"),
                    None => "holds no readable certificate".to_string(),
                };
                return Err(corrupt(
                    &self.cert_path(&c.thumbprint),
                    format!("{holds}, not the registered {}; the store was changed outside ravencert — restore it from a backup", c.thumbprint),
                ));
            }
        };
        if missing && !sealed {
            // A hand-edited registry naming a certificate nobody has: cannot be trusted.
            return Err(corrupt(
                &self.cert_path(&c.thumbprint),
                format!(
                    "does not exist, and {} was edited outside ravencert (client '{}', thumbprint {}); restore the store from a backup",
                    self.registry_path().display(),
                    c.key,
                    c.thumbprint
                ),
            ));
        }
        if missing {
            let restorable = c.source == Origin::Generated
                && self.bundle_in(&self.issued_dir(&c.key), &c.key, &c.thumbprint);
            found.drift.push(format!(
                "the certificate file of client '{}' ({}) was removed outside ravencert{}",
                c.key,
                self.cert_path(&c.thumbprint).display(),
                if restorable {
                    "; the issued bundle can restore it"
                } else {
                    ""
                }
            ));
            found.lost.insert(c.thumbprint.clone());
            if restorable {
                found.recoverable.insert(c.thumbprint.clone());
            }
        }
        if c.source == Origin::Generated
            && c.retire_after.is_none()
            && self.bundle_holds(&c.key, &c.thumbprint, cache)?
        {
            found.bundles_ok.insert(c.key.clone());
        }
        Ok(())
    }

    /// The store, its private folders and key files must not be readable by anyone else: a
    /// store that is refuses to be used (the keys may already be exposed; fix and rotate).
    fn check_private(&self) -> Result<()> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(corrupt(&self.root, "the store path is not a folder"));
        }
        // The store folder itself may be reached through a link; nothing inside it may.
        let _ = self.private_meta(&self.root, true)?;
        for p in [
            self.root.join("server"),
            self.root.join("keys"),
            self.root.join(PASSWORD_KEY_FILE),
            self.root.join(CLUSTER_STATE_KEY_FILE),
            self.root.join("issued"),
            self.root.join("certs"),
            self.root.join(REGISTRY_FILE),
        ] {
            let _ = self.private_meta(&p, false)?;
        }
        // Private keys: each one private and ours.
        for sub in ["server", "keys"] {
            let dir = self.root.join(sub);
            if dir.is_dir() {
                for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
                    let _ = self.private_meta(&e.map_err(io_err(&dir))?.path(), false)?;
                }
            }
        }
        // A link among the certificates, kept keys or bundles is refused, not swept away: one
        // readdir per folder (the entry types come with it, no stat per file).
        for sub in ["certs", "issued"] {
            let dir = self.root.join(sub);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let e = e.map_err(io_err(&dir))?;
                if e.file_type().map_err(io_err(&dir))?.is_symlink() {
                    return Err(corrupt(
                        &e.path(),
                        "is a symbolic link; ravencert does not follow links inside the store — remove it",
                    ));
                }
            }
        }
        // Issued bundles are checked as they are read (bundle_holds): one stat per file.
        Ok(())
    }

    /// The metadata of a store path that must be private: no link inside the store, nothing
    /// readable by group or others. None when it does not exist.
    fn private_meta(&self, p: &Path, follow: bool) -> Result<Option<fs::Metadata>> {
        let meta = if follow {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        };
        let Ok(m) = meta else { return Ok(None) };
        if m.file_type().is_symlink() {
            return Err(corrupt(
                p,
                "is a symbolic link; ravencert does not follow links inside the store — remove it",
            ));
        }
        check_owner(p, &m)?;
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(corrupt(
                p,
                format!(
                    "is readable by other users (mode {mode:03o}); the store holds private keys — run `chmod -R go-rwx {}`, and consider the keys exposed",
                    self.root.display()
                ),
            ));
        }
        Ok(Some(m))
    }

    /// The copy of the registry ravencert last wrote, if it is the one the seal names.
    fn applied_copy(&self, claimed: &str) -> Option<Registry> {
        let path = self.root.join(".registry.applied");
        let text = String::from_utf8(read_file(&path).ok()?).ok()?;
        let (body, seal) = split_seal(&text);
        let sum = pki::sha256_hex(body.as_bytes());
        if seal != Some(sum.as_str()) || sum != claimed {
            return None;
        }
        Registry::parse(&path, body).ok()
    }

    fn cert_file_state(&self, thumbprint: &str, cache: &VerifyCache) -> Result<CertFileState> {
        let path = self.cert_path(thumbprint);
        if let Ok(m) = fs::symlink_metadata(&path) {
            check_owner(&path, &m)?;
            if m.is_file()
                && cache.files.get(&format!("certs/{thumbprint}.pem")) == Some(&stamp(&m))
            {
                return Ok(CertFileState::Ok);
            }
        }
        let pem = match read_file(&path) {
            Ok(p) => p,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CertFileState::Missing)
            }
            Err(e) => return Err(e),
        };
        Ok(match pki::pem_cert_body(&pem) {
            Some(der) if pki::thumbprint(&der) == thumbprint => CertFileState::Ok,
            Some(der) => CertFileState::Altered(Some(pki::thumbprint(&der))),
            None => CertFileState::Altered(None),
        })
    }

    /// Whether a registered thumbprint's public certificate file is present and right.
    pub(crate) fn cert_file_ok(&self, thumbprint: &str) -> bool {
        matches!(
            self.cert_file_state(thumbprint, &VerifyCache::default()),
            Ok(CertFileState::Ok)
        )
    }

    fn read_cache(&self, seal: &str) -> VerifyCache {
        let cache = read_file(&self.root.join(CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<VerifyCache>(&b).ok())
            .unwrap_or_default();
        if cache.seal == seal {
            cache
        } else {
            VerifyCache::default()
        }
    }

    /// Records what this apply verified (or wrote) for the next plan. A file whose stamp is
    /// unchanged since the previous cache keeps its entry; any other file is read and hashed
    /// now, and cached only if it is the certificate the registry names.
    pub fn write_cache(&self, registry: &Registry) -> Result<()> {
        let text = registry.to_text();
        let seal = pki::sha256_hex(text.as_bytes());
        let old = read_file(&self.root.join(CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<VerifyCache>(&b).ok())
            .unwrap_or_default();
        let mut files = BTreeMap::new();
        let mut consider = |rel: String, thumbprint: &str| {
            let path = self.root.join(&rel);
            let Ok(m) = fs::symlink_metadata(&path) else {
                return;
            };
            if !m.is_file() {
                return;
            }
            let st = stamp(&m);
            let verified = old.files.get(&rel) == Some(&st)
                || self.written.borrow().get(&rel).map(String::as_str) == Some(thumbprint)
                || read_file(&path)
                    .ok()
                    .and_then(|pem| pki::pem_cert_body(&pem))
                    .is_some_and(|der| pki::thumbprint(&der) == thumbprint);
            if verified {
                files.insert(rel, st);
            }
        };
        for c in &registry.certificates {
            consider(format!("certs/{}.pem", c.thumbprint), &c.thumbprint);
            if c.source == Origin::Generated && c.retire_after.is_none() {
                consider(format!("issued/{k}/{k}.crt", k = c.key), &c.thumbprint);
            }
        }
        // The registry file's stamp, once its text is checked against the seal.
        let reg_path = self.registry_path();
        let registry_stamp = fs::symlink_metadata(&reg_path).ok().and_then(|m| {
            let bytes = read_file(&reg_path).ok()?;
            let on_disk = String::from_utf8(bytes).ok()?;
            let (body, claimed) = split_seal(&on_disk);
            (body == text && claimed == Some(seal.as_str())).then(|| stamp(&m))
        });
        let cache = VerifyCache {
            seal,
            registry_stamp,
            registry: Some(registry.clone()),
            files,
        };
        match serde_json::to_vec(&cache) {
            Ok(json) => write_atomic(&self.root.join(CACHE_FILE), &json, 0o600),
            // The cache only saves work: without it the next load verifies every file.
            Err(e) => {
                tracing::warn!("verification cache not written: {e}");
                Ok(())
            }
        }
    }

    /// The cluster state file's bytes; None when no cluster was ever reconciled.
    pub(crate) fn read_cluster_state(&self) -> Result<Option<Vec<u8>>> {
        let path = self.root.join(CLUSTER_STATE_FILE);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => read_file(&path).map(Some),
        }
    }

    /// Replaces the cluster state file (atomically, 0600). The store must exist.
    pub(crate) fn write_cluster_state(&self, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.root.join(CLUSTER_STATE_FILE), bytes, 0o600)
    }

    /// The DER of a client's issued bundle certificate, if it is `thumbprint`.
    pub(crate) fn bundle_cert(&self, key: &str, thumbprint: &str) -> Option<Vec<u8>> {
        let crt = self.issued_dir(key).join(format!("{key}.crt"));
        read_file(&crt)
            .ok()
            .and_then(|pem| pki::pem_cert_body(&pem))
            .filter(|der| pki::thumbprint(der) == thumbprint)
    }

    /// The three files of a client's issued bundle (`issued/<key>/`), read as they are, never
    /// through a link; None when one is missing or its certificate is not `thumbprint`.
    pub(crate) fn read_issued(&self, key: &str, thumbprint: &str) -> Result<Option<IssuedFiles>> {
        let dir = self.issued_dir(key);
        if !self.private_meta(&dir, false)?.is_some_and(|m| m.is_dir()) {
            return Ok(None);
        }
        let read = |ext: &str| -> Result<Option<Vec<u8>>> {
            match read_file(&dir.join(format!("{key}.{ext}"))) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        let (Some(pfx), Some(crt), Some(key_pem)) = (read("pfx")?, read("crt")?, read("key")?)
        else {
            return Ok(None);
        };
        let holds = pki::pem_cert_body(&crt).is_some_and(|der| pki::thumbprint(&der) == thumbprint);
        Ok(holds.then_some(IssuedFiles {
            pfx,
            crt,
            key: key_pem,
        }))
    }

    /// The registry's certificate file exists and its SHA-1 matches the thumbprint.
    fn verify_cert(&self, thumbprint: &str) -> Result<()> {
        let der = self.read_cert_der(thumbprint)?;
        let actual = pki::thumbprint(&der);
        if actual != thumbprint {
            return Err(corrupt(
                &self.cert_path(thumbprint),
                format!("holds certificate {actual}, not the registered {thumbprint}; the store was changed outside ravencert"),
            ));
        }
        Ok(())
    }

    pub(crate) fn read_cert_der(&self, thumbprint: &str) -> Result<Vec<u8>> {
        let path = self.cert_path(thumbprint);
        let pem = read_file(&path).map_err(|e| match e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                corrupt(&path, format!("the certificate of registered thumbprint {thumbprint} is missing; restore it from a backup"))
            }
            other => other,
        })?;
        pki::pem_to_der(&pem).map_err(|_| corrupt(&path, "not a PEM certificate"))
    }

    pub(crate) fn read_server_key(&self, thumbprint: &str) -> Result<pki::PrivateKey> {
        let path = self.server_key_path(thumbprint);
        pki::PrivateKey::from_pem(&read_file(&path)?)
            .map_err(|_| corrupt(&path, "the server private key is unreadable"))
    }

    /// The bundle in issued/<key>/ (or, after an interrupted apply, its staged copy) holds it.
    fn bundle_holds(&self, key: &str, thumbprint: &str, cache: &VerifyCache) -> Result<bool> {
        for (dir, staged) in [(self.issued_dir(key), false), (self.staging_dir(key), true)] {
            if !self.private_meta(&dir, false)?.is_some_and(|m| m.is_dir()) {
                continue;
            }
            let mut crt_stamp = None;
            let mut complete = true;
            for ext in ["crt", "pfx", "key"] {
                match self.private_meta(&dir.join(format!("{key}.{ext}")), false)? {
                    Some(m) if m.is_file() => {
                        if ext == "crt" {
                            crt_stamp = Some(stamp(&m));
                        }
                    }
                    _ => complete = false,
                }
            }
            if !complete {
                continue;
            }
            let cached = !staged
                && crt_stamp.is_some()
                && cache.files.get(&format!("issued/{key}/{key}.crt")) == crt_stamp.as_ref();
            if cached || self.bundle_in(&dir, key, thumbprint) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A folder that holds files but is no ravencert store (no registry, no marker) is refused:
    /// ravencert would manage, and sweep, files that are not its own.
    fn check_not_foreign(&self) -> Result<()> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Ok(());
        };
        if self.root.join(MARKER_FILE).exists() || self.registry_path().exists() {
            return Ok(());
        }
        let others: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != ".gitignore" && n != ".lock")
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        Err(corrupt(
            &self.root,
            format!(
                "already holds files ({}{}) and is not a ravencert store; ravencert will not manage a folder with files it did not make — name a new or empty folder as [store] path (or --store)",
                others.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if others.len() > 3 { ", ..." } else { "" }
            ),
        ))
    }

    /// Takes the apply lock, waiting up to `timeout`. The error names the holder.
    pub(crate) fn lock(&self, timeout: Duration) -> Result<StoreLock> {
        self.check_not_foreign()?;
        // A new store is created here; an existing one is left as it is (its modes are
        // checked, never silently repaired, when it is loaded).
        if fs::symlink_metadata(&self.root).is_err() {
            self.ensure_root()?;
        } else if !self.root.is_dir() {
            return Err(corrupt(&self.root, "the store path is not a folder"));
        }
        let path = self.root.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(crate::fsutil::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err(&path))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        return Err(StoreError::Locked(format!(
                            "the store {} is locked by another apply ({}); wait for it to finish, or pass --lock-timeout 60s to wait",
                            self.root.display(),
                            if holder.is_empty() { "holder unknown" } else { holder }
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            }
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let since = OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        file.set_len(0).map_err(io_err(&path))?;
        let _ = writeln!(
            file,
            "pid {} on {} since {}",
            std::process::id(),
            if host.is_empty() { "this host" } else { &host },
            since
        );
        Ok(StoreLock { _file: file })
    }

    /// Creates the store folder (0700) with its .gitignore.
    pub fn ensure_root(&self) -> Result<()> {
        self.check_not_foreign()?;
        ensure_dir(&self.root)?;
        let marker = self.root.join(MARKER_FILE);
        if fs::symlink_metadata(&marker).is_err() {
            // Written in place (its presence is what counts), so that a crash leaves no
            // temporary file that would make the folder look like someone else's.
            fault::step();
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(crate::fsutil::O_NOFOLLOW)
                .open(&marker)
                .map_err(io_err(&marker))?;
            f.write_all(b"A ravencert certificate store: ravencert manages every file here.\n")
                .map_err(io_err(&marker))?;
        }
        let gi = self.root.join(".gitignore");
        if !gi.exists() {
            write_atomic(&gi, b"*\n", 0o600)?;
        }
        Ok(())
    }

    /// The manifest. A store written before ravencert kept one gets it from the names
    /// ravencert writes (thumbprint files, client-key folders), once.
    fn manifest(&self) -> Result<std::cell::RefMut<'_, Option<BTreeSet<String>>>> {
        let mut m = self.manifest.borrow_mut();
        if m.is_none() {
            let path = self.root.join(MANIFEST_FILE);
            *m = Some(match read_file(&path) {
                Ok(bytes) => String::from_utf8(bytes)
                    .map_err(|_| corrupt(&path, "the manifest is not UTF-8 text"))?
                    .lines()
                    .map(str::to_string)
                    .collect(),
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    self.legacy_manifest()
                }
                Err(e) => return Err(e),
            });
        }
        Ok(m)
    }

    fn legacy_manifest(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if !self.registry_path().exists() {
            return out;
        }
        for (sub, ext) in [("certs", "pem"), ("server", "key"), ("keys", "key")] {
            for e in fs::read_dir(self.root.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().to_string();
                if name
                    .strip_suffix(&format!(".{ext}"))
                    .is_some_and(is_thumbprint)
                {
                    out.insert(format!("{sub}/{name}"));
                }
            }
        }
        for e in fs::read_dir(self.root.join("issued"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            let key = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".new"))
                .unwrap_or(&name);
            if crate::model::check_client_key(key).is_ok() {
                out.insert(format!("issued/{name}"));
            }
        }
        out
    }

    /// Records, durably and before they are made, the store paths an apply is about to write,
    /// so that whatever a crash leaves is known to be ravencert's. One write for a batch.
    pub(crate) fn intend(&self, rels: impl IntoIterator<Item = String>) -> Result<()> {
        let mut m = self.manifest()?;
        let set = m.get_or_insert_with(BTreeSet::new);
        let before = set.len();
        set.extend(rels);
        if set.len() == before && self.root.join(MANIFEST_FILE).exists() {
            return Ok(());
        }
        let text: String = set.iter().map(|r| format!("{r}\n")).collect();
        write_atomic(&self.root.join(MANIFEST_FILE), text.as_bytes(), 0o600)
    }

    /// The manifest paths of a generated client's files: certificate, kept key, bundle.
    pub(crate) fn client_paths(key: &str, thumbprint: &str) -> [String; 4] {
        [
            format!("certs/{thumbprint}.pem"),
            format!("keys/{thumbprint}.key"),
            format!("issued/{key}"),
            format!("issued/.{key}.new"),
        ]
    }

    /// Writes a certificate's public file (`certs/THUMBPRINT.pem`, staged until the registry
    /// commits); returns its thumbprint.
    pub fn write_cert(&self, der: &[u8]) -> Result<String> {
        let thumb = pki::thumbprint(der);
        self.intend([format!("certs/{thumb}.pem")])?;
        let dir = self.root.join("certs");
        ensure_dir(&dir)?;
        write_staged(&self.cert_path(&thumb), &pki::der_to_pem(der)?, 0o600)?;
        self.written
            .borrow_mut()
            .insert(format!("certs/{thumb}.pem"), thumb.clone());
        Ok(thumb)
    }

    pub(crate) fn write_client_key(&self, thumbprint: &str, key: &pki::PrivateKey) -> Result<()> {
        self.intend([format!("keys/{thumbprint}.key")])?;
        ensure_dir(&self.root.join("keys"))?;
        write_staged(&self.client_key_path(thumbprint), &key.to_pem()?, 0o600)
    }

    /// The kept private key of a generated client's certificate, if the store has it.
    pub(crate) fn read_client_key(&self, thumbprint: &str) -> Option<pki::PrivateKey> {
        pki::PrivateKey::from_pem(&read_file(&self.client_key_path(thumbprint)).ok()?).ok()
    }

    /// The issued bundle's `.key` of a client, as written (encrypted when it has a password).
    pub(crate) fn read_bundle_key_pem(&self, key: &str) -> Option<Vec<u8>> {
        read_file(&self.issued_dir(key).join(format!("{key}.key"))).ok()
    }

    /// The store's own random key for password fingerprints; None before the first apply
    /// that issued a bundle with a password.
    pub(crate) fn password_key(&self) -> Result<Option<Vec<u8>>> {
        self.random_key(
            PASSWORD_KEY_FILE,
            "remove it (apply makes a new one and packages the password-protected bundles again)",
        )
    }

    /// The password-fingerprint key, made on first use (under the apply lock).
    pub(crate) fn password_key_or_create(&self) -> Result<Vec<u8>> {
        match self.password_key()? {
            Some(k) => Ok(k),
            None => self.new_random_key(PASSWORD_KEY_FILE),
        }
    }

    /// The key of the cluster state's seal; None before the first cluster apply.
    pub(crate) fn cluster_state_key(&self) -> Result<Option<Vec<u8>>> {
        self.random_key(
            CLUSTER_STATE_KEY_FILE,
            &format!("remove it and {CLUSTER_STATE_FILE} (ravencert then treats the registrations it made before as foreign)"),
        )
    }

    /// The cluster state's key, made on first use (under the apply lock).
    pub(crate) fn cluster_state_key_or_create(&self) -> Result<Vec<u8>> {
        match self.cluster_state_key()? {
            Some(k) => Ok(k),
            None => self.new_random_key(CLUSTER_STATE_KEY_FILE),
        }
    }

    /// A 32-byte key file of the store; None when it does not exist.
    fn random_key(&self, file: &str, remedy: &str) -> Result<Option<Vec<u8>>> {
        let path = self.root.join(file);
        match read_file(&path) {
            Ok(k) if k.len() == 32 => Ok(Some(k)),
            Ok(_) => Err(corrupt(&path, format!("is not a 32-byte key; {remedy}"))),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes a 32-byte random key file (0600, atomically).
    fn new_random_key(&self, file: &str) -> Result<Vec<u8>> {
        let mut k = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut k).map_err(|e| corrupt(&self.root, e.to_string()))?;
        write_atomic(&self.root.join(file), &k, 0o600)?;
        Ok(k)
    }

    /// Writes the private key of the server certificate `thumbprint` (`server/THUMBPRINT.key`,
    /// staged until the registry commits).
    pub fn write_server_key(&self, thumbprint: &str, key: &pki::PrivateKey) -> Result<()> {
        self.intend([format!("server/{thumbprint}.key")])?;
        ensure_dir(&self.root.join("server"))?;
        write_staged(&self.server_key_path(thumbprint), &key.to_pem()?, 0o600)
    }

    /// Writes a client's bundle to its staging folder; [`Store::finish_bundles`] moves it in
    /// place after the registry is committed.
    pub(crate) fn stage_bundle(&self, key: &str, bundle: &pki::Bundle) -> Result<()> {
        self.intend([format!("issued/{key}"), format!("issued/.{key}.new")])?;
        ensure_dir(&self.root.join("issued"))?;
        let dir = self.staging_dir(key);
        if dir.exists() {
            remove_tree(&dir)?;
        }
        ensure_dir(&dir)?;
        write_staged(&dir.join(format!("{key}.pfx")), &bundle.pfx, 0o600)?;
        write_staged(&dir.join(format!("{key}.crt")), &bundle.cert_pem, 0o600)?;
        if let Some(der) = pki::pem_cert_body(&bundle.cert_pem) {
            self.written
                .borrow_mut()
                .insert(format!("issued/{key}/{key}.crt"), pki::thumbprint(&der));
        }
        write_staged(&dir.join(format!("{key}.key")), &bundle.key_pem, 0o600)?;
        Ok(())
    }

    /// The commit point of an apply.
    pub fn write_registry(&self, registry: &Registry) -> Result<()> {
        let text = sealed_text(registry);
        // The copy first: if we crash between the two, the registry still holds the old,
        // self-consistent text and the copy is simply not the one its seal names.
        // Every file the new registry names must be durable before the registry is: one
        // flush of the whole filesystem here instead of two fsyncs per file (300 clients
        // wrote 2,400 fsyncs, which cost more than all their keys).
        sync_filesystem(&self.root)?;
        write_atomic(&self.root.join(".registry.applied"), text.as_bytes(), 0o600)?;
        write_atomic(&self.registry_path(), text.as_bytes(), 0o600)
    }

    /// After the registry is committed: move staged bundles whose certificate is registered
    /// into place, and remove every file the registry no longer refers to. Also repairs what an
    /// interrupted apply left behind.
    pub(crate) fn finish(&self, registry: &Registry) -> Result<()> {
        // Temp files of writes an interrupted apply never renamed into place.
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                remove_path(&entry.path())?;
            }
        }
        let made = self.manifest()?.clone().unwrap_or_default();
        self.finish_issued(registry, &made)?;
        self.sweep_unreferenced(registry, &made)?;
        // The manifest keeps what is still there.
        let still: BTreeSet<String> = made
            .iter()
            .filter(|r| fs::symlink_metadata(self.root.join(r)).is_ok())
            .cloned()
            .collect();
        if still != made || !self.root.join(MANIFEST_FILE).exists() {
            let text: String = still.iter().map(|r| format!("{r}\n")).collect();
            write_atomic(&self.root.join(MANIFEST_FILE), text.as_bytes(), 0o600)?;
            *self.manifest.borrow_mut() = Some(still);
        }
        Ok(())
    }

    /// issued/: staged bundles of registered certificates move into place; bundles of clients
    /// no longer active go. Only what ravencert made (`made`, the manifest) is touched.
    fn finish_issued(&self, registry: &Registry, made: &BTreeSet<String>) -> Result<()> {
        let issued = self.root.join("issued");
        if !issued.is_dir() {
            return Ok(());
        }
        let active: BTreeMap<&str, &str> = registry
            .certificates
            .iter()
            .filter(|c| c.retire_after.is_none() && c.source == Origin::Generated)
            .map(|c| (c.key.as_str(), c.thumbprint.as_str()))
            .collect();
        for entry in fs::read_dir(&issued).map_err(io_err(&issued))? {
            let entry = entry.map_err(io_err(&issued))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            // Only what ravencert made is ever removed or replaced.
            if !made.contains(&format!("issued/{name}")) {
                continue;
            }
            if let Some(key) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".new")) {
                match active.get(key) {
                    // Staged by an apply (a new certificate, or the same one packaged again
                    // with another password or profile): it is newer than issued/<key>.
                    Some(thumb) if self.bundle_complete(&path, key, thumb) => {
                        let target = self.issued_dir(key);
                        if target.exists() {
                            remove_tree(&target)?;
                        }
                        fault::step();
                        fs::rename(&path, &target).map_err(io_err(&path))?;
                        // No fsync: the registry already names this certificate, and a
                        // staged bundle counts as present until the next apply moves it.
                    }
                    _ => remove_tree(&path)?,
                }
            } else if !active.contains_key(name.as_str()) {
                remove_tree(&path)?;
            }
        }
        Ok(())
    }

    /// certs/, server/, keys/: files ravencert made for a thumbprint the registry no longer
    /// names, and temporary files of interrupted writes, are removed.
    fn sweep_unreferenced(&self, registry: &Registry, made: &BTreeSet<String>) -> Result<()> {
        let keep: BTreeSet<&str> = registry
            .server
            .iter()
            .map(|s| s.thumbprint.as_str())
            .chain(registry.certificates.iter().map(|c| c.thumbprint.as_str()))
            .collect();
        // A node certificate now imported without its key: the key it was imported with goes.
        let keyless: BTreeSet<&str> = registry
            .server
            .iter()
            .filter(|s| !s.has_key)
            .map(|s| s.thumbprint.as_str())
            .collect();
        for (sub, ext) in [("certs", "pem"), ("server", "key"), ("keys", "key")] {
            let dir = self.root.join(sub);
            if !dir.is_dir() {
                continue;
            }
            for entry in walkdir::WalkDir::new(&dir)
                .follow_links(false)
                .min_depth(1)
                .max_depth(1)
            {
                let entry = entry.map_err(|e| corrupt(&dir, e.to_string()))?;
                let name = entry.file_name().to_string_lossy().to_string();
                // Only what ravencert made there (the manifest), or the temporary file of one
                // of its interrupted writes.
                if name.starts_with(".tmp-") {
                    remove_path(entry.path())?;
                    continue;
                }
                if !made.contains(&format!("{sub}/{name}")) {
                    continue;
                }
                let referenced = name
                    .strip_suffix(&format!(".{ext}"))
                    .is_some_and(|t| keep.contains(t) && !(sub == "server" && keyless.contains(t)));
                if !referenced {
                    remove_path(entry.path())?;
                }
            }
        }
        Ok(())
    }

    fn bundle_complete(&self, dir: &Path, key: &str, thumbprint: &str) -> bool {
        ["pfx", "key"].iter().all(|ext| {
            fs::symlink_metadata(dir.join(format!("{key}.{ext}"))).is_ok_and(|m| m.is_file())
        }) && self.bundle_in(dir, key, thumbprint)
    }

    fn bundle_in(&self, dir: &Path, key: &str, thumbprint: &str) -> bool {
        let crt = dir.join(format!("{key}.crt"));
        let Ok(pem) = read_file(&crt) else {
            return false;
        };
        // ravencert writes the same PEM text to certs/ and to the bundle: equal bytes settle it
        // without decoding (the cert file itself is verified separately); otherwise decode.
        if read_file(&self.cert_path(thumbprint)).is_ok_and(|c| c == pem) {
            return true;
        }
        pki::pem_cert_body(&pem).is_some_and(|der| pki::thumbprint(&der) == thumbprint)
    }
}

/// Like ssh's StrictModes: whatever ravencert trusts in the store must belong to the user running
/// it. A folder or file of another user's could be swapped (a server key, a re-sealed registry)
/// by someone who should not decide who gets ClusterAdmin.
fn check_owner(p: &Path, m: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // Asked once: it is a system call, and a no-op plan checks tens of thousands of files.
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let me = *EUID.get_or_init(crate::fsutil::effective_uid);
    if m.uid() != me {
        return Err(corrupt(
            p,
            format!(
                "is owned by uid {}, not by the user running ravencert (uid {me}); another user could change what the store holds — remove it (or `chown -R` the store to this user after checking it), and consider its keys exposed",
                m.uid()
            ),
        ));
    }
    Ok(())
}

/// The files of a client's issued bundle, as the store holds them.
pub(crate) struct IssuedFiles {
    /// `<key>.pfx`: client certificate, key and server certificate (protected by the password).
    pub(crate) pfx: Vec<u8>,
    /// `<key>.crt`: the client certificate (PEM).
    pub(crate) crt: Vec<u8>,
    /// `<key>.key`: the private key (PEM, encrypted when the client has a password).
    pub(crate) key: Vec<u8>,
}

/// Writes a new file outside the store (a bundle handed out): atomically (temp file in the
/// same folder, fsync, then a rename that never replaces), with `mode` whatever the umask. A
/// file or link already at `path` is left as it is: the error's kind is `AlreadyExists`.
pub(crate) fn write_new_outside(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let (dir, tmp) = temp_file_beside(path, bytes, mode, true)?;
    // No clobber: a file (or a link, not followed) that appeared meanwhile wins, untouched.
    tmp.persist_noclobber(path)
        .map_err(|e| io_err(path)(e.error))?;
    sync_dir(&dir)
}

/// Thumbprints of the certificates in an export file, if it can be read.
fn read_export(path: &Path) -> Option<Vec<String>> {
    let bytes = crate::fsutil::read_regular(path, 16 << 20, false).ok()?;
    let mut t = pki::pfx_thumbprints(&bytes, "").ok()?;
    t.sort();
    Some(t)
}

/// Writes the export (outside the store, meant to be shared): public parts only.
pub(crate) fn write_export(path: &Path, pfx: &[u8]) -> Result<()> {
    write_outside(path, pfx, 0o644, None)
}

/// Writes the `[server] install` file (outside the store, for a node): the server's private
/// key, so mode 0600 whatever the umask, and never through a link below `root` (see
/// [`crate::fsutil::refuse_links_below`]): a linked folder on the way would put the key
/// wherever the link points.
pub(crate) fn write_install(path: &Path, root: &Path, pfx: &[u8]) -> Result<()> {
    write_outside(path, pfx, 0o600, Some(root))
}

/// A file outside the store, written atomically, its folder made when missing; with `root`, no
/// link may lie below it on the way (checked before the folders are made, and again after).
fn write_outside(path: &Path, bytes: &[u8], mode: u32, root: Option<&Path>) -> Result<()> {
    let no_links = || match root {
        Some(root) => {
            crate::fsutil::refuse_links_below(root, path).map_err(|e| io_err(path)(e.into()))
        }
        None => Ok(()),
    };
    no_links()?;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            // Shared, but only ravencert writes in the folders it makes: 0755 whatever the umask.
            crate::fsutil::create_dirs(parent, 0o755).map_err(io_err(parent))?;
            no_links()?;
            // Temp files an interrupted export left behind.
            let prefix = format!(
                ".tmp-{}-",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            for entry in fs::read_dir(parent).map_err(io_err(parent))?.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    write_atomic(path, bytes, mode)
}

// ---------------------------------------------------------------------------------------------
// File helpers: never follow symlinks, always atomic.

/// Crash points for the crash-safety tests. With the `test-hooks` feature (enabled for
/// `cargo test` through a dev-dependency, never in a release build) the process aborts right
/// before its Nth file-system change, N from RAVENCERT_FAULT_AT.
mod fault {
    #[cfg(feature = "test-hooks")]
    // The process aborts next, before any log could flush: the crash tests read this line.
    #[allow(clippy::print_stderr)]
    pub(super) fn step() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static STEPS: AtomicU64 = AtomicU64::new(0);
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        let at = std::env::var("RAVENCERT_FAULT_AT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        if at == Some(n) {
            eprintln!("fault injection: aborting before file-system step {n}");
            std::process::abort();
        }
    }

    #[cfg(not(feature = "test-hooks"))]
    #[inline(always)]
    pub(super) fn step() {}
}

/// What verifying the client certificates finds, for [`Actual`].
#[derive(Default)]
struct Found {
    /// Keys whose issued bundle holds their registered certificate.
    bundles_ok: BTreeSet<String>,
    /// What changed outside ravencert, in words.
    drift: Vec<String>,
    /// Thumbprints whose certificate file is gone.
    lost: BTreeSet<String>,
    /// Of those, the ones an issued bundle can restore.
    recoverable: BTreeSet<String>,
}

/// Reads a store file; a symbolic link is refused, not followed.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_regular(path, MAX_STORE_FILE, false).map_err(|e| {
        if e.is_link() {
            corrupt(
                path,
                "is a symbolic link; ravencert does not follow links inside the store — remove it",
            )
        } else if e.kind() == std::io::ErrorKind::InvalidInput {
            corrupt(
                path,
                format!("{e}; the store was changed outside ravencert — restore it from a backup"),
            )
        } else {
            io_err(path)(e.into())
        }
    })
}

/// The registry of 10,000 certificates is about 4 MiB; nothing in a store is near this.
const MAX_STORE_FILE: u64 = 256 << 20;

fn ensure_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() && path.parent().is_some() => {
            return Err(corrupt(
                path,
                "is a symbolic link; ravencert does not follow links inside the store — remove it",
            ))
        }
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(corrupt(path, "should be a folder")),
        Err(_) => {
            fault::step();
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err(path))?;
        }
    }
    // Whatever the umask or an earlier hand: never readable by others.
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err(path))
}

/// Flushes the filesystem holding `dir` (syncfs): makes every staged write durable at once.
fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(io_err(dir))?;
    rustix::fs::syncfs(&d).map_err(|e| io_err(dir)(e.into()))
}

/// A file the registry does not name yet: temp file and rename (never a half-written file),
/// made durable together with the others by [`sync_filesystem`] before the registry commits.
fn write_staged(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file(path, bytes, mode, false)
}

/// temp file (mode set at creation), write, fsync, rename, fsync the folder.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file(path, bytes, mode, true)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<()> {
    let (dir, tmp) = temp_file_beside(path, bytes, mode, durable)?;
    fault::step();
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    if durable {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// A temp file in `path`'s folder holding `bytes` with `mode` (fsynced when `durable`), and that
/// folder. `.tmp-` names what an interrupted write leaves behind; finish() sweeps it. The temp
/// file is created exclusively (O_EXCL) and removed on any error by NamedTempFile's drop.
fn temp_file_beside(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durable: bool,
) -> Result<(PathBuf, tempfile::NamedTempFile)> {
    // A bare file name's parent is Some(""): that is the current folder.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    fault::step();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{name}-"))
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let tmp_path = tmp.path().to_path_buf();
    // The mode given at creation is masked by the umask; set it as it must be.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(&tmp_path))?;
    tmp.write_all(bytes).map_err(io_err(&tmp_path))?;
    if durable {
        tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;
    }
    Ok((dir.to_path_buf(), tmp))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn remove_path(path: &Path) -> Result<()> {
    let m = fs::symlink_metadata(path).map_err(io_err(path))?;
    if m.is_dir() {
        remove_tree(path)
    } else {
        fault::step();
        fs::remove_file(path).map_err(io_err(path))
    }
}

/// Removes a folder; symbolic links inside are removed, never followed.
fn remove_tree(path: &Path) -> Result<()> {
    let m = fs::symlink_metadata(path).map_err(io_err(path))?;
    fault::step();
    if !m.is_dir() {
        return fs::remove_file(path).map_err(io_err(path));
    }
    fs::remove_dir_all(path).map_err(io_err(path))
}
