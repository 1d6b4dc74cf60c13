//! `ravencert bundle KEY [--out FILE.zip]`: the zip RavenDB's "Generate client certificate"
//! hands out (`<key>.pfx`, `<key>.crt`, `<key>.key`), made from the store's issued bundle of a
//! generated client, for handing to the person who will use the certificate.
//!
//! It reads certs.toml (which keys are declared, and how) and the store, never a secret: the
//! files are copied as the store holds them, already protected by the client's password.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::error::{Error, Result};
use super::{Context, Output};
use crate::config::{ClientSpec, GenerateSpec};
use crate::model::Origin;
use crate::store::{self, IssuedFiles, Store, StoreError};

/// What `ravencert bundle` is asked to do.
pub struct BundleRequest {
    /// The client key in certs.toml.
    pub key: String,
    /// Where the zip goes (default: `<key>.zip` in the current folder).
    pub out: Option<PathBuf>,
}

/// Why a bundle cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The key is not a client of certs.toml.
    #[error("no client '{key}' in certs.toml; {}", declared_list(.declared))]
    UnknownKey {
        /// The key asked for.
        key: String,
        /// The client keys certs.toml declares.
        declared: Vec<String>,
    },
    /// The client is an upload: its private key is its owner's.
    #[error("client '{0}' is an upload: ravencert never held its private key, so there is no bundle to hand out (its owner has the certificate and key)")]
    Uploaded(String),
    /// The client is declared but its bundle is not in the store yet (or no longer current).
    #[error("client '{0}' has no issued bundle in the store yet; run `ravencert apply` first")]
    NotIssued(String),
    /// Something is already at the output path.
    #[error("{} already exists; bundle never overwrites — remove it or pass --out NEW.zip", .0.display())]
    Exists(PathBuf),
    /// The output path is inside the store.
    #[error("{} is inside the store {}; the bundle is handed out, so write it elsewhere", .path.display(), .store.display())]
    InsideStore {
        /// The output path.
        path: PathBuf,
        /// The store.
        store: PathBuf,
    },
    /// The zip could not be made.
    #[error("cannot make the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
}

fn declared_list(keys: &[String]) -> String {
    if keys.is_empty() {
        "certs.toml declares no client".to_string()
    } else {
        format!("the declared clients are: {}", keys.join(", "))
    }
}

/// `ravencert bundle KEY [--out FILE.zip]`: writes the zip, mode 0600, never over a file.
pub fn bundle(ctx: &Context, req: &BundleRequest) -> Result<Output> {
    let declared = ctx.desired()?;
    let key = req.key.as_str();
    let client = declared
        .clients
        .get(key)
        .ok_or_else(|| BundleError::UnknownKey {
            key: key.to_string(),
            declared: declared.clients.keys().cloned().collect(),
        })?;
    let spec = match &client.source {
        ClientSpec::Generate(g) => g,
        ClientSpec::Upload(_) => return Err(BundleError::Uploaded(key.to_string()).into()),
    };
    let out = req
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{key}.zip")));
    check_target(&out, &declared.store.path)?;
    let store = Store::new(&declared.store.path);
    let files = issued(&store, key)?;
    let zip = make_zip(key, &files, ctx.now)?;
    store::write_new_outside(&out, &zip, 0o600).map_err(|e| match e {
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            BundleError::Exists(out.clone()).into()
        }
        e => Error::Store(e),
    })?;
    Ok(Output::ok(format!(
        "Wrote {} for client '{key}': {key}.pfx, {key}.crt and {key}.key, {}. It holds the private key: hand it over privately.\n",
        out.display(),
        protection(spec)
    )))
}

fn protection(spec: &GenerateSpec) -> &'static str {
    if spec.password.is_some() {
        "the .pfx and the key protected by the client's password"
    } else {
        "without a password (none is declared)"
    }
}

/// Nothing may be at the output path (not even a link, which is never followed), and it must
/// not be inside the store.
fn check_target(out: &Path, store: &Path) -> Result<()> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(BundleError::Exists(out.to_path_buf()).into());
    }
    if crate::fsutil::resolve(out).starts_with(crate::fsutil::resolve(store)) {
        return Err(BundleError::InsideStore {
            path: out.to_path_buf(),
            store: store.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

/// The client's issued bundle, when the store holds a current one.
fn issued(store: &Store, key: &str) -> Result<IssuedFiles> {
    let actual = store.load(None)?;
    let not_issued = || Error::from(BundleError::NotIssued(key.to_string()));
    let entry = actual
        .registry
        .active(key)
        .filter(|e| e.source == Origin::Generated)
        .ok_or_else(not_issued)?;
    store
        .read_issued(key, entry.thumbprint.as_str())?
        .ok_or_else(not_issued)
}

/// The zip: the three files at its root, deflated, each 0600, dated `now` (UTC).
fn make_zip(key: &str, files: &IssuedFiles, now: OffsetDateTime) -> Result<Vec<u8>> {
    let mut options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o600);
    let now = now.to_offset(time::UtcOffset::UTC);
    if let Ok(date) = zip::DateTime::from_date_and_time(
        u16::try_from(now.year()).unwrap_or(1980),
        now.month().into(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
    ) {
        options = options.last_modified_time(date);
    }
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (ext, bytes) in [
        ("pfx", &files.pfx),
        ("crt", &files.crt),
        ("key", &files.key),
    ] {
        zip.start_file(format!("{key}.{ext}"), options)
            .map_err(BundleError::from)?;
        zip.write_all(bytes)
            .map_err(|e| BundleError::Zip(zip::result::ZipError::Io(e)))?;
    }
    let cursor = zip.finish().map_err(BundleError::from)?;
    Ok(cursor.into_inner())
}
