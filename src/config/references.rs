//! The secrets and files certs.toml names: that each is there (before anything is written), and
//! that none lies inside the store.

use std::path::Path;

use super::diagnostics::ConfigError;
use super::{ClientSpec, Declared, Reader, SecretRef, ServerDesired, ServerSpec};

/// Checks that every secret and referenced file the config names is there, before anything is
/// written. Each problem names the key that refers to it, with its line.
///
/// `on_disk`: the certificate files are read from the disk (not from a git revision), so they
/// must exist there. `secrets`: the passwords it names are read (those of uploads, node files,
/// the admin .pfx and the install file) and the admin .pfx must exist; a review plan reads
/// none. The bundle passwords of generated clients are never read here: a password is read
/// when its bundle is written, or compared (and by `validate`, see
/// [`Declared::bundle_password_problems`]).
pub fn check_references(desired: &Declared, on_disk: bool, secrets: bool) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (at, path, secret) in references(desired) {
        // The admin .pfx is a secret, read from the disk even for a plan of a git revision.
        let admin = at == "cluster.admin_certificate";
        let from_disk = (on_disk && !admin) || (admin && secrets);
        if let Some((key, p)) = path.filter(|_| from_disk) {
            if !p.is_file() {
                problems.push(missing_file(desired, key, p));
            }
        }
        if let Some(s) = secret.filter(|_| secrets) {
            if let Err(e) = s.read() {
                problems.push(desired.secret_error_at(secret_key(&at, s), e.to_string()));
            }
        }
    }
    problems.extend(files_inside_store(desired));
    problems
}

/// What `status --html` checks of the secrets and files certs.toml names: that each is there,
/// without reading a secret (a variable that is set, a password file that exists).
pub(crate) fn missing_references(desired: &Declared) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (at, path, secret) in references(desired) {
        if let Some((key, p)) = path.filter(|(_, p)| !p.is_file()) {
            problems.push(missing_file(desired, key, p));
        }
        if let Some((s, why)) = secret.and_then(|s| Some((s, s.missing()?))) {
            problems.push(desired.secret_error_at(secret_key(&at, s), why));
        }
    }
    problems
}

/// A file certs.toml names that is not there.
fn missing_file(desired: &Declared, key: String, path: &Path) -> ConfigError {
    desired.file_error_at(
        key,
        format!("{} does not exist or is not a file", path.display()),
    )
}

/// The certs.toml key of a secret named at `at`: `AT.password_env` or `AT.password_file`.
fn secret_key(at: &str, secret: &SecretRef) -> String {
    match secret {
        SecretRef::Env(_) => format!("{at}.password_env"),
        SecretRef::File(_) => format!("{at}.password_file"),
    }
}

/// A secret or file certs.toml names: the key its secret is named under, the file and the key
/// that names it, the secret.
type Ref<'a> = (String, Option<(String, &'a Path)>, Option<&'a SecretRef>);

/// Every secret and file certs.toml names (generated clients' bundle passwords aside: they
/// are read only when their bundle is written).
fn references(desired: &Declared) -> Vec<Ref<'_>> {
    let mut refs: Vec<Ref<'_>> = Vec::new();
    for c in desired.clients.values() {
        if let ClientSpec::Upload(r) = &c.source {
            let at = format!("clients.{}", c.key);
            let file = (format!("{at}.upload"), r.path.as_path());
            refs.push((at, Some(file), r.password.as_ref()))
        }
    }
    if let Some(r) = desired.admin_certificate() {
        let at = "cluster.admin_certificate".to_string();
        let file = (format!("{at}.path"), r.path.as_path());
        refs.push((at, Some(file), r.password.as_ref()));
    }
    if let Some(p) = desired.cluster_ca_file() {
        refs.push(("cluster".into(), Some(("cluster.ca".into(), p)), None));
    }
    if let Some(i) = desired.install() {
        refs.push(("server.install".into(), None, i.password.as_ref()));
    }
    if let Some(ServerDesired {
        source: ServerSpec::Imported(files),
        ..
    }) = &desired.server
    {
        for (i, r) in files.iter().enumerate() {
            let at = format!("server.certificates[{i}]");
            let file = (format!("{at}.path"), r.path.as_path());
            refs.push((at, Some(file), r.password.as_ref()));
        }
    }
    refs
}

/// The files certs.toml names that lie inside the store.
fn files_inside_store(desired: &Declared) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for (key, path) in named_files(desired) {
        if inside_store(desired, path) {
            problems.push(desired.error_at(
                key,
                format!(
                    "{} is inside the store {}; certs.toml may not point into the store (its files are ravencert's own: keys, certificates, bundles) — name a file outside it",
                    path.display(),
                    desired.store.path.display()
                ),
            ));
        }
    }
    problems
}

/// `[cluster].ca`'s PEM file, read like an upload (through `reader`: from the disk, links kept
/// inside the repository, or from a git revision): it must hold certificates, and no private
/// key (it is reviewed and kept in git).
pub(super) fn check_ca_file(path: &Path, reader: Reader<'_>) -> Result<(), String> {
    let bytes = reader(path)?;
    let file = crate::pki::read_cert_file(&bytes, None).map_err(|e| {
        format!(
            "{}: {e}; the CA file is a PEM file of the certificate(s) that sign or are the cluster's TLS certificate",
            path.display()
        )
    })?;
    if file.key.is_some() {
        return Err(format!(
            "{} holds a private key; the CA file is reviewed and kept in git, so it must hold public certificates only — remove the key",
            path.display()
        ));
    }
    if file.certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(())
}

/// Every file certs.toml names, with the key that names it.
fn named_files(desired: &Declared) -> Vec<(String, &Path)> {
    fn password_file<'a>(at: &str, s: Option<&'a SecretRef>) -> Option<(String, &'a Path)> {
        match s {
            Some(SecretRef::File(p)) => Some((format!("{at}.password_file"), p.as_path())),
            _ => None,
        }
    }
    let mut out = Vec::new();
    for c in desired.clients.values() {
        let at = format!("clients.{}", c.key);
        match &c.source {
            ClientSpec::Generate(g) => out.extend(password_file(&at, g.password.as_ref())),
            ClientSpec::Upload(r) => {
                out.push((format!("{at}.upload"), r.path.as_path()));
                out.extend(password_file(&at, r.password.as_ref()));
            }
        }
    }
    if let Some(ServerDesired {
        source: ServerSpec::Imported(files),
        ..
    }) = &desired.server
    {
        for (i, r) in files.iter().enumerate() {
            let at = format!("server.certificates[{i}]");
            out.push((format!("{at}.path"), r.path.as_path()));
            out.extend(password_file(&at, r.password.as_ref()));
        }
    }
    if let Some(r) = desired.admin_certificate() {
        let at = "cluster.admin_certificate";
        out.push((format!("{at}.path"), r.path.as_path()));
        out.extend(password_file(at, r.password.as_ref()));
    }
    if let Some(p) = desired.cluster_ca_file() {
        out.push(("cluster.ca".into(), p));
    }
    if let Some(i) = desired.install() {
        out.extend(password_file("server.install", i.password.as_ref()));
    }
    out
}

/// Whether `path` lies inside the store, where it really points (links and `..` resolved).
fn inside_store(desired: &Declared, path: &Path) -> bool {
    crate::fsutil::resolve(path).starts_with(crate::fsutil::resolve(&desired.store.path))
}
