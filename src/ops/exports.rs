//! The export of the server certificate(s): where it may be written, and `ravencert export`.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::{Context, Output};
use crate::apply;
use crate::config::Declared;
use crate::store::Store;

/// Why the export cannot be written where it is asked to be.
#[derive(Debug, thiserror::Error)]
pub enum ExportPathError {
    /// The path is inside the store.
    #[error("{} is inside the store {}; the export is meant to be shared, so write it elsewhere (e.g. exports/cluster.pfx)", .path.display(), .store.display())]
    InsideStore {
        /// The export path.
        path: PathBuf,
        /// The store.
        store: PathBuf,
    },
    /// A part of the export's folder is a file.
    #[error("{} cannot be written: {} is a file, not a folder — remove it or choose another export path", .path.display(), .file.display())]
    FolderIsFile {
        /// The export path.
        path: PathBuf,
        /// The part that is a file.
        file: PathBuf,
    },
    /// The path is certs.toml or a file it names.
    #[error("{} is a file certs.toml uses as input; the export would overwrite it — choose another path", .0.display())]
    Input(PathBuf),
    /// The path is a symbolic link.
    #[error("{} is a symbolic link; ravencert does not write an export through a link — remove it or choose another path", .0.display())]
    Link(PathBuf),
    /// Something other than a regular file is there.
    #[error("{} exists and is not a regular file; remove it or choose another path", .0.display())]
    NotRegular(PathBuf),
    /// A file that is not a certificate export is there.
    #[error("{} exists and is not a certificate export (a password-less .pfx of certificates); ravencert will not overwrite it — remove it or choose another path", .0.display())]
    NotExport(PathBuf),
}

/// The export is written where certs.toml says, so that path must not be something else: not
/// inside the store, not certs.toml or a file it names, not a link, and, when a file is
/// already there, one that is a certificate export (never /etc/passwd or a private key).
pub(super) fn check_export_path(desired: &Declared) -> std::result::Result<(), ExportPathError> {
    match export_path(desired) {
        Some(path) => check_export_target(desired, path),
        None => Ok(()),
    }
}

fn check_export_target(
    desired: &Declared,
    path: &Path,
) -> std::result::Result<(), ExportPathError> {
    // Compared where they really point, whether or not they exist yet (the first apply).
    let target = crate::fsutil::resolve(path);
    let store = crate::fsutil::resolve(&desired.store.path);
    if target.starts_with(&store) {
        return Err(ExportPathError::InsideStore {
            path: path.to_path_buf(),
            store: desired.store.path.clone(),
        });
    }
    // Its folder is created on apply: whatever part of it exists must be a folder.
    let mut ancestor = path.parent();
    while let Some(dir) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(m) = std::fs::metadata(dir) {
            if !m.is_dir() {
                return Err(ExportPathError::FolderIsFile {
                    path: path.to_path_buf(),
                    file: dir.to_path_buf(),
                });
            }
            break;
        }
        ancestor = dir.parent();
    }
    let mut others = desired.referenced_files();
    others.push(desired.config_path.clone());
    if others.iter().any(|f| crate::fsutil::resolve(f) == target) {
        return Err(ExportPathError::Input(path.to_path_buf()));
    }
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(ExportPathError::Link(path.to_path_buf())),
        Ok(m) if !m.is_file() => Err(ExportPathError::NotRegular(path.to_path_buf())),
        Ok(_) => match crate::fsutil::read_regular(path, 16 << 20, false) {
            Ok(bytes) if crate::pki::is_certificate_export(&bytes) => Ok(()),
            _ => Err(ExportPathError::NotExport(path.to_path_buf())),
        },
    }
}

/// `[server].export`, when certs.toml names one.
pub(super) fn export_path(desired: &Declared) -> Option<&Path> {
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
