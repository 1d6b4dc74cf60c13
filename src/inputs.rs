//! Reads the certificate files certs.toml refers to (uploads, the nodes' own certificates) into
//! plain facts the planner can compare: DER bytes, thumbprints, dates. Private keys of uploads
//! are dropped here; node keys are read again by the apply, which needs them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{ClientSpec, ConfigError, Desired, FileRef, SecretRef, ServerSpec};
use crate::model::Uploaded;
use crate::pki::{self, PrivateKey, ReadError};

/// What the referenced files hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    /// Client key -> its certificates, primary first (CA/intermediates already skipped).
    pub uploads: BTreeMap<String, Vec<Uploaded>>,
    /// The nodes' certificates, in the order `[server].certificates` lists them.
    pub nodes: Vec<Uploaded>,
    /// The node files as read (from the disk or a commit): the apply takes their keys from
    /// these very bytes, never from a file that may have changed since.
    pub node_files: Vec<NodeFile>,
}

/// The bytes of a node certificate file (it holds a private key: never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeFile(Vec<u8>);

impl std::fmt::Debug for NodeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeFile({} bytes)", self.0.len())
    }
}

fn describe(secret: Option<&SecretRef>) -> String {
    match secret {
        Some(s) => format!(" (password from {s})"),
        None => String::new(),
    }
}

/// Where certificate files are read from: the disk, or a git revision (`plan --rev/--base`).
pub type Reader<'a> = &'a dyn Fn(&Path) -> Result<Vec<u8>, String>;

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
        Some(s) => Some(s.read()?),
        None => None,
    };
    pki::read_cert_file(bytes, password.as_ref().map(|p| p.expose())).map_err(|e| {
        let hint = match e {
            ReadError::WrongPassword => "; check the password".to_string(),
            ReadError::NeedsPassword => {
                "; name its password with password_env or password_file".to_string()
            }
            _ => String::new(),
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

/// Reads every upload and node file. Errors name the key, the file and the password's source.
pub fn resolve(desired: &Desired, reader: Reader<'_>) -> Result<Files, Vec<ConfigError>> {
    let mut files = Files::default();
    let mut errors = Vec::new();
    let mut fail = |key: String, message: String| errors.push(desired.error_at(key, message));

    if let Some(server) = &desired.server {
        if let ServerSpec::Imported(refs) = &server.source {
            for (i, r) in refs.iter().enumerate() {
                let key = format!("server.certificates[{i}].path");
                let bytes = match reader(&r.path) {
                    Ok(b) => b,
                    Err(e) => {
                        fail(key, e);
                        continue;
                    }
                };
                let read = decode(r, &bytes);
                files.node_files.push(NodeFile(bytes));
                match read {
                    Err(e) => fail(key, e),
                    Ok(f) if f.key.is_none() => fail(
                        key,
                        format!("{}: holds no private key; a node certificate must be the .pfx with its key (the server signs client certificates with it)", r.path.display()),
                    ),
                    Ok(f) => match node_certificate(&f) {
                        Err(e) => fail(key, format!("{}: {e}", r.path.display())),
                        Ok(der) => match facts(&r.path, vec![der]) {
                            Ok(mut u) => files.nodes.append(&mut u),
                            Err(e) => fail(key, e),
                        },
                    },
                }
            }
        }
    }

    for c in desired.clients.values() {
        let ClientSpec::Upload(r) = &c.source else {
            continue;
        };
        let key = format!("clients.{}.upload", c.key);
        let file = match read(r, reader) {
            Ok(f) => f,
            Err(e) => {
                fail(key, e);
                continue;
            }
        };
        if file.certs.is_empty() {
            fail(key, format!("{}: holds no certificate", r.path.display()));
            continue;
        }
        let leaves = match pki::end_entities(&file.certs) {
            Ok(l) if !l.is_empty() => l,
            Ok(_) => {
                fail(
                    key,
                    format!(
                        "{}: holds no end-entity certificate (only CA certificates)",
                        r.path.display()
                    ),
                );
                continue;
            }
            Err(e) => {
                fail(key, format!("{}: {e}", r.path.display()));
                continue;
            }
        };
        // The private key, if any, is dropped right here: it never reaches the store.
        drop(file.key);
        match facts(&r.path, leaves) {
            Ok(u) => {
                files.uploads.insert(c.key.clone(), u);
            }
            Err(e) => fail(key, e),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// The certificate of a node file: the one its private key belongs to.
fn node_certificate(f: &pki::CertFile) -> Result<Vec<u8>, String> {
    let key = f.key.as_ref().ok_or("holds no private key")?;
    for der in &f.certs {
        if key.matches(der).unwrap_or(false) {
            return Ok(der.clone());
        }
    }
    Err("its private key belongs to none of its certificates".into())
}

/// The nodes' certificates with their private keys, for the apply (which writes them into the
/// store and signs clients with the first).
pub fn node_keys(desired: &Desired) -> Result<Vec<(Vec<u8>, PrivateKey)>, String> {
    let Some(ServerSpec::Imported(refs)) = desired.server.as_ref().map(|s| &s.source) else {
        return Ok(Vec::new());
    };
    refs.iter()
        .enumerate()
        .map(|(i, r)| {
            let f = match desired.files.node_files.get(i) {
                Some(NodeFile(bytes)) => decode(r, bytes)?,
                None => read(r, &from_disk)?,
            };
            let der = node_certificate(&f).map_err(|e| format!("{}: {e}", r.path.display()))?;
            let key = f
                .key
                .ok_or_else(|| format!("{}: holds no private key", r.path.display()))?;
            Ok((der, key))
        })
        .collect()
}
