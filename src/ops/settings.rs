//! `[server] install` as the plan sees it (what the file on the node holds), and `ravencert
//! settings`: the settings.json fragment that lets a new node load that file and trust
//! ravencert's admin certificate from its first start.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::error::{Error, Result};
use super::exports::export_path;
use super::{Context, Output};
use crate::config::{ClusterAdmin, Declared, SecretRef};
use crate::model::{EntryThumbprint, InstalledFile};
use crate::registry::{Actual, Registry};
use crate::store::Store;

/// Reads an install file at most this large (a .pfx of a certificate and a key is a few KiB).
const MAX_INSTALL_BYTES: u64 = 1 << 20;

/// Loads the store, and with `secrets` (the declared password at hand) looks at what the
/// `[server] install` file holds, so that the plan keeps it current.
pub(super) fn load_actual(store: &Store, desired: &Declared, secrets: bool) -> Result<Actual> {
    load_actual_from(store.load(export_path(desired))?, desired, secrets)
}

/// [`load_actual`] of a plan without the lock: the store as `ctx`'s prefetch read it, if it
/// read this one.
pub(super) fn preview_actual(ctx: &Context, store: &Store, desired: &Declared) -> Result<Actual> {
    match ctx.prefetch.take(&desired.store.path) {
        Some(read) => {
            let mut actual = read?;
            actual.export_thumbprints = export_path(desired).and_then(crate::store::read_export);
            load_actual_from(actual, desired, true)
        }
        None => load_actual(store, desired, true),
    }
}

fn load_actual_from(mut actual: Actual, desired: &Declared, secrets: bool) -> Result<Actual> {
    if secrets {
        actual.install = inspect_install(desired)?;
    }
    Ok(actual)
}

/// What the install file holds, opened with its declared password; None without an install.
fn inspect_install(desired: &Declared) -> Result<Option<InstalledFile>> {
    let Some(spec) = desired.install() else {
        return Ok(None);
    };
    let password = match &spec.password {
        Some(r) => r
            .read()
            .map_err(|e| desired.error_at(password_key(r), e.to_string()))?
            .expose()
            .to_string(),
        None => String::new(),
    };
    Ok(Some(
        match crate::fsutil::read_regular(&spec.path, MAX_INSTALL_BYTES, false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => InstalledFile::Missing,
            Err(_) => InstalledFile::Unreadable,
            Ok(bytes) => crate::pki::inspect_install(&bytes, &password),
        },
    ))
}

/// The certs.toml key of the install password's source.
fn password_key(r: &SecretRef) -> String {
    match r {
        SecretRef::Env(_) => "server.install.password_env".into(),
        SecretRef::File(_) => "server.install.password_file".into(),
    }
}

/// `ravencert settings`: the settings.json fragment for a node, as JSON on stdout. The
/// password is never printed: stderr names where it comes from. It prints a path and a
/// thumbprint, so it reads certs.toml and the store only (and the admin .pfx, whose
/// thumbprint it names): no other file certs.toml names, no bundle password.
pub fn settings(ctx: &Context) -> Result<Output> {
    let desired = ctx.desired()?;
    let install = desired.install().ok_or(Error::NoInstall)?;
    let admin = &desired.cluster.as_ref().ok_or(Error::NoClusterAdmin)?.admin;
    let store = Store::new(&desired.store.path);
    let actual = store.load(export_path(&desired))?;
    if actual.registry.server.is_empty() || !install.path.exists() {
        return Err(Error::NotApplied(format!(
            "{} has not been written yet",
            install.path.display()
        )));
    }
    let thumbprints = match admin {
        ClusterAdmin::Client(key) => client_thumbprints(&actual.registry, key)?,
        ClusterAdmin::Certificate(r) => vec![admin_pfx_thumbprint(&r.path, r.password.as_ref())?],
    };
    let mut fragment = Map::new();
    fragment.insert(
        "Security.Certificate.Path".into(),
        Value::String(absolute(&install.path).display().to_string()),
    );
    let admins = match thumbprints.as_slice() {
        [one] => Value::String(one.to_string()),
        many => json!(many),
    };
    fragment.insert("Security.WellKnownCertificates.Admin".into(), admins);
    let stderr = match &install.password {
        None => String::new(),
        Some(SecretRef::Env(name)) => format!(
            "note: {} is protected by a password: add \"Security.Certificate.Password\" with the value of the environment variable {name} (not printed here)\n",
            install.path.display()
        ),
        Some(SecretRef::File(path)) => format!(
            "note: {} is protected by a password: add \"Security.Certificate.Password\" with the content of {} (not printed here)\n",
            install.path.display(),
            path.display()
        ),
    };
    Ok(Output {
        stdout: crate::render::json_text(&Value::Object(fragment)).map_err(Error::Encode)?,
        stderr,
        code: 0,
    })
}

/// The admin client's registered thumbprints: the active one first, then those still inside
/// a rotation overlap (a node started during the overlap trusts either).
fn client_thumbprints(registry: &Registry, key: &str) -> Result<Vec<EntryThumbprint>> {
    let mut mine: Vec<_> = registry
        .certificates
        .iter()
        .filter(|c| c.key == key && c.collection_primary.is_none())
        .collect();
    mine.sort_by_key(|c| c.retire_after.is_some());
    if mine.first().is_none_or(|c| c.retire_after.is_some()) {
        return Err(Error::NotApplied(format!(
            "the admin client '{key}' is not issued yet"
        )));
    }
    Ok(mine.into_iter().map(|c| c.thumbprint.clone()).collect())
}

/// The thumbprint of the certificate the admin .pfx holds a key for.
fn admin_pfx_thumbprint(path: &Path, password: Option<&SecretRef>) -> Result<EntryThumbprint> {
    let problem = |reason: String| Error::AdminCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let password = password
        .map(|r| r.read().map_err(|e| problem(e.to_string())))
        .transpose()?;
    let bytes = crate::inputs::from_disk(path).map_err(problem)?;
    let file = crate::pki::read_cert_file(&bytes, password.as_ref().map(|p| p.expose()))
        .map_err(|e| problem(e.to_string()))?;
    let key = file
        .key
        .as_ref()
        .ok_or_else(|| problem("it holds no private key".into()))?;
    file.certs
        .iter()
        .find(|der| key.matches(der).unwrap_or(false))
        .map(|der| crate::pki::thumbprint(der).into())
        .ok_or_else(|| problem("its key belongs to none of its certificates".into()))
}

/// The path as a node's settings.json needs it: absolute.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
