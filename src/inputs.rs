//! Reads the certificate files certs.toml refers to (uploads, the nodes' own certificates) into
//! plain facts the planner can compare: DER bytes, thumbprints, dates. Private keys of uploads
//! are dropped here; node keys are read again by the apply, which needs them. A node file may
//! hold no key (a .crt, or a .pfx without one): that node is registered and exported only.
//!
//! This module knows files and secrets, not certs.toml: config calls it while it builds
//! [`crate::config::Desired`], and names each problem by the key that refers to the file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{SinceBase, UnreadFile, Uploaded};
use crate::pki::{self, PrivateKey, ReadError};

/// Where a secret comes from. The secret itself is read only when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable, by name.
    Env(String),
    /// A file holding the password (a trailing newline is not part of it).
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "environment variable {v}"),
            SecretRef::File(p) => write!(f, "password file {}", p.display()),
        }
    }
}

/// Why a secret cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set: export it before running ravencert")]
    EnvNotSet(String),
    /// The environment variable holds bytes that are not UTF-8.
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    /// The environment variable is set to the empty string.
    #[error("environment variable {0} is empty; an empty password protects nothing — set a password, or remove `password_env` for a file without one")]
    EnvEmpty(String),
    /// The password file cannot be read (missing, not a regular file, too large, ...).
    #[error("cannot read password file {}: {source}", path.display())]
    FileUnreadable {
        /// The password file.
        path: PathBuf,
        /// What reading it failed with.
        source: crate::fsutil::ReadError,
    },
    /// The password file is not UTF-8 text.
    #[error("cannot read password file {}: is not UTF-8 text", path.display())]
    FileNotText {
        /// The password file.
        path: PathBuf,
    },
    /// The environment variable holds a control character (NUL, ESC, a line break inside, ...).
    #[error("environment variable {0} holds a control character (a NUL, an escape or a line break); a password is one line of printable text — set it again without one")]
    EnvControl(String),
    /// The password file holds a control character: it is not a password file (e.g.
    /// `/proc/self/environ`, a binary file). Its bytes are never shown.
    #[error("password file {} holds a control character (a NUL, an escape or a second line); a password file is one line of printable text — name the right file, or write the password into it again", path.display())]
    FileControl {
        /// The password file.
        path: PathBuf,
    },
    /// The password file is empty (or holds only a newline).
    #[error("password file {} is empty; an empty password protects nothing — write a password into it, or remove `password_file` for a file without one", path.display())]
    FileEmpty {
        /// The password file.
        path: PathBuf,
    },
}

impl SecretError {
    /// Why the secret is simply not there — the variable is not set, the password file does
    /// not exist — rather than there and unusable (None): a command that does not write what
    /// it protects goes on without it, and says so.
    pub(crate) fn absence(&self) -> Option<String> {
        match self {
            SecretError::EnvNotSet(name) => Some(format!("environment variable {name} is not set")),
            SecretError::FileUnreadable { path, source }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Some(format!("password file {} does not exist", path.display()))
            }
            _ => None,
        }
    }
}

/// A password file is a line of text; anything larger is not one.
const MAX_PASSWORD_FILE_BYTES: u64 = 64 << 10;

impl SecretRef {
    /// Reads the secret. A trailing newline in a password file is not part of the password.
    ///
    /// A password holding a control character is refused here, before it reaches OpenSSL
    /// (which cannot take a NUL, and would abort on one): the error names the variable or the
    /// file, never a byte of what it holds.
    pub(crate) fn read(&self) -> Result<Secret, SecretError> {
        let secret = self.read_raw()?;
        self.checked(secret)
    }

    /// Why the secret is not there, found without reading it: the variable is not set, the
    /// password file does not exist. None when it is there (usable or not).
    pub(crate) fn missing(&self) -> Option<String> {
        match self {
            SecretRef::Env(name) => std::env::var_os(name)
                .is_none()
                .then(|| SecretError::EnvNotSet(name.clone()).to_string()),
            SecretRef::File(path) => path
                .symlink_metadata()
                .is_err()
                .then(|| format!("password file {} does not exist", path.display())),
        }
    }

    fn checked(&self, secret: Secret) -> Result<Secret, SecretError> {
        if secret.0.is_empty() {
            return Err(match self {
                SecretRef::Env(name) => SecretError::EnvEmpty(name.clone()),
                SecretRef::File(path) => SecretError::FileEmpty { path: path.clone() },
            });
        }
        if !is_password_text(&secret.0) {
            return Err(match self {
                SecretRef::Env(name) => SecretError::EnvControl(name.clone()),
                SecretRef::File(path) => SecretError::FileControl { path: path.clone() },
            });
        }
        Ok(secret)
    }

    fn read_raw(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) => Ok(Secret(v)),
                Err(std::env::VarError::NotPresent) => Err(SecretError::EnvNotSet(name.clone())),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode(name.clone()))
                }
            },
            SecretRef::File(path) => {
                let bytes = crate::fsutil::read_regular(path, MAX_PASSWORD_FILE_BYTES, true)
                    .map_err(|source| SecretError::FileUnreadable {
                        path: path.clone(),
                        source,
                    })?;
                password_file_text(path, bytes)
            }
        }
    }
}

/// A password file's bytes as its password: UTF-8 text, a trailing newline (LF or CRLF) not
/// part of it. The checks of [`SecretRef::read`] come after.
fn password_file_text(path: &Path, bytes: Vec<u8>) -> Result<Secret, SecretError> {
    let text = String::from_utf8(bytes).map_err(|_| SecretError::FileNotText {
        path: path.to_path_buf(),
    })?;
    let line = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Secret(line.to_string()))
}

/// What ravencert makes of a password file holding `bytes`, through to OpenSSL: the file's
/// password, checked as [`SecretRef::read`] checks it, opens `pfx` (true: it did). For the fuzz
/// target of the password reader; the error never holds a byte of the file.
#[doc(hidden)]
pub fn password_file_opens(bytes: &[u8], pfx: &[u8]) -> Result<bool, SecretError> {
    let path = Path::new("password.txt");
    let secret = password_file_text(path, bytes.to_vec())?;
    let secret = SecretRef::File(path.to_path_buf()).checked(secret)?;
    Ok(pki::read_cert_file(pfx, Some(secret.expose())).is_ok())
}

/// Whether `password` can be a password: no control character (C0, DEL, C1). A NUL would
/// make OpenSSL's C string conversion fail; the others are never typed into a password, and a
/// file holding them is not a password file.
pub(crate) fn is_password_text(password: &str) -> bool {
    !password.chars().any(char::is_control)
}

/// A password. Its Debug form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The password itself, for the one call that needs it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A certificate file certs.toml names, with where its password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The file, already joined to certs.toml's folder.
    pub(crate) path: PathBuf,
    /// Its password, if it has one.
    pub(crate) password: Option<SecretRef>,
}

/// What the referenced files hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    /// Client key -> its certificates, primary first (CA/intermediates already skipped).
    pub(crate) uploads: BTreeMap<String, Vec<Uploaded>>,
    /// The nodes' certificates, in the order `[server].certificates` lists them.
    pub(crate) nodes: Vec<Uploaded>,
    /// Whether each of `nodes` came with its private key (same order).
    pub(crate) nodes_keyed: Vec<bool>,
    /// The node files as read (from the disk or a commit): the apply takes their keys from
    /// these very bytes, never from a file that may have changed since.
    pub(crate) node_files: Vec<NodeFile>,
    /// Review only: the files it did not read (outside the repository, not committed, or
    /// opened only with a password), each named by its certs.toml key.
    pub(crate) unread: Vec<UnreadFile>,
    /// Review only: the SHA-256 of each file's bytes it had, by certs.toml key, so that a file
    /// it cannot open can still be told the same as (or not) at BASE.
    pub(crate) digests: BTreeMap<String, String>,
}

/// The bytes of a node certificate file (it may hold a private key: never printed).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NodeFile(Vec<u8>);

impl fmt::Debug for NodeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeFile({} bytes)", self.0.len())
    }
}

/// A node certificate (DER) with its private key, when its file holds one.
pub(crate) type NodeCert = (Vec<u8>, Option<PrivateKey>);

/// Which reference a file problem belongs to, so that config can name its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Site {
    /// `[server].certificates[i]`.
    Node(usize),
    /// The `upload` of the client with this key.
    Upload(String),
}

impl Site {
    /// The certs.toml key naming the file: `server.certificates[N].path`, `clients.KEY.upload`.
    pub(crate) fn key(&self) -> String {
        match self {
            Site::Node(i) => format!("server.certificates[{i}].path"),
            Site::Upload(key) => format!("clients.{key}.upload"),
        }
    }
}

/// A certificate file that cannot be used: which reference names it, and why (the message
/// names the file and, where it matters, the password's source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct FileError {
    /// The reference that names the file.
    pub(crate) site: Site,
    /// What is wrong with it, for the person at the terminal.
    pub(crate) message: String,
}

fn describe(secret: Option<&SecretRef>) -> String {
    match secret {
        Some(s) => format!(" (password from {s})"),
        None => String::new(),
    }
}

/// Where certificate files are read from: the disk, or a git revision (`plan --rev/--base`).
pub type Reader<'a> = &'a dyn Fn(&Path) -> Result<Vec<u8>, String>;

/// Review (`plan --base`, `plan --rev`): why a file is not the repository's to read (outside
/// it, not committed), None when it is. A review never reads such a file, nor a password.
pub type Withheld<'a> = &'a dyn Fn(&Path) -> Option<String>;

/// Reads from the disk.
pub fn from_disk(path: &Path) -> Result<Vec<u8>, String> {
    crate::fsutil::read_regular(path, MAX_CERT_FILE_BYTES, true).map_err(|e| {
        format!(
            "cannot read {}: {e} (certificate files are regular files of at most {} MiB)",
            path.display(),
            MAX_CERT_FILE_BYTES >> 20
        )
    })
}

/// Certificate files are a few KiB; even a large collection stays far below this.
const MAX_CERT_FILE_BYTES: u64 = 16 << 20;

fn read(r: &FileRef, reader: Reader<'_>) -> Result<pki::CertFile, String> {
    decode(r, &reader(&r.path)?)
}

fn decode(r: &FileRef, bytes: &[u8]) -> Result<pki::CertFile, String> {
    let password = match &r.password {
        Some(s) => Some(s.read().map_err(|e| e.to_string())?),
        None => None,
    };
    pki::read_cert_file(bytes, password.as_ref().map(|p| p.expose())).map_err(|e| {
        let hint = match e {
            ReadError::WrongPassword => "; check the password",
            ReadError::NeedsPassword => "; name its password with password_env or password_file",
            _ => "",
        };
        format!(
            "{}: {e}{}{hint}",
            r.path.display(),
            describe(r.password.as_ref())
        )
    })
}

fn facts(path: &Path, ders: Vec<Vec<u8>>) -> Result<Vec<Uploaded>, String> {
    ders.into_iter()
        .map(|der| {
            let info = pki::inspect(&der).map_err(|e| {
                format!(
                    "{}: a certificate in it cannot be read: {e}",
                    path.display()
                )
            })?;
            Ok(Uploaded { der, info })
        })
        .collect()
}

/// Reads every node file and every upload. `uploads` pairs each uploading client's key with
/// its file. Every problem is reported, each with the reference that names the file. With
/// `withheld` (review), no password is read: a file it withholds, or one that opens only with
/// a password, is recorded in [`Files::unread`] instead.
pub(crate) fn resolve(
    nodes: &[FileRef],
    uploads: &[(&str, &FileRef)],
    reader: Reader<'_>,
    withheld: Option<Withheld<'_>>,
) -> Result<Files, Vec<FileError>> {
    let mut files = Files::default();
    let mut errors = Vec::new();
    for (i, r) in nodes.iter().enumerate() {
        let site = Site::Node(i);
        let Some(bytes) = fetch(r, &site, (reader, withheld), &mut files, &mut errors) else {
            continue;
        };
        let node = node_facts(r, &bytes);
        files.node_files.push(NodeFile(bytes));
        match node {
            Ok((u, keyed)) => {
                files.nodes.push(u);
                files.nodes_keyed.push(keyed);
            }
            Err(message) => errors.push(FileError { site, message }),
        }
    }
    for (key, r) in uploads {
        let site = Site::Upload(key.to_string());
        let Some(bytes) = fetch(r, &site, (reader, withheld), &mut files, &mut errors) else {
            continue;
        };
        match upload_facts(r, &bytes) {
            Ok(u) => {
                files.uploads.insert(key.to_string(), u);
            }
            Err(message) => errors.push(FileError { site, message }),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// The bytes of a file to open; None when it is not opened: an error (recorded in `errors`),
/// or, in review, a file withheld or protected by a password (recorded in `files.unread`).
fn fetch(
    r: &FileRef,
    site: &Site,
    (reader, withheld): (Reader<'_>, Option<Withheld<'_>>),
    files: &mut Files,
    errors: &mut Vec<FileError>,
) -> Option<Vec<u8>> {
    let unread = |why: String, digest: Option<String>| UnreadFile {
        key: site.key(),
        path: r.path.clone(),
        why,
        digest,
        since_base: SinceBase::Unknown,
    };
    if let Some(why) = withheld.and_then(|w| w(&r.path)) {
        files.unread.push(unread(why, None));
        return None;
    }
    let bytes = reader(&r.path)
        .map_err(|message| {
            errors.push(FileError {
                site: site.clone(),
                message,
            })
        })
        .ok()?;
    if withheld.is_some() {
        let digest = pki::sha256_hex(&bytes);
        files.digests.insert(site.key(), digest.clone());
        if let Some(secret) = &r.password {
            let why = format!(
                "it opens only with its password ({secret}), which a review plan does not read"
            );
            files.unread.push(unread(why, Some(digest)));
            return None;
        }
    }
    Some(bytes)
}

/// The certificate of a node file, and whether its private key came with it: the certificate
/// the key belongs to, or, without a key, the file's one end-entity certificate.
fn node_facts(r: &FileRef, bytes: &[u8]) -> Result<(Uploaded, bool), String> {
    let f = decode(r, bytes)?;
    let der = node_certificate(&f).map_err(|e| format!("{}: {e}", r.path.display()))?;
    let keyed = f.key.is_some();
    let mut facts = facts(&r.path, vec![der])?;
    let node = facts
        .pop()
        .ok_or_else(|| format!("{}: holds no certificate", r.path.display()))?;
    Ok((node, keyed))
}

/// The end-entity certificates of an upload, primary first. Its private key, if any, is
/// dropped right here: it never reaches the store.
fn upload_facts(r: &FileRef, bytes: &[u8]) -> Result<Vec<Uploaded>, String> {
    let file = decode(r, bytes)?;
    if file.certs.is_empty() {
        return Err(format!("{}: holds no certificate", r.path.display()));
    }
    let leaves = match pki::end_entities(&file.certs) {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => {
            return Err(format!(
                "{}: holds no end-entity certificate (only CA certificates)",
                r.path.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", r.path.display())),
    };
    drop(file.key);
    facts(&r.path, leaves)
}

/// The certificate of a node file: the one its private key belongs to, or, in a file without a
/// key, its only end-entity certificate (CA certificates of its chain are skipped).
fn node_certificate(f: &pki::CertFile) -> Result<Vec<u8>, String> {
    let Some(key) = f.key.as_ref() else {
        let leaves = pki::end_entities(&f.certs).map_err(|e| e.to_string())?;
        return match leaves.as_slice() {
            [] => Err("holds no certificate".into()),
            [one] => Ok(one.clone()),
            more => Err(format!(
                "holds {} end-entity certificates and no private key; name one file per node",
                more.len()
            )),
        };
    };
    for der in &f.certs {
        if key.matches(der).unwrap_or(false) {
            return Ok(der.clone());
        }
    }
    Err("its private key belongs to none of its certificates".into())
}

/// The nodes' certificates with their private keys where the files hold them, for the apply
/// (which writes them into the store and signs clients with the first key). Taken from the
/// bytes [`resolve`] read (`files`), or from the disk for a node it did not read.
pub(crate) fn node_keys(nodes: &[FileRef], files: &[NodeFile]) -> Result<Vec<NodeCert>, String> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let f = match files.get(i) {
                Some(NodeFile(bytes)) => decode(r, bytes)?,
                None => read(r, &from_disk)?,
            };
            let der = node_certificate(&f).map_err(|e| format!("{}: {e}", r.path.display()))?;
            Ok((der, f.key))
        })
        .collect()
}
