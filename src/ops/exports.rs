//! The export of the server certificate(s): where it may be written, and `ravencert export`.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::{Context, Output};
use crate::apply;
use crate::config::Declared;
use crate::store::Store;

/// Which file outside the store a path check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// `[server].export`: public certificates, meant to be shared.
    Export,
    /// `[server].install`: the server certificate with its private key, for a node.
    Install,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Written::Export => "export",
            Written::Install => "install file",
        })
    }
}

/// Why the export (or the install file) cannot be written where it is asked to be.
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
    /// The install path is inside the store.
    #[error("{} is inside the store {}; the install file is where a RavenDB node loads its certificate, so write it elsewhere (e.g. /etc/ravendb/cluster.pfx)", .path.display(), .store.display())]
    InstallInsideStore {
        /// The install path.
        path: PathBuf,
        /// The store.
        store: PathBuf,
    },
    /// A part of the file's folder is a file.
    #[error("{} cannot be written: {} is a file, not a folder — remove it or choose another {what} path", .path.display(), .file.display())]
    FolderIsFile {
        /// The path.
        path: PathBuf,
        /// The part that is a file.
        file: PathBuf,
        /// Which file it is.
        what: Written,
    },
    /// The path is certs.toml or a file it names.
    #[error("{} is a file certs.toml uses as input; the {what} would overwrite it — choose another path", .path.display())]
    Input {
        /// The path.
        path: PathBuf,
        /// Which file it is.
        what: Written,
    },
    /// The install path is the export's: the shared public file would hold the private key.
    #[error("{} is also [server].export, the public file meant to be shared; the install file holds the server's private key — give it another path", .0.display())]
    InstallIsExport(PathBuf),
    /// The path is a symbolic link.
    #[error("{} is a symbolic link; ravencert does not write an {what} through a link — remove it or choose another path", .path.display())]
    Link {
        /// The path.
        path: PathBuf,
        /// Which file it is.
        what: Written,
    },
    /// A symbolic link lies on the way to the install file (a folder, or the file itself).
    #[error("{} cannot be written: {source}", .path.display())]
    LinkOnPath {
        /// The path.
        path: PathBuf,
        /// The link.
        source: crate::fsutil::LinkOnPath,
    },
    /// Something other than a regular file is there.
    #[error("{} exists and is not a regular file; remove it or choose another path", .0.display())]
    NotRegular(PathBuf),
    /// A file that is not a certificate export is there.
    #[error("{} exists and is not a certificate export (a password-less .pfx of certificates); ravencert will not overwrite it — remove it or choose another path", .0.display())]
    NotExport(PathBuf),
    /// A file that is not a PKCS#12 file is there, where the install file goes.
    #[error("{} exists and is not a .pfx (PKCS#12) file; ravencert will not overwrite it with the server certificate — remove it or choose another path", .0.display())]
    NotPkcs12(PathBuf),
}

/// The export is written where certs.toml says, so that path must not be something else: not
/// inside the store, not certs.toml or a file it names, not a link, and, when a file is
/// already there, one that is a certificate export (never /etc/passwd or a private key). The
/// install file follows the same rules, a PKCS#12 file standing in for the export.
pub(super) fn check_export_path(
    desired: &Declared,
) -> std::result::Result<(), (&'static str, ExportPathError)> {
    if let Some(path) = export_path(desired) {
        check_target(desired, path, Written::Export).map_err(|e| ("server.export", e))?;
    }
    if let Some(i) = desired.install() {
        // The install file holds the server's private key: no link on the way (the store's
        // rule), checked here so that plan refuses too, and again when it is written.
        crate::fsutil::refuse_links_below(&i.root, &i.path).map_err(|source| {
            let path = i.path.clone();
            (
                "server.install",
                ExportPathError::LinkOnPath { path, source },
            )
        })?;
        check_target(desired, &i.path, Written::Install).map_err(|e| ("server.install", e))?;
    }
    Ok(())
}

fn check_export_target(
    desired: &Declared,
    path: &Path,
) -> std::result::Result<(), ExportPathError> {
    check_target(desired, path, Written::Export)
}

fn check_target(
    desired: &Declared,
    path: &Path,
    what: Written,
) -> std::result::Result<(), ExportPathError> {
    // Compared where they really point, whether or not they exist yet (the first apply).
    let target = crate::fsutil::resolve(path);
    let store = crate::fsutil::resolve(&desired.store.path);
    if target.starts_with(&store) {
        let (path, store) = (path.to_path_buf(), desired.store.path.clone());
        return Err(match what {
            Written::Export => ExportPathError::InsideStore { path, store },
            Written::Install => ExportPathError::InstallInsideStore { path, store },
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
                    what,
                });
            }
            break;
        }
        ancestor = dir.parent();
    }
    if what == Written::Install
        && export_path(desired).is_some_and(|e| crate::fsutil::resolve(e) == target)
    {
        return Err(ExportPathError::InstallIsExport(path.to_path_buf()));
    }
    let mut others = desired.referenced_files();
    others.push(desired.config_path.clone());
    others.extend(
        export_path(desired)
            .filter(|_| what == Written::Install)
            .map(Path::to_path_buf),
    );
    if others.iter().any(|f| crate::fsutil::resolve(f) == target) {
        return Err(ExportPathError::Input {
            path: path.to_path_buf(),
            what,
        });
    }
    existing_file(path, what)
}

/// A file already at the path: overwritten only when it is what ravencert writes there.
fn existing_file(path: &Path, what: Written) -> std::result::Result<(), ExportPathError> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(ExportPathError::Link {
            path: path.to_path_buf(),
            what,
        }),
        Ok(m) if !m.is_file() => Err(ExportPathError::NotRegular(path.to_path_buf())),
        Ok(_) => {
            let bytes = crate::fsutil::read_regular(path, 16 << 20, false);
            match (what, bytes) {
                (Written::Export, Ok(b)) if crate::pki::is_certificate_export(&b) => Ok(()),
                (Written::Install, Ok(b)) if crate::pki::is_pkcs12(&b) => Ok(()),
                (Written::Export, _) => Err(ExportPathError::NotExport(path.to_path_buf())),
                (Written::Install, _) => Err(ExportPathError::NotPkcs12(path.to_path_buf())),
            }
        }
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
