//! The export of the server certificate(s): where it may be written, and `ravencert export`.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::{Context, Output};
use crate::apply;
use crate::config::Desired;
use crate::store::Store;

/// The export is written where certs.toml says, so that path must not be something else: not
/// inside the store, not certs.toml or a file it names, not a link, and, when a file is
/// already there, one that is a certificate export (never /etc/passwd or a private key).
pub(super) fn check_export_path(desired: &Desired) -> std::result::Result<(), String> {
    match export_path(desired) {
        Some(path) => check_export_target(desired, path),
        None => Ok(()),
    }
}

fn check_export_target(desired: &Desired, path: &Path) -> std::result::Result<(), String> {
    // Compared where they really point, whether or not they exist yet (the first apply).
    let target = crate::fsutil::resolve(path);
    let store = crate::fsutil::resolve(&desired.store.path);
    if target.starts_with(&store) {
        return Err(format!(
            "{} is inside the store {}; the export is meant to be shared, so write it elsewhere (e.g. exports/cluster.pfx)",
            path.display(),
            desired.store.path.display()
        ));
    }
    // Its folder is created on apply: whatever part of it exists must be a folder.
    let mut ancestor = path.parent();
    while let Some(dir) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(m) = std::fs::metadata(dir) {
            if !m.is_dir() {
                return Err(format!(
                    "{} cannot be written: {} is a file, not a folder — remove it or choose another export path",
                    path.display(),
                    dir.display()
                ));
            }
            break;
        }
        ancestor = dir.parent();
    }
    let mut others = desired.referenced_files();
    others.push(desired.config_path.clone());
    if others.iter().any(|f| crate::fsutil::resolve(f) == target) {
        return Err(format!(
            "{} is a file certs.toml uses as input; the export would overwrite it — choose another path",
            path.display()
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link; ravencert does not write an export through a link — remove it or choose another path",
            path.display()
        )),
        Ok(m) if !m.is_file() => Err(format!(
            "{} exists and is not a regular file; remove it or choose another path",
            path.display()
        )),
        Ok(_) => match crate::fsutil::read_regular(path, 16 << 20, false) {
            Ok(bytes) if crate::pki::is_certificate_export(&bytes) => Ok(()),
            _ => Err(format!(
                "{} exists and is not a certificate export (a password-less .pfx of certificates); ravencert will not overwrite it — remove it or choose another path",
                path.display()
            )),
        },
    }
}

pub(super) fn export_path(desired: &Desired) -> Option<&Path> {
    desired.server.as_ref().and_then(|s| s.export.as_deref())
}

/// `ravencert export [--out PATH]`: writes the export of the registered server certificate(s).
pub fn export(ctx: &Context, out: Option<PathBuf>) -> Result<Output> {
    let desired = ctx.desired()?;
    let path = out
        .or_else(|| export_path(&desired).map(Path::to_path_buf))
        .ok_or(Error::NoExportPath)?;
    check_export_target(&desired, &path).map_err(Error::ExportTarget)?;
    let store = Store::new(&desired.store.path);
    let actual = store.load(None)?;
    apply::write_export_to(&store, &actual.registry, &path).map_err(Error::Export)?;
    Ok(Output::ok(format!(
        "Exported {} server certificate{} to {}\n",
        actual.registry.server.len(),
        if actual.registry.server.len() == 1 {
            ""
        } else {
            "s"
        },
        path.display()
    )))
}
